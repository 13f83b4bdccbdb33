// Vector primitives with run-time ISA selection: each has an AVX-512, an
// AVX2+FMA and a portable version, and the first call picks the best the CPU
// supports (CPUID), so one binary runs on any x86-64.
#pragma once

#include <cstdint>
#include <type_traits>

#include "numeric.h"

namespace torchao_cpp {
namespace kernels {

enum class Isa { Portable, Avx2, Avx512 };
// The instruction set in use (the best one the CPU has, unless set_isa chose).
Isa active_isa();
// Switches every primitive to `isa` (tests, benchmarks); false if the CPU lacks it.
bool set_isa(Isa isa);

// sum_i a[i] (vectorized: the streaming-read reference of the benchmarks)
float sum_f32(const float* a, int64_t n);
// sum_i a[i] * b[i]
float dot_f32(const float* a, const float* b, int64_t n);
// sum_i a[i] * b[i] in int32 (|a|,|b| < 2^15 and n * 2^30 must not overflow)
int32_t dot_i16(const int16_t* a, const int16_t* b, int64_t n);
// The per-group factors of the grouped dots below, for `rows` weight rows.
// Row r's scale of group g is scale[r * ld + g] (scales of consecutive rows
// may lie anywhere: a row-major [N, G] tensor read in place).
// With xsum set, row r also gets its zero-point term
//   sum_g (scale[r, g] * (offset - zi[r, g]) + zf[r, g]) * xsum[g],
// zi / zf at [r * zld + g] (nullptr: zero), xsum[g] the sum of x over group
// g: the weight (raw code + offset - zi) * scale + zf, summed in the kernel
// in SIMD where per-row passes outside it cost 18-25 % of an int4 decode.
struct GroupScales {
  const float* scale;
  int64_t ld;
  const float* xsum = nullptr;
  const float* zi = nullptr;
  const float* zf = nullptr;
  int64_t zld = 0;
  float offset = 0.0f;

  float at(int r, int64_t g) const { return scale[r * ld + g]; }
  // The zero-point term of row r over `groups` groups, in plain arithmetic
  // (the portable kernels'; the SIMD ones sum the same terms in lanes).
  float zero_term(int r, int64_t groups) const {
    if (!xsum) return 0.0f;
    float acc = 0.0f;
    for (int64_t g = 0; g < groups; ++g) {
      const float zint = zi ? zi[r * zld + g] : 0.0f, zflt = zf ? zf[r * zld + g] : 0.0f;
      acc += (at(r, g) * (offset - zint) + zflt) * xsum[g];
    }
    return acc;
  }
};

// Dots of float activations with `rows` (1..kMaxDotRows) consecutive rows of
// quantized codes (row r starts at c + r * ld), group by group:
// out[r] = sum_g gs.at(r, g) * sum_{i in group g} x[i] * c_r[i] + gs.zero_term(r, groups),
// over `groups` consecutive groups of `group_len` codes, with one horizontal
// reduction per row; x is loaded once for all rows. For 4-bit codes packed two
// per byte (code 2j in the low nibble of byte j), x comes as the two operands
// u4_dot_operands makes of it, and group_bytes and ld count bytes.
constexpr int kMaxDotRows = 4;
void dot_f32_i8_grouped(const float* x, const int8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                        const GroupScales& gs, float* out);
void dot_f32_u8_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                        const GroupScales& gs, float* out);
void dot_f32_u4_grouped(const float* x_low, const float* x_byte, const uint8_t* p, int64_t ld, int rows,
                        int64_t group_bytes, int64_t groups, const GroupScales& gs, float* out);
// The operands of dot_f32_u4_grouped for x[0..2 * nbytes):
// x_low[j] = x[2j] - x[2j+1] / 16 and x_byte[j] = x[2j+1] / 16, so that
// x[2j] * lo + x[2j+1] * hi = x_low[j] * lo + x_byte[j] * (16 hi + lo): the
// high nibble is never shifted out, the whole byte is converted (AVX-512: 5
// vector instructions per 32 codes instead of 6; decode is compute-bound).
// The division by 16 is exact; x_low costs one rounding, as a product does.
void u4_dot_operands(const float* x, int64_t nbytes, float* x_low, float* x_byte);
// dot_f32_u4_grouped for bfloat16 activations, on CPUs with AVX512-BF16
// only (has_dot_bf16_u4(); bf16_u4_dot_fits says which shapes it takes):
// vdpbf16ps multiplies the bfloat16 x with the codes' exact bfloat16 values
// and sums in float32, as the float kernel does, except that it reads
// bfloat16 subnormals as zero.
// group_bytes must be a multiple of 64 (groups of 128, 256, ... codes), or 16
// or 32 (groups of 32 or 64 codes) with groups * group_bytes a multiple of
// 64; x (bfloat16 bits) comes as u4_bf16_operands makes it.
bool has_dot_bf16_u4();
inline bool bf16_u4_dot_fits(int64_t group_bytes, int64_t row_bytes) {
  return group_bytes % 64 == 0 || ((group_bytes == 16 || group_bytes == 32) && row_bytes % 64 == 0);
}
void dot_bf16_u4_grouped(const uint16_t* xp, const uint8_t* p, int64_t ld, int rows, int64_t group_bytes,
                         int64_t groups, const GroupScales& gs, float* out);
// The operand of dot_bf16_u4_grouped for x[0..2 * nbytes), nbytes a multiple
// of 64: each 128 values as four planes, plane k holding x[4i + k] (i < 32),
// the codes one 16-bit word of packed codes holds at its k-th nibble.
void u4_bf16_operands(const uint16_t* x, int64_t nbytes, uint16_t* xp);
// The same for float8 codes (e4m3fn when e4m3, else e5m2) as their float values.
void dot_f32_f8_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                        const GroupScales& gs, float* out, bool e4m3);

