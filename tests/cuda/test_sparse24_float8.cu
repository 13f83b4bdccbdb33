// The 2:4 float8 kernels on the sparse tensor cores (sparse24_float8_linear.cuh)
// against a double-precision reference: float8 codes of both formats on both
// sides, the weight reaching the kernels through the host packer
// (sparse24_float8_mma_pack) from the CPU's compressed rows, so a
// packer/kernel disagreement on the mma.sp operand layout shows up here; the
// expanded codes must equal the dense ones byte for byte. Run by
// test_weight_only_linear.cu's main.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_test_util.cuh"
#include "kernels/cpu/sparse24.h"
#include "kernels/cuda/sparse24_float8_linear.cuh"

namespace {

namespace k = torchao_cpp::kernels;
namespace kc = torchao_cpp::kernels::cuda;
using k::Float8Format;

double value(uint8_t c, Float8Format f) {
  return f == Float8Format::E4M3FN ? k::float8_to_float<Float8Format::E4M3FN>(c)
                                   : k::float8_to_float<Float8Format::E5M2>(c);
}

// A random finite code of format f (any sign, subnormals and zeros included).
uint8_t random_code(Float8Format f, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  for (;;) {
    const uint8_t c = uint8_t(byte(rng));
    if (std::isfinite(value(c, f))) return c;
  }
}

// Random 2:4 codes (both kept positions random, kept codes possibly zero).
std::vector<uint8_t> random_2to4(int64_t N, int64_t K, Float8Format f, std::mt19937& rng) {
  std::vector<uint8_t> c(size_t(N * K), 0);
  std::uniform_int_distribution<int> pos(0, 3);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < K / 4; ++g) {
      const int i0 = pos(rng);
      int i1 = pos(rng);
      while (i1 == i0) i1 = pos(rng);
      c[size_t(n * K + 4 * g + i0)] = random_code(f, rng);
      c[size_t(n * K + 4 * g + i1)] = random_code(f, rng);
    }
  return c;
}

struct Packed {
  std::vector<uint32_t> values, meta;
};
Packed pack(const std::vector<uint8_t>& dense, int64_t N, int64_t K) {
  std::vector<uint8_t> rows(size_t(N * k::sparse24_row_bytes(K)));
  k::compress_2to4(reinterpret_cast<const int8_t*>(dense.data()), N, K, rows.data());
  const int64_t words = k::sparse24_mma_tiles(N) * k::sparse24_float8_mma_blocks(K) * 32;
  Packed p{std::vector<uint32_t>(size_t(4 * words)), std::vector<uint32_t>(size_t(words))};
  k::sparse24_float8_mma_pack(rows.data(), N, K, p.values.data(), p.meta.data());
  return p;
}

