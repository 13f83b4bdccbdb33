// Unit tests of the torch-free kernels (no libtorch linked).
#include <gtest/gtest.h>
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "kernels/cpu/aligned.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bitpack.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/hqq.h"
#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/numeric.h"
#include "kernels/cpu/quant_primitives.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/sparse24.h"

using namespace torchao_cpp::kernels;

// The VmFlags line of /proc/self/smaps for the mapping holding `p` ("" if none).
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) inside = lo <= a && a < hi;
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(WeightStorage, LargeBlocksAreAdvisedAsHugePages) {
  namespace k = torchao_cpp::kernels;
  const char* saved = std::getenv("TORCHAO_CPP_HUGE_PAGES");
  const std::string keep = saved ? saved : "";
  for (const char* setting : {"1", "0"}) {
    setenv("TORCHAO_CPP_HUGE_PAGES", setting, 1);
    const bool on = std::string(setting) == "1";
    for (const size_t bytes : {size_t(1000), k::kHugePageMin - 1, k::kHugePageMin, k::kHugePageMin * 3 + 12345}) {
      auto* p = static_cast<unsigned char*>(k::allocate_weight_storage(bytes));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << bytes;
      const bool big = bytes >= k::kHugePageMin;
      if (big) EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % k::kHugePage, 0u) << bytes;
      for (size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
      p[bytes - 1] = 0x5A;
      EXPECT_EQ(p[bytes - 1], 0x5A);
      // "hg": the mapping carries MADV_HUGEPAGE (whether the kernel found 2 MB pages is its business).
      const std::string flags = vm_flags_of(p);
      ASSERT_FALSE(flags.empty()) << bytes;
      EXPECT_EQ(flags.find(" hg") != std::string::npos, big && on) << "bytes " << bytes << ", setting " << setting << ": " << flags;
      k::free_weight_storage(p, bytes);
    }
  }
  k::AlignedVector<int8_t> v(k::kHugePageMin, 1);  // the packed GEMM weights' storage takes the same route
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % k::kHugePage, 0u);
  if (saved) setenv("TORCHAO_CPP_HUGE_PAGES", keep.c_str(), 1); else unsetenv("TORCHAO_CPP_HUGE_PAGES");
}

TEST(Numeric, Fp16MatchesHardwareConversion) {
  // F16C's vcvtps2ph rounds to nearest even: an independent reference.
  std::mt19937 rng(0);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_float(bits(rng));
    const uint16_t hw = uint16_t(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
    const uint16_t sw = float_to_fp16_bits(f);
    if (std::isnan(f)) {
      EXPECT_EQ(sw & 0x7c00, 0x7c00);
      EXPECT_NE(sw & 0x3ff, 0);
    } else {
      ASSERT_EQ(sw, hw) << "f=" << f;
    }
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float hw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(int16_t(h))));
    const float sw = fp16_bits_to_float(uint16_t(h));
    if (std::isnan(hw))
      EXPECT_TRUE(std::isnan(sw));
    else
      ASSERT_EQ(float_bits(sw), float_bits(hw)) << h;
  }
}

TEST(Numeric, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(float_to_bf16_bits(1.00390625f), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6: to even.
  EXPECT_EQ(float_to_bf16_bits(1.01171875f), 0x3f82);
  EXPECT_EQ(float_to_bf16_bits(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  EXPECT_EQ(round_to<bf16>(3.14159f), 3.140625f);
}

TEST(Numeric, Float8KnownValues) {
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(448.0f)), 0x7e);
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(464.0f)), 0x7e);  // tie to even stays finite
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(470.0f)), 0x7f);  // rounds past max: NaN
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(-1.0f)), 0xb8);
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(0.001953125f)), 0x01);   // 2^-9, smallest subnormal
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(0.0009765625f)), 0x00);  // 2^-10 ties to even 0
  EXPECT_EQ((float_to_float8<Float8Format::E4M3FN>(-1e-6f)), 0x80);         // keeps the sign of zero
  EXPECT_EQ((float_to_float8<Float8Format::E5M2>(57344.0f)), 0x7b);
  EXPECT_EQ((float_to_float8<Float8Format::E5M2>(61440.0f)), 0x7c);  // tie rounds up to inf
  EXPECT_EQ((float_to_float8<Float8Format::E5M2>(INFINITY)), 0x7c);
  EXPECT_EQ((float8_to_float<Float8Format::E5M2>(0x01)), std::ldexp(1.0f, -16));
}

template <Float8Format F>
void float8_round_trip() {
  for (int c = 0; c < 256; ++c) {
    const float v = float8_to_float<F>(uint8_t(c));
    if (std::isnan(v) || std::isinf(v)) continue;
    EXPECT_EQ(float_to_float8<F>(v), c) << "code " << c;
  }
}
TEST(Numeric, Float8RoundTripsEveryCode) {
  float8_round_trip<Float8Format::E4M3FN>();
  float8_round_trip<Float8Format::E5M2>();
}

TEST(QuantPrimitives, AsymmetricInt8PerRow) {
  // Row 0 spans [-1, 3]: scale = 4/255, zero point = -128 - round(-1/scale) = -128 + 64 = -64.
  const float in[8] = {-1.0f, 0.0f, 1.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  BlockGeometry g{{2, 4}, {1, 4}};
  QParamsSpec s;
  s.mapping = MappingType::Asymmetric;
  s.quant_min = -128;
  s.quant_max = 127;
  float scale[2], zp[2];
  ASSERT_EQ((choose_qparams_affine<float, float, float>(in, g, s, scale, zp, 1)), -1);
  EXPECT_EQ(scale[0], 4.0f / 255.0f);
  EXPECT_EQ(zp[0], -64.0f);
  EXPECT_EQ(scale[1], s.eps);  // all-zero row: scale clamps to eps
  EXPECT_EQ(zp[1], -128.0f);
  int8_t q[8];
  quantize_affine<float, float, int8_t>(in, g, scale, zp, ZeroPointDomain::Int, -128, 127, q, 1);
  EXPECT_EQ(q[0], -128);
  EXPECT_EQ(q[1], -64);
  EXPECT_EQ(q[3], 127);
  float back[8];
  dequantize_affine<int8_t, float, float>(q, g, scale, zp, ZeroPointDomain::Int, -128, 127, back, 1);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(back[i], in[i], scale[i / 4] / 2 + 1e-7f);
}

TEST(QuantPrimitives, NonFiniteBlockIsReported) {
  const float in[4] = {1.0f, 2.0f, NAN, 0.0f};
  BlockGeometry g{{2, 2}, {1, 2}};
  QParamsSpec s;
  float scale[2], zp[2];
  EXPECT_EQ((choose_qparams_affine<float, float, float>(in, g, s, scale, zp, 1)), 1);
}

TEST(QuantPrimitives, BlocksAcrossRowsAndNaNInputs) {
  // One block spans both rows (per-tensor); scale 0.5 makes x * (1/scale) exact.
  const float in[4] = {1.25f, -3.75f, NAN, 9.0f};
  BlockGeometry g{{2, 2}, {2, 2}};
  EXPECT_EQ(g.num_blocks(), 1);
  const float scale[1] = {0.5f};
  int8_t q[4];
  quantize_affine<float, float, int8_t>(in, g, scale, nullptr, ZeroPointDomain::None, -8, 7, q, 2);
  EXPECT_EQ(q[0], 2);   // 2.5 rounds to even 2
  EXPECT_EQ(q[1], -8);  // -7.5 rounds to even -8
  EXPECT_EQ(q[2], 0);   // NaN quantizes as 0
  EXPECT_EQ(q[3], 7);   // 18 clamps to quant_max
}

TEST(QuantPrimitives, TinygemmFloatZeroPointBf16) {
  // min = -1, max = 2, int4 [0, 15]: scale = 3/15 = 0.2 (bf16), zp = min + scale*8.
  bf16 in[4] = {from_float<bf16>(-1.0f), from_float<bf16>(0.5f), from_float<bf16>(2.0f), from_float<bf16>(0.0f)};
  BlockGeometry g{{1, 4}, {1, 4}};
  QParamsSpec s;
  s.mapping = MappingType::Asymmetric;
  s.domain = ZeroPointDomain::Float;
  s.preserve_zero = false;
  s.quant_min = 0;
  s.quant_max = 15;
  s.eps = 1e-6f;
  bf16 scale[1];
  float zp[1];
  ASSERT_EQ((choose_qparams_affine<bf16, bf16, float>(in, g, s, scale, zp, 1)), -1);
  const float sc = round_to<bf16>(3.0f / 15.0f);
  EXPECT_EQ(to_float(scale[0]), sc);
  EXPECT_EQ(zp[0], round_to<bf16>(-1.0f + round_to<bf16>(sc * 8.0f)));
  uint8_t q[4];
  quantize_affine<bf16, bf16, uint8_t>(in, g, scale, zp, ZeroPointDomain::Float, 0, 15, q, 1);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[2], 15);
}

TEST(QuantPrimitives, Float8PerRowRoundTrip) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> in(4 * 64);
  for (auto& v : in) v = nd(rng);
  BlockGeometry g{{4, 64}, {1, 64}};
  QParamsSpec s;
  s.mapping = MappingType::Symmetric;
  s.domain = ZeroPointDomain::None;
  s.quant_min = -448;
  s.quant_max = 448;
  float scale[4];
  ASSERT_EQ((choose_qparams_affine<float, float, float>(in.data(), g, s, scale, nullptr, 1)), -1);
  std::vector<uint8_t> q(in.size());
  quantize_affine_float8<Float8Format::E4M3FN, float, float>(in.data(), g, scale, q.data(), 1);
  std::vector<float> back(in.size());
  dequantize_affine_float8<Float8Format::E4M3FN, float, float>(q.data(), g, scale, back.data(), 1);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(back[i], in[i], std::fabs(in[i]) / 16 + scale[i / 64]);
}

class BitPackTest : public ::testing::TestWithParam<int> {};
TEST_P(BitPackTest, RoundTripsOddLengths) {
  const int bits = GetParam();
  const int64_t rows = 3, cols = 37;
  std::vector<int8_t> codes(rows * cols);
  const int64_t qmin = -(int64_t(1) << (bits - 1));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = int8_t(qmin + int64_t(i * 7 % (1u << bits)));
  std::vector<uint8_t> packed(rows * packed_row_bytes(cols, bits));
  std::vector<int8_t> back(codes.size());
  dispatch_bits(bits, [&](auto b) {
    pack_bits_rows<decltype(b)::value>(codes.data(), rows, cols, qmin, packed.data());
    unpack_bits_rows<decltype(b)::value>(packed.data(), rows, cols, qmin, back.data());
  });
  EXPECT_EQ(codes, back);
  EXPECT_EQ(int64_t(packed.size()), rows * ((cols * bits + 7) / 8));
}
INSTANTIATE_TEST_SUITE_P(AllWidths, BitPackTest, ::testing::Range(1, 9));

class WeightOnlyLinearTest : public ::testing::TestWithParam<int> {};

// M = 1..8 take the direct decode path, larger M the row-decode path.
TEST_P(WeightOnlyLinearTest, PackedInt4MatchesNaiveReference) {
  const LinearShape s{GetParam(), 5, 64, 32};
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> code(0, 15);
  std::normal_distribution<float> nd;
  std::vector<float> x(s.M * s.K), scale(s.N * 2), zp(s.N * 2), bias(s.N);
  std::vector<uint8_t> codes(s.N * s.K);
  for (auto& v : x) v = nd(rng);
  for (auto& v : codes) v = uint8_t(code(rng));
  for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.1f;
  for (auto& v : zp) v = nd(rng) * 0.1f;
  for (auto& v : bias) v = nd(rng);
  std::vector<uint8_t> packed(s.N * packed_row_bytes(s.K, 4));
  pack_bits_rows<4>(codes.data(), s.N, s.K, 0, packed.data());
  std::vector<float> out(s.M * s.N);
  weight_only_linear<float, float>(x.data(), PackedCodes<4>{packed.data(), s.K, 0}, scale.data(), zp.data(),
                                   ZeroPointDomain::Float, 0, 15, bias.data(), s, out.data(), 2);
  for (int64_t m = 0; m < s.M; ++m)
    for (int64_t n = 0; n < s.N; ++n) {
      double ref = bias[n];
      for (int64_t k = 0; k < s.K; ++k) {
        const int64_t g = n * 2 + k / 32;
        ref += double(x[m * s.K + k]) * ((codes[n * s.K + k] - 8.0) * scale[g] + zp[g]);
      }
      EXPECT_NEAR(out[m * s.N + n], ref, 1e-4 * (1 + std::fabs(ref)));
    }
}

TEST_P(WeightOnlyLinearTest, PlainInt8AndUint8MatchNaiveReference) {
  const LinearShape s{GetParam(), 7, 96, 48};
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> code(-128, 127);
  std::vector<float> x(s.M * s.K), scale(s.N * 2), zp(s.N * 2);
  std::vector<int8_t> c8(s.N * s.K);
  std::vector<uint8_t> u8(s.N * s.K);
  for (auto& v : x) v = nd(rng);
  for (size_t i = 0; i < c8.size(); ++i) {
    c8[i] = int8_t(code(rng));
    u8[i] = uint8_t(int(c8[i]) + 128);
  }
  for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
  for (auto& v : zp) v = float(code(rng) / 4);
  for (ZeroPointDomain dom : {ZeroPointDomain::Int, ZeroPointDomain::None}) {
    std::vector<float> o8(s.M * s.N), ou(s.M * s.N);
    const float* z = dom == ZeroPointDomain::Int ? zp.data() : nullptr;
    weight_only_linear<float, float>(x.data(), PlainCodes<int8_t>{c8.data(), s.K}, scale.data(), z, dom, -128, 127,
                                     nullptr, s, o8.data(), 2);
    std::vector<float> zu(zp);
    for (auto& v : zu) v += 128.0f;  // the same weights as uint8 codes
    weight_only_linear<float, float>(x.data(), PlainCodes<uint8_t>{u8.data(), s.K}, scale.data(),
                                     dom == ZeroPointDomain::Int ? zu.data() : nullptr, ZeroPointDomain::Int, 0, 255,
                                     nullptr, s, ou.data(), 2);
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        double ref = 0;
        for (int64_t k = 0; k < s.K; ++k) {
          const int64_t g = n * 2 + k / 48;
          ref += double(x[m * s.K + k]) * (c8[n * s.K + k] - (z ? z[g] : 0.0)) * scale[g];
        }
        EXPECT_NEAR(o8[m * s.N + n], ref, 1e-4 * (1 + std::fabs(ref)));
        if (dom == ZeroPointDomain::Int) EXPECT_NEAR(ou[m * s.N + n], ref, 1e-4 * (1 + std::fabs(ref)));
      }
  }
}
INSTANTIATE_TEST_SUITE_P(Rows, WeightOnlyLinearTest, ::testing::Values(1, 2, 3, 8, 9, 17));

TEST(Linear, Int8DynamicMatchesIntegerReference) {
  const LinearShape s{2, 3, 8, 4};
  const int8_t a[16] = {1, -2, 3, -4, 5, -6, 7, -8, 10, 20, 30, 40, -50, -60, -70, -80};
  const float a_scale[2] = {0.5f, 0.25f}, a_zp[2] = {1.0f, -2.0f};
  std::vector<int8_t> w(24);
  for (int i = 0; i < 24; ++i) w[i] = int8_t(i - 12);
  const float w_scale[6] = {1, 2, 3, 4, 5, 6}, w_zp[6] = {0, 1, -1, 0, 2, 0};
  float out[6];
  int8_dynamic_linear<float>(a, a_scale, a_zp, PlainCodes<int8_t>{w.data(), 8}, w_scale, w_zp, nullptr, s, out, 1);
  for (int m = 0; m < 2; ++m)
    for (int n = 0; n < 3; ++n) {
      double ref = 0;
      for (int k = 0; k < 8; ++k)
        ref += a_scale[m] * w_scale[n * 2 + k / 4] * (a[m * 8 + k] - a_zp[m]) * (w[n * 8 + k] - w_zp[n * 2 + k / 4]);
      EXPECT_FLOAT_EQ(out[m * 3 + n], float(ref));
    }
}

// Every instruction set the CPU has must agree with a double-precision reference.
class SimdTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    saved_ = active_isa();
    if (!set_isa(GetParam())) GTEST_FAIL() << "CPU lacks the instruction set under test";
  }
  void TearDown() override { set_isa(saved_); }
  Isa saved_ = Isa::Portable;
};