// Dots of integer codes with float activations on CPUs with AVX512-VNNI
// (has_dot_vnni_u4, has_dot_vnni_bits): each 128 activations (a chunk) become
// integers Q = nearbyint(x / unit), unit a power of two per chunk with every
// |Q| < 2^23 (so x is kept to 2^-23 of the chunk's largest |x|, float32's own
// precision at that value), and sum_k code * Q in int32 is exact: Q's three
// bytes are multiplied with the codes by vpdpbusd (64 products each) and
// recombined by shifts, where the float kernels convert every code and make 16
// products per FMA (see the README's CPU section for what that gains).
constexpr int64_t kVnniChunkValues = 128;
// Operand bytes per chunk: Q's high byte (signed), middle and low bytes
// (unsigned), a plane of 128 bytes each, the values in natural order, or as
// the 64 at even positions then the 64 at odd ones (Pairs: the codes in the
// low and the high nibbles of 64 code bytes).
constexpr int64_t kVnniChunkBytes = 3 * kVnniChunkValues;
enum class VnniOrder { Natural, Pairs };
// Makes the operand (q: n / 128 chunks of kVnniChunkBytes, unit: one per
// chunk) of x[0..n), n a multiple of 128. False when x holds NaN or Inf, or a
// chunk's largest |x| is below 2^-100 but not zero (its unit would not be a
// normal float): the caller then takes the float kernel.
// qbits bounds Q: |Q| < 2^qbits, vnni_q_bits of the codes' width: a lane of
// the dots sums 4 products code * Q in int32 (8 for 4-bit codes), which stay
// below 2^31 with 23 bits up to 6-bit codes (4 * 63 * (2^23 - 1)) but need 22
// for 7-bit (4 * 127) and int8 codes (4 * 128): those keep 2^-22 of a chunk's
// largest value.
constexpr int kVnniQBits = 23;
constexpr int vnni_q_bits(int code_bits) { return code_bits <= 6 ? kVnniQBits : kVnniQBits - 1; }
bool vnni_operands(const float* x, int64_t n, VnniOrder order, int8_t* q, float* unit, int qbits = kVnniQBits);
// dot_f32_u4_grouped on the Pairs operand of x[0..2 * nbytes), for the shapes
// the BF16 dot takes (u4_lanes_fit).
bool has_dot_vnni_u4();
inline bool u4_lanes_fit(int64_t group_bytes, int64_t row_bytes) { return bf16_u4_dot_fits(group_bytes, row_bytes); }
void dot_vnni_u4_grouped(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld, int rows,
                         int64_t group_bytes, int64_t groups, const GroupScales& gs, float* out);
// The same for N-bit codes (1..kVnniMaxBits bits) packed LSB first
// (pack_bits_rows; row r at p + r * ld bytes), read in place and unpacked in
// registers (AVX512-VBMI too), on the Natural operand: groups of 16 or 32
// codes, or of a multiple of 64, rows of a multiple of 128 codes
// (vnni_bits_fit). bits = 8: such codes (below 128) already unpacked, one per
// byte. The operand's Q: vnni_q_bits(bits) of the packed width.
constexpr int kVnniMaxBits = 7;
bool has_dot_vnni_bits();
inline bool vnni_bits_fit(int64_t group_len, int64_t row_len) {
  return row_len % kVnniChunkValues == 0 && (group_len % 64 == 0 || group_len == 16 || group_len == 32);
}
void dot_vnni_bits_grouped(const int8_t* q, const float* unit, const uint8_t* p, int64_t ld, int rows, int bits,
                           int64_t group_len, int64_t groups, const GroupScales& gs, float* out);
