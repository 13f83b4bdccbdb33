// Each primitive has an AVX-512, an AVX2+FMA and a portable version; the
// first call picks one from CPUID (cpu_features.h), so one binary runs on any
// x86-64 and uses the widest vectors the machine has.
#include "simd.h"

#include <immintrin.h>

#include "cpu_features.h"

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
float dot_f32_u4_ref(const float* xe, const float* xo, const uint8_t* p, int64_t nbytes) {
  float acc = 0.0f;
  for (int64_t j = 0; j < nbytes; ++j) acc += xe[j] * float(p[j] & 15) + xo[j] * float(p[j] >> 4);
  return acc;
}

template <class T>
float dot_f32_int_grouped_ref(const float* x, const T* c, int64_t len, int64_t groups, const float* gs) {
  float acc = 0.0f;
  for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_int_ref(x + g * len, c + g * len, len);
  return acc;
}
float dot_f32_u4_grouped_ref(const float* xe, const float* xo, const uint8_t* p, int64_t len, int64_t groups,
                             const float* gs) {
  float acc = 0.0f;
  for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_u4_ref(xe + g * len, xo + g * len, p + g * len, len);
  return acc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TORCHAO_CPP_X86 1
#define AVX512 __attribute__((target("avx512f,avx512bw,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

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

AVX512 float dot_f32_u4_avx512(const float* xe, const float* xo, const uint8_t* p, int64_t nbytes) {
  const __m512i mask = _mm512_set1_epi32(15);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= nbytes; j += 16) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
    s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mask)), _mm512_loadu_ps(xe + j), s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), _mm512_loadu_ps(xo + j), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + dot_f32_u4_ref(xe + j, xo + j, p + j, nbytes - j);
}

// Grouped: per-group vector partials scaled into one accumulator. Groups whose
// length is not a multiple of the vector width fall back to the per-group form.
template <class T>
AVX512 float dot_f32_int_grouped_avx512(const float* x, const T* c, int64_t len, int64_t groups, const float* gs) {
  if (len % 16) {  // per-group dots with a scalar tail
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_int_avx512(x + g * len, c + g * len, len);
    return acc;
  }
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const float* xg = x + g * len;
    const T* cg = c + g * len;
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < len; i += 16) s = _mm512_fmadd_ps(codes16_avx512(cg + i), _mm512_loadu_ps(xg + i), s);
    acc = _mm512_fmadd_ps(_mm512_set1_ps(gs[g]), s, acc);
  }
  return _mm512_reduce_add_ps(acc);
}

AVX512 float dot_f32_u4_grouped_avx512(const float* xe, const float* xo, const uint8_t* p, int64_t len, int64_t groups,
                                       const float* gs) {
  if (len % 16) {
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_u4_avx512(xe + g * len, xo + g * len, p + g * len, len);
    return acc;
  }
  const __m512i mask = _mm512_set1_epi32(15);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int64_t j = g * len; j < (g + 1) * len; j += 16) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j)));
      s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mask)), _mm512_loadu_ps(xe + j), s0);
      s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), _mm512_loadu_ps(xo + j), s1);
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(gs[g]), _mm512_add_ps(s0, s1), acc);
  }
  return _mm512_reduce_add_ps(acc);
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

AVX2 float dot_f32_u4_avx2(const float* xe, const float* xo, const uint8_t* p, int64_t nbytes) {
  const __m256i mask = _mm256_set1_epi32(15);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= nbytes; j += 8) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j)));
    s0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), _mm256_loadu_ps(xe + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), _mm256_loadu_ps(xo + j), s1);
  }
  return hsum256(_mm256_add_ps(s0, s1)) + dot_f32_u4_ref(xe + j, xo + j, p + j, nbytes - j);
}
template <class T>
AVX2 float dot_f32_int_grouped_avx2(const float* x, const T* c, int64_t len, int64_t groups, const float* gs) {
  if (len % 8) {
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_int_avx2(x + g * len, c + g * len, len);
    return acc;
  }
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = g * len; i < (g + 1) * len; i += 8)
      s = _mm256_fmadd_ps(codes8_avx2(c + i), _mm256_loadu_ps(x + i), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(gs[g]), s, acc);
  }
  return hsum256(acc);
}

AVX2 float dot_f32_u4_grouped_avx2(const float* xe, const float* xo, const uint8_t* p, int64_t len, int64_t groups,
                                   const float* gs) {
  if (len % 8) {
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) acc += gs[g] * dot_f32_u4_avx2(xe + g * len, xo + g * len, p + g * len, len);
    return acc;
  }
  const __m256i mask = _mm256_set1_epi32(15);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (int64_t j = g * len; j < (g + 1) * len; j += 8) {
      const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + j)));
      s0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), _mm256_loadu_ps(xe + j), s0);
      s1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), _mm256_loadu_ps(xo + j), s1);
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(gs[g]), _mm256_add_ps(s0, s1), acc);
  }
  return hsum256(acc);
}
#endif

// The implementation table, chosen once from CPUID.
struct Impl {
  float (*sum_f32)(const float*, int64_t);
  float (*dot_f32)(const float*, const float*, int64_t);
  int32_t (*dot_i16)(const int16_t*, const int16_t*, int64_t);
  float (*dot_f32_i8_grouped)(const float*, const int8_t*, int64_t, int64_t, const float*);
  float (*dot_f32_u8_grouped)(const float*, const uint8_t*, int64_t, int64_t, const float*);
  float (*dot_f32_u4_grouped)(const float*, const float*, const uint8_t*, int64_t, int64_t, const float*);
};

Impl table(Isa isa) {
#ifdef TORCHAO_CPP_X86
  if (isa == Isa::Avx512)
    return {sum_f32_avx512,
            dot_f32_avx512,
            dot_i16_avx512,
            dot_f32_int_grouped_avx512<int8_t>,
            dot_f32_int_grouped_avx512<uint8_t>,
            dot_f32_u4_grouped_avx512};
  if (isa == Isa::Avx2)
    return {sum_f32_avx2,
            dot_f32_avx2,
            dot_i16_avx2,
            dot_f32_int_grouped_avx2<int8_t>,
            dot_f32_int_grouped_avx2<uint8_t>,
            dot_f32_u4_grouped_avx2};
#endif
  return {sum_f32_ref,
          dot_f32_ref,
          dot_i16_ref,
          dot_f32_int_grouped_ref<int8_t>,
          dot_f32_int_grouped_ref<uint8_t>,
          dot_f32_u4_grouped_ref};
}

bool supported(Isa isa) {
#ifdef TORCHAO_CPP_X86
  const auto& f = cpu_features();
  if (isa == Isa::Avx512) return f.avx512f && f.avx512bw && f.fma;
  if (isa == Isa::Avx2) return f.avx2 && f.fma;
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
float dot_f32_i8_grouped(const float* x, const int8_t* c, int64_t len, int64_t groups, const float* gs) {
  return impl().dot_f32_i8_grouped(x, c, len, groups, gs);
}
float dot_f32_u8_grouped(const float* x, const uint8_t* c, int64_t len, int64_t groups, const float* gs) {
  return impl().dot_f32_u8_grouped(x, c, len, groups, gs);
}
float dot_f32_u4_grouped(const float* xe, const float* xo, const uint8_t* p, int64_t group_bytes, int64_t groups,
                         const float* gs) {
  return impl().dot_f32_u4_grouped(xe, xo, p, group_bytes, groups, gs);
}

}  // namespace kernels
}  // namespace torchao_cpp
