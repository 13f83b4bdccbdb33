// Torch-free quantized linear kernels: y = x @ W^T (+ bias) with W stored as
// quantized codes. Straightforward fused loops: each output row of W is
// decoded into a K-length buffer once per call (never the whole weight) and
// reused for every activation row. SIMD tuning lives in later kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bf16_gemm.h"
#include "bitpack.h"
#include "numeric.h"
#include "quant_primitives.h"
#include "simd.h"
#include "sparse24.h"

namespace torchao_cpp {
namespace kernels {

// Code readers: code(n, k) of an N x K weight, as float.
template <class TQ>
struct PlainCodes {
  const TQ* data;
  int64_t K;
  float operator()(int64_t n, int64_t k) const { return float(data[n * K + k]); }
};

template <int Bits>
struct PackedCodes {
  static constexpr int kBits = Bits;
  const uint8_t* data;
  int64_t K;
  int64_t quant_min;
  float operator()(int64_t n, int64_t k) const {
    return float(int64_t(unpack_bits_at<Bits>(data + n * packed_row_bytes(K, Bits), k)) + quant_min);
  }
  // Codes [k0, k1) of row n as floats: eight codes (Bits bytes) per word.
  void decode(int64_t n, int64_t k0, int64_t k1, float* out) const {
    const uint8_t* row = data + n * packed_row_bytes(K, Bits);
    const float qmin = float(quant_min);
    int64_t k = k0;
    for (; k < k1 && k % 8; ++k) out[k - k0] = (*this)(n, k);
    for (; k + 8 <= k1; k += 8) {
      uint64_t v = 0;
      std::memcpy(&v, row + k / 8 * Bits, Bits);
      for (int j = 0; j < 8; ++j) out[k - k0 + j] = float((v >> (j * Bits)) & ((1u << Bits) - 1u)) + qmin;
    }
    for (; k < k1; ++k) out[k - k0] = (*this)(n, k);
  }
};

// Decodes through a 256-entry table built once per format.
template <Float8Format F>
struct Float8Codes {
  const uint8_t* data;
  int64_t K;
  static const float* table() {
    static const auto t = [] {
      std::vector<float> v(256);
      for (int c = 0; c < 256; ++c) v[c] = float8_to_float<F>(uint8_t(c));
      return v;
    }();
    return t.data();
  }
  float operator()(int64_t n, int64_t k) const { return table()[data[n * K + k]]; }
  void decode(int64_t n, int64_t k0, int64_t k1, float* out) const {
    float8_to_f32(data + n * K + k0, k1 - k0, F == Float8Format::E4M3FN, out);
  }
  void decode_bf16(int64_t n, int64_t k0, int64_t k1, uint16_t* out) const {
    float8_to_bf16(data + n * K + k0, k1 - k0, F == Float8Format::E4M3FN, out);
  }
};

// 2:4 compressed float8 rows (sparse24.h) read as dense codes (zeros where
// pruned): the float GEMM's panels for many activation rows, where the
// 2:4 kernel's per-row gathers would cost more than multiplying the zeros.
template <Float8Format F>
struct Float8Sparse24Codes {
  const uint8_t* rows;
  int64_t K;
  // Dense bytes of up to 256 columns at a time, then a SIMD float8 decoder
  // (float8_to_f32 or float8_to_bf16).
  template <class T, class Decoder>
  void decode_with(int64_t n, int64_t k0, int64_t k1, T* out, Decoder decoder) const {
    const uint8_t* row = rows + n * sparse24_row_bytes(K);
    uint8_t bytes[256];
    for (int64_t b0 = k0; b0 < k1; b0 += 256) {
      const int64_t b1 = std::min(k1, b0 + 256);
      std::memset(bytes, 0, size_t(b1 - b0));
      for (int64_t g = b0 / 4; 4 * g < b1; ++g) {
        int cols[2];
        uint8_t codes[2];
        sparse24_group(row, K, g, cols, codes);
        for (int j = 0; j < 2; ++j) {
          const int64_t k = 4 * g + cols[j];
          if (k >= b0 && k < b1) bytes[k - b0] = codes[j];
        }
      }
      decoder(bytes, b1 - b0, F == Float8Format::E4M3FN, out + (b0 - k0));
    }
  }
  void decode(int64_t n, int64_t k0, int64_t k1, float* out) const { decode_with(n, k0, k1, out, float8_to_f32); }
  void decode_bf16(int64_t n, int64_t k0, int64_t k1, uint16_t* out) const {
    decode_with(n, k0, k1, out, float8_to_bf16);
  }
  float operator()(int64_t n, int64_t k) const {
    float v = 0.0f;
    decode(n, k, k + 1, &v);
    return v;
  }
};

// Bit-packed float-x codes (N = 1 + ebits + mbits bits, packed as PackedCodes with quant_min 0),
// decoded through the format's table of 2^N values (floatx_table).
template <int Bits>
struct FloatxCodes {
  static constexpr int kBits = Bits;
  const uint8_t* data;
  int64_t K;
  const float* table;
  float operator()(int64_t n, int64_t k) const {
    return table[unpack_bits_at<Bits>(data + n * packed_row_bytes(K, Bits), k)];
  }
  // Codes [k0, k1) of row n as values: unpacked to bytes by the SIMD unpacker (blocks of 8 codes, Bits
  // bytes, at byte boundaries), then looked up in registers (lut_u8_f32).
  void decode(int64_t n, int64_t k0, int64_t k1, float* out) const {
    const uint8_t* row = data + n * packed_row_bytes(K, Bits);
    int64_t k = k0;
    for (; k < k1 && k % 8; ++k) out[k - k0] = (*this)(n, k);
    constexpr int64_t kChunk = 256;
    uint8_t bytes[kChunk];
    while (k + 8 <= k1) {
      const int64_t len = std::min(kChunk, (k1 - k) / 8 * 8);
      unpack_bits_u8(row + k / 8 * Bits, len, Bits, bytes);
      lut_u8_f32(bytes, len, table, Bits, out + (k - k0));
      k += len;
    }
    for (; k < k1; ++k) out[k - k0] = (*this)(n, k);
  }
};

// Code readers with a whole-segment decode (SIMD or word-at-a-time) that
// decode_weight_row uses instead of one call per code.
template <class Codes>
constexpr bool kDecodesCodes = false;
template <int Bits>
constexpr bool kDecodesCodes<PackedCodes<Bits>> = true;
template <Float8Format F>
constexpr bool kDecodesCodes<Float8Codes<F>> = true;
template <int Bits>
constexpr bool kDecodesCodes<FloatxCodes<Bits>> = true;
template <Float8Format F>
constexpr bool kDecodesCodes<Float8Sparse24Codes<F>> = true;

struct LinearShape {
  int64_t M, N, K;
  int64_t group_size;  // K for per-channel
  // Float32 activations may take bfloat16x3 products (AMX tiles, about 16 of
  // float32's 24 bits per product): torch's "high" and "medium" float32 matmul
  // precision. Off, float32 activations keep float32 products.
  bool fp32_reduced = false;
};

// Weight-only: W[n,k] = dequant(code(n,k)) with per-(n, group) scale and zero
// point in `domain`. zp is float (nullptr for domain None).

// Formats with a direct SIMD dot on their codes; `xl`/`xb` are x as
// dot_f32_u4_grouped takes it (4-bit codes hold two per byte).
template <class Codes>
constexpr bool kIsPacked = false;
template <int Bits>
constexpr bool kIsPacked<PackedCodes<Bits>> = true;

template <class Codes>
constexpr bool kIsFloat8 = false;
template <Float8Format F>
constexpr bool kIsFloat8<Float8Codes<F>> = true;
// Codes that decode straight to bfloat16 bits (a decode_bf16 member: float8, dense or 2:4).
template <class Codes, class = void>
constexpr bool kDecodesBf16 = false;
template <class Codes>
constexpr bool kDecodesBf16<Codes, std::void_t<decltype(&Codes::decode_bf16)>> = true;

template <class Codes>
constexpr bool kIsFloatx = false;
template <int Bits>
constexpr bool kIsFloatx<FloatxCodes<Bits>> = true;

template <class Codes>
constexpr bool has_direct_dot() {
  return std::is_same_v<Codes, PlainCodes<int8_t>> || std::is_same_v<Codes, PlainCodes<uint8_t>> ||
         kIsPacked<Codes> || kIsFloat8<Codes> || kIsFloatx<Codes>;
}

// One activation row as the direct dots read it: x, and the form their
// kernel takes: for 4-bit codes x_low / x_byte (dot_f32_u4_grouped), bfloat16
// planes (dot_bf16_u4_grouped) or integer units (dot_vnni_u4_grouped); for
// N-bit codes integer units (dot_vnni_bits_grouped) or x itself; for int8
// codes integer units with one bit less (dot_vnni_i8_grouped) or x itself.
struct DotOperands {
  const float* x = nullptr;
  const float* xl = nullptr;
  const float* xb = nullptr;
  const uint16_t* xp = nullptr;
  const int8_t* xq = nullptr;
  const float* unit = nullptr;
  bool unpacked = false;  // N-bit codes: read unpacked from scratch, not in place
};

// Activation rows up to which weight_only_linear takes the direct dots (each
// weight row read once and dotted with a block of activation rows held in
// cache); above, it decodes weight panels once for the float GEMM. `fast`:
// the dots run on integer or BF16 units (dot_vnni_*, dot_bf16_u4_grouped).
// Crossovers measured with bench_linear (AMD Zen 4, 2 threads, 4096 x 4096
// and the 2048/5632 shapes, 2026-12-05), dots against the panel GEMM:
// int4 g128 on VNNI 6.1 against 14.9 ms at 32 rows, 24 against 30 at 128,
// even at 256; on the float kernel ahead up to 64 rows; uint3 on VNNI ahead
// up to 128, on the float kernel up to 64; int8 5.0 against 10.7 ms at 16,
// 10.0 against 12.3 at 32, behind at 64 (on the VNNI int8 dot: even at 48
// rows, 10.9-16.3 against 10.2-15.1 ms at 64); float8 and float-x behind from 16.
template <class Codes>
constexpr int64_t direct_dot_max_rows(bool fast) {
  if constexpr (kIsPacked<Codes>) return fast ? 128 : 64;
  if constexpr (kIsFloat8<Codes> || kIsFloatx<Codes>) return 8;
  return 32;
}

// Formats without direct dots decode each weight row once for up to this many
// activation rows, and take the panel GEMM above.
constexpr int64_t kRowDecodeMaxRows = 8;

// Bytes of activation operands (DotOperands) a block of activation rows may
// hold, so that the block stays in L2 while weight rows stream past it.
constexpr int64_t kDotBlockBytes = int64_t(512) << 10;

// out[r] = sum_g gs.at(r, g) * sum_{k in group g} x[k] * raw_code(n + r * step, k) + gs.zero_term(r, groups)
// for `rows` weight rows `step` rows apart.
// 4-bit codes are dotted in place, and so are other packed widths on the VNNI
// dot at one activation row; otherwise those and float-x codes were unpacked
// to one byte per code in `scratch` (rows x K bytes) by unpack_rows.
template <class Codes>
inline void direct_dot_rows(const Codes& c, const DotOperands& a, int64_t n, int64_t step, int rows,
                            int64_t group_size, int64_t groups, const GroupScales& gs, uint8_t* scratch, float* out) {
  if constexpr (std::is_same_v<Codes, PackedCodes<4>>) {
    const int64_t rb = packed_row_bytes(c.K, 4);
    const uint8_t* p = c.data + n * rb;
    if (a.xp) return dot_bf16_u4_grouped(a.xp, p, step * rb, rows, group_size / 2, groups, gs, out);
    if (a.xq) return dot_vnni_u4_grouped(a.xq, a.unit, p, step * rb, rows, group_size / 2, groups, gs, out);
    dot_f32_u4_grouped(a.xl, a.xb, p, step * rb, rows, group_size / 2, groups, gs, out);
  } else if constexpr (kIsPacked<Codes>) {
    const int64_t rb = packed_row_bytes(c.K, Codes::kBits);
    // One activation row: the packed rows read in place; more: the rows
    // unpacked once into scratch (unpack_rows) serve them all.
    if (a.xq && !a.unpacked)
      return dot_vnni_bits_grouped(a.xq, a.unit, c.data + n * rb, step * rb, rows, Codes::kBits, group_size, groups,
                                   gs, out);
    if (a.xq) return dot_vnni_bits_grouped(a.xq, a.unit, scratch, c.K, rows, 8, group_size, groups, gs, out);
    dot_f32_u8_grouped(a.x, scratch, c.K, rows, group_size, groups, gs, out);
  } else if constexpr (kIsFloatx<Codes>) {
    dot_f32_lut_grouped(a.x, scratch, c.K, rows, group_size, groups, gs, out, c.table, Codes::kBits);
  } else if constexpr (kIsFloat8<Codes>) {
    dot_f32_f8_grouped(a.x, c.data + n * c.K, step * c.K, rows, group_size, groups, gs, out,
                       std::is_same_v<Codes, Float8Codes<Float8Format::E4M3FN>>);
  } else if constexpr (std::is_same_v<Codes, PlainCodes<int8_t>>) {
    if (a.xq) return dot_vnni_i8_grouped(a.xq, a.unit, c.data + n * c.K, step * c.K, rows, group_size, groups, gs, out);
    dot_f32_i8_grouped(a.x, c.data + n * c.K, step * c.K, rows, group_size, groups, gs, out);
  } else {
    dot_f32_u8_grouped(a.x, c.data + n * c.K, step * c.K, rows, group_size, groups, gs, out);
  }
}

template <class Codes>
inline void unpack_rows(const Codes& c, int64_t n, int64_t step, int rows, uint8_t* scratch) {
  if constexpr ((kIsPacked<Codes> && !std::is_same_v<Codes, PackedCodes<4>>) || kIsFloatx<Codes>) {
    const int64_t rb = packed_row_bytes(c.K, Codes::kBits);
    for (int r = 0; r < rows; ++r)
      unpack_bits_u8(c.data + (n + r * step) * rb, c.K, Codes::kBits, scratch + r * c.K);
  }
}

// Value added to a raw code read by direct_dot_grouped (packed codes store code - quant_min).
template <class Codes>
inline float raw_code_offset(const Codes& c) {
  if constexpr (kIsPacked<Codes>) return float(c.quant_min);
  return 0.0f;
}

// The affine map of group g of weight row n (G groups per row): code value c
// stands for c * sc + off, (c - zp) * scale in the INT domain, (c - mid) *
// scale + zp in the FLOAT (tinygemm) one.
struct GroupAffine {
  float sc, off;
  template <class TS>
  GroupAffine(const TS* scale, const float* zp, ZeroPointDomain domain, int64_t quant_min, int64_t quant_max, int64_t G,
              int64_t n, int64_t g) {
    const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
    const float z = zp ? zp[n * G + g] : 0.0f;
    sc = to_float(scale[n * G + g]);
    off = domain == ZeroPointDomain::Float ? z - mid * sc : -z * sc;
  }
};

// Columns [k0, k1) of row n of the float weight: (code - zp) * scale, or
// (code - mid) * scale + zp in the FLOAT (tinygemm) domain; w[k - k0].
template <class TS, class Codes>
inline void decode_weight_row(const Codes& codes, const TS* scale, const float* zp, ZeroPointDomain domain,
                              int64_t quant_min, int64_t quant_max, int64_t K, int64_t group_size, int64_t n,
                              int64_t k0, int64_t k1, float* w) {
  if constexpr (kDecodesCodes<Codes>) codes.decode(n, k0, k1, w);  // raw code values, scaled below
  for (int64_t g = k0 / group_size; g * group_size < k1; ++g) {
    // One affine map per group, w = c * sc + off, so the loop vectorizes.
    const GroupAffine ga(scale, zp, domain, quant_min, quant_max, K / group_size, n, g);
    const float sc = ga.sc, off = ga.off;
    const int64_t e = std::min(k1, (g + 1) * group_size);
    if constexpr (kDecodesCodes<Codes>) {
      for (int64_t k = std::max(k0, g * group_size); k < e; ++k) w[k - k0] = w[k - k0] * sc + off;
    } else {
      for (int64_t k = std::max(k0, g * group_size); k < e; ++k) w[k - k0] = codes(n, k) * sc + off;
    }
  }
}

// Activation rows from which the weight-only linear runs as a GEMM: weight
// panels of kGemmNR rows x kGemmKC columns are decoded to float once per call
// and reused for every activation row.
constexpr int64_t kGemmKC = 256;
constexpr int64_t kGemmPanels = 2;  // panels per task (kGemmNR each)

template <class TA, class TS, class Codes>
void weight_only_gemm(const float* xf, const Codes& codes, const TS* scale, const float* zp, ZeroPointDomain domain,
                      int64_t quant_min, int64_t quant_max, const TA* bias, const LinearShape& s, TA* out,
                      int nthreads) {
  constexpr int64_t NC = kGemmPanels * kGemmNR;
  const int64_t tasks = (s.N + NC - 1) / NC;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> panel(size_t(kGemmPanels * kGemmKC * kGemmNR)), row(static_cast<size_t>(kGemmKC)),
        c(static_cast<size_t>(s.M * NC));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t n0 = t * NC, nc = std::min(NC, s.N - n0);
      for (int64_t k0 = 0; k0 < s.K; k0 += kGemmKC) {
        const int64_t kc = std::min(kGemmKC, s.K - k0);
        // Panel p holds weight rows n0 + p*NR .. as [k][NR], zero past N.
        for (int64_t j = 0; j < NC; ++j) {
          float* dst = panel.data() + (j / kGemmNR) * kGemmKC * kGemmNR + j % kGemmNR;
          if (j < nc) {
            decode_weight_row(codes, scale, zp, domain, quant_min, quant_max, s.K, s.group_size, n0 + j, k0, k0 + kc,
                              row.data());
            for (int64_t k = 0; k < kc; ++k) dst[k * kGemmNR] = row[k];
          } else {
            for (int64_t k = 0; k < kc; ++k) dst[k * kGemmNR] = 0.0f;
          }
        }
        for (int64_t m0 = 0; m0 < s.M; m0 += kGemmMR) {
          const int rows = int(std::min<int64_t>(kGemmMR, s.M - m0));
          for (int64_t p = 0; p * kGemmNR < nc; ++p)
            gemm_f32_tile(xf + m0 * s.K + k0, s.K, panel.data() + p * kGemmKC * kGemmNR, kc,
                          c.data() + m0 * NC + p * kGemmNR, NC, rows, k0 > 0);
        }
      }
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t j = 0; j < nc; ++j)
          out[m * s.N + n0 + j] = from_float<TA>(c[m * NC + j] + (bias ? to_float(bias[n0 + j]) : 0.0f));
    }
  }
}

