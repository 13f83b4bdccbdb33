// ATen wrappers of the quantized linear ops: weight-only (any code format),
// dynamic int8 activation x integer weight, and float8 x float8. They read the stored codes
// directly (kernels/cpu/linear.h); no full float weight is built per call.
#include "linear.h"

#include <ATen/Context.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include "../classes/affine_quantized_tensor.h"
#include "../kernels/cpu/floatx.h"
#include "../kernels/cpu/linear.h"
#include "quant_primitives.h"

namespace torchao_cpp {
namespace ops {

namespace {

// The input of a linear: what every impl (CPU, Meta) checks.
void check_linear_input(const char* op, const at::Tensor& input, int64_t in_features) {
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least 1 dim, got a scalar");
  check_float_dtype(op, "input", input.scalar_type());
  TORCH_CHECK_VALUE(input.size(-1) == in_features, op, ": input has ", input.size(-1),
                    " features in its last dim but the weight expects in_features=", in_features, " (input shape ",
                    input.sizes(), ")");
}

void check_cpu_input(const char* op, const at::Tensor& input) {
  TORCH_CHECK_VALUE(input.device().is_cpu(), op, ": input must be a CPU tensor, got device ", input.device());
}

std::vector<int64_t> linear_out_shape(const at::Tensor& input, int64_t out_features) {
  auto shape = input.sizes().vec();
  shape.back() = out_features;
  return shape;
}

struct Flat {
  at::Tensor x2d;  // (M, K) contiguous
  std::vector<int64_t> out_shape;
};

Flat flatten_input(const at::Tensor& input, int64_t in_features, int64_t out_features) {
  Flat f;
  f.out_shape = linear_out_shape(input, out_features);
  // Rows counted, not inferred: reshape({-1, 0}) is ambiguous.
  const int64_t M = c10::multiply_integers(input.sizes().slice(0, input.dim() - 1));
  f.x2d = input.reshape({M, in_features}).contiguous();
  return f;
}

void check_bias(const char* op, const c10::optional<at::Tensor>& bias, const at::Tensor& input, int64_t out_features) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == out_features, op, ": bias must have shape (", out_features,
                    ",), got ", bias->sizes());
  check_on(op, *bias, "bias", input.device());
}

// The (checked) bias in the input's dtype, or undefined.
at::Tensor bias_like(const c10::optional<at::Tensor>& bias, const at::Tensor& input) {
  if (!bias.has_value() || !bias->defined()) return at::Tensor();
  return bias->to(input.scalar_type()).contiguous();
}

// F.linear over in_features = 0: every sum is empty, so zeros plus the bias.
at::Tensor no_features_linear(const Flat& f, int64_t out_features, const at::Tensor& b, const at::Tensor& input) {
  auto out = at::zeros({f.x2d.size(0), out_features}, input.options());
  if (b.defined()) out.add_(b);
  return out.view(f.out_shape);
}

void check_group(const char* op, int64_t in_features, int64_t group_size) {
  TORCH_CHECK_VALUE(group_size >= 1 && in_features % group_size == 0, op, ": group_size=", group_size,
                    " must be >= 1 and divide in_features=", in_features);
}

void check_weight_qparams(const char* op, const at::Tensor& t, const char* arg, int64_t n) {
  TORCH_CHECK_VALUE(t.numel() == n, op, ": ", arg, " has ", t.numel(), " elements, expected ", n,
                    " (out_features * in_features / group_size)");
}

// Validates the weight codes for `code_format`: "plain" (one integer code per
// element), "packed" (bit-packed rows of `bits`-bit codes, offset by
// quant_min), "float8_e4m3fn" and "float8_e5m2" (raw bytes), and a float-x format "fp<N>_e<E>m<M>"
// (bit-packed rows of N-bit float-x codes, as "packed" with quant_min 0).
void check_codes(const char* op, const at::Tensor& c, const std::string& code_format, int64_t bits, int64_t N,
                 int64_t K, bool allow_float8) {
  if (code_format == "plain") {
    check_code_dtype(op, "codes", c.scalar_type());
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(0) == N && c.size(1) == K, op, ": plain codes must have shape (", N, ", ",
                      K, "), got ", c.sizes());
  } else if (code_format == "packed") {
    TORCH_CHECK_VALUE(bits >= 1 && bits <= 8, op, ": bits must be in 1..8, got ", bits);
    TORCH_CHECK_TYPE(c.scalar_type() == at::kByte, op, ": packed codes must be uint8, got ", c.scalar_type());
    const int64_t rb = k::packed_row_bytes(K, int(bits));
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(0) == N && c.size(1) == rb, op, ": packed codes must have shape (", N,
                      ", ", rb, "), got ", c.sizes());
  } else if (allow_float8 && (code_format == "float8_e4m3fn" || code_format == "float8_e5m2")) {
    auto b = float8_codes_as_uint8(op, c);
    TORCH_CHECK_VALUE(b.dim() == 2 && b.size(0) == N && b.size(1) == K, op, ": float8 codes must have shape (", N, ", ",
                      K, "), got ", b.sizes());
  } else if (int e = 0, m = 0; allow_float8 && k::floatx_parse_name(code_format, &e, &m)) {
    TORCH_CHECK_VALUE(bits == 1 + e + m, op, ": ", code_format, " codes have ", 1 + e + m, " bits, got bits=", bits);
    TORCH_CHECK_TYPE(c.scalar_type() == at::kByte, op, ": packed ", code_format, " codes must be uint8, got ",
                     c.scalar_type());
    const int64_t rb = k::packed_row_bytes(K, int(bits));
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(0) == N && c.size(1) == rb, op, ": packed ", code_format,
                      " codes must have shape (", N, ", ", rb, "), got ", c.sizes());
  } else {
    TORCH_CHECK_VALUE(false, op, ": code_format must be plain, packed",
                      allow_float8 ? ", float8_e4m3fn, float8_e5m2 or a float-x format fp<N>_e<E>m<M>" : "",
                      ", got '", code_format, "'");
  }
}

