// Torch-free checks of the CUDA weight-only kernels against a double-precision
// host reference (run on the GPU machine: scripts/gpu_test.sh). With
// --bench [format [rows [K N]]] it times the int4, int8 and float8 decode kernels
// against the device's copy bandwidth instead.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.cuh"
#include "kernels/cpu/numeric.h"
#include "kernels/cuda/weight_only_linear.cuh"

namespace k = torchao_cpp::kernels::cuda;

template <class T>
float to_f(T v);
template <>
float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
float to_f(__half v) { return __half2float(v); }
template <class T>
T from_f(float v);
template <>
__nv_bfloat16 from_f(float v) { return __float2bfloat16_rn(v); }
template <>
__half from_f(float v) { return __float2half_rn(v); }

struct Case {
  int64_t M, N, K, group, ldx;
  k::CodeFormat format;
  k::ZeroDomain domain;
  bool bias;
};

int bits_of(k::CodeFormat f) { return f == k::CodeFormat::Uint4 ? 4 : 8; }
bool is_float8(k::CodeFormat f) { return f == k::CodeFormat::Float8E4M3 || f == k::CodeFormat::Float8E5M2; }

// The stored code as the kernel reads it: an integer, or a float8 value.
double code_value(const std::vector<uint8_t>& codes, int64_t row_bytes, k::CodeFormat f, int64_t n, int64_t kk) {
  const uint8_t b = codes[n * row_bytes + (f == k::CodeFormat::Uint4 ? kk / 2 : kk)];
  namespace kn = torchao_cpp::kernels;
  switch (f) {
    case k::CodeFormat::Uint4:
      return (b >> (4 * (kk % 2))) & 15;
    case k::CodeFormat::Int8:
      return int8_t(b);
    case k::CodeFormat::Float8E4M3:
      return kn::float8_to_float<kn::Float8Format::E4M3FN>(b);
    case k::CodeFormat::Float8E5M2:
      return kn::float8_to_float<kn::Float8Format::E5M2>(b);
  }
  return 0;
}

// Up to 16 rows, launch tunings besides the default: an uneven K split over 3 warps with 3 K blocks in
// flight, two tiles and staged activations; one warp with one tile loading activations as used; the kernel
// used from 17 rows; 4 warps of 2 tiles (the earlier default up to 8 rows); the 64-register build with
// activations loaded as used, and the 128-register one with 16 warps (up to 8 rows: the other default);
// those with 2 K blocks in flight once with each warp step a pair of K blocks (WeightOnlyArgs::pairs 1,
// the default only for long runs of bytes) and once with one (-1); four tiles a warp (4-bit codes at 9-16
// rows; two elsewhere) with the default launch, over 3 warps with staged activations and pairs of K blocks,
// in one warp, and over 4 warps with staged activations, one K block a step (their fastest launch where
// 64-row blocks fill the GPU, the H100's (4096, 14336); not a default yet).
std::vector<std::vector<int>> tunings(int64_t M) {
  std::vector<std::vector<int>> t = {{0, 0, 0, 0}};
  if (M <= 16)
    t.insert(t.end(), {{3, 3, 2, 1}, {1, 2, 1, -1, 0, 1}, {0, -1, 0, 0}, {4, 2, 2, 1, 0, 1}, {8, 2, 1, -1, 2, 1},
                       {16, 2, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 1}, {1, 2, 1, -1, 0, -1}, {8, 2, 1, -1, 2, -1},
                       {3, 2, 2, 1, 0, -1}, {0, 0, 4, 0}, {3, 2, 4, 1, 0, 1}, {1, 2, 4, -1, 0, -1},
                       {4, 2, 4, 1, 0, -1}});
  return t;
}
// The kernel arguments of a case (default launch tuning).
template <class T>
k::WeightOnlyArgs<T> args_for(const Case& c, const T* x, const uint8_t* codes, const T* scale, const T* zero,
                              const T* bias, T* out) {
  const int bits = bits_of(c.format);
  k::WeightOnlyArgs<T> a;
  a.x = x;
  a.ldx = c.ldx;
  a.codes = codes;
  a.format = c.format;
  // The packed 4-bit format stores code - quant_min: exercise a signed range too.
  a.code_offset = bits == 4 && c.domain != k::ZeroDomain::Float ? -8.0f : 0.0f;
  a.scale = scale;
  a.zero = c.domain == k::ZeroDomain::None ? nullptr : zero;
  a.domain = c.domain;
  a.mid = bits == 4 ? 8.0f : 0.0f;
  a.bias = bias;
  a.M = c.M;
  a.N = c.N;
  a.K = c.K;
  a.group_size = c.group;
  a.out = out;
  return a;
}
template <class T>
void tune(k::WeightOnlyArgs<T>& a, const std::vector<int>& t) {
  a.warps = t[0];
  a.depth = t[1];
  a.tiles = t[2];
  a.stage = t[3];
  a.occupancy = t.size() > 4 ? t[4] : 0;
  a.pairs = t.size() > 5 ? t[5] : 0;
}

