// ATen wrappers of the affine quant primitives (choose_qparams / quantize /
// dequantize, their float8 variants and the per-token activation quantizers):
// check, allocate, dispatch onto kernels/cpu/quant_primitives.h.
#include "quant_primitives.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <limits>

#include "../kernels/cpu/bitpack.h"
#include "../kernels/cpu/hqq.h"
#include "../kernels/cpu/sparse24.h"

namespace torchao_cpp {
namespace ops {

namespace {

void check_cpu(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), op, ": ", arg, " must be a CPU tensor, got device ", t.device());
}

// Quantization parameters that finite inputs can still overflow: max - min of
// +-float max, or a scale_dtype narrower than the input. zp_f: float zero
// points, or undefined.
void check_qparams_finite(const char* op, const at::Tensor& input, const at::Tensor& scale, const at::Tensor& zp_f) {
  const auto sf = scale.to(at::kFloat).contiguous();
  const float* s = sf.data_ptr<float>();
  const float* z = zp_f.defined() ? zp_f.data_ptr<float>() : nullptr;
  for (int64_t i = 0; i < sf.numel(); ++i)
    TORCH_CHECK_VALUE(std::isfinite(s[i]) && (!z || std::isfinite(z[i])), op, ": block ", i, " gets scale ", s[i],
                      z ? " and zero point " : "", z ? c10::str(z[i]) : "", ": its values span a range too wide for ",
                      input.scalar_type(), " (max - min, or the scale in scale_dtype ", scale.scalar_type(),
                      ", overflows)");
}

// A NaN zero point would be cast to an integer code (undefined behaviour), an
// infinite one saturates every code of its block.
void check_zero_point_values(const char* op, const at::Tensor& zp_f) {
  const float* z = zp_f.data_ptr<float>();
  for (int64_t i = 0; i < zp_f.numel(); ++i)
    TORCH_CHECK_VALUE(std::isfinite(z[i]), op, ": zero_point must be finite, got ", z[i], " at block ", i);
}

}  // namespace

void check_scale_values(const char* op, const char* arg, const at::Tensor& scale, bool reciprocal_must_fit) {
  const auto sf = scale.to(at::kFloat).contiguous();
  const float* s = sf.data_ptr<float>();
  for (int64_t i = 0; i < sf.numel(); ++i)
    TORCH_CHECK_VALUE(std::isfinite(s[i]) && s[i] > 0.0f, op, ": ", arg, " must be finite and > 0, got ", s[i],
                      " at block ", i);
  if (!reciprocal_must_fit) return;
  const auto recip = at::reciprocal(sf).to(scale.scalar_type()).to(at::kFloat).contiguous();
  const float* r = recip.data_ptr<float>();
  for (int64_t i = 0; i < sf.numel(); ++i)
    TORCH_CHECK_VALUE(std::isfinite(r[i]), op, ": ", arg, " ", s[i], " at block ", i, " is too small for ",
                      scale.scalar_type(), ": its reciprocal overflows; use a wider scale dtype");
}

void check_qparams(const char* op, const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                   const c10::optional<at::Tensor>& zero_point, int64_t nb) {
  check_float_dtype(op, "scale", scale.scalar_type());
  TORCH_CHECK_VALUE(scale.numel() == nb, op, ": scale has ", scale.numel(), " elements but input shape ", input.sizes(),
                    " with block_size ", block_size, " has ", nb, " blocks");
  TORCH_CHECK_VALUE(scale.device() == input.device(), op, ": scale is on ", scale.device(), " but input is on ",
                    input.device());
  if (zero_point.has_value() && zero_point->defined()) {
    TORCH_CHECK_VALUE(zero_point->numel() == nb, op, ": zero_point has ", zero_point->numel(),
                      " elements but there are ", nb, " blocks");
    TORCH_CHECK_VALUE(zero_point->device() == input.device(), op, ": zero_point is on ", zero_point->device(),
                      " but input is on ", input.device());
  }
}

bool has_zp(const c10::optional<at::Tensor>& zp) { return zp.has_value() && zp->defined(); }