// Calls fn(reader) with the kernel's code reader of checked codes (check_codes).
template <class Fn>
void with_code_reader(const char* op, const at::Tensor& c, const std::string& code_format, int64_t bits, int64_t K,
                      int64_t quant_min, Fn&& fn) {
  if (code_format == "plain") {
    dispatch_code(op, "codes", c.scalar_type(), [&](auto t_q) {
      using TQ = decltype(t_q);
      fn(k::PlainCodes<TQ>{ptr<TQ>(c), K});
    });
  } else if (code_format == "packed") {
    k::dispatch_bits(int(bits), [&](auto bw) {
      fn(k::PackedCodes<decltype(bw)::value>{ptr<uint8_t>(c), K, quant_min});
    });
  } else if (int e = 0, m = 0; k::floatx_parse_name(code_format, &e, &m)) {
    const float* table = k::floatx_table(e, m);
    k::dispatch_bits(1 + e + m, [&](auto bw) { fn(k::FloatxCodes<decltype(bw)::value>{ptr<uint8_t>(c), K, table}); });
  } else {
    auto b = float8_codes_as_uint8(op, c);
    if (code_format == "float8_e4m3fn")
      fn(k::Float8Codes<k::Float8Format::E4M3FN>{ptr<uint8_t>(b), K});
    else
      fn(k::Float8Codes<k::Float8Format::E5M2>{ptr<uint8_t>(b), K});
  }
}

// The arguments of weight_only_linear, checked for its CPU and Meta impls.
k::ZeroPointDomain check_weight_only_linear(const char* op, const at::Tensor& input, const at::Tensor& codes,
                                            const std::string& code_format, int64_t bits, int64_t out_features,
                                            int64_t in_features, int64_t group_size, const at::Tensor& scale,
                                            const c10::optional<at::Tensor>& zero_point,
                                            const std::string& zero_point_domain,
                                            const c10::optional<at::Tensor>& bias) {
  check_linear_input(op, input, in_features);
  check_group(op, in_features, group_size);
  const auto domain = parse_zero_point_domain(zero_point_domain);
  const int64_t G = in_features / group_size;
  check_weight_qparams(op, scale, "scale", out_features * G);
  check_float_dtype(op, "scale", scale.scalar_type());
  if (domain != k::ZeroPointDomain::None) {
    TORCH_CHECK_VALUE(zero_point.has_value() && zero_point->defined(), op, ": zero_point_domain ", zero_point_domain,
                      " needs a zero_point");
    check_weight_qparams(op, *zero_point, "zero_point", out_features * G);
    check_on(op, *zero_point, "zero_point", input.device());
  }
  check_on(op, codes, "codes", input.device());
  check_on(op, scale, "scale", input.device());
  check_bias(op, bias, input, out_features);
  check_codes(op, codes, code_format, bits, out_features, in_features, true);
  int e = 0, m = 0;
  TORCH_CHECK_VALUE(!k::floatx_parse_name(code_format, &e, &m) || domain == k::ZeroPointDomain::None, op, ": ",
                    code_format, " codes take no zero point, got zero_point_domain ", zero_point_domain);
  return domain;
}

}  // namespace

k::ActQuant parse_act_quant(const char* op, const std::string& act_quant) {
  if (act_quant == "asymmetric") return k::ActQuant::Asymmetric;
  if (act_quant == "symmetric_reduced_range") return k::ActQuant::SymmetricReducedRange;
  if (act_quant == "int4_symmetric") return k::ActQuant::Int4Symmetric;
  TORCH_CHECK_VALUE(false, op, ": act_quant must be 'asymmetric', 'symmetric_reduced_range' or 'int4_symmetric', got '",
                    act_quant, "'");
}

