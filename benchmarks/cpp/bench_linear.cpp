// Quantized linear kernels (torch-free) on the shapes: M in {1, 8, 32,
// 256} x (K, N) in {(2048, 5632), (5632, 2048), (4096, 4096)}. Reports
// GFLOP/s (2*M*N*K) and weight bytes streamed per second; BM_ReadBandwidth is
// the reference: a plain reduction over a buffer larger than the last-level cache.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/cpu/aligned.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/bitpack.h"
#include "kernels/cpu/floatx.h"
#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/sparse24.h"

using namespace torchao_cpp::kernels;

namespace {

const int kThreads = omp_get_max_threads();

// Weights and their scales are replicated until the copies exceed three times
// the last-level cache (and 96 MB), and each iteration takes the next copy, so
// decode reads them from DRAM as in a model. Before, 96 MB of int8 copies were
// made for every format, so the int4 ones spanned 48 MB, part of which Zen 4's
// 32 MB L3 held, and all shared one scale array: the BF16 int4 dot read
// 35-44 GB/s there against 28-33 now (alternating runs, 2 threads), which is
// what the model's linears get.
double cold_bytes() {
  const long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max(96e6, 3.0 * double(std::max(llc, 0L)));
}

// Activation rows of the decode benchmarks (weights from DRAM, as above); the
// prefill ones (32, 256) read each weight once per many rows: no copies.
constexpr int64_t kDecodeRows = 8;

// The code buffer a benchmark reads: int8 (one byte per weight; float8, fp6
// and the int8 GEMMs reuse it) or packed int4 rows (uint3 rows fit in them).
enum class Codes8Or4 { Int8, Int4 };

// Weights 64-byte aligned (AlignedVector), as torch aligns tensors: from
// malloc's 16-byte alignment the BF16 int4 dot, which loads 64 bytes at a
// time, split every load and streamed 27 GB/s instead of 38 (Zen 4, 2 threads).
struct Problem {
  LinearShape s;
  int64_t G;
  Codes8Or4 kind;
  std::vector<float> x, scale, zp;  // scale and zero point: copies x [N, G]
  AlignedVector<int8_t> codes8;     // copies x [N, K], kind Int8
  AlignedVector<uint8_t> packed4;   // copies x N packed int4 rows, kind Int4
  std::vector<float> out;
  int64_t copies = 1, next = 0;

  // Index of the weight copy the next iteration reads.
  int64_t take() { return next = (next + 1) % copies; }
  const int8_t* w8(int64_t c) const { return codes8.data() + c * s.N * s.K; }
  const uint8_t* w4(int64_t c) const { return packed4.data() + c * s.N * packed_row_bytes(s.K, 4); }
  const float* sc(int64_t c) const { return scale.data() + c * s.N * G; }
  const float* zpc(int64_t c) const { return zp.data() + c * s.N * G; }