ChooseQParamsPlan plan_choose_qparams_affine(const at::Tensor& input, const std::string& mapping_type,
                                              at::IntArrayRef block_size, int64_t quant_min, int64_t quant_max,
                                              c10::optional<double> eps, c10::optional<at::ScalarType> scale_dtype,
                                              c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero,
                                              const std::string& zero_point_domain, const char* op) {
  check_float_dtype(op, "input", input.scalar_type());
  check_quant_range(op, quant_min, quant_max);
  k::QParamsSpec spec;
  spec.mapping = parse_mapping_type(mapping_type);
  spec.domain = parse_zero_point_domain(zero_point_domain);
  spec.preserve_zero = preserve_zero;
  spec.quant_min = quant_min;
  spec.quant_max = quant_max;
  const auto sdt = scale_dtype.value_or(input.scalar_type());
  const auto zdt = zero_point_dtype.value_or(input.scalar_type());
  check_float_dtype(op, "scale_dtype", sdt);
  // Zero points are computed as float and converted: a float or integer dtype.
  TORCH_CHECK_TYPE(at::isFloatingType(zdt) || at::isIntegralType(zdt, /*includeBool=*/false), op,
                   ": zero_point_dtype must be a float or integer dtype, got ", zdt);
  if (spec.mapping != k::MappingType::Asymmetric) {
    TORCH_CHECK_VALUE(preserve_zero, op, ": preserve_zero=False is not supported for symmetric quantization");
    TORCH_CHECK_VALUE(spec.domain != k::ZeroPointDomain::Float, op,
                      ": zero_point_domain must be INT or NONE for symmetric quantization, got FLOAT");
  } else if (!preserve_zero) {
    TORCH_CHECK_VALUE(spec.domain != k::ZeroPointDomain::Int, op,
                      ": preserve_zero=False needs zero_point_domain FLOAT (or NONE), got INT");
  }
  if (spec.mapping == k::MappingType::SymmetricNoClippingErr)
    TORCH_CHECK_VALUE(quant_min < 0 && quant_max > 0, op,
                      ": SYMMETRIC_NO_CLIPPING_ERR needs quant_min < 0 < quant_max, got [", quant_min, ", ", quant_max,
                      "]");
  // torchao: eps defaults to the input dtype's machine epsilon.
  double default_eps = input.scalar_type() == at::kFloat ? std::numeric_limits<float>::epsilon()
                       : input.scalar_type() == at::kBFloat16 ? 0.0078125
                                                               : 0.0009765625;
  spec.eps = float(eps.value_or(default_eps));
  TORCH_CHECK_VALUE(spec.eps >= 0.0f && std::isfinite(spec.eps), op, ": eps must be finite and >= 0, got ", spec.eps);
  return {spec, make_geometry(op, input.sizes(), block_size), qparams_shape(input.sizes(), block_size), sdt, zdt};
}

at::Tensor zero_point_from_float(const ChooseQParamsPlan& p, const at::Tensor& zp_f) {
  if (p.spec.domain == k::ZeroPointDomain::None) return at::zeros(p.qshape, zp_f.options().dtype(p.zdt));
  return zp_f.to(p.zdt);
}