// From this many activation rows, weight-only linears (and the float8 x
// float8 sums) run on AMX bfloat16 tiles where the CPU has them
// (bf16_gemm.h), float32 and float16 activations as two bfloat16 parts.
// Packed codes keep their VNNI dots below 32 rows: int4 g128, 2048 x 5632,
// 2 threads, bfloat16: 3.5 ms at 32 rows against 5.2 on the VNNI dots, 3.3
// against 10.0 at 64 on the float panel GEMM, 8.6 against 31 at 256; at 16
// rows the dots are ahead. Byte codes (int8, float8) and float-x ones, whose
// dots end at 8 or 32 rows, take the tiles from 16.
template <class Codes>
constexpr int64_t amx_min_rows() {
  return kIsPacked<Codes> ? 32 : 16;
}
// K per weight panel of the AMX bfloat16 GEMM (hi and lo parts of 64 rows:
// 128 KB): 8.6 ms for 256 x 2048 x 5632 int4 g128 against 11.3 at 256
// (the sums reloaded from memory twice as often) and 9.1-10.2 at 1024-2048.
constexpr int64_t kAmxBf16KC = 512;

// The panel GEMM on AMX bfloat16 tiles (xbits: M x K bfloat16 bits of the
// activations, xlo their lo parts, or nullptr where they are bfloat16 values;
// K a multiple of kBf16TileK): the activations packed once, then per task of
// 64 weight rows and K chunk, the rows decoded to float, split into bfloat16
// hi + lo parts and multiplied on tiles; store(m, n, sum) takes each float32
// sum. kExact: the decoded weights are bfloat16 values themselves (float8
// codes at unit scale, the only use), so they take no lo parts, and float8
// codes are decoded to bfloat16 directly.
template <bool kExact, class TS, class Codes, class Store>
void amx_bf16_gemm(const uint16_t* xbits, const uint16_t* xlo, const Codes& codes, const TS* scale, const float* zp,
                   ZeroPointDomain domain, int64_t quant_min, int64_t quant_max, const LinearShape& s,
                   const Store& store, int nthreads) {
  constexpr int64_t NC = 4 * kBf16TileRows;
  constexpr bool kByteCodes =
      kIsPacked<Codes> || std::is_same_v<Codes, PlainCodes<int8_t>> || std::is_same_v<Codes, PlainCodes<uint8_t>>;
  const int64_t G = s.K / s.group_size;
  const int64_t mtiles = (s.M + kBf16TileRows - 1) / kBf16TileRows, Mp = mtiles * kBf16TileRows;
  const int64_t ksteps = s.K / kBf16TileK, tasks = (s.N + NC - 1) / NC;
  std::vector<uint16_t> xb(size_t((xlo ? 2 : 1) * Mp * s.K));
  pack_bf16_activations(xbits, s.M, s.K, xb.data(), nthreads);
  if (xlo) pack_bf16_activations(xlo, s.M, s.K, xb.data() + Mp * s.K, nthreads);
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> w(static_cast<size_t>(kAmxBf16KC)), c(static_cast<size_t>(NC * Mp));
    std::vector<uint8_t> bytes(static_cast<size_t>(kAmxBf16KC));
    std::vector<uint16_t> hi(size_t(NC * kAmxBf16KC)), lo(size_t(kExact ? 0 : NC * kAmxBf16KC));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t n0 = t * NC, nc = std::min(NC, s.N - n0);
      const int wtiles = int((nc + kBf16TileRows - 1) / kBf16TileRows);
      for (int64_t k0 = 0; k0 < s.K; k0 += kAmxBf16KC) {
        const int64_t kc = std::min(kAmxBf16KC, s.K - k0);
        for (int64_t j = 0; j < wtiles * kBf16TileRows; ++j) {
          uint16_t* lo_j = kExact ? nullptr : lo.data() + j * kc;
          if (j >= nc) {
            std::fill_n(hi.data() + j * kc, kc, uint16_t(0));
            if (lo_j) std::fill_n(lo_j, kc, uint16_t(0));
          } else if constexpr (kExact && kDecodesBf16<Codes>) {
            codes.decode_bf16(n0 + j, k0, k0 + kc, hi.data() + j * kc);
          } else if constexpr (kByteCodes && !kExact) {
            // Integer codes: bytes, then each group's affine map and the split in one SIMD pass.
            const int64_t n = n0 + j;
            const uint8_t* b = nullptr;
            if constexpr (kIsPacked<Codes>) {
              unpack_bits_u8(codes.data + n * packed_row_bytes(s.K, Codes::kBits) + k0 / 8 * Codes::kBits, kc,
                             Codes::kBits, bytes.data());
              b = bytes.data();
            } else {
              b = reinterpret_cast<const uint8_t*>(codes.data + n * s.K + k0);
            }
            for (int64_t g = k0 / s.group_size; g * s.group_size < k0 + kc; ++g) {
              const GroupAffine ga(scale, zp, domain, quant_min, quant_max, G, n, g);
              const int64_t a = std::max(k0, g * s.group_size) - k0, e = std::min(k0 + kc, (g + 1) * s.group_size) - k0;
              split_bf16_affine(b + a, e - a, std::is_same_v<Codes, PlainCodes<int8_t>>, int(raw_code_offset(codes)),
                                ga.sc, ga.off, hi.data() + j * kc + a, lo_j + a);
            }
          } else {
            decode_weight_row(codes, scale, zp, domain, quant_min, quant_max, s.K, s.group_size, n0 + j, k0, k0 + kc,
                              w.data());
            split_bf16(w.data(), kc, hi.data() + j * kc, lo_j);
          }
        }
        amx_bf16_gemm_panel(hi.data(), kExact ? nullptr : lo.data(), kc, wtiles, xb.data(), xlo != nullptr, ksteps,
                            k0, mtiles, c.data(), Mp, k0 > 0);
      }
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t j = 0; j < nc; ++j) store(m, n0 + j, c[j * Mp + m]);
    }
  }
}

