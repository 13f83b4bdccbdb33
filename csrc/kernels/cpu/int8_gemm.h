// Int8 x int8 matrix product for dynamic-activation linears on VNNI
// (AVX-512 vpdpbusd): weights pre-packed once into 16-row x 4-byte tiles,
// activations shifted to uint8 (+128) with the shift compensated through the
// weights' row sums. Torch-free; a portable path gives identical results.
#pragma once

#include <cstdint>
#include <vector>

namespace torchao_cpp {
namespace kernels {

struct PackedInt8Weights {
  int64_t N = 0, K = 0;         // logical shape of W (N x K)
  int64_t Kp = 0;               // K rounded up to a multiple of 4
  int64_t blocks = 0;           // ceil(N / 16)
  std::vector<int8_t> data;     // [blocks][Kp/4][16][4], zero padded
  std::vector<int32_t> rowsum;  // sum_k W[n, k]
};

// Packs a row-major int8 weight (N x K).
PackedInt8Weights pack_int8_weights(const int8_t* w, int64_t N, int64_t K);

// True when the CPU has AVX-512 VNNI (the packed path's fast kernel).
bool int8_gemm_has_vnni();

// out[m, n] = a_scale[m] * w_scale[n] * sum_k (a[m, k] - a_zp[m]) * W[n, k] + bias[n]
// for int8 activations a (M x K, row-major); bias may be null.
void int8_gemm_dequant(const int8_t* a, const float* a_scale, const float* a_zp, int64_t M, const PackedInt8Weights& w,
                       const float* w_scale, const float* bias, float* out, int nthreads);

}  // namespace kernels
}  // namespace torchao_cpp
