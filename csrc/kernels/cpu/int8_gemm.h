// Int8 x int8 matrix product for dynamic-activation linears on VNNI
// (AVX-512 vpdpbusd): weights pre-packed once into 16-row x 4-byte tiles with
// their scales, activations shifted to uint8 (+128) with the shift compensated
// through the weights' per-group row sums. Per-channel or per-group weight
// scales; weights without zero points. Torch-free; the portable path gives
// bit-identical results.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "quant_primitives.h"
#include "simd.h"

namespace torchao_cpp {
namespace kernels {

struct PackedInt8Weights {
  int64_t N = 0, K = 0;          // logical shape of W (N x K)
  int64_t Kp = 0;                // K rounded up to a multiple of 4
  int64_t group_size = 0;        // K for per-channel scales
  int64_t groups = 0;            // K / group_size
  int64_t blocks = 0;            // ceil(N / 16)
  // Cache-line aligned: the kernel reads them 64 bytes at a time, and from
  // malloc's 16-byte alignment every load split across two lines (Zen 4,
  // one thread, 512 x 2048 in L2: 12.3 us per decode call against 13.0).
  AlignedVector<int8_t> data;    // [blocks][Kp/4][16][4], zero padded
  AlignedVector<float> rowsum;   // [blocks][groups][16]: sum over the group of W[n, k]
  AlignedVector<float> scale;    // [blocks][groups][16]: weight scales
  AlignedVector<float> zsum;     // grouped only, [blocks][16]: sum_g scale * rowsum (double sum, rounded once)
};

// Packs a row-major int8 weight (N x K) with its scales (N x K/group_size).
// group_size must divide K and, unless it equals K, be a multiple of 4.
PackedInt8Weights pack_int8_weights(const int8_t* w, int64_t N, int64_t K, int64_t group_size, const float* scale);

// True when the CPU has AVX-512 VNNI (the packed path's fast kernel).
bool int8_gemm_has_vnni();
// True when the CPU has AMX int8 tiles the OS lets this process use: from
// kAmxMinRows activation rows the GEMM then runs on tdpbusd (16 x 16 x 64
// multiply-adds per instruction), with the same integer sums and the same
// float epilogue as the VNNI kernel, so results are bit-identical.
bool int8_gemm_has_amx();
constexpr int64_t kAmxMinRows = 16;
// Turns the AMX kernel off (the VNNI kernel runs instead) or back on, for
// tests and benchmarks that compare the two in one process; false when asked
// to turn it on on a CPU without it.
bool set_int8_gemm_amx(bool enabled);

// out[m, n] = a_scale[m] * sum_g scale[n, g] * sum_{k in g} (a[m, k] - a_zp[m]) * W[n, k] + bias[n]
// for int8 activations a (M x K, row-major); bias may be null.
void int8_gemm_dequant(const int8_t* a, const float* a_scale, const float* a_zp, int64_t M,
                       const PackedInt8Weights& w, const float* bias, float* out, int nthreads);

// The GEMM on activations already shifted to uint8 (a + 128, rows of w.Kp
// bytes padded with 128), as quantize_activations_u8 writes them.
void int8_gemm_dequant_u8(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M,
                          const PackedInt8Weights& w, const float* bias, float* out, int nthreads);

// torchao's per-token activation quantizers.
enum class ActQuant {
  Asymmetric,             // int8 [-128, 127], float32 scale, int8 zero point, eps = float32 eps
  SymmetricReducedRange,  // int8 [-127, 127], scale in the input dtype (float32 for float16), eps = 1e-5
  Int4Symmetric,          // int4 [-8, 7] in int8, float32 scale, eps = float32 eps (_int4_symm_cutlass_quant)
};

// Fused activation quantizer of the int8 GEMM: row m of x (M x K) gets the
// reference op's scale and zero point and codes q, bit for bit, stored as
// q + 128 in u (M x Kp, padded with 128). One pass for min/max, one for the
// codes, rows in parallel. Returns -1, or the first row holding NaN or Inf.
template <class T>
int64_t quantize_activations_u8(const T* x, int64_t M, int64_t K, int64_t Kp, ActQuant mode, uint8_t* u,
                                float* scale, float* zp, int nthreads) {
  QParamsSpec spec;
  spec.domain = ZeroPointDomain::Int;
  if (mode == ActQuant::Asymmetric) {
    spec.mapping = MappingType::Asymmetric, spec.quant_min = -128, spec.quant_max = 127;
  } else if (mode == ActQuant::Int4Symmetric) {
    spec.mapping = MappingType::Symmetric, spec.quant_min = -8, spec.quant_max = 7;
  } else {
    spec.mapping = MappingType::Symmetric, spec.quant_min = -127, spec.quant_max = 127, spec.eps = 1e-5f;
  }
  // The scale's dtype, which sets the precision of its reciprocal and of x * recip.
  constexpr bool kBf16 = std::is_same_v<T, bf16>;
  const bool scale_in_t = mode == ActQuant::SymmetricReducedRange && kBf16;
  int64_t bad = -1;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> xf(static_cast<size_t>(std::is_same_v<T, float> ? 0 : K));
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const float* row = nullptr;
      if constexpr (std::is_same_v<T, float>) {
        row = x + m * K;
      } else {
        to_f32(x + m * K, K, xf.data());
        row = xf.data();
      }
      uint8_t* ur = u + m * Kp;
      std::fill(ur + K, ur + Kp, uint8_t(128));
      float mn, mx;
      if (!minmax_f32(row, K, &mn, &mx)) {
#pragma omp critical
        bad = bad < 0 ? m : std::min(bad, m);
        std::fill(ur, ur + K, uint8_t(128));
        scale[m] = 1.0f, zp[m] = 0.0f;
        continue;
      }
      qparams_from_minmax<T, float, float>(mn, mx, spec, scale + m, zp + m);
      const float qmin = float(spec.quant_min), qmax = float(spec.quant_max);
      if (scale_in_t) {
        // bfloat16 arithmetic: torchao rounds x * recip to bfloat16 before rounding to an integer.
        const float recip = round_to<bf16>(1.0f / scale[m]);
        for (int64_t k = 0; k < K; ++k)
          ur[k] = uint8_t(int(quantize_int_code<bf16>(row[k], recip, zp[m], qmin, qmax)) + 128);
      } else {
        quantize_u8_shifted(row, K, 1.0f / scale[m], zp[m], qmin, qmax, ur);
      }
    }
  }
  return bad;
}

}  // namespace kernels
}  // namespace torchao_cpp