namespace {

// The arguments of int8_dynamic_linear, checked for its CPU and Meta impls.
void check_int8_dynamic_linear(const char* op, const at::Tensor& input, const std::string& act_quant,
                               const at::Tensor& codes, const std::string& code_format, int64_t bits, int64_t N,
                               int64_t K, int64_t group_size, const at::Tensor& weight_scale,
                               const c10::optional<at::Tensor>& weight_zero_point,
                               const c10::optional<at::Tensor>& bias) {
  check_linear_input(op, input, K);
  check_group(op, K, group_size);
  // int16 operands, int32 sums per group: codes of at most 8 bits, groups of at most 2^15.
  TORCH_CHECK_VALUE(group_size <= 32768, op, ": group_size must be <= 32768 for int32 accumulation, got ", group_size);
  if (code_format == "plain")
    TORCH_CHECK_TYPE(codes.scalar_type() == at::kChar || codes.scalar_type() == at::kByte, op,
                     ": plain weight codes must be int8 or uint8, got ", codes.scalar_type());
  const int64_t G = K / group_size;
  check_weight_qparams(op, weight_scale, "weight_scale", N * G);
  check_bias(op, bias, input, N);
  parse_act_quant(op, act_quant);
  if (weight_zero_point.has_value() && weight_zero_point->defined()) {
    check_weight_qparams(op, *weight_zero_point, "weight_zero_point", N * G);
    check_on(op, *weight_zero_point, "weight_zero_point", input.device());
  }
  check_on(op, codes, "codes", input.device());
  check_on(op, weight_scale, "weight_scale", input.device());
  check_codes(op, codes, code_format, bits, N, K, false);
}

}  // namespace

at::Tensor weight_only_linear(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                              int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                              const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point, int64_t quant_min,
                              int64_t quant_max, const std::string& zero_point_domain,
                              const c10::optional<at::Tensor>& bias) {
  const char* op = "weight_only_linear";
  check_cpu_input(op, input);
  const auto domain = check_weight_only_linear(op, input, codes, code_format, bits, out_features, in_features,
                                               group_size, scale, zero_point, zero_point_domain, bias);
  auto f = flatten_input(input, in_features, out_features);
  auto b = bias_like(bias, input);
  if (in_features == 0) return no_features_linear(f, out_features, b, input);
  at::Tensor zp;
  if (domain != k::ZeroPointDomain::None) zp = zero_point->to(at::kFloat).contiguous();
  auto c = codes.contiguous();
  auto sc = scale.contiguous();
  k::LinearShape s{f.x2d.size(0), out_features, in_features, group_size};
  // torch.set_float32_matmul_precision("high" / "medium") lets float32
  // activations take bfloat16x3 products, as it lets torch's own matmuls.
  s.fp32_reduced = at::globalContext().float32MatmulPrecision() != at::Float32MatmulPrecision::HIGHEST;
  auto out = at::empty({s.M, s.N}, input.options());
  auto run = [&](const auto& reader) {
    dispatch_float(sc.scalar_type(), [&](auto t_s) {
      using TS = decltype(t_s);
      const float* z = zp.defined() ? ptr<float>(zp) : nullptr;
      dispatch_float(input.scalar_type(), [&](auto t_a) {
        using TA = decltype(t_a);
        k::weight_only_linear<TA, TS>(ptr<TA>(f.x2d), reader, ptr<TS>(sc), z, domain, quant_min, quant_max,
                                      b.defined() ? ptr<TA>(b) : nullptr, s, ptr<TA>(out), num_threads());
      });
    });
  };
  with_code_reader(op, c, code_format, bits, in_features, quant_min, run);
  return out.view(f.out_shape);
}

at::Tensor int8_dynamic_linear(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                               const std::string& code_format, int64_t bits, int64_t out_features, int64_t in_features,
                               int64_t group_size, const at::Tensor& weight_scale,
                               const c10::optional<at::Tensor>& weight_zero_point, int64_t quant_min,
                               const c10::optional<at::Tensor>& bias) {
  const char* op = "int8_dynamic_linear";
  const int64_t N = out_features, K = in_features;
  check_cpu_input(op, input);
  check_int8_dynamic_linear(op, input, act_quant, codes, code_format, bits, N, K, group_size, weight_scale,
                            weight_zero_point, bias);
  auto f = flatten_input(input, K, N);
  auto b = bias_like(bias, input);
  // No tokens to quantize (M = 0), or none of their features (K = 0).
  if (f.x2d.size(0) == 0 || K == 0) return no_features_linear(f, N, b, input);
  const auto aq = per_token_quant_cpu(op, f.x2d, parse_act_quant(op, act_quant));
  auto a = std::get<0>(aq).contiguous();
  auto a_scale = std::get<1>(aq).to(at::kFloat).contiguous();
  auto a_zp = std::get<2>(aq).to(at::kFloat).contiguous();
  auto ws = weight_scale.to(at::kFloat).contiguous();
  at::Tensor wz;
  if (weight_zero_point.has_value() && weight_zero_point->defined())
    wz = weight_zero_point->to(at::kFloat).contiguous();
  auto c = codes.contiguous();
  const k::LinearShape s{f.x2d.size(0), N, K, group_size};
  auto out = at::empty({s.M, s.N}, input.options());
  with_code_reader(op, c, code_format, bits, K, quant_min, [&](const auto& reader) {
    dispatch_float(input.scalar_type(), [&](auto t_a) {
      using TA = decltype(t_a);
      k::int8_dynamic_linear<TA>(ptr<int8_t>(a), ptr<float>(a_scale), ptr<float>(a_zp), reader, ptr<float>(ws),
                                 wz.defined() ? ptr<float>(wz) : nullptr, b.defined() ? ptr<TA>(b) : nullptr, s,
                                 ptr<TA>(out), num_threads());
    });
  });
  return out.view(f.out_shape);
}

