// Torch-free CUDA kernels of the int8 dynamic-activation x int8-weight
// linear: the activations are quantized per token
// (quant_primitives.cuh: quantize_per_token_int8), the integer products are
// summed exactly in int32 (tensor cores through cuBLASLt for large M, a dp4a
// kernel for small M or shapes cuBLASLt refuses), and one epilogue applies
//   out[m, n] = a_scale[m] * (w_scale[n] * acc[m, n]) + bias[n],
//   acc[m, n] = sum_k (a[m, k] - a_zp[m]) * w[n, k],
// in float32, rounded once to T, without FMA contraction (as the CPU kernel).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>

#ifdef __CUDACC__
#include "tensor_core_pairs.cuh"  // to_f32, from_f32
#endif

namespace torchao_cpp {
namespace kernels {
namespace cuda {

template <class T>  // __nv_bfloat16 or __half
struct Int8LinearArgs {
  const int8_t* a = nullptr;        // M x K activation codes, row stride K
  const float* a_scale = nullptr;   // M
  const float* a_zp = nullptr;      // M, or nullptr (symmetric)
  const int8_t* w = nullptr;        // N x K weight codes, row stride K
  const float* w_scale = nullptr;   // N (per output channel)
  const int32_t* w_sum = nullptr;   // N: sum_k w[n, k]; needed by the GEMM path when a_zp is set
  const T* bias = nullptr;          // N, or nullptr
  int64_t M = 0, N = 0, K = 0;
  T* out = nullptr;                 // M x N, contiguous
};

// The whole linear on Hopper's integer tensor cores (wgmma, sm_90a build):
// 128 x kBN output tiles, the int32 sums scaled in registers by the epilogue
// below and written once as T, so no M x N int32 array goes through memory.
// Needs K % 16 == 0 and 16-byte aligned a and w; cudaErrorNotSupported on
// other GPUs (compute capability other than 9.0). variant: -1 chooses; 0:
// 128 x 256 tiles, 4 stages; 1: 128 x 128, 5 stages; 2: 128 x 128, 3 stages
// (two blocks per SM).
template <class T>
cudaError_t int8_linear_wgmma(const Int8LinearArgs<T>& p, cudaStream_t stream, int variant = -1);

// Whether the op runs int8_linear_wgmma rather than cuBLASLt's GEMM +
// int8_linear_epilogue (H100, 2026-12-07, the epilogue's operands in shared
// memory): from 512 rows, where the kernel alone took 1.17-1.84x less time
// than that route at 512 rows and 1.16-1.33x at 2048 and 4096 on the three
// layer shapes (test_cuda_kernels --bench-int8). Below, cuBLASLt splits K to
// fill the GPU where this kernel has few tiles: 0.55-0.96x with K = 14336,
// and the layer at 16 rows on (4096, 4096) ran slower with it (20.2 against
// 16.6 us, CUDA graphs).
inline bool int8_wgmma_preferred(int64_t M) { return M >= 512; }

// The whole linear on CUDA cores (dp4a), any shape; reads the weight once per
// 8 activation rows: the decode path.
template <class T>
cudaError_t int8_linear_dp4a(const Int8LinearArgs<T>& p, cudaStream_t stream);

// c (M x N int32, row-major) = a (M x K) * w (N x K)^T on integer tensor
// cores. Returns CUBLAS_STATUS_NOT_SUPPORTED where cuBLASLt has no algorithm
// for the shape (the caller falls back to int8_linear_dp4a).
cublasStatus_t int8_gemm_s32(cublasLtHandle_t handle, const int8_t* a, const int8_t* w, int32_t* c, int64_t M,
                             int64_t N, int64_t K, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// The epilogue over the GEMM's int32 sums for output columns n0 .. n0 + cols
// (acc: M x cols, row-major; p.a and p.w unused).
template <class T>
cudaError_t int8_linear_epilogue(const Int8LinearArgs<T>& p, const int32_t* acc, int64_t n0, int64_t cols,
                                 cudaStream_t stream);

// sums[n] = sum_k w[n, k] (for asymmetric activations on the GEMM path).
cudaError_t int8_row_sums(const int8_t* w, int64_t N, int64_t K, int32_t* sums, cudaStream_t stream);

#ifdef __CUDACC__
// One output element from its exact integer sum and its row's scale as; _rn
// intrinsics keep the CPU kernel's rounding order (no contraction into an
// FMA). Shared by every int8 linear kernel so they agree to the bit.
template <class T>
__device__ __forceinline__ T int8_epilogue(float as, float ws, bool has_bias, float bias, int32_t acc) {
  float v = __fmul_rn(as, __fmul_rn(ws, float(acc)));
  if (has_bias) v = __fadd_rn(v, bias);
  return from_f32<T>(v);
}
template <class T>
__device__ __forceinline__ T int8_epilogue(const Int8LinearArgs<T>& p, float as, int64_t n, int32_t acc) {
  return int8_epilogue<T>(as, p.w_scale[n], p.bias != nullptr, p.bias ? to_f32(p.bias[n]) : 0.0f, acc);
}
#endif

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