namespace {

std::tuple<at::Tensor, at::Tensor> choose_qparams_affine_cpu(const char* op, const at::Tensor& input,
                                                             const ChooseQParamsPlan& p) {
  check_cpu(op, "input", input);
  auto in = input.contiguous();
  auto scale = at::empty(p.qshape, input.options().dtype(p.sdt));
  // Zero points are computed as float and converted: exact for the integral
  // values of the INT domain.
  auto zp_f = at::empty(p.qshape, input.options().dtype(at::kFloat));
  int64_t bad = -1;
  dispatch_float(in.scalar_type(), [&](auto t_in) {
    using T = decltype(t_in);
    dispatch_float(p.sdt, [&](auto t_s) {
      using TS = decltype(t_s);
      // The zero point is computed in T's precision; store as float first.
      bad = k::choose_qparams_affine<T, TS, float>(ptr<T>(in), p.g, p.spec, ptr<TS>(scale), ptr<float>(zp_f),
                                                   num_threads());
    });
  });
  TORCH_CHECK_VALUE(bad < 0, op, ": input contains NaN or Inf (block ", bad,
                    "); quantization parameters are undefined for non-finite values");
  check_qparams_finite(op, input, scale, zp_f);
  return {scale, zero_point_from_float(p, zp_f)};
}

at::Tensor quantize_affine_cpu(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                               const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                               at::ScalarType output_dtype, int64_t quant_min, int64_t quant_max,
                               const std::string& zero_point_domain) {
  check_cpu(op, "input", input);
  const auto p = plan_quantize_affine(op, input, block_size, scale, zero_point, output_dtype, quant_min, quant_max,
                                      zero_point_domain);
  check_scale_values(op, "scale", p.scale, /*reciprocal_must_fit=*/false);  // quant_block falls back to float32
  if (p.zp_f.defined()) check_zero_point_values(op, p.zp_f);
  auto in = input.contiguous();
  auto out = at::empty(input.sizes(), input.options().dtype(output_dtype));
  dispatch_float(in.scalar_type(), [&](auto t_in) {
    using T = decltype(t_in);
    dispatch_float(p.scale.scalar_type(), [&](auto t_s) {
      using TS = decltype(t_s);
      dispatch_code(op, "output_dtype", output_dtype, [&](auto t_q) {
        using TQ = decltype(t_q);
        k::quantize_affine<T, TS, TQ>(ptr<T>(in), p.g, ptr<TS>(p.scale),
                                      p.zp_f.defined() ? ptr<float>(p.zp_f) : nullptr, p.domain, quant_min, quant_max,
                                      ptr<TQ>(out), num_threads(), p.zp_is_scale_dtype);
      });
    });
  });
  return out;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> choose_qparams_affine(const at::Tensor& input, const std::string& mapping_type,
                                                         at::IntArrayRef block_size, int64_t quant_min,
                                                         int64_t quant_max, c10::optional<double> eps,
                                                         c10::optional<at::ScalarType> scale_dtype,
                                                         c10::optional<at::ScalarType> zero_point_dtype,
                                                         bool preserve_zero, const std::string& zero_point_domain) {
  const char* op = "choose_qparams_affine";
  return choose_qparams_affine_cpu(op, input,
                                   plan_choose_qparams_affine(input, mapping_type, block_size, quant_min, quant_max,
                                                              eps, scale_dtype, zero_point_dtype, preserve_zero,
                                                              zero_point_domain, op));
}

QuantizePlan plan_quantize_affine(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                  const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                  at::ScalarType output_dtype, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain) {
  check_float_dtype(op, "input", input.scalar_type());
  check_quant_range(op, quant_min, quant_max);
  check_range_fits(op, output_dtype, quant_min, quant_max);
  QuantizePlan p;
  p.domain = parse_zero_point_domain(zero_point_domain);
  p.g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, zero_point, p.g.num_blocks());
  TORCH_CHECK_VALUE(p.domain == k::ZeroPointDomain::None || has_zp(zero_point), op, ": zero_point_domain ",
                    zero_point_domain, " needs a zero_point");
  p.scale = scale.contiguous();
  if (p.domain != k::ZeroPointDomain::None && has_zp(zero_point)) {
    if (p.domain == k::ZeroPointDomain::Float) {
      check_float_dtype(op, "zero_point (FLOAT domain)", zero_point->scalar_type());
      p.zp_is_scale_dtype = zero_point->scalar_type() == scale.scalar_type();
    }
    p.zp_f = zero_point->to(at::kFloat).contiguous();
  }
  return p;
}

at::Tensor quantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                           const c10::optional<at::Tensor>& zero_point, at::ScalarType output_dtype,
                           int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain) {
  return quantize_affine_cpu("quantize_affine", input, block_size, scale, zero_point, output_dtype, quant_min,
                             quant_max, zero_point_domain);
}

DequantizePlan plan_dequantize_affine(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                      const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                      int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain,
                                      c10::optional<at::ScalarType> output_dtype) {
  check_code_dtype(op, "input", input.scalar_type());
  check_quant_range(op, quant_min, quant_max);
  DequantizePlan p;
  p.odt = output_dtype.value_or(at::kFloat);
  check_float_dtype(op, "output_dtype", p.odt);
  p.domain = parse_zero_point_domain(zero_point_domain);
  p.g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, zero_point, p.g.num_blocks());
  if (p.domain != k::ZeroPointDomain::None && has_zp(zero_point)) {
    // torchao: INT-domain zero points go through int32.
    p.zp_f = (p.domain == k::ZeroPointDomain::Int ? zero_point->to(at::kInt).to(at::kFloat)
                                                  : zero_point->to(at::kFloat))
                 .contiguous();
  }
  p.scale = scale.contiguous();
  return p;
}

at::Tensor dequantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                             const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                             const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype) {
  const char* op = "dequantize_affine";
  check_cpu(op, "input", input);
  const auto p = plan_dequantize_affine(op, input, block_size, scale, zero_point, quant_min, quant_max,
                                        zero_point_domain, output_dtype);
  auto in = input.contiguous();
  auto out = at::empty(input.sizes(), input.options().dtype(p.odt));
  dispatch_code(op, "input", in.scalar_type(), [&](auto t_q) {
    using TQ = decltype(t_q);
    dispatch_float(p.scale.scalar_type(), [&](auto t_s) {
      using TS = decltype(t_s);
      dispatch_float(p.odt, [&](auto t_o) {
        using TO = decltype(t_o);
        k::dequantize_affine<TQ, TS, TO>(ptr<TQ>(in), p.g, ptr<TS>(p.scale),
                                         p.zp_f.defined() ? ptr<float>(p.zp_f) : nullptr, p.domain, quant_min,
                                         quant_max, ptr<TO>(out), num_threads());
      });
    });
  });
  return out;
}