namespace {

// The activations' float8 values, what quantize_affine_float8's codes stand
// for: with a float32 scale (x * (1 / scale) is then a float32 product for
// every input dtype) one SIMD pass per row quantizes and decodes
// (float8_grid_f32, bit for bit the op and float8_to_f32); otherwise the op,
// then the decoder.
void float8_activation_values(const char* op, const at::Tensor& x2d, const std::vector<int64_t>& block,
                              const at::Tensor& xs, const std::string& act_dtype, k::Float8Format act, float* xv) {
  const int64_t M = x2d.size(0), K = x2d.size(1);
  const bool e4m3 = act == k::Float8Format::E4M3FN;
  if (xs.scalar_type() != at::kFloat) {
    const auto q = quantize_affine_float8_cpu(op, x2d, block, xs, act_dtype).contiguous();
    return k::float8_to_f32(ptr<uint8_t>(q), M * K, e4m3, xv);
  }
  const auto sc = xs.contiguous();
  const float* scale = ptr<float>(sc);
  const int64_t stride = sc.numel() == 1 ? 0 : 1;  // one scale per tensor or per row
  dispatch_float(x2d.scalar_type(), [&](auto t) {
    using T = decltype(t);
    const T* x = ptr<T>(x2d);
#pragma omp parallel num_threads(num_threads())
    {
      std::vector<float> row(size_t(std::is_same_v<T, float> ? 0 : K));
#pragma omp for schedule(static)
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = row.data();
        if constexpr (std::is_same_v<T, float>)
          xr = x + m * K;
        else
          k::to_f32(x + m * K, K, row.data());
        k::float8_grid_f32(xr, K, 1.0f / scale[m * stride], e4m3, xv + m * K);
      }
    }
  });
}

// The float8 linear on checked arguments: the seed's activation quantizer
// (choose_qparams_affine_float8, float32 scale computed in the input's
// precision, and quantize_affine_float8), the float32 sums of exact products
// over dense or 2:4 compressed codes, then the scales and bias.
at::Tensor float8_linear_checked(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                 const Float8LinearSpec& s, const c10::optional<at::Tensor>& bias, bool sparse) {
  check_bias(op, bias, input, s.N);
  if (s.act_scale.defined()) check_scale_values(op, "act_scale", s.act_scale);
  auto f = flatten_input(input, s.K, s.N);
  auto b = bias_like(bias, input);
  const int64_t M = f.x2d.size(0);
  if (s.K == 0) return no_features_linear(f, s.N, b, input);
  auto out = at::empty({M, s.N}, input.options());
  if (M == 0 || s.N == 0) return out.view(f.out_shape);
  const std::vector<int64_t> block = {s.act_per_row ? 1 : M, s.K};
  const auto qshape = qparams_shape(f.x2d.sizes(), block);
  const at::Tensor xs = s.act_scale.defined()
                            ? s.act_scale.reshape(qshape)
                            : choose_qparams_affine_float8_cpu(op, f.x2d, block, act_dtype, at::kFloat);
  std::vector<float> xv(size_t(M * s.K)), acc(size_t(M * s.N));
  float8_activation_values(op, f.x2d, block, xs, act_dtype, s.act, xv.data());
  const uint8_t* w = ptr<uint8_t>(s.codes);
  auto sums = [&](auto fw) {
    constexpr k::Float8Format FW = decltype(fw)::value;
    if (!sparse)
      k::float8_sums(xv.data(), k::Float8Codes<FW>{w, s.K}, M, s.N, s.K, acc.data(), num_threads());
    else if (M <= kSparse24GatherMaxRows)  // gathers of the kept codes' activations
      k::sparse24_gemm_f32(xv.data(), M, w, s.N, s.K,
                           FW == k::Float8Format::E4M3FN ? k::Sparse24Values::Float8E4M3FN
                                                         : k::Sparse24Values::Float8E5M2,
                           nullptr, s.K, acc.data(), num_threads());
    else  // the float GEMM on panels expanded from the compressed rows
      k::float8_sums(xv.data(), k::Float8Sparse24Codes<FW>{w, s.K}, M, s.N, s.K, acc.data(), num_threads());
  };
  if (s.weight == k::Float8Format::E4M3FN)
    sums(std::integral_constant<k::Float8Format, k::Float8Format::E4M3FN>{});
  else
    sums(std::integral_constant<k::Float8Format, k::Float8Format::E5M2>{});
  const auto xsf = xs.to(at::kFloat).contiguous();
  dispatch_float(input.scalar_type(), [&](auto t_a) {
    using TA = decltype(t_a);
    k::float8_epilogue<TA>(acc.data(), ptr<float>(xsf), s.act_per_row ? 1 : 0, ptr<float>(s.weight_scale),
                           s.weight_per_row ? 1 : 0, b.defined() ? ptr<TA>(b) : nullptr, M, s.N, ptr<TA>(out));
  });
  return out.view(f.out_shape);
}

}  // namespace

