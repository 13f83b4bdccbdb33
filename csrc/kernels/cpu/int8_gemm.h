// Int8 x int8 matrix product for dynamic-activation linears on VNNI
// (AVX-512 vpdpbusd): weights pre-packed once into 16-row x 4-byte tiles with
// their scales, activations shifted to uint8 (+128) with the shift compensated
// through the weights' per-group row sums. Per-channel or per-group weight
// scales; weights without zero points. Torch-free; the portable path gives
// bit-identical results.
#pragma once

#include <cstdint>
#include <vector>

namespace torchao_cpp {
namespace kernels {

struct PackedInt8Weights {
  int64_t N = 0, K = 0;          // logical shape of W (N x K)
  int64_t Kp = 0;                // K rounded up to a multiple of 4
  int64_t group_size = 0;        // K for per-channel scales
  int64_t groups = 0;            // K / group_size
  int64_t blocks = 0;            // ceil(N / 16)
  std::vector<int8_t> data;      // [blocks][Kp/4][16][4], zero padded
  std::vector<float> rowsum;     // [blocks][groups][16]: sum over the group of W[n, k]
  std::vector<float> scale;      // [blocks][groups][16]: weight scales
};

// Packs a row-major int8 weight (N x K) with its scales (N x K/group_size).
// group_size must divide K and, unless it equals K, be a multiple of 4.
PackedInt8Weights pack_int8_weights(const int8_t* w, int64_t N, int64_t K, int64_t group_size, const float* scale);

// True when the CPU has AVX-512 VNNI (the packed path's fast kernel).
bool int8_gemm_has_vnni();

// out[m, n] = a_scale[m] * sum_g scale[n, g] * sum_{k in g} (a[m, k] - a_zp[m]) * W[n, k] + bias[n]
// for int8 activations a (M x K, row-major); bias may be null.
void int8_gemm_dequant(const int8_t* a, const float* a_scale, const float* a_zp, int64_t M,
                       const PackedInt8Weights& w, const float* bias, float* out, int nthreads);

}  // namespace kernels
}  // namespace torchao_cpp
