// Each primitive has an AVX-512, an AVX2+FMA and a portable version; the
// first call picks one from CPUID (cpu_features.h), so one binary runs on any
// x86-64 and uses the widest vectors the machine has.
#include "simd.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu_features.h"
#include "float8_avx512.h"
#include "numeric.h"
#include "quant_primitives.h"

namespace torchao_cpp {
namespace kernels {

namespace {

// --- portable ---------------------------------------------------------------------
float sum_f32_ref(const float* a, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += a[i];
  return acc;
}
float dot_f32_ref(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}
int32_t dot_i16_ref(const int16_t* a, const int16_t* b, int64_t n) {
  int32_t acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
  return acc;
}
template <class T>
float dot_f32_int_ref(const float* x, const T* c, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += x[i] * float(c[i]);
  return acc;
}
float dot_f32_u4_ref(const float* xl, const float* xb, const uint8_t* p, int64_t nbytes) {
  float acc = 0.0f;
  for (int64_t j = 0; j < nbytes; ++j) acc += xl[j] * float(p[j] & 15) + xb[j] * float(p[j]);
  return acc;
}

void half_to_f32_ref(const uint16_t* h, int64_t n, bool bf16, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16 ? bf16_bits_to_float(h[i]) : fp16_bits_to_float(h[i]);
}

// out[r] = sum_g gs.at(r, g) * dot(r, g) + row r's zero-point terms, with
// dot(r, g) the plain dot of group g of row r: every grouped dot's scalar
// form (portable, and the SIMD ones for groups that are not whole steps).
template <class GroupDot>
void grouped_by_dots(int rows, int64_t groups, const GroupScales& gs, float* out, GroupDot dot) {
  for (int r = 0; r < rows; ++r) {
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) acc += gs.at(r, g) * dot(r, g);
    out[r] = acc + gs.zero_term(r, groups);
  }
}

template <class T>
void dot_f32_int_grouped_ref(const float* x, const T* c, int64_t ld, int rows, int64_t len, int64_t groups,
                             const GroupScales& gs, float* out) {
  grouped_by_dots(rows, groups, gs, out,
                  [&](int r, int64_t g) { return dot_f32_int_ref(x + g * len, c + r * ld + g * len, len); });
}
void dot_f32_u4_grouped_ref(const float* xl, const float* xb, const uint8_t* p, int64_t ld, int rows, int64_t len,
                            int64_t groups, const GroupScales& gs, float* out) {
  grouped_by_dots(rows, groups, gs, out, [&](int r, int64_t g) {
    return dot_f32_u4_ref(xl + g * len, xb + g * len, p + r * ld + g * len, len);
  });
}

// Grouped dots of codes decoded to floats in chunks (decode(src, n, dst)), then a float dot.
template <float (*Dot)(const float*, const float*, int64_t), class DecodeFn>
void grouped_decoded(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len, int64_t groups,
                     const GroupScales& gs, float* out, DecodeFn decode) {
  constexpr int64_t kChunk = 256;
  float w[kChunk];
  grouped_by_dots(rows, groups, gs, out, [&](int r, int64_t g) {
    float d = 0.0f;
    for (int64_t k = g * len; k < (g + 1) * len; k += kChunk) {
      const int64_t n = std::min(kChunk, (g + 1) * len - k);
      decode(c + r * ld + k, n, w);
      d += Dot(x + k, w, n);
    }
    return d;
  });
}

// Float8 codes decoded in chunks on the stack, then dotted: the portable and
// AVX2 paths, and the AVX-512 one for groups that are not a multiple of 32.
template <void (*Decode)(const uint8_t*, int64_t, bool, float*), float (*Dot)(const float*, const float*, int64_t)>
void dot_f32_f8_grouped_decoded(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len, int64_t groups,
                                const GroupScales& gs, float* out, bool e4m3) {
  grouped_decoded<Dot>(x, c, ld, rows, len, groups, gs, out,
                       [e4m3](const uint8_t* src, int64_t n, float* dst) { Decode(src, n, e4m3, dst); });
}

void gemm_f32_tile_ref(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int rows,
                       bool accumulate) {
  for (int r = 0; r < rows; ++r) {
    float acc[kGemmNR];
    for (int j = 0; j < kGemmNR; ++j) acc[j] = accumulate ? c[r * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < kGemmNR; ++j) acc[j] += a[r * lda + k] * b[k * kGemmNR + j];
    for (int j = 0; j < kGemmNR; ++j) c[r * ldc + j] = acc[j];
  }
}

bool minmax_f32_ref(const float* x, int64_t n, float* mn, float* mx) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    finite &= std::isfinite(x[i]);
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  *mn = lo, *mx = hi;
  return finite;
}
void quantize_u8_shifted_ref(const float* x, int64_t n, float recip, float offset, float qmin, float qmax,
                             uint8_t* u) {
  for (int64_t i = 0; i < n; ++i) u[i] = uint8_t(int(quantize_int_code<float>(x[i], recip, offset, qmin, qmax)) + 128);
}

void lut_u8_f32_ref(const uint8_t* c, int64_t n, const float* table, int, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = table[c[i]];
}

// dot_f32_lut_grouped by looking codes up in chunks, then a float dot.
template <void (*Lut)(const uint8_t*, int64_t, const float*, int, float*), float (*Dot)(const float*, const float*, int64_t)>
void dot_f32_lut_grouped_decoded(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len, int64_t groups,
                                 const GroupScales& gs, float* out, const float* table, int bits) {
  grouped_decoded<Dot>(x, c, ld, rows, len, groups, gs, out,
                       [table, bits](const uint8_t* src, int64_t n, float* dst) { Lut(src, n, table, bits, dst); });
}

void float8_to_f32_ref(const uint8_t* c, int64_t n, bool e4m3, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = e4m3 ? float8_to_float<Float8Format::E4M3FN>(c[i]) : float8_to_float<Float8Format::E5M2>(c[i]);
}

void float8_to_bf16_ref(const uint8_t* c, int64_t n, bool e4m3, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = e4m3 ? float8_to_float<Float8Format::E4M3FN>(c[i]) : float8_to_float<Float8Format::E5M2>(c[i]);
    out[i] = uint16_t(float_bits(v) >> 16);  // exact: every float8 value is a bfloat16 value
  }
}

template <Float8Format F>
void float8_grid_f32_ref(const float* x, int64_t n, float r, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = float8_to_float<F>(quantize_float8_value<F, float>(x[i], r));
}
void float8_grid_f32_ref(const float* x, int64_t n, float r, bool e4m3, float* out) {
  if (e4m3) return float8_grid_f32_ref<Float8Format::E4M3FN>(x, n, r, out);
  float8_grid_f32_ref<Float8Format::E5M2>(x, n, r, out);
}

void unpack_bits_u8_ref(const uint8_t* packed, int64_t n, int bits, uint8_t* out) {
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t bit = j * bits;
    uint32_t v = packed[bit >> 3] >> (bit & 7);
    if ((bit & 7) + bits > 8) v |= uint32_t(packed[(bit >> 3) + 1]) << (8 - (bit & 7));
    out[j] = uint8_t(v & mask);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TORCHAO_CPP_X86 1
#define AVX512 __attribute__((target("avx512f,avx512bw,fma")))
#define AVX2 __attribute__((target("avx2,fma")))
// The grouped-dot drivers also allow AVX512-BF16 so that the bfloat16 code
// stream inlines into them; the other streams use no BF16 instruction, so
// those instantiations run on any AVX-512 CPU (the ISA table picks the BF16
// stream only where CPUID reports it).
#define AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16,fma")))

// --- BMI2 (every AVX2 CPU has it) ---------------------------------------------------
__attribute__((target("bmi2"))) void unpack_bits_u8_bmi2(const uint8_t* packed, int64_t n, int bits, uint8_t* out) {
  // Eight codes are `bits` whole bytes; pdep deposits each into its own byte.
  const uint64_t spread = 0x0101010101010101ull * ((1u << bits) - 1u);
  const int64_t nbytes = (n * bits + 7) / 8;
  int64_t j = 0;
  // 8-byte loads while they stay inside the row; pdep reads only the low 8 * bits bits.
  for (; j + 8 <= n && j / 8 * bits + 8 <= nbytes; j += 8) {
    uint64_t v;
    __builtin_memcpy(&v, packed + j / 8 * bits, 8);
    const uint64_t b = _pdep_u64(v, spread);
    __builtin_memcpy(out + j, &b, 8);
  }
  if (j < n) unpack_bits_u8_ref(packed + j / 8 * bits, n - j, bits, out + j);
}

// 64 codes per step: a byte permute gives each 64-bit lane the `bits` bytes
// of its eight codes, a multishift pulls code i from bit i * bits of its lane
// into byte i, and one and drops the neighbours' bits (the scalar pdep loop
// spent 2.7 cycles per eight codes: 73 % of a uint3 decode).
#define VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

// 64 codes of `bits` (1..8) bits, packed LSB first, to one byte each in a
// register: a masked load of their 8 * bits bytes, a byte permute that gives
// each code's 8-byte lane the bytes it spans, a multishift that brings each
// code to its byte, a mask.
struct VbmiUnpack {
  __m512i idx, shift, mask;
  __mmask64 bytes;
  VBMI explicit VbmiUnpack(int bits) {
    alignas(64) uint8_t ti[64], ts[64];
    for (int q = 0; q < 8; ++q)
      for (int i = 0; i < 8; ++i) {
        ti[q * 8 + i] = uint8_t(q * bits + i);  // bytes past the lane's `bits` only feed masked-off bits
        ts[q * 8 + i] = uint8_t(i * bits);
      }
    idx = _mm512_load_si512(ti), shift = _mm512_load_si512(ts);
    mask = _mm512_set1_epi8(char((1u << bits) - 1u));
    bytes = bits == 8 ? ~__mmask64(0) : (__mmask64(1) << (8 * bits)) - 1;
  }
  VBMI __m512i operator()(const uint8_t* src) const {
    const __m512i v = _mm512_maskz_loadu_epi8(bytes, src);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(shift, _mm512_permutexvar_epi8(idx, v)), mask);
  }
};