// Weight-only linears on the tiles: bfloat16 activations as they are, float32
// and float16 ones as two bfloat16 parts each (a float16 value's two parts are
// exact; a float32 one's keep 16 of its 24 bits, and the products the tiles
// leave out, lo x lo, are below 2^-16 of each product: float32 activations
// only where LinearShape::fp32_reduced allows it).
template <class TA, class TS, class Codes>
void weight_only_gemm_amx_bf16(const TA* x, const Codes& codes, const TS* scale, const float* zp,
                               ZeroPointDomain domain, int64_t quant_min, int64_t quant_max, const TA* bias,
                               const LinearShape& s, TA* out, int nthreads) {
  const auto store = [&](int64_t m, int64_t n, float c) {
    out[m * s.N + n] = from_float<TA>(c + (bias ? to_float(bias[n]) : 0.0f));
  };
  if constexpr (std::is_same_v<TA, bf16>) {
    amx_bf16_gemm<false>(reinterpret_cast<const uint16_t*>(x), nullptr, codes, scale, zp, domain, quant_min, quant_max,
                         s, store, nthreads);
  } else {
    const int64_t n = s.M * s.K;
    std::vector<float> xf(size_t(std::is_same_v<TA, float> ? 0 : n));
    if constexpr (!std::is_same_v<TA, float>) to_f32(x, n, xf.data());
    const float* xs = std::is_same_v<TA, float> ? reinterpret_cast<const float*>(x) : xf.data();
    std::vector<uint16_t> hi(static_cast<size_t>(n)), lo(static_cast<size_t>(n));
    split_bf16(xs, n, hi.data(), lo.data());
    amx_bf16_gemm<false>(hi.data(), lo.data(), codes, scale, zp, domain, quant_min, quant_max, s, store, nthreads);
  }
}

