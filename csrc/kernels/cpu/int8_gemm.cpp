#include "int8_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <stdexcept>

#include "cpu_features.h"
#include "simd.h"

namespace torchao_cpp {
namespace kernels {

namespace {
constexpr int64_t kTileN = 16;  // output columns per tile (one zmm of int32)
constexpr int64_t kTileM = 4;   // activation rows per register tile
}  // namespace

PackedInt8Weights pack_int8_weights(const int8_t* w, int64_t N, int64_t K, int64_t group_size, const float* scale) {
  if (group_size < 1 || K % group_size != 0 || (group_size != K && group_size % 4 != 0))
    throw std::invalid_argument("pack_int8_weights: group_size must divide K and be a multiple of 4 (or equal K)");
  PackedInt8Weights p;
  p.N = N;
  p.K = K;
  p.Kp = (K + 3) / 4 * 4;
  p.group_size = group_size;
  p.groups = K / group_size;
  p.blocks = (N + kTileN - 1) / kTileN;
  const int64_t Kq = p.Kp / 4;
  p.data.assign(static_cast<size_t>(p.blocks * Kq * kTileN * 4), 0);
  p.rowsum.assign(static_cast<size_t>(p.blocks * p.groups * kTileN), 0.0f);
  p.scale.assign(static_cast<size_t>(p.blocks * p.groups * kTileN), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t b = n / kTileN, r = n % kTileN;
    for (int64_t g = 0; g < p.groups; ++g) {
      int32_t s = 0;
      for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) {
        p.data[static_cast<size_t>(((b * Kq + k / 4) * kTileN + r) * 4 + k % 4)] = w[n * K + k];
        s += w[n * K + k];
      }
      p.rowsum[static_cast<size_t>((b * p.groups + g) * kTileN + r)] = float(s);
      p.scale[static_cast<size_t>((b * p.groups + g) * kTileN + r)] = scale[n * p.groups + g];
    }
  }
  return p;
}

bool int8_gemm_has_vnni() {
  const auto& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vnni;
}

namespace {

// Activations as uint8 (a + 128), each row padded to Kp with the code of 0.
std::vector<uint8_t> shift_activations(const int8_t* a, int64_t M, int64_t K, int64_t Kp) {
  std::vector<uint8_t> u(static_cast<size_t>(M * Kp), 128);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) u[static_cast<size_t>(m * Kp + k)] = uint8_t(int(a[m * K + k]) + 128);
  return u;
}

// k-quads of one group (all of them for per-channel weights, whose K may not be a multiple of 4).
inline int64_t quads_per_group(const PackedInt8Weights& w) { return w.groups == 1 ? w.Kp / 4 : w.group_size / 4; }

// The exact arithmetic both paths share, per output element: with
// C = sum_k (a+128) W over a group, D = C - (128 + a_zp) * rowsum, and the
// output a_scale * sum_g scale * D + bias. No FMA contraction (see CMake).
void gemm_portable(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                   const float* bias, float* out, int nthreads) {
  const int64_t Kq = w.Kp / 4, qpg = quads_per_group(w);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < w.blocks; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t r = 0; r < kTileN && b * kTileN + r < w.N; ++r) {
        float acc = 0.0f;
        for (int64_t g = 0; g < w.groups; ++g) {
          int32_t c = 0;
          for (int64_t q = g * qpg; q < (g + 1) * qpg; ++q)
            for (int t = 0; t < 4; ++t)
              c += int32_t(u[m * w.Kp + 4 * q + t]) * w.data[static_cast<size_t>(((b * Kq + q) * kTileN + r) * 4 + t)];
          const size_t gi = static_cast<size_t>((b * w.groups + g) * kTileN + r);
          const float d = float(c) - (128.0f + a_zp[m]) * w.rowsum[gi];
          acc = acc + d * w.scale[gi];
        }
        const int64_t n = b * kTileN + r;
        out[m * w.N + n] = a_scale[m] * acc + (bias ? bias[n] : 0.0f);
      }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

// R activation rows x NB 16-column blocks; float results into c.
template <int R, int NB>
VNNI void tile_vnni(const uint8_t* u, int64_t m0, int64_t b0, const PackedInt8Weights& w, const float* a_zp, float* c) {
  const int64_t Kq = w.Kp / 4, qpg = quads_per_group(w);
  __m512 accf[R][NB];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NB; ++j) accf[i][j] = _mm512_setzero_ps();
  const int8_t* wb[NB];
  for (int j = 0; j < NB; ++j) wb[j] = w.data.data() + (b0 + j) * Kq * kTileN * 4;
  __m512 shift[R];
  for (int i = 0; i < R; ++i) shift[i] = _mm512_set1_ps(128.0f + a_zp[m0 + i]);
  for (int64_t g = 0; g < w.groups; ++g) {
    __m512i acc[R][NB];
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_setzero_si512();
    for (int64_t q = g * qpg; q < (g + 1) * qpg; ++q) {
      __m512i wv[NB];
      for (int j = 0; j < NB; ++j) wv[j] = _mm512_loadu_si512(wb[j] + q * kTileN * 4);
      for (int i = 0; i < R; ++i) {
        int32_t quad;
        __builtin_memcpy(&quad, u + (m0 + i) * w.Kp + 4 * q, 4);
        const __m512i av = _mm512_set1_epi32(quad);
        for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, wv[j]);
      }
    }
    for (int j = 0; j < NB; ++j) {
      const size_t gi = static_cast<size_t>(((b0 + j) * w.groups + g) * kTileN);
      const __m512 rs = _mm512_loadu_ps(w.rowsum.data() + gi), sc = _mm512_loadu_ps(w.scale.data() + gi);
      for (int i = 0; i < R; ++i) {
        const __m512 d = _mm512_sub_ps(_mm512_cvtepi32_ps(acc[i][j]), _mm512_mul_ps(shift[i], rs));
        accf[i][j] = _mm512_add_ps(accf[i][j], _mm512_mul_ps(d, sc));
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NB; ++j) _mm512_storeu_ps(c + i * NB * kTileN + j * kTileN, accf[i][j]);
}

template <int NB>
VNNI void rows_vnni(const uint8_t* u, int64_t m0, int64_t rows, int64_t b0, const PackedInt8Weights& w,
                    const float* a_zp, float* c) {
  switch (rows) {
    case 4:
      return tile_vnni<4, NB>(u, m0, b0, w, a_zp, c);
    case 3:
      return tile_vnni<3, NB>(u, m0, b0, w, a_zp, c);
    case 2:
      return tile_vnni<2, NB>(u, m0, b0, w, a_zp, c);
    default:
      return tile_vnni<1, NB>(u, m0, b0, w, a_zp, c);
  }
}

VNNI void gemm_vnni(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                    const float* bias, float* out, int nthreads) {
  const int64_t pairs = (w.blocks + 1) / 2;  // two 16-column blocks per task
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t b0 = 2 * p;
    const int nb = b0 + 1 < w.blocks ? 2 : 1;
    float c[kTileM * 2 * kTileN];
    for (int64_t m0 = 0; m0 < M; m0 += kTileM) {
      const int64_t rows = std::min<int64_t>(kTileM, M - m0);
      if (nb == 2)
        rows_vnni<2>(u, m0, rows, b0, w, a_zp, c);
      else
        rows_vnni<1>(u, m0, rows, b0, w, a_zp, c);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t col = 0; col < nb * kTileN; ++col) {
          const int64_t n = b0 * kTileN + col;
          if (n < w.N) out[(m0 + i) * w.N + n] = a_scale[m0 + i] * c[i * nb * kTileN + col] + (bias ? bias[n] : 0.0f);
        }
    }
  }
}
#endif

}  // namespace

void int8_gemm_dequant_u8(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M,
                          const PackedInt8Weights& w, const float* bias, float* out, int nthreads) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // set_isa() below AVX-512 (tests) selects the portable path too.
  if (int8_gemm_has_vnni() && active_isa() == Isa::Avx512)
    return gemm_vnni(u, M, w, a_scale, a_zp, bias, out, nthreads);
#endif
  gemm_portable(u, M, w, a_scale, a_zp, bias, out, nthreads);
}

void int8_gemm_dequant(const int8_t* a, const float* a_scale, const float* a_zp, int64_t M, const PackedInt8Weights& w,
                       const float* bias, float* out, int nthreads) {
  const auto u = shift_activations(a, M, w.K, w.Kp);
  int8_gemm_dequant_u8(u.data(), a_scale, a_zp, M, w, bias, out, nthreads);
}

}  // namespace kernels
}  // namespace torchao_cpp
