#include "int8_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <type_traits>
#include <stdexcept>

#include "amx.h"
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

bool int8_gemm_has_amx() { return cpu_features().amx_int8; }

namespace {
std::atomic<bool> amx_on{true};
}  // namespace

bool set_int8_gemm_amx(bool enabled) {
  if (enabled && !int8_gemm_has_amx()) return false;
  amx_on = enabled;
  return true;
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
// GCC 12 flags _mm512_cvtepi32_ps's own undefined pass-through operand
// (_mm512_undefined_ps) as maybe uninitialized where these kernels inline it.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

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

// out = a_scale * c + bias for a tile's rows x nb 16-column blocks (c: rows of
// nb * 16), 16 columns at a time: the product, then the sum, as the portable
// path rounds. A function of its own: clang does not carry the target
// attribute into the OpenMP region that calls it.
VNNI void store_tile(const float* c, int rows, int nb, int64_t m0, int64_t b0, const PackedInt8Weights& w,
                     const float* a_scale, const float* bias, float* out) {
  for (int i = 0; i < rows; ++i) {
    const __m512 as = _mm512_set1_ps(a_scale[m0 + i]);
    for (int j = 0; j < nb; ++j) {
      const int64_t n = (b0 + j) * kTileN;
      if (n >= w.N) break;
      const __mmask16 in = n + kTileN <= w.N ? __mmask16(0xFFFF) : __mmask16((1u << (w.N - n)) - 1);
      const __m512 b = bias ? _mm512_maskz_loadu_ps(in, bias + n) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(out + (m0 + i) * w.N + n, in,
                            _mm512_add_ps(_mm512_mul_ps(as, _mm512_loadu_ps(c + (i * nb + j) * kTileN)), b));
    }
  }
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
          if (ch.last) store_tile(c, rows, nb, m0, b0, w, a_scale, bias, out);
        }
      }
    }
  }
}


// ---- AMX: the same sums on tile registers ----------------------------------
// The packed weights are already in the layout tdpbusd reads its second
// operand in (a block of 16 columns: one 64-byte row of 16 x 4 codes per k
// quad), and the shifted activations are row-major uint8, the first operand's
// layout: tiles load both in place. A tile step of kq quads multiplies 16
// activation rows by 16 columns over 4 kq values of k.
#define AMX __attribute__((target("avx512f,avx512bw,avx512vnni,amx-tile,amx-int8")))

// Tiles, per channel: tmm0..3 the int32 sums of row tile i and column block
// j (2i + j), tmm4..5 the activations of row tiles 0 and 1 (16 rows x kq
// quads), tmm6..7 the weights of blocks 0 and 1 (kq quads x 16 columns).
// Per group: tmm0..5 rotating sum tiles, tmm6 activations, tmm7 weights.
constexpr int kAmxGroupSums = 6;
AMX void amx_configure(int kq, bool per_channel) {
  TileConfig c;
  const int sums = per_channel ? 4 : kAmxGroupSums;
  for (int t = 0; t < sums; ++t) c.rows[t] = 16, c.colsb[t] = 64;
  for (int t = sums; t < 8; ++t) {
    const bool act = per_channel ? t < 6 : t == 6;
    c.rows[t] = uint8_t(act ? 16 : kq), c.colsb[t] = uint16_t(act ? 4 * kq : 64);
  }
  load_tile_config(c);
}

// Row tile i, column block j of a C-tile array with rows kAmxLd int32 apart.
constexpr int64_t kAmxLd = 2 * kTileN;
constexpr int64_t kAmxStride = kAmxLd * 4;  // bytes