VBMI void unpack_bits_u8_vbmi(const uint8_t* packed, int64_t n, int bits, uint8_t* out) {
  const VbmiUnpack unpack(bits);
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) _mm512_storeu_si512(out + j, unpack(packed + j / 8 * bits));
  if (j < n) unpack_bits_u8_bmi2(packed + j / 8 * bits, n - j, bits, out + j);
}

// --- AVX-512 ---------------------------------------------------------------------
AVX512 float sum_f32_avx512(const float* a, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(a + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(a + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(a + i + 48));
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(a + i));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) + sum_f32_ref(a + i, n - i);
}

AVX512 void half_to_f32_avx512(const uint16_t* h, int64_t n, bool bf16, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i));
    _mm512_storeu_ps(out + i, bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16))
                                   : _mm512_cvtph_ps(v));
  }
  half_to_f32_ref(h + i, n - i, bf16, out + i);
}

AVX512 float dot_f32_avx512(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + dot_f32_ref(a + i, b + i, n - i);
}

AVX512 int32_t dot_i16_avx512(const int16_t* a, const int16_t* b, int64_t n) {
  __m512i s = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    s = _mm512_add_epi32(s, _mm512_madd_epi16(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i)));
  return _mm512_reduce_add_epi32(s) + dot_i16_ref(a + i, b + i, n - i);
}

// 16 integer codes widened to floats.
AVX512 inline __m512 codes16_avx512(const int8_t* c) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c))));
}
AVX512 inline __m512 codes16_avx512(const uint8_t* c) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c))));
}

template <class T>
AVX512 float dot_f32_int_avx512(const float* x, const T* c, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(codes16_avx512(c + i), _mm512_loadu_ps(x + i), s0);
    s1 = _mm512_fmadd_ps(codes16_avx512(c + i + 16), _mm512_loadu_ps(x + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(codes16_avx512(c + i), _mm512_loadu_ps(x + i), s0);
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + dot_f32_int_ref(x + i, c + i, n - i);
}

AVX512 float dot_f32_u4_avx512(const float* xl, const float* xb, const uint8_t* p, int64_t nbytes) {
  const __m512i mask = _mm512_set1_epi32(15);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= nbytes; j += 16) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
    s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mask)), _mm512_loadu_ps(xl + j), s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(xb + j), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + dot_f32_u4_ref(xl + j, xb + j, p + j, nbytes - j);
}

// Grouped dots over R weight rows at once: a code stream loads kStep
// activations once and adds their products with each row's codes into two
// partial sums per row, so x is read once per R rows (it stays in L1 for any
// K). A lone row alternates two partial-sum sets: FMA latency, not memory,
// would otherwise bound it. Then one accumulator per row across groups.
template <class T>
struct IntStream512 {
  static constexpr int64_t kStep = 32;
  const float* x;
  const T* c;
  int64_t ld;
  struct X {
    __m512 a, b;
  };
  AVX512 X load_x(int64_t i) const { return {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)}; }
  AVX512 void fma(int r, int64_t i, const X& v, __m512& s0, __m512& s1) const {
    // 2 KB ahead: decoding 1.1 GB of int8 weights per token (Xeon, 2
    // threads) streamed 13.7 GB/s without it and 16.8 with it into L1
    // (medians of 8 alternating passes; read bandwidth 21.6). Into L2 only
    // (T1), on Zen 4: 28-31 GB/s against 22-28 into L1 (3 alternating
    // rounds, read bandwidth 32); L1 holds what the loads need next anyway.
    if (i % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(c + r * ld + i + 2048), _MM_HINT_T1);
    s0 = _mm512_fmadd_ps(codes16_avx512(c + r * ld + i), v.a, s0);
    s1 = _mm512_fmadd_ps(codes16_avx512(c + r * ld + i + 16), v.b, s1);
  }
};
// Positions count bytes: byte j holds code 2j (low nibble) and 2j+1; x comes
// as u4_dot_operands' x_low and x_byte.
struct U4Stream512 {
  static constexpr int64_t kStep = 16;
  const float *xl, *xb;
  const uint8_t* p;
  int64_t ld;
  struct X {
    __m512 l, b;
  };
  AVX512 X load_x(int64_t j) const { return {_mm512_loadu_ps(xl + j), _mm512_loadu_ps(xb + j)}; }
  AVX512 void fma(int r, int64_t j, const X& v, __m512& s0, __m512& s1) const {
    // 2 KB ahead in each of the thread's row streams: these decodes spend
    // more time per byte than int8's, and the hardware prefetcher alone left
    // them at 22-25 GB/s from DRAM (26-31 with this; 1 KB ahead: 25-29).
    if (j % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(p + r * ld + j + 2048), _MM_HINT_T0);
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * ld + j)));
    // The low nibble through a 16-float table (vpermps reads only an index's
    // low 4 bits: no mask), the whole byte through the converter, so the two
    // use different ports (Zen 5: 47 -> 52 G codes/s per core in L2 against
    // both through the table); converting the byte instead of the shifted
    // high nibble took the Xeon from 10.4 to 11.6 GB/s per core in L2.
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(b, lut), v.l, s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(b), v.b, s1);
  }
};

// Bfloat16 activations: 128 codes (64 bytes, four per 16-bit word) per
// step, each turned into its bfloat16 value by a word permute of a 32-entry
// table (vpermw reads an index's low 5 bits: bf16(i & 15), so no mask), then
// dotted with vdpbf16ps: 32 exact products per instruction, summed in
// float32, against 16 with float FMAs, and no int-to-float conversion
// (Zen 4, one core, 512 x 2048 int4 weights in L2: 54 G codes/s against 32).
// x comes as u4_bf16_operands' four planes per step.
struct U4Bf16Stream512 {
  static constexpr int64_t kStep = 64;
  const uint16_t* xp;
  const uint8_t* p;
  int64_t ld;
  __m512i table;
  struct X {
    __m512bh q0, q1, q2, q3;
  };
  AVX512_BF16 X load_x(int64_t j) const {
    const uint16_t* x = xp + 2 * j;
    return {(__m512bh)_mm512_loadu_si512(x), (__m512bh)_mm512_loadu_si512(x + 32),
            (__m512bh)_mm512_loadu_si512(x + 64), (__m512bh)_mm512_loadu_si512(x + 96)};
  }
  AVX512_BF16 void fma(int r, int64_t j, const X& v, __m512& s0, __m512& s1) const {
    // 4 KB ahead into L2: this stream takes less time per byte than the
    // float one, and 2 KB into L1 left it at 16.5-17.8 GB/s from DRAM (Zen 4,
    // one core; 18.0-18.3 with this, 24 for a plain read of the same rows).
    _mm_prefetch(reinterpret_cast<const char*>(p + r * ld + j + 4096), _MM_HINT_T1);
    const __m512i w = _mm512_loadu_si512(p + r * ld + j);
    s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_permutexvar_epi16(w, table), v.q0);
    s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(w, 4), table), v.q1);
    s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(w, 8), table), v.q2);
    s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(w, 12), table), v.q3);
  }
};

// f(std::integral_constant<int, R>{}) for R = rows (1..kMaxDotRows): the
// grouped dots keep one accumulator set per row in registers, so each row
// count is compiled on its own.
template <class F>
void with_rows(int rows, F&& f) {
  static_assert(kMaxDotRows == 4, "one case per row count");
  switch (rows) {
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    default:
      return f(std::integral_constant<int, 1>{});
  }
}

