#include "int8_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cpu_features.h"
#include "simd.h"

namespace torchao_cpp {
namespace kernels {

namespace {
constexpr int64_t kTileN = 16;  // output columns per tile (one zmm of int32)
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
  if (p.groups > 1) p.zsum.assign(static_cast<size_t>(p.blocks * kTileN), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t b = n / kTileN, r = n % kTileN;
    double zsum = 0.0;
    for (int64_t g = 0; g < p.groups; ++g) {
      int32_t s = 0;
      for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) {
        p.data[static_cast<size_t>(((b * Kq + k / 4) * kTileN + r) * 4 + k % 4)] = w[n * K + k];
        s += w[n * K + k];
      }
      p.rowsum[static_cast<size_t>((b * p.groups + g) * kTileN + r)] = float(s);
      p.scale[static_cast<size_t>((b * p.groups + g) * kTileN + r)] = scale[n * p.groups + g];
      zsum += double(scale[n * p.groups + g]) * s;
    }
    if (p.groups > 1) p.zsum[static_cast<size_t>(b * kTileN + r)] = float(zsum);
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

// The exact arithmetic both paths share, per output element, with
// C_g = sum_{k in g} (a+128) W (exact in int32) and s = 128 + a_zp:
//  per channel: a_scale * (scale * (C - s * rowsum)) + bias, where
//    C - s * rowsum is exact in float (|.| < 2^24);
//  per group:   a_scale * (sum_g fma(C_g, scale_g, .) - s * zsum) + bias,
//    the shift taken out of the group loop (zsum = sum_g scale_g * rowsum_g)
//    so that each group costs one conversion and one FMA.
// No FMA contraction elsewhere (see CMake).
void gemm_portable(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                   const float* bias, float* out, int nthreads) {
  const int64_t Kq = w.Kp / 4, qpg = quads_per_group(w);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < w.blocks; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t r = 0; r < kTileN && b * kTileN + r < w.N; ++r) {
        const float shift = 128.0f + a_zp[m];
        float acc = 0.0f;
        for (int64_t g = 0; g < w.groups; ++g) {
          int32_t c = 0;
          for (int64_t q = g * qpg; q < (g + 1) * qpg; ++q)
            for (int t = 0; t < 4; ++t)
              c += int32_t(u[m * w.Kp + 4 * q + t]) * w.data[static_cast<size_t>(((b * Kq + q) * kTileN + r) * 4 + t)];
          const size_t gi = static_cast<size_t>((b * w.groups + g) * kTileN + r);
          if (w.groups == 1)
            acc = (float(c) - shift * w.rowsum[gi]) * w.scale[gi];
          else
            acc = std::fma(float(c), w.scale[gi], acc);
        }
        if (w.groups > 1) acc = acc - shift * w.zsum[static_cast<size_t>(b * kTileN + r)];
        const int64_t n = b * kTileN + r;
        out[m * w.N + n] = a_scale[m] * acc + (bias ? bias[n] : 0.0f);
      }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

// Adds to acc the integer sums of R activation rows x NB 16-column blocks over quads [q0, q1).
// GCC 12 keeps about 14 zmm accumulators in registers in this loop; past
// that it spills to the stack on every step (measured: a 6 x 4 tile ran about a
// third slower than 4 x 2), so tiles stay at 12 and 8 accumulators.
template <int R, int NB>
VNNI inline void dot_quads(const uint8_t* u, int64_t m0, int64_t Kp, const int8_t* wb, int64_t wstride, int64_t q0,
                           int64_t q1, __m512i (&acc)[R][NB]) {
  for (int64_t q = q0; q < q1; ++q) {
    const int8_t* wq = wb + q * kTileN * 4;
    __m512i wv[NB];

#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) wv[j] = _mm512_loadu_si512(wq + j * wstride);

#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      int32_t quad;
      __builtin_memcpy(&quad, u + (m0 + i) * Kp + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(quad);

#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, wv[j]);
    }
  }
}

// scale * (C - (128 + a_zp) * rowsum) of a per-channel sum, for row i of the tile.
VNNI inline __m512 channel_term(__m512i acc, float a_zp, const float* rowsum, const float* scale) {
  const __m512 shift = _mm512_set1_ps(128.0f + a_zp);
  return _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(shift, _mm512_loadu_ps(rowsum))),
                       _mm512_loadu_ps(scale));
}

// Tiles run over one chunk of K at a time (quads [q0, q1)) so that the
// chunk of the task's weights stays in L1 while every activation row passes
// over it. Between chunks a tile's sums wait in `part` (rows of stride
// TB * 16): exact int32 sums per channel, float sums per group (grouped
// chunks hold whole groups).
struct Chunk {
  int64_t q0, q1;
  bool first, last;
};

// The R x NB tile over one chunk; after the last one, its float results
// (before a_scale and bias) go into c, rows of NB * 16.
// Not inlined: each tile shape gets its own register allocation.
template <int R, int NB, bool kPerChannel>
__attribute__((noinline)) VNNI void tile_vnni(const uint8_t* u, int64_t m0, int64_t b0, const PackedInt8Weights& w,
                                              const float* a_zp, const Chunk& ch, int32_t* part, int64_t part_ld,
                                              float* c) {
  const int64_t Kq = w.Kp / 4, qpg = quads_per_group(w);
  const int8_t* wb = w.data.data() + b0 * Kq * kTileN * 4;
  const int64_t wstride = Kq * kTileN * 4;  // bytes from one 16-column block to the next
  __m512i acc[R][NB];
  if constexpr (kPerChannel) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j)
        acc[i][j] = ch.first ? _mm512_setzero_si512() : _mm512_loadu_si512(part + i * part_ld + j * kTileN);
    dot_quads<R, NB>(u, m0, w.Kp, wb, wstride, ch.q0, ch.q1, acc);
    if (!ch.last) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j) _mm512_storeu_si512(part + i * part_ld + j * kTileN, acc[i][j]);
      return;
    }