at::Tensor float8_linear(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                         const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                         const std::string& weight_dtype, const at::Tensor& weight_scale,
                         const c10::optional<at::Tensor>& bias, bool /*fast_accum: CPU sums are float32 always*/) {
  const char* op = "float8_linear";
  check_cpu_input(op, input);
  const auto s = check_float8_linear(op, input, act_dtype, act_granularity, act_scale, codes, weight_dtype,
                                     weight_scale);
  return float8_linear_checked(op, input, act_dtype, s, bias, false);
}

at::Tensor weight_only_linear_sparse24(const at::Tensor& input, const at::Tensor& rows, int64_t K,
                                       k::Sparse24Values values, const at::Tensor& scale, int64_t group_size,
                                       const c10::optional<at::Tensor>& bias) {
  const char* op = "weight_only_linear";
  check_cpu_input(op, input);
  check_linear_input(op, input, K);
  const int64_t N = rows.size(0);
  const int bits = values == k::Sparse24Values::Int4 ? 4 : 8;
  TORCH_CHECK_VALUE(rows.dim() == 2 && rows.scalar_type() == at::kByte && K % 4 == 0 &&
                        rows.size(1) == k::sparse24_row_bytes(K, bits) && rows.is_contiguous(),
                    op, ": 2:4 compressed rows of in_features=", K, " must be contiguous uint8 of shape (N, ",
                    K % 4 == 0 ? k::sparse24_row_bytes(K, bits) : -1, "), got ", rows.scalar_type(), " ",
                    rows.sizes());
  TORCH_CHECK_VALUE(group_size >= 1 && K % group_size == 0 && scale.numel() == N * (K / group_size), op,
                    ": scale has ", scale.numel(), " elements, expected ", N, " x ", K, " / group_size ", group_size);
  check_bias(op, bias, input, N);
  auto f = flatten_input(input, K, N);
  auto b = bias_like(bias, input);
  if (K == 0) return no_features_linear(f, N, b, input);
  const int64_t M = f.x2d.size(0);
  auto xf = f.x2d.to(at::kFloat).contiguous();
  auto sc = scale.to(at::kFloat).contiguous();
  auto acc = at::empty({M, N}, input.options().dtype(at::kFloat));
  k::sparse24_gemm_f32(ptr<float>(xf), M, ptr<uint8_t>(rows), N, K, values, ptr<float>(sc), group_size,
                       ptr<float>(acc), num_threads());
  if (b.defined()) acc.add_(b.to(at::kFloat));  // one rounding to the input's dtype, as weight_only_linear
  return acc.to(input.scalar_type()).view(f.out_shape);
}

at::Tensor float8_linear_sparse24(const at::Tensor& input, const std::string& act_dtype,
                                  const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                  const at::Tensor& rows, int64_t in_features,
                                  const std::string& weight_dtype, const at::Tensor& weight_scale,
                                  const c10::optional<at::Tensor>& bias) {
  const char* op = "float8_linear";
  check_cpu_input(op, input);
  const auto s = check_float8_linear(op, input, act_dtype, act_granularity, act_scale, rows, weight_dtype,
                                     weight_scale, in_features);
  return float8_linear_checked(op, input, act_dtype, s, bias, true);
}

namespace {

// The fused activation quantizer (uint8 operand, per-token scales) followed by
// gemm(u, a_scale, a_zp, M, bias, out): the VNNI-packed and 2:4 GEMMs alike.
template <class Gemm>
at::Tensor int8_dynamic_linear_u8(const char* op, const at::Tensor& input, const std::string& act_quant, int64_t N,
                                  int64_t K, int64_t Kp, const c10::optional<at::Tensor>& bias, Gemm&& gemm) {
  check_cpu_input(op, input);
  check_linear_input(op, input, K);
  check_bias(op, bias, input, N);
  auto f = flatten_input(input, K, N);
  auto b = bias_like(bias, input);
  const int64_t M = f.x2d.size(0);
  const auto mode = parse_act_quant(op, act_quant);
  auto u = at::empty({M, Kp}, input.options().dtype(at::kByte));
  auto a_scale = at::empty({M}, input.options().dtype(at::kFloat));
  auto a_zp = at::empty({M}, input.options().dtype(at::kFloat));
  int64_t bad = -1;
  dispatch_float(input.scalar_type(), [&](auto t_a) {
    using TA = decltype(t_a);
    bad = k::quantize_activations_u8<TA>(ptr<TA>(f.x2d), M, K, Kp, mode, ptr<uint8_t>(u), ptr<float>(a_scale),
                                         ptr<float>(a_zp), num_threads());
  });
  TORCH_CHECK_VALUE(bad < 0, op, ": input contains NaN or Inf (row ", bad,
                    "); quantization parameters are undefined for non-finite values");
  auto bf = b.defined() ? b.to(at::kFloat).contiguous() : at::Tensor();
  auto out = at::empty({M, N}, input.options().dtype(at::kFloat));
  gemm(ptr<uint8_t>(u), ptr<float>(a_scale), ptr<float>(a_zp), M, bf.defined() ? ptr<float>(bf) : nullptr,
       ptr<float>(out));
  return out.to(input.scalar_type()).view(f.out_shape);
}

}  // namespace

