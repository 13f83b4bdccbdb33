// Torch-free scalar types and conversions used by every CPU kernel.
//
// torchao's numerics are defined by eager PyTorch ops on bfloat16/float16
// tensors: each op computes in float32 and rounds its result to the tensor's
// dtype. Kernels reproduce that bit for bit by computing in float and calling
// round_to<T>() wherever PyTorch would materialise a T tensor.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

// The CUDA kernels (kernels/cuda/) compile these scalar definitions for the
// device too, so both backends produce the same bits from one source.
#if defined(__CUDACC__)
#define TAO_HD __host__ __device__
#else
#define TAO_HD
#endif

namespace torchao_cpp {
namespace kernels {

TAO_HD inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
TAO_HD inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Storage types with the same layout as c10::BFloat16 / c10::Half.
struct bf16 {
  uint16_t x;
};
struct fp16 {
  uint16_t x;
};

TAO_HD inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return uint16_t(u >> 16);
}
TAO_HD inline float bf16_bits_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

TAO_HD inline uint16_t float_to_fp16_bits(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;  // NaN
  const int exp = int(a >> 23) - 127;
  if (exp > 15) return sign | 0x7c00;  // inf or overflow
  if (exp >= -14) {                     // normal half
    uint32_t h = (uint32_t(exp + 15) << 10) | ((a >> 13) & 0x3ffu);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may reach inf: correct
    return uint16_t(sign | h);
  }
  // Subnormal half: count units of 2^-24.
  const int shift = -exp - 1;
  if (shift > 24) return sign;
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u))) ++h;
  return uint16_t(sign | h);
}
TAO_HD inline float fp16_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    // m * 2^-24 is a normal float: the product is exact (no ldexp call on the device).
    const float v = float(m) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

template <class T>
TAO_HD inline float to_float(T v) {
  return float(v);
}
template <>
TAO_HD inline float to_float<bf16>(bf16 v) {
  return bf16_bits_to_float(v.x);
}
template <>
TAO_HD inline float to_float<fp16>(fp16 v) {
  return fp16_bits_to_float(v.x);
}

// Stores a float as T; integer types receive values that are already integral.
template <class T>
TAO_HD inline T from_float(float f) {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16{float_to_bf16_bits(f)};
  } else if constexpr (std::is_same_v<T, fp16>) {
    return fp16{float_to_fp16_bits(f)};
  } else {
    return static_cast<T>(f);
  }
}

// The value a PyTorch tensor of dtype T would hold after storing f.
template <class T>
TAO_HD inline float round_to(float f) {
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    return to_float(from_float<T>(f));
  }
}

// PyTorch's type promotion among the three float dtypes.
template <class A, class B>
using promote_t = std::conditional_t<std::is_same_v<A, B>, A, float>;

// ---------------------------------------------------------------------------
// float8 (OCP e4m3fn: no inf, 0x7f is NaN; e5m2: IEEE-like with inf).
enum class Float8Format { E4M3FN, E5M2 };

template <Float8Format F>
struct Float8Traits;
template <>
struct Float8Traits<Float8Format::E4M3FN> {
  static constexpr int kExp = 4, kMant = 3, kBias = 7;
  static constexpr uint8_t kMaxCode = 0x7e;  // 448
  static constexpr float kMax = 448.0f;
};
template <>
struct Float8Traits<Float8Format::E5M2> {
  static constexpr int kExp = 5, kMant = 2, kBias = 15;
  static constexpr uint8_t kMaxCode = 0x7b;  // 57344
  static constexpr float kMax = 57344.0f;
};

TAO_HD inline float float8_max(Float8Format f) {
  return f == Float8Format::E4M3FN ? Float8Traits<Float8Format::E4M3FN>::kMax
                                   : Float8Traits<Float8Format::E5M2>::kMax;
}

// Round to nearest even, as torch's `.to(float8)`: e4m3fn overflows to NaN,
// e5m2 to inf.
template <Float8Format F>
TAO_HD inline uint8_t float_to_float8(float f) {
  using Tr = Float8Traits<F>;
  const uint32_t u = float_bits(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7f;
  if (a == 0.0f) return sign;
  int e = std::isinf(a) ? 1000 : int((float_bits(a) >> 23) & 0xffu) - 127;
  if (e < -126) e = -127;  // float subnormal: far below any float8 subnormal
  const int min_normal = 1 - Tr::kBias;
  uint32_t code;
  if (e < min_normal) {
    code = uint32_t(std::nearbyint(std::ldexp(a, Tr::kMant - min_normal)));
  } else if (e > 2 * Tr::kBias + 1) {
    code = 0xff;  // overflow, clamped below
  } else {
    const uint32_t m = uint32_t(std::nearbyint(std::ldexp(a, Tr::kMant - e)));
    code = (uint32_t(e + Tr::kBias) << Tr::kMant) + (m - (1u << Tr::kMant));
  }
  if (code > Tr::kMaxCode) {
    code = (F == Float8Format::E4M3FN) ? 0x7fu : 0x7cu;
  }
  return uint8_t(sign | code);
}

template <Float8Format F>
TAO_HD inline float float8_to_float(uint8_t c) {
  using Tr = Float8Traits<F>;
  const bool neg = c & 0x80;
  const uint32_t e = (c & 0x7fu) >> Tr::kMant;
  const uint32_t m = c & ((1u << Tr::kMant) - 1u);
  float v;
  if (F == Float8Format::E4M3FN && (c & 0x7f) == 0x7f) {
    v = NAN;
  } else if (F == Float8Format::E5M2 && e == 0x1f) {
    v = m ? NAN : INFINITY;
  } else if (e == 0) {
    v = std::ldexp(float(m), 1 - Tr::kBias - Tr::kMant);
  } else {
    v = std::ldexp(float(m + (1u << Tr::kMant)), int(e) - Tr::kBias - Tr::kMant);
  }
  return neg ? -v : v;
}

}  // namespace kernels
}  // namespace torchao_cpp
