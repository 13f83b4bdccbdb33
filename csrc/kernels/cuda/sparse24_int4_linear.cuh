// Torch-free CUDA kernels for 2:4 sparse signed 4-bit weights
// (MarlinSparseLayout) on the sparse tensor cores (mma.sp m16n8k32): the
// weight in the form sparse24_int4_mma_pack builds (kernels/cpu/sparse24.h:
// kept codes and metadata arranged as the instruction's operands, 3 bits per
// weight), W[n, k] = code * scale[n, k / group_size] rounded once to T, as the
// dense weight-only kernels round it; float32 sums, the output rounded once to T.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// Activation rows the GEMV takes; above, sparse24_int4_dequantize and a GEMM.
constexpr int64_t kSparse24Int4GemvRows = 16;

template <class T>  // __nv_bfloat16 or __half
struct Sparse24Int4Args {
  const T* x = nullptr;  // M rows of K activations, ldx elements apart (even, 4-byte aligned)
  int64_t ldx = 0;
  const uint32_t* values = nullptr;  // sparse24_int4_mma_pack's values (16-byte aligned)
  const uint32_t* meta = nullptr;    // and metadata (16-byte aligned)
  const T* scale = nullptr;          // (N, K / group_size)
  const T* bias = nullptr;           // N, or nullptr
  int64_t M = 0, N = 0, K = 0, group_size = 0;
  T* out = nullptr;  // M x N, contiguous
};

// out = x W^T (+ bias) for M <= kSparse24Int4GemvRows. Returns
// cudaErrorInvalidValue for K or group_size not multiples of 128, M outside
// 1..16, or an odd ldx; cudaErrorMisalignedAddress for misaligned operands;
// else the launch error, if any. Never synchronises.
template <class T>
cudaError_t sparse24_int4_linear(const Sparse24Int4Args<T>& args, cudaStream_t stream);

// W (N x K, row-major, zeros where pruned) rounded once to T, from the same
// arguments (x, M and out unused): the large-M path's dense GEMM operand.
template <class T>
cudaError_t sparse24_int4_dequantize(const Sparse24Int4Args<T>& args, T* w, cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
