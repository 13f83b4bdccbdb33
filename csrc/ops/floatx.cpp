#include "floatx.h"

#include "../kernels/cpu/floatx.h"
#include "common.h"

namespace torchao_cpp {
namespace ops {

namespace {

void check_format(const char* op, int64_t ebits, int64_t mbits) {
  TORCH_CHECK_VALUE(k::floatx_format_valid(ebits, mbits), op, ": (ebits, mbits) = (", ebits, ", ", mbits,
                    ") is not a float-x format: ebits >= 1, mbits >= 0 and 1 + ebits + mbits <= 8");
}

void check_2d_cpu(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.dim() == 2, op, ": ", arg, " must be 2-d (out_features, in_features), got shape ", t.sizes());
  TORCH_CHECK_VALUE(t.device().is_cpu(), op, ": ", arg, " must be a CPU tensor, got device ", t.device());
}

void check_row_scale(const char* op, const at::Tensor& scale, int64_t rows) {
  check_float_dtype(op, "scale", scale.scalar_type());
  TORCH_CHECK_VALUE(scale.device().is_cpu(), op, ": scale must be a CPU tensor, got device ", scale.device());
  TORCH_CHECK_VALUE(scale.numel() == rows, op, ": scale has ", scale.numel(), " elements, expected ", rows,
                    " (one per row)");
}

}  // namespace

at::Tensor choose_qparams_affine_floatx(const at::Tensor& weight, int64_t ebits, int64_t mbits) {
  const char* op = "choose_qparams_affine_floatx";
  check_format(op, ebits, mbits);
  check_2d_cpu(op, "weight", weight);
  check_float_dtype(op, "weight", weight.scalar_type());
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
  check_format(op, ebits, mbits);
  check_2d_cpu(op, "weight", weight);
  check_float_dtype(op, "weight", weight.scalar_type());
  check_row_scale(op, scale, weight.size(0));
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
  check_format(op, ebits, mbits);
  check_2d_cpu(op, "codes", codes);
  TORCH_CHECK_TYPE(codes.scalar_type() == at::kByte, op, ": codes must be uint8, got ", codes.scalar_type());
  check_row_scale(op, scale, codes.size(0));
  check_float_dtype(op, "output_dtype", output_dtype);
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

}  // namespace ops
}  // namespace torchao_cpp