// --- float8 -----------------------------------------------------------------

Float8QParamsPlan plan_choose_qparams_affine_float8(const char* op, const at::Tensor& input,
                                                    at::IntArrayRef block_size, const std::string& float8_dtype,
                                                    c10::optional<at::ScalarType> scale_dtype) {
  check_float_dtype(op, "input", input.scalar_type());
  Float8QParamsPlan p;
  p.fmt = parse_float8_dtype(float8_dtype);
  p.sdt = scale_dtype.value_or(input.scalar_type());
  check_float_dtype(op, "scale_dtype", p.sdt);
  p.g = make_geometry(op, input.sizes(), block_size);
  p.qshape = qparams_shape(input.sizes(), block_size);
  return p;
}

at::Tensor choose_qparams_affine_float8_cpu(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                            const std::string& float8_dtype,
                                            c10::optional<at::ScalarType> scale_dtype) {
  check_cpu(op, "input", input);
  const auto p = plan_choose_qparams_affine_float8(op, input, block_size, float8_dtype, scale_dtype);
  auto in = input.contiguous();
  auto scale = at::empty(p.qshape, input.options().dtype(p.sdt));
  int64_t bad = -1;
  dispatch_float(in.scalar_type(), [&](auto t_in) {
    using T = decltype(t_in);
    dispatch_float(p.sdt, [&](auto t_s) {
      using TS = decltype(t_s);
      bad = k::choose_qparams_float8<T, TS>(ptr<T>(in), p.g, k::float8_max(p.fmt),
                                            std::numeric_limits<float>::epsilon(), ptr<TS>(scale), num_threads());
    });
  });
  TORCH_CHECK_VALUE(bad < 0, op, ": input contains NaN or Inf (block ", bad,
                    "); quantization parameters are undefined for non-finite values");
  check_qparams_finite(op, input, scale, at::Tensor());
  return scale;
}

at::Tensor choose_qparams_affine_float8(const at::Tensor& input, at::IntArrayRef block_size,
                                        const std::string& float8_dtype, c10::optional<at::ScalarType> scale_dtype) {
  return choose_qparams_affine_float8_cpu("choose_qparams_affine_float8", input, block_size, float8_dtype,
                                          scale_dtype);
}

Float8Plan plan_quantize_affine_float8(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                       const at::Tensor& scale, const std::string& float8_dtype) {
  check_float_dtype(op, "input", input.scalar_type());
  Float8Plan p;
  p.fmt = parse_float8_dtype(float8_dtype);
  p.odt = at::kByte;
  p.g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, c10::nullopt, p.g.num_blocks());
  return p;
}

at::Tensor quantize_affine_float8_cpu(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                      const at::Tensor& scale, const std::string& float8_dtype) {
  check_cpu(op, "input", input);
  const auto p = plan_quantize_affine_float8(op, input, block_size, scale, float8_dtype);
  auto sc = scale.contiguous();
  check_scale_values(op, "scale", sc);
  auto in = input.contiguous();
  auto out = at::empty(input.sizes(), input.options().dtype(at::kByte));
  dispatch_float(in.scalar_type(), [&](auto t_in) {
    using T = decltype(t_in);
    dispatch_float(sc.scalar_type(), [&](auto t_s) {
      using TS = decltype(t_s);
      if (p.fmt == k::Float8Format::E4M3FN)
        k::quantize_affine_float8<k::Float8Format::E4M3FN, T, TS>(ptr<T>(in), p.g, ptr<TS>(sc), ptr<uint8_t>(out),
                                                                 num_threads());
      else
        k::quantize_affine_float8<k::Float8Format::E5M2, T, TS>(ptr<T>(in), p.g, ptr<TS>(sc), ptr<uint8_t>(out),
                                                               num_threads());
    });
  });
  return out;
}

at::Tensor quantize_affine_float8(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const std::string& float8_dtype) {
  return quantize_affine_float8_cpu("quantize_affine_float8", input, block_size, scale, float8_dtype);
}

Float8Plan plan_dequantize_affine_float8(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                         const at::Tensor& scale, const std::string& float8_dtype,
                                         c10::optional<at::ScalarType> output_dtype) {
  Float8Plan p;
  p.fmt = parse_float8_dtype(float8_dtype);
  float8_codes_as_uint8(op, input);  // checks the dtype
  p.odt = output_dtype.value_or(at::kFloat);
  check_float_dtype(op, "output_dtype", p.odt);
  p.g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, c10::nullopt, p.g.num_blocks());
  return p;
}