// Per channel: MB row tiles (a0, a1; rows lda bytes apart) x NB column
// blocks (b0, b1) over quads [0, q1), stored to c (row tile i at row 16 i,
// block j at column 16 j).
template <int MB, int NB>
AMX inline void amx_channel_dot(const uint8_t* a0, const uint8_t* a1, int64_t lda, const int8_t* b0, const int8_t* b1,
                                int64_t q1, int kq, int32_t* c) {
  zero_sum_tiles<MB, NB>();
  for (int64_t q = 0; q < q1; q += kq) {
    tile_load<6>(b0 + q * kTileN * 4, kTileN * 4);
    if constexpr (NB == 2) tile_load<7>(b1 + q * kTileN * 4, kTileN * 4);
    tile_load<4>(a0 + 4 * q, lda);
    tile_dpbusd<0, 4, 6>();
    if constexpr (NB == 2) tile_dpbusd<1, 4, 7>();
    if constexpr (MB == 2) {
      tile_load<5>(a1 + 4 * q, lda);
      tile_dpbusd<2, 5, 6>();
      if constexpr (NB == 2) tile_dpbusd<3, 5, 7>();
    }
  }
  store_sum_tiles<MB, NB>(c, c + kTileN * kAmxLd, kAmxStride);
}

// Per group: one row tile x one block over the quads of one group, from
// zero, into sum tile kT (0..3), stored to c (GCC's tile macros take literal
// tile numbers).
template <int kT>
AMX inline void amx_group_dot(const uint8_t* a, int64_t lda, const int8_t* b, int64_t q0, int64_t q1, int kq) {
  tile_zero<kT>();
  for (int64_t q = q0; q < q1; q += kq) {
    tile_load<7>(b + q * kTileN * 4, kTileN * 4);
    tile_load<6>(a + 4 * q, lda);
    tile_dpbusd<kT, 6, 7>();
  }
}
template <int kT>
AMX inline void amx_group_store(int32_t* c) {
  tile_store<kT>(c, kTileN * 4);
}

// out[m, n0 + 0..15] = a_scale * c + bias for the columns below N, rounded
// as the VNNI kernel's scalar epilogue rounds them (product, then sum).
AMX inline void amx_write(__m512 c, float a_scale, const float* bias, int64_t n0, int64_t N, float* out_row) {
  const __mmask16 live = N - n0 >= kTileN ? __mmask16(0xFFFF) : __mmask16((1u << (N - n0)) - 1);
  const __m512 b = bias ? _mm512_maskz_loadu_ps(live, bias + n0) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(out_row + n0, live, _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(a_scale), c), b));
}

struct AmxArgs {
  const PackedInt8Weights* w;
  const float *a_scale, *a_zp, *bias;
  float* out;
  int kq;         // quads per tile step
  int64_t q_amx;  // quads summed on tiles; per channel, the rest (K mod 64) on vpdpbusd
};


// Per channel: rows [m0, m0 + rows) (row tiles a0, a1) x blocks b0, b0 + 1:
// the sums on tiles, the tail quads (K mod 64) on vpdpbusd, then
// tile_vnni's epilogue (channel_term).
template <int MB, int NB>
__attribute__((noinline)) AMX void channel_tile_amx(const uint8_t* a0, const uint8_t* a1, int rows, int64_t m0,
                                                    int64_t b0, const AmxArgs& g, int32_t* c) {
  const PackedInt8Weights& w = *g.w;
  const int64_t Kq = w.Kp / 4;
  const int8_t* wb[2] = {w.data.data() + b0 * Kq * kTileN * 4, w.data.data() + (b0 + NB - 1) * Kq * kTileN * 4};
  amx_channel_dot<MB, NB>(a0, a1, w.Kp, wb[0], wb[1], g.q_amx, g.kq, c);
  for (int i = 0; i < rows; ++i) {
    const uint8_t* ur = i < kTileN ? a0 + i * w.Kp : a1 + (i - kTileN) * w.Kp;
    for (int j = 0; j < NB; ++j) {
      __m512i acc = _mm512_load_si512(c + i * kAmxLd + j * kTileN);
      for (int64_t q = g.q_amx; q < Kq; ++q) {
        int32_t quad;
        __builtin_memcpy(&quad, ur + 4 * q, 4);
        acc = _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(quad), _mm512_load_si512(wb[j] + q * kTileN * 4));
      }
      const size_t gi = static_cast<size_t>((b0 + j) * kTileN);
      amx_write(channel_term(acc, g.a_zp[m0 + i], w.rowsum.data() + gi, w.scale.data() + gi), g.a_scale[m0 + i],
                g.bias, (b0 + j) * kTileN, w.N, g.out + (m0 + i) * w.N);
    }
  }
}

