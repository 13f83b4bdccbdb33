// 2:4 semi-structured sparsity (SemiSparseLayout for int8 codes,
// CutlassSemiSparseLayout for float8 codes): in every group of 4 consecutive
// weights along a row at most 2 are nonzero. Rows are stored compressed, in
// chunks of 16 groups (64 columns): the chunk's 32 kept one-byte codes (int8,
// or float8 raw bytes: 0 is +0.0), then 8 bytes of metadata, one nibble per group (low nibble for even
// groups) holding the kept columns i0 < i1 as i0 | i1 << 2; a last partial
// chunk of G groups holds 2G codes and ceil(G/2) metadata bytes. That is 5
// bits per weight instead of 8, read as one stream per row. Torch-free.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace torchao_cpp {
namespace kernels {

// Bytes of one compressed row of K codes (K a multiple of 4).
inline int64_t sparse24_row_bytes(int64_t K) {
  const int64_t rem = K / 4 % 16;
  return K / 64 * 40 + 2 * rem + (rem + 1) / 2;
}

// Zeroes the 2 smallest |w| of each group of 4 along rows of K (a multiple of
// 4), as the seed's SemiSparseLayout.pre_process: ties go to the lower
// column (a stable argsort), NaN counts as the largest.
template <class T>
void prune_2to4(const T* w, int64_t N, int64_t K, T* out);

// Group g of a compressed row of K columns: its two kept columns (within the
// group) and their codes.
inline void sparse24_group(const uint8_t* row, int64_t K, int64_t g, int cols[2], uint8_t codes[2]) {
  const int64_t chunk = g / 16 * 40, in_chunk = std::min<int64_t>(16, K / 4 - g / 16 * 16);
  codes[0] = row[chunk + 2 * (g % 16)];
  codes[1] = row[chunk + 2 * (g % 16) + 1];
  const int nib = (row[chunk + 2 * in_chunk + g % 16 / 2] >> (4 * (g % 2))) & 15;
  cols[0] = nib & 3;
  cols[1] = nib >> 2;
}

// Compresses row-major one-byte codes (N x K) into N rows of sparse24_row_bytes(K).
// Returns -1, or the first row with a group of more than 2 nonzero codes.
// (Float8 bytes pass as int8_t: only zero / nonzero matters.)
int64_t compress_2to4(const int8_t* codes, int64_t N, int64_t K, uint8_t* out);

// The dense codes (zeros where pruned) of compressed rows.
void decompress_2to4(const uint8_t* rows, int64_t N, int64_t K, int8_t* codes);

// Returns -1, or the first row whose metadata is not i0 < i1 in every group.
int64_t check_2to4_metadata(const uint8_t* rows, int64_t N, int64_t K);

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

// What the one-byte codes of compressed rows stand for in a float GEMM.
enum class Sparse24Values { Int8, Float8E4M3FN, Float8E5M2 };

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