// The same for signed int8 codes (row r at c + r * ld) on the Natural operand
// made with qbits = vnni_q_bits(8) (x keeps 2^-22 of its chunk's largest
// value; float32 keeps 2^-24 of each value). AVX512-VNNI; vnni_bits_fit shapes.
bool has_dot_vnni_i8();
void dot_vnni_i8_grouped(const int8_t* q, const float* unit, const int8_t* c, int64_t ld, int rows, int64_t group_len,
                         int64_t groups, const GroupScales& gs, float* out);
// Turns the VNNI dots off (linears then run the float kernels) or back on,
// for benchmarks that compare the two in one process; set_isa turns them back
// on. False when asked to turn them on on a CPU without them.
bool set_dot_vnni(bool enabled);

// out[i] = the float value of the 16-bit float bits h[i]: bfloat16 when bf16,
// else float16 (F16C on x86). The scales and activations of bfloat16 and
// float16 models, converted where the kernels read them: converted one by one
// (float16 through a branchy software conversion), they had cost 13 % of a
// float16 int4 decode (370 against 317-324 us per 5632 x 2048 call, Zen 4).
void half_to_f32(const uint16_t* h, int64_t n, bool bf16, float* out);
// dst[i] = float(src[i]), 16-bit floats through half_to_f32.
template <class T>
inline void to_f32(const T* src, int64_t n, float* dst) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, fp16>) {
    half_to_f32(reinterpret_cast<const uint16_t*>(src), n, std::is_same_v<T, bf16>, dst);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
  }
}

// Min and max of x[0..n); false (and undefined min/max) if any is NaN or Inf.
bool minmax_f32(const float* x, int64_t n, float* mn, float* mx);
// Int8 activation codes shifted to uint8 for the VNNI GEMM:
// u[i] = clamp(nearbyint(x[i] * recip) + offset, qmin, qmax) + 128 in float32
// arithmetic, NaN quantizing as 0 (quantize_int_code<float> bit for bit).
void quantize_u8_shifted(const float* x, int64_t n, float recip, float offset, float qmin, float qmax, uint8_t* u);

// Unpacks n codes of `bits` (1..8) bits, packed LSB first as pack_bits_rows
// writes them, to one byte each (BMI2 pdep spreads eight codes per word).
void unpack_bits_u8(const uint8_t* packed, int64_t n, int bits, uint8_t* out);

// out[i] = table[c[i]] for codes of `bits` (1..8) bits: a table of 2^bits floats (float-x code values),
// looked up 16 at a time in registers (permutes of the table) where the CPU has AVX-512.
void lut_u8_f32(const uint8_t* c, int64_t n, const float* table, int bits, float* out);
// dot_f32_u8_grouped for codes (one per byte) that stand for table[code] (2^bits floats).
void dot_f32_lut_grouped(const float* x, const uint8_t* c, int64_t ld, int rows, int64_t group_len, int64_t groups,
                         const GroupScales& gs, float* out, const float* table, int bits);

// Float values of n float8 codes (e4m3fn when e4m3, else e5m2), through the
// float16 converter: e5m2 is the high byte of a float16, e4m3fn a float16
// scaled by 2^-8 (NaN codes stay NaN).
void float8_to_f32(const uint8_t* c, int64_t n, bool e4m3, float* out);
// The same values as bfloat16 bits (exact: float8 values are bfloat16 values).
void float8_to_bf16(const uint8_t* c, int64_t n, bool e4m3, uint16_t* out);
// The float8 activation quantizer and the code's value in one pass:
// out[i] = float8_to_float(quantize_float8_value<F, float>(x[i], r)), that is
// x[i] * r clamped to the format's range and rounded to its grid, as float
// (NaN stays NaN), for a float32 scale 1 / r.
void float8_grid_f32(const float* x, int64_t n, float r, bool e4m3, float* out);

// Register-tile step of the float GEMMs (weight-only linears with many
// activation rows): for r < rows (1..kGemmMR), c[r * ldc + j] (+)= sum_{k < kc}
// a[r * lda + k] * b[k * kGemmNR + j], j < kGemmNR; b is a packed panel.
constexpr int kGemmMR = 8;
constexpr int kGemmNR = 32;
void gemm_f32_tile(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int rows,
                   bool accumulate);

}  // namespace kernels
}  // namespace torchao_cpp
