// Many threads running the same kernels on the same packed weights at once
// (a server answering several requests with one model): every output must
// equal the single-thread output bit for bit. Each call also runs its own
// OpenMP team, as a linear called from several threads does. Built with
// -fsanitize=thread by scripts/reliability.sh, where any data race fails.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "kernels/cpu/bitpack.h"
#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/linear.h"

using namespace torchao_cpp::kernels;

namespace {

// One call of a kernel on shared inputs, writing a fresh output.
using Call = std::function<std::vector<float>()>;

struct Weights {
  static constexpr int64_t N = 48, K = 256, G = 64;
  std::vector<int8_t> i8;
  std::vector<uint8_t> u4_packed, u3_packed, f8;
  std::vector<float> scale, zp, bias;
  PackedInt8Weights vnni;
  Weights() {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    std::normal_distribution<float> nd;
    i8.resize(N * K);
    std::vector<uint8_t> u4(N * K), u3(N * K);
    f8.resize(N * K);
    for (int64_t i = 0; i < N * K; ++i) {
      i8[i] = int8_t(byte(rng) - 128);
      u4[i] = uint8_t(byte(rng) % 16);
      u3[i] = uint8_t(byte(rng) % 8);
      f8[i] = uint8_t(byte(rng) & 0x77);  // finite e4m3fn codes
    }
    u4_packed.resize(N * packed_row_bytes(K, 4));
    u3_packed.resize(N * packed_row_bytes(K, 3));
    pack_bits_rows<4>(u4.data(), N, K, 0, u4_packed.data());
    pack_bits_rows<3>(u3.data(), N, K, 0, u3_packed.data());
    for (int64_t i = 0; i < N * (K / G); ++i) scale.push_back(0.01f + std::fabs(nd(rng)) * 0.01f), zp.push_back(nd(rng));
    for (int64_t n = 0; n < N; ++n) bias.push_back(nd(rng));
    std::vector<float> row_scale(N, 0.02f);
    vnni = pack_int8_weights(i8.data(), N, K, K, row_scale.data());
  }
};

std::vector<Call> calls(const Weights& w, const std::vector<float>& x, int64_t M) {
  constexpr int64_t N = Weights::N, K = Weights::K, G = Weights::G;
  const LinearShape grouped{M, N, K, G}, per_row{M, N, K, K};
  const float* xp = x.data();
  auto wol = [=, &w](auto codes, const LinearShape& s, const float* zp, ZeroPointDomain d, int64_t qmin, int64_t qmax) {
    return [=, &w] {
      std::vector<float> out(M * N);
      weight_only_linear<float, float>(xp, codes, w.scale.data(), zp, d, qmin, qmax, w.bias.data(), s, out.data(), 2);
      return out;
    };
  };
  return {
      wol(PlainCodes<int8_t>{w.i8.data(), K}, grouped, nullptr, ZeroPointDomain::None, -128, 127),
      wol(PackedCodes<4>{w.u4_packed.data(), K, 0}, grouped, w.zp.data(), ZeroPointDomain::Float, 0, 15),
      wol(PackedCodes<3>{w.u3_packed.data(), K, 0}, grouped, w.zp.data(), ZeroPointDomain::Int, 0, 7),
      wol(Float8Codes<Float8Format::E4M3FN>{w.f8.data(), K}, grouped, nullptr, ZeroPointDomain::None, 0, 0),
      [=, &w] {
        // Dynamic int8 activations (the fused quantizer) x the VNNI-packed weight.
        std::vector<uint8_t> u(M * w.vnni.Kp);
        std::vector<float> sa(M), za(M), out(M * N);
        quantize_activations_u8(xp, M, K, w.vnni.Kp, ActQuant::Asymmetric, u.data(), sa.data(), za.data(), 2);
        int8_gemm_dequant_u8(u.data(), sa.data(), za.data(), M, w.vnni, w.bias.data(), out.data(), 2);
        return out;
      },
  };
}

}  // namespace

class ConcurrencyTest : public ::testing::TestWithParam<int> {};

TEST_P(ConcurrencyTest, SharedWeightsGiveSingleThreadOutputs) {
  const int threads = GetParam();
  const Weights w;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  // Direct dots (one row, a few, 40: the int8 and float8 panel GEMM) and the
  // panel GEMM for every format.
  std::vector<std::vector<float>> inputs;
  std::vector<Call> all;
  for (int64_t M : {int64_t(1), int64_t(3), int64_t(40), direct_dot_max_rows<PackedCodes<4>>(true) + 1}) {
    inputs.emplace_back(M * Weights::K);
    for (auto& v : inputs.back()) v = nd(rng);
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    for (auto& c : calls(w, inputs[i], int64_t(inputs[i].size()) / Weights::K)) all.push_back(c);
  std::vector<std::vector<float>> want;
  for (auto& c : all) want.push_back(c());

  constexpr int kIterations = 4;
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int it = 0; it < kIterations; ++it)
        for (size_t i = 0; i < all.size(); ++i) {
          const size_t j = (i + t) % all.size();  // threads start on different kernels
          if (all[j]() != want[j]) ++mismatches[t];
        }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

INSTANTIATE_TEST_SUITE_P(Threads, ConcurrencyTest, ::testing::Values(2, 4, 8));