#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) {
      const size_t gi = static_cast<size_t>((b0 + j) * kTileN);

#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
        _mm512_storeu_ps(c + i * NB * kTileN + j * kTileN,
                         channel_term(acc[i][j], a_zp[m0 + i], w.rowsum.data() + gi, w.scale.data() + gi));
    }
  } else {
    // Chunks hold whole groups; between chunks the float sums wait in part.
    float* fpart = reinterpret_cast<float*>(part);
    __m512 accf[R][NB];

#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j)
        accf[i][j] = ch.first ? _mm512_setzero_ps() : _mm512_loadu_ps(fpart + i * part_ld + j * kTileN);
    for (int64_t g = ch.q0 / qpg; g < ch.q1 / qpg; ++g) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_setzero_si512();
      dot_quads<R, NB>(u, m0, w.Kp, wb, wstride, g * qpg, (g + 1) * qpg, acc);

#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j) {
        const __m512 scale = _mm512_loadu_ps(w.scale.data() + ((b0 + j) * w.groups + g) * kTileN);

#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) accf[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][j]), scale, accf[i][j]);
      }
    }
    if (!ch.last) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j) _mm512_storeu_ps(fpart + i * part_ld + j * kTileN, accf[i][j]);
      return;
    }
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) {
      const __m512 zsum = _mm512_loadu_ps(w.zsum.data() + (b0 + j) * kTileN);

#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
        _mm512_storeu_ps(c + i * NB * kTileN + j * kTileN,
                         _mm512_sub_ps(accf[i][j], _mm512_mul_ps(_mm512_set1_ps(128.0f + a_zp[m0 + i]), zsum)));
    }
  }
}

// Tile shapes: per-channel weights keep only int32 accumulators live and get
// 4 rows x 3 16-column blocks (7 loads per 12 vpdpbusd); grouped weights also
// keep a float sum per accumulator and stay at 4 x 2 (at 4 x 3 GCC spilled
// the weights inside the vpdpbusd loop).
template <bool kPerChannel>
constexpr int kTileBlocks = kPerChannel ? 3 : 2;
constexpr int kTileRows = 4;

