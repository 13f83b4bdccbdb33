// Torch-free float-x (sub-byte float) codes: torchao's FPXWeightOnlyConfig formats.
//
// A code of N = 1 + ebits + mbits bits (N <= 8): sign at bit ebits + mbits, then ebits exponent bits with
// bias 2^(ebits-1) - 1, then mbits mantissa bits. No code is Inf or NaN: every exponent field is a normal
// number (exponent field 0: subnormals, value = mantissa * 2^(1 - bias - mbits)). Encoding rounds to
// nearest, ties to even, saturates past the largest normal (sign kept) and flushes what rounds below the
// smallest subnormal to a signed zero: the numerics of torchao's _f32_to_floatx_unpacked /
// _floatx_unpacked_to_f32, bit for bit (NaN inputs included, see f32_to_floatx).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "numeric.h"

namespace torchao_cpp {
namespace kernels {

// 1 + ebits + mbits <= 8, ebits >= 1, mbits >= 0.
inline bool floatx_format_valid(int64_t ebits, int64_t mbits) {
  return ebits >= 1 && mbits >= 0 && ebits <= 7 && mbits <= 7 - ebits;
}

// The code dtype name of a format: "fp6_e3m2" (N, ebits, mbits).
inline std::string floatx_name(int ebits, int mbits) {
  return "fp" + std::to_string(1 + ebits + mbits) + "_e" + std::to_string(ebits) + "m" + std::to_string(mbits);
}

// Parses floatx_name's form; false for anything else (or an invalid format).
inline bool floatx_parse_name(const std::string& s, int* ebits, int* mbits) {
  // "fp" N "_e" E "m" M, one digit each.
  if (s.size() != 8 || s.compare(0, 2, "fp") != 0 || s[3] != '_' || s[4] != 'e' || s[6] != 'm') return false;
  const auto digit = [](char c) { return c >= '0' && c <= '9' ? c - '0' : -1; };
  const int n = digit(s[2]), e = digit(s[5]), m = digit(s[7]);
  if (n < 0 || e < 0 || m < 0 || !floatx_format_valid(e, m) || n != 1 + e + m) return false;
  *ebits = e;
  *mbits = m;
  return true;
}

inline int floatx_exp_bias(int ebits) { return (1 << (ebits - 1)) - 1; }

// Largest code value: all exponent and mantissa bits set (exactly representable in float32).
inline float floatx_max_normal(int ebits, int mbits) {
  const int max_exp = ((1 << ebits) - 1) - floatx_exp_bias(ebits);
  return float(std::ldexp(double((1 << (mbits + 1)) - 1), max_exp - mbits));
}

// Value of a code (bits above N are ignored).
inline float floatx_to_f32(uint32_t code, int ebits, int mbits) {
  const int bias = floatx_exp_bias(ebits);
  const bool neg = (code >> (ebits + mbits)) & 1u;
  const int exp = int((code >> mbits) & ((1u << ebits) - 1u));
  const int mant = int(code & ((1u << mbits) - 1u));
  const double v = exp == 0 ? std::ldexp(double(mant), 1 - bias - mbits)
                            : std::ldexp(double((1 << mbits) + mant), exp - bias - mbits);
  return neg ? -float(v) : float(v);
}

// float32 -> code, as torchao's _f32_to_floatx_unpacked computes it: saturate at and above the largest
// normal, add-and-subtract a magic float below the smallest normal (float32 rounding gives ties to even),
// integer rounding of the float32 bits otherwise. A NaN fails both range comparisons and takes the
// integer path on its bits, which gives whatever code those bits make (truncated to 8 bits, with the
// NaN's sign bit): e.g. fp6 e3m2 maps the default +NaN (0x7fc00000) to 14 (1.5) and -NaN to 46.
inline uint8_t f32_to_floatx(float xf, int ebits, int mbits) {
  constexpr int kMbitsF32 = 23, kF32Bias = 127;
  const int bias = floatx_exp_bias(ebits);
  const uint32_t max_int = (1u << (ebits + mbits)) - 1u;
  const uint32_t sign_mask = 1u << (ebits + mbits);
  const int32_t magic_adder = (int32_t(1) << (kMbitsF32 - mbits - 1)) - 1;
  const float max_normal = floatx_max_normal(ebits, mbits);
  const float min_normal = float(std::ldexp(1.0, 1 - bias));
  const int32_t denorm_mask_int = ((kF32Bias - bias) + (kMbitsF32 - mbits) + 1) << kMbitsF32;
  const float denorm_mask_float = bits_float(uint32_t(denorm_mask_int));

  const uint32_t bits = float_bits(xf);
  const uint32_t sign = bits & 0x80000000u;
  const float x = bits_float(bits ^ sign);
  uint32_t r;
  if (x >= max_normal) {
    r = max_int;
  } else if (x < min_normal) {
    // volatile: the sum must be rounded to float32 (no contraction, no excess precision).
    volatile float d = x + denorm_mask_float;
    r = uint32_t(int32_t(float_bits(d)) - denorm_mask_int);
  } else {
    int32_t n = int32_t(float_bits(x));  // < 0x7fffffff + a negative adjustment: no overflow
    const int32_t mant_odd = (n >> (kMbitsF32 - mbits)) & 1;
    n += int32_t(uint32_t(bias - kF32Bias) << kMbitsF32) + magic_adder;
    n += mant_odd;
    r = uint32_t(n >> (kMbitsF32 - mbits));
  }
  r &= 0xffu;  // torch's int32 -> uint8 conversion
  // The sign (torchao shifts the int32 sign bit arithmetically down to bit ebits + mbits and masks it).
  const uint32_t sign_lp = sign ? sign_mask : 0u;
  return uint8_t(r | sign_lp);
}

// The 2^N values of a format's codes, built once for every format (index: code).
inline const float* floatx_table(int ebits, int mbits) {
  if (!floatx_format_valid(ebits, mbits)) throw std::invalid_argument("floatx: invalid (ebits, mbits)");
  static const std::vector<std::vector<float>> tables = [] {
    std::vector<std::vector<float>> t(64);
    for (int e = 1; e <= 7; ++e)
      for (int m = 0; m <= 7 - e; ++m) {
        auto& v = t[e * 8 + m];
        v.resize(size_t(1) << (1 + e + m));
        for (size_t c = 0; c < v.size(); ++c) v[c] = floatx_to_f32(uint32_t(c), e, m);
      }
    return t;
  }();
  return tables[ebits * 8 + mbits].data();
}

// choose_qparams_affine_floatx per row of an N x K weight: max|w| over the row in float32, clamped to
// 1e-12, divided by the largest normal (float32), then rounded to TS. Returns the first row that holds a
// NaN or Inf (its scale is not written), or -1.
template <class T, class TS>
int64_t floatx_choose_qparams_rows(const T* w, int64_t N, int64_t K, int ebits, int mbits, TS* scale) {
  const float max_normal = floatx_max_normal(ebits, mbits);
  for (int64_t n = 0; n < N; ++n) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(to_float(w[n * K + k]));
      if (!std::isfinite(a)) return n;
      amax = std::max(amax, a);
    }
    scale[n] = from_float<TS>(std::max(amax, 1e-12f) / max_normal);
  }
  return -1;
}

// quantize_affine_floatx: code of float32(w) / float32(scale[row]) for each element.
template <class T, class TS>
void floatx_quantize_rows(const T* w, const TS* scale, int64_t N, int64_t K, int ebits, int mbits, uint8_t* out) {
  for (int64_t n = 0; n < N; ++n) {
    const float s = to_float(scale[n]);
    for (int64_t k = 0; k < K; ++k) out[n * K + k] = f32_to_floatx(to_float(w[n * K + k]) / s, ebits, mbits);
  }
}

// dequantize_affine_floatx: value(code) * float32(scale[row]), rounded to TO.
template <class TS, class TO>
void floatx_dequantize_rows(const uint8_t* codes, const TS* scale, int64_t N, int64_t K, int ebits, int mbits,
                            TO* out) {
  const float* table = floatx_table(ebits, mbits);
  const uint32_t mask = (1u << (1 + ebits + mbits)) - 1u;
  for (int64_t n = 0; n < N; ++n) {
    const float s = to_float(scale[n]);
    for (int64_t k = 0; k < K; ++k) out[n * K + k] = from_float<TO>(table[codes[n * K + k] & mask] * s);
  }
}

}  // namespace kernels
}  // namespace torchao_cpp