  Problem(int64_t M, int64_t K, int64_t N, int64_t group, Codes8Or4 kind) : s{M, N, K, group}, G(K / group), kind(kind) {
    // Float32 activations may take bfloat16x3 products on AMX tiles, as
    // under torch.set_float32_matmul_precision("high"); the NoAmx twins
    // show the float32 kernels, what torch's default ("highest") runs.
    s.fp32_reduced = true;
    const int64_t row_bytes = kind == Codes8Or4::Int8 ? K : packed_row_bytes(K, 4);
    if (M <= kDecodeRows) copies = std::max<int64_t>(1, int64_t(cold_bytes() / double(N * row_bytes)));
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    x.resize(M * K);
    for (auto& v : x) v = nd(rng);
    scale.resize(copies * N * G);
    for (auto& v : scale) v = 0.01f * (1.0f + 0.1f * nd(rng));
    zp.resize(copies * N * G);
    for (auto& v : zp) v = 0.001f * nd(rng);
    if (kind == Codes8Or4::Int8) {
      std::uniform_int_distribution<int> c8(-128, 127);
      codes8.resize(copies * N * K);
      for (int64_t i = 0; i < N * K; ++i) codes8[i] = int8_t(c8(rng));
      for (int64_t r = 1; r < copies; ++r) std::copy_n(codes8.data(), N * K, codes8.data() + r * N * K);
    } else {
      std::uniform_int_distribution<int> c4(0, 15);
      std::vector<uint8_t> c(N * K);
      for (auto& v : c) v = uint8_t(c4(rng));
      packed4.resize(copies * N * row_bytes);
      pack_bits_rows<4>(c.data(), N, K, 0, packed4.data());
      for (int64_t r = 1; r < copies; ++r) std::copy_n(packed4.data(), N * row_bytes, packed4.data() + r * N * row_bytes);
    }
    out.resize(M * N);
  }
};

// Google Benchmark calls each benchmark function several times while it sizes
// the run: the copies (hundreds of MB) are built once per problem.
Problem& problem(int64_t M, int64_t K, int64_t N, int64_t group, Codes8Or4 kind) {
  static std::unique_ptr<Problem> p;
  if (!p || p->s.M != M || p->s.K != K || p->s.N != N || p->s.group_size != group || p->kind != kind) {
    p.reset();
    p = std::make_unique<Problem>(M, K, N, group, kind);
  }
  return *p;
}

void report(benchmark::State& st, const LinearShape& s, double weight_bytes) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.M * s.N * s.K * st.iterations(), benchmark::Counter::kIsRate,
                                              benchmark::Counter::kIs1000);
  st.counters["weight_GB/s"] =
      benchmark::Counter(weight_bytes * st.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  st.counters["threads"] = kThreads;
}

void BM_Int8WeightOnly(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  for (auto _ : st) {
    const int64_t c = p.take();
    weight_only_linear<float, float>(p.x.data(), PlainCodes<int8_t>{p.w8(c), p.s.K}, p.sc(c), nullptr,
                                     ZeroPointDomain::None, -128, 127, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K + 4.0 * p.s.N * p.G);
}

void BM_Int4WeightOnlyG128(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), 128, Codes8Or4::Int4);
  for (auto _ : st) {
    const int64_t c = p.take();
    weight_only_linear<float, float>(p.x.data(), PackedCodes<4>{p.w4(c), p.s.K, 0}, p.sc(c), p.zpc(c),
                                     ZeroPointDomain::Float, 0, 15, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K / 2 + 8.0 * p.s.N * p.G);
}