// acc plus row r's zero-point terms (GroupScales), 16 groups per step.
AVX512_BF16 __m512 zero_terms_avx512(const GroupScales& gs, int r, int64_t groups, __m512 acc) {
  if (!gs.xsum) return acc;
  const __m512 off = _mm512_set1_ps(gs.offset);
  for (int64_t g = 0; g < groups; g += 16) {
    const __mmask16 m = groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (groups - g)) - 1);
    __m512 f = off;
    if (gs.zi) f = _mm512_sub_ps(f, _mm512_maskz_loadu_ps(m, gs.zi + r * gs.zld + g));
    f = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, gs.scale + r * gs.ld + g), f);
    if (gs.zf) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(m, gs.zf + r * gs.zld + g));
    acc = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, gs.xsum + g), acc);
  }
  return acc;
}

// AVX-512's operations for simd_grouped.inc.
struct Vec512 {
  using F = __m512;
  AVX512 static F zero() { return _mm512_setzero_ps(); }
  AVX512 static F add(F a, F b) { return _mm512_add_ps(a, b); }
  AVX512 static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  AVX512 static F set1(float v) { return _mm512_set1_ps(v); }
  AVX512_BF16 static float total(const GroupScales& gs, int r, int64_t groups, F acc) {
    return _mm512_reduce_add_ps(zero_terms_avx512(gs, r, groups, acc));
  }
};
namespace avx512 {
using V = Vec512;
#define TORCHAO_CPP_SIMD_TARGET AVX512_BF16
#include "simd_grouped.inc"
#undef TORCHAO_CPP_SIMD_TARGET
}  // namespace avx512

// Groups whose length is not a multiple of the stream step use per-group dots with a scalar tail.
template <class T>
AVX512 void dot_f32_int_grouped_avx512(const float* x, const T* c, int64_t ld, int rows, int64_t len, int64_t groups,
                                       const GroupScales& gs, float* out) {
  if (len % IntStream512<T>::kStep == 0) return avx512::grouped(IntStream512<T>{x, c, ld}, rows, len, groups, gs, out);
  grouped_by_dots(rows, groups, gs, out,
                  [&](int r, int64_t g) { return dot_f32_int_avx512(x + g * len, c + r * ld + g * len, len); });
}

AVX512 void dot_f32_u4_grouped_avx512(const float* xl, const float* xb, const uint8_t* p, int64_t ld, int rows,
                                      int64_t len, int64_t groups, const GroupScales& gs, float* out) {
  if (len % U4Stream512::kStep == 0) return avx512::grouped(U4Stream512{xl, xb, p, ld}, rows, len, groups, gs, out);
  grouped_by_dots(rows, groups, gs, out, [&](int r, int64_t g) {
    return dot_f32_u4_avx512(xl + g * len, xb + g * len, p + r * ld + g * len, len);
  });
}

// The scales of a 64-byte step of 4-bit codes (bytes j..j+63), lane by lane:
// lane l of vdpbf16ps and vpdpbusd sums the codes of bytes 4l..4l+3, so with
// groups of 32 or 64 codes (len 16 or 32 bytes) each of the step's 4 or 2
// groups owns consecutive lanes, and its scale is spread over them by one
// permute (no per-group reduction); longer groups span whole steps.
struct StepScales {
  int64_t len;
  int64_t per_step;   // groups per step (groups of 32 or 64 codes), else 0
  int64_t step_span;  // steps per group (longer groups), else 0
  __mmask16 m;
  __m512i spread;
  AVX512 explicit StepScales(int64_t group_bytes)
      : len(group_bytes),
        per_step(group_bytes < 64 ? 64 / group_bytes : 0),
        step_span(group_bytes < 64 ? 0 : group_bytes / 64),
        m(__mmask16(group_bytes >= 64 ? 1u : (1u << (64 / group_bytes)) - 1u)),
        spread(group_bytes == 16 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                                 : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)) {}
  // Row r's scales for the step starting in group g.
  AVX512 __m512 at(const GroupScales& gs, int r, int64_t g) const {
    if (len >= 64) return _mm512_set1_ps(gs.at(r, g));
    return _mm512_permutexvar_ps(spread, _mm512_maskz_loadu_ps(m, gs.scale + r * gs.ld + g));
  }
  // Moves g (and the count of steps taken in it) to the next step's first
  // group: no division per step.
  void advance(int64_t& g, int64_t& taken) const {
    if (per_step) {
      g += per_step;
    } else if (++taken == step_span) {
      taken = 0, ++g;
    }
  }
};

// Groups of 32 or 64 codes: the step's sums scaled lane by lane.
template <int R>
AVX512_BF16 void u4_bf16_lanes_rows(const U4Bf16Stream512& st, int64_t len, int64_t groups, const GroupScales& gs,
                                    float* out) {
  const StepScales scales(len);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t j = 0, g = 0, taken = 0; j < groups * len; j += 64, scales.advance(g, taken)) {
    const auto v = st.load_x(j);
    for (int r = 0; r < R; ++r) {
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
      st.fma(r, j, v, s0, s1);
      acc[r] = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), scales.at(gs, r, g), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = Vec512::total(gs, r, groups, acc[r]);
}

AVX512_BF16 void dot_bf16_u4_grouped_avx512(const uint16_t* xp, const uint8_t* p, int64_t ld, int rows, int64_t len,
                                            int64_t groups, const GroupScales& gs, float* out) {
  // bf16(i & 15) for the 32 indices vpermw reads, built once (not per call).
  alignas(64) static const std::array<uint16_t, 32> kTable = [] {
    std::array<uint16_t, 32> t{};
    for (int i = 0; i < 32; ++i) t[size_t(i)] = float_to_bf16_bits(float(i & 15));
    return t;
  }();
  const U4Bf16Stream512 st{xp, p, ld, _mm512_load_si512(kTable.data())};
  if (len % 64 == 0) return avx512::grouped(st, rows, len, groups, gs, out);
  with_rows(rows, [&](auto r) { u4_bf16_lanes_rows<decltype(r)::value>(st, len, groups, gs, out); });
}

// --- AVX512-VNNI: integer codes times float activations as integers ------------
// As with AVX512_BF16: the driver (vnni_rows) also allows VBMI so that the
// N-bit stream's unpack inlines into it; the 4-bit stream uses no VBMI
// instruction (none in its instantiations' objdump), so those run on VNNI
// CPUs without VBMI (Cascade Lake), where the table offers the 4-bit dot only.
#define AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,avx512bf16,fma")))
#define AVX512_VNNI_VBMI __attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi,avx512bf16,fma")))

// The activations of each chunk (128 values) as 24-bit integers Q, split into
// their high byte (signed: |Q| < 2^23), middle and low bytes (unsigned), each
// a 128-byte plane in natural order or as even then odd positions (Pairs).
// The unit is 2^(E - 23) with max|x| < 2^E.
AVX512 bool vnni_operands_avx512(const float* x, int64_t n, VnniOrder order, int8_t* q, float* unit, int qbits) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i qmax = _mm512_set1_epi32((1 << qbits) - 1), qmin = _mm512_set1_epi32(-((1 << qbits) - 1));
  for (int64_t c = 0; c < n / kVnniChunkValues; ++c) {
    const float* xc = x + kVnniChunkValues * c;
    int8_t* qc = q + kVnniChunkBytes * c;
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int i = 0; i < 8; ++i) {
      const __m512 v = _mm512_loadu_ps(xc + 16 * i);
      bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), v, _CMP_UNORD_Q);  // NaN or Inf
      mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
    }
    const float m = _mm512_reduce_max_ps(mx);
    if (bad || (m > 0.0f && m < 0x1p-100f)) return false;
    const int e = m > 0.0f ? std::ilogb(m) + 1 : 0;  // m < 2^e
    unit[c] = m > 0.0f ? std::ldexp(1.0f, e - qbits) : 0.0f;
    const __m512 to_q = _mm512_set1_ps(std::ldexp(1.0f, qbits - e));
    for (int i = 0; i < 4; ++i) {
      // Exact scaling, one rounding to the nearest integer (ties to even);
      // the clamp only catches a value rounded up to 2^qbits.
      __m512i a = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xc + 32 * i), to_q));
      __m512i b = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xc + 32 * i + 16), to_q));
      a = _mm512_max_epi32(_mm512_min_epi32(a, qmax), qmin);
      b = _mm512_max_epi32(_mm512_min_epi32(b, qmax), qmin);
      // Natural: values 32i.. and 32i+16.. at those offsets; Pairs: the even ones at 16i, the odd at 64 + 16i.
      const bool pairs = order == VnniOrder::Pairs;
      const __m512i halves[2] = {pairs ? _mm512_permutex2var_epi32(a, even, b) : a,
                                 pairs ? _mm512_permutex2var_epi32(a, odd, b) : b};
      for (int h = 0; h < 2; ++h)
        for (int d = 0; d < 3; ++d)  // byte d from the top: Q >> 16, >> 8, >> 0, truncated
          _mm_storeu_si128(reinterpret_cast<__m128i*>(qc + 128 * d + (pairs ? 64 * h + 16 * i : 32 * i + 16 * h)),
                           _mm512_cvtepi32_epi8(_mm512_srai_epi32(halves[h], 16 - 8 * d)));
    }
  }
  return true;
}