TEST_P(SimdTest, PrimitivesMatchReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> i8(-128, 127), u8(0, 255), i16(-300, 300);
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 33, 64, 100, 257}) {
    std::vector<float> a(n + 1), b(n + 1);
    std::vector<int8_t> c8(n + 1);
    std::vector<uint8_t> cu(n + 1);
    std::vector<int16_t> s1(n + 1), s2(n + 1);
    for (int64_t i = 0; i <= n; ++i) {
      a[i] = nd(rng), b[i] = nd(rng), c8[i] = int8_t(i8(rng)), cu[i] = uint8_t(u8(rng));
      s1[i] = int16_t(i16(rng)), s2[i] = int16_t(i16(rng));
    }
    double rs = 0, rd = 0, r8 = 0, ru = 0, r4 = 0;
    int64_t ri = 0;
    for (int64_t i = 0; i < n; ++i) {
      rs += a[i], rd += double(a[i]) * b[i], r8 += double(a[i]) * c8[i], ru += double(a[i]) * cu[i];
      ri += int64_t(s1[i]) * s2[i];
      r4 += double(a[i]) * (cu[i] & 15) + double(b[i]) * (cu[i] >> 4);
    }
    const double tol = 1e-4 * (1 + n);
    EXPECT_NEAR(sum_f32(a.data(), n), rs, tol) << n;
    EXPECT_NEAR(dot_f32(a.data(), b.data(), n), rd, tol) << n;
    EXPECT_EQ(dot_i16(s1.data(), s2.data(), n), ri) << n;
    const float one = 1.0f;  // one row, one group of n codes
    float o8, ou, o4;
    dot_f32_i8_grouped(a.data(), c8.data(), n, 1, n, 1, GroupScales{&one, 1}, &o8);
    dot_f32_u8_grouped(a.data(), cu.data(), n, 1, n, 1, GroupScales{&one, 1}, &ou);
    {  // a, b: the even and odd activations of the 2n codes in cu
      std::vector<float> x(2 * n + 2), xl(n + 1), xb(n + 1);
      for (int64_t j = 0; j < n; ++j) x[2 * j] = a[j], x[2 * j + 1] = b[j];
      u4_dot_operands(x.data(), n, xl.data(), xb.data());
      dot_f32_u4_grouped(xl.data(), xb.data(), cu.data(), n, 1, n, 1, GroupScales{&one, 1}, &o4);
    }
    EXPECT_NEAR(o8, r8, 100 * tol) << n;
    EXPECT_NEAR(ou, ru, 100 * tol) << n;
    EXPECT_NEAR(o4, r4, 10 * tol) << n;
  }
  // Grouped forms over 1..kMaxDotRows rows (row stride longer than a row), with
  // group lengths that are and are not a multiple of the vector width.
  for (int rows = 1; rows <= kMaxDotRows; ++rows)
    for (int64_t len : {8, 12, 16, 32, 64, 96, 160, 256}) {
      const int64_t groups = 5, n = len * groups, ld = n + 3;
      std::vector<float> x(n), xo(n), gs(rows * groups);
      std::vector<int8_t> c8(rows * ld);
      std::vector<uint8_t> cu(rows * ld);
      for (auto& v : x) v = nd(rng);
      for (auto& v : xo) v = nd(rng);
      for (auto& v : gs) v = nd(rng);
      for (int64_t i = 0; i < rows * ld; ++i) c8[i] = int8_t(i8(rng)), cu[i] = uint8_t(u8(rng));
      float o8[kMaxDotRows], ou[kMaxDotRows], o4[kMaxDotRows];
      dot_f32_i8_grouped(x.data(), c8.data(), ld, rows, len, groups, GroupScales{gs.data(), groups}, o8);
      dot_f32_u8_grouped(x.data(), cu.data(), ld, rows, len, groups, GroupScales{gs.data(), groups}, ou);
      std::vector<float> xi(2 * n), xl(n), xb(n);  // x, xo: the even and odd activations
      for (int64_t i = 0; i < n; ++i) xi[2 * i] = x[i], xi[2 * i + 1] = xo[i];
      u4_dot_operands(xi.data(), n, xl.data(), xb.data());
      dot_f32_u4_grouped(xl.data(), xb.data(), cu.data(), ld, rows, len, groups, GroupScales{gs.data(), groups}, o4);
      for (int r = 0; r < rows; ++r) {
        double r8 = 0, ru = 0, r4 = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double g = gs[r * groups + i / len];
          const int64_t j = r * ld + i;
          r8 += g * double(x[i]) * c8[j];
          ru += g * double(x[i]) * cu[j];
          r4 += g * (double(x[i]) * (cu[j] & 15) + double(xo[i]) * (cu[j] >> 4));
        }
        EXPECT_NEAR(o8[r], r8, 0.05) << len << " row " << r << "/" << rows;
        EXPECT_NEAR(ou[r], ru, 0.1) << len << " row " << r << "/" << rows;
        EXPECT_NEAR(o4[r], r4, 0.05) << len << " row " << r << "/" << rows;
      }
    }
}

// Scales read in place from a row-major [N, G] tensor (row stride longer than
// G), with the zero-point terms in every form the linears use: none, an
// integer zero point, a float one, both, and group counts that do and do not
// fill the vectors (and their masked or scalar tails).
TEST_P(SimdTest, GroupedDotsAddZeroPointTerms) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> u8(0, 255);
  for (int64_t groups : {1, 3, 8, 16, 21, 40})
    for (int64_t len : {32, 12})
      for (int form = 0; form < 4; ++form) {
        const bool with_zi = form & 1, with_zf = form & 2;
        const int rows = kMaxDotRows;
        const int64_t n = len * groups, ld = n + 5, sld = groups + 7, zld = groups + 2;
        std::vector<float> x(2 * n), xl(n), xb(n), xsum(groups), sc(rows * sld), zi(rows * zld), zf(rows * zld);
        std::vector<uint8_t> cu(rows * ld);
        for (auto& v : x) v = nd(rng);
        for (auto& v : sc) v = nd(rng);
        for (auto& v : zi) v = float(u8(rng) % 16);
        for (auto& v : zf) v = nd(rng);
        for (auto& v : cu) v = uint8_t(u8(rng) & 0x7E);  // float8: no NaN codes
        for (int64_t g = 0; g < groups; ++g) {
          double t = 0;
          for (int64_t k = g * len; k < (g + 1) * len; ++k) t += x[k];
          xsum[g] = float(t);
        }
        GroupScales gs{sc.data(), sld, xsum.data(), with_zi ? zi.data() : nullptr, with_zf ? zf.data() : nullptr, zld,
                       -7.5f};
        // The 4-bit kernel sees 2 * n activations: its groups hold 2 * len codes.
        std::vector<float> xsum4(groups);
        for (int64_t g = 0; g < groups; ++g) {
          double t = 0;
          for (int64_t k = 2 * g * len; k < 2 * (g + 1) * len; ++k) t += x[k];
          xsum4[g] = float(t);
        }
        GroupScales gs4 = gs;
        gs4.xsum = xsum4.data();
        u4_dot_operands(x.data(), n, xl.data(), xb.data());
        std::vector<float> f8(rows * ld);
        float8_to_f32(cu.data(), rows * ld, true, f8.data());
        float ou[kMaxDotRows], o4[kMaxDotRows], of8[kMaxDotRows];
        dot_f32_u8_grouped(x.data(), cu.data(), ld, rows, len, groups, gs, ou);
        dot_f32_u4_grouped(xl.data(), xb.data(), cu.data(), ld, rows, len, groups, gs4, o4);
        dot_f32_f8_grouped(x.data(), cu.data(), ld, rows, len, groups, gs, of8, true);
        for (int r = 0; r < rows; ++r) {
          double wu = 0, w4 = 0, w8 = 0, mag = 0;
          for (int64_t g = 0; g < groups; ++g) {
            const double s = sc[r * sld + g], a = double(gs.offset) - (with_zi ? zi[r * zld + g] : 0.0),
                         b = with_zf ? zf[r * zld + g] : 0.0;
            for (int64_t k = g * len; k < (g + 1) * len; ++k) {
              const uint8_t c = cu[r * ld + k];
              wu += ((c + a) * s + b) * x[k];
              w8 += ((f8[r * ld + k] + a) * s + b) * x[k];
              w4 += ((c % 16 + a) * s + b) * x[2 * k] + ((c / 16 + a) * s + b) * x[2 * k + 1];
              const double w = (std::max<double>(c, std::fabs(f8[r * ld + k])) + std::fabs(a)) * std::fabs(s) + std::fabs(b);
              mag += w * (std::fabs(x[2 * k]) + std::fabs(x[2 * k + 1]) + std::fabs(x[k]));
            }
          }
          const double tol = 1e-5 * (1 + mag);
          ASSERT_NEAR(ou[r], wu, tol) << "u8 groups " << groups << " len " << len << " form " << form << " row " << r;
          ASSERT_NEAR(o4[r], w4, tol) << "u4 groups " << groups << " len " << len << " form " << form << " row " << r;
          ASSERT_NEAR(of8[r], w8, tol) << "f8 groups " << groups << " len " << len << " form " << form << " row " << r;
        }
      }
}

// f(rows, group bytes, groups, row bytes) over the shapes of the 4-bit lane
// dots: 1..4 rows, groups of 32, 64, 128 and 256 codes (a 64-byte step
// holding 4, 2 or 1 groups, or half of one), 1, 3 and 17 steps.
template <class F>
void for_u4_lane_shapes(F&& f) {
  for (int rows = 1; rows <= kMaxDotRows; ++rows)
    for (int64_t len : {16, 32, 64, 128})
      for (int64_t steps : {1, 3, 17}) {
        const int64_t groups = std::max<int64_t>(1, 64 / len) * steps;
        f(rows, len, groups, len * groups);
      }
}

// The bfloat16 dot of 4-bit codes (AVX512-BF16 only): offered exactly where
// the AVX-512 table is active on a CPU with BF16, and then equal to the double
// reference over the codes' nibble order (four per 16-bit word), 1..4 rows,
// groups of 32, 64, 128 and 256 codes (a 64-byte step holding 4, 2 or 1
// groups, or half of one), scales read with a row stride and the zero-point
// terms; bfloat16 subnormals in x count as zero.
// The float8 activation quantizer fused with the decoder, and the decoder to
// bfloat16, against the scalar quantizer (float_to_float8, golden-tested) and
// float8_to_float: random values over many magnitudes, every code's value, the
// midpoints between neighbouring codes (ties to even) and a float ulp either
// side of them, and the special values.
template <Float8Format F>
void check_float8_grid(const std::vector<float>& x, float r) {
  std::vector<float> got(x.size()), want(x.size());
  float8_grid_f32(x.data(), int64_t(x.size()), r, F == Float8Format::E4M3FN, got.data());
  for (size_t i = 0; i < x.size(); ++i) {
    want[i] = float8_to_float<F>(quantize_float8_value<F, float>(x[i], r));
    if (std::isnan(want[i]))
      EXPECT_TRUE(std::isnan(got[i])) << "x " << x[i] << " r " << r;
    else
      EXPECT_EQ(float_bits(got[i]), float_bits(want[i])) << "x " << x[i] << " r " << r << " got " << got[i]
                                                         << " want " << want[i];
  }
}

template <Float8Format F>
void check_float8_format() {
  std::vector<float> x;
  std::vector<float> values;
  for (int c = 0; c < 256; ++c) {
    const float v = float8_to_float<F>(uint8_t(c));
    if (std::isfinite(v)) values.push_back(v);
  }
  std::sort(values.begin(), values.end());
  for (size_t i = 0; i + 1 < values.size(); ++i) {
    const float mid = 0.5f * (values[i] + values[i + 1]);  // exact: neighbours differ in few bits
    x.insert(x.end(), {values[i], mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)});
  }
  const float mx = Float8Traits<F>::kMax;
  x.insert(x.end(), {0.0f, -0.0f, INFINITY, -INFINITY, std::numeric_limits<float>::quiet_NaN(), 1e-40f, -1e-40f, mx,
                     -mx, std::nextafter(mx, INFINITY), 1.0625f * mx, -1.07f * mx, 3e38f});
  check_float8_grid<F>(x, 1.0f);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> ex(-30, 30);
  std::vector<float> y(4099);
  for (auto& v : y) v = std::ldexp(nd(rng), ex(rng));
  for (float r : {1.0f, 0.37f, 3.1e-3f, 455.0f, 1e6f}) check_float8_grid<F>(y, r);
  for (int64_t n : {0, 1, 15, 16, 17, 33}) check_float8_grid<F>(std::vector<float>(y.begin(), y.begin() + n), 0.5f);
}

// The AMX float8 sums decode these codes straight to bfloat16 (amx_bf16_gemm).
static_assert(kDecodesBf16<Float8Codes<Float8Format::E4M3FN>> && kDecodesBf16<Float8Sparse24Codes<Float8Format::E5M2>>);
static_assert(!kDecodesBf16<PackedCodes<4>> && !kDecodesBf16<PlainCodes<int8_t>>);

TEST_P(SimdTest, Float8GridAndBfloat16Decoder) {
  check_float8_format<Float8Format::E4M3FN>();
  check_float8_format<Float8Format::E5M2>();
  std::vector<uint8_t> codes(256 * 3 + 5);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(i * 7);
  for (bool e4m3 : {true, false})
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(16), int64_t(17), int64_t(codes.size())}) {
      std::vector<uint16_t> got(size_t(n) + 1, 0xABCD);
      float8_to_bf16(codes.data(), n, e4m3, got.data());
      for (int64_t i = 0; i < n; ++i) {
        const float v = e4m3 ? float8_to_float<Float8Format::E4M3FN>(codes[i]) : float8_to_float<Float8Format::E5M2>(codes[i]);
        const float b = bf16_bits_to_float(got[i]);
        if (std::isnan(v))
          EXPECT_TRUE(std::isnan(b)) << int(codes[i]);
        else
          EXPECT_EQ(float_bits(b), float_bits(v)) << "code " << int(codes[i]) << " e4m3 " << e4m3;
      }
      EXPECT_EQ(got[size_t(n)], 0xABCD) << "wrote past n = " << n;
    }
}

TEST_P(SimdTest, Bf16DotOfFourBitCodes) {
  const bool want = GetParam() == Isa::Avx512 && cpu_features().avx512bf16;
  ASSERT_EQ(has_dot_bf16_u4(), want);
  if (!want) return;  // the linears take the float kernels (WeightOnlySweep covers them)
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> u8(0, 255);
  for_u4_lane_shapes([&](int rows, int64_t len, int64_t groups, int64_t n) {
    const int64_t ld = n + 64, sld = groups + 3;
    std::vector<uint16_t> x(2 * n), xp(2 * n);
    for (auto& v : x) v = float_to_bf16_bits(nd(rng));
    x[5] = 0x0001;  // a subnormal: read as zero
    std::vector<float> sc(rows * sld), zf(rows * sld), xsum(groups, 0.0f);
    for (auto& v : sc) v = nd(rng);
    for (auto& v : zf) v = nd(rng);
    for (int64_t k = 0; k < 2 * n; ++k) xsum[k / (2 * len)] += k == 5 ? 0.0f : bf16_bits_to_float(x[k]);
    std::vector<uint8_t> p(rows * ld);
    for (auto& v : p) v = uint8_t(u8(rng));
    GroupScales gs{sc.data(), sld, xsum.data(), nullptr, zf.data(), sld, -7.5f};
    u4_bf16_operands(x.data(), n, xp.data());
    float out[kMaxDotRows];
    dot_bf16_u4_grouped(xp.data(), p.data(), ld, rows, len, groups, gs, out);
    for (int r = 0; r < rows; ++r) {
      double want_r = 0, mag = 0;
      for (int64_t k = 0; k < 2 * n; ++k) {
        const int64_t g = k / (2 * len);
        const uint8_t b = p[r * ld + k / 2];
        const double c = k % 2 ? b >> 4 : b & 15, xv = k == 5 ? 0.0 : bf16_bits_to_float(x[k]);
        const double w = (c + gs.offset) * sc[r * sld + g] + zf[r * sld + g];
        want_r += w * xv, mag += std::fabs(w * xv);
      }
      ASSERT_NEAR(out[r], want_r, 1e-5 * (1 + mag)) << "rows " << rows << " len " << len << " groups " << groups;
      ASSERT_TRUE(bf16_u4_dot_fits(len, n));
    }
  });
}