float round_out(float v, kc::DType t) {
  if (t == kc::DType::BFloat16) return k::round_to<k::bf16>(v);
  if (t == kc::DType::Float16) return k::round_to<k::fp16>(v);
  return v;
}
size_t out_bytes(kc::DType t) { return t == kc::DType::Float32 ? 4 : 2; }
float read_out(const std::vector<uint8_t>& raw, kc::DType t, int64_t i) {
  if (t == kc::DType::Float32) return reinterpret_cast<const float*>(raw.data())[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(raw.data())[i];
  return t == kc::DType::BFloat16 ? k::bf16_bits_to_float(h) : k::fp16_bits_to_float(h);
}

double g_worst = 0;  // largest |error| / sum |terms| seen (printed: the tensor cores' summation error)

int check(int64_t M, int64_t N, int64_t K, Float8Format xf, Float8Format wf, kc::DType out_t, bool per_row,
          bool bias, int tiles_per_block, std::mt19937& rng) {
  const auto dense = random_2to4(N, K, wf, rng);
  const Packed p = pack(dense, N, K);
  std::vector<uint8_t> x(size_t(M * K));
  for (auto& c : x) c = random_code(xf, rng);
  std::normal_distribution<float> nd;
  std::vector<float> xs(static_cast<size_t>(per_row ? M : 1)), ws(static_cast<size_t>(per_row ? N : 1)),
      bf(static_cast<size_t>(N));
  // e5m2 codes reach 57344: smaller scales keep float16 outputs finite.
  for (auto& v : xs) v = std::ldexp(1.0f + 0.1f * std::fabs(nd(rng)), xf == Float8Format::E5M2 ? -13 : -8);
  for (auto& v : ws) v = std::ldexp(1.0f + 0.1f * std::fabs(nd(rng)), wf == Float8Format::E5M2 ? -14 : -9);
  for (auto& v : bf) v = round_out(nd(rng), out_t);
  std::vector<uint8_t> braw(size_t(N) * out_bytes(out_t));
  for (int64_t n = 0; n < N; ++n) {
    if (out_t == kc::DType::Float32)
      reinterpret_cast<float*>(braw.data())[n] = bf[size_t(n)];
    else
      reinterpret_cast<uint16_t*>(braw.data())[n] = out_t == kc::DType::BFloat16
                                                         ? k::from_float<k::bf16>(bf[size_t(n)]).x
                                                         : k::from_float<k::fp16>(bf[size_t(n)]).x;
  }
  DeviceBuffer<uint8_t> dx(x), db(braw), dout(size_t(M * N) * out_bytes(out_t)), dcodes(size_t(N * K));
  DeviceBuffer<float> dxs(xs), dws(ws);
  DeviceBuffer<uint32_t> dvalues(p.values), dmeta(p.meta);
  kc::Sparse24Float8Args a;
  a.x = dx.p, a.x_fmt = xf, a.w_fmt = wf, a.values = dvalues.p, a.meta = dmeta.p;
  a.xs = dxs.p, a.xs_stride = per_row ? 1 : 0, a.ws = dws.p, a.ws_stride = per_row ? 1 : 0;
  a.bias = bias ? db.p : nullptr, a.out_t = out_t, a.M = M, a.N = N, a.K = K, a.out = dout.p;
  a.tiles_per_block = tiles_per_block;
  TAO_CHECK_CUDA(kc::sparse24_float8_linear(a, nullptr));
  TAO_CHECK_CUDA(kc::sparse24_float8_expand(dvalues.p, dmeta.p, N, K, dcodes.p, nullptr));
  TAO_CHECK_CUDA(cudaDeviceSynchronize());
  const auto out = dout.host(size_t(M * N) * out_bytes(out_t));
  const auto codes = dcodes.host(size_t(N * K));
  int bad = 0;
  if (codes != dense) {
    for (size_t i = 0; i < codes.size(); ++i)
      if (codes[i] != dense[i] && bad++ < 3)
        std::fprintf(stderr, "  float8 expand N=%ld K=%ld: code %zu = 0x%02x, want 0x%02x\n", long(N), long(K), i,
                     codes[i], dense[i]);
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0, mag = 0.0;
      for (int64_t kk = 0; kk < K; ++kk) {
        const double t = value(x[size_t(m * K + kk)], xf) * value(dense[size_t(n * K + kk)], wf);
        acc += t, mag += std::fabs(t);
      }
      const double sx = xs[size_t(per_row ? m : 0)], sw = ws[size_t(per_row ? n : 0)];
      const double ref = acc * sx * sw + (bias ? bf[size_t(n)] : 0.0);
      const double got = read_out(out, out_t, m * N + n);
      const double err = std::fabs(got - ref);
      // The output's one rounding to out_t (and float32's), plus the sums' error: at most 2^-13 of sum |terms|.
      const double rounding = std::ldexp(std::fabs(ref), out_t == kc::DType::Float32 ? -22 : out_t == kc::DType::Float16 ? -10 : -7);
      const double sum_err = mag * sx * sw;
      if (sum_err > 0) g_worst = std::max(g_worst, std::max(0.0, err - rounding) / sum_err);
      if (!(err <= rounding + std::ldexp(sum_err, -13) + 1e-30) && bad++ < 5)
        std::fprintf(stderr, "  float8 2:4 M=%ld N=%ld K=%ld x %d w %d out %d: out[%ld,%ld] = %.9g, reference %.9g\n",
                     long(M), long(N), long(K), int(xf), int(wf), int(out_t), long(m), long(n), got, ref);
    }
  return bad;
}

}  // namespace