template <class TA, class TS, class Codes>
void weight_only_linear(const TA* x, const Codes& codes, const TS* scale, const float* zp, ZeroPointDomain domain,
                        int64_t quant_min, int64_t quant_max, const TA* bias, const LinearShape& s, TA* out,
                        int nthreads) {
  if (s.M >= amx_min_rows<Codes>() && s.K % kBf16TileK == 0 && has_amx_bf16() &&
      (!std::is_same_v<TA, float> || s.fp32_reduced))
    return weight_only_gemm_amx_bf16(x, codes, scale, zp, domain, quant_min, quant_max, bias, s, out, nthreads);
  const int64_t G = s.K / s.group_size;
  const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
  std::vector<float> xf(size_t(s.M * s.K));
  to_f32(x, s.M * s.K, xf.data());

  if constexpr (has_direct_dot<Codes>()) {
    // Direct dots: y = sum_g scale*D_g + (scale*(offset - zi) + zf)*X_g, with
    // D_g the dot of x with the raw codes and X_g the sum of x over the group
    // (GroupScales: zi = zp in the INT domain, zf = zp and offset - mid in the
    // FLOAT one).
    // 4-bit, N-bit (up to 7 bits) and int8 codes go through the VNNI dots
    // on integer units where the CPU has them and the shape fits, except
    // rows they cannot take (NaN, Inf, tiny values), which stay on the float
    // kernels; bfloat16 x with 4-bit codes otherwise through the BF16 dot
    // (exact products of the same values, float32 sums). The VNNI dot is
    // the faster of the two wherever both were measured: 1.0-1.2x at one
    // row and 1.6-1.8x at 8 and 32 on the Intel Xeon VM with AMX (bfloat16
    // x), level with it on Zen 4.
    constexpr bool kU4 = std::is_same_v<Codes, PackedCodes<4>>, kI8 = std::is_same_v<Codes, PlainCodes<int8_t>>;
    constexpr int kCodeBits = [] {
      if constexpr (kIsPacked<Codes>) return Codes::kBits;
      return 8;
    }();
    bool vnni_dot = false;
    if constexpr (kU4) {
      vnni_dot = has_dot_vnni_u4() && u4_lanes_fit(s.group_size / 2, s.K / 2);
    } else if constexpr (kIsPacked<Codes>) {
      vnni_dot = Codes::kBits <= kVnniMaxBits && has_dot_vnni_bits() && vnni_bits_fit(s.group_size, s.K);
    } else if constexpr (kI8) {
      vnni_dot = has_dot_vnni_i8() && vnni_bits_fit(s.group_size, s.K);
    }
    const bool bf16_dot = kU4 && !vnni_dot && std::is_same_v<TA, bf16> && has_dot_bf16_u4() &&
                          bf16_u4_dot_fits(s.group_size / 2, s.K / 2);
    if (s.M <= direct_dot_max_rows<Codes>(bf16_dot || vnni_dot) && s.group_size % 2 == 0) {
      const int64_t chunks = vnni_dot ? s.K / kVnniChunkValues : 0;
      std::vector<int8_t> xq(size_t(s.M * chunks * kVnniChunkBytes));
      std::vector<float> unit(size_t(s.M * chunks)), xsum(size_t(s.M * G));
      std::vector<DotOperands> ops(size_t(s.M));
      int64_t float_rows = 0;  // rows on the float kernels
      for (int64_t m = 0; m < s.M; ++m) {
        ops[m].x = xf.data() + m * s.K;
        if (vnni_dot && vnni_operands(ops[m].x, s.K, kU4 ? VnniOrder::Pairs : VnniOrder::Natural,
                                      xq.data() + m * chunks * kVnniChunkBytes, unit.data() + m * chunks,
                                      vnni_q_bits(kCodeBits))) {
          ops[m].xq = xq.data() + m * chunks * kVnniChunkBytes, ops[m].unit = unit.data() + m * chunks;
        } else {
          ++float_rows;
        }
      }
      const int64_t float_u4_rows = kU4 && !bf16_dot ? float_rows : 0;
      // N-bit codes for several activation rows are unpacked once per row block.
      const bool unpack = kIsPacked<Codes> && !kU4 && (float_rows || s.M > 1);
      for (auto& o : ops) o.unpacked = unpack;
      std::vector<float> xl(size_t(float_u4_rows * s.K / 2)), xb(xl.size());
      std::vector<uint16_t> xp(bf16_dot ? size_t(s.M * s.K) : 0);
      for (int64_t m = 0, f = 0; m < s.M; ++m) {
        const float* xr = ops[m].x;
        if constexpr (std::is_same_v<TA, bf16>) {
          if (bf16_dot) {
            u4_bf16_operands(reinterpret_cast<const uint16_t*>(x + m * s.K), s.K / 2, xp.data() + m * s.K);
            ops[m].xp = xp.data() + m * s.K;
          }
        }
        if (kU4 && !bf16_dot && !ops[m].xq) {
          u4_dot_operands(xr, s.K / 2, xl.data() + f * (s.K / 2), xb.data() + f * (s.K / 2));
          ops[m].xl = xl.data() + f * (s.K / 2), ops[m].xb = xb.data() + f * (s.K / 2), ++f;
        }
        // (SIMD: the scalar loop's add latency cost 0.8-2.3 us more per call)
        for (int64_t g = 0; g < G; ++g) xsum[m * G + g] = sum_f32(xr + g * s.group_size, s.group_size);
      }
      const float offset = raw_code_offset(codes);
      const bool float_zp = domain == ZeroPointDomain::Float;
      // No zero-point terms: codes are the weights' values up to their scale.
      const bool zero_terms = zp || offset != 0.0f || float_zp;
      constexpr int R = kMaxDotRows;
      // Activation rows in blocks whose operands stay in L2 while every
      // weight row streams past them once per block.
      const int64_t operand_bytes = vnni_dot ? kVnniChunkBytes / kVnniChunkValues : bf16_dot ? 2 : 4;
      const int64_t block = std::max<int64_t>(1, kDotBlockBytes / (s.K * operand_bytes));
#pragma omp parallel num_threads(nthreads)
      {
        // Float scales are read in place; others are converted per row.
        std::vector<float> gs(static_cast<size_t>(std::is_same_v<TS, float> ? 0 : R * G));
        const bool unpacks = kIsFloatx<Codes> || unpack;
        std::vector<uint8_t> scratch(static_cast<size_t>(unpacks ? R * s.K : 0));
        // Each thread takes a contiguous range of rows and walks its R quarters
        // side by side (rows i, i + Q, i + 2Q, ...): R long sequential streams
        // that the hardware prefetcher follows, where R adjacent rows would be
        // R short streams restarted every block.
#ifdef _OPENMP
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        const int nt = 1, t = 0;
#endif
        const int64_t lo = s.N * t / nt, hi = s.N * (t + 1) / nt, Q = (hi - lo + R - 1) / R;
        for (int64_t m0 = 0; m0 < s.M; m0 += block) {
          for (int64_t i = 0; i < Q; ++i) {
            const int64_t n0 = lo + i;
            int rows = 0;
            while (rows < R && n0 + rows * Q < hi) ++rows;
            GroupScales f;
            if constexpr (std::is_same_v<TS, float>) {
              f.scale = scale + n0 * G, f.ld = Q * G;
            } else {
              for (int r = 0; r < rows; ++r) to_f32(scale + (n0 + r * Q) * G, G, gs.data() + r * G);
              f.scale = gs.data(), f.ld = G;
            }
            if (zp) (float_zp ? f.zf : f.zi) = zp + n0 * G;
            f.zld = Q * G;
            f.offset = float_zp ? offset - mid : offset;
            if (unpacks) unpack_rows(codes, n0, Q, rows, scratch.data());
            for (int64_t m = m0; m < std::min(s.M, m0 + block); ++m) {
              float d[R];
              f.xsum = zero_terms ? xsum.data() + m * G : nullptr;
              direct_dot_rows(codes, ops[m], n0, Q, rows, s.group_size, G, f, scratch.data(), d);
              for (int r = 0; r < rows; ++r) {
                const int64_t n = n0 + r * Q;
                const float b = bias ? to_float(bias[n]) : 0.0f;
                out[m * s.N + n] = from_float<TA>(d[r] + b);
              }
            }
          }
        }
      }
      return;
    }
  }
  if (s.M > kRowDecodeMaxRows)
    return weight_only_gemm(xf.data(), codes, scale, zp, domain, quant_min, quant_max, bias, s, out, nthreads);
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> w(size_t(s.K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      decode_weight_row(codes, scale, zp, domain, quant_min, quant_max, s.K, s.group_size, n, 0, s.K, w.data());
      const float b = bias ? to_float(bias[n]) : 0.0f;
      for (int64_t m = 0; m < s.M; ++m)
        out[m * s.N + n] = from_float<TA>(dot_f32(xf.data() + m * s.K, w.data(), s.K) + b);
    }
  }
}