// The VNNI dot of 4-bit codes (AVX512-VNNI only): offered exactly where the
// AVX-512 table is active on a CPU with VNNI. Its operand holds, per chunk of
// 128 activations, Q = nearbyint(x / unit) (|Q| < 2^23, unit a power of two
// with the chunk's largest |x| in [2^22, 2^23) units) as three bytes; the dot
// then equals the double reference on x rounded to those units, up to
// float32 sums, over 1..4 rows and groups of 32..256 codes, with scales read
// with a row stride and the zero-point terms. NaN, Inf and tiny chunks are
// refused (the linear then runs the float kernel).
TEST_P(SimdTest, VnniDotOfFourBitCodes) {
  const bool want = GetParam() == Isa::Avx512 && cpu_features().avx512vnni;
  ASSERT_EQ(has_dot_vnni_u4(), want);
  if (!want) return;  // the linears take the float kernels (WeightOnlySweep covers them)
  std::mt19937 rng(6);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> u8(0, 255);
  for_u4_lane_shapes([&](int rows, int64_t len, int64_t groups, int64_t n) {
    const int64_t chunks = n / 64, ld = n + 64, sld = groups + 3;
    ASSERT_TRUE(u4_lanes_fit(len, n));
    std::vector<float> x(2 * n);
    for (auto& v : x) v = nd(rng);
    for (int64_t k = 0; k < 2 * n; k += 97) x[k] *= 300.0f;  // outliers, as in LLM activations
    if (chunks > 1) std::fill(x.begin() + 128, x.begin() + 256, 0.0f);  // an all-zero chunk
    x[3] = -std::ldexp(1.0f, 20);  // a chunk whose largest |x| is a power of two
    std::vector<float> sc(rows * sld), zf(rows * sld), xsum(groups, 0.0f), unit(chunks);
    for (auto& v : sc) v = nd(rng);
    for (auto& v : zf) v = nd(rng);
    for (int64_t k = 0; k < 2 * n; ++k) xsum[k / (2 * len)] += x[k];
    std::vector<uint8_t> p(rows * ld);
    for (auto& v : p) v = uint8_t(u8(rng));
    std::vector<int8_t> q(chunks * kVnniChunkBytes);
    ASSERT_TRUE(vnni_operands(x.data(), 2 * n, VnniOrder::Pairs, q.data(), unit.data()));
    // The operand: Q's bytes, rebuilt, against x rounded to its chunk's unit.
    std::vector<double> xq(2 * n);
    for (int64_t c = 0; c < chunks; ++c) {
      float mx = 0.0f;
      for (int64_t i = 0; i < 128; ++i) mx = std::max(mx, std::fabs(x[128 * c + i]));
      if (mx == 0.0f) {
        ASSERT_EQ(unit[c], 0.0f);
      } else {
        ASSERT_GE(mx / unit[c], std::ldexp(1.0f, 22)) << "chunk " << c;
        ASSERT_LT(mx / unit[c], std::ldexp(1.0f, 23)) << "chunk " << c;
        ASSERT_EQ(unit[c], std::ldexp(1.0f, std::ilogb(unit[c])));  // a power of two
      }
      for (int64_t i = 0; i < 128; ++i) {
        const int8_t* qc = q.data() + c * kVnniChunkBytes + 64 * (i % 2) + i / 2;
        const int64_t Q = int64_t(qc[0]) * 65536 + int64_t(uint8_t(qc[128])) * 256 + int64_t(uint8_t(qc[256]));
        const float want_q = mx == 0.0f ? 0.0f : std::nearbyint(x[128 * c + i] / unit[c]);
        ASSERT_EQ(double(Q), double(want_q)) << "chunk " << c << " value " << i;
        xq[128 * c + i] = double(Q) * unit[c];
      }
    }
    GroupScales gs{sc.data(), sld, xsum.data(), nullptr, zf.data(), sld, -7.5f};
    float out[kMaxDotRows];
    dot_vnni_u4_grouped(q.data(), unit.data(), p.data(), ld, rows, len, groups, gs, out);
    for (int r = 0; r < rows; ++r) {
      double want_r = 0, exact = 0, mag = 0;
      for (int64_t k = 0; k < 2 * n; ++k) {
        const int64_t g = k / (2 * len);
        const uint8_t b = p[r * ld + k / 2];
        const double c = k % 2 ? b >> 4 : b & 15, s = sc[r * sld + g];
        const double zt = (gs.offset * s + zf[r * sld + g]) * x[k];  // the zero-point term (exact x)
        want_r += c * s * xq[k] + zt, exact += c * s * x[k] + zt, mag += std::fabs(c * s * x[k]) + std::fabs(zt);
      }
      // Float32 sums of exact integer dots: a few float32 roundings of the magnitude.
      ASSERT_NEAR(out[r], want_r, 1e-6 * (1 + mag)) << "rows " << rows << " len " << len << " groups " << groups;
      // Against the unrounded x: within half a unit per value.
      double bound = 0;
      for (int64_t k = 0; k < 2 * n; ++k)
        bound += 15 * std::fabs(sc[r * sld + k / (2 * len)]) * unit[k / 128] / 2;
      ASSERT_NEAR(out[r], exact, bound + 1e-6 * (1 + mag));
    }
    // Refused: NaN, Inf, a chunk of tiny values.
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 1e-35f}) {
      std::vector<float> xb = x;
      if (bad == 1e-35f) std::fill(xb.end() - 128, xb.end(), 0.0f);
      xb[2 * n - 1] = bad;
      EXPECT_FALSE(vnni_operands(xb.data(), 2 * n, VnniOrder::Pairs, q.data(), unit.data())) << bad;
    }
  });
}

// The VNNI dot of N-bit codes (AVX512-VNNI and VBMI): offered exactly where
// the AVX-512 table is active on such a CPU; the Natural operand holds Q in
// value order (Q below 2^23, 2^22 for 7-bit codes), and the dot of packed
// 1..7-bit rows read in place equals the
// double reference on x rounded to the chunks' units, up to float32 sums, over
// 1..4 rows, groups of 16, 32, 64, 128 and 256 codes and rows of 128 to 2304
// codes, with scales read with a row stride and the zero-point terms; the
// codes unpacked to bytes (bits = 8) give the same results.
TEST_P(SimdTest, VnniDotOfNBitCodes) {
  const auto& f = cpu_features();
  const bool want = GetParam() == Isa::Avx512 && f.avx512vnni && f.avx512vbmi;
  ASSERT_EQ(has_dot_vnni_bits(), want);
  if (!want) return;  // the linears take the float kernels (WeightOnlySweep covers them)
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (int bits = 1; bits <= kVnniMaxBits; ++bits)
    for (int rows = 1; rows <= kMaxDotRows; ++rows)
      for (int64_t len : {16, 32, 64, 128, 256})
        for (int64_t n : {128, 384, 2304}) {
          if (n % len) continue;
          const int64_t groups = n / len, chunks = n / kVnniChunkValues, rb = packed_row_bytes(n, bits);
          const int64_t ld = rb + 3, sld = groups + 3;  // rows at odd byte offsets
          ASSERT_TRUE(vnni_bits_fit(len, n));
          std::vector<float> x(n), sc(rows * sld), zf(rows * sld), xsum(groups, 0.0f), unit(chunks);
          for (auto& v : x) v = nd(rng);
          for (int64_t k = 0; k < n; k += 97) x[k] *= 300.0f;
          for (auto& v : sc) v = nd(rng);
          for (auto& v : zf) v = nd(rng);
          for (int64_t k = 0; k < n; ++k) xsum[k / len] += x[k];
          std::uniform_int_distribution<int> cd(0, (1 << bits) - 1);
          std::vector<uint8_t> codes(rows * n), p(rows * ld);
          for (auto& v : codes) v = uint8_t(cd(rng));
          dispatch_bits(bits, [&](auto b) {
            for (int r = 0; r < rows; ++r)
              pack_bits_rows<decltype(b)::value>(codes.data() + r * n, 1, n, 0, p.data() + r * ld);
          });
          std::vector<int8_t> q(chunks * kVnniChunkBytes);
          ASSERT_TRUE(vnni_operands(x.data(), n, VnniOrder::Natural, q.data(), unit.data(), vnni_q_bits(bits)));
          std::vector<double> xq(n);
          for (int64_t k = 0; k < n; ++k) {
            const int8_t* qk = q.data() + (k / 128) * kVnniChunkBytes + k % 128;
            const int64_t Q = int64_t(qk[0]) * 65536 + int64_t(uint8_t(qk[128])) * 256 + int64_t(uint8_t(qk[256]));
            ASSERT_EQ(double(Q), double(std::nearbyint(x[k] / unit[k / 128]))) << "value " << k;
            xq[k] = double(Q) * unit[k / 128];
          }
          GroupScales gs{sc.data(), sld, xsum.data(), nullptr, zf.data(), sld, -3.0f};
          float out[kMaxDotRows];
          dot_vnni_bits_grouped(q.data(), unit.data(), p.data(), ld, rows, bits, len, groups, gs, out);
          // The same codes unpacked, one per byte (bits = 8): the same sums.
          float unpacked[kMaxDotRows];
          dot_vnni_bits_grouped(q.data(), unit.data(), codes.data(), n, rows, 8, len, groups, gs, unpacked);
          for (int r = 0; r < rows; ++r) {
            ASSERT_EQ(unpacked[r], out[r]) << "bits " << bits << " rows " << rows << " len " << len << " n " << n;
            double want_r = 0, mag = 0;
            for (int64_t k = 0; k < n; ++k) {
              const double s = sc[r * sld + k / len], zt = (gs.offset * s + zf[r * sld + k / len]) * x[k];
              want_r += codes[r * n + k] * s * xq[k] + zt, mag += std::fabs(codes[r * n + k] * s * x[k]) + std::fabs(zt);
            }
            ASSERT_NEAR(out[r], want_r, 1e-6 * (1 + mag))
                << "bits " << bits << " rows " << rows << " len " << len << " n " << n;
          }
        }
}

// The VNNI dots' int32 lane sums at their largest (every code at its maximum,
// every activation at the largest Q: 2^23 - 1 units, 2^22 - 1 for 7-bit codes
// and int8): exact for 4-bit codes (8 * 15 * Q per lane), N-bit ones (4 * 127
// * Q at 7 bits) and int8 (4 * 128 * Q); every width matches the double
// reference through the linear.
TEST(SimdLinear, VnniDotsAtTheirIntegerBound) {
  const LinearShape s{1, 8, 512, 64};
  const float xv = 1.0f - std::ldexp(1.0f, -23);  // Q = 2^23 - 1 with the unit 2^-23
  std::vector<float> x(s.K, xv), scale(s.N * (s.K / s.group_size), 1.0f), out(s.N);
  for (int bits = 1; bits <= 7; ++bits) {
    const int64_t cmax = (int64_t(1) << bits) - 1;
    std::vector<int64_t> codes(s.N * s.K, cmax);
    std::vector<uint8_t> packed(s.N * packed_row_bytes(s.K, bits));
    dispatch_bits(bits, [&](auto b) {
      constexpr int B = decltype(b)::value;
      pack_bits_rows<B>(codes.data(), s.N, s.K, 0, packed.data());
      weight_only_linear<float, float>(x.data(), PackedCodes<B>{packed.data(), s.K, 0}, scale.data(), nullptr,
                                       ZeroPointDomain::None, 0, cmax, nullptr, s, out.data(), 2);
    });
    const double want = double(cmax) * double(xv) * double(s.K);
    for (int64_t n = 0; n < s.N; ++n) EXPECT_NEAR(out[n], want, 1e-6 * want) << "bits " << bits << " row " << n;
  }
  // int8: every code -128 against Q = +-(2^22 - 1) (x rounds up to 2^22 units
  // and is clamped), the int8 dot's largest lane sums, of either sign.
  for (float sign : {1.0f, -1.0f}) {
    std::vector<int8_t> c8(s.N * s.K, int8_t(-128));
    std::vector<float> xs(s.K, sign * xv);
    weight_only_linear<float, float>(xs.data(), PlainCodes<int8_t>{c8.data(), s.K}, scale.data(), nullptr,
                                     ZeroPointDomain::None, -128, 127, nullptr, s, out.data(), 2);
    const double want = -128.0 * sign * double(xv) * double(s.K);
    for (int64_t n = 0; n < s.N; ++n) EXPECT_NEAR(out[n], want, 1e-6 * std::fabs(want)) << "int8 sign " << sign;
  }
}

// The VNNI dot of int8 codes (AVX512-VNNI): offered exactly where the AVX-512
// table is active on such a CPU; on the Natural operand made with Q below
// 2^22, rows of codes over the whole int8 range (-128 and 127 included) read
// ld bytes apart equal the double reference on x rounded to the chunks'
// units, up to float32 sums, over 1..4 rows, groups of 16 to 256 codes and
// rows of 128 to 2304 codes, with the zero-point terms.
TEST_P(SimdTest, VnniDotOfInt8Codes) {
  const bool want = GetParam() == Isa::Avx512 && cpu_features().avx512vnni;
  ASSERT_EQ(has_dot_vnni_i8(), want);
  if (!want) return;
  std::mt19937 rng(21);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> cd(-128, 127);
  for (int rows = 1; rows <= kMaxDotRows; ++rows)
    for (int64_t len : {16, 32, 64, 128, 256})
      for (int64_t n : {128, 384, 2304}) {
        if (n % len) continue;
        const int64_t groups = n / len, chunks = n / kVnniChunkValues, ld = n + 5, sld = groups + 3;
        std::vector<float> x(n), sc(rows * sld), zf(rows * sld), xsum(groups, 0.0f), unit(chunks);
        for (auto& v : x) v = nd(rng);
        for (int64_t k = 0; k < n; k += 97) x[k] *= -300.0f;
        for (auto& v : sc) v = nd(rng);
        for (auto& v : zf) v = nd(rng);
        for (int64_t k = 0; k < n; ++k) xsum[k / len] += x[k];
        std::vector<int8_t> c(rows * ld);
        for (auto& v : c) v = int8_t(cd(rng));
        c[0] = -128, c[ld - 1] = 127;
        std::vector<int8_t> q(chunks * kVnniChunkBytes);
        ASSERT_TRUE(vnni_operands(x.data(), n, VnniOrder::Natural, q.data(), unit.data(), vnni_q_bits(8)));
        std::vector<double> xq(n);
        for (int64_t k = 0; k < n; ++k) {
          const int8_t* qk = q.data() + (k / 128) * kVnniChunkBytes + k % 128;
          const int64_t Q = int64_t(qk[0]) * 65536 + int64_t(uint8_t(qk[128])) * 256 + int64_t(uint8_t(qk[256]));
          ASSERT_LT(std::llabs(Q), int64_t(1) << vnni_q_bits(8)) << "value " << k;
          ASSERT_EQ(double(Q), double(std::nearbyint(x[k] / unit[k / 128]))) << "value " << k;
          xq[k] = double(Q) * unit[k / 128];
        }
        GroupScales gs{sc.data(), sld, xsum.data(), nullptr, zf.data(), sld, 0.5f};
        float out[kMaxDotRows];
        dot_vnni_i8_grouped(q.data(), unit.data(), c.data(), ld, rows, len, groups, gs, out);
        for (int r = 0; r < rows; ++r) {
          double want_r = 0, mag = 0;
          for (int64_t k = 0; k < n; ++k) {
            const double s = sc[r * sld + k / len], zt = (gs.offset * s + zf[r * sld + k / len]) * x[k];
            want_r += c[r * ld + k] * s * xq[k] + zt, mag += std::fabs(c[r * ld + k] * s * x[k]) + std::fabs(zt);
          }
          ASSERT_NEAR(out[r], want_r, 1e-6 * (1 + mag)) << "rows " << rows << " len " << len << " n " << n;
        }
      }
}

