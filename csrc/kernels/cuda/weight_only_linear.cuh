// Torch-free CUDA kernels for weight-only linears (the decode path): raw
// device pointers, sizes and a stream; the ATen wrappers check and allocate.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// out[m, n] = sum_k x[m, k] * W[n, k] for 4-bit weights with a float zero
// point (torchao's tinygemm math): W[n, k] = (q[n, k] - 8) * scale[n, g] +
// zero[n, g], g = k / group_size. Codes are packed as the CPU kernels read
// them: row n holds K / 2 bytes, code 2j in the low nibble of byte j.
// Dequantization happens in registers, products accumulate in float32 and
// the output is rounded once to T. T is __nv_bfloat16 or __half; x rows are
// ldx elements apart; K % 32 == 0 and group_size in {32, 64, 128, 256}.
// Returns the launch error, if any (no host synchronisation).
template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