// float8 activations x float8 weights, as torch._scaled_mm computes them:
// out[m, n] = round_TA(acc[m, n] * xs[m] * ws[n] + bias[n]), with acc the
// float32 sum of the exact products of the decoded codes: float8_sums here
// (Float8Codes, or Float8Sparse24Codes for 2:4 weights and many activation
// rows), sparse24_gemm_f32 (sparse24.h) for 2:4 weights and a few. xv holds the
// activations' float8 values as float. xs / ws: one scale (stride 0) or one
// per row (stride 1).
template <class Codes>
void float8_sums(const float* xv, const Codes& codes, int64_t M, int64_t N, int64_t K, float* acc, int nthreads) {
  // The weight-only kernel with unit scales sums the exact products.
  const std::vector<float> ones(size_t(N), 1.0f);
  const LinearShape s{M, N, K, K};
  if (M >= amx_min_rows<Codes>() && K % kBf16TileK == 0 && has_amx_bf16()) {
    // Float8 values are bfloat16 values: on the tiles, activations and
    // weights alike take one bfloat16 part, and products stay exact.
    std::vector<uint16_t> xb(size_t(M * K));
    split_bf16(xv, M * K, xb.data(), nullptr);
    return amx_bf16_gemm<true>(
        xb.data(), nullptr, codes, ones.data(), nullptr, ZeroPointDomain::None, 0, 0, s,
        [acc, N](int64_t m, int64_t n, float c) { acc[m * N + n] = c; }, nthreads);
  }
  weight_only_linear<float, float>(xv, codes, ones.data(), nullptr, ZeroPointDomain::None, 0, 0, nullptr, s, acc,
                                   nthreads);
}