at::Tensor dequantize_affine_float8(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                    const std::string& float8_dtype, c10::optional<at::ScalarType> output_dtype) {
  const char* op = "dequantize_affine_float8";
  check_cpu(op, "input", input);
  const auto p = plan_dequantize_affine_float8(op, input, block_size, scale, float8_dtype, output_dtype);
  auto codes = float8_codes_as_uint8(op, input).contiguous();
  auto sc = scale.contiguous();
  auto out = at::empty(input.sizes(), input.options().dtype(p.odt));
  dispatch_float(sc.scalar_type(), [&](auto t_s) {
    using TS = decltype(t_s);
    dispatch_float(p.odt, [&](auto t_o) {
      using TO = decltype(t_o);
      if (p.fmt == k::Float8Format::E4M3FN)
        k::dequantize_affine_float8<k::Float8Format::E4M3FN, TS, TO>(ptr<uint8_t>(codes), p.g, ptr<TS>(sc),
                                                                    ptr<TO>(out), num_threads());
      else
        k::dequantize_affine_float8<k::Float8Format::E5M2, TS, TO>(ptr<uint8_t>(codes), p.g, ptr<TS>(sc),
                                                                  ptr<TO>(out), num_threads());
    });
  });
  return out;
}

// --- activation quantizers ---------------------------------------------------

