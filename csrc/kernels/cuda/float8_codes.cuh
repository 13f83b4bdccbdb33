// Device-only: float8 codes of scaled values, as the CPU kernels'
// quantize_float8_value(x, r) gives them, two at a time.
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../cpu/quant_primitives.h"

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// The codes of quantize_float8_value(a, r) and (b, r), a's in the low byte.
// From compute capability 8.9 on: one hardware conversion of both products
// (round to nearest even as float_to_float8; .satfinite turns values past
// the largest finite one, infinities included, into it: the CPU's clamp; a
// NaN product, which the GPU makes positive, into 0x7f as the CPU code does).
// The software route costs about 40 instructions a value: it bounded the
// per-row activation quantizer at M = 2048, K = 14336 to 91 us on an H100.
// test_cuda_kernels checks both against each other on every float32 value.
template <Float8Format F>
__device__ __forceinline__ uint32_t float8_code_pair(float a, float b, float r) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  return __nv_cvt_float2_to_fp8x2(make_float2(__fmul_rn(a, r), __fmul_rn(b, r)), __NV_SATFINITE,
                                  F == Float8Format::E4M3FN ? __NV_E4M3 : __NV_E5M2);
#else
  return uint32_t(quantize_float8_value<F, float>(a, r)) | uint32_t(quantize_float8_value<F, float>(b, r)) << 8;
#endif
}

template <Float8Format F>
__device__ __forceinline__ uint8_t float8_code(float a, float r) {
  return uint8_t(float8_code_pair<F>(a, a, r));
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
