// The 2:4 int4 kernels on the sparse tensor cores (sparse24_int4_linear.cuh)
// against a double-precision reference over the dense weight each element of
// which is rounded once to T, as the kernels round it; the weight reaches
// them through the host packer (sparse24_int4_mma_pack) from the CPU's
// compressed rows, so a packer/kernel disagreement on the mma.sp operand
// layout shows up here. Run by test_weight_only_linear.cu's main.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_test_util.cuh"
#include "kernels/cpu/sparse24.h"
#include "kernels/cuda/sparse24_int4_linear.cuh"

namespace {

namespace k = torchao_cpp::kernels;
namespace kc = torchao_cpp::kernels::cuda;

float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }
float as_float(__half v) { return __half2float(v); }
template <class T>
T of_float(float v) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(v);
  else
    return __float2bfloat16_rn(v);
}

// Random 2:4 codes in [-8, 7] (both kept positions random, kept values
// possibly 0), compressed as the CPU stores MarlinSparseLayout rows.
std::vector<int8_t> random_2to4(int64_t N, int64_t K, std::mt19937& rng) {
  std::vector<int8_t> c(size_t(N * K), 0);
  std::uniform_int_distribution<int> code(-8, 7), pos(0, 3);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < K / 4; ++g) {
      const int i0 = pos(rng);
      int i1 = pos(rng);
      while (i1 == i0) i1 = pos(rng);
      c[size_t(n * K + 4 * g + i0)] = int8_t(code(rng));
      c[size_t(n * K + 4 * g + i1)] = int8_t(code(rng));
    }
  return c;
}

template <class T>
int check(int64_t M, int64_t N, int64_t K, int64_t group, bool bias, std::mt19937& rng, const char* tname) {
  const auto dense = random_2to4(N, K, rng);
  std::vector<uint8_t> rows(size_t(N * k::sparse24_row_bytes(K, 4)));
  if (k::compress_2to4(dense.data(), N, K, rows.data(), 4) >= 0) {
    std::fprintf(stderr, "  compress_2to4 refused a 2:4 weight\n");
    return 1;
  }
  const int64_t tiles = k::sparse24_mma_tiles(N);
  std::vector<uint32_t> values(size_t(tiles * K)), meta(size_t(tiles * K / 2));
  k::sparse24_int4_mma_pack(rows.data(), N, K, values.data(), meta.data());
  const int64_t G = K / group, ldx = K + (M % 2 ? 2 : 8);
  std::normal_distribution<float> nd;
  std::vector<T> x(static_cast<size_t>(M * ldx)), scale(static_cast<size_t>(N * G)), b(static_cast<size_t>(N));
  for (auto& v : x) v = of_float<T>(nd(rng));
  for (auto& v : scale) v = of_float<T>(0.02f * (1.0f + 0.2f * nd(rng)));
  for (auto& v : b) v = of_float<T>(nd(rng));
  DeviceBuffer<T> dx(x), dscale(scale), db(b), dout(size_t(M * N)), dw(size_t(N * K));
  DeviceBuffer<uint32_t> dvalues(values), dmeta(meta);
  kc::Sparse24Int4Args<T> a;
  a.x = dx.p, a.ldx = ldx, a.values = dvalues.p, a.meta = dmeta.p, a.scale = dscale.p, a.bias = bias ? db.p : nullptr;
  a.M = M, a.N = N, a.K = K, a.group_size = group, a.out = dout.p;
  TAO_CHECK_CUDA(kc::sparse24_int4_linear(a, nullptr));
  TAO_CHECK_CUDA(kc::sparse24_int4_dequantize(a, dw.p, nullptr));
  TAO_CHECK_CUDA(cudaDeviceSynchronize());
  const auto out = dout.host(size_t(M * N));
  const auto w = dw.host(size_t(N * K));
  int bad = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kk = 0; kk < K; ++kk) {
      const double want = as_float(of_float<T>(float(dense[size_t(n * K + kk)]) * as_float(scale[size_t(n * G + kk / group)])));
      if (double(as_float(w[size_t(n * K + kk)])) != want && bad++ < 5)
        std::fprintf(stderr, "  %s dequantize N=%ld K=%ld g=%ld: W[%ld,%ld] = %g, want %g\n", tname, long(N), long(K),
                     long(group), long(n), long(kk), double(as_float(w[size_t(n * K + kk)])), want);
    }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double ref = bias ? double(as_float(b[size_t(n)])) : 0.0, mag = std::fabs(ref);
      for (int64_t kk = 0; kk < K; ++kk) {
        const double wr =
            as_float(of_float<T>(float(dense[size_t(n * K + kk)]) * as_float(scale[size_t(n * G + kk / group)])));
        const double p = double(as_float(x[size_t(m * ldx + kk)])) * wr;
        ref += p, mag += std::fabs(p);
      }
      const double got = as_float(out[size_t(m * N + n)]);
      // One rounding of the output to T plus float32 accumulation.
      if (!(std::fabs(got - ref) <= std::ldexp(std::fabs(ref), -7) + 2e-5 * mag) && bad++ < 5)
        std::fprintf(stderr, "  %s sparse24 int4 M=%ld N=%ld K=%ld g=%ld: out[%ld,%ld] = %g, reference %g\n", tname,
                     long(M), long(N), long(K), long(group), long(m), long(n), got, ref);
    }
  return bad;
}

}  // namespace