at::Tensor int8_dynamic_linear_packed(const at::Tensor& input, const std::string& act_quant,
                                      const kernels::PackedInt8Weights& weight, const c10::optional<at::Tensor>& bias) {
  return int8_dynamic_linear_u8("int8_dynamic_linear", input, act_quant, weight.N, weight.K, weight.Kp, bias,
                                [&](const uint8_t* u, const float* s, const float* z, int64_t M, const float* b,
                                    float* out) { k::int8_gemm_dequant_u8(u, s, z, M, weight, b, out, num_threads()); });
}

at::Tensor int8_dynamic_linear_sparse24(const at::Tensor& input, const std::string& act_quant,
                                        const kernels::Sparse24Weights& weight,
                                        const c10::optional<at::Tensor>& bias) {
  return int8_dynamic_linear_u8(
      "int8_dynamic_linear", input, act_quant, weight.N, weight.K, weight.K, bias,
      [&](const uint8_t* u, const float* s, const float* z, int64_t M, const float* b, float* out) {
        k::int8_sparse24_gemm_u8(u, s, z, M, weight, b, out, num_threads());
      });
}

at::Tensor call_weight_only_linear(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                                   int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                                   const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                   int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain,
                                   const c10::optional<at::Tensor>& bias) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::weight_only_linear", "")
                                 .typed<decltype(weight_only_linear)>();
  return handle.call(input, codes, code_format, bits, out_features, in_features, group_size, scale, zero_point,
                     quant_min, quant_max, zero_point_domain, bias);
}

at::Tensor call_int8_dynamic_linear(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                                    const std::string& code_format, int64_t bits, int64_t out_features,
                                    int64_t in_features, int64_t group_size, const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& weight_zero_point, int64_t quant_min,
                                    const c10::optional<at::Tensor>& bias) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::int8_dynamic_linear", "")
                                 .typed<decltype(int8_dynamic_linear)>();
  return handle.call(input, act_quant, codes, code_format, bits, out_features, in_features, group_size, weight_scale,
                     weight_zero_point, quant_min, bias);
}

at::Tensor call_sparse24_cusparselt_compress(const at::Tensor& codes) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::sparse24_cusparselt_compress", "")
                                 .typed<at::Tensor(const at::Tensor&)>();
  return handle.call(codes);
}

std::tuple<at::Tensor, at::Tensor> call_sparse24_int4_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                               int64_t in_features) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::sparse24_int4_mma_pack", "")
                                 .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, int64_t)>();
  return handle.call(rows, out_features, in_features);
}

at::Tensor call_sparse24_int4_linear(const at::Tensor& input, const at::Tensor& values, const at::Tensor& meta,
                                     int64_t out_features, int64_t in_features, int64_t group_size,
                                     const at::Tensor& scale, const c10::optional<at::Tensor>& bias) {
  static const auto handle =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("torchao_cpp::sparse24_int4_linear", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                            const at::Tensor&, const c10::optional<at::Tensor>&)>();
  return handle.call(input, values, meta, out_features, in_features, group_size, scale, bias);
}

std::tuple<at::Tensor, at::Tensor> call_sparse24_float8_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                                 int64_t in_features) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::sparse24_float8_mma_pack", "")
                                 .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, int64_t)>();
  return handle.call(rows, out_features, in_features);
}

at::Tensor call_sparse24_float8_linear(const at::Tensor& input, const std::string& act_dtype,
                                       const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                       const at::Tensor& values, const at::Tensor& meta, int64_t out_features,
                                       int64_t in_features, const std::string& weight_dtype,
                                       const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                                       bool fast_accum) {
  static const auto handle =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("torchao_cpp::sparse24_float8_linear", "")
          .typed<at::Tensor(const at::Tensor&, const std::string&, const std::string&,
                            const c10::optional<at::Tensor>&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                            const std::string&, const at::Tensor&, const c10::optional<at::Tensor>&, bool)>();
  return handle.call(input, act_dtype, act_granularity, act_scale, values, meta, out_features, in_features,
                     weight_dtype, weight_scale, bias, fast_accum);
}

at::Tensor call_float8_linear(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                              const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                              const std::string& weight_dtype, const at::Tensor& weight_scale,
                              const c10::optional<at::Tensor>& bias, bool fast_accum) {
  static const auto handle = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("torchao_cpp::float8_linear", "")
                                 .typed<decltype(float8_linear)>();
  return handle.call(input, act_dtype, act_granularity, act_scale, codes, weight_dtype, weight_scale, bias,
                     fast_accum);
}