// Code streams of the VNNI dots, 64 code bytes (4-bit) or 64 codes (N-bit,
// int8) per step. first / next add one byte plane of Q to the step's int32
// sums, which start at init (the step's, shared by its rows): the high byte
// (signed) with the codes as vpdpbusd's unsigned operand, then (after a shift
// by 8) the middle and low bytes as the unsigned operand with the codes, all
// below 128, as the signed one.
// The streams of unsigned codes start their sums at zero.
AVX512 __m512i vnni_zero_init(const int8_t*) { return _mm512_setzero_si512(); }

struct VnniU4Stream {
  static constexpr int64_t kValuesPerStep = 128;
  static constexpr auto init = vnni_zero_init;
  const uint8_t* p;
  int64_t ld;
  struct Codes {
    __m512i lo, hi;  // codes 2j and 2j + 1 of the step's bytes j
  };
  AVX512 Codes load(int r, int64_t step) const {
    const uint8_t* w = p + r * ld + 64 * step;
    // 2 KB ahead into L2, as the int8 stream: 23-32 GB/s against 21-30 into
    // L1 (Zen 4, 3 alternating rounds; 4 KB ahead no better).
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T1);
    const __m512i v = _mm512_loadu_si512(w), low4 = _mm512_set1_epi8(15);
    return {_mm512_and_si512(v, low4), _mm512_and_si512(_mm512_srli_epi16(v, 4), low4)};
  }
  static const int8_t* plane(const int8_t* q, int64_t step, int d) { return q + kVnniChunkBytes * step + 128 * d; }
  AVX512_VNNI static __m512i first(const Codes& c, const int8_t* pl, __m512i init) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, c.lo, _mm512_loadu_si512(pl)), c.hi,
                               _mm512_loadu_si512(pl + 64));
  }
  AVX512_VNNI static __m512i next(__m512i t, const Codes& c, const int8_t* pl) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_slli_epi32(t, 8), _mm512_loadu_si512(pl), c.lo),
                               _mm512_loadu_si512(pl + 64), c.hi);
  }
};

// N-bit codes (1..6 bits, packed LSB first as pack_bits_rows writes them),
// unpacked in registers (VbmiUnpack), with no pass through memory.
struct VnniBitsStream {
  static constexpr int64_t kValuesPerStep = 64;
  static constexpr auto init = vnni_zero_init;
  const uint8_t* p;
  int64_t ld;
  int bits;
  VbmiUnpack unpack;
  AVX512_VNNI_VBMI VnniBitsStream(const uint8_t* p_, int64_t ld_, int bits_)
      : p(p_), ld(ld_), bits(bits_), unpack(bits_) {}
  using Codes = __m512i;
  AVX512_VNNI_VBMI Codes load(int r, int64_t step) const {
    const uint8_t* w = p + r * ld + 8 * bits * step;
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T0);
    return unpack(w);
  }
  static const int8_t* plane(const int8_t* q, int64_t step, int d) {
    return q + kVnniChunkBytes * (step / 2) + 128 * d + 64 * (step % 2);
  }
  AVX512_VNNI static __m512i first(const Codes& c, const int8_t* pl, __m512i init) {
    return _mm512_dpbusd_epi32(init, c, _mm512_loadu_si512(pl));
  }
  // A middle or low plane (unsigned) times the codes (below 128: signed as well).
  AVX512_VNNI static __m512i low(__m512i t, const Codes& c, const int8_t* pl) {
    return _mm512_dpbusd_epi32(t, _mm512_loadu_si512(pl), c);
  }
  AVX512_VNNI static __m512i next(__m512i t, const Codes& c, const int8_t* pl) {
    return low(_mm512_slli_epi32(t, 8), c, pl);
  }
};

// Codes below 128 already one per byte (N-bit rows unpacked once for several
// activation rows).
struct VnniU8Stream {
  static constexpr int64_t kValuesPerStep = 64;
  static constexpr auto init = vnni_zero_init;
  const uint8_t* p;
  int64_t ld;
  using Codes = __m512i;
  AVX512 Codes load(int r, int64_t step) const { return _mm512_loadu_si512(p + r * ld + 64 * step); }
  static const int8_t* plane(const int8_t* q, int64_t step, int d) { return VnniBitsStream::plane(q, step, d); }
  AVX512_VNNI static __m512i first(const Codes& c, const int8_t* pl, __m512i init) {
    return VnniBitsStream::first(c, pl, init);
  }
  AVX512_VNNI static __m512i low(__m512i t, const Codes& c, const int8_t* pl) { return VnniBitsStream::low(t, c, pl); }
  AVX512_VNNI static __m512i next(__m512i t, const Codes& c, const int8_t* pl) { return VnniBitsStream::next(t, c, pl); }
};

// Signed int8 codes, one per byte. vpdpbusd multiplies unsigned by signed
// bytes, so the high plane (signed) meets the codes moved to unsigned
// (c + 128, a flipped sign bit) and the step's sums start at -128 times the
// lanes' high bytes, which takes the 128s back out; the middle and low planes
// (unsigned) meet the codes as they are. Q is bounded by 2^22 (vnni_q_bits(8)):
// 4 * 128 * (2^22 - 1) < 2^31 in a lane.
struct VnniI8Stream {
  static constexpr int64_t kValuesPerStep = 64;
  const int8_t* p;
  int64_t ld;
  struct Codes {
    __m512i s, u;  // as stored, and + 128 as unsigned bytes
  };
  AVX512 Codes load(int r, int64_t step) const {
    const int8_t* w = p + r * ld + 64 * step;
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T1);  // as the float int8 stream
    const __m512i v = _mm512_loadu_si512(w);
    return {v, _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80)))};
  }
  static const int8_t* plane(const int8_t* q, int64_t step, int d) { return VnniBitsStream::plane(q, step, d); }
  AVX512_VNNI static __m512i init(const int8_t* high) {
    const __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), _mm512_loadu_si512(high));
    return _mm512_sub_epi32(_mm512_setzero_si512(), t);
  }
  AVX512_VNNI static __m512i first(const Codes& c, const int8_t* pl, __m512i init) {
    return _mm512_dpbusd_epi32(init, c.u, _mm512_loadu_si512(pl));
  }
  AVX512_VNNI static __m512i low(__m512i t, const Codes& c, const int8_t* pl) {
    return _mm512_dpbusd_epi32(t, _mm512_loadu_si512(pl), c.s);
  }
  AVX512_VNNI static __m512i next(__m512i t, const Codes& c, const int8_t* pl) {
    return low(_mm512_slli_epi32(t, 8), c, pl);
  }
};

// R rows (ld bytes apart) of codes dotted with the chunks' integers: per step,
// sum code * Q exactly in int32 (|sum| <= 4 codes * 63 * (2^23 - 1) per lane,
// 8 * 15 * (2^23 - 1) for 4-bit codes, 4 * 128 * (2^22 - 1) for 7-bit and
// int8 ones: below 2^31; vnni_q_bits), converted once and scaled by the group's scale times the chunk's
// unit. len counts a group's bytes (4-bit) or codes (N-bit, int8): 64 per
// step either way, 4 per lane.
// Groups of whole chunks with 64 codes a step (int8 and N-bit codes, groups
// of 128 codes or more, per-channel scales): a chunk's two steps share one
// unit and one scale, so each plane's sums run on over the chunk (the high
// plane's alone, the middle and low planes' joined by one shift) where
// vnni_rows shifts its sums four times a chunk and converts them twice.
// Intel's cores run vpdpbusd, shifts and conversions of 512-bit registers on
// one port: 9 of its operations a chunk and row here against 12 there.
// Lane sums stay small: 8 products of a code (below 2^8) and a byte.
template <int R, class Stream>
AVX512_VNNI_VBMI void vnni_rows_chunked(const Stream& st, const int8_t* q, const float* unit, int64_t len,
                                        int64_t groups, const GroupScales& gs, float* out) {
  static_assert(Stream::kValuesPerStep * 2 == kVnniChunkValues);
  const int64_t chunks = groups * len / kVnniChunkValues, per_group = len / kVnniChunkValues;
  __m512 hi[R], ml[R];
  for (int r = 0; r < R; ++r) hi[r] = ml[r] = _mm512_setzero_ps();
  for (int64_t ch = 0, g = 0, taken = 0; ch < chunks; ++ch) {
    __m512i th[R], tm[R], tl[R];
    const int64_t s0 = 2 * ch;
    const __m512i init =
        _mm512_add_epi32(Stream::init(Stream::plane(q, s0, 0)), Stream::init(Stream::plane(q, s0 + 1, 0)));
    for (int r = 0; r < R; ++r) th[r] = init, tm[r] = tl[r] = _mm512_setzero_si512();
    for (int64_t step = s0; step < s0 + 2; ++step) {
      typename Stream::Codes c[R];
      for (int r = 0; r < R; ++r) c[r] = st.load(r, step);
      for (int r = 0; r < R; ++r) th[r] = Stream::first(c[r], Stream::plane(q, step, 0), th[r]);
      for (int r = 0; r < R; ++r) tm[r] = Stream::low(tm[r], c[r], Stream::plane(q, step, 1));
      for (int r = 0; r < R; ++r) tl[r] = Stream::low(tl[r], c[r], Stream::plane(q, step, 2));
    }
    const __m512 u = _mm512_set1_ps(unit[ch]);
    for (int r = 0; r < R; ++r) {
      const __m512 su = _mm512_mul_ps(_mm512_set1_ps(gs.at(r, g)), u);
      hi[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(th[r]), su, hi[r]);
      ml[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(tm[r], 8), tl[r])), su, ml[r]);
    }
    if (++taken == per_group) taken = 0, ++g;
  }
  for (int r = 0; r < R; ++r)
    out[r] = Vec512::total(gs, r, groups, _mm512_fmadd_ps(hi[r], _mm512_set1_ps(65536.0f), ml[r]));
}