// A row of activations the VNNI dots refuse (NaN, Inf) runs the float
// kernels: its outputs are NaN, and the other rows' match the reference
// (4-bit codes, and 3-bit ones, read in place by the N-bit dot).
TEST(SimdLinear, NonFiniteActivationRowStaysOnItsRow) {
  const LinearShape s{3, 5, 256, 128};
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  for (int bits : {3, 4}) {
    std::uniform_int_distribution<int> cd(0, (1 << bits) - 1);
    const double mid = (1 << bits) / 2.0;
    std::vector<float> scale(s.N * 2), zp(s.N * 2);
    std::vector<uint8_t> codes(s.N * s.K), packed(s.N * packed_row_bytes(s.K, bits));
    for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
    for (auto& v : zp) v = nd(rng) * 0.1f;
    for (auto& v : codes) v = uint8_t(cd(rng));
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      std::vector<float> x(s.M * s.K), out(s.M * s.N);
      for (auto& v : x) v = nd(rng);
      x[s.K + 77] = bad;
      dispatch_bits(bits, [&](auto b) {
        constexpr int B = decltype(b)::value;
        pack_bits_rows<B>(codes.data(), s.N, s.K, 0, packed.data());
        weight_only_linear<float, float>(x.data(), PackedCodes<B>{packed.data(), s.K, 0}, scale.data(), zp.data(),
                                         ZeroPointDomain::Float, 0, (1 << B) - 1, nullptr, s, out.data(), 2);
      });
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t n = 0; n < s.N; ++n) {
          if (m == 1) {
            EXPECT_TRUE(std::isnan(out[m * s.N + n]) || std::isinf(out[m * s.N + n])) << bits << " " << n;
            continue;
          }
          double ref = 0, mag = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const int64_t g = n * 2 + k / 128;
            const double w = (codes[n * s.K + k] - mid) * scale[g] + zp[g];
            ref += w * x[m * s.K + k], mag += std::fabs(w * x[m * s.K + k]);
          }
          EXPECT_NEAR(out[m * s.N + n], ref, 1e-6 * (1 + mag)) << bits << " " << m << " " << n;
        }
    }
  }
}

// The bfloat16 parts of a weight (the AMX bfloat16 GEMM's operand): hi is
// the weight rounded to bfloat16, hi + lo within 2^-17 of it; for integer
// codes, the weight is decode_weight_row's float value (product, then sum).
TEST(AmxBf16, SplitKeepsSixteenBits) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t n = 1000;  // 31 blocks of 32 and a tail
  std::vector<float> w(n);
  for (auto& v : w) v = nd(rng) * std::exp(4.0f * nd(rng));
  w[7] = 0.0f, w[8] = -0.0f, w[9] = 1e-30f;
  std::vector<uint16_t> hi(n), lo(n);
  split_bf16(w.data(), n, hi.data(), lo.data());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(hi[i], float_to_bf16_bits(w[i])) << i;
    const double sum = double(bf16_bits_to_float(hi[i])) + double(bf16_bits_to_float(lo[i]));
    ASSERT_LE(std::fabs(sum - double(w[i])), std::ldexp(std::fabs(double(w[i])), -17)) << i;
  }
  std::vector<uint8_t> c(n);
  for (auto& v : c) v = uint8_t(rng());
  for (bool is_signed : {false, true})
    for (int offset : {0, -8}) {
      const float sc = 0.0123f, off = -0.5f;
      split_bf16_affine(c.data(), n, is_signed, offset, sc, off, hi.data(), lo.data());
      for (int64_t i = 0; i < n; ++i) {
        const float v = float(int(is_signed ? int8_t(c[i]) : c[i]) + offset) * sc + off;
        ASSERT_EQ(hi[i], float_to_bf16_bits(v)) << i;
        ASSERT_EQ(lo[i], float_to_bf16_bits(v - bf16_bits_to_float(hi[i]))) << i;
      }
    }
}

// The shapes the AMX weight-only tests run: odd M / N (partial tiles of rows
// and columns), 16 rows (byte codes' first), K within one panel and across
// panels (544 = 512 + 32), group sizes 32 to K.
struct AmxCase {
  int64_t M, N, K, group;
};
constexpr AmxCase kAmxCases[] = {{17, 40, 128, 64},  {32, 17, 64, 32},    {33, 64, 544, 32},
                                 {47, 65, 512, 128}, {64, 130, 1056, 96}, {100, 3, 256, 256}};

// The code formats the AMX weight-only tests run, from the same random bytes:
// int4 with float zero points, uint3 with integer ones, symmetric int8 and
// float8 e4m3fn (no NaN codes).
struct AmxCaseCodes {
  int64_t K;
  std::vector<uint8_t> raw, p4, p3;
  std::vector<int8_t> c8;
  AmxCaseCodes(int64_t N, int64_t K, std::mt19937& rng)
      : K(K), raw(N * K), p4(N * packed_row_bytes(K, 4)), p3(N * packed_row_bytes(K, 3)) {
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& v : raw) v = uint8_t(byte(rng));
    std::vector<uint8_t> c4(raw), c3(raw);
    for (auto& v : c4) v &= 15;
    for (auto& v : c3) v &= 7;
    pack_bits_rows<4>(c4.data(), N, K, 0, p4.data());
    pack_bits_rows<3>(c3.data(), N, K, 0, p3.data());
    c8.assign(raw.begin(), raw.end());
    for (uint8_t& v : raw)
      if ((v & 0x7f) == 0x7f) v = 0;
  }
  // check(name, codes, domain, quant_min, quant_max) for each format.
  template <class Check>
  void each(const Check& check) const {
    check("int4 float zero point", PackedCodes<4>{p4.data(), K, 0}, ZeroPointDomain::Float, 0, 15);
    check("uint3 int zero point", PackedCodes<3>{p3.data(), K, 0}, ZeroPointDomain::Int, 0, 7);
    check("int8 symmetric", PlainCodes<int8_t>{c8.data(), K}, ZeroPointDomain::None, -128, 127);
    check("float8 e4m3fn", Float8Codes<Float8Format::E4M3FN>{raw.data(), K}, ZeroPointDomain::None, 0, 0);
  }
};

// weight_only_linear with the AMX tiles on, then off, and per output
// visit(m, n, tiles, float_kernels, ref, mag): the two outputs as float, the
// double reference from decode_weight_row's weights, and its sum of |terms|.
template <class TA, class TS, class Codes, class Visit>
void amx_against_reference(const TA* x, const Codes& c, const TS* scale, const float* z, ZeroPointDomain dom,
                           int64_t qmin, int64_t qmax, const TA* bias, const LinearShape& s, const Visit& visit) {
  std::vector<TA> tiles(s.M * s.N), flt(s.M * s.N);
  weight_only_linear<TA, TS>(x, c, scale, z, dom, qmin, qmax, bias, s, tiles.data(), 2);
  const bool amx = has_amx_bf16();
  set_amx_bf16(false);
  weight_only_linear<TA, TS>(x, c, scale, z, dom, qmin, qmax, bias, s, flt.data(), 2);
  set_amx_bf16(amx);
  std::vector<float> w(s.K);
  for (int64_t n = 0; n < s.N; ++n) {
    decode_weight_row(c, scale, z, dom, qmin, qmax, s.K, s.group_size, n, 0, s.K, w.data());
    for (int64_t m = 0; m < s.M; ++m) {
      double ref = to_float(bias[n]), mag = std::fabs(ref);
      for (int64_t k = 0; k < s.K; ++k) {
        const double t = double(to_float(x[m * s.K + k])) * w[k];
        ref += t, mag += std::fabs(t);
      }
      visit(m, n, double(to_float(tiles[m * s.N + n])), double(to_float(flt[m * s.N + n])), ref, mag);
      if (::testing::Test::HasFatalFailure()) return;  // the first failed output is enough
    }
  }
}

// Weight-only linears with bfloat16 activations from amx_min_rows rows run
// on AMX bfloat16 tiles where the CPU has them: within one bfloat16 rounding
// of the float kernels' outputs (which the test gets with the tiles turned
// off) and near a double reference, over odd M / N (partial tiles of rows and
// of columns), K within one panel and across panels (544 = 512 + 32), group
// sizes 32 to K, both zero-point domains and int4 / uint3 / int8 / float8 codes.
TEST(AmxBf16, WeightOnlyMatchesFloatKernels) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (const AmxCase& cs : kAmxCases) {
    const int64_t M = cs.M, N = cs.N, K = cs.K, G = K / cs.group;
    std::vector<bf16> x(M * K), bias(N), scale(N * G);
    std::vector<float> zp(N * G);
    for (auto& v : x) v = from_float<bf16>(nd(rng));
    for (auto& v : bias) v = from_float<bf16>(nd(rng));
    for (auto& v : scale) v = from_float<bf16>(0.01f + 0.01f * std::fabs(nd(rng)));
    for (auto& v : zp) v = nd(rng) * 0.1f;
    const AmxCaseCodes codes(N, K, rng);
    auto check = [&](const char* what, auto c, ZeroPointDomain dom, int64_t qmin, int64_t qmax) {
      SCOPED_TRACE(::testing::Message() << what << " " << M << "x" << N << "x" << K << " g" << cs.group);
      const LinearShape s{M, N, K, cs.group};
      const float* z = dom == ZeroPointDomain::None ? nullptr : zp.data();
      int64_t rounded_ref = 0;  // outputs equal to the double reference rounded to bfloat16
      amx_against_reference(x.data(), c, scale.data(), z, dom, qmin, qmax, bias.data(), s,
                            [&](int64_t m, int64_t n, double a, double f, double ref, double mag) {
                              ASSERT_LE(std::fabs(a - f), std::ldexp(std::fabs(f), -7) + 1e-6 * mag) << m << "," << n;
                              ASSERT_LE(std::fabs(a - ref), std::ldexp(std::fabs(ref), -8) + 1e-6 * mag) << m << "," << n;
                              rounded_ref += a == to_float(from_float<bf16>(float(ref)));
                            });
      // Float32 sums of (nearly) exact products round to the reference's
      // bfloat16 value but where the two straddle a rounding boundary.
      // (Weights rounded to bfloat16 alone, without their low parts, fail
      // the reference bound above.)
      EXPECT_GE(rounded_ref, M * N * 97 / 100);
    };
    codes.each(check);
  }
}

// Float32 and float16 activations take the AMX bfloat16 tiles from
// amx_min_rows rows as two bfloat16 parts each (hi x hi, lo x hi, hi x
// lo products of weights x activations): every output within 2^-14 of the
// sum of |products| of a double reference (the parts' worst case), and the
// outputs' errors together within 2^-19 of it, as the float kernels' (tiles
// off) are; one part of the activations alone errs about 2^-12 in the same
// measure. Same shapes and formats as the bfloat16 test.
TEST(AmxBf16, TwoPartActivationsMatchFloatKernels) {
  std::mt19937 rng(13);
  std::normal_distribution<float> nd;
  for (const AmxCase& cs : kAmxCases) {
    const int64_t M = cs.M, N = cs.N, K = cs.K, G = K / cs.group;
    std::vector<float> xf(M * K), bias(N), scale(N * G), zp(N * G);
    std::vector<fp16> xh(M * K), biash(N);
    for (int64_t i = 0; i < M * K; ++i) xh[i] = from_float<fp16>(nd(rng)), xf[i] = nd(rng);
    for (int64_t n = 0; n < N; ++n) bias[n] = nd(rng), biash[n] = from_float<fp16>(bias[n]);
    for (auto& v : scale) v = 0.01f + 0.01f * std::fabs(nd(rng));
    for (auto& v : zp) v = nd(rng) * 0.1f;
    const AmxCaseCodes codes(N, K, rng);
    auto check = [&](const char* what, auto c, ZeroPointDomain dom, int64_t qmin, int64_t qmax, auto t_a) {
      using TA = decltype(t_a);
      constexpr bool kHalf = std::is_same_v<TA, fp16>;
      SCOPED_TRACE(::testing::Message() << what << (kHalf ? " fp16 " : " fp32 ") << M << "x" << N << "x" << K << " g"
                                        << cs.group);
      LinearShape s{M, N, K, cs.group};
      s.fp32_reduced = true;  // float32 activations may take the tiles
      const float* z = dom == ZeroPointDomain::None ? nullptr : zp.data();
      const TA* x = kHalf ? reinterpret_cast<const TA*>(xh.data()) : reinterpret_cast<const TA*>(xf.data());
      const TA* b = kHalf ? reinterpret_cast<const TA*>(biash.data()) : reinterpret_cast<const TA*>(bias.data());
      double err_tiles = 0, err_flt = 0, mags = 0;
      amx_against_reference(x, c, scale.data(), z, dom, qmin, qmax, b, s,
                            [&](int64_t m, int64_t n, double a, double f, double ref, double mag) {
                              // float16 outputs add their own rounding.
                              const double out_ulp = kHalf ? std::ldexp(std::fabs(ref), -10) : 0.0;
                              ASSERT_LE(std::fabs(a - ref), std::ldexp(mag, -14) + out_ulp) << m << "," << n;
                              err_tiles += std::fabs(a - ref), err_flt += std::fabs(f - ref);
                              mags += mag + out_ulp * (1 << 20);
                            });
      EXPECT_LE(err_tiles, std::ldexp(mags, -19)) << "float kernels: " << err_flt / mags;
      EXPECT_LE(err_flt, std::ldexp(mags, -19));
    };
    codes.each([&](const char* what, auto c, ZeroPointDomain dom, int64_t qmin, int64_t qmax) {
      check(what, c, dom, qmin, qmax, float());
      check(what, c, dom, qmin, qmax, fp16());
    });
  }
}

// Float32 activations take the tiles only where LinearShape::fp32_reduced
// allows it (torch's "high" / "medium" float32 matmul precision): by default
// their outputs are the float kernels' bit for bit.
TEST(AmxBf16, Float32ActivationsKeepFloat32ProductsByDefault) {
  const int64_t M = 64, N = 40, K = 256;
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> code(-128, 127);
  std::vector<float> x(M * K), scale(N, 0.02f);
  std::vector<int8_t> c(N * K);
  for (auto& v : x) v = nd(rng);
  for (auto& v : c) v = int8_t(code(rng));
  auto run = [&](bool reduced, bool amx) {
    LinearShape s{M, N, K, K};
    s.fp32_reduced = reduced;
    const bool was = has_amx_bf16();
    set_amx_bf16(amx && was);
    std::vector<float> out(M * N);
    weight_only_linear<float, float>(x.data(), PlainCodes<int8_t>{c.data(), K}, scale.data(), nullptr,
                                     ZeroPointDomain::None, -128, 127, nullptr, s, out.data(), 2);
    set_amx_bf16(was);
    return out;
  };
  const auto off = run(false, false);
  EXPECT_EQ(run(false, true), off);
  // Allowed, they take the tiles where the CPU has them: other roundings.
  EXPECT_EQ(run(true, true) != off, has_amx_bf16());
}

// Float8 x float8 sums (float8_sums) from amx_min_rows rows run on AMX
// bfloat16 tiles with the weights' hi part alone (float8 values are bfloat16
// values): float32 sums of exact products, as the float kernels' (tiles off),
// over both formats, dense and 2:4 codes, odd M / N and K across panels. A
// double reference bounds both, so dropping part of K or a partial tile fails.
TEST(AmxBf16, Float8SumsMatchFloatKernels) {
  std::mt19937 rng(21);
  std::uniform_int_distribution<int> byte(0, 255);
  for (bool e4m3 : {true, false})
    for (const auto& shape : {std::array<int64_t, 3>{16, 24, 96}, {32, 17, 64}, {47, 65, 544}, {64, 130, 1056}}) {
      const int64_t M = shape[0], N = shape[1], K = shape[2];  // lambdas below capture them (not bindings in C++17)
      SCOPED_TRACE(::testing::Message() << (e4m3 ? "e4m3fn " : "e5m2 ") << M << "x" << N << "x" << K);
      auto finite = [&] {
        for (;;) {
          const auto c = uint8_t(byte(rng));
          float f;
          float8_to_f32(&c, 1, e4m3, &f);
          if (std::isfinite(f)) return c;
        }
      };
      std::vector<uint8_t> xc(M * K), w(N * K, 0);
      for (auto& c : xc) c = finite();
      for (int64_t i = 0; i < N * K; i += 4) w[i + byte(rng) % 2] = finite(), w[i + 2 + byte(rng) % 2] = finite();
      std::vector<uint8_t> rows(N * sparse24_row_bytes(K));
      ASSERT_EQ(compress_2to4(reinterpret_cast<const int8_t*>(w.data()), N, K, rows.data()), -1);
      std::vector<float> x(M * K), wf(N * K);
      float8_to_f32(xc.data(), M * K, e4m3, x.data());
      float8_to_f32(w.data(), N * K, e4m3, wf.data());
      auto sums = [&](bool sparse, std::vector<float>& acc) {
        if (e4m3 && sparse) float8_sums(x.data(), Float8Sparse24Codes<Float8Format::E4M3FN>{rows.data(), K}, M, N, K, acc.data(), 2);
        if (e4m3 && !sparse) float8_sums(x.data(), Float8Codes<Float8Format::E4M3FN>{w.data(), K}, M, N, K, acc.data(), 2);
        if (!e4m3 && sparse) float8_sums(x.data(), Float8Sparse24Codes<Float8Format::E5M2>{rows.data(), K}, M, N, K, acc.data(), 2);
        if (!e4m3 && !sparse) float8_sums(x.data(), Float8Codes<Float8Format::E5M2>{w.data(), K}, M, N, K, acc.data(), 2);
      };
      for (bool sparse : {false, true}) {
        std::vector<float> tiles(M * N, NAN), flt(M * N, NAN);
        sums(sparse, tiles);
        const bool amx = has_amx_bf16();
        set_amx_bf16(false);
        sums(sparse, flt);
        set_amx_bf16(amx);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < K; ++k) {
              const double p = double(x[m * K + k]) * wf[n * K + k];
              ref += p, mag += std::fabs(p);
            }
            ASSERT_NEAR(tiles[m * N + n], ref, 1e-6 * mag + 1e-30) << "tiles " << sparse << " " << m << "," << n;
            ASSERT_NEAR(flt[m * N + n], ref, 1e-6 * mag + 1e-30) << "float " << sparse << " " << m << "," << n;
          }
      }
    }
}