// From this many activation rows K is split into chunks; below, the weights
// are read about once per call anyway (decode) and run in one pass.
constexpr int64_t kChunkMinRows = 16;
// Weight bytes of one chunk of a task (TB blocks): half of a 48 KB L1.
constexpr int64_t kChunkBytes = 24 << 10;

// Quads per chunk: whole groups for grouped weights.
template <bool kPerChannel>
int64_t chunk_quads(const PackedInt8Weights& w, int64_t M) {
  const int64_t Kq = w.Kp / 4, qpg = quads_per_group(w);
  if (M < kChunkMinRows) return Kq;
  const int64_t kc = std::min(kChunkBytes / (kTileBlocks<kPerChannel> * kTileN * 4), Kq);
  return kPerChannel ? kc : std::max(qpg, kc / qpg * qpg);
}

// Calls tile_vnni<rows, nb> for run-time rows <= MaxR and nb <= MaxNB.
template <int MaxR, int MaxNB, bool kPerChannel>
VNNI void dispatch_tile(int rows, int nb, const uint8_t* u, int64_t m0, int64_t b0, const PackedInt8Weights& w,
                        const float* a_zp, const Chunk& ch, int32_t* part, int64_t part_ld, float* c) {
  if constexpr (MaxR > 1)
    if (rows < MaxR)
      return dispatch_tile<MaxR - 1, MaxNB, kPerChannel>(rows, nb, u, m0, b0, w, a_zp, ch, part, part_ld, c);
  if constexpr (MaxNB > 1)
    if (nb < MaxNB)
      return dispatch_tile<MaxR, MaxNB - 1, kPerChannel>(rows, nb, u, m0, b0, w, a_zp, ch, part, part_ld, c);
  tile_vnni<MaxR, MaxNB, kPerChannel>(u, m0, b0, w, a_zp, ch, part, part_ld, c);
}

template <bool kPerChannel>
VNNI void gemm_vnni_tiles(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale,
                          const float* a_zp, const float* bias, float* out, int nthreads) {
  constexpr int TR = kTileRows, TB = kTileBlocks<kPerChannel>;
  const int64_t tasks = (w.blocks + TB - 1) / TB;  // TB 16-column blocks per task; each streams all rows
  const int64_t Kq = w.Kp / 4, kc = chunk_quads<kPerChannel>(w, M), part_ld = TB * kTileN;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<int32_t> part(static_cast<size_t>(kc < Kq ? M * part_ld : 0));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < tasks; ++p) {
      const int64_t b0 = TB * p;
      const int nb = int(std::min<int64_t>(TB, w.blocks - b0));
      float c[TR * TB * kTileN];
      for (int64_t q0 = 0; q0 < Kq; q0 += kc) {
        const Chunk ch{q0, std::min(Kq, q0 + kc), q0 == 0, q0 + kc >= Kq};
        for (int64_t m0 = 0; m0 < M; m0 += TR) {
          const int rows = int(std::min<int64_t>(TR, M - m0));
          int32_t* tile_part = part.empty() ? nullptr : part.data() + m0 * part_ld;
          dispatch_tile<TR, TB, kPerChannel>(rows, nb, u, m0, b0, w, a_zp, ch, tile_part, part_ld, c);
          if (!ch.last) continue;
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t col = 0; col < nb * kTileN; ++col) {
              const int64_t n = b0 * kTileN + col;
              if (n < w.N)
                out[(m0 + i) * w.N + n] = a_scale[m0 + i] * c[i * nb * kTileN + col] + (bias ? bias[n] : 0.0f);
            }
        }
      }
    }
  }
}

VNNI void gemm_vnni(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                    const float* bias, float* out, int nthreads) {
  if (w.groups == 1) return gemm_vnni_tiles<true>(u, M, w, a_scale, a_zp, bias, out, nthreads);
  gemm_vnni_tiles<false>(u, M, w, a_scale, a_zp, bias, out, nthreads);
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
