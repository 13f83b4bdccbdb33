#include "floatx.h"

#include <torch/library.h>

#include "../kernels/cpu/floatx.h"
#include "common.h"

namespace torchao_cpp {
namespace ops {

namespace {

void check_format(const char* op, int64_t ebits, int64_t mbits) {
  TORCH_CHECK_VALUE(k::floatx_format_valid(ebits, mbits), op, ": (ebits, mbits) = (", ebits, ", ", mbits,
                    ") is not a float-x format: ebits >= 1, mbits >= 0 and 1 + ebits + mbits <= 8");
}

void check_2d(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.dim() == 2, op, ": ", arg, " must be 2-d (out_features, in_features), got shape ", t.sizes());
}

void check_row_scale(const char* op, const at::Tensor& scale, const at::Tensor& input) {
  check_float_dtype(op, "scale", scale.scalar_type());
  check_on(op, scale, "scale", input.device());
  TORCH_CHECK_VALUE(scale.numel() == input.size(0), op, ": scale has ", scale.numel(), " elements, expected ",
                    input.size(0), " (one per row)");
}

// The checks of each op (its CPU and Meta impls).
void check_choose(const char* op, const at::Tensor& weight, int64_t ebits, int64_t mbits) {
  check_format(op, ebits, mbits);
  check_2d(op, "input", weight);
  check_float_dtype(op, "input", weight.scalar_type());
}

void check_quantize(const char* op, const at::Tensor& weight, const at::Tensor& scale, int64_t ebits, int64_t mbits) {
  check_choose(op, weight, ebits, mbits);
  check_row_scale(op, scale, weight);
}

void check_dequantize(const char* op, const at::Tensor& codes, const at::Tensor& scale, int64_t ebits, int64_t mbits,
                      at::ScalarType output_dtype) {
  check_format(op, ebits, mbits);
  check_2d(op, "input", codes);
  TORCH_CHECK_TYPE(codes.scalar_type() == at::kByte, op, ": input (codes) must be uint8, got ", codes.scalar_type());
  check_row_scale(op, scale, codes);
  check_float_dtype(op, "output_dtype", output_dtype);
}

void check_cpu(const char* op, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), op, ": input must be a CPU tensor, got device ", t.device());
}

}  // namespace

at::Tensor choose_qparams_affine_floatx(const at::Tensor& weight, int64_t ebits, int64_t mbits) {
  const char* op = "choose_qparams_affine_floatx";
  check_choose(op, weight, ebits, mbits);
  check_cpu(op, weight);
  const auto w = weight.contiguous();
  auto scale = at::empty({w.size(0)}, w.options());
  int64_t bad = -1;
  dispatch_float(w.scalar_type(), [&](auto t) {
    using T = decltype(t);
    bad = k::floatx_choose_qparams_rows<T, T>(ptr<T>(w), w.size(0), w.size(1), int(ebits), int(mbits), ptr<T>(scale));
  });
  TORCH_CHECK_VALUE(bad < 0, op, ": row ", bad, " of the weight holds NaN or Inf; its scale is undefined");
  return scale;
}

at::Tensor quantize_affine_floatx(const at::Tensor& weight, const at::Tensor& scale, int64_t ebits, int64_t mbits) {
  const char* op = "quantize_affine_floatx";
  check_quantize(op, weight, scale, ebits, mbits);
  check_cpu(op, weight);
  const auto w = weight.contiguous();
  const auto s = scale.contiguous();
  auto out = at::empty(w.sizes(), w.options().dtype(at::kByte));
  dispatch_float(w.scalar_type(), [&](auto t) {
    using T = decltype(t);
    dispatch_float(s.scalar_type(), [&](auto ts) {
      using TS = decltype(ts);
      k::floatx_quantize_rows<T, TS>(ptr<T>(w), ptr<TS>(s), w.size(0), w.size(1), int(ebits), int(mbits),
                                     ptr<uint8_t>(out));
    });
  });
  return out;
}

at::Tensor dequantize_affine_floatx(const at::Tensor& codes, const at::Tensor& scale, int64_t ebits, int64_t mbits,
                                    at::ScalarType output_dtype) {
  const char* op = "dequantize_affine_floatx";
  check_dequantize(op, codes, scale, ebits, mbits, output_dtype);
  check_cpu(op, codes);
  const auto c = codes.contiguous();
  const auto s = scale.contiguous();
  auto out = at::empty(c.sizes(), c.options().dtype(output_dtype));
  dispatch_float(s.scalar_type(), [&](auto ts) {
    using TS = decltype(ts);
    dispatch_float(output_dtype, [&](auto to) {
      using TO = decltype(to);
      k::floatx_dequantize_rows<TS, TO>(ptr<uint8_t>(c), ptr<TS>(s), c.size(0), c.size(1), int(ebits), int(mbits),
                                        ptr<TO>(out));
    });
  });
  return out;
}

namespace {

at::Tensor dequantize_affine_floatx_op(const at::Tensor& codes, const at::Tensor& scale, int64_t ebits, int64_t mbits,
                                       c10::optional<at::ScalarType> output_dtype) {
  return dequantize_affine_floatx(codes, scale, ebits, mbits, output_dtype.value_or(at::kFloat));
}

// Meta: the CPU impls' checks, then the result's shape and dtype.
at::Tensor choose_qparams_affine_floatx_meta(const at::Tensor& input, int64_t ebits, int64_t mbits) {
  check_choose("choose_qparams_affine_floatx", input, ebits, mbits);
  return at::empty({input.size(0)}, input.options());
}

at::Tensor quantize_affine_floatx_meta(const at::Tensor& input, const at::Tensor& scale, int64_t ebits, int64_t mbits) {
  check_quantize("quantize_affine_floatx", input, scale, ebits, mbits);
  return at::empty(input.sizes(), input.options().dtype(at::kByte));
}

at::Tensor dequantize_affine_floatx_meta(const at::Tensor& codes, const at::Tensor& scale, int64_t ebits,
                                         int64_t mbits, c10::optional<at::ScalarType> output_dtype) {
  const auto out = output_dtype.value_or(at::kFloat);
  check_dequantize("dequantize_affine_floatx", codes, scale, ebits, mbits, out);
  return at::empty(codes.sizes(), codes.options().dtype(out));
}

}  // namespace

}  // namespace ops
}  // namespace torchao_cpp

TORCH_LIBRARY_IMPL(torchao_cpp, CPU, m) {
  using namespace torchao_cpp::ops;
  m.impl("choose_qparams_affine_floatx", &choose_qparams_affine_floatx);
  m.impl("quantize_affine_floatx", &quantize_affine_floatx);
  m.impl("dequantize_affine_floatx", &dequantize_affine_floatx_op);
}

TORCH_LIBRARY_IMPL(torchao_cpp, Meta, m) {
  using namespace torchao_cpp::ops;
  m.impl("choose_qparams_affine_floatx", &choose_qparams_affine_floatx_meta);
  m.impl("quantize_affine_floatx", &quantize_affine_floatx_meta);
  m.impl("dequantize_affine_floatx", &dequantize_affine_floatx_meta);
}