// Many activation rows take the direct dots in blocks that stay in cache
// (kDotBlockBytes: at K = 8192, 21 rows of VNNI operands, 32 of BF16 ones,
// 16 of float ones): every row of a 50-row call (int8: 32, its most) equals
// the same row's 1-row call bit for bit, on the VNNI or BF16 dots and on the
// float kernels.
TEST(SimdLinear, DotRowBlocksGiveEachRowItsOneRowOutput) {
  const int64_t M = 50, N = 6, K = 8192, group = 128, G = K / group;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<float> x(M * K), scale(N * G), zp(N * G), bias(N);
  for (auto& v : x) v = nd(rng);
  for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
  for (auto& v : zp) v = nd(rng) * 0.1f;
  for (auto& v : bias) v = nd(rng);
  std::vector<uint8_t> c4(N * K), c3(N * K), p4(N * packed_row_bytes(K, 4)), p3(N * packed_row_bytes(K, 3));
  std::vector<int8_t> c8(N * K);
  for (int64_t i = 0; i < N * K; ++i) c4[i] = uint8_t(byte(rng) % 16), c3[i] = uint8_t(byte(rng) % 8), c8[i] = int8_t(byte(rng) - 128);
  pack_bits_rows<4>(c4.data(), N, K, 0, p4.data());
  pack_bits_rows<3>(c3.data(), N, K, 0, p3.data());
  auto same_rows = [&](const char* what, auto codes, ZeroPointDomain dom, int64_t qmax, auto one, int64_t M) {
    using TA = decltype(one);
    std::vector<TA> xa(M * K), all(M * N), row(N);
    for (int64_t i = 0; i < M * K; ++i) xa[i] = from_float<TA>(x[i]);
    const float* z = dom == ZeroPointDomain::None ? nullptr : zp.data();
    std::vector<TA> b(N);
    for (int64_t n = 0; n < N; ++n) b[n] = from_float<TA>(bias[n]);
    weight_only_linear<TA, float>(xa.data(), codes, scale.data(), z, dom, 0, qmax, b.data(), LinearShape{M, N, K, group},
                                  all.data(), 2);
    for (int64_t m = 0; m < M; ++m) {
      weight_only_linear<TA, float>(xa.data() + m * K, codes, scale.data(), z, dom, 0, qmax, b.data(),
                                    LinearShape{1, N, K, group}, row.data(), 2);
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(to_float(all[m * N + n]), to_float(row[n])) << what << " m=" << m << " n=" << n;
    }
  };
  // Direct dots only: 50 bfloat16 rows would go to the AMX tiles.
  const bool amx_bf16 = has_amx_bf16();
  set_amx_bf16(false);
  for (bool vnni : {true, false}) {
    set_dot_vnni(vnni);
    SCOPED_TRACE(vnni ? "VNNI dots where the CPU has them" : "float kernels");
    same_rows("int4 float32", PackedCodes<4>{p4.data(), K, 0}, ZeroPointDomain::Float, 15, 0.0f, M);
    same_rows("int4 bfloat16", PackedCodes<4>{p4.data(), K, 0}, ZeroPointDomain::Float, 15, bf16{}, M);
    same_rows("uint3", PackedCodes<3>{p3.data(), K, 0}, ZeroPointDomain::Int, 7, 0.0f, M);
    same_rows("int8", PlainCodes<int8_t>{c8.data(), K}, ZeroPointDomain::None, 0, 0.0f,
              direct_dot_max_rows<PlainCodes<int8_t>>(false));
  }
  set_dot_vnni(true);
  set_amx_bf16(amx_bf16);
}

// The VNNI dots' rounding of x to 2^-23 (int4) or 2^-22 (int8) of each
// chunk's largest value keeps a linear's error against a double reference
// within a small factor of the float kernel's (float32 products and sums),
// with and without the outliers of LLM activations (every 97th value 100x).
TEST(SimdLinear, VnniDotErrorNearFloatKernel) {
  if (!has_dot_vnni_u4()) {  // the linears run the float kernel only, and it cannot be turned on
    EXPECT_FALSE(set_dot_vnni(true));
    return;
  }
  const LinearShape s{1, 256, 2048, 128};
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> c4(0, 15), c8(-128, 127);
  std::vector<float> scale(s.N * 16), zp(s.N * 16), x(s.K), out(s.N);
  std::vector<uint8_t> codes(s.N * s.K), packed(s.N * packed_row_bytes(s.K, 4));
  std::vector<int8_t> codes8(s.N * s.K);
  for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
  for (auto& v : zp) v = nd(rng) * 0.1f;
  for (auto& v : codes) v = uint8_t(c4(rng));
  for (auto& v : codes8) v = int8_t(c8(rng));
  pack_bits_rows<4>(codes.data(), s.N, s.K, 0, packed.data());
  // Measured against the float kernel: int4 1.2x (2.9x with outliers), int8,
  // which keeps one bit less of x, 2.9x (9.3x).
  for (int bits : {4, 8})
    for (bool outliers : {false, true}) {
      for (int64_t k = 0; k < s.K; ++k) x[k] = nd(rng) * (outliers && k % 97 == 0 ? 100.0f : 1.0f);
      double err[2] = {0, 0}, ref2 = 0;
      for (int vnni = 0; vnni < 2; ++vnni) {
        ASSERT_TRUE(set_dot_vnni(vnni == 1));
        if (bits == 4)
          weight_only_linear<float, float>(x.data(), PackedCodes<4>{packed.data(), s.K, 0}, scale.data(), zp.data(),
                                           ZeroPointDomain::Float, 0, 15, nullptr, s, out.data(), 2);
        else
          weight_only_linear<float, float>(x.data(), PlainCodes<int8_t>{codes8.data(), s.K}, scale.data(), nullptr,
                                           ZeroPointDomain::None, -128, 127, nullptr, s, out.data(), 2);
        for (int64_t n = 0; n < s.N; ++n) {
          double ref = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const int64_t g = n * 16 + k / 128;
            const double w = bits == 4 ? (codes[n * s.K + k] - 8.0) * scale[g] + zp[g] : codes8[n * s.K + k] * double(scale[g]);
            ref += w * x[k];
          }
          err[vnni] += (out[n] - ref) * (out[n] - ref);
          if (vnni) ref2 += ref * ref;
        }
      }
      const double rel_float = std::sqrt(err[0] / ref2), rel_vnni = std::sqrt(err[1] / ref2);
      std::ostringstream note;
      note << rel_float << " float kernel, " << rel_vnni << " VNNI dot";
      RecordProperty((bits == 4 ? "int4" : "int8") + std::string(outliers ? "_rms_rel_error_outliers" : "_rms_rel_error"),
                     note.str());
      EXPECT_LT(rel_float, 1e-6);
      EXPECT_LT(rel_vnni, (bits == 4 ? 4 : 12) * rel_float) << "bits " << bits << " float kernel " << rel_float;
    }
  set_dot_vnni(true);
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  const Isa saved = active_isa();
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512})
    if (set_isa(isa)) out.push_back(isa);
  set_isa(saved);
  return out;
}

std::string isa_name(const ::testing::TestParamInfo<Isa>& i) {
  return i.param == Isa::Portable ? "portable" : i.param == Isa::Avx2 ? "avx2" : "avx512";
}

INSTANTIATE_TEST_SUITE_P(Isas, SimdTest, ::testing::ValuesIn(supported_isas()), isa_name);

// The linear kernels give the same results under every instruction set (up to rounding).
TEST(SimdLinear, AllIsasAgree) {
  const LinearShape s{2, 9, 256, 64};
  std::mt19937 rng(8);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> c4(0, 15);
  std::vector<float> x(s.M * s.K), scale(s.N * 4), zp(s.N * 4);
  std::vector<uint8_t> codes(s.N * s.K), packed(s.N * packed_row_bytes(s.K, 4));
  for (auto& v : x) v = nd(rng);
  for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
  for (auto& v : zp) v = nd(rng) * 0.1f;
  for (auto& v : codes) v = uint8_t(c4(rng));
  pack_bits_rows<4>(codes.data(), s.N, s.K, 0, packed.data());
  const Isa saved = active_isa();
  std::vector<std::vector<float>> outs;
  for (Isa isa : supported_isas()) {
    ASSERT_TRUE(set_isa(isa));
    std::vector<float> out(s.M * s.N);
    weight_only_linear<float, float>(x.data(), PackedCodes<4>{packed.data(), s.K, 0}, scale.data(), zp.data(),
                                     ZeroPointDomain::Float, 0, 15, nullptr, s, out.data(), 2);
    outs.push_back(out);
  }
  set_isa(saved);
  for (size_t i = 1; i < outs.size(); ++i)
    for (size_t j = 0; j < outs[0].size(); ++j) EXPECT_NEAR(outs[i][j], outs[0][j], 1e-4 * (1 + std::fabs(outs[0][j])));
}

// The AMX and VNNI int8 GEMMs and their portable twin give identical results,
// all matching a double reference, over odd shapes, per channel and per group.
TEST(Int8Gemm, VnniAndPortableMatchReference) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> i8(-128, 127);
  std::normal_distribution<float> nd;
  struct Case {
    int64_t K, group;
  };
  // N spans 1..7 column blocks: full and partial tiles of 2 (grouped) and 3 (per channel) blocks.
  // From 16 rows K runs in chunks of 128 quads, whole groups for grouped weights:
  // K = 1030 per channel gives three, the last one partial; K = 1536 (g32) three,
  // K = 2048 (g256) two, K = 1040 (g80: 120-quad chunks) 120 + 120 + 20 quads.
  // From kAmxMinRows (16) rows the AMX kernel runs where the CPU has it, in
  // pairs of 16-row tiles: 17 and 50 end on a partial tile (50: a pair and a
  // lone tile), 32 on a full pair.
  for (int64_t M : {1, 3, 4, 5, 16, 17, 32, 33, 50})
    for (int64_t N : {1, 15, 16, 17, 33, 40, 50, 97})
      for (Case kc : {Case{1, 1}, Case{3, 3}, Case{7, 7}, Case{64, 64}, Case{130, 130}, Case{64, 32}, Case{96, 4},
                      Case{128, 64}, Case{1030, 1030}, Case{1536, 32}, Case{2048, 256}, Case{1040, 80}}) {
        const int64_t K = kc.K, G = K / kc.group;
        std::vector<int8_t> a(M * K), w(N * K);
        std::vector<float> sa(M), za(M), sw(N * G), bias(N);
        for (auto& v : a) v = int8_t(i8(rng));
        for (auto& v : w) v = int8_t(i8(rng));
        for (int64_t m = 0; m < M; ++m) sa[m] = 0.01f + std::fabs(nd(rng)) * 0.01f, za[m] = float(i8(rng) / 2);
        for (auto& v : sw) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
        for (auto& v : bias) v = nd(rng);
        const auto packed = pack_int8_weights(w.data(), N, K, kc.group, sw.data());
        std::vector<std::vector<float>> outs;
        const Isa saved = active_isa();
        for (Isa isa : supported_isas()) {
          ASSERT_TRUE(set_isa(isa));
          // Under AVX-512: the VNNI kernel, then the AMX one where the CPU has it.
          for (bool amx : {false, true}) {
            if (amx && (isa != Isa::Avx512 || !int8_gemm_has_amx())) continue;
            ASSERT_TRUE(set_int8_gemm_amx(amx));
            std::vector<float> out(M * N);
            int8_gemm_dequant(a.data(), sa.data(), za.data(), M, packed, bias.data(), out.data(), 2);
            outs.push_back(out);
          }
        }
        set_isa(saved);
        set_int8_gemm_amx(int8_gemm_has_amx());
        for (size_t i = 1; i < outs.size(); ++i) ASSERT_EQ(outs[i], outs[0]) << M << "x" << N << "x" << K << " run " << i;
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double ref = 0;
            for (int64_t k = 0; k < K; ++k)
              ref += (double(a[m * K + k]) - za[m]) * w[n * K + k] * sw[n * G + k / kc.group];
            ref = ref * sa[m] + bias[n];
            ASSERT_NEAR(outs[0][m * N + n], ref, 1e-3 * (1 + std::fabs(ref))) << M << "x" << N << "x" << K;
          }
      }
  EXPECT_THROW(pack_int8_weights(nullptr, 1, 12, 6, nullptr), std::invalid_argument);
}

// 2:4 sparse int8 GEMM: under every instruction set, bit-equal to the dense
// int8 GEMM on the decompressed codes, over odd M / N and K not a multiple of
// the 64-column chunk; compression round-trips and refuses 3 nonzeros in a group.
TEST(Sparse24, GemmMatchesDenseGemmOnPrunedCodes) {
  std::mt19937 rng(24);
  std::uniform_int_distribution<int> i8(-128, 127), col(0, 3);
  std::normal_distribution<float> nd;
  for (int64_t M : {1, 3, 4, 5, 9})
    for (int64_t N : {1, 2, 3, 5, 8, 33})
      for (int64_t K : {4, 8, 60, 64, 68, 200, 256}) {
        std::vector<int8_t> a(M * K), w(N * K, 0), back(N * K);
        for (auto& v : a) v = int8_t(i8(rng));
        // Two kept columns per group (some groups keep a zero code, one keeps fewer).
        for (int64_t i = 0; i < N * K; i += 4) {
          int c0 = col(rng), c1 = col(rng);
          w[i + c0] = int8_t(i8(rng));
          if (c1 != c0) w[i + c1] = int8_t(i8(rng) / 3);
        }
        std::vector<float> sa(M), za(M), sw(N), bias(N);
        for (int64_t m = 0; m < M; ++m) sa[m] = 0.01f + std::fabs(nd(rng)) * 0.01f, za[m] = float(i8(rng) / 2);
        for (auto& v : sw) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
        for (auto& v : bias) v = nd(rng);
        std::vector<uint8_t> rows(N * sparse24_row_bytes(K));
        ASSERT_EQ(compress_2to4(w.data(), N, K, rows.data()), -1);
        ASSERT_EQ(check_2to4_metadata(rows.data(), N, K), -1);
        decompress_2to4(rows.data(), N, K, back.data());
        ASSERT_EQ(back, w);
        std::vector<float> dense(M * N);
        int8_gemm_dequant(a.data(), sa.data(), za.data(), M, pack_int8_weights(w.data(), N, K, K, sw.data()),
                          bias.data(), dense.data(), 2);
        std::vector<uint8_t> u(M * K);
        for (int64_t i = 0; i < M * K; ++i) u[i] = uint8_t(int(a[i]) + 128);
        const auto sp = make_sparse24_weights(rows.data(), N, K, sw.data());
        const Isa saved = active_isa();
        for (Isa isa : supported_isas()) {
          ASSERT_TRUE(set_isa(isa));
          std::vector<float> out(M * N);
          int8_sparse24_gemm_u8(u.data(), sa.data(), za.data(), M, sp, bias.data(), out.data(), 2);
          ASSERT_EQ(out, dense) << M << "x" << N << "x" << K << " isa " << int(isa);
        }
        set_isa(saved);
      }
  std::vector<int8_t> three = {1, 2, 3, 0};
  std::vector<uint8_t> rows(sparse24_row_bytes(4));
  EXPECT_EQ(compress_2to4(three.data(), 1, 4, rows.data()), 0);
  rows = {1, 2, 0x5};  // kept columns 1 and 1: invalid
  EXPECT_EQ(check_2to4_metadata(rows.data(), 1, 4), 0);
}