// Returns the number of outputs outside tolerance (and of refusals that did not happen).
int run_sparse24_float8_tests() {
  if (!kc::sparse24_float8_mma_supported()) {
    std::printf("2:4 float8 CUDA kernels (mma.sp): this GPU is below compute capability 8.9; only the refusal checked\n");
    DeviceBuffer<uint32_t> words(256);
    DeviceBuffer<float> f(16);
    kc::Sparse24Float8Args r;
    r.x = reinterpret_cast<const uint8_t*>(words.p), r.values = r.meta = words.p, r.xs = r.ws = f.p, r.out = f.p;
    r.M = 1, r.N = 16, r.K = 64;
    return kc::sparse24_float8_linear(r, nullptr) == cudaErrorNotSupported ? 0 : 1;
  }
  std::mt19937 rng(8);
  int bad = 0, cases = 0;
  const Float8Format fmts[2] = {Float8Format::E4M3FN, Float8Format::E5M2};
  const kc::DType outs[3] = {kc::DType::BFloat16, kc::DType::Float16, kc::DType::Float32};
  for (int64_t M : {1, 2, 7, 8, 9, 16})
    for (int64_t K : {4, 60, 64, 192, 1028, 4096})
      for (int64_t N : {16, 37, 256}) {
        const Float8Format xf = fmts[cases % 2], wf = fmts[cases / 2 % 2];
        // Tiles per block: the default, and both forced (every kernel variant at every row count).
        bad += check(M, N, K, xf, wf, outs[cases % 3], cases % 5 < 3, cases % 3 == 1, cases / 3 % 3, rng);
        ++cases;
      }
  // Shapes the kernel does not take are refused before any launch.
  DeviceBuffer<uint32_t> words(1024);
  DeviceBuffer<float> f(64);
  kc::Sparse24Float8Args r;  // every pointer valid and aligned: only the shape is wrong
  r.x = reinterpret_cast<const uint8_t*>(words.p), r.values = r.meta = words.p, r.xs = r.ws = f.p, r.out = f.p;
  r.out_t = kc::DType::Float32, r.M = 1, r.N = 16, r.K = 62;
  const bool refused = kc::sparse24_float8_linear(r, nullptr) == cudaErrorInvalidValue;
  r.K = 64, r.M = 17;
  const bool refused_rows = kc::sparse24_float8_linear(r, nullptr) == cudaErrorInvalidValue;
  std::printf("2:4 float8 CUDA kernels (mma.sp): %d cases, %d outputs outside tolerance (largest summation error "
              "%.3g of sum |terms|), K %% 4 refused: %s, M > 16 refused: %s\n",
              cases, bad, g_worst, refused ? "yes" : "NO", refused_rows ? "yes" : "NO");
  return bad + !refused + !refused_rows;
}

// Kernel times (CUDA events, after warm-up; weights from DRAM: 8 copies of
// each layer taken in turn) for the decode shapes, e5m2 activations x e4m3
// weights (the config's defaults), per-row scales, bfloat16 out.
int bench_sparse24_float8() {
  std::mt19937 rng(1);
  for (int64_t M : {1, 8, 16})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 14336}, {14336, 4096}}) {
      for (int nt : {1, 2}) {
      const int copies = 8;
      const Packed p = pack(random_2to4(N, K, Float8Format::E4M3FN, rng), N, K);
      std::vector<uint32_t> vc, mc;
      for (int c = 0; c < copies; ++c)
        vc.insert(vc.end(), p.values.begin(), p.values.end()), mc.insert(mc.end(), p.meta.begin(), p.meta.end());
      DeviceBuffer<uint8_t> dx(std::vector<uint8_t>(size_t(M * K), 0x38)), dout(size_t(M * N) * 2);
      DeviceBuffer<float> dxs(std::vector<float>(size_t(M), 0.01f)), dws(std::vector<float>(size_t(N), 0.01f));
      DeviceBuffer<uint32_t> dvalues(vc), dmeta(mc);
      kc::Sparse24Float8Args a;
      a.x = dx.p, a.x_fmt = Float8Format::E5M2, a.w_fmt = Float8Format::E4M3FN, a.xs = dxs.p, a.xs_stride = 1;
      a.ws = dws.p, a.ws_stride = 1, a.out_t = kc::DType::BFloat16, a.M = M, a.N = N, a.K = K, a.out = dout.p;
      a.tiles_per_block = nt;
      auto call = [&](int c) {
        a.values = dvalues.p + size_t(c) * p.values.size(), a.meta = dmeta.p + size_t(c) * p.meta.size();
        return kc::sparse24_float8_linear(a, nullptr);
      };
      const double us = time_calls_us(call, copies), bytes = double(p.values.size() + p.meta.size()) * 4;
      std::printf("sparse24 float8 e5m2 x e4m3 M=%ld K=%ld N=%ld, %d tile(s) a block: %.2f us, %.0f GB/s of weight "
                  "bytes (%.2f bits per weight)\n",
                  long(M), long(K), long(N), nt, us, bytes / us * 1e-3, bytes * 8 / double(N * K));
      }
    }
  return 0;
}