// Returns the number of outputs outside tolerance (and of refusals that did not happen).
int run_sparse24_int4_tests() {
  std::mt19937 rng(5);
  int bad = 0, cases = 0;
  for (int64_t M : {1, 2, 7, 8, 9, 16})
    for (int64_t K : {128, 512, 4096})
      for (int64_t group : {int64_t(128), int64_t(256), K})
        for (int64_t N : {16, 37, 256}) {
          if (K % group) continue;
          const bool bias = cases % 3 == 1;
          bad += check<__nv_bfloat16>(M, N, K, group, bias, rng, "bfloat16") +
                 check<__half>(M, N, K, group, bias, rng, "float16");
          cases += 2;
        }
  // Shapes the kernels do not take are refused before any launch.
  DeviceBuffer<uint32_t> words(256);
  DeviceBuffer<__half> halves(256);
  kc::Sparse24Int4Args<__half> r;  // every pointer valid and aligned: only the shape is wrong
  r.x = r.scale = r.out = halves.p, r.values = r.meta = words.p, r.ldx = 128;
  r.M = 1, r.N = 16, r.K = 96, r.group_size = 96;
  const bool refused = kc::sparse24_int4_linear(r, nullptr) == cudaErrorInvalidValue;
  r.K = r.group_size = 128, r.M = 17;
  const bool refused_rows = kc::sparse24_int4_linear(r, nullptr) == cudaErrorInvalidValue;
  std::printf("2:4 int4 CUDA kernels (mma.sp): %d cases, %d outputs outside tolerance, K %% 128 refused: %s, "
              "M > 16 refused: %s\n",
              cases, bad, refused ? "yes" : "NO", refused_rows ? "yes" : "NO");
  return bad + !refused + !refused_rows;
}

// Kernel times (CUDA events, after warm-up; weights from DRAM: 8 copies of
// each layer taken in turn) for the decode shapes, bfloat16, groups of 128.
int bench_sparse24_int4() {
  std::mt19937 rng(1);
  for (int64_t M : {1, 16})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 14336}, {14336, 4096}}) {
      const int copies = 8;
      const auto dense = random_2to4(N, K, rng);
      std::vector<uint8_t> rows(size_t(N * k::sparse24_row_bytes(K, 4)));
      k::compress_2to4(dense.data(), N, K, rows.data(), 4);
      const int64_t tiles = k::sparse24_mma_tiles(N);
      std::vector<uint32_t> values(size_t(tiles * K)), meta(size_t(tiles * K / 2));
      k::sparse24_int4_mma_pack(rows.data(), N, K, values.data(), meta.data());
      std::vector<uint32_t> vc, mc;
      for (int c = 0; c < copies; ++c) vc.insert(vc.end(), values.begin(), values.end()), mc.insert(mc.end(), meta.begin(), meta.end());
      std::vector<__nv_bfloat16> x(size_t(M * K), of_float<__nv_bfloat16>(0.5f)), scale(size_t(N * K / 128), of_float<__nv_bfloat16>(0.01f));
      DeviceBuffer<__nv_bfloat16> dx(x), dscale(scale), dout(size_t(M * N));
      DeviceBuffer<uint32_t> dvalues(vc), dmeta(mc);
      kc::Sparse24Int4Args<__nv_bfloat16> a;
      a.x = dx.p, a.ldx = K, a.scale = dscale.p, a.M = M, a.N = N, a.K = K, a.group_size = 128, a.out = dout.p;
      auto call = [&](int c) {
        a.values = dvalues.p + size_t(c) * values.size(), a.meta = dmeta.p + size_t(c) * meta.size();
        return kc::sparse24_int4_linear(a, nullptr);
      };
      const double us = time_calls_us(call, copies), bytes = double(values.size() + meta.size()) * 4 + double(scale.size()) * 2;
      std::printf("sparse24 int4 bf16 M=%ld K=%ld N=%ld g128: %.2f us, %.0f GB/s of weight bytes (%.2f bits per weight)\n",
                  long(M), long(K), long(N), us, bytes / us * 1e-3, bytes * 8 / double(N * K));
    }
  return 0;
}

