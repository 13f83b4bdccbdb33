#include "simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TORCHAO_CPP_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define TORCHAO_CPP_CLONES
#endif

namespace torchao_cpp {
namespace kernels {

TORCHAO_CPP_CLONES float sum_f32(const float* a, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i];
  return acc;
}

TORCHAO_CPP_CLONES float dot_f32(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

TORCHAO_CPP_CLONES int32_t dot_i16(const int16_t* a, const int16_t* b, int64_t n) {
  int32_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
  return acc;
}

TORCHAO_CPP_CLONES float dot_f32_i8(const float* x, const int8_t* c, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += x[i] * float(c[i]);
  return acc;
}

TORCHAO_CPP_CLONES float dot_f32_u8(const float* x, const uint8_t* c, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += x[i] * float(c[i]);
  return acc;
}

TORCHAO_CPP_CLONES float dot_f32_u4(const float* x_even, const float* x_odd, const uint8_t* p, int64_t nbytes) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < nbytes; ++j) acc += x_even[j] * float(p[j] & 15) + x_odd[j] * float(p[j] >> 4);
  return acc;
}

}  // namespace kernels
}  // namespace torchao_cpp
