// The activation quantizers of the dynamic linears against the CPU kernels'
// per-element functions: the float8 conversion on every float32 value, then
// quantize_activations_float8 (per row and per tensor, rows in registers,
// aligned and not, rows too long for registers) code for code.
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cuda_test_util.cuh"
#include "kernels/cuda/float8_codes.cuh"
#include "kernels/cuda/float8_linear.cuh"

namespace k = torchao_cpp::kernels;
namespace kc = torchao_cpp::kernels::cuda;

namespace {

// bits: every float32 of [lo, lo + n); counts codes unlike the scalar route and keeps the first.
template <k::Float8Format F>
__global__ void convert_all(uint64_t lo, uint64_t n, float r, unsigned long long* bad, uint32_t* first) {
  for (uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x) {
    const float a = __uint_as_float(uint32_t(lo + i)), b = __uint_as_float(~uint32_t(lo + i));
    const uint32_t got = kc::float8_code_pair<F>(a, b, r);
    const uint32_t want = uint32_t(k::quantize_float8_value<F, float>(a, r)) |
                          uint32_t(k::quantize_float8_value<F, float>(b, r)) << 8;
    if (got != want && atomicAdd(bad, 1ull) == 0) *first = uint32_t(lo + i);
  }
}

template <k::Float8Format F>
int check_conversion(const char* name) {
  DeviceBuffer<unsigned long long> bad(1);
  DeviceBuffer<uint32_t> first(1);
  int failed = 0;
  for (float r : {1.0f, 0.0123f, 121.08f, 3.0e-30f}) {
    TAO_CHECK_CUDA(cudaMemset(bad.p, 0, sizeof(unsigned long long)));
    convert_all<F><<<4096, 256>>>(0, uint64_t(1) << 32, r, bad.p, first.p);
    TAO_CHECK_CUDA(cudaGetLastError());
    const unsigned long long n = bad.host(1)[0];
    if (n) {
      const uint32_t u = first.host(1)[0];
      float a;
      std::memcpy(&a, &u, 4);
      std::printf("  %s r=%g: %llu of 2^32 codes unlike quantize_float8_value, first x=%a (0x%08x)\n", name, r, n,
                  double(a), u);
      ++failed;
    }
  }
  return failed;
}

template <class T>
T from_f(float v);
template <>
float from_f<float>(float v) { return v; }
template <>
k::bf16 from_f<k::bf16>(float v) { return k::from_float<k::bf16>(v); }

template <class T>
kc::DType dtype_of();
template <>
kc::DType dtype_of<float>() { return kc::DType::Float32; }
template <>
kc::DType dtype_of<k::bf16>() { return kc::DType::BFloat16; }

// One case: M rows of K values ldx apart (wide dynamic range, subnormal codes included).
template <class T, k::Float8Format F>
int check_quantizer(int64_t M, int64_t K, int64_t ldx, bool per_row, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> ex(-12, 12);
  std::vector<T> x(size_t(M * ldx) + 1);
  for (auto& v : x) v = from_f<T>(std::ldexp(nd(rng), ex(rng)));
  // A row 4 bytes off 16-byte alignment takes the element-wise kernels.
  const int64_t off = ldx % 2 ? 1 : 0;
  DeviceBuffer<T> dx(x);
  DeviceBuffer<uint8_t> dq{size_t(M * K)};
  DeviceBuffer<float> ds{size_t(M)};
  DeviceBuffer<uint32_t> amax(1);
  TAO_CHECK_CUDA(kc::quantize_activations_float8(dx.p + off, dtype_of<T>(), ldx, M, K, per_row, F, nullptr, dq.p,
                                                 ds.p, amax.p, 0));
  TAO_CHECK_CUDA(cudaDeviceSynchronize());
  const auto q = dq.host(size_t(M * K));
  const auto s = ds.host(size_t(per_row ? M : 1));
  const float fmax = k::Float8Traits<F>::kMax;
  int bad = 0;
  float tensor_amax = 0.0f;
  for (int64_t i = 0; i < M * ldx; ++i)
    if (i % ldx < K) tensor_amax = std::max(tensor_amax, std::fabs(k::to_float(x[size_t(i + off)])));
  for (int64_t m = 0; m < M; ++m) {
    float a = tensor_amax;
    if (per_row) {
      a = 0.0f;
      for (int64_t j = 0; j < K; ++j) a = std::max(a, std::fabs(k::to_float(x[size_t(m * ldx + j + off)])));
    }
    const float want_s = k::float8_scale_from_minmax<T, float>(-a, a, 1.0f / fmax, FLT_EPSILON);
    const float got_s = s[size_t(per_row ? m : 0)];
    if (got_s != want_s) ++bad;
    const float r = 1.0f / want_s;
    for (int64_t j = 0; j < K; ++j)
      if (q[size_t(m * K + j)] != k::quantize_float8_value<F, float>(k::to_float(x[size_t(m * ldx + j + off)]), r)) ++bad;
  }
  if (bad)
    std::printf("  float8 activations %s M=%ld K=%ld ldx=%ld: %d codes or scales unlike the CPU's\n",
                per_row ? "per row" : "per tensor", long(M), long(K), long(ldx), bad);
  return bad;
}

}  // namespace

int run_activation_quant_tests() {
  int failed = check_conversion<k::Float8Format::E4M3FN>("e4m3fn") + check_conversion<k::Float8Format::E5M2>("e5m2");
  std::mt19937 rng(7);
  int cases = 0, bad_cases = 0;
  // K = 14336: 8 chunks a thread; 20000: past the registers; 4100 / ldx odd: unaligned rows.
  const int64_t shapes[][3] = {{3, 14336, 14336}, {2, 20000, 20000}, {5, 4096, 4104}, {4, 1000, 1000},
                               {3, 300, 301}, {2, 7, 7}, {9, 4100, 4101}};
  for (const auto& sh : shapes)
    for (bool per_row : {true, false}) {
      bad_cases += check_quantizer<k::bf16, k::Float8Format::E4M3FN>(sh[0], sh[1], sh[2], per_row, rng) != 0;
      bad_cases += check_quantizer<float, k::Float8Format::E5M2>(sh[0], sh[1], sh[2], per_row, rng) != 0;
      cases += 2;
    }
  std::printf("float8 activation quantizers: conversion of every float32 (2 formats x 4 scales) %s; %d cases, %d "
              "unlike the CPU's codes\n",
              failed ? "FAILED" : "exact", cases, bad_cases);
  return failed + bad_cases;
}