template <int R, class Stream>
AVX512_VNNI_VBMI void vnni_rows(const Stream& st, const int8_t* q, const float* unit, int64_t len, int64_t groups,
                                const GroupScales& gs, float* out) {
  if constexpr (Stream::kValuesPerStep * 2 == kVnniChunkValues) {
    if (len % kVnniChunkValues == 0) return vnni_rows_chunked<R>(st, q, unit, len, groups, gs, out);
  }
  const StepScales scales(len);
  const int64_t steps = groups * len / 64;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t step = 0, g = 0, taken = 0; step < steps; ++step, scales.advance(g, taken)) {
    typename Stream::Codes c[R];
    __m512i t[R];
    for (int r = 0; r < R; ++r) c[r] = st.load(r, step);
    const __m512i init = Stream::init(Stream::plane(q, step, 0));
    for (int r = 0; r < R; ++r) t[r] = Stream::first(c[r], Stream::plane(q, step, 0), init);
    for (int d = 1; d < 3; ++d)
      for (int r = 0; r < R; ++r) t[r] = Stream::next(t[r], c[r], Stream::plane(q, step, d));
    const __m512 u = _mm512_set1_ps(unit[step * Stream::kValuesPerStep / kVnniChunkValues]);
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[r]), _mm512_mul_ps(scales.at(gs, r, g), u), acc[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = Vec512::total(gs, r, groups, acc[r]);
}

AVX512_VNNI void dot_vnni_u4_grouped_avx512(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld, int rows,
                                           int64_t len, int64_t groups, const GroupScales& gs, float* out) {
  with_rows(rows, [&](auto r) { vnni_rows<decltype(r)::value>(VnniU4Stream{p, ld}, q, unit, len, groups, gs, out); });
}

AVX512_VNNI void dot_vnni_i8_grouped_avx512(const int8_t* q, const float* unit, const int8_t* c, int64_t ld, int rows,
                                           int64_t len, int64_t groups, const GroupScales& gs, float* out) {
  with_rows(rows, [&](auto r) { vnni_rows<decltype(r)::value>(VnniI8Stream{c, ld}, q, unit, len, groups, gs, out); });
}

AVX512_VNNI_VBMI void dot_vnni_bits_grouped_avx512(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld,
                                                  int rows, int bits, int64_t len, int64_t groups,
                                                  const GroupScales& gs, float* out) {
  if (bits == 8) {  // unpacked: one code (below 128) per byte
    return with_rows(rows, [&](auto r) { vnni_rows<decltype(r)::value>(VnniU8Stream{p, ld}, q, unit, len, groups, gs, out); });
  }
  const VnniBitsStream st(p, ld, bits);
  with_rows(rows, [&](auto r) { vnni_rows<decltype(r)::value>(st, q, unit, len, groups, gs, out); });
}

AVX512 bool minmax_f32_avx512(const float* x, int64_t n, float* mn, float* mx) {
  __m512 lo = _mm512_set1_ps(std::numeric_limits<float>::infinity()), hi = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  // x - x is NaN exactly for NaN and +-Inf: one check for both.
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    bad |= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), v, _CMP_UNORD_Q);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  float tlo, thi;
  const bool tail = minmax_f32_ref(x + i, n - i, &tlo, &thi);
  *mn = std::min(_mm512_reduce_min_ps(lo), tlo);
  *mx = std::max(_mm512_reduce_max_ps(hi), thi);
  return tail && bad == 0;
}

AVX512 void quantize_u8_shifted_avx512(const float* x, int64_t n, float recip, float offset, float qmin, float qmax,
                                       uint8_t* u) {
  const __m512 r = _mm512_set1_ps(recip), o = _mm512_set1_ps(offset + 128.0f);
  const __m512 lo = _mm512_set1_ps(qmin + 128.0f), hi = _mm512_set1_ps(qmax + 128.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);  // NaN -> 0
    // Exact: codes and offsets are small integers, so adding 128 commutes with rounding and clamping.
    v = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(v, r), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), o);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  quantize_u8_shifted_ref(x + i, n - i, recip, offset, qmin, qmax, u + i);
}

// The float values of 16 float8 codes.
AVX512 inline __m512 float8x16_to_ps(const uint8_t* c, bool e4m3) {
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  if (!e4m3) return _mm512_cvtph_ps(_mm256_slli_epi16(b, 8));
  // sign to bit 15, exponent and mantissa to bits 7..14: the float16 of value * 2^-8.
  const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8),
                                    _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7F)), 7));
  const __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
  const __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_cvtepu16_epi32(_mm256_and_si256(b, _mm256_set1_epi16(0x7F))),
                                                _mm512_set1_epi32(0x7F));
  return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
}

AVX512 void float8_to_f32_avx512(const uint8_t* c, int64_t n, bool e4m3, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, float8x16_to_ps(c + i, e4m3));
  float8_to_f32_ref(c + i, n - i, e4m3, out + i);
}

AVX512 void float8_to_bf16_avx512(const uint8_t* c, int64_t n, bool e4m3, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i bits = _mm512_srli_epi32(_mm512_castps_si512(float8x16_to_ps(c + i, e4m3)), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(bits));
  }
  float8_to_bf16_ref(c + i, n - i, e4m3, out + i);
}

// quantize_float8_value then float8_to_float without the code: x * r clamped
// to the format's range and rounded to its grid (ties to even) as float. In
// the normal range the rounding is on the bits (adding half an ulp of the
// format, less one, plus the kept lowest bit, carries into the exponent
// where it must); below it, on the subnormal spacing, scaled by powers of 2.
template <Float8Format F>
AVX512 void float8_grid_f32_avx512(const float* x, int64_t n, float r, float* out) {
  using Tr = Float8Traits<F>;
  constexpr int kShift = 23 - Tr::kMant, kMinNormal = 1 - Tr::kBias;
  const __m512 vr = _mm512_set1_ps(r), mx = _mm512_set1_ps(Tr::kMax), mn = _mm512_set1_ps(-Tr::kMax);
  const __m512 normal_min = _mm512_set1_ps(std::ldexp(1.0f, kMinNormal));
  const __m512 up = _mm512_set1_ps(std::ldexp(1.0f, Tr::kMant - kMinNormal));
  const __m512 down = _mm512_set1_ps(std::ldexp(1.0f, kMinNormal - Tr::kMant));
  const __m512i half_less_one = _mm512_set1_epi32((1 << (kShift - 1)) - 1), one = _mm512_set1_epi32(1);
  const __m512i keep = _mm512_set1_epi32(~((1 << kShift) - 1)), sign = _mm512_set1_epi32(int(0x80000000u));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vr);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 c = _mm512_min_ps(_mm512_max_ps(v, mn), mx);
    const __m512i cb = _mm512_castps_si512(c);
    const __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, cb));
    const __m512i ab = _mm512_castps_si512(a);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(ab, kShift), one);
    const __m512i nb = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(ab, half_less_one), lsb), keep);
    const __m512 sub = _mm512_mul_ps(
        _mm512_roundscale_ps(_mm512_mul_ps(a, up), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), down);
    const __mmask16 small = _mm512_cmp_ps_mask(a, normal_min, _CMP_LT_OQ);
    const __m512i g = _mm512_mask_mov_epi32(nb, small, _mm512_castps_si512(sub));
    __m512 res = _mm512_castsi512_ps(_mm512_or_si512(g, _mm512_and_si512(cb, sign)));
    res = _mm512_mask_mov_ps(res, nan, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
    _mm512_storeu_ps(out + i, res);
  }
  float8_grid_f32_ref<F>(x + i, n - i, r, out + i);
}
AVX512 void float8_grid_f32_avx512(const float* x, int64_t n, float r, bool e4m3, float* out) {
  if (e4m3) return float8_grid_f32_avx512<Float8Format::E4M3FN>(x, n, r, out);
  float8_grid_f32_avx512<Float8Format::E5M2>(x, n, r, out);
}

