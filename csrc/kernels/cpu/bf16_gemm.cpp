#include "bf16_gemm.h"

#include <immintrin.h>

#include <atomic>
#include <cstring>

#include "amx.h"
#include "cpu_features.h"
#include "numeric.h"

namespace torchao_cpp {
namespace kernels {

namespace {
std::atomic<bool> amx_bf16_on{true};

// The bfloat16 parts of one weight (the SIMD paths' tails and the portable path).
inline void split_one(float w, uint16_t* hi, uint16_t* lo) {
  *hi = float_to_bf16_bits(w);
  if (lo) *lo = float_to_bf16_bits(w - bf16_bits_to_float(*hi));
}
inline float affine_code(uint8_t c, bool is_signed, int c_offset, float sc, float off) {
  return float(int(is_signed ? int8_t(c) : c) + c_offset) * sc + off;
}
}  // namespace

bool has_amx_bf16() { return cpu_features().amx_bf16 && amx_bf16_on; }

bool set_amx_bf16(bool enabled) {
  if (enabled && !cpu_features().amx_bf16) return false;
  amx_bf16_on = enabled;
  return true;
}

void pack_bf16_activations(const uint16_t* x, int64_t M, int64_t K, uint16_t* xb, int nthreads) {
  const int64_t mtiles = (M + kBf16TileRows - 1) / kBf16TileRows, ksteps = K / kBf16TileK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t t = 0; t < mtiles; ++t)
    for (int64_t s = 0; s < ksteps; ++s) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(xb + (t * ksteps + s) * kBf16TileRows * kBf16TileK);
      for (int64_t i = 0; i < kBf16TileRows; ++i) {
        const int64_t m = t * kBf16TileRows + i;
        for (int64_t r = 0; r < kBf16TileK / 2; ++r) {
          uint32_t pair = 0;  // a k pair of row m, as one 32-bit element
          if (m < M) std::memcpy(&pair, x + m * K + s * kBf16TileK + 2 * r, 4);
          dst[r * kBf16TileRows + i] = pair;
        }
      }
    }
}

namespace {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

BF16 inline __m512 bf16_to_f32(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

BF16 inline void store_split(__m512 v0, __m512 v1, uint16_t* hi, uint16_t* lo) {
  const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v1, v0));
  if (!lo) return _mm512_storeu_si512(hi, h);
  // v - hi is exact in float32: it keeps the bits below hi's 8.
  const __m512 r0 = _mm512_sub_ps(v0, bf16_to_f32(_mm512_castsi512_si256(h)));
  const __m512 r1 = _mm512_sub_ps(v1, bf16_to_f32(_mm512_extracti64x4_epi64(h, 1)));
  _mm512_storeu_si512(hi, h);
  _mm512_storeu_si512(lo, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(r1, r0)));
}

BF16 void split_bf16_avx512(const float* w, int64_t n, uint16_t* hi, uint16_t* lo) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    store_split(_mm512_loadu_ps(w + i), _mm512_loadu_ps(w + i + 16), hi + i, lo ? lo + i : nullptr);
  for (; i < n; ++i) split_one(w[i], hi + i, lo ? lo + i : nullptr);
}

// float(c + co) * s + o for 16 codes.
BF16 inline __m512 affine_values(const uint8_t* c, bool is_signed, __m512i co, __m512 s, __m512 o) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  const __m512i i = is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
  return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i, co)), s), o);
}

BF16 void split_bf16_affine_avx512(const uint8_t* c, int64_t n, bool is_signed, int c_offset, float sc, float off,
                                   uint16_t* hi, uint16_t* lo) {
  const __m512i co = _mm512_set1_epi32(c_offset);
  const __m512 s = _mm512_set1_ps(sc), o = _mm512_set1_ps(off);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    store_split(affine_values(c + i, is_signed, co, s, o), affine_values(c + i + 16, is_signed, co, s, o), hi + i,
                lo + i);
  for (; i < n; ++i) split_one(affine_code(c[i], is_signed, c_offset, sc, off), hi + i, lo + i);
}

#define AMX_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))

// Tiles: tmm0..3 the sums of weight tile i and activation tile j (2 i + j),
// tmm4..5 weight tiles (16 rows x 32 values, hi then lo), tmm6..7 activation tiles.
AMX_BF16 void configure_tiles() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) c.rows[t] = kBf16TileRows, c.colsb[t] = 64;
  load_tile_config(c);
}

