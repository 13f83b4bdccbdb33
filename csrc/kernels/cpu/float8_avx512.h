// Float8 codes to float16 bits in AVX-512 registers, so that _mm512_cvtph_ps
// turns 32 codes into floats in two instructions: shared by the dense float8
// weight streams (simd.cpp) and the 2:4 float8 GEMM (sparse24.cpp).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

namespace torchao_cpp {
namespace kernels {

// Bytes b (one per 16-bit lane) as float16 bits: e5m2 is the high byte of a
// float16; e4m3fn becomes the float16 of value * 2^-8 (sign moved from bit 14
// to 15 by adding that bit to itself), so callers multiply their e4m3fn sums by
// 2^8 (exact), and its NaN codes (0x7F, 0xFF) become a float16 NaN.
template <bool E4M3>
__attribute__((target("avx512f,avx512bw"))) inline __m512i float8_to_f16_bits(__m512i b) {
  if constexpr (E4M3) {
    const __m512i lo = _mm512_slli_epi16(b, 7);
    const __m512i h = _mm512_add_epi16(lo, _mm512_and_si512(lo, _mm512_set1_epi16(0x4000)));
    const __mmask32 nan = _mm512_cmpeq_epi16_mask(_mm512_or_si512(b, _mm512_set1_epi16(0x80)), _mm512_set1_epi16(0xFF));
    return _mm512_mask_mov_epi16(h, nan, _mm512_set1_epi16(0x7E00));
  } else {
    return _mm512_slli_epi16(b, 8);
  }
}

}  // namespace kernels
}  // namespace torchao_cpp
#endif