// Table lookups of 16 codes per step: one permute of a 16-float table (bits <= 4), a two-table permute (5),
// two of them and a blend on bit 5 (6), a gather (7, 8). Entries past the table are never read.
// Entries [first, first + 16) of a table of `size` floats (zeros past its end, which is not read).
AVX512 __m512 lut_part_avx512(const float* table, int size, int first) {
  const int count = std::min(16, size - first);
  return count <= 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(__mmask16((1u << count) - 1u), table + first);
}

AVX512 void lut_u8_f32_avx512(const uint8_t* c, int64_t n, const float* table, int bits, float* out) {
  const int size = 1 << bits;
  const __m512 t0 = lut_part_avx512(table, size, 0), t1 = lut_part_avx512(table, size, 16),
               t2 = lut_part_avx512(table, size, 32), t3 = lut_part_avx512(table, size, 48);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i)));
    __m512 v;
    if (bits <= 4) {
      v = _mm512_permutexvar_ps(idx, t0);
    } else if (bits == 5) {
      v = _mm512_permutex2var_ps(t0, idx, t1);
    } else if (bits == 6) {
      v = _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), _mm512_permutex2var_ps(t0, idx, t1),
                               _mm512_permutex2var_ps(t2, idx, t3));
    } else {
      v = _mm512_i32gather_ps(idx, table, 4);
    }
    _mm512_storeu_ps(out + i, v);
  }
  lut_u8_f32_ref(c + i, n - i, table, bits, out + i);
}

// 32 codes (one byte each) per step, looked up in registers as lut_u8_f32_avx512 does (tables of up to 64
// values: 1..6-bit codes).
struct LutStream512 {
  static constexpr int64_t kStep = 32;
  const float* x;
  const uint8_t* c;
  int64_t ld;
  int bits;
  __m512 t0, t1, t2, t3;
  struct X {
    __m512 a, b;
  };
  AVX512 X load_x(int64_t i) const { return {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)}; }
  AVX512 __m512 lookup(const uint8_t* p) const {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (bits <= 4) return _mm512_permutexvar_ps(idx, t0);
    if (bits == 5) return _mm512_permutex2var_ps(t0, idx, t1);
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), _mm512_permutex2var_ps(t0, idx, t1),
                                _mm512_permutex2var_ps(t2, idx, t3));
  }
  AVX512 void fma(int r, int64_t i, const X& v, __m512& s0, __m512& s1) const {
    s0 = _mm512_fmadd_ps(lookup(c + r * ld + i), v.a, s0);
    s1 = _mm512_fmadd_ps(lookup(c + r * ld + i + 16), v.b, s1);
  }
};

AVX512 void dot_f32_lut_grouped_avx512(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len,
                                       int64_t groups, const GroupScales& gs, float* out, const float* table,
                                       int bits) {
  if (len % LutStream512::kStep != 0 || bits > 6)
    return dot_f32_lut_grouped_decoded<lut_u8_f32_avx512, dot_f32_avx512>(x, c, ld, rows, len, groups, gs, out, table,
                                                                          bits);
  const int size = 1 << bits;
  avx512::grouped(LutStream512{x, c, ld, bits, lut_part_avx512(table, size, 0), lut_part_avx512(table, size, 16),
                               lut_part_avx512(table, size, 32), lut_part_avx512(table, size, 48)},
                  rows, len, groups, gs, out);
}

AVX2 void lut_u8_f32_avx2(const uint8_t* c, int64_t n, const float* table, int bits, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + i)));
    _mm256_storeu_ps(out + i, _mm256_i32gather_ps(table, idx, 4));
  }
  lut_u8_f32_ref(c + i, n - i, table, bits, out + i);
}

// 32 float8 codes per step through the float16 converter, as
// float8_to_f32_avx512 decodes them, but in registers (float8_avx512.h): the
// 2^8 of e4m3fn applied once per row by the caller.
template <bool E4M3>
struct Float8Stream512 {
  static constexpr int64_t kStep = 32;
  const float* x;
  const uint8_t* c;
  int64_t ld;
  struct X {
    __m512 a, b;
  };
  AVX512 X load_x(int64_t i) const { return {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)}; }
  AVX512 void fma(int r, int64_t i, const X& v, __m512& s0, __m512& s1) const {
    if (i % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(c + r * ld + i + 2048), _MM_HINT_T0);  // as U4Stream512
    const __m512i h = float8_to_f16_bits<E4M3>(
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + r * ld + i))));
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(h)), v.a, s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)), v.b, s1);
  }
};

AVX512 void dot_f32_f8_grouped_avx512(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len,
                                      int64_t groups, const GroupScales& gs, float* out, bool e4m3) {
  if (len % 32 != 0)
    return dot_f32_f8_grouped_decoded<float8_to_f32_avx512, dot_f32_avx512>(x, c, ld, rows, len, groups, gs, out,
                                                                              e4m3);
  if (!e4m3) return avx512::grouped(Float8Stream512<false>{x, c, ld}, rows, len, groups, gs, out);
  GroupScales dots = gs;  // the zero-point terms are added after the 2^8 below
  dots.xsum = nullptr;
  avx512::grouped(Float8Stream512<true>{x, c, ld}, rows, len, groups, dots, out);
  for (int r = 0; r < rows; ++r) out[r] = out[r] * 256.0f + gs.zero_term(r, groups);  // exact: a power of two
}

// R rows x 32 columns: 2R accumulators, one broadcast of a per row and k.
// The loops over rows are unrolled by pragma: GCC 12 otherwise keeps the
// accumulator arrays on the stack and stores every one on each step of k.
template <int R>
AVX512 void gemm_tile_avx512(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc,
                             bool accumulate) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    c0[r] = accumulate ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
    c1[r] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * kGemmNR), b1 = _mm512_loadu_ps(b + k * kGemmNR + 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(c + r * ldc, c0[r]);
    _mm512_storeu_ps(c + r * ldc + 16, c1[r]);
  }
}

AVX512 void gemm_f32_tile_avx512(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc,
                                 int rows, bool accumulate) {
  static constexpr void (*kTiles[])(const float*, int64_t, const float*, int64_t, float*, int64_t, bool) = {
      gemm_tile_avx512<1>, gemm_tile_avx512<2>, gemm_tile_avx512<3>, gemm_tile_avx512<4>,
      gemm_tile_avx512<5>, gemm_tile_avx512<6>, gemm_tile_avx512<7>, gemm_tile_avx512<8>};
  kTiles[rows - 1](a, lda, b, kc, c, ldc, accumulate);
}

// --- AVX2 ------------------------------------------------------------------------------
AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

AVX2 float sum_f32_avx2(const float* a, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
  }
  return hsum256(_mm256_add_ps(s0, s1)) + sum_f32_ref(a + i, n - i);
}

__attribute__((target("avx2,f16c"))) void half_to_f32_avx2(const uint16_t* h, int64_t n, bool bf16, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
    _mm256_storeu_ps(out + i, bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
                                   : _mm256_cvtph_ps(v));
  }
  half_to_f32_ref(h + i, n - i, bf16, out + i);
}

AVX2 float dot_f32_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  return hsum256(_mm256_add_ps(s0, s1)) + dot_f32_ref(a + i, b + i, n - i);
}

AVX2 int32_t dot_i16_avx2(const int16_t* a, const int16_t* b, int64_t n) {
  __m256i s = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i))));
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
  return _mm_cvtsi128_si32(t) + dot_i16_ref(a + i, b + i, n - i);
}

AVX2 inline __m256 codes8_avx2(const int8_t* c) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c))));
}
AVX2 inline __m256 codes8_avx2(const uint8_t* c) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c))));
}

template <class T>
AVX2 float dot_f32_int_avx2(const float* x, const T* c, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(codes8_avx2(c + i), _mm256_loadu_ps(x + i), s0);
    s1 = _mm256_fmadd_ps(codes8_avx2(c + i + 8), _mm256_loadu_ps(x + i + 8), s1);
  }
  return hsum256(_mm256_add_ps(s0, s1)) + dot_f32_int_ref(x + i, c + i, n - i);
}