// The same with bfloat16 activations and scales, as a bfloat16 model holds
// them (the CPU int4 path torchao itself runs: Int4CPULayout takes bfloat16;
// zero points are read as float32): the VNNI (or else BF16) dot for few rows,
// AMX bfloat16 tiles from amx_min_rows where the CPU has them.
void BM_Int4WeightOnlyG128Bf16(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), 128, Codes8Or4::Int4);
  std::vector<bf16> x(p.x.size()), out(p.out.size()), scale(p.scale.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = from_float<bf16>(p.x[i]);
  for (size_t i = 0; i < scale.size(); ++i) scale[i] = from_float<bf16>(p.scale[i]);
  for (auto _ : st) {
    const int64_t c = p.take();
    weight_only_linear<bf16, bf16>(x.data(), PackedCodes<4>{p.w4(c), p.s.K, 0}, scale.data() + c * p.s.N * p.G,
                                   p.zpc(c), ZeroPointDomain::Float, 0, 15, nullptr, p.s, out.data(), kThreads);
    benchmark::DoNotOptimize(out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K / 2 + 6.0 * p.s.N * p.G);
}

// Float8 e4m3fn weights, per-channel scales (Float8WeightOnlyConfig).
void BM_Float8WeightOnly(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  for (auto _ : st) {
    const int64_t c = p.take();
    // The int8 codes reinterpreted as e4m3fn bytes (the few NaN codes do not change the speed).
    weight_only_linear<float, float>(
        p.x.data(), Float8Codes<Float8Format::E4M3FN>{reinterpret_cast<const uint8_t*>(p.w8(c)), p.s.K},
        p.sc(c), nullptr, ZeroPointDomain::None, 0, 0, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K + 4.0 * p.s.N * p.G);
}

// The float32 sums of float8 x float8 products behind the float8 dynamic
// linears (Float8DynamicActivationFloat8WeightConfig: activations quantized
// to e4m3fn, e4m3fn weights; the scales are applied after): from
// amx_min_rows rows on AMX bfloat16 tiles where the CPU has them (float8
// values are bfloat16 values: one part each), else the float panel GEMM.
void BM_Float8Float8Sums(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  std::vector<uint8_t> xc(p.x.size());
  for (size_t i = 0; i < xc.size(); ++i) {
    const auto b = uint8_t(p.codes8[i % p.codes8.size()]);
    xc[i] = (b & 0x7f) == 0x7f ? 0 : b;  // no NaN codes
  }
  std::vector<float> x(xc.size());
  float8_to_f32(xc.data(), int64_t(xc.size()), true, x.data());
  for (auto _ : st) {
    const int64_t c = p.take();
    float8_sums(x.data(), Float8Codes<Float8Format::E4M3FN>{reinterpret_cast<const uint8_t*>(p.w8(c)), p.s.K}, p.s.M,
                p.s.N, p.s.K, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K);
}

// N-bit codes packed LSB first, groups of 64 (UIntXWeightOnlyConfig(uintN) / IntxWeightOnlyConfig(intN)):
// uint3 (8 codes per 3 bytes) and uint7, the widest the VNNI N-bit dot takes.
template <int Bits>
void BM_UintWeightOnlyG64(benchmark::State& st) {
  // Up to 4 bits the int4 buffer holds enough bytes for rows of the same length; above, the int8 one.
  constexpr bool kNarrow = Bits <= 4;
  Problem& p = problem(st.range(0), st.range(1), st.range(2), 64, kNarrow ? Codes8Or4::Int4 : Codes8Or4::Int8);
  for (auto _ : st) {
    const int64_t c = p.take();
    const uint8_t* w = kNarrow ? p.w4(c) : reinterpret_cast<const uint8_t*>(p.w8(c));
    weight_only_linear<float, float>(p.x.data(), PackedCodes<Bits>{w, p.s.K, 0}, p.sc(c), p.zpc(c),
                                     ZeroPointDomain::Int, 0, (1 << Bits) - 1, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * packed_row_bytes(p.s.K, Bits) + 8.0 * p.s.N * p.G);
}

// fp6 e3m2 codes packed 8 per 6 bytes, one scale per row (FPXWeightOnlyConfig(3, 2)): unpacked, then looked up
// in the format's 64-value table and dotted in registers.
void BM_Fp6E3M2WeightOnly(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  const float* table = floatx_table(3, 2);
  // The int8 buffer holds enough bytes for 6-bit rows of the same length (random bytes: random codes).
  for (auto _ : st) {
    const int64_t c = p.take();
    weight_only_linear<float, float>(
        p.x.data(), FloatxCodes<6>{reinterpret_cast<const uint8_t*>(p.w8(c)), p.s.K, table}, p.sc(c),
        nullptr, ZeroPointDomain::None, 0, 63, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * packed_row_bytes(p.s.K, 6) + 4.0 * p.s.N * p.G);
}

void BM_Int8DynamicInt8(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  std::vector<int8_t> a(p.s.M * p.s.K, 3);
  std::vector<float> a_scale(p.s.M, 0.02f), a_zp(p.s.M, 0.0f);
  for (auto _ : st) {
    const int64_t c = p.take();
    int8_dynamic_linear<float>(a.data(), a_scale.data(), a_zp.data(), PlainCodes<int8_t>{p.w8(c), p.s.K},
                               p.sc(c), nullptr, nullptr, p.s, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K + 4.0 * p.s.N * p.G);
}

// Activation codes as the op hands them to the packed GEMM: shifted to
// uint8 by the fused quantizer (int8_gemm_dequant's own shift, a scalar
// loop, is for callers holding int8 codes; it cost the M = 256 benchmarks
// up to a tenth of their time).
std::vector<uint8_t> shifted_codes(const LinearShape& s) { return std::vector<uint8_t>(s.M * ((s.K + 3) / 4 * 4), 131); }

// The pre-packed int8 GEMM that dynamic-activation linears take (VNNI, and
// AMX from kAmxMinRows rows where the CPU has it).
void BM_Int8DynamicInt8Packed(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  const auto u = shifted_codes(p.s);
  std::vector<float> a_scale(p.s.M, 0.02f), a_zp(p.s.M, 0.0f);
  std::vector<PackedInt8Weights> packed;
  // Copy 0 packed, the others copied from it (packing each took most of the benchmark's time).
  packed.reserve(p.copies);
  packed.push_back(pack_int8_weights(p.w8(0), p.s.N, p.s.K, p.s.K, p.sc(0)));
  for (int64_t c = 1; c < p.copies; ++c) packed.push_back(packed[0]);
  for (auto _ : st) {
    int8_gemm_dequant_u8(u.data(), a_scale.data(), a_zp.data(), p.s.M, packed[p.take()], nullptr, p.out.data(),
                         kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K + 4.0 * p.s.N * p.G);
  st.counters["vnni"] = int8_gemm_has_vnni();
  st.counters["amx"] = int8_gemm_has_amx() && p.s.M >= kAmxMinRows;
}

// The same GEMM with int4 codes and one scale per 32 weights
// (Int8DynamicActivationInt4WeightConfig, group 32), as 8da4w prefill runs it.
void BM_Int8DynamicInt4G32Packed(benchmark::State& st) {
  constexpr int64_t kGroup = 32;
  Problem& p = problem(st.range(0), st.range(1), st.range(2), kGroup, Codes8Or4::Int8);
  const auto u = shifted_codes(p.s);
  std::vector<float> a_scale(p.s.M, 0.02f), a_zp(p.s.M, 1.0f);
  std::vector<int8_t> codes(p.w8(0), p.w8(0) + p.s.N * p.s.K);
  for (auto& c : codes) c = int8_t(c >> 4);  // [-8, 7]
  std::vector<PackedInt8Weights> packed;
  packed.reserve(p.copies);
  packed.push_back(pack_int8_weights(codes.data(), p.s.N, p.s.K, kGroup, p.sc(0)));
  for (int64_t c = 1; c < p.copies; ++c) packed.push_back(packed[0]);
  for (auto _ : st) {
    int8_gemm_dequant_u8(u.data(), a_scale.data(), a_zp.data(), p.s.M, packed[p.take()], nullptr, p.out.data(),
                         kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * p.s.K + 4.0 * p.s.N * p.G);
  st.counters["amx"] = int8_gemm_has_amx() && p.s.M >= kAmxMinRows;
}

// The 2:4 sparse GEMM (SemiSparseLayout) on the same codes with 2 of each 4 zeroed
// (random kept columns), read compressed: 5 bits per weight.
void BM_Int8DynamicInt8Sparse24(benchmark::State& st) {
  Problem& p = problem(st.range(0), st.range(1), st.range(2), st.range(1), Codes8Or4::Int8);
  const int64_t rb = sparse24_row_bytes(p.s.K);
  std::vector<uint8_t> u(p.s.M * p.s.K, 131);
  std::vector<float> a_scale(p.s.M, 0.02f), a_zp(p.s.M, 0.0f);
  std::vector<int8_t> pruned(p.w8(0), p.w8(0) + p.s.N * p.s.K);
  std::mt19937 rng(1);
  for (int64_t i = 0; i < p.s.N * p.s.K; i += 4) {
    const int keep0 = int(rng() % 4), keep1 = (keep0 + 1 + int(rng() % 3)) % 4;
    for (int j = 0; j < 4; ++j)
      if (j != keep0 && j != keep1) pruned[i + j] = 0;
  }
  std::vector<uint8_t> rows(p.copies * p.s.N * rb);
  compress_2to4(pruned.data(), p.s.N, p.s.K, rows.data());
  std::vector<Sparse24Weights> w;
  for (int64_t c = 0; c < p.copies; ++c) {
    std::copy_n(rows.data(), p.s.N * rb, rows.data() + c * p.s.N * rb);
    w.push_back(make_sparse24_weights(rows.data() + c * p.s.N * rb, p.s.N, p.s.K, p.sc(c)));
  }
  for (auto _ : st) {
    int8_sparse24_gemm_u8(u.data(), a_scale.data(), a_zp.data(), p.s.M, w[p.take()], nullptr, p.out.data(), kThreads);
    benchmark::DoNotOptimize(p.out.data());
  }
  report(st, p.s, double(p.s.N) * rb + 4.0 * p.s.N);
}

// A benchmark with one fast path turned off where the CPU has it, which the
// benchmark without the suffix then runs: the two compared in one run.
// Suffixes: Vnni (the int8 GEMM without AMX tiles), NoAmx (weight-only
// prefill and float8 sums without AMX bfloat16 tiles), FloatKernel (without
// the VNNI dots and the AMX tiles), Bf16Dot (bfloat16 int4 on the BF16 dot,
// the VNNI dots and the tiles off).
template <void (*Bm)(benchmark::State&), bool (*Has)(), bool (*Set)(bool)>
void WithoutFastPath(benchmark::State& st) {
  if (!Has()) return st.SkipWithError("this CPU lacks that path: the benchmark without the suffix is this one");
  Set(false);
  Bm(st);
  Set(true);
}
template <void (*Bm)(benchmark::State&)>
void OnVnniGemm(benchmark::State& st) { WithoutFastPath<Bm, int8_gemm_has_amx, set_int8_gemm_amx>(st); }
template <void (*Bm)(benchmark::State&)>
void OnFloatGemm(benchmark::State& st) { WithoutFastPath<Bm, has_amx_bf16, set_amx_bf16>(st); }
// The float kernels: neither the VNNI dots nor (from 32 rows) the AMX tiles.
bool has_fast_dots() { return has_dot_vnni_u4() || has_amx_bf16(); }
bool set_fast_dots(bool enabled) {
  const bool vnni = set_dot_vnni(enabled), amx = set_amx_bf16(enabled);
  return vnni || amx;
}
template <void (*Bm)(benchmark::State&)>
void OnFloatKernels(benchmark::State& st) { WithoutFastPath<Bm, has_fast_dots, set_fast_dots>(st); }

void ShapesFor(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> rows) {
  for (int64_t M : rows)
    for (auto kn : {std::pair<int64_t, int64_t>{2048, 5632}, {5632, 2048}, {4096, 4096}})
      b->Args({M, kn.first, kn.second});
  b->ArgNames({"M", "K", "N"})->Unit(benchmark::kMillisecond)->UseRealTime();
}
void Shapes(benchmark::internal::Benchmark* b) { ShapesFor(b, {1, 8, 32, 256}); }
// Rows where 4-bit and N-bit codes take the direct dots (the float-kernel
// twins compare their two kernels there).
void DecodeShapes(benchmark::internal::Benchmark* b) { ShapesFor(b, {1, 8, 32}); }
// Rows where the int8 GEMM takes AMX tiles (from kAmxMinRows).
void PrefillShapes(benchmark::internal::Benchmark* b) { ShapesFor(b, {32, 256}); }
// The same and 16, where weight-only byte codes start on AMX bfloat16 tiles
// (amx_min_rows): the formats that take the tiles run there too.
void TileShapes(benchmark::internal::Benchmark* b) { ShapesFor(b, {16, 32, 256}); }
void SixteenRows(benchmark::internal::Benchmark* b) { ShapesFor(b, {16}); }

BENCHMARK(BM_Int8WeightOnly)->Apply(Shapes);
BENCHMARK(BM_Int8WeightOnly)->Apply(SixteenRows);
BENCHMARK(OnFloatGemm<BM_Int8WeightOnly>)->Name("BM_Int8WeightOnlyNoAmx")->Apply(TileShapes);
BENCHMARK(OnFloatKernels<BM_Int8WeightOnly>)->Name("BM_Int8WeightOnlyFloatKernel")->Apply(DecodeShapes);
BENCHMARK(BM_Int4WeightOnlyG128)->Apply(Shapes);
BENCHMARK(BM_Int4WeightOnlyG128)->Apply(SixteenRows);
BENCHMARK(OnFloatGemm<BM_Int4WeightOnlyG128>)->Name("BM_Int4WeightOnlyG128NoAmx")->Apply(TileShapes);
BENCHMARK(OnFloatKernels<BM_Int4WeightOnlyG128>)->Name("BM_Int4WeightOnlyG128FloatKernel")->Apply(DecodeShapes);
BENCHMARK(BM_Int4WeightOnlyG128Bf16)->Apply(Shapes);
BENCHMARK(BM_Int4WeightOnlyG128Bf16)->Apply(SixteenRows);
BENCHMARK(OnFloatKernels<BM_Int4WeightOnlyG128Bf16>)->Name("BM_Int4WeightOnlyG128Bf16Dot")->Apply(DecodeShapes);
BENCHMARK(OnFloatGemm<BM_Int4WeightOnlyG128Bf16>)->Name("BM_Int4WeightOnlyG128Bf16NoAmx")->Apply(TileShapes);
BENCHMARK(BM_Float8WeightOnly)->Apply(Shapes);
BENCHMARK(BM_Float8WeightOnly)->Apply(SixteenRows);
BENCHMARK(OnFloatGemm<BM_Float8WeightOnly>)->Name("BM_Float8WeightOnlyNoAmx")->Apply(TileShapes);
BENCHMARK(BM_Float8Float8Sums)->Apply(TileShapes);
BENCHMARK(OnFloatGemm<BM_Float8Float8Sums>)->Name("BM_Float8Float8SumsNoAmx")->Apply(TileShapes);
BENCHMARK(BM_UintWeightOnlyG64<3>)->Name("BM_Uint3WeightOnlyG64")->Apply(Shapes);
BENCHMARK(OnFloatKernels<BM_UintWeightOnlyG64<3>>)->Name("BM_Uint3WeightOnlyG64FloatKernel")->Apply(DecodeShapes);
BENCHMARK(BM_UintWeightOnlyG64<7>)->Name("BM_Uint7WeightOnlyG64")->Apply(DecodeShapes);
BENCHMARK(OnFloatKernels<BM_UintWeightOnlyG64<7>>)->Name("BM_Uint7WeightOnlyG64FloatKernel")->Apply(DecodeShapes);
BENCHMARK(BM_Fp6E3M2WeightOnly)->Apply(Shapes);
BENCHMARK(BM_Int8DynamicInt8)->Apply(Shapes);
BENCHMARK(BM_Int8DynamicInt8Packed)->Apply(Shapes);
BENCHMARK(OnVnniGemm<BM_Int8DynamicInt8Packed>)->Name("BM_Int8DynamicInt8PackedVnni")->Apply(PrefillShapes);
BENCHMARK(BM_Int8DynamicInt4G32Packed)->Apply(Shapes);
BENCHMARK(OnVnniGemm<BM_Int8DynamicInt4G32Packed>)->Name("BM_Int8DynamicInt4G32PackedVnni")->Apply(PrefillShapes);
BENCHMARK(BM_Int8DynamicInt8Sparse24)->Apply(Shapes);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The compute roofline behind the prefill target "int8 x int8 >= 4x fp32":
// multiply-adds per second of vpdpbusd (int8, 64 per zmm instruction) and of
// vfmadd231ps (fp32, 16 per instruction) on every thread, each thread running
// 16 independent chains so that throughput, not latency, is measured.
template <bool kVnni>
__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) int64_t peak_chains(int64_t n) {
  using V = std::conditional_t<kVnni, __m512i, __m512>;
  V acc[16], b, c;
  if constexpr (kVnni) {
    b = _mm512_set1_epi8(1), c = _mm512_set1_epi8(2);
    for (auto& a : acc) a = _mm512_setzero_si512();
  } else {
    b = _mm512_set1_ps(1.0f), c = _mm512_set1_ps(0.5f);
    for (auto& a : acc) a = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < n; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      if constexpr (kVnni)
        acc[j] = _mm512_dpbusd_epi32(acc[j], b, c);
      else
        acc[j] = _mm512_fmadd_ps(b, c, acc[j]);
    }
  int64_t sum = 0;
  for (auto& a : acc) {
    int32_t lanes[16];
    if constexpr (kVnni)
      _mm512_storeu_si512(lanes, a);
    else
      _mm512_storeu_si512(lanes, _mm512_cvttps_epi32(a));
    sum += lanes[0];
  }
  return sum;
}

template <bool kVnni>
void BM_PeakMultiplyAdds(benchmark::State& st) {
  if (!int8_gemm_has_vnni()) {
    st.SkipWithError("needs AVX-512 VNNI");
    return;
  }
  const int64_t n = 1 << 22;
  for (auto _ : st) {
    int64_t total = 0;
#pragma omp parallel num_threads(kThreads) reduction(+ : total)
    total += peak_chains<kVnni>(n);
    benchmark::DoNotOptimize(total);
  }
  const double macs = double(n) * 16 * (kVnni ? 64 : 16) * kThreads;
  st.counters["GOP/s"] =
      benchmark::Counter(2.0 * macs * st.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  st.counters["threads"] = kThreads;
}
// The same for AMX's tdpbusd: 16 x 16 x 64 multiply-adds per instruction, four
// independent accumulator tiles (the GEMM's 2 x 2), operands left in tiles.
__attribute__((noinline)) void peak_amx(int64_t n) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  load_tile_config(cfg);
  tile_zero<0>();
  tile_zero<1>();
  tile_zero<2>();
  tile_zero<3>();
  tile_zero<4>();
  tile_zero<5>();
  tile_zero<6>();
  tile_zero<7>();
  for (int64_t i = 0; i < n; ++i) {
    tile_dpbusd<0, 4, 6>();
    tile_dpbusd<1, 4, 7>();
    tile_dpbusd<2, 5, 6>();
    tile_dpbusd<3, 5, 7>();
  }
  release_tiles();
}

void BM_PeakInt8Amx(benchmark::State& st) {
  if (!int8_gemm_has_amx()) return st.SkipWithError("needs AMX int8");
  const int64_t n = 1 << 16;
  for (auto _ : st) {
#pragma omp parallel num_threads(kThreads)
    peak_amx(n);
  }
  const double macs = double(n) * 4 * 16 * 16 * 64 * kThreads;
  st.counters["GOP/s"] =
      benchmark::Counter(2.0 * macs * st.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  st.counters["threads"] = kThreads;
}
BENCHMARK(BM_PeakInt8Amx)->Unit(benchmark::kMillisecond)->UseRealTime();

// What bounds the grouped int8 GEMM on AMX (8da4w, groups of 32): one tile
// step per group, each with its own sums to store. A step runs one tdpbusd
// of depth `depth` (32 or 64 k) into one of six rotating sum tiles; with
// `loads` it first loads its activation and weight tiles (from L1-resident
// buffers, at the GEMM's 2048-byte activation stride), with `store` it then
// writes its sums out, as the GEMM does once per group. Reports the time per
// step and thread: a tdpbusd costs the same at either depth, so groups of 32
// need twice the tile time of a per-channel GEMM, plus a store per step.
__attribute__((noinline)) void amx_steps(int64_t n, int depth, bool loads, bool store, const uint8_t* a,
                                         const int8_t* b, int32_t* c) {
  TileConfig cfg;
  for (int t = 0; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  cfg.rows[6] = 16, cfg.colsb[6] = uint16_t(depth);     // activations: 16 rows x depth bytes
  cfg.rows[7] = uint8_t(depth / 4), cfg.colsb[7] = 64;  // weights: depth / 4 quads x 16 columns
  load_tile_config(cfg);
  tile_zero<6>();
  tile_zero<7>();
  auto step = [&](auto tile, int64_t i) {
    constexpr int kT = decltype(tile)::value;
    if (loads) {
      tile_load<7>(b + (i % 16) * 1024, 64);
      tile_load<6>(a + (i % 16) * 32, 2048);
    }
    tile_dpbusd<kT, 6, 7>();
    if (store) tile_store<kT>(c + kT * 256, 64);
  };
  for (int64_t i = 0; i < n; i += 6) {
    step(std::integral_constant<int, 0>{}, i);
    step(std::integral_constant<int, 1>{}, i + 1);
    step(std::integral_constant<int, 2>{}, i + 2);
    step(std::integral_constant<int, 3>{}, i + 3);
    step(std::integral_constant<int, 4>{}, i + 4);
    step(std::integral_constant<int, 5>{}, i + 5);
  }
  release_tiles();
}

void BM_AmxTileStep(benchmark::State& st) {
  if (!int8_gemm_has_amx()) return st.SkipWithError("needs AMX int8");
  const int depth = int(st.range(0));
  const bool loads = st.range(1) != 0, store = st.range(2) != 0;
  const int64_t n = 6 << 16;
  // Per thread: its operands (written once, outside the timing) and its sums.
  std::vector<AlignedVector<uint8_t>> a(kThreads, AlignedVector<uint8_t>(16 * 2048, 1));
  std::vector<AlignedVector<int8_t>> b(kThreads, AlignedVector<int8_t>(16 * 1024, 1));
  std::vector<AlignedVector<int32_t>> c(kThreads, AlignedVector<int32_t>(6 * 256));
  for (auto _ : st) {
#pragma omp parallel num_threads(kThreads)
    {
      const int t = omp_get_thread_num();
      amx_steps(n, depth, loads, store, a[t].data(), b[t].data(), c[t].data());
    }
    benchmark::DoNotOptimize(c[0][0]);
  }
  // Seconds per step and thread (printed with an SI prefix: 5.2n is 5.2 ns).
  st.counters["time_per_step"] = benchmark::Counter(double(n) * st.iterations(),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  st.counters["threads"] = kThreads;
}
BENCHMARK(BM_AmxTileStep)->ArgNames({"depth", "loads", "store"})->ArgsProduct({{64, 32}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_PeakMultiplyAdds, true)->Name("BM_PeakInt8Vnni")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_PeakMultiplyAdds, false)->Name("BM_PeakFp32Fma")->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

void BM_ReadBandwidth(benchmark::State& st) {
  std::vector<float> buf(size_t(256) << 20, 1.0f);  // 1 GiB
  for (auto _ : st) {
    const int64_t chunk = 1 << 16;
    const int64_t chunks = int64_t(buf.size()) / chunk;
    float total = 0.0f;
#pragma omp parallel for num_threads(kThreads) reduction(+ : total) schedule(static)
    for (int64_t c = 0; c < chunks; ++c) total += sum_f32(buf.data() + c * chunk, chunk);
    benchmark::DoNotOptimize(total);
  }
  st.counters["GB/s"] = benchmark::Counter(double(buf.size()) * 4 * st.iterations(), benchmark::Counter::kIsRate,
                                           benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