// The weights the linear kernels multiply, exactly: 8 one-hot activation rows
// pick 8 columns of W (out[m, n] = W[n, k_m], exact in float32 and in T), which
// must equal weight_only_dequantize's W for every code value (row n holds code
// n + 37 k at column k, so each picked column runs through all 256 bytes or 16
// nibbles) and every launch tuning. The kernels decode bytes for bfloat16 by two
// routes (float32 in the dequantize and GEMM kernels, exact bfloat16 codes in
// the gemv), so this pins them to the same rounding; float8 with bfloat16
// likewise (float32 against a bfloat16 product with s * 2^120, which a warp's
// K block whose rows include a scale of 2^8 or more leaves for float32: `big`
// gives every 37th row such a scale, 300 or 3e5). Returns the mismatches.
template <class T>
int check_weights(k::CodeFormat f, k::ZeroDomain d, std::mt19937& rng, const char* tname, bool big = false) {
  const int64_t M = 8, N = 256, K = 1024, group = 128, G = K / group, row_bytes = K * bits_of(f) / 8;
  std::uniform_real_distribution<float> us(0.005f, 0.02f), uz(-0.1f, 0.1f);
  std::uniform_int_distribution<int> uzi(-3, 3);
  std::vector<T> x(M * K, from_f<T>(0.0f)), scale(N * G), zero(N * G), out(M * N), w(N * K);
  std::vector<uint8_t> codes(N * row_bytes);
  int64_t picked[M];
  for (int64_t m = 0; m < M; ++m) {
    picked[m] = 131 * m + 7;  // different K blocks, lanes and groups
    x[m * K + picked[m]] = from_f<T>(1.0f);
  }
  for (auto& v : scale) v = from_f<T>(us(rng));
  if (big)
    for (int64_t i = 0; i < N * G; i += 37 * G) scale[i] = from_f<T>((i / (37 * G)) % 2 ? 300.0f : 3.0e5f);
  for (auto& v : zero) v = from_f<T>(d == k::ZeroDomain::Int ? float(uzi(rng)) : uz(rng));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kk = 0; kk < K; ++kk) {
      uint8_t b = uint8_t(n + 37 * kk);
      if (f == k::CodeFormat::Float8E4M3 && (b & 0x7f) == 0x7f) b ^= 1;
      if (f == k::CodeFormat::Float8E5M2 && (b & 0x7c) == 0x7c) b ^= 0x40;
      uint8_t& c = codes[n * row_bytes + (f == k::CodeFormat::Uint4 ? kk / 2 : kk)];
      c = f == k::CodeFormat::Uint4 ? uint8_t(c | (b & 15) << (4 * (kk % 2))) : b;
    }
  DeviceBuffer<T> dx(x), ds(scale), dz(zero), dout(out), dw(w);
  DeviceBuffer<uint8_t> dc(codes);
  const Case c{M, N, K, group, K, f, d, false};
  k::WeightOnlyArgs<T> a = args_for(c, dx.p, dc.p, ds.p, dz.p, static_cast<const T*>(nullptr), dout.p);
  TAO_CHECK_CUDA(k::weight_only_dequantize<T>(a, dw.p, 0));
  TAO_CHECK_CUDA(cudaMemcpy(w.data(), dw.p, w.size() * sizeof(T), cudaMemcpyDeviceToHost));
  int bad = 0;
  for (const auto& t : tunings(M)) {
    tune(a, t);
    TAO_CHECK_CUDA(cudaMemset(dout.p, 0xFF, out.size() * sizeof(T)));
    TAO_CHECK_CUDA(k::weight_only_linear<T>(a, 0));
    TAO_CHECK_CUDA(cudaMemcpy(out.data(), dout.p, out.size() * sizeof(T), cudaMemcpyDeviceToHost));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float got = to_f(out[m * N + n]), want = to_f(w[n * K + picked[m]]);
        if (!(got == want)) {
          if (bad < 5)
            std::fprintf(stderr, "  %s weights format=%d domain=%d big=%d tuning warps=%d depth=%d: W[%ld,%ld] = %g, dequantize %g\n",
                         tname, int(f), int(d), int(big), t[0], t[1], long(n), long(picked[m]), got, want);
          ++bad;
        }
      }
  }
  return bad;
}