AVX2 float dot_f32_u4_avx2(const float* xl, const float* xb, const uint8_t* p, int64_t nbytes) {
  const __m256i mask = _mm256_set1_epi32(15);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= nbytes; j += 8) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j)));
    s0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), _mm256_loadu_ps(xl + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(xb + j), s1);
  }
  return hsum256(_mm256_add_ps(s0, s1)) + dot_f32_u4_ref(xl + j, xb + j, p + j, nbytes - j);
}
template <class T>
struct IntStream256 {
  static constexpr int64_t kStep = 16;
  const float* x;
  const T* c;
  int64_t ld;
  struct X {
    __m256 a, b;
  };
  AVX2 X load_x(int64_t i) const { return {_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8)}; }
  AVX2 void fma(int r, int64_t i, const X& v, __m256& s0, __m256& s1) const {
    s0 = _mm256_fmadd_ps(codes8_avx2(c + r * ld + i), v.a, s0);
    s1 = _mm256_fmadd_ps(codes8_avx2(c + r * ld + i + 8), v.b, s1);
  }
};
struct U4Stream256 {
  static constexpr int64_t kStep = 8;
  const float *xl, *xb;
  const uint8_t* p;
  int64_t ld;
  struct X {
    __m256 l, b;
  };
  AVX2 X load_x(int64_t j) const { return {_mm256_loadu_ps(xl + j), _mm256_loadu_ps(xb + j)}; }
  AVX2 void fma(int r, int64_t j, const X& v, __m256& s0, __m256& s1) const {
    const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + r * ld + j)));
    s0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(b, _mm256_set1_epi32(15))), v.l, s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(b), v.b, s1);
  }
};

// acc plus row r's zero-point terms (GroupScales), 8 groups per step.
AVX2 __m256 zero_terms_avx2(const GroupScales& gs, int r, int64_t groups, __m256 acc) {
  if (!gs.xsum) return acc;
  const __m256 off = _mm256_set1_ps(gs.offset);
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    __m256 f = off;
    if (gs.zi) f = _mm256_sub_ps(f, _mm256_loadu_ps(gs.zi + r * gs.zld + g));
    f = _mm256_mul_ps(_mm256_loadu_ps(gs.scale + r * gs.ld + g), f);
    if (gs.zf) f = _mm256_add_ps(f, _mm256_loadu_ps(gs.zf + r * gs.zld + g));
    acc = _mm256_fmadd_ps(f, _mm256_loadu_ps(gs.xsum + g), acc);
  }
  if (g == groups) return acc;
  GroupScales tail = gs;  // the last groups, in plain arithmetic
  tail.scale += g, tail.xsum += g;
  if (tail.zi) tail.zi += g;
  if (tail.zf) tail.zf += g;
  return _mm256_add_ps(acc, _mm256_setr_ps(tail.zero_term(r, groups - g), 0, 0, 0, 0, 0, 0, 0));
}

// AVX2's operations for simd_grouped.inc.
struct Vec256 {
  using F = __m256;
  AVX2 static F zero() { return _mm256_setzero_ps(); }
  AVX2 static F add(F a, F b) { return _mm256_add_ps(a, b); }
  AVX2 static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  AVX2 static F set1(float v) { return _mm256_set1_ps(v); }
  AVX2 static float total(const GroupScales& gs, int r, int64_t groups, F acc) {
    return hsum256(zero_terms_avx2(gs, r, groups, acc));
  }
};
namespace avx2 {
using V = Vec256;
#define TORCHAO_CPP_SIMD_TARGET AVX2
#include "simd_grouped.inc"
#undef TORCHAO_CPP_SIMD_TARGET
}  // namespace avx2

template <class T>
AVX2 void dot_f32_int_grouped_avx2(const float* x, const T* c, int64_t ld, int rows, int64_t len, int64_t groups,
                                   const GroupScales& gs, float* out) {
  if (len % IntStream256<T>::kStep == 0) return avx2::grouped(IntStream256<T>{x, c, ld}, rows, len, groups, gs, out);
  grouped_by_dots(rows, groups, gs, out,
                  [&](int r, int64_t g) { return dot_f32_int_avx2(x + g * len, c + r * ld + g * len, len); });
}

AVX2 void dot_f32_u4_grouped_avx2(const float* xl, const float* xb, const uint8_t* p, int64_t ld, int rows,
                                  int64_t len, int64_t groups, const GroupScales& gs, float* out) {
  if (len % U4Stream256::kStep == 0) return avx2::grouped(U4Stream256{xl, xb, p, ld}, rows, len, groups, gs, out);
  grouped_by_dots(rows, groups, gs, out, [&](int r, int64_t g) {
    return dot_f32_u4_avx2(xl + g * len, xb + g * len, p + r * ld + g * len, len);
  });
}

// R rows x 32 columns in 4R ymm accumulators (16 registers: R <= 3).
template <int R>
AVX2 void gemm_tile_avx2(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc,
                         bool accumulate) {
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8 * j) : _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + k);
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + k * kGemmNR + 8 * j), acc[r][j]);
    }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 4; ++j) _mm256_storeu_ps(c + r * ldc + 8 * j, acc[r][j]);
}

AVX2 void gemm_f32_tile_avx2(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int rows,
                             bool accumulate) {
  for (int r0 = 0; r0 < rows; r0 += 3) {
    const float* ar = a + r0 * lda;
    float* cr = c + r0 * ldc;
    switch (rows - r0) {
      case 1:
        gemm_tile_avx2<1>(ar, lda, b, kc, cr, ldc, accumulate);
        break;
      case 2:
        gemm_tile_avx2<2>(ar, lda, b, kc, cr, ldc, accumulate);
        break;
      default:
        gemm_tile_avx2<3>(ar, lda, b, kc, cr, ldc, accumulate);
    }
  }
}
#endif

// The implementation table, chosen once from CPUID.
struct Impl {
  float (*sum_f32)(const float*, int64_t);
  float (*dot_f32)(const float*, const float*, int64_t);
  void (*half_to_f32)(const uint16_t*, int64_t, bool, float*);
  int32_t (*dot_i16)(const int16_t*, const int16_t*, int64_t);
  void (*dot_f32_i8_grouped)(const float*, const int8_t*, int64_t, int, int64_t, int64_t, const GroupScales&, float*);
  void (*dot_f32_u8_grouped)(const float*, const uint8_t*, int64_t, int, int64_t, int64_t, const GroupScales&, float*);
  void (*dot_f32_u4_grouped)(const float*, const float*, const uint8_t*, int64_t, int, int64_t, int64_t,
                             const GroupScales&, float*);
  void (*dot_f32_f8_grouped)(const float*, const uint8_t*, int64_t, int, int64_t, int64_t, const GroupScales&, float*,
                             bool);
  void (*gemm_f32_tile)(const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool);
  bool (*minmax_f32)(const float*, int64_t, float*, float*);
  void (*quantize_u8_shifted)(const float*, int64_t, float, float, float, float, uint8_t*);
  void (*float8_to_f32)(const uint8_t*, int64_t, bool, float*);
  void (*float8_to_bf16)(const uint8_t*, int64_t, bool, uint16_t*);
  void (*float8_grid_f32)(const float*, int64_t, float, bool, float*);
  void (*unpack_bits_u8)(const uint8_t*, int64_t, int, uint8_t*);
  void (*lut_u8_f32)(const uint8_t*, int64_t, const float*, int, float*);
  void (*dot_f32_lut_grouped)(const float*, const uint8_t*, int64_t, int, int64_t, int64_t, const GroupScales&,
                              float*, const float*, int);
  // nullptr where the CPU has no AVX512-BF16 (callers then take the float path).
  void (*dot_bf16_u4_grouped)(const uint16_t*, const uint8_t*, int64_t, int, int64_t, int64_t, const GroupScales&,
                              float*);
  // nullptr where the CPU has no AVX512-VNNI (the N-bit dot: and VBMI); callers then take the float path.
  bool (*vnni_operands)(const float*, int64_t, VnniOrder, int8_t*, float*, int);
  void (*dot_vnni_u4_grouped)(const int8_t*, const float*, const uint8_t*, int64_t, int, int64_t, int64_t,
                              const GroupScales&, float*);
  void (*dot_vnni_bits_grouped)(const int8_t*, const float*, const uint8_t*, int64_t, int, int, int64_t, int64_t,
                                const GroupScales&, float*);
  void (*dot_vnni_i8_grouped)(const int8_t*, const float*, const int8_t*, int64_t, int, int64_t, int64_t,
                              const GroupScales&, float*);
};