at::Tensor affine_quantized_linear(const at::Tensor& input,
                                   const c10::intrusive_ptr<classes::AffineQuantizedTensor>& weight,
                                   const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK_VALUE(weight, "affine_quantized_linear: weight is None");
  return weight->linear(input, bias);
}

at::Tensor activation_quantized_linear(const at::Tensor& input,
                                       const c10::intrusive_ptr<classes::LinearActivationQuantizedTensor>& weight,
                                       const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK_VALUE(weight, "activation_quantized_linear: weight is None");
  return weight->linear(input, bias);
}

namespace {

// Each runs the checks of its CPU impl, then allocates the result.

at::Tensor weight_only_linear_meta(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                                   int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                                   const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point, int64_t,
                                   int64_t, const std::string& zero_point_domain,
                                   const c10::optional<at::Tensor>& bias) {
  check_weight_only_linear("weight_only_linear", input, codes, code_format, bits, out_features, in_features,
                           group_size, scale, zero_point, zero_point_domain, bias);
  return at::empty(linear_out_shape(input, out_features), input.options());
}

at::Tensor int8_dynamic_linear_meta(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                                    const std::string& code_format, int64_t bits, int64_t out_features,
                                    int64_t in_features, int64_t group_size, const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& weight_zero_point, int64_t,
                                    const c10::optional<at::Tensor>& bias) {
  check_int8_dynamic_linear("int8_dynamic_linear", input, act_quant, codes, code_format, bits, out_features,
                            in_features, group_size, weight_scale, weight_zero_point, bias);
  return at::empty(linear_out_shape(input, out_features), input.options());
}

at::Tensor float8_linear_meta(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                              const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                              const std::string& weight_dtype, const at::Tensor& weight_scale,
                              const c10::optional<at::Tensor>& bias, bool) {
  const char* op = "float8_linear";
  const auto s = check_float8_linear(op, input, act_dtype, act_granularity, act_scale, codes, weight_dtype,
                                     weight_scale);
  check_bias(op, bias, input, s.N);
  return at::empty(linear_out_shape(input, s.N), input.options());
}

// Reached when the input or the bias is on meta. The weight (on any device)
// is checked by its own linear, run on a meta copy of it (no data is copied)
// so that the Meta kernels of the ops it calls check the rest.
at::Tensor affine_quantized_linear_meta(const at::Tensor& input,
                                        const c10::intrusive_ptr<classes::AffineQuantizedTensor>& weight,
                                        const c10::optional<at::Tensor>& bias) {
  const char* op = "affine_quantized_linear";
  TORCH_CHECK_VALUE(weight, op, ": weight is None");
  if (bias.has_value() && bias->defined()) check_on(op, *bias, "bias", input.device());
  return weight->to("meta")->linear(input, bias);
}

at::Tensor activation_quantized_linear_meta(const at::Tensor& input,
                                            const c10::intrusive_ptr<classes::LinearActivationQuantizedTensor>& weight,
                                            const c10::optional<at::Tensor>& bias) {
  const char* op = "activation_quantized_linear";
  TORCH_CHECK_VALUE(weight, op, ": weight is None");
  const auto& w = *weight->weight;
  TORCH_CHECK_NOT_IMPLEMENTED(w.shape.size() == 2, op, ": a linear takes a 2-d weight, got shape ", w.shape);
  check_linear_input(op, input, w.shape[1]);
  check_bias(op, bias, input, w.shape[0]);
  return at::empty(linear_out_shape(input, w.shape[0]), input.options());
}

// MarlinSparseLayout's compressed rows (N x sparse24_row_bytes(K, 4), uint8)
// in the sparse tensor cores' form (kernels/cpu/sparse24.h), as two int32
// tensors: values (16-row tiles x K words), metadata (tiles x K / 2 words).
std::tuple<at::Tensor, at::Tensor> sparse24_int4_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                          int64_t in_features) {
  const char* op = "sparse24_int4_mma_pack";
  const int64_t N = out_features, K = in_features;
  TORCH_CHECK_VALUE(N >= 1 && K >= 128 && K % 128 == 0, op, ": needs out_features >= 1 and in_features a ",
                    "multiple of 128, got (", N, ", ", K, ")");
  TORCH_CHECK_VALUE(rows.scalar_type() == at::kByte && rows.dim() == 2 && rows.size(0) == N &&
                        rows.size(1) == k::sparse24_row_bytes(K, 4),
                    op, ": rows must be the (", N, ", ", k::sparse24_row_bytes(K, 4), ") uint8 compressed 4-bit ",
                    "rows of MarlinSparseLayout, got ", rows.scalar_type(), " of shape ", rows.sizes());
  const auto r = rows.contiguous();
  TORCH_CHECK_VALUE(k::check_2to4_metadata(ptr<uint8_t>(r), N, K, 4) < 0, op,
                    ": rows hold a group whose kept columns are not two increasing indices");
  const int64_t tiles = k::sparse24_mma_tiles(N);
  auto values = at::empty({tiles * K}, r.options().dtype(at::kInt));
  auto meta = at::empty({tiles * K / 2}, r.options().dtype(at::kInt));
  k::sparse24_int4_mma_pack(ptr<uint8_t>(r), N, K, reinterpret_cast<uint32_t*>(values.data_ptr()),
                            reinterpret_cast<uint32_t*>(meta.data_ptr()));
  return {values, meta};
}

