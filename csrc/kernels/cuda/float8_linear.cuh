// Torch-free CUDA pieces of the float8 x float8 linear (the seed's
// Float8DynamicActivationFloat8WeightConfig / _scaled_mm path):
//   out[m, n] = T(acc[m, n] * xs[m] * ws[n] + bias[n]),
//   acc = float32 sum over k of x8[m, k] * w8[n, k] (float8 values),
// with the activations quantized here (per tensor or per row, or with a
// static scale) by the CPU kernels' per-element functions, so both backends
// give the same codes and scales. The GEMM runs on FP8 tensor cores through
// cuBLASLt; the ATen wrapper (ops/linear_cuda.cpp) falls back to an unscaled
// GEMM plus float8_linear_epilogue where cuBLASLt refuses the scaled form.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "quant_primitives.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// x: M rows of K elements of in_t, ldx elements apart. Writes q (M x K, row
// stride K) and scale: M floats (per_row) or one. static_scale: a device
// float (the calibrated scale) or nullptr for dynamic scales, computed as
// choose_qparams_affine_float8 does (max|x| / fmax in in_t's precision,
// clamped to float32 eps). amax: one device uint32 of scratch, used by the
// dynamic per-tensor form. A NaN in the input gives a NaN scale (no host
// sync to raise).
cudaError_t quantize_activations_float8(const void* x, DType in_t, int64_t ldx, int64_t M, int64_t K, bool per_row,
                                        Float8Format fmt, const float* static_scale, uint8_t* q, float* scale,
                                        uint32_t* amax, cudaStream_t stream);

struct Float8GemmArgs {
  const void* x = nullptr;  // M x K, row stride K
  const void* w = nullptr;  // N x K, row stride K
  cudaDataType_t x_type = CUDA_R_8F_E4M3, w_type = CUDA_R_8F_E4M3;
  int64_t M = 0, N = 0, K = 0;
  // Device scales, or nullptr for none (float8 operands only). rowwise: xs
  // holds M values and ws N (cuBLASLt's outer-vector scaling); else one each.
  const float* xs = nullptr;
  const float* ws = nullptr;
  bool rowwise = false;
  const void* bias = nullptr;  // N values of out_type, or nullptr
  void* out = nullptr;         // M x N, row-major
  cudaDataType_t out_type = CUDA_R_16BF;
  bool fast_accum = false;
};

// out = (x w^T) * xs * ws + bias in one cuBLASLt call. Returns
// CUBLAS_STATUS_NOT_SUPPORTED where cuBLASLt has no algorithm for the form.
cublasStatus_t float8_gemm(cublasLtHandle_t handle, const Float8GemmArgs& g, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream);

// out[m, n] = T(acc[m, n] * xs[m * xs_stride] * ws[n * ws_stride] + bias[n]) for an unscaled float32 GEMM.
cudaError_t float8_linear_epilogue(const float* acc, const float* xs, int64_t xs_stride, const float* ws,
                                   int64_t ws_stride, const void* bias, DType out_t, int64_t M, int64_t N, void* out,
                                   cudaStream_t stream);

// out[i] = the float8 value of code[i], as float32 (exact).
cudaError_t float8_to_float32(const uint8_t* codes, int64_t n, Float8Format fmt, float* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