Impl table(Isa isa) {
#ifdef TORCHAO_CPP_X86
  if (isa == Isa::Avx512)
    return {sum_f32_avx512,
            dot_f32_avx512,
            half_to_f32_avx512,
            dot_i16_avx512,
            dot_f32_int_grouped_avx512<int8_t>,
            dot_f32_int_grouped_avx512<uint8_t>,
            dot_f32_u4_grouped_avx512,
            dot_f32_f8_grouped_avx512,
            gemm_f32_tile_avx512,
            minmax_f32_avx512,
            quantize_u8_shifted_avx512,
            float8_to_f32_avx512,
            float8_to_bf16_avx512,
            float8_grid_f32_avx512,
            cpu_features().avx512vbmi ? unpack_bits_u8_vbmi : unpack_bits_u8_bmi2,
            lut_u8_f32_avx512,
            dot_f32_lut_grouped_avx512,
            cpu_features().avx512bf16 ? dot_bf16_u4_grouped_avx512 : nullptr,
            cpu_features().avx512vnni ? vnni_operands_avx512 : nullptr,
            cpu_features().avx512vnni ? dot_vnni_u4_grouped_avx512 : nullptr,
            cpu_features().avx512vnni && cpu_features().avx512vbmi ? dot_vnni_bits_grouped_avx512 : nullptr,
            cpu_features().avx512vnni ? dot_vnni_i8_grouped_avx512 : nullptr};
  if (isa == Isa::Avx2)
    return {sum_f32_avx2,
            dot_f32_avx2,
            half_to_f32_avx2,
            dot_i16_avx2,
            dot_f32_int_grouped_avx2<int8_t>,
            dot_f32_int_grouped_avx2<uint8_t>,
            dot_f32_u4_grouped_avx2,
            dot_f32_f8_grouped_decoded<float8_to_f32_ref, dot_f32_avx2>,
            gemm_f32_tile_avx2,
            minmax_f32_ref,
            quantize_u8_shifted_ref,
            float8_to_f32_ref,
            float8_to_bf16_ref,
            float8_grid_f32_ref,
            unpack_bits_u8_bmi2,
            lut_u8_f32_avx2,
            dot_f32_lut_grouped_decoded<lut_u8_f32_avx2, dot_f32_avx2>,
            nullptr,
            nullptr,
            nullptr,
            nullptr,
            nullptr};
#endif
  return {sum_f32_ref,
          dot_f32_ref,
          half_to_f32_ref,
          dot_i16_ref,
          dot_f32_int_grouped_ref<int8_t>,
          dot_f32_int_grouped_ref<uint8_t>,
          dot_f32_u4_grouped_ref,
          dot_f32_f8_grouped_decoded<float8_to_f32_ref, dot_f32_ref>,
          gemm_f32_tile_ref,
          minmax_f32_ref,
          quantize_u8_shifted_ref,
          float8_to_f32_ref,
          float8_to_bf16_ref,
          float8_grid_f32_ref,
          unpack_bits_u8_ref,
          lut_u8_f32_ref,
          dot_f32_lut_grouped_decoded<lut_u8_f32_ref, dot_f32_ref>,
          nullptr,
          nullptr,
          nullptr,
          nullptr,
          nullptr};
}

bool supported(Isa isa) {
#ifdef TORCHAO_CPP_X86
  const auto& f = cpu_features();
  if (isa == Isa::Avx512) return f.avx512f && f.avx512bw && f.fma && f.bmi2;
  if (isa == Isa::Avx2) return f.avx2 && f.fma && f.bmi2;
#else
  if (isa != Isa::Portable) return false;
#endif
  return true;
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (supported(isa)) return isa;
  return Isa::Portable;
}

struct Active {
  Isa isa;
  Impl impl;
};

Active& active() {
  static Active a{best_isa(), table(best_isa())};
  return a;
}

const Impl& impl() { return active().impl; }

}  // namespace

Isa active_isa() { return active().isa; }

bool set_isa(Isa isa) {
  if (!supported(isa)) return false;
  active() = Active{isa, table(isa)};
  return true;
}

float sum_f32(const float* a, int64_t n) { return impl().sum_f32(a, n); }
float dot_f32(const float* a, const float* b, int64_t n) { return impl().dot_f32(a, b, n); }
int32_t dot_i16(const int16_t* a, const int16_t* b, int64_t n) { return impl().dot_i16(a, b, n); }
void half_to_f32(const uint16_t* h, int64_t n, bool bf16, float* out) { impl().half_to_f32(h, n, bf16, out); }
void dot_f32_i8_grouped(const float* x, const int8_t* c, int64_t ld, int rows, int64_t len, int64_t groups,
                        const GroupScales& gs, float* out) {
  impl().dot_f32_i8_grouped(x, c, ld, rows, len, groups, gs, out);
}
void dot_f32_u8_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t len, int64_t groups,
                        const GroupScales& gs, float* out) {
  impl().dot_f32_u8_grouped(x, c, ld, rows, len, groups, gs, out);
}
void dot_f32_u4_grouped(const float* xl, const float* xb, const uint8_t* p, int64_t ld, int rows, int64_t group_bytes,
                        int64_t groups, const GroupScales& gs, float* out) {
  impl().dot_f32_u4_grouped(xl, xb, p, ld, rows, group_bytes, groups, gs, out);
}

void u4_dot_operands(const float* x, int64_t nbytes, float* x_low, float* x_byte) {
  for (int64_t j = 0; j < nbytes; ++j) {
    x_byte[j] = x[2 * j + 1] * 0.0625f;
    x_low[j] = x[2 * j] - x_byte[j];
  }
}

bool has_dot_bf16_u4() { return impl().dot_bf16_u4_grouped != nullptr; }

void u4_bf16_operands(const uint16_t* x, int64_t nbytes, uint16_t* xp) {
  for (int64_t b = 0; b < nbytes / 64; ++b)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 32; ++i) xp[128 * b + 32 * k + i] = x[128 * b + 4 * i + k];
}

void dot_bf16_u4_grouped(const uint16_t* xp, const uint8_t* p, int64_t ld, int rows, int64_t group_bytes,
                         int64_t groups, const GroupScales& gs, float* out) {
  impl().dot_bf16_u4_grouped(xp, p, ld, rows, group_bytes, groups, gs, out);
}

bool has_dot_vnni_u4() { return impl().dot_vnni_u4_grouped != nullptr; }

bool has_dot_vnni_bits() { return impl().dot_vnni_bits_grouped != nullptr; }

bool has_dot_vnni_i8() { return impl().dot_vnni_i8_grouped != nullptr; }

bool set_dot_vnni(bool enabled) {
  const Impl full = table(active().isa);
  if (enabled && !full.dot_vnni_u4_grouped) return false;
  Impl& now = active().impl;
  now.vnni_operands = enabled ? full.vnni_operands : nullptr;
  now.dot_vnni_u4_grouped = enabled ? full.dot_vnni_u4_grouped : nullptr;
  now.dot_vnni_bits_grouped = enabled ? full.dot_vnni_bits_grouped : nullptr;
  now.dot_vnni_i8_grouped = enabled ? full.dot_vnni_i8_grouped : nullptr;
  return true;
}

bool vnni_operands(const float* x, int64_t n, VnniOrder order, int8_t* q, float* unit, int qbits) {
  return impl().vnni_operands(x, n, order, q, unit, qbits);
}

void dot_vnni_u4_grouped(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld, int rows,
                         int64_t group_bytes, int64_t groups, const GroupScales& gs, float* out) {
  impl().dot_vnni_u4_grouped(q, unit, p, ld, rows, group_bytes, groups, gs, out);
}

void dot_vnni_bits_grouped(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld, int rows, int bits,
                           int64_t group_len, int64_t groups, const GroupScales& gs, float* out) {
  impl().dot_vnni_bits_grouped(q, unit, p, ld, rows, bits, group_len, groups, gs, out);
}

void dot_vnni_i8_grouped(const int8_t* q, const float* unit, const int8_t* c, int64_t ld, int rows, int64_t group_len,
                         int64_t groups, const GroupScales& gs, float* out) {
  impl().dot_vnni_i8_grouped(q, unit, c, ld, rows, group_len, groups, gs, out);
}

void dot_f32_f8_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                        const GroupScales& gs, float* out, bool e4m3) {
  impl().dot_f32_f8_grouped(x, c, ld, rows, group_len, groups, gs, out, e4m3);
}

void gemm_f32_tile(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int rows,
                   bool accumulate) {
  impl().gemm_f32_tile(a, lda, b, kc, c, ldc, rows, accumulate);
}

bool minmax_f32(const float* x, int64_t n, float* mn, float* mx) { return impl().minmax_f32(x, n, mn, mx); }
void quantize_u8_shifted(const float* x, int64_t n, float recip, float offset, float qmin, float qmax, uint8_t* u) {
  impl().quantize_u8_shifted(x, n, recip, offset, qmin, qmax, u);
}

void float8_to_f32(const uint8_t* c, int64_t n, bool e4m3, float* out) { impl().float8_to_f32(c, n, e4m3, out); }
void float8_to_bf16(const uint8_t* c, int64_t n, bool e4m3, uint16_t* out) { impl().float8_to_bf16(c, n, e4m3, out); }
void float8_grid_f32(const float* x, int64_t n, float r, bool e4m3, float* out) {
  impl().float8_grid_f32(x, n, r, e4m3, out);
}

void unpack_bits_u8(const uint8_t* packed, int64_t n, int bits, uint8_t* out) {
  impl().unpack_bits_u8(packed, n, bits, out);
}

void lut_u8_f32(const uint8_t* c, int64_t n, const float* table, int bits, float* out) {
  impl().lut_u8_f32(c, n, table, bits, out);
}

void dot_f32_lut_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                         const GroupScales& gs, float* out, const float* table, int bits) {
  impl().dot_f32_lut_grouped(x, c, ld, rows, group_len, groups, gs, out, table, bits);
}

}  // namespace kernels
}  // namespace torchao_cpp
