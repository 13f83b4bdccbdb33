// ATen wrappers of torchao's float-x primitives (choose_qparams_affine_floatx, quantize_affine_floatx,
// dequantize_affine_floatx): 2-d weights, one scale per row; codes are unpacked uint8 (torchao's
// floatx_unpacked). The kernels are in kernels/cpu/floatx.h.
#pragma once

#include <ATen/ATen.h>

namespace torchao_cpp {
namespace ops {

// Scale per row in the weight's dtype; a row holding NaN or Inf raises ValueError naming it.
at::Tensor choose_qparams_affine_floatx(const at::Tensor& weight, int64_t ebits, int64_t mbits);
// uint8 codes of float32(weight) / float32(scale[row]).
at::Tensor quantize_affine_floatx(const at::Tensor& weight, const at::Tensor& scale, int64_t ebits, int64_t mbits);
// value(code) * float32(scale[row]) in output_dtype.
at::Tensor dequantize_affine_floatx(const at::Tensor& codes, const at::Tensor& scale, int64_t ebits, int64_t mbits,
                                    at::ScalarType output_dtype);

}  // namespace ops
}  // namespace torchao_cpp