// Per group: one row tile (rows [m0, m0 + rows)) x block b, the float sums
// in registers. Each group's int32 sums leave the tile through memory to be
// converted and scaled (one conversion and one FMA per group, in group
// order, as tile_vnni). A tile store costs about as much as the tdpbusd
// before it and vector loads right behind it wait for it, so six sum tiles
// rotate and a group's sums are read four groups after their store (256 rows,
// K 2048, N 5632, g32, 2 threads: 4.1-4.6 ms at lags 3-5 against 4.7 at lag
// 2 on four tiles). With the pass unrolled over the six tiles: 1.8-2.3x the
// VNNI kernel at 32 rows, 1.0-1.7x at 256.
constexpr int kAmxGroupLag = 4;

// What group_step needs of one row tile x block over groups [0, g1).
struct GroupPass {
  const uint8_t* a;
  int64_t lda;
  const int8_t* wb;
  int64_t qpg, g1;
  int kq;
  const float* scales;  // the block's, group after group
  int32_t* cbuf;        // kAmxGroupSums tiles of 16 x 16 int32
};

// Group base + I on sum tile I (I < kAmxGroupSums, a constant: the pass is
// unrolled so that every tile number is one), then the FMAs of the group
// kAmxGroupLag before it, then the store of this group's sums.
template <int I>
AMX inline void group_step(const GroupPass& p, int64_t base, __m512 (&acc)[kTileN]) {
  const int64_t grp = base + I;
  if (grp < p.g1) amx_group_dot<I>(p.a, p.lda, p.wb, grp * p.qpg, (grp + 1) * p.qpg, p.kq);
  if (const int64_t prev = grp - kAmxGroupLag; prev >= 0 && prev < p.g1) {
    const int32_t* cp = p.cbuf + ((I - kAmxGroupLag + kAmxGroupSums) % kAmxGroupSums) * kTileN * kTileN;
    const __m512 scale = _mm512_loadu_ps(p.scales + prev * kTileN);
#pragma GCC unroll 16
    for (int i = 0; i < kTileN; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(cp + i * kTileN)), scale, acc[i]);
  }
  if (grp < p.g1) amx_group_store<I>(p.cbuf + I * kTileN * kTileN);
}

__attribute__((noinline)) AMX void group_tile_amx(const uint8_t* a, int rows, int64_t m0, int64_t b,
                                                  const AmxArgs& g, int32_t* cbuf) {
  const PackedInt8Weights& w = *g.w;
  const int64_t Kq = w.Kp / 4;
  const GroupPass p{a,     w.Kp, w.data.data() + b * Kq * kTileN * 4, quads_per_group(w), w.groups, g.kq,
                    w.scale.data() + b * w.groups * kTileN, cbuf};
  __m512 acc[kTileN];
#pragma GCC unroll 16
  for (int i = 0; i < kTileN; ++i) acc[i] = _mm512_setzero_ps();
  static_assert(kAmxGroupSums == 6, "group_step is unrolled over six sum tiles");
  for (int64_t base = 0; base < p.g1 + kAmxGroupLag; base += kAmxGroupSums) {
    group_step<0>(p, base, acc);
    group_step<1>(p, base, acc);
    group_step<2>(p, base, acc);
    group_step<3>(p, base, acc);
    group_step<4>(p, base, acc);
    group_step<5>(p, base, acc);
  }
  const __m512 zsum = _mm512_loadu_ps(w.zsum.data() + b * kTileN);
  // Unrolled with constant indices so that acc stays in registers.
#pragma GCC unroll 16
  for (int i = 0; i < kTileN; ++i) {
    if (i >= rows) break;
    const __m512 c = _mm512_sub_ps(acc[i], _mm512_mul_ps(_mm512_set1_ps(128.0f + g.a_zp[m0 + i]), zsum));
    amx_write(c, g.a_scale[m0 + i], g.bias, b * kTileN, w.N, g.out + (m0 + i) * w.N);
  }
}