namespace {

// The seed's per-token quantizers: choose_qparams_affine with one block per
// token (the last dim), then quantize_affine to int8.
struct PerTokenPlan {
  std::vector<int64_t> block;
  ChooseQParamsPlan qparams;
};

PerTokenPlan plan_per_token(const char* op, const at::Tensor& x, k::ActQuant mode) {
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": per-token quantization needs an input with at least 1 dim, got a scalar");
  TORCH_CHECK_VALUE(x.size(-1) >= 1, op, ": input has no features (shape ", x.sizes(),
                    "); per-token quantization needs at least one value per token");
  PerTokenPlan p;
  p.block.assign(size_t(x.dim()), 1);
  p.block.back() = x.size(-1);
  if (mode == k::ActQuant::Asymmetric) {
    // torchao's _int8_asymm_per_token_quant (torch >= 2.6 branch).
    p.qparams = plan_choose_qparams_affine(x, "ASYMMETRIC", p.block, -128, 127, std::numeric_limits<float>::epsilon(),
                                           at::kFloat, at::kChar, true, "INT", op);
  } else if (mode == k::ActQuant::Int4Symmetric) {
    // torchao's _int4_symm_cutlass_quant: float32 scales, no zero point
    // (symmetric: the INT-domain zero point is 0, the same codes).
    p.qparams = plan_choose_qparams_affine(x, "SYMMETRIC", p.block, -8, 7, std::numeric_limits<float>::epsilon(),
                                           at::kFloat, at::kChar, true, "INT", op);
  } else {
    // torchao's _int8_symm_per_token_reduced_range_quant: float16 scales are
    // kept in float32 to avoid overflow.
    c10::optional<at::ScalarType> sdt;
    if (x.scalar_type() == at::kHalf) sdt = at::kFloat;
    p.qparams = plan_choose_qparams_affine(x, "SYMMETRIC", p.block, -127, 127, 1e-5, sdt, c10::nullopt, true, "INT",
                                           op);
  }
  return p;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> per_token_quant_cpu(const char* op, const at::Tensor& input,
                                                                   k::ActQuant mode) {
  check_cpu(op, "input", input);
  const auto p = plan_per_token(op, input, mode);
  at::Tensor scale, zp;
  std::tie(scale, zp) = choose_qparams_affine_cpu(op, input, p.qparams);
  auto q = quantize_affine_cpu(op, input, p.block, scale, zp, at::kChar, p.qparams.spec.quant_min,
                               p.qparams.spec.quant_max, "INT");
  return {q, scale, zp};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_asymm_per_token_quant(const at::Tensor& input) {
  return per_token_quant_cpu("int8_asymm_per_token_quant", input, k::ActQuant::Asymmetric);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_symm_per_token_reduced_range_quant(const at::Tensor& input) {
  return per_token_quant_cpu("int8_symm_per_token_reduced_range_quant", input, k::ActQuant::SymmetricReducedRange);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_int8_per_token_quant(const at::Tensor& input, bool asymmetric) {
  using Fn = decltype(int8_asymm_per_token_quant);
  static const auto asymm = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("torchao_cpp::int8_asymm_per_token_quant", "")
                                .typed<Fn>();
  static const auto symm = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("torchao_cpp::int8_symm_per_token_reduced_range_quant", "")
                               .typed<Fn>();
  return asymmetric ? asymm.call(input) : symm.call(input);
}

void check_hqq(const char* op, const at::Tensor& weight, int64_t nbits, int64_t group_size) {
  const auto t = weight.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kBFloat16 || t == at::kHalf, op,
                   ": weight must be float32, bfloat16 or float16, got ", t);
  TORCH_CHECK_VALUE(nbits >= 1 && nbits <= 8, op, ": nbits must be in 1..8 (uint8 codes), got ", nbits);
  TORCH_CHECK_VALUE(weight.dim() == 2 && group_size >= 1 && weight.size(1) % group_size == 0, op,
                    ": takes a 2-d weight whose in_features the group size divides, got shape ", weight.sizes(),
                    " and group_size ", group_size);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> choose_qparams_and_quantize_affine_hqq(const at::Tensor& weight,
                                                                                      int64_t nbits,
                                                                                      int64_t group_size) {
  check_hqq("choose_qparams_and_quantize_affine_hqq", weight, nbits, group_size);
  const auto w = weight.to(at::kFloat).contiguous();
  const int64_t N = w.size(0), K = w.size(1), G = K / group_size;
  auto codes = at::empty({N, K}, w.options().dtype(at::kByte));
  auto scale = at::empty({N, G}, w.options());
  auto zero = at::empty({N, G}, w.options());
  if (w.numel() > 0)
    k::hqq_quantize(w.data_ptr<float>(), N * G, group_size, int(nbits), k::HqqOptions{}, codes.data_ptr<uint8_t>(),
                    scale.data_ptr<float>(), zero.data_ptr<float>(), num_threads());
  return {codes, scale, zero};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_choose_qparams_and_quantize_affine_hqq(const at::Tensor& weight,
                                                                                           int64_t nbits,
                                                                                           int64_t group_size) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("torchao_cpp::choose_qparams_and_quantize_affine_hqq", "")
                             .typed<decltype(choose_qparams_and_quantize_affine_hqq)>();
  return op.call(weight, nbits, group_size);
}

at::Tensor call_dequantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::dequantize_affine", "")
                                 .typed<decltype(dequantize_affine)>();
  return handle.call(input, block_size, scale, zero_point, quant_min, quant_max, zero_point_domain, output_dtype);
}

// --- bit packing ---------------------------------------------------------------

namespace {

// Rows of `cols` codes along the last dim, and the result's shape.
struct BitsPlan {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> out_shape;
};

BitsPlan plan_pack_bits(const char* op, const at::Tensor& codes, int64_t bits) {
  TORCH_CHECK_VALUE(bits >= 1 && bits <= 8, op, ": bits must be in 1..8, got ", bits);
  TORCH_CHECK_VALUE(codes.dim() >= 1, op, ": codes must have at least 1 dim");
  check_code_dtype(op, "codes", codes.scalar_type());
  BitsPlan p;
  p.cols = codes.size(-1);
  p.rows = p.cols == 0 ? 0 : codes.numel() / p.cols;
  p.out_shape = codes.sizes().vec();
  p.out_shape.back() = k::packed_row_bytes(p.cols, int(bits));
  return p;
}

BitsPlan plan_unpack_bits(const char* op, const at::Tensor& packed, int64_t bits, int64_t quant_min, int64_t cols,
                          at::ScalarType output_dtype) {
  TORCH_CHECK_VALUE(bits >= 1 && bits <= 8, op, ": bits must be in 1..8, got ", bits);
  TORCH_CHECK_TYPE(packed.scalar_type() == at::kByte, op, ": packed must be uint8, got ", packed.scalar_type());
  TORCH_CHECK_VALUE(packed.dim() >= 1, op, ": packed must have at least 1 dim");
  TORCH_CHECK_VALUE(cols >= 0 && packed.size(-1) == k::packed_row_bytes(cols, int(bits)), op, ": packed rows have ",
                    packed.size(-1), " bytes, but ", cols, " codes of ", bits, " bits need ",
                    k::packed_row_bytes(cols, int(bits)));
  check_range_fits(op, output_dtype, quant_min, quant_min + (int64_t(1) << bits) - 1);
  BitsPlan p;
  p.cols = cols;
  p.rows = packed.size(-1) == 0 ? 0 : packed.numel() / packed.size(-1);
  p.out_shape = packed.sizes().vec();
  p.out_shape.back() = cols;
  return p;
}

}  // namespace

at::Tensor pack_bits(const at::Tensor& codes, int64_t bits, int64_t quant_min) {
  const char* op = "pack_bits";
  check_cpu(op, "codes", codes);
  const auto p = plan_pack_bits(op, codes, bits);
  auto c = codes.contiguous();
  // Out-of-range codes would be silently truncated: refuse them.
  if (c.numel() > 0) {
    const int64_t lo = c.min().item<int64_t>(), hi = c.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= quant_min && hi - quant_min < (int64_t(1) << bits), op, ": codes span [", lo, ", ", hi,
                      "], outside the ", bits, "-bit range starting at quant_min=", quant_min);
  }
  auto out = at::empty(p.out_shape, c.options().dtype(at::kByte));
  dispatch_code(op, "codes", c.scalar_type(), [&](auto t_q) {
    using TQ = decltype(t_q);
    k::dispatch_bits(int(bits), [&](auto b) {
      k::pack_bits_rows<decltype(b)::value, TQ>(ptr<TQ>(c), p.rows, p.cols, quant_min, ptr<uint8_t>(out));
    });
  });
  return out;
}

void check_prune_2to4(const char* op, const at::Tensor& weight) {
  check_float_dtype(op, "weight", weight.scalar_type());
  TORCH_CHECK_VALUE(weight.dim() >= 1 && weight.size(-1) % 4 == 0, op,
                    ": weight's last dim must be a multiple of 4 (groups of 4 are pruned), got shape ", weight.sizes());
}

at::Tensor prune_2to4(const at::Tensor& weight) {
  const char* op = "prune_2to4";
  check_cpu(op, "weight", weight);
  check_prune_2to4(op, weight);
  auto w = weight.contiguous();
  auto out = at::empty_like(w);
  const int64_t K = w.dim() ? w.size(-1) : 1;
  dispatch_float(w.scalar_type(), [&](auto t) {
    using T = decltype(t);
    k::prune_2to4<T>(ptr<T>(w), K ? w.numel() / K : 0, K, ptr<T>(out));
  });
  return out;
}

at::Tensor unpack_bits(const at::Tensor& packed, int64_t bits, int64_t quant_min, int64_t cols,
                       at::ScalarType output_dtype) {
  const char* op = "unpack_bits";
  check_cpu(op, "packed", packed);
  const auto p = plan_unpack_bits(op, packed, bits, quant_min, cols, output_dtype);
  auto pk = packed.contiguous();
  auto out = at::empty(p.out_shape, pk.options().dtype(output_dtype));
  dispatch_code(op, "output_dtype", output_dtype, [&](auto t_q) {
    using TQ = decltype(t_q);
    k::dispatch_bits(int(bits), [&](auto b) {
      k::unpack_bits_rows<decltype(b)::value, TQ>(ptr<uint8_t>(pk), p.rows, p.cols, quant_min, ptr<TQ>(out));
    });
  });
  return out;
}

// --- Meta (shape-only) implementations ------------------------------------------
// Each runs its op's plan, so it checks exactly what the CPU op checks except
// values (which a meta tensor does not hold), then allocates the result.

namespace {

std::tuple<at::Tensor, at::Tensor> choose_qparams_affine_meta(
    const at::Tensor& input, const std::string& mapping_type, at::IntArrayRef block_size, int64_t quant_min,
    int64_t quant_max, c10::optional<double> eps, c10::optional<at::ScalarType> scale_dtype,
    c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero, const std::string& zero_point_domain) {
  const auto p = plan_choose_qparams_affine(input, mapping_type, block_size, quant_min, quant_max, eps, scale_dtype,
                                            zero_point_dtype, preserve_zero, zero_point_domain);
  return {at::empty(p.qshape, input.options().dtype(p.sdt)), at::empty(p.qshape, input.options().dtype(p.zdt))};
}

at::Tensor quantize_affine_meta(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                const c10::optional<at::Tensor>& zero_point, at::ScalarType output_dtype,
                                int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain) {
  plan_quantize_affine("quantize_affine", input, block_size, scale, zero_point, output_dtype, quant_min, quant_max,
                       zero_point_domain);
  return at::empty(input.sizes(), input.options().dtype(output_dtype));
}

at::Tensor dequantize_affine_meta(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype) {
  const auto p = plan_dequantize_affine("dequantize_affine", input, block_size, scale, zero_point, quant_min,
                                        quant_max, zero_point_domain, output_dtype);
  return at::empty(input.sizes(), input.options().dtype(p.odt));
}

at::Tensor choose_qparams_affine_float8_meta(const at::Tensor& input, at::IntArrayRef block_size,
                                             const std::string& float8_dtype,
                                             c10::optional<at::ScalarType> scale_dtype) {
  const auto p =
      plan_choose_qparams_affine_float8("choose_qparams_affine_float8", input, block_size, float8_dtype, scale_dtype);
  return at::empty(p.qshape, input.options().dtype(p.sdt));
}

at::Tensor quantize_affine_float8_meta(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                       const std::string& float8_dtype) {
  plan_quantize_affine_float8("quantize_affine_float8", input, block_size, scale, float8_dtype);
  return at::empty(input.sizes(), input.options().dtype(at::kByte));
}

at::Tensor dequantize_affine_float8_meta(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                         const std::string& float8_dtype, c10::optional<at::ScalarType> output_dtype) {
  const auto p =
      plan_dequantize_affine_float8("dequantize_affine_float8", input, block_size, scale, float8_dtype, output_dtype);
  return at::empty(input.sizes(), input.options().dtype(p.odt));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> per_token_meta(const char* op, const at::Tensor& input,
                                                              k::ActQuant mode) {
  const auto p = plan_per_token(op, input, mode).qparams;
  return {at::empty(input.sizes(), input.options().dtype(at::kChar)),
          at::empty(p.qshape, input.options().dtype(p.sdt)), at::empty(p.qshape, input.options().dtype(p.zdt))};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_asymm_per_token_quant_meta(const at::Tensor& input) {
  return per_token_meta("int8_asymm_per_token_quant", input, k::ActQuant::Asymmetric);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_symm_per_token_reduced_range_quant_meta(const at::Tensor& input) {
  return per_token_meta("int8_symm_per_token_reduced_range_quant", input, k::ActQuant::SymmetricReducedRange);
}

at::Tensor prune_2to4_meta(const at::Tensor& weight) {
  check_prune_2to4("prune_2to4", weight);
  return at::empty_like(weight, at::MemoryFormat::Contiguous);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> choose_qparams_and_quantize_affine_hqq_meta(const at::Tensor& weight,
                                                                                           int64_t nbits,
                                                                                           int64_t group_size) {
  check_hqq("choose_qparams_and_quantize_affine_hqq", weight, nbits, group_size);
  const auto o = weight.options().dtype(at::kFloat);
  return {at::empty(weight.sizes(), weight.options().dtype(at::kByte)),
          at::empty({weight.size(0), weight.size(1) / group_size}, o),
          at::empty({weight.size(0), weight.size(1) / group_size}, o)};
}

at::Tensor pack_bits_meta(const at::Tensor& codes, int64_t bits, int64_t) {
  return at::empty(plan_pack_bits("pack_bits", codes, bits).out_shape, codes.options().dtype(at::kByte));
}

at::Tensor unpack_bits_meta(const at::Tensor& packed, int64_t bits, int64_t quant_min, int64_t cols,
                            at::ScalarType output_dtype) {
  return at::empty(plan_unpack_bits("unpack_bits", packed, bits, quant_min, cols, output_dtype).out_shape,
                   packed.options().dtype(output_dtype));
}

}  // namespace
}  // namespace ops
}  // namespace torchao_cpp

TORCH_LIBRARY_IMPL(torchao_cpp, CPU, m) {
  using namespace torchao_cpp::ops;
  m.impl("choose_qparams_affine", &choose_qparams_affine);
  m.impl("quantize_affine", &quantize_affine);
  m.impl("dequantize_affine", &dequantize_affine);
  m.impl("choose_qparams_affine_float8", &choose_qparams_affine_float8);
  m.impl("quantize_affine_float8", &quantize_affine_float8);
  m.impl("dequantize_affine_float8", &dequantize_affine_float8);
  m.impl("int8_asymm_per_token_quant", &int8_asymm_per_token_quant);
  m.impl("int8_symm_per_token_reduced_range_quant", &int8_symm_per_token_reduced_range_quant);
  m.impl("choose_qparams_and_quantize_affine_hqq", &choose_qparams_and_quantize_affine_hqq);
  m.impl("pack_bits", &pack_bits);
  m.impl("unpack_bits", &unpack_bits);
  m.impl("prune_2to4", &prune_2to4);
}

TORCH_LIBRARY_IMPL(torchao_cpp, Meta, m) {
  using namespace torchao_cpp::ops;
  m.impl("choose_qparams_affine", &choose_qparams_affine_meta);
  m.impl("quantize_affine", &quantize_affine_meta);
  m.impl("dequantize_affine", &dequantize_affine_meta);
  m.impl("choose_qparams_affine_float8", &choose_qparams_affine_float8_meta);
  m.impl("quantize_affine_float8", &quantize_affine_float8_meta);
  m.impl("dequantize_affine_float8", &dequantize_affine_float8_meta);
  m.impl("int8_asymm_per_token_quant", &int8_asymm_per_token_quant_meta);
  m.impl("int8_symm_per_token_reduced_range_quant", &int8_symm_per_token_reduced_range_quant_meta);
  m.impl("choose_qparams_and_quantize_affine_hqq", &choose_qparams_and_quantize_affine_hqq_meta);
  m.impl("pack_bits", &pack_bits_meta);
  m.impl("unpack_bits", &unpack_bits_meta);
  m.impl("prune_2to4", &prune_2to4_meta);
}