// 2:4 sparse float8 GEMM: under every instruction set, the float32 sums of
// the kept codes' exact products match a double reference over the dense
// (decompressed) codes, for both formats, odd M / N, K not a multiple of the
// 64-column chunk, and M on both sides of the on-the-spot / buffered switch.
TEST(Sparse24, Float8GemmMatchesDenseReference) {
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> byte(0, 255), col(0, 3);
  for (bool e4m3 : {true, false}) {
    auto value = [&](uint8_t c) {
      return e4m3 ? float8_to_float<Float8Format::E4M3FN>(c) : float8_to_float<Float8Format::E5M2>(c);
    };
    auto finite_code = [&] {
      for (;;) {
        const auto c = uint8_t(byte(rng));
        if (std::isfinite(value(c))) return c;
      }
    };
    for (int64_t M : {1, 3, 4, 5, 9, 17})
      for (int64_t N : {1, 3, 5, 8, 33})
        for (int64_t K : {4, 60, 64, 68, 200, 260, 512}) {
          std::vector<float> x(M * K);
          for (auto& v : x) v = float8_to_float<Float8Format::E5M2>(uint8_t(byte(rng) & 0x7B));  // finite e5m2
          std::vector<int8_t> w(N * K, 0), back(N * K);
          for (int64_t i = 0; i < N * K; i += 4) {
            const int c0 = col(rng), c1 = col(rng);
            w[i + c0] = int8_t(finite_code());
            if (c1 != c0) w[i + c1] = int8_t(finite_code());
          }
          std::vector<uint8_t> rows(N * sparse24_row_bytes(K));
          ASSERT_EQ(compress_2to4(w.data(), N, K, rows.data()), -1);
          decompress_2to4(rows.data(), N, K, back.data());
          ASSERT_EQ(back, w);
          const Isa saved = active_isa();
          for (Isa isa : supported_isas()) {
            ASSERT_TRUE(set_isa(isa));
            // The gather kernel and the float GEMM on expanded panels (what linears with many rows use).
            std::vector<float> acc(M * N, NAN), panels(M * N, NAN);
            sparse24_gemm_f32(x.data(), M, rows.data(), N, K,
                              e4m3 ? Sparse24Values::Float8E4M3FN : Sparse24Values::Float8E5M2, nullptr, K,
                              acc.data(), 2);
            if (e4m3)
              float8_sums(x.data(), Float8Sparse24Codes<Float8Format::E4M3FN>{rows.data(), K}, M, N, K, panels.data(), 2);
            else
              float8_sums(x.data(), Float8Sparse24Codes<Float8Format::E5M2>{rows.data(), K}, M, N, K, panels.data(), 2);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; ++k) {
                  const double p = double(x[m * K + k]) * value(uint8_t(w[n * K + k]));
                  ref += p;
                  mag += std::fabs(p);
                }
                ASSERT_NEAR(acc[m * N + n], ref, 1e-6 * mag + 1e-30)
                    << M << "x" << N << "x" << K << " e4m3 " << e4m3 << " isa " << int(isa);
                ASSERT_NEAR(panels[m * N + n], ref, 1e-6 * mag + 1e-30)
                    << "panels " << M << "x" << N << "x" << K << " e4m3 " << e4m3 << " isa " << int(isa);
              }
          }
          set_isa(saved);
        }
  }
}

void check_float_gemm_on_int_codes(int bits);

// The float 2:4 GEMM on int8 codes with scales folded in (2:4 weight-only
// linears) and on signed 4-bit codes (MarlinSparseLayout, 3 bits per weight):
// per row, and per group of 64 or 128 columns; compression round-trips; every
// instruction set against a double reference over the dense codes.
TEST(Sparse24, FloatGemmOnInt8CodesWithScales) {
  for (int bits : {8, 4}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    check_float_gemm_on_int_codes(bits);
  }
}

void check_float_gemm_on_int_codes(int bits) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> i8(bits == 4 ? -8 : -128, bits == 4 ? 7 : 127), col(0, 3);
  std::normal_distribution<float> nd;
  for (int64_t M : {1, 4, 5, 9})
    for (int64_t N : {1, 5, 33})
      for (int64_t K : {64, 128, 256, 68, 200})
        for (int64_t group : {K, int64_t(64), int64_t(128)}) {
          if (K % group != 0) continue;
          std::vector<float> x(M * K), scale(N * (K / group));
          for (auto& v : x) v = nd(rng);
          for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.01f;
          std::vector<int8_t> w(N * K, 0);
          for (int64_t i = 0; i < N * K; i += 4) {
            const int c0 = col(rng), c1 = col(rng);
            w[i + c0] = int8_t(i8(rng));
            if (c1 != c0) w[i + c1] = int8_t(i8(rng));
          }
          std::vector<uint8_t> rows(N * sparse24_row_bytes(K, bits));
          std::vector<int8_t> back(N * K);
          ASSERT_EQ(compress_2to4(w.data(), N, K, rows.data(), bits), -1);
          ASSERT_EQ(check_2to4_metadata(rows.data(), N, K, bits), -1);
          decompress_2to4(rows.data(), N, K, back.data(), bits);
          ASSERT_EQ(back, w);
          const Isa saved = active_isa();
          for (Isa isa : supported_isas()) {
            ASSERT_TRUE(set_isa(isa));
            std::vector<float> acc(M * N, NAN);
            sparse24_gemm_f32(x.data(), M, rows.data(), N, K, bits == 4 ? Sparse24Values::Int4 : Sparse24Values::Int8,
                              scale.data(), group, acc.data(), 2);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; ++k) {
                  const double p = double(x[m * K + k]) * w[n * K + k] * scale[n * (K / group) + k / group];
                  ref += p;
                  mag += std::fabs(p);
                }
                ASSERT_NEAR(acc[m * N + n], ref, 2e-6 * mag + 1e-30)
                    << M << "x" << N << "x" << K << " group " << group << " isa " << int(isa);
              }
          }
          set_isa(saved);
        }
}

// Pruning keeps the 2 largest magnitudes of each group; ties keep the later column, NaN is kept.
// The CUDA 2:4 int4 kernel's operand form (sparse24_int4_mma_pack): one kept
// pair placed by hand where sparse24.h says mma.sp wants it, and random 2:4
// weights (rows padded to a tile) back to their dense codes.
TEST(Sparse24, Int4MmaFormPlacesCodesAndMetadata) {
  const int64_t N = 16, K = 256;  // one tile, 8 blocks (2 steps of 4)
  std::vector<int8_t> dense(size_t(N * K), 0);
  // Row 9 (lane group g = 1, rows g + 8), block 5 (step 1, word 1), group 6 of the block
  // (lane q = 2, registers of groups q + 4): kept columns 1 and 3, codes -3 and 5.
  const int64_t k0 = 5 * 32 + 6 * 4;
  dense[size_t(9 * K + k0 + 1)] = -3;
  dense[size_t(9 * K + k0 + 3)] = 5;
  std::vector<uint8_t> rows(size_t(N * sparse24_row_bytes(K, 4)));
  ASSERT_EQ(compress_2to4(dense.data(), N, K, rows.data(), 4), -1);
  std::vector<uint32_t> values(static_cast<size_t>(K)), meta(static_cast<size_t>(K / 2));  // one tile: K words, K / 2 metadata words
  sparse24_int4_mma_pack(rows.data(), N, K, values.data(), meta.data());
  const int lane = 4 * 1 + 2, reg = 1 + 2 * 1;
  const uint32_t w = values[size_t((1 * 32 + lane) * 4 + 1)];
  EXPECT_EQ((w >> (4 * reg)) & 15u, uint32_t(-3 + 8));
  EXPECT_EQ((w >> (4 * (reg + 4))) & 15u, uint32_t(5 + 8));
  for (int r = 0; r < 8; ++r)
    if (r != reg && r != reg + 4) EXPECT_EQ((w >> (4 * r)) & 15u, 8u) << "nibble " << r;
  const int meta_word = 2 * 1 + 1;  // lane q' = 1 holds groups 4..7
  const uint32_t m = meta[size_t((1 * 16 + meta_word) * 4 + 1)];
  EXPECT_EQ((m >> (16 + 4 * 2)) & 15u, uint32_t(1 | 3 << 2));
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> code(-8, 7), pos(0, 3);
  for (int64_t n_rows : {1, 16, 37})
    for (int64_t kk : {128, 512}) {
      std::vector<int8_t> c(size_t(n_rows * kk), 0);
      for (int64_t g = 0; g < n_rows * kk / 4; ++g) {
        const int i0 = pos(rng), i1 = (i0 + 1 + pos(rng) % 3) % 4;
        c[size_t(4 * g + i0)] = int8_t(code(rng));
        c[size_t(4 * g + i1)] = int8_t(code(rng));
      }
      std::vector<uint8_t> cr(size_t(n_rows * sparse24_row_bytes(kk, 4)));
      ASSERT_EQ(compress_2to4(c.data(), n_rows, kk, cr.data(), 4), -1);
      const int64_t tiles = sparse24_mma_tiles(n_rows);
      std::vector<uint32_t> v(size_t(tiles * kk)), mt(size_t(tiles * kk / 2));
      sparse24_int4_mma_pack(cr.data(), n_rows, kk, v.data(), mt.data());
      std::vector<int8_t> back(c.size(), 99);
      sparse24_int4_mma_unpack(v.data(), mt.data(), n_rows, kk, back.data());
      EXPECT_EQ(back, c) << "N " << n_rows << " K " << kk;
      // Padding rows: zero codes (stored 8) with valid metadata (columns 0 and 1).
      if (n_rows % 16) {
        EXPECT_EQ(v.back(), 0x88888888u);
        EXPECT_EQ(mt.back() >> 28, uint32_t(0 | 1 << 2));
      }
    }
}

// The CUDA 2:4 float8 kernel's operand form (sparse24_float8_mma_pack): one
// kept pair placed by hand where sparse24.h says mma.sp m16n8k64 wants it,
// and random 2:4 bytes (rows padded to a tile, K to a block) back to their
// dense codes.
TEST(Sparse24, Float8MmaFormPlacesCodesAndMetadata) {
  const int64_t N = 16, K = 192;  // one tile, 3 blocks of 64
  std::vector<int8_t> dense(size_t(N * K), 0);
  // Row 13 (g = 5, upper rows), block 2, group 11 of the block (lane q = 1, registers of groups
  // 8 + 2q and 9 + 2q: the second group): kept columns 0 and 2, bytes 0x3c and 0xb8.
  const int64_t k0 = 2 * 64 + 11 * 4;
  dense[size_t(13 * K + k0 + 0)] = int8_t(0x3c);
  dense[size_t(13 * K + k0 + 2)] = int8_t(0xb8);
  std::vector<uint8_t> rows(size_t(N * sparse24_row_bytes(K)));
  ASSERT_EQ(compress_2to4(dense.data(), N, K, rows.data()), -1);
  const int64_t words = sparse24_mma_tiles(N) * sparse24_float8_mma_blocks(K) * 32;
  std::vector<uint32_t> values(static_cast<size_t>(4 * words)), meta(static_cast<size_t>(words));
  sparse24_float8_mma_pack(rows.data(), N, K, values.data(), meta.data());
  const int lane = 4 * 5 + 1, reg = 1 + 2 * 1;  // row g + 8, groups 8..15
  const uint32_t w = values[size_t((2 * 32 + lane) * 4 + reg)];
  EXPECT_EQ(w, 0x3cu << 16 | 0xb8u << 24);  // the block's second group: bytes 2 and 3
  uint32_t others = 0;
  for (size_t i = 0; i < values.size(); ++i)
    if (i != size_t((2 * 32 + lane) * 4 + reg)) others |= values[i];
  EXPECT_EQ(others, 0u);
  const uint32_t m = meta[size_t(2 * 32 + 4 * 5 + reg)];  // register r's metadata: lane 4 g + r
  EXPECT_EQ((m >> (4 * 3)) & 15u, uint32_t(0 | 2 << 2));   // group 11 = 8 + 3
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> byte(1, 255), pos(0, 3);
  for (int64_t n_rows : {1, 16, 37})
    for (int64_t kk : {4, 60, 64, 260}) {
      std::vector<int8_t> c(size_t(n_rows * kk), 0);
      for (int64_t g = 0; g < n_rows * kk / 4; ++g) {
        const int i0 = pos(rng), i1 = (i0 + 1 + pos(rng) % 3) % 4;
        c[size_t(4 * g + i0)] = int8_t(byte(rng));
        c[size_t(4 * g + i1)] = int8_t(byte(rng));
      }
      std::vector<uint8_t> cr(size_t(n_rows * sparse24_row_bytes(kk)));
      ASSERT_EQ(compress_2to4(c.data(), n_rows, kk, cr.data()), -1);
      const int64_t wn = sparse24_mma_tiles(n_rows) * sparse24_float8_mma_blocks(kk) * 32;
      std::vector<uint32_t> v(static_cast<size_t>(4 * wn)), mt(static_cast<size_t>(wn));
      sparse24_float8_mma_pack(cr.data(), n_rows, kk, v.data(), mt.data());
      std::vector<uint8_t> back(c.size(), 99);
      sparse24_float8_mma_unpack(v.data(), mt.data(), n_rows, kk, back.data());
      EXPECT_EQ(std::vector<int8_t>(back.begin(), back.end()), c) << "N " << n_rows << " K " << kk;
      // Padding (rows past N, columns past K): zero bytes with valid metadata (columns 0 and 1). The last
      // words hold the last tile's row 15, groups 14 and 15 of the last block.
      const int64_t last_k = (sparse24_float8_mma_blocks(kk) - 1) * 64;
      const bool row_pad = sparse24_mma_tiles(n_rows) * 16 - 1 >= n_rows;
      if (row_pad || last_k + 56 >= kk) EXPECT_EQ(v.back(), 0u);
      if (row_pad || last_k + 60 >= kk) EXPECT_EQ(mt.back() >> 28, uint32_t(0 | 1 << 2));
    }
}

TEST(Sparse24, PruneKeepsTwoLargestMagnitudes) {
  const std::vector<float> w = {1, -4, 3, 2, 5, 5, 5, 5, NAN, 0, 1, -1, 0, 0, 0, 0};
  std::vector<float> out(w.size());
  prune_2to4(w.data(), 2, 8, out.data());
  const std::vector<float> want = {0, -4, 3, 0, 0, 0, 5, 5};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], want[i]) << i;
  EXPECT_TRUE(std::isnan(out[8]));
  EXPECT_EQ(out[9], 0.0f);
  EXPECT_EQ(out[10], 0.0f);
  EXPECT_EQ(out[11], -1.0f);
  for (int i = 12; i < 16; ++i) EXPECT_EQ(out[i], 0.0f);
}

// Every weight-only kernel path (direct dots, row decode, the panel GEMM
// above direct_dot_max_rows) under every instruction set, for every code format,
// over shapes that are not multiples of any tile, every group size dividing K
// and the three activation dtypes, against a double reference.
struct SweepWeights {
  int64_t N, K, group;
  std::vector<float> scale, zp;
  std::vector<double> w;  // dequantized reference weight, N x K
};

class WeightOnlySweep : public SimdTest {
 protected:
  template <class TA, class Codes>
  void check(const char* what, const Codes& codes, const SweepWeights& sw, ZeroPointDomain dom, int64_t qmin,
             int64_t qmax, int64_t M) {
    std::mt19937 rng(uint32_t(M * 131 + sw.K + sw.group));
    std::normal_distribution<float> nd;
    const LinearShape s{M, sw.N, sw.K, sw.group};
    std::vector<TA> x(M * sw.K), bias(sw.N), out(M * sw.N);
    for (auto& v : x) v = from_float<TA>(nd(rng));
    for (auto& v : bias) v = from_float<TA>(nd(rng));
    weight_only_linear<TA, float>(x.data(), codes, sw.scale.data(), dom == ZeroPointDomain::None ? nullptr : sw.zp.data(),
                                  dom, qmin, qmax, bias.data(), s, out.data(), 3);
    const double out_eps = std::is_same_v<TA, float> ? 0.0 : std::is_same_v<TA, bf16> ? 1.0 / 128 : 1.0 / 1024;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < sw.N; ++n) {
        double ref = to_float(bias[n]), mag = std::fabs(ref);
        for (int64_t k = 0; k < sw.K; ++k) {
          const double t = double(to_float(x[m * sw.K + k])) * sw.w[n * sw.K + k];
          ref += t, mag += std::fabs(t);
        }
        ASSERT_NEAR(to_float(out[m * sw.N + n]), ref, 1e-5 * mag + out_eps * std::fabs(ref) + 1e-6)
            << what << " M=" << M << " N=" << sw.N << " K=" << sw.K << " group=" << sw.group << " m=" << m
            << " n=" << n;
      }
  }

  template <class Codes>
  void check_all(const char* what, const Codes& codes, const SweepWeights& sw, ZeroPointDomain dom, int64_t qmin,
                 int64_t qmax) {
    for (int64_t M : {1, 5, 8, 9, 33}) {
      check<float>(what, codes, sw, dom, qmin, qmax, M);
      check<bf16>(what, codes, sw, dom, qmin, qmax, M);
      check<fp16>(what, codes, sw, dom, qmin, qmax, M);
    }
    // The panel GEMM just above the format's direct dots, where that is above 33 rows (float32 only:
    // it converts every activation dtype to float32 first, and 33 rows of int8 and float8 codes
    // already cover the conversions on this path).
    if (direct_dot_max_rows<Codes>(true) >= 33)
      check<float>(what, codes, sw, dom, qmin, qmax, direct_dot_max_rows<Codes>(true) + 1);
  }
};