template <class TA>
void float8_epilogue(const float* acc, const float* xs, int64_t xs_stride, const float* ws, int64_t ws_stride,
                     const TA* bias, int64_t M, int64_t N, TA* out) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      out[m * N + n] = from_float<TA>(acc[m * N + n] * xs[m * xs_stride] * ws[n * ws_stride] +
                                      (bias ? to_float(bias[n]) : 0.0f));
}

// Dynamic int8 activations x integer weights:
// y[m,n] = a_scale[m] * sum_g w_scale[n,g] * sum_{k in g} (a[m,k]-a_zp[m]) (w[n,k]-w_zp[n,g]).
template <class TA, class Codes>
void int8_dynamic_linear(const int8_t* a, const float* a_scale, const float* a_zp, const Codes& codes,
                         const float* w_scale, const float* w_zp, const TA* bias, const LinearShape& s, TA* out,
                         int nthreads) {
  const int64_t G = s.K / s.group_size;
  std::vector<int16_t> aa(size_t(s.M * s.K));
  for (int64_t m = 0; m < s.M; ++m)
    for (int64_t k = 0; k < s.K; ++k) aa[m * s.K + k] = int16_t(a[m * s.K + k] - int16_t(a_zp ? a_zp[m] : 0.0f));
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<int16_t> w(size_t(s.K));
    std::vector<float> acc(size_t(s.M));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      for (int64_t g = 0; g < G; ++g) {
        const int16_t z = int16_t(w_zp ? w_zp[n * G + g] : 0.0f);
        for (int64_t k = g * s.group_size; k < (g + 1) * s.group_size; ++k) w[k] = int16_t(int16_t(codes(n, k)) - z);
      }
      for (int64_t m = 0; m < s.M; ++m) acc[m] = 0.0f;
      for (int64_t g = 0; g < G; ++g) {
        const float ws = w_scale[n * G + g];
        for (int64_t m = 0; m < s.M; ++m) {
          const int64_t k0 = g * s.group_size;
          acc[m] += ws * float(dot_i16(aa.data() + m * s.K + k0, w.data() + k0, s.group_size));
        }
      }
      const float b = bias ? to_float(bias[n]) : 0.0f;
      for (int64_t m = 0; m < s.M; ++m) out[m * s.N + n] = from_float<TA>(a_scale[m] * acc[m] + b);
    }
  }
}

}  // namespace kernels
}  // namespace torchao_cpp
