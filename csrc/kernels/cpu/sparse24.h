// 2:4 semi-structured sparsity (SemiSparseLayout for int8 codes,
// CutlassSemiSparseLayout for float8 codes, MarlinSparseLayout for signed
// 4-bit codes): in every group of 4 consecutive weights along a row at most 2
// are nonzero. Rows are stored compressed, in chunks of 16 groups (64
// columns): the chunk's 32 kept codes, then 8 bytes of metadata, one nibble
// per group (low nibble for even groups) holding the kept columns i0 < i1 as
// i0 | i1 << 2. One-byte codes (bits 8: int8, or float8 raw bytes, 0 being
// +0.0): kept code j in byte j, a last partial chunk of G groups holding 2G
// codes; 5 bits per weight. Signed 4-bit codes (bits 4): 16 bytes, kept code j
// in byte j % 16, the low nibble for j < 16 (one zero-extension gives codes
// 0..15, a shift codes 16..31), zero-padded in a partial chunk; 3 bits per
// weight. Each row is one stream. Torch-free.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace torchao_cpp {
namespace kernels {

// Code bytes of a chunk of `groups` groups.
inline int64_t sparse24_code_bytes(int bits, int64_t groups) { return bits == 4 ? 16 : 2 * groups; }

// Bytes of one compressed row of K codes (K a multiple of 4) of `bits` (8 or 4) bits.
inline int64_t sparse24_row_bytes(int64_t K, int bits = 8) {
  const int64_t rem = K / 4 % 16;
  return K / 64 * (sparse24_code_bytes(bits, 16) + 8) + (rem ? sparse24_code_bytes(bits, rem) + (rem + 1) / 2 : 0);
}

// Zeroes the 2 smallest |w| of each group of 4 along rows of K (a multiple of
// 4), as the seed's SemiSparseLayout.pre_process: ties go to the lower
// column (a stable argsort), NaN counts as the largest.
template <class T>
void prune_2to4(const T* w, int64_t N, int64_t K, T* out);

// Group g of a compressed row of K columns: its two kept columns (within the
// group) and their codes (4-bit codes sign-extended to a byte).
inline void sparse24_group(const uint8_t* row, int64_t K, int64_t g, int cols[2], uint8_t codes[2], int bits = 8) {
  const int64_t chunk = g / 16 * (sparse24_code_bytes(bits, 16) + 8);
  const int64_t in_chunk = std::min<int64_t>(16, K / 4 - g / 16 * 16);
  for (int t = 0; t < 2; ++t) {
    const int64_t j = 2 * (g % 16) + t;
    codes[t] = bits == 4 ? uint8_t(int8_t(uint8_t(row[chunk + j % 16] >> (4 * (j / 16)) << 4)) >> 4) : row[chunk + j];
  }
  const int nib = (row[chunk + sparse24_code_bytes(bits, in_chunk) + g % 16 / 2] >> (4 * (g % 2))) & 15;
  cols[0] = nib & 3;
  cols[1] = nib >> 2;
}

// Compresses row-major codes (N x K, one per byte; in [-8, 7] for bits 4)
// into N rows of sparse24_row_bytes(K, bits). Returns -1, or the first row
// with a group of more than 2 nonzero codes. (Float8 bytes pass as int8_t:
// only zero / nonzero matters.)
int64_t compress_2to4(const int8_t* codes, int64_t N, int64_t K, uint8_t* out, int bits = 8);

// The dense codes (zeros where pruned) of compressed rows.
void decompress_2to4(const uint8_t* rows, int64_t N, int64_t K, int8_t* codes, int bits = 8);

// Returns -1, or the first row whose metadata is not i0 < i1 in every group.
int64_t check_2to4_metadata(const uint8_t* rows, int64_t N, int64_t K, int bits = 8);

// Signed 4-bit compressed rows (bits 4) rearranged for the sparse tensor
// cores' mma.sp m16n8k32 (the CUDA 2:4 int4 kernel), built on the host once
// when the weight moves to the device. Rows are taken 16 at a time (tile t,
// rows padded with zero codes to a multiple of 16), K 32 at a time (block b,
// K a multiple of 128). Lane l = 4 g + q of a warp holds one 32-bit word per
// block: the kept codes of rows g and g + 8 in groups q and q + 4 of the
// block, as the A operand's four registers (row g group q, row g + 8 group q,
// row g group q + 4, row g + 8 group q + 4) want them: register r's lower
// (first kept) code in nibble r, its upper code in nibble r + 4, each code
// stored + 8 (0..15). Lanes with q < 2 also hold the block's metadata word:
// groups 4q .. 4q + 3 of row g in the low 16 bits, of row g + 8 in the high
// 16, 4 bits a group (i0 | i1 << 2). Four blocks are stored together, so that
// a lane loads 16 bytes at a time: values[t][b / 4][l][b % 4] (32 lanes),
// meta[t][b / 4][2 g + q][b % 4] (16 lanes). 3 bits per weight, as stored.
inline int64_t sparse24_mma_tiles(int64_t N) { return (N + 15) / 16; }
void sparse24_int4_mma_pack(const uint8_t* rows, int64_t N, int64_t K, uint32_t* values, uint32_t* meta);
// The dense codes (zeros where pruned) of that form, for tests.
void sparse24_int4_mma_unpack(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K, int8_t* codes);

// Float8 compressed rows (bits 8; CutlassSemiSparseLayout's raw bytes)
// rearranged for mma.sp m16n8k64 with float8 operands (the CUDA 2:4 float8
// kernel), built on the host once. Tiles of 16 rows as above (padding rows:
// zero bytes), K 64 at a time (block b; K padded with zero codes to a
// multiple of 64). Lane l = 4 g + q holds 16 bytes per block, the A
// operand's four registers: register r covers row g + 8 (r % 2), groups
// 2q, 2q + 1 (r < 2) or 8 + 2q, 9 + 2q (r >= 2) of the block, the first
// group's two kept bytes in bytes 0, 1, the second's in 2, 3. Lane l also
// holds one metadata word: row g + 8 (q % 2), groups 8 (q / 2) .. + 7, 4 bits
// a group (i0 | i1 << 2), so register r's metadata is in lane 4 g + r's word.
// values[t][b][l] (16 bytes), meta[t][b][l] (4 bytes): a warp's loads of a
// block are 512 and 128 contiguous bytes. 5 bits per weight, as stored.
inline int64_t sparse24_float8_mma_blocks(int64_t K) { return (K + 63) / 64; }
void sparse24_float8_mma_pack(const uint8_t* rows, int64_t N, int64_t K, uint32_t* values, uint32_t* meta);
// The dense codes (zero bytes where pruned) of that form, for tests.
void sparse24_float8_mma_unpack(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K, uint8_t* codes);

// Compressed per-channel int8 weights with what the GEMM's epilogue needs.
struct Sparse24Weights {
  const uint8_t* rows = nullptr;  // N x sparse24_row_bytes(K)
  int64_t N = 0, K = 0;
  std::vector<float> rowsum;  // sum_k W[n, k]
  std::vector<float> scale;   // per-row weight scale
};
Sparse24Weights make_sparse24_weights(const uint8_t* rows, int64_t N, int64_t K, const float* scale);

// out[m, n] = a_scale[m] * (C - (128 + a_zp[m]) * rowsum[n]) * scale[n] + bias[n], with
// C = sum over the kept codes of (a[m, k] + 128) * W[n, k] and u = a + 128 (M x K):
// the dense int8 GEMM's arithmetic (int8_gemm.h), so both give the same bits.
// Only the kept codes are multiplied (AVX-512 VBMI + VNNI gathers their
// activations with vpermb; a portable loop elsewhere).
void int8_sparse24_gemm_u8(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M,
                           const Sparse24Weights& w, const float* bias, float* out, int nthreads);

// What the codes of compressed rows stand for in a float GEMM (Int4: signed
// 4-bit codes, the others one byte each).
enum class Sparse24Values { Int8, Float8E4M3FN, Float8E5M2, Int4 };

// Float activations x compressed rows (N x sparse24_row_bytes(K)):
// acc[m * N + n] = sum over row n's kept codes of x[m * K + k] * (value(W[n, k]) * s),
// with s = scale[n * (K / group) + k / group] (nullptr: 1), float32 sums. Float8
// values with float8 activations and no scale give exact products (float8_linear's
// sums). Only the kept codes are multiplied (AVX-512, where `group` is K or a multiple
// of 64: vpermi2ps gathers their activations; a portable loop elsewhere).
void sparse24_gemm_f32(const float* x, int64_t M, const uint8_t* rows, int64_t N, int64_t K, Sparse24Values values,
                       const float* scale, int64_t group, float* acc, int nthreads);

}  // namespace kernels
}  // namespace torchao_cpp
