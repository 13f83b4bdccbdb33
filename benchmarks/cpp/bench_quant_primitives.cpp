// Throughput of the torch-free quant primitives (elements/s) on a weight-sized
// matrix, per-group int4 (tinygemm convention) and per-row int8.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu/quant_primitives.h"

using namespace torchao_cpp::kernels;

namespace {

std::vector<float> random_matrix(int64_t n) {
  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

QParamsSpec int4_tinygemm() {
  QParamsSpec s;
  s.mapping = MappingType::Asymmetric;
  s.domain = ZeroPointDomain::Float;
  s.preserve_zero = false;
  s.quant_min = 0;
  s.quant_max = 15;
  s.eps = 1e-6f;
  return s;
}

void BM_ChooseAndQuantizeInt4(benchmark::State& st) {
  const int64_t N = st.range(0), K = st.range(1), group = st.range(2);
  const auto w = random_matrix(N * K);
  BlockGeometry g{{N, K}, {1, group}};
  std::vector<float> scale(g.num_blocks()), zp(g.num_blocks());
  std::vector<uint8_t> q(size_t(N * K));
  for (auto _ : st) {
    choose_qparams_affine<float, float, float>(w.data(), g, int4_tinygemm(), scale.data(), zp.data(), 1);
    quantize_affine<float, float, uint8_t>(w.data(), g, scale.data(), zp.data(), ZeroPointDomain::Float, 0, 15,
                                           q.data(), 1);
    benchmark::DoNotOptimize(q.data());
  }
  st.SetItemsProcessed(st.iterations() * N * K);
}
BENCHMARK(BM_ChooseAndQuantizeInt4)->Args({2048, 2048, 32})->Args({2048, 2048, 128});

void BM_DequantizeInt8PerRow(benchmark::State& st) {
  const int64_t N = st.range(0), K = st.range(1);
  std::vector<int8_t> q(static_cast<size_t>(N * K), 3);
  std::vector<float> scale(size_t(N), 0.01f), out(size_t(N * K));
  BlockGeometry g{{N, K}, {1, K}};
  for (auto _ : st) {
    dequantize_affine<int8_t, float, float>(q.data(), g, scale.data(), nullptr, ZeroPointDomain::None, -128, 127,
                                            out.data(), 1);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(st.iterations() * N * K);
}
BENCHMARK(BM_DequantizeInt8PerRow)->Args({2048, 2048});

}  // namespace

BENCHMARK_MAIN();