// Random problem; returns the number of outputs outside tolerance.
template <class T>
int check(const Case& c, std::mt19937& rng, const char* tname) {
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> us(0.005f, 0.02f), uz(-0.1f, 0.1f);
  std::uniform_int_distribution<int> ub(0, 255), uzi(-3, 3);
  const int bits = bits_of(c.format);
  const int64_t G = c.K / c.group, row_bytes = c.K * bits / 8;
  std::vector<T> x(c.M * c.ldx), scale(c.N * G), zero(c.N * G), bias(c.N), out(c.M * c.N);
  std::vector<uint8_t> codes(c.N * row_bytes);
  for (auto& v : x) v = from_f<T>(nd(rng));
  for (auto& v : scale) v = from_f<T>(us(rng));
  for (auto& v : zero) v = from_f<T>(c.domain == k::ZeroDomain::Int ? float(uzi(rng)) : uz(rng));
  for (auto& v : bias) v = from_f<T>(nd(rng));
  for (auto& v : codes) {
    v = uint8_t(ub(rng));
    // Finite float8 values only (e4m3fn: 0x7f/0xff are NaN; e5m2: exponent 31 is inf/NaN).
    if (c.format == k::CodeFormat::Float8E4M3 && (v & 0x7f) == 0x7f) v ^= 1;
    if (c.format == k::CodeFormat::Float8E5M2 && (v & 0x7c) == 0x7c) v ^= 0x40;
  }
  DeviceBuffer<T> dx(x), ds(scale), dz(zero), db(bias), dout(out);
  DeviceBuffer<uint8_t> dc(codes);
  k::WeightOnlyArgs<T> a = args_for(c, dx.p, dc.p, ds.p, dz.p, c.bias ? db.p : nullptr, dout.p);
  std::vector<std::vector<T>> outs;
  for (const auto& t : tunings(c.M)) {
    tune(a, t);
    TAO_CHECK_CUDA(cudaMemset(dout.p, 0xFF, out.size() * sizeof(T)));  // NaN: an output left unwritten fails
    TAO_CHECK_CUDA(k::weight_only_linear<T>(a, 0));
    TAO_CHECK_CUDA(cudaMemcpy(out.data(), dout.p, out.size() * sizeof(T), cudaMemcpyDeviceToHost));
    outs.push_back(out);
  }
  std::vector<T> wdq(c.N * c.K);
  DeviceBuffer<T> dw(wdq);
  TAO_CHECK_CUDA(k::weight_only_dequantize<T>(a, dw.p, 0));
  TAO_CHECK_CUDA(cudaMemcpy(wdq.data(), dw.p, wdq.size() * sizeof(T), cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double ref = c.bias ? double(to_f(bias[n])) : 0.0, mag = std::fabs(ref);
      for (int64_t kk = 0; kk < c.K; ++kk) {
        const double q = code_value(codes, row_bytes, c.format, n, kk) + double(a.code_offset);
        const int64_t g = n * G + kk / c.group;
        const double s = to_f(scale[g]), z = to_f(zero[g]);
        const double w = c.domain == k::ZeroDomain::Float ? (q - a.mid) * s + z
                         : c.domain == k::ZeroDomain::Int ? (q - z) * s
                                                          : q * s;
        // Both kernels round W once to T, as torchao's dequantize does.
        const double wr = to_f(from_f<T>(float(w)));
        ref += double(to_f(x[m * c.ldx + kk])) * wr;
        // The dequantized weight: w rounded once to T (half an ulp, plus float32 arithmetic).
        if (m == 0 && !(std::fabs(double(to_f(wdq[n * c.K + kk])) - w) <= std::ldexp(std::fabs(w), -8) + 1e-6)) {
          if (bad < 5)
            std::fprintf(stderr, "  %s dequantize format=%d: W[%ld,%ld] = %g, reference %g\n", tname, int(c.format),
                         long(n), long(kk), double(to_f(wdq[n * c.K + kk])), w);
          ++bad;
        }
        mag += std::fabs(double(to_f(x[m * c.ldx + kk])) * wr);
      }
      for (size_t t = 0; t < outs.size(); ++t) {
        const double got = to_f(outs[t][m * c.N + n]);
        // One rounding of the output to T plus float32 accumulation (and the rare
        // weight where float32 then T rounds differently from T alone).
        const double tol = std::ldexp(std::fabs(ref), -7) + 2e-5 * mag;
        if (!(std::fabs(got - ref) <= tol)) {
          if (bad < 5)
            std::fprintf(stderr, "  %s format=%d domain=%d M=%ld N=%ld K=%ld g=%ld tuning %zu: out[%ld,%ld] = %g, reference %g\n",
                         tname, int(c.format), int(c.domain), long(c.M), long(c.N), long(c.K), long(c.group), t, long(m),
                         long(n), got, ref);
          ++bad;
        }
      }
    }
  return bad;
}

// only_format / only_rows >= 0 restrict the run (for a profiler); K, N > 0
// replace the three shapes by one.
// defaults_only: the default launch of each case, no sweep of tunings.
int bench(int only_format, int64_t only_rows, int64_t only_k, int64_t only_n, bool defaults_only) {
  cudaDeviceProp prop;
  TAO_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  // Device-to-device copy bandwidth: bytes read + written per second.
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  TAO_CHECK_CUDA(cudaMalloc(&a, bytes));
  TAO_CHECK_CUDA(cudaMalloc(&b, bytes));
  cudaEvent_t e0, e1;
  TAO_CHECK_CUDA(cudaEventCreate(&e0));
  TAO_CHECK_CUDA(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) TAO_CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  TAO_CHECK_CUDA(cudaEventRecord(e0));
  for (int i = 0; i < 10; ++i) TAO_CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  TAO_CHECK_CUDA(cudaEventRecord(e1));
  TAO_CHECK_CUDA(cudaEventSynchronize(e1));
  float ms;
  TAO_CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
  const double copy_bw = 2.0 * bytes * 10 / (ms * 1e-3);
  std::printf("%s: device-to-device copy %.0f GB/s (read + write)\n", prop.name, copy_bw / 1e9);
  TAO_CHECK_CUDA(cudaFree(a));
  TAO_CHECK_CUDA(cudaFree(b));
  std::vector<std::array<int64_t, 2>> shapes = {{4096, 4096}, {4096, 14336}, {14336, 4096}};
  if (only_k > 0 && only_n > 0) shapes = {{only_k, only_n}};
  const k::CodeFormat formats[3] = {k::CodeFormat::Uint4, k::CodeFormat::Int8, k::CodeFormat::Float8E4M3};
  const char* names[3] = {"int4 g128", "int8 per-channel", "float8 e4m3 per-row"};
  // Launch tuning, 0 = the kernel's defaults; the others show what the defaults give up
  // (up to 16 rows: warps per block, K blocks in flight, tiles per warp (4: 4-bit codes at 9-16 rows only);
  // depth -1: the kernel used from 17 rows).
  // Up to 16 rows, activations staged through shared memory (stage 1) or loaded as used (-1). Up to 8 rows
  // of 8-bit codes, occupancy 2: the 64-register build (WeightOnlyArgs::occupancy).
  // pairs 1: two K blocks a warp step, -1: one (2 K blocks in flight only; 0: the default).
  struct Tune {
    int warps, depth, tiles, stage, occupancy, pairs;
  };
  std::vector<Tune> few = {{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, -1}, {0, 0, 0, 1, 0, 0}, {0, 0, 0, -1, 0, 0}, {0, 0, 2, 0, 0, 0}, {0, 0, 4, 0, 0, 0}, {0, -1, 0, 0, 0, 0}};
  for (int warps : {4, 8, 16})
    for (int tiles : {1, 2, 4})
      for (int depth : {2, 3})
        for (int stage : {1, -1})
          for (int pairs : {1, -1})
            if (depth == 2 || pairs == 1) few.push_back({warps, depth, tiles, stage, 0, depth == 2 ? pairs : 0});
  for (int warps : {4, 8, 16})  // the 64-register build (bytes only, 2 K blocks in flight)
    for (int stage : {1, -1})
      for (int pairs : {1, -1}) few.push_back({warps, 2, 1, stage, 2, pairs});
  const std::vector<Tune> many = {{0, 0, 0, 0, 0, 0}};
  for (int f = 0; f < 3; ++f)
    for (int64_t M : {1, 16, 32, 64})
      for (const auto& kn : shapes)
        for (const Tune& tune : M <= 16 ? few : many) {
          if (defaults_only && (tune.warps || tune.depth || tune.tiles || tune.stage || tune.occupancy || tune.pairs)) continue;
          if ((only_format >= 0 && f != only_format) || (only_rows >= 0 && M != only_rows)) continue;
          if (tune.occupancy == 2 && (f == 0 || M > 8)) continue;  // not built there
          // int4: group 128 with float zero points (tinygemm); 8-bit: per channel, symmetric.
          const int bits = bits_of(formats[f]);
          const int64_t K = kn[0], N = kn[1], group = bits == 4 ? 128 : K, G = K / group;
          const int64_t cbytes = N * K * bits / 8, qp = (bits == 4 ? 2 : 1) * N * G;
          // Enough weight copies to exceed the 50 MB L2 several times over.
          const int64_t wbytes = cbytes + 2 * qp, copies = std::max<int64_t>(2, int64_t(400e6 / wbytes));
          __nv_bfloat16 *x, *sz, *out;
          uint8_t* codes;
          TAO_CHECK_CUDA(cudaMalloc(&x, M * K * 2));
          TAO_CHECK_CUDA(cudaMalloc(&out, M * N * 2));
          TAO_CHECK_CUDA(cudaMalloc(&codes, copies * cbytes));
          TAO_CHECK_CUDA(cudaMalloc(&sz, copies * qp * 2));
          TAO_CHECK_CUDA(cudaMemset(x, 0, M * K * 2));
          TAO_CHECK_CUDA(cudaMemset(codes, 0x37, copies * cbytes));
          TAO_CHECK_CUDA(cudaMemset(sz, 0, copies * qp * 2));
          k::WeightOnlyArgs<__nv_bfloat16> a;
          a.x = x;
          a.ldx = K;
          a.format = formats[f];
          a.domain = bits == 4 ? k::ZeroDomain::Float : k::ZeroDomain::None;
          a.mid = bits == 4 ? 8.0f : 0.0f;
          a.M = M;
          a.N = N;
          a.K = K;
          a.group_size = group;
          a.out = out;
          a.warps = tune.warps;
          a.depth = tune.depth;
          a.tiles = tune.tiles;
          a.stage = tune.stage;
          a.occupancy = tune.occupancy;
          a.pairs = tune.pairs;
          auto run = [&](int64_t i) {
            const int64_t c = i % copies;
            a.codes = codes + c * cbytes;
            a.scale = sz + c * qp;
            a.zero = bits == 4 ? a.scale + N * G : nullptr;
            TAO_CHECK_CUDA(k::weight_only_linear(a, 0));
          };
          for (int i = 0; i < 20; ++i) run(i);
          const int iters = 200;
          TAO_CHECK_CUDA(cudaEventRecord(e0));
          for (int i = 0; i < iters; ++i) run(i);
          TAO_CHECK_CUDA(cudaEventRecord(e1));
          TAO_CHECK_CUDA(cudaEventSynchronize(e1));
          TAO_CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
          const double us = ms * 1e3 / iters, gbs = wbytes / (us * 1e-6);
          std::printf("%s bf16 M=%ld K=%ld N=%ld warps=%d depth=%d tiles=%d stage=%d occ=%d pairs=%d: %.1f us, weights %.0f GB/s (%.0f %% of copy bandwidth)\n",
                      names[f], long(M), long(K), long(N), tune.warps, tune.depth, tune.tiles, tune.stage, tune.occupancy, tune.pairs, us, gbs / 1e9,
                      100.0 * gbs / copy_bw);
          cudaFree(x);
          cudaFree(out);
          cudaFree(codes);
          cudaFree(sz);
        }
  return 0;
}

// tests/cuda/test_sparse24_int4.cu
int run_sparse24_int4_tests();
int bench_sparse24_int4();
// tests/cuda/test_sparse24_float8.cu
int run_sparse24_float8_tests();
int bench_sparse24_float8();
// tests/cuda/test_activation_quant.cu
int run_activation_quant_tests();
// tests/cuda/test_int8_linear.cu
int run_int8_linear_tests();
int bench_int8_linear();

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--bench-sparse24") return bench_sparse24_int4() + bench_sparse24_float8();
  if (argc > 1 && std::string(argv[1]) == "--bench-int8") return bench_int8_linear();
  if (argc > 1 && std::string(argv[1]) == "--bench")
    return bench(argc > 2 ? std::atoi(argv[2]) : -1, argc > 3 ? std::atol(argv[3]) : -1, argc > 5 ? std::atol(argv[4]) : 0,
                 argc > 5 ? std::atol(argv[5]) : 0, argc > 6 && std::string(argv[6]) == "defaults");
  std::mt19937 rng(0);
  int bad = 0, cases = 0;
  const k::ZeroDomain domains[3] = {k::ZeroDomain::None, k::ZeroDomain::Int, k::ZeroDomain::Float};
  const k::CodeFormat formats[4] = {k::CodeFormat::Uint4, k::CodeFormat::Int8, k::CodeFormat::Float8E4M3,
                                    k::CodeFormat::Float8E5M2};
  for (const k::CodeFormat f : formats)
    for (int64_t M : {1, 2, 3, 5, 8, 13, 16, 33})
      // K = 160: a partial last K block (128 int4 / 64 byte codes).
      for (int64_t K : {160, 256, 1024, 4096})
        for (int64_t group : {int64_t(32), int64_t(64), int64_t(128), int64_t(256), K})
          for (int64_t N : {37, 256}) {
            if (K % group || (K == 4096 && M > 16)) continue;
            // int4: tinygemm's float zero points; int8 rotates through the domains; float8 has none.
            const k::ZeroDomain d = is_float8(f)                                   ? k::ZeroDomain::None
                                    : f == k::CodeFormat::Uint4 && cases % 3 ? k::ZeroDomain::Float
                                                                             : domains[cases % 3];
            // odd M: unaligned rows (scalar loads); even M: vector loads
            const Case c{M, N, K, group, M % 2 ? K + 3 : K + 8, f, d, (cases / 2) % 2 == 1};
            bad += check<__nv_bfloat16>(c, rng, "bfloat16") + check<__half>(c, rng, "float16");
            cases += 2;
          }
  int weight_bad = 0, weight_cases = 0;
  for (const k::CodeFormat f : formats)
    for (const k::ZeroDomain d : domains) {
      if (is_float8(f) && d != k::ZeroDomain::None) continue;
      weight_bad += check_weights<__nv_bfloat16>(f, d, rng, "bfloat16") + check_weights<__half>(f, d, rng, "float16");
      weight_cases += 2;
      if (is_float8(f)) {  // scales of 2^8 and more (past the bfloat16 product route's range)
        weight_bad += check_weights<__nv_bfloat16>(f, d, rng, "bfloat16", true);
        ++weight_cases;
      }
    }
  // Bad arguments are refused before any launch.
  const bool refused = k::int4_weight_only_linear<__half>(nullptr, 48, nullptr, nullptr, nullptr, 1, 1, 48, 32,
                                                          nullptr, 0) == cudaErrorInvalidValue;
  k::WeightOnlyArgs<__half> bad_bits;
  bad_bits.format = k::CodeFormat(7);
  bad_bits.M = bad_bits.N = 1;
  bad_bits.K = bad_bits.group_size = 128;
  k::WeightOnlyArgs<__half> float8_zero = bad_bits;
  float8_zero.format = k::CodeFormat::Float8E4M3;
  float8_zero.domain = k::ZeroDomain::Int;
  const bool refused_bits = k::weight_only_linear(bad_bits, 0) == cudaErrorInvalidValue &&
                            k::weight_only_linear(float8_zero, 0) == cudaErrorInvalidValue;
  std::printf("weight-only CUDA kernels (int4, int8, float8): %d cases, %d outputs outside tolerance, bad K refused: %s, "
              "bad format refused: %s; %d weight cases (every code, every tuning), %d weights unlike the dequantized ones\n",
              cases, bad, refused ? "yes" : "NO", refused_bits ? "yes" : "NO", weight_cases, weight_bad);
  const int sparse_bad = run_sparse24_int4_tests() + run_sparse24_float8_tests();
  const int act_bad = run_activation_quant_tests();
  const int int8_bad = run_int8_linear_tests();
  return bad == 0 && weight_bad == 0 && refused && refused_bits && sparse_bad == 0 && act_bad == 0 && int8_bad == 0 ? 0
                                                                                                                 : 1;
}