// Tasks are pairs of 16-column blocks, each passing every row tile over all
// of K. Running K in L1-sized chunks (sums kept between them) was slower:
// 1.83-1.91 / 1.91-2.08 / 2.79-3.17 ms against 1.77-1.84 / 1.70-1.79 /
// 2.72-2.84 for the three shapes at 256 rows (2 threads, alternating runs).
template <bool kPerChannel>
AMX void gemm_amx_tiles(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const AmxArgs& g, int nthreads) {
  // A partial last row tile reads a copy padded to 16 rows (tiles load 16).
  const int64_t full = M / kTileN, rem = M % kTileN, tiles_m = (M + kTileN - 1) / kTileN;
  std::vector<uint8_t> pad(static_cast<size_t>(rem ? kTileN * w.Kp : 0), 128);
  std::copy_n(u + full * kTileN * w.Kp, rem * w.Kp, pad.data());
  auto tile_rows = [&](int64_t t) { return t < full ? u + t * kTileN * w.Kp : pad.data(); };
  const int64_t pairs = (w.blocks + 1) / 2;
#pragma omp parallel num_threads(nthreads)
  {
    amx_configure(g.kq, kPerChannel);
    // Sums out of the tiles: a 32 x 32 tile per channel, the rotating sum tiles per group.
    alignas(64) int32_t cbuf[kAmxGroupSums * kTileN * kTileN];
    static_assert(kAmxGroupSums * kTileN * kTileN >= kAmxLd * kAmxLd, "cbuf holds a per-channel tile");
#pragma omp for schedule(static)
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t b0 = 2 * p;
      const bool two_blocks = b0 + 1 < w.blocks;
      if constexpr (kPerChannel) {
        for (int64_t t = 0; t < tiles_m; t += 2) {
          const bool two_tiles = t + 1 < tiles_m;
          const int rows = int(std::min<int64_t>(2 * kTileN, M - t * kTileN));
          const uint8_t *a0 = tile_rows(t), *a1 = two_tiles ? tile_rows(t + 1) : a0;
          if (two_tiles && two_blocks)
            channel_tile_amx<2, 2>(a0, a1, rows, t * kTileN, b0, g, cbuf);
          else if (two_tiles)
            channel_tile_amx<2, 1>(a0, a1, rows, t * kTileN, b0, g, cbuf);
          else if (two_blocks)
            channel_tile_amx<1, 2>(a0, a1, rows, t * kTileN, b0, g, cbuf);
          else
            channel_tile_amx<1, 1>(a0, a1, rows, t * kTileN, b0, g, cbuf);
        }
      } else {
        for (int64_t b = b0; b < b0 + (two_blocks ? 2 : 1); ++b)
          for (int64_t t = 0; t < tiles_m; ++t)
            group_tile_amx(tile_rows(t), int(std::min<int64_t>(kTileN, M - t * kTileN)), t * kTileN, b, g, cbuf);
      }
    }
    release_tiles();
  }
}

AMX void gemm_amx(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                  const float* bias, float* out, int nthreads) {
  const int64_t Kq = w.Kp / 4;
  AmxArgs g{&w, a_scale, a_zp, bias, out, 16, Kq / 16 * 16};
  if (w.groups == 1) return gemm_amx_tiles<true>(u, M, w, g, nthreads);
  // Steps that tile every group exactly: 64 values for groups of 64, 128, ...; 32 for 8da4w's 32.
  g.kq = int(std::gcd<int64_t>(quads_per_group(w), 16)), g.q_amx = Kq;
  gemm_amx_tiles<false>(u, M, w, g, nthreads);
}

VNNI void gemm_vnni(const uint8_t* u, int64_t M, const PackedInt8Weights& w, const float* a_scale, const float* a_zp,
                    const float* bias, float* out, int nthreads) {
  if (w.groups == 1) return gemm_vnni_tiles<true>(u, M, w, a_scale, a_zp, bias, out, nthreads);
  gemm_vnni_tiles<false>(u, M, w, a_scale, a_zp, bias, out, nthreads);
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace

void int8_gemm_dequant_u8(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M,
                          const PackedInt8Weights& w, const float* bias, float* out, int nthreads) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // set_isa() below AVX-512 (tests) selects the portable path too.
  if (int8_gemm_has_vnni() && active_isa() == Isa::Avx512) {
    if (M >= kAmxMinRows && amx_on && int8_gemm_has_amx()) return gemm_amx(u, M, w, a_scale, a_zp, bias, out, nthreads);
    return gemm_vnni(u, M, w, a_scale, a_zp, bias, out, nthreads);
  }
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