TEST_P(WeightOnlySweep, EveryFormatShapeGroupAndDtype) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  struct Shape {
    int64_t K;
    std::vector<int64_t> groups;
  };
  for (const Shape& sh : {Shape{256, {32, 64, 128, 256}}, Shape{288, {32, 96, 288}}, Shape{544, {32, 544}}})
    for (int64_t N : {37, 70})
      for (int64_t group : sh.groups) {
        const int64_t K = sh.K, G = K / group;
        SweepWeights sw{N, K, group, std::vector<float>(N * G), std::vector<float>(N * G), std::vector<double>(N * K)};
        for (auto& v : sw.scale) v = 0.01f + std::fabs(nd(rng)) * 0.02f;
        // Integer formats: codes in [qmin, qmax], reference w = (c - z) * s, or (c - mid) * s + z (FLOAT domain).
        auto integer = [&](int bits, bool is_signed, ZeroPointDomain dom, auto make_codes) {
          const int64_t qmin = is_signed ? -(int64_t(1) << (bits - 1)) : 0, qmax = qmin + (int64_t(1) << bits) - 1;
          std::uniform_int_distribution<int64_t> cd(qmin, qmax);
          std::vector<int64_t> c(N * K);
          for (auto& v : c) v = cd(rng);
          for (auto& v : sw.zp)
            v = dom == ZeroPointDomain::Float ? nd(rng) * 0.05f : float(cd(rng) / 2);  // integer zero points
          const double mid = (double(qmax) + double(qmin) + 1.0) / 2.0;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t k = 0; k < K; ++k) {
              const int64_t g = n * G + k / group;
              const double cv = double(c[n * K + k]);
              sw.w[n * K + k] = dom == ZeroPointDomain::Float ? (cv - mid) * sw.scale[g] + sw.zp[g]
                                : dom == ZeroPointDomain::Int ? (cv - sw.zp[g]) * sw.scale[g]
                                                              : cv * sw.scale[g];
            }
          make_codes(c, qmin, qmax);
        };
        integer(8, true, ZeroPointDomain::Int, [&](const std::vector<int64_t>& c, int64_t qmin, int64_t qmax) {
          std::vector<int8_t> p(c.begin(), c.end());
          check_all("int8", PlainCodes<int8_t>{p.data(), K}, sw, ZeroPointDomain::Int, qmin, qmax);
        });
        integer(8, true, ZeroPointDomain::None, [&](const std::vector<int64_t>& c, int64_t qmin, int64_t qmax) {
          std::vector<int8_t> p(c.begin(), c.end());
          check_all("int8 symmetric", PlainCodes<int8_t>{p.data(), K}, sw, ZeroPointDomain::None, qmin, qmax);
        });
        integer(8, false, ZeroPointDomain::Int, [&](const std::vector<int64_t>& c, int64_t qmin, int64_t qmax) {
          std::vector<uint8_t> p(c.begin(), c.end());
          check_all("uint8", PlainCodes<uint8_t>{p.data(), K}, sw, ZeroPointDomain::Int, qmin, qmax);
        });
        for (int bits = 1; bits <= 8; ++bits) {
          const ZeroPointDomain dom = bits == 4 ? ZeroPointDomain::Float : ZeroPointDomain::Int;
          integer(bits, bits != 4, dom, [&](const std::vector<int64_t>& c, int64_t qmin, int64_t qmax) {
            std::vector<uint8_t> p(N * packed_row_bytes(K, bits));
            dispatch_bits(bits, [&](auto b) {
              constexpr int B = decltype(b)::value;
              pack_bits_rows<B>(c.data(), N, K, qmin, p.data());
              const std::string what = "packed " + std::to_string(B) + "-bit";
              check_all(what.c_str(), PackedCodes<B>{p.data(), K, qmin}, sw, dom, qmin, qmax);
            });
          });
        }
        // Float8: every finite code.
        std::uniform_int_distribution<int> byte(0, 255);
        std::vector<uint8_t> f8(N * K);
        for (auto fmt : {Float8Format::E4M3FN, Float8Format::E5M2}) {
          for (int64_t i = 0; i < N * K; ++i) {
            uint8_t c;
            do c = uint8_t(byte(rng));
            while (!std::isfinite(fmt == Float8Format::E4M3FN ? float8_to_float<Float8Format::E4M3FN>(c)
                                                              : float8_to_float<Float8Format::E5M2>(c)));
            f8[i] = c;
            const double v = fmt == Float8Format::E4M3FN ? float8_to_float<Float8Format::E4M3FN>(c)
                                                         : float8_to_float<Float8Format::E5M2>(c);
            sw.w[i] = v * sw.scale[(i / K) * G + (i % K) / group];
          }
          if (fmt == Float8Format::E4M3FN)
            check_all("float8_e4m3fn", Float8Codes<Float8Format::E4M3FN>{f8.data(), K}, sw, ZeroPointDomain::None, 0, 0);
          else
            check_all("float8_e5m2", Float8Codes<Float8Format::E5M2>{f8.data(), K}, sw, ZeroPointDomain::None, 0, 0);
        }
      }
}

// A NaN (or Inf) float8 code makes its own output row NaN (Inf) in every
// path (M = 1 direct dot with 32-code steps and with the decoded fallback,
// M = 9 panel GEMM), and leaves the other rows exact.
TEST_P(WeightOnlySweep, Float8NaNAndInfCodesReachOnlyTheirRow) {
  const int64_t N = 3, K = 96;
  for (bool e4m3 : {true, false})
    for (int64_t group : {K, int64_t(8)})
      for (int64_t M : {1, 9}) {
        std::vector<uint8_t> c(N * K, 0x38);  // 1.0 in e4m3fn, 0.5 in e5m2
        c[1 * K + 70] = e4m3 ? 0x7F : 0x7E;   // NaN
        c[2 * K + 5] = e4m3 ? 0xFF : 0x7C;    // e4m3fn: NaN; e5m2: +Inf
        std::vector<float> x(M * K, 1.0f), scale(N * (K / group), 1.0f), out(M * N);
        const LinearShape s{M, N, K, group};
        if (e4m3)
          weight_only_linear<float, float>(x.data(), Float8Codes<Float8Format::E4M3FN>{c.data(), K}, scale.data(),
                                           nullptr, ZeroPointDomain::None, 0, 0, nullptr, s, out.data(), 2);
        else
          weight_only_linear<float, float>(x.data(), Float8Codes<Float8Format::E5M2>{c.data(), K}, scale.data(),
                                           nullptr, ZeroPointDomain::None, 0, 0, nullptr, s, out.data(), 2);
        for (int64_t m = 0; m < M; ++m) {
          EXPECT_EQ(out[m * N], e4m3 ? float(K) : 0.5f * K) << "e4m3=" << e4m3 << " group=" << group << " M=" << M;
          EXPECT_TRUE(std::isnan(out[m * N + 1])) << "e4m3=" << e4m3 << " group=" << group << " M=" << M;
          if (e4m3)
            EXPECT_TRUE(std::isnan(out[m * N + 2])) << "group=" << group << " M=" << M;
          else
            EXPECT_EQ(out[m * N + 2], std::numeric_limits<float>::infinity()) << "group=" << group << " M=" << M;
        }
      }
}

INSTANTIATE_TEST_SUITE_P(Isas, WeightOnlySweep, ::testing::ValuesIn(supported_isas()), isa_name);

// The fused activation quantizer of the int8 GEMM gives the reference
// primitives' scales, zero points and codes bit for bit, under every ISA.
template <class T>
void expect_fused_quant_matches(ActQuant mode, int64_t M, int64_t K) {
  std::mt19937 rng(uint32_t(M * 7 + K));
  std::normal_distribution<float> nd;
  std::vector<T> x(M * K);
  for (int64_t i = 0; i < M * K; ++i) x[i] = from_float<T>(nd(rng) * (1 + i % 5) * (i % 3 ? 1.0f : 10.0f));
  if (M > 2)
    for (int64_t k = 0; k < K; ++k) x[2 * K + k] = from_float<T>(0.0f);  // an all-zero row: eps scale
  const bool asym = mode == ActQuant::Asymmetric, int4 = mode == ActQuant::Int4Symmetric;
  QParamsSpec spec;
  spec.mapping = asym ? MappingType::Asymmetric : MappingType::Symmetric;
  spec.quant_min = asym ? -128 : -127, spec.quant_max = 127, spec.eps = asym ? spec.eps : 1e-5f;
  if (int4) spec.quant_min = -8, spec.quant_max = 7, spec.eps = std::numeric_limits<float>::epsilon();
  const BlockGeometry g{{M, K}, {1, K}};
  std::vector<float> rs(M), rz(M);
  ASSERT_EQ((choose_qparams_affine<T, float, float>(x.data(), g, spec, rs.data(), rz.data(), 1)), -1);
  std::vector<int8_t> rq(M * K);
  // The scale's dtype: float32, or the input's for symmetric (reduced range) bfloat16.
  if (!asym && !int4 && std::is_same_v<T, bf16>) {
    std::vector<bf16> sb(M);
    for (int64_t m = 0; m < M; ++m) sb[m] = from_float<bf16>(rs[m]);
    quantize_affine<T, bf16, int8_t>(x.data(), g, sb.data(), rz.data(), ZeroPointDomain::Int, spec.quant_min,
                                     spec.quant_max, rq.data(), 1);
  } else {
    quantize_affine<T, float, int8_t>(x.data(), g, rs.data(), rz.data(), ZeroPointDomain::Int, spec.quant_min,
                                      spec.quant_max, rq.data(), 1);
  }
  const int64_t Kp = (K + 3) / 4 * 4;
  std::vector<uint8_t> u(M * Kp);
  std::vector<float> s(M), z(M);
  ASSERT_EQ(quantize_activations_u8<T>(x.data(), M, K, Kp, mode, u.data(), s.data(), z.data(), 2), -1);
  for (int64_t m = 0; m < M; ++m) {
    ASSERT_EQ(s[m], rs[m]) << m;
    ASSERT_EQ(z[m], rz[m]) << m;
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(int(u[m * Kp + k]) - 128, int(rq[m * K + k])) << m << "," << k;
    for (int64_t k = K; k < Kp; ++k) ASSERT_EQ(u[m * Kp + k], 128);
  }
  // A row with NaN or Inf is reported.
  x[(M - 1) * K + K / 2] = from_float<T>(std::numeric_limits<float>::infinity());
  EXPECT_EQ(quantize_activations_u8<T>(x.data(), M, K, Kp, mode, u.data(), s.data(), z.data(), 2), M - 1);
}

TEST_P(SimdTest, FusedActivationQuantizerMatchesPrimitives) {
  for (auto mode : {ActQuant::Asymmetric, ActQuant::SymmetricReducedRange, ActQuant::Int4Symmetric})
    for (int64_t K : {1, 13, 16, 64, 257})
      for (int64_t M : {1, 3, 6}) {
        expect_fused_quant_matches<float>(mode, M, K);
        expect_fused_quant_matches<bf16>(mode, M, K);
        expect_fused_quant_matches<fp16>(mode, M, K);
      }
}

// HQQ: codes in range, the affine parameters reproduce the codes' grid, the
// mean |w - dequant| no worse than the min/max start, constant groups finite.
TEST(Hqq, ImprovesOnMinMaxAndKeepsItsFormat) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const int64_t groups = 96, len = 64;
  std::vector<float> w(groups * len);
  for (auto& v : w) v = nd(rng) * 0.02f * (rng() % 500 == 0 ? 25.0f : 1.0f);
  for (int64_t i = 0; i < len; ++i) w[5 * len + i] = 0.25f;  // a constant group
  for (int nbits : {2, 3, 4}) {
    const float qmax = float((1 << nbits) - 1), mid = (qmax + 1.0f) / 2.0f;
    std::vector<uint8_t> q(w.size()), q0(w.size());
    std::vector<float> s(groups), z(groups), s0(groups), z0(groups);
    HqqOptions off;
    off.iters = 0;  // the min/max start, unoptimised
    EXPECT_EQ(hqq_quantize(w.data(), groups, len, nbits, off, q0.data(), s0.data(), z0.data(), 2), 0);
    const int rounds = hqq_quantize(w.data(), groups, len, nbits, HqqOptions{}, q.data(), s.data(), z.data(), 2);
    EXPECT_GE(rounds, 1);
    EXPECT_LE(rounds, 20);
    double err = 0, err0 = 0;
    for (int64_t g = 0; g < groups; ++g) {
      ASSERT_TRUE(std::isfinite(s[g]) && std::isfinite(z[g])) << g;
      EXPECT_EQ(s[g], s0[g]) << "HQQ moves only the zero point";
      for (int64_t i = 0; i < len; ++i) {
        ASSERT_LE(q[g * len + i], qmax);
        // FLOAT domain: w ~ (q - mid) * scale + zero.
        err += std::fabs((float(q[g * len + i]) - mid) * s[g] + z[g] - w[g * len + i]);
        err0 += std::fabs((float(q0[g * len + i]) - mid) * s0[g] + z0[g] - w[g * len + i]);
      }
    }
    EXPECT_LT(err, err0) << nbits;
    EXPECT_NEAR((float(q[5 * len]) - mid) * s[5] + z[5], 0.25f, 1e-3f);
  }
}

// Every bfloat16 and float16 bit pattern (and a tail shorter than a vector)
// against the formats' definitions.
TEST_P(SimdTest, HalfToF32MatchesDefinition) {
  const int64_t n = 65536 + 5;
  std::vector<uint16_t> h(n);
  for (int64_t i = 0; i < n; ++i) h[i] = uint16_t(i * 40503 % 65536);  // odd multiplier: every pattern once
  std::vector<float> f(n);
  for (bool bf16 : {true, false}) {
    half_to_f32(h.data(), n, bf16, f.data());
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t b = h[i];
      const int e = bf16 ? (b >> 7) & 0xff : (b >> 10) & 0x1f, emax = bf16 ? 0xff : 0x1f;
      const int mbits = bf16 ? 7 : 10, bias = bf16 ? 127 : 15, m = b & ((1 << mbits) - 1);
      const double sign = (b & 0x8000) ? -1.0 : 1.0;
      if (e == emax && m != 0) {
        EXPECT_TRUE(std::isnan(f[i])) << (bf16 ? "bf16 " : "fp16 ") << b;
        continue;
      }
      const double ref = e == emax ? sign * std::numeric_limits<double>::infinity()
                         : e == 0  ? sign * std::ldexp(double(m), 1 - bias - mbits)
                                   : sign * std::ldexp(1.0 + std::ldexp(double(m), -mbits), e - bias);
      EXPECT_EQ(double(f[i]), ref) << (bf16 ? "bf16 " : "fp16 ") << b;
    }
  }
}

TEST_P(SimdTest, UnpackBitsAndFloat8DecodeMatchScalar) {
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t n : {1, 7, 8, 9, 64, 101, 128, 515}) {
      std::vector<uint8_t> codes(n), packed(packed_row_bytes(n, bits)), out(n);
      for (auto& v : codes) v = uint8_t(byte(rng) & ((1 << bits) - 1));
      dispatch_bits(bits, [&](auto b) { pack_bits_rows<decltype(b)::value>(codes.data(), 1, n, 0, packed.data()); });
      unpack_bits_u8(packed.data(), n, bits, out.data());
      EXPECT_EQ(out, codes) << bits << " bits, n=" << n;
    }
  std::vector<uint8_t> all(256 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint8_t(i);
  std::vector<float> f(all.size());
  for (bool e4m3 : {true, false}) {
    float8_to_f32(all.data(), int64_t(all.size()), e4m3, f.data());
    for (size_t i = 0; i < all.size(); ++i) {
      const float r = e4m3 ? float8_to_float<Float8Format::E4M3FN>(all[i]) : float8_to_float<Float8Format::E5M2>(all[i]);
      if (std::isnan(r))
        EXPECT_TRUE(std::isnan(f[i])) << i;
      else
        EXPECT_EQ(f[i], r) << (e4m3 ? "e4m3fn " : "e5m2 ") << i;
    }
  }
}