// CutlassSemiSparseLayout's compressed rows (N x sparse24_row_bytes(K), uint8)
// in the float8 sparse tensor cores' form (kernels/cpu/sparse24.h), as two
// int32 tensors: values (16-row tiles x 64-wide blocks x 128 words), metadata
// (tiles x blocks x 32 words).
std::tuple<at::Tensor, at::Tensor> sparse24_float8_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                            int64_t in_features) {
  const char* op = "sparse24_float8_mma_pack";
  const int64_t N = out_features, K = in_features;
  TORCH_CHECK_VALUE(N >= 1 && K >= 4 && K % 4 == 0, op, ": needs out_features >= 1 and in_features a positive ",
                    "multiple of 4, got (", N, ", ", K, ")");
  TORCH_CHECK_VALUE(rows.scalar_type() == at::kByte && rows.dim() == 2 && rows.size(0) == N &&
                        rows.size(1) == k::sparse24_row_bytes(K),
                    op, ": rows must be the (", N, ", ", k::sparse24_row_bytes(K), ") uint8 compressed rows of ",
                    "CutlassSemiSparseLayout, got ", rows.scalar_type(), " of shape ", rows.sizes());
  const auto r = rows.contiguous();
  TORCH_CHECK_VALUE(k::check_2to4_metadata(ptr<uint8_t>(r), N, K) < 0, op,
                    ": rows hold a group whose kept columns are not two increasing indices");
  const int64_t words = k::sparse24_mma_tiles(N) * k::sparse24_float8_mma_blocks(K) * 32;
  auto values = at::empty({4 * words}, r.options().dtype(at::kInt));
  auto meta = at::empty({words}, r.options().dtype(at::kInt));
  k::sparse24_float8_mma_pack(ptr<uint8_t>(r), N, K, reinterpret_cast<uint32_t*>(values.data_ptr()),
                              reinterpret_cast<uint32_t*>(meta.data_ptr()));
  return {values, meta};
}

}  // namespace
}  // namespace ops
}  // namespace torchao_cpp

TORCH_LIBRARY_IMPL(torchao_cpp, CPU, m) {
  using namespace torchao_cpp::ops;
  m.impl("weight_only_linear", &weight_only_linear);
  m.impl("int8_dynamic_linear", &int8_dynamic_linear);
  m.impl("sparse24_cusparselt_compress", [](const at::Tensor& codes) -> at::Tensor {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "sparse24_cusparselt_compress: cuSPARSELt's form exists on CUDA only; got ",
                                "codes on ", codes.device(), " (move them to a CUDA device)");
  });
  m.impl("sparse24_linear", [](const at::Tensor& input, const at::Tensor&, int64_t, int64_t,
                               const c10::optional<at::Tensor>&) -> at::Tensor {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "sparse24_linear: runs on CUDA only (cuSPARSELt); got input on ",
                                input.device());
  });
  m.impl("sparse24_int4_mma_pack", &sparse24_int4_mma_pack);
  m.impl("sparse24_int4_linear", [](const at::Tensor& input, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                    int64_t, const at::Tensor&, const c10::optional<at::Tensor>&) -> at::Tensor {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "sparse24_int4_linear: runs on CUDA only (sparse tensor cores); got input on ",
                                input.device(), " (on the CPU, weight_only_linear reads the compressed rows)");
  });
  m.impl("sparse24_float8_mma_pack", &sparse24_float8_mma_pack);
  m.impl("sparse24_float8_linear",
         [](const at::Tensor& input, const std::string&, const std::string&, const c10::optional<at::Tensor>&,
            const at::Tensor&, const at::Tensor&, int64_t, int64_t, const std::string&, const at::Tensor&,
            const c10::optional<at::Tensor>&, bool) -> at::Tensor {
           TORCH_CHECK_NOT_IMPLEMENTED(false, "sparse24_float8_linear: runs on CUDA only (sparse tensor cores); got "
                                       "input on ", input.device(), " (on the CPU, float8_linear reads the "
                                       "compressed rows)");
         });
  m.impl("float8_linear", &float8_linear);
  m.impl("affine_quantized_linear", &affine_quantized_linear);
  m.impl("activation_quantized_linear", &activation_quantized_linear);
}

TORCH_LIBRARY_IMPL(torchao_cpp, Meta, m) {
  using namespace torchao_cpp::ops;
  m.impl("weight_only_linear", &weight_only_linear_meta);
  m.impl("int8_dynamic_linear", &int8_dynamic_linear_meta);
  m.impl("float8_linear", &float8_linear_meta);
  m.impl("affine_quantized_linear", &affine_quantized_linear_meta);
  m.impl("activation_quantized_linear", &activation_quantized_linear_meta);
}
