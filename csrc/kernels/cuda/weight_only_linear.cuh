// Torch-free CUDA kernels for weight-only linears (the decode path): raw
// device pointers, sizes and a stream; the ATen wrappers check and allocate.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// How a group's zero point enters the weight, for the code q = raw + code_offset:
//   None:  W = q * s
//   Int:   W = (q - z) * s
//   Float: W = (q - mid) * s + z      (torchao's tinygemm math; mid = 8 for uint4)
enum class ZeroDomain : int { None = 0, Int = 1, Float = 2 };

// How the weight's codes are stored: N rows of K codes, 16-byte aligned.
enum class CodeFormat : int {
  Uint4 = 0,     // K / 2 bytes a row, code 2j in the low nibble of byte j (the CPU kernels' packed rows)
  Int8 = 1,      // K bytes a row
  Float8E4M3 = 2,  // K bytes a row, OCP e4m3fn (domain None, code_offset 0)
  Float8E5M2 = 3,
  // `bits` (1..8) a code, bitpack.h's rows: code j at bit j * bits of its row,
  // least significant bit first; q = table->value[code] (a float-x format's
  // values, or the integer codes 0 .. 2^bits - 1). K and groups: multiples of 32.
  PackedTable = 4,
};

// PackedTable: weight_only_linear takes up to this many activation rows (a
// GEMV reading the packed codes); for more, weight_only_dequantize and a GEMM.
constexpr int64_t kTableGemvRows = 4;

// The value of each code of a PackedTable weight (2^bits used).
struct CodeTable {
  float value[256];
};

// out[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) with W dequantized in
// registers from per-(n, group) scale and zero point and rounded once to T
// (__nv_bfloat16 or __half), as torchao's dequantize-then-linear and
// tinygemm do; products accumulate in float32 (tensor cores) and the output
// is rounded once to T.
template <class T>
struct WeightOnlyArgs {
  const T* x = nullptr;  // M rows of K activations, ldx elements apart
  int64_t ldx = 0;
  const void* codes = nullptr;
  CodeFormat format = CodeFormat::Uint4;
  // Added to the stored integer code (the packed format stores code - quant_min).
  // (q + code_offset), (q + code_offset - z) and (q + code_offset - mid) must be
  // integers of magnitude <= 256, so that they are exact in T.
  float code_offset = 0.0f;
  const T* scale = nullptr;  // (N, K / group_size)
  const T* zero = nullptr;   // (N, K / group_size), nullptr for ZeroDomain::None
  ZeroDomain domain = ZeroDomain::None;
  float mid = 0.0f;
  const T* bias = nullptr;  // N, or nullptr
  int64_t M = 0, N = 0, K = 0, group_size = 0;
  T* out = nullptr;  // M x N, contiguous
  int bits = 0;                      // PackedTable only
  const CodeTable* table = nullptr;  // PackedTable only: host memory, passed to the kernel by value
  int warps = 0;     // warps per block splitting K (launch tuning; 0 = the default)
  // Up to 16 rows (launch tuning; 0 = the default): K blocks each warp keeps in
  // flight (2 or 3; -1: the kernel used from 17 rows), 16-row tiles per warp (1 or 2; 4 for 4-bit codes at 9-16 rows),
  // aligned activations staged through shared memory with the codes (1) or loaded as used (-1).
  int depth = 0, tiles = 0, stage = 0;
  // Up to 8 rows, 8-bit codes, one tile per warp and 2 K blocks in flight (launch tuning;
  // 0 = the default; ignored elsewhere): the gemv built for 1 or 2 blocks of 16 warps per SM
  // (128 or 64 registers a thread).
  int occupancy = 0;
  // Up to 16 rows, 2 K blocks in flight (launch tuning; 0 = the default: 8-bit codes whose
  // warps each stream more than 8 K blocks): 1, each warp step takes 2 K blocks, every warp
  // load 128 contiguous bytes of 4 rows (row pieces of 64 bytes stream up to 25 % slower
  // from DRAM, H100); -1, one K block, 64 bytes of 8 rows.
  int pairs = 0;
};

// Returns cudaErrorInvalidValue for an unsupported shape (K codes not a
// multiple of 16 bytes, a group not a multiple of 16 bytes' worth of codes;
// PackedTable: K or a group not a multiple of 32, bits outside 1..8, no table),
// an unknown format, float8 codes with a zero domain, a zero domain without
// zero points),
// cudaErrorMisalignedAddress for codes not 16-byte aligned, else the launch
// error, if any. Never synchronises.
template <class T>
cudaError_t weight_only_linear(const WeightOnlyArgs<T>& args, cudaStream_t stream);

// W (N x K, row-major, 16-byte aligned) rounded once to T, from the same
// arguments (x, M and out unused): the large-M path dequantizes once and runs
// a dense GEMM. Same errors as weight_only_linear.
template <class T>
cudaError_t weight_only_dequantize(const WeightOnlyArgs<T>& args, T* w, cudaStream_t stream);

// The tinygemm case, kept as the kernel test's entry point: uint4 codes,
// W = (q - 8) * scale + zero.
template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