// --- float-x codes (FPXWeightOnlyConfig) -------------------------------------------------------------

#include <cmath>
#include <limits>

#include "kernels/cpu/floatx.h"

namespace {

// Every format the tests sweep: fp6 e3m2 / e2m3, fp5 e2m2, fp4 e2m1, fp8 e4m3 (without Inf/NaN), and the
// narrow and wide ends (e1m0, e1m1, e1m6, e7m0, e5m2).
const std::vector<std::pair<int, int>> kFloatxFormats = {{3, 2}, {2, 3}, {2, 2}, {2, 1}, {4, 3}, {1, 1},
                                                         {1, 0}, {1, 6}, {7, 0}, {5, 2}, {3, 4}, {4, 1}};

// The value of positive code c, from the format's definition (not floatx_to_f32).
double floatx_ref_value(int c, int e, int m) {
  const int bias = (1 << (e - 1)) - 1;
  const int exp = c >> m, mant = c & ((1 << m) - 1);
  if (exp == 0) return mant * std::pow(2.0, 1 - bias - m);
  return (1.0 + mant / std::pow(2.0, m)) * std::pow(2.0, exp - bias);
}

// Brute force: the nearest of all positive codes' values to |x| (ties to the even code), with x's sign
// bit. At and beyond the largest value (Inf included) it is the largest (saturation; far beyond it every
// distance would round to the same double).
uint8_t floatx_ref_encode(float x, int e, int m) {
  const int npos = 1 << (e + m);
  const double a = std::fabs(double(x));
  int best = npos - 1;
  if (a < floatx_ref_value(npos - 1, e, m)) {
    double bd = INFINITY;
    for (int c = 0; c < npos; ++c) {
      const double d = std::fabs(a - floatx_ref_value(c, e, m));
      if (d < bd || (d == bd && c % 2 == 0)) {
        bd = d;
        best = c;
      }
    }
  }
  return uint8_t(best | (std::signbit(x) ? npos : 0));
}

}  // namespace

TEST(Floatx, DecodeMatchesTheFormatDefinitionForEveryCode) {
  for (const auto& f : kFloatxFormats) {
    const int e = f.first, m = f.second, n = 1 + e + m;
    const float* table = floatx_table(e, m);
    for (int c = 0; c < (1 << n); ++c) {
      const bool neg = c >> (e + m);
      const double want = (neg ? -1 : 1) * floatx_ref_value(c & ((1 << (e + m)) - 1), e, m);
      ASSERT_EQ(double(floatx_to_f32(uint32_t(c), e, m)), want) << "e" << e << "m" << m << " code " << c;
      ASSERT_EQ(float_bits(table[c]), float_bits(floatx_to_f32(uint32_t(c), e, m)));
      ASSERT_EQ(std::signbit(table[c]), neg);  // code 1 << (e + m) is -0
      // Every code, negative zero included, encodes back to itself.
      ASSERT_EQ(f32_to_floatx(table[c], e, m), c) << "e" << e << "m" << m << " code " << c;
    }
    EXPECT_EQ(double(floatx_max_normal(e, m)), floatx_ref_value((1 << (e + m)) - 1, e, m));
  }
  // Known values: fp6 e3m2 max 28, smallest subnormal 1/16; fp4 e2m1 max 6, subnormal 0.5; fp6 e2m3 max 7.5.
  EXPECT_EQ(floatx_max_normal(3, 2), 28.0f);
  EXPECT_EQ(floatx_to_f32(1, 3, 2), 0.0625f);
  EXPECT_EQ(floatx_max_normal(2, 1), 6.0f);
  EXPECT_EQ(floatx_to_f32(1, 2, 1), 0.5f);
  EXPECT_EQ(floatx_max_normal(2, 3), 7.5f);
  EXPECT_EQ(floatx_max_normal(2, 2), 7.0f);
  EXPECT_EQ(floatx_max_normal(4, 3), 480.0f);  // e4m3 without NaN: 0x7f is 480, not NaN
}

TEST(Floatx, EncodeMatchesBruteForceOnRandomAndEdgeValues) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (const auto& f : kFloatxFormats) {
    const int e = f.first, m = f.second, npos = 1 << (e + m);
    const float mx = floatx_max_normal(e, m);
    std::vector<float> xs = {0.0f, -0.0f, mx, -mx, 2 * mx, -1e30f, INFINITY, -INFINITY,
                             std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::min()};
    // Each pair of neighbouring values: the midpoint (a tie), just below and above it, the values themselves.
    for (int c = 0; c + 1 < npos; ++c) {
      const float lo = float(floatx_ref_value(c, e, m)), hi = float(floatx_ref_value(c + 1, e, m));
      const float mid = (lo + hi) / 2;  // exact: both have few mantissa bits
      for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), lo, hi})
        for (float s : {1.0f, -1.0f}) xs.push_back(s * v);
    }
    // Past the max: the tie with the next (unrepresentable) step still saturates.
    const float step = mx - float(floatx_ref_value(npos - 2, e, m));
    xs.push_back(mx + step / 2);
    xs.push_back(-(mx + step));
    // Half the smallest subnormal ties to zero; just above it rounds up.
    const float sub = float(floatx_ref_value(1, e, m));
    for (float v : {sub / 2, std::nextafter(sub / 2, INFINITY), sub / 4, -sub / 2}) xs.push_back(v);
    // Random values across the format's range (uniform and log-uniform), and random bit patterns.
    for (int i = 0; i < 4000; ++i) {
      xs.push_back(uni(rng) * 1.25f * mx);
      xs.push_back(std::copysign(std::ldexp(std::fabs(uni(rng)) + 0.5f, int(bits(rng) % 40) - 24), uni(rng)));
      const float r = bits_float(bits(rng));
      if (!std::isnan(r)) xs.push_back(r);
    }
    for (float x : xs)
      ASSERT_EQ(int(f32_to_floatx(x, e, m)), int(floatx_ref_encode(x, e, m)))
          << "e" << e << "m" << m << " x=" << x << " (bits " << std::hex << float_bits(x) << ")";
  }
  // Spot values: fp6 e3m2 rounds 0.09375 (between 1/16 and 2/16, a tie) to the even code 2; 29 saturates to 28.
  EXPECT_EQ(f32_to_floatx(0.09375f, 3, 2), 2);
  EXPECT_EQ(f32_to_floatx(29.0f, 3, 2), 31);
  EXPECT_EQ(f32_to_floatx(-29.0f, 3, 2), 63);
  EXPECT_EQ(f32_to_floatx(-1e-9f, 3, 2), 32);  // negative zero
  // fp4 e2m1: 2.5 ties between 2 (code 4) and 3 (code 5): even code 4; 5.0 between 4 (code 6) and 6: code 6.
  EXPECT_EQ(f32_to_floatx(2.5f, 2, 1), 4);
  EXPECT_EQ(f32_to_floatx(5.0f, 2, 1), 6);
}

TEST(Floatx, NaNInputTakesTorchaosIntegerPath) {
  // torchao's _f32_to_floatx_unpacked sends NaN through its normal-number branch: the code is made of the
  // NaN's bits (default quiet NaN 0x7fc00000), truncated to 8 bits, with the NaN's sign.
  const float qnan = std::numeric_limits<float>::quiet_NaN(), nqnan = -qnan;
  EXPECT_EQ(f32_to_floatx(qnan, 3, 2), 14);  // 1.5
  EXPECT_EQ(f32_to_floatx(nqnan, 3, 2), 46);
  EXPECT_EQ(f32_to_floatx(qnan, 2, 3), 12);
  EXPECT_EQ(f32_to_floatx(nqnan, 2, 3), 44);
  EXPECT_EQ(f32_to_floatx(qnan, 2, 2), 6);
  EXPECT_EQ(f32_to_floatx(qnan, 2, 1), 3);
  EXPECT_EQ(f32_to_floatx(nqnan, 2, 1), 11);
  EXPECT_EQ(f32_to_floatx(qnan, 4, 3), 60);
  EXPECT_EQ(f32_to_floatx(nqnan, 4, 3), 188);
  // With no mantissa bits the truncated bits exceed the format's N bits (torchao's codes do too).
  EXPECT_EQ(f32_to_floatx(qnan, 1, 0), 129);
}

TEST(Floatx, ChooseQParamsQuantizeDequantizeRows) {
  // Row 0: max 2.8 -> scale 0.1 (fp6 e3m2: / 28); row 1: all zeros -> 1e-12 / 28; row 2 holds Inf.
  const std::vector<float> w = {2.8f, -1.4f, 0.05f, 0.0f, 0.0f, -0.0f, 0.0f, 0.0f, 1.0f, INFINITY, 0.0f, 0.0f};
  std::vector<float> scale(3, -1.0f);
  EXPECT_EQ((floatx_choose_qparams_rows<float, float>(w.data(), 3, 4, 3, 2, scale.data())), 2);
  EXPECT_EQ(scale[0], 2.8f / 28.0f);
  EXPECT_EQ(scale[1], 1e-12f / 28.0f);
  std::vector<uint8_t> codes(8);
  floatx_quantize_rows<float, float>(w.data(), scale.data(), 2, 4, 3, 2, codes.data());
  EXPECT_EQ(codes[0], f32_to_floatx(2.8f / scale[0], 3, 2));
  EXPECT_EQ(codes[0], 31);  // 28: the row's max maps to the largest code
  EXPECT_EQ(codes[1], 32 + 27);  // -14
  EXPECT_EQ(codes[5], 32);  // -0
  std::vector<float> back(8);
  floatx_dequantize_rows<float, float>(codes.data(), scale.data(), 2, 4, 3, 2, back.data());
  EXPECT_EQ(back[0], 28.0f * scale[0]);
  EXPECT_EQ(back[1], -14.0f * scale[0]);
  for (int k = 4; k < 8; ++k) EXPECT_EQ(back[k], 0.0f);
  // bfloat16 weight and scale: the scale is float32 max / 28 rounded to bfloat16.
  const std::vector<bf16> wb = {from_float<bf16>(3.0f), from_float<bf16>(-0.5f)};
  bf16 sb;
  floatx_choose_qparams_rows<bf16, bf16>(wb.data(), 1, 2, 2, 2, &sb);
  EXPECT_EQ(to_float(sb), round_to<bf16>(3.0f / 7.0f));
}

class FloatxLinearTest : public ::testing::TestWithParam<std::tuple<int, int, int64_t>> {};

// The weight-only kernel on bit-packed float-x codes against decode-then-dot (odd M, N, K: tails of every
// loop; M = 1, 3 take the per-row decode path, 9 and 17 the GEMM path).
TEST_P(FloatxLinearTest, MatchesDecodeThenDot) {
  const int e = std::get<0>(GetParam()), m = std::get<1>(GetParam()), bits = 1 + e + m;
  const int64_t M = std::get<2>(GetParam());
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  // K = 64, 256: the fused SIMD lookup-and-dot of the decode path; 300: its chunked fallback; odd K: the
  // per-row decode.
  for (const auto& nk : std::vector<std::pair<int64_t, int64_t>>{{7, 5}, {13, 67}, {33, 129}, {5, 300}, {9, 64},
                                                                 {6, 256}}) {
    const LinearShape s{M, nk.first, nk.second, nk.second};
    std::vector<float> x(s.M * s.K), scale(s.N), bias(s.N);
    std::vector<uint8_t> codes(s.N * s.K);
    for (auto& v : x) v = nd(rng);
    for (auto& v : codes) v = uint8_t(rng() % (1u << bits));
    for (auto& v : scale) v = 0.01f + std::fabs(nd(rng)) * 0.1f;
    for (auto& v : bias) v = nd(rng);
    std::vector<uint8_t> packed(s.N * packed_row_bytes(s.K, bits));
    dispatch_bits(bits, [&](auto bw) {
      constexpr int B = decltype(bw)::value;
      pack_bits_rows<B>(codes.data(), s.N, s.K, 0, packed.data());
      const FloatxCodes<B> reader{packed.data(), s.K, floatx_table(e, m)};
      std::vector<float> out(s.M * s.N);
      weight_only_linear<float, float>(x.data(), reader, scale.data(), nullptr, ZeroPointDomain::None, 0,
                                       (1 << bits) - 1, bias.data(), s, out.data(), 2);
      std::vector<bf16> xb(x.size()), bb(bias.size()), outb(out.size());
      for (size_t i = 0; i < x.size(); ++i) xb[i] = from_float<bf16>(x[i]);
      for (size_t i = 0; i < bias.size(); ++i) bb[i] = from_float<bf16>(bias[i]);
      weight_only_linear<bf16, float>(xb.data(), reader, scale.data(), nullptr, ZeroPointDomain::None, 0,
                                      (1 << bits) - 1, bb.data(), s, outb.data(), 1);
      for (int64_t i = 0; i < s.M; ++i)
        for (int64_t n = 0; n < s.N; ++n) {
          double ref = bias[n], refb = to_float(bb[n]), mag = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const double wv = floatx_ref_value(codes[n * s.K + k] & ((1 << (e + m)) - 1), e, m) *
                              ((codes[n * s.K + k] >> (e + m)) ? -1.0 : 1.0) * scale[n];
            ref += double(x[i * s.K + k]) * wv;
            refb += double(to_float(xb[i * s.K + k])) * wv;
            mag += std::fabs(double(x[i * s.K + k]) * wv);
          }
          ASSERT_NEAR(out[i * s.N + n], ref, 1e-4 * (1 + mag)) << "N=" << s.N << " K=" << s.K;
          // bfloat16 output: one rounding of a float32 sum.
          ASSERT_NEAR(to_float(outb[i * s.N + n]), refb, 1e-4 * (1 + mag) + std::fabs(refb) / 128)
              << "N=" << s.N << " K=" << s.K;
        }
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, FloatxLinearTest,
                         ::testing::Combine(::testing::Values(3, 2), ::testing::Values(2, 1),
                                            ::testing::Values<int64_t>(1, 3, 9, 17)));

TEST(Floatx, TableLookupMatchesScalarOnEveryIsa) {
  std::mt19937 rng(5);
  const Isa saved = active_isa();
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) {
    if (!set_isa(isa)) continue;
    for (int bits = 1; bits <= 8; ++bits) {
      std::vector<float> table(size_t(1) << bits);
      for (auto& t : table) t = float(int(rng() % 2001) - 1000) / 8.0f;
      for (int64_t n : {0, 1, 15, 16, 17, 100, 257}) {
        std::vector<uint8_t> c(n);
        for (auto& v : c) v = uint8_t(rng() % table.size());
        std::vector<float> out(n + 1, -7.0f);
        lut_u8_f32(c.data(), n, table.data(), bits, out.data());
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], table[c[i]]) << "isa " << int(isa) << " bits " << bits;
        ASSERT_EQ(out[n], -7.0f);  // nothing written past n
      }
    }
  }
  set_isa(saved);
}

TEST(Floatx, LookupDotMatchesScalarOnEveryIsa) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  const Isa saved = active_isa();
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) {
    if (!set_isa(isa)) continue;
    for (int bits : {2, 4, 5, 6, 7, 8}) {
      std::vector<float> table(size_t(1) << bits);
      for (auto& t : table) t = nd(rng);
      for (int64_t len : {32, 64, 40, 6}) {
        const int64_t groups = 3, K = len * groups;
        for (int rows = 1; rows <= kMaxDotRows; ++rows) {
          std::vector<float> x(K), gs(rows * groups), out(rows);
          std::vector<uint8_t> c(rows * K);
          for (auto& v : x) v = nd(rng);
          for (auto& v : gs) v = nd(rng);
          for (auto& v : c) v = uint8_t(rng() % table.size());
          dot_f32_lut_grouped(x.data(), c.data(), K, rows, len, groups, GroupScales{gs.data(), groups}, out.data(),
                              table.data(), bits);
          for (int r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (int64_t g = 0; g < groups; ++g)
              for (int64_t k = g * len; k < (g + 1) * len; ++k) {
                want += double(gs[r * groups + g]) * x[k] * table[c[r * K + k]];
                mag += std::fabs(double(gs[r * groups + g]) * x[k] * table[c[r * K + k]]);
              }
            ASSERT_NEAR(out[r], want, 1e-5 * (1 + mag)) << "isa " << int(isa) << " bits " << bits << " len " << len;
          }
        }
      }
    }
  }
  set_isa(saved);
}