// WT weight tiles (rows from a0 / a1, lda bytes apart, each as hi and lo at
// a + 0 and a + lo_off; hi alone for aparts = 1) x MT activation tiles (b0 /
// b1, with their lo parts b_lo_off values on for bparts = 2) over ksteps
// steps. Products: every weight part with the activations' hi part, the
// weights' hi part with their lo part (lo x lo is below float32's rounding).
template <int WT, int MT>
AMX_BF16 void panel_tile(const uint16_t* a0, const uint16_t* a1, int aparts, int64_t lo_off, int64_t lda,
                         const uint16_t* b0, const uint16_t* b1, int bparts, int64_t b_lo_off, int64_t steps,
                         float* c0, float* c1, int64_t ldc, bool accumulate) {
  const int64_t cstride = ldc * 4;
  if (accumulate)
    load_sum_tiles<WT, MT>(c0, c1, cstride);
  else
    zero_sum_tiles<WT, MT>();
  constexpr int64_t kStepB = kBf16TileRows * kBf16TileK;  // values per activation tile
  for (int64_t s = 0; s < steps; ++s)
    for (int bp = 0; bp < bparts; ++bp) {  // activations' hi, then lo
      const int64_t boff = s * kStepB + (bp ? b_lo_off : 0);
      tile_load<6>(b0 + boff, 64);
      if constexpr (MT == 2) tile_load<7>(b1 + boff, 64);
      for (int part = 0; part < (bp ? 1 : aparts); ++part) {  // weights' hi, then lo
        const int64_t off = s * kBf16TileK + (part ? lo_off : 0);
        tile_load<4>(a0 + off, lda);
        tile_dpbf16ps<0, 4, 6>();
        if constexpr (MT == 2) tile_dpbf16ps<1, 4, 7>();
        if constexpr (WT == 2) {
          tile_load<5>(a1 + off, lda);
          tile_dpbf16ps<2, 5, 6>();
          if constexpr (MT == 2) tile_dpbf16ps<3, 5, 7>();
        }
      }
    }
  store_sum_tiles<WT, MT>(c0, c1, cstride);
}
#endif
}  // namespace

void split_bf16(const float* w, int64_t n, uint16_t* hi, uint16_t* lo) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (cpu_features().avx512bf16) return split_bf16_avx512(w, n, hi, lo);
#endif
  for (int64_t i = 0; i < n; ++i) split_one(w[i], hi + i, lo ? lo + i : nullptr);
}

void split_bf16_affine(const uint8_t* c, int64_t n, bool is_signed, int c_offset, float sc, float off, uint16_t* hi,
                       uint16_t* lo) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (cpu_features().avx512bf16) return split_bf16_affine_avx512(c, n, is_signed, c_offset, sc, off, hi, lo);
#endif
  for (int64_t i = 0; i < n; ++i) split_one(affine_code(c[i], is_signed, c_offset, sc, off), hi + i, lo + i);
}

void amx_bf16_gemm_panel(const uint16_t* hi, const uint16_t* lo, int64_t kc, int wtiles, const uint16_t* xb,
                         bool x_lo, int64_t ksteps, int64_t k0, int64_t mtiles, float* c, int64_t ldc,
                         bool accumulate) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!cpu_features().amx_bf16) return;
  configure_tiles();
  const int aparts = lo ? 2 : 1, bparts = x_lo ? 2 : 1;
  const int64_t lda = kc * 2, lo_off = lo ? lo - hi : 0, steps = kc / kBf16TileK;
  const int64_t b_lo_off = mtiles * kBf16TileRows * ksteps * kBf16TileK;
  auto b_at = [&](int64_t t) { return xb + (t * ksteps + k0 / kBf16TileK) * kBf16TileRows * kBf16TileK; };
  for (int w = 0; w < wtiles; w += 2) {
    const bool two_w = w + 1 < wtiles;
    const uint16_t *a0 = hi + w * kBf16TileRows * kc, *a1 = a0 + kBf16TileRows * kc;
    float *c0 = c + w * kBf16TileRows * ldc, *c1 = c0 + kBf16TileRows * ldc;
    for (int64_t t = 0; t < mtiles; t += 2) {
      const bool two_m = t + 1 < mtiles;
      const uint16_t *b0 = b_at(t), *b1 = two_m ? b_at(t + 1) : b0;
      float *d0 = c0 + t * kBf16TileRows, *d1 = c1 + t * kBf16TileRows;
      if (two_w && two_m)
        panel_tile<2, 2>(a0, a1, aparts, lo_off, lda, b0, b1, bparts, b_lo_off, steps, d0, d1, ldc, accumulate);
      else if (two_w)
        panel_tile<2, 1>(a0, a1, aparts, lo_off, lda, b0, b1, bparts, b_lo_off, steps, d0, d1, ldc, accumulate);
      else if (two_m)
        panel_tile<1, 2>(a0, a1, aparts, lo_off, lda, b0, b1, bparts, b_lo_off, steps, d0, d1, ldc, accumulate);
      else
        panel_tile<1, 1>(a0, a1, aparts, lo_off, lda, b0, b1, bparts, b_lo_off, steps, d0, d1, ldc, accumulate);
    }
  }
  release_tiles();
#else
  (void)hi, (void)lo, (void)kc, (void)wtiles, (void)xb, (void)x_lo, (void)ksteps, (void)k0, (void)mtiles, (void)c, (void)ldc,
      (void)accumulate;
#endif
}

}  // namespace kernels
}  // namespace torchao_cpp
