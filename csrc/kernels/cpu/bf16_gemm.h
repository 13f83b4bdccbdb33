// Weight-only linears with bfloat16 activations and many activation rows, on
// AMX bfloat16 tiles (tdpbf16ps: 16 x 16 x 32 products per instruction,
// float32 sums). Weight rows decoded to float are split into two bfloat16
// parts, w = hi + lo to within 2^-17 |w|, whose products with bfloat16
// activations are exact in float32: the sums are the float panel GEMM's up to
// float32 rounding (and bfloat16 subnormals, which the tiles read as zero).
// The weights are the tiles' first operand (rows as decoded, no transpose),
// the activations, packed once per call, the second. Torch-free.
#pragma once

#include <cstdint>

namespace torchao_cpp {
namespace kernels {

// True when the CPU has AMX-BF16 tiles this process may use (and AVX512-BF16
// for the operand conversions), unless set_amx_bf16(false) turned them off.
bool has_amx_bf16();
// Turns the AMX bfloat16 GEMM off (the float kernels run instead) or back on,
// for tests and benchmarks that compare the two; false when asked to turn it
// on on a CPU without it.
bool set_amx_bf16(bool enabled);

constexpr int64_t kBf16TileK = 32;     // k values per tile step
constexpr int64_t kBf16TileRows = 16;  // rows (weights or activations) per tile

// Activations x (M x K bfloat16 bits, K a multiple of kBf16TileK) as the
// tiles' second operand: for 16-row block t and k step s, 16 rows of k pairs
// by 16 activation rows: x[16 t + i][32 s + 2 r + e] goes to
// xb[((t * K / 32 + s) * 16 + r) * 32 + 2 i + e]; rows past M are zero.
// xb holds ceil(M / 16) * 16 * K values.
void pack_bf16_activations(const uint16_t* x, int64_t M, int64_t K, uint16_t* xb, int nthreads);

// hi[i], lo[i]: the bfloat16 parts of w[i] (each rounded to nearest even);
// lo = nullptr: hi alone (values known to be bfloat16 ones, e.g. float8).
void split_bf16(const float* w, int64_t n, uint16_t* hi, uint16_t* lo);

// The same for the affine values of n integer codes, w = float(c + c_offset) *
// sc + off rounded as decode_weight_row rounds them (product, then sum), c
// read as int8 when is_signed, else uint8.
void split_bf16_affine(const uint8_t* c, int64_t n, bool is_signed, int c_offset, float sc, float off, uint16_t* hi,
                       uint16_t* lo);

// c[j * ldc + m] (+)= sum_{k < kc} (hi + lo)[j * kc + k] * x[m][k0 + k] (lo =
// nullptr: hi alone, half the tile steps) for weight rows j < 16 * wtiles
// (wtiles <= 4) and activation rows m < 16 * mtiles, with x as
// pack_bf16_activations wrote it into xb (ksteps = K / 32); x_lo: x is itself
// two bfloat16 parts (float32 or float16 activations), the lo parts packed
// right after the hi ones (mtiles * 16 * K values on), and lo x lo products
// are left out. k0 and kc multiples of 32, ldc a multiple of 16.
void amx_bf16_gemm_panel(const uint16_t* hi, const uint16_t* lo, int64_t kc, int wtiles, const uint16_t* xb,
                         bool x_lo, int64_t ksteps, int64_t k0, int64_t mtiles, float* c, int64_t ldc,
                         bool accumulate);

}  // namespace kernels
}  // namespace torchao_cpp
