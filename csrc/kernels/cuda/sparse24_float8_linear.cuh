// Torch-free CUDA kernels for 2:4 sparse float8 weights
// (CutlassSemiSparseLayout, Float8DynamicActivationFloat8SemiSparseWeightConfig)
// on the sparse tensor cores (mma.sp m16n8k64, float8 x float8, float32 sums;
// compute capability 8.9 and newer): the weight in the form
// sparse24_float8_mma_pack builds (kernels/cpu/sparse24.h: kept bytes and
// metadata as the instruction's operands, 5 bits per weight), the activations
// as float8_linear quantizes them (float8_linear.cuh), and float8_linear's
// epilogue: out[m, n] = T(acc * xs[m] * ws[n] + bias[n]).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "quant_primitives.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// Activation rows the GEMV takes; above, sparse24_float8_expand and float8_linear's GEMM.
constexpr int64_t kSparse24Float8GemvRows = 16;

struct Sparse24Float8Args {
  const uint8_t* x = nullptr;  // M x K float8 codes, row stride K (4-byte aligned)
  Float8Format x_fmt = Float8Format::E4M3FN, w_fmt = Float8Format::E4M3FN;
  const uint32_t* values = nullptr;  // sparse24_float8_mma_pack's values (16-byte aligned)
  const uint32_t* meta = nullptr;    // and metadata (4-byte aligned)
  const float* xs = nullptr;         // activation scales, xs[m * xs_stride]
  int64_t xs_stride = 0;
  const float* ws = nullptr;  // weight scales, ws[n * ws_stride]
  int64_t ws_stride = 0;
  const void* bias = nullptr;  // N values of out_t, or nullptr
  DType out_t = DType::BFloat16;
  int64_t M = 0, N = 0, K = 0;
  void* out = nullptr;  // M x N of out_t, contiguous
  int tiles_per_block = 0;  // 16-row tiles a block: 1 or 2, 0 for the default (benchmarks try both)
};

// Whether the current device has the float8 mma.sp (compute capability >= 8.9).
bool sparse24_float8_mma_supported();

// out = (x W^T) * xs * ws + bias for M <= kSparse24Float8GemvRows. Returns
// cudaErrorInvalidValue for K not a multiple of 4, M outside 1..16, N < 1,
// a null operand or an out_t other than float32 / bfloat16 / float16;
// cudaErrorMisalignedAddress for misaligned operands; cudaErrorNotSupported
// below compute capability 8.9; else the launch error, if any. Never
// synchronises.
cudaError_t sparse24_float8_linear(const Sparse24Float8Args& args, cudaStream_t stream);

// The dense codes (N x K bytes, row-major, zero bytes where pruned) of the
// form, for the many-row path's dense float8 GEMM.
cudaError_t sparse24_float8_expand(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K,
                                   uint8_t* codes, cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
