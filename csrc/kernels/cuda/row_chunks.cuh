// Device-only helpers of the per-row activation quantizers (int8 per token,
// float8 per row): one block holds a whole row in registers, so the row is
// read from memory once (its reduction and its codes both come from the
// registers) and every load is a coalesced 16-byte one issued before any is
// used. Element-wise loops over a row took 63-91 us at M = 2048, K = 14336
// on an H100 (2-byte loads, one dependent round trip each), 3x the time the
// bytes need.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../cpu/numeric.h"

namespace torchao_cpp {
namespace kernels {
namespace cuda {

constexpr int kRowThreads = 256;
constexpr int kRowMaxChunks = 8;  // 16-byte chunks per thread: rows up to 2048 chunks (16384 bf16)

// Chunk c of thread t holds elements [E * i, E * i + E) of the row, i = t + c * N
// (N: the threads that share the row).
template <class T, int C, int N = kRowThreads>
struct RowChunks {
  static constexpr int E = 16 / int(sizeof(T));
  uint4 v[C];

  __device__ static int64_t index(int c) { return int64_t(threadIdx.x) + int64_t(c) * N; }
  __device__ static bool valid(int c, int64_t chunks) { return index(c) < chunks; }

  // Chunks past the row's end are zeros.
  __device__ void load(const T* row, int64_t chunks) {
    const uint4* p = reinterpret_cast<const uint4*>(row);
#pragma unroll
    for (int c = 0; c < C; ++c) v[c] = valid(c, chunks) ? __ldg(p + index(c)) : make_uint4(0u, 0u, 0u, 0u);
  }
  __device__ float at(int c, int e) const { return to_float(reinterpret_cast<const T*>(&v[c])[e]); }

  // f(value) over the row's elements (not the zeros past its end).
  template <class F>
  __device__ void for_each(int64_t chunks, F&& f) const {
#pragma unroll
    for (int c = 0; c < C; ++c)
      if (valid(c, chunks))
#pragma unroll
        for (int e = 0; e < E; ++e) f(at(c, e));
  }

  // Writes the row's codes, one byte per element: pair(a, b) returns the
  // codes of two consecutive elements in its low 16 bits, a's first.
  template <class Pair>
  __device__ void store_codes(uint8_t* q, int64_t chunks, Pair&& pair) const {
#pragma unroll
    for (int c = 0; c < C; ++c)
      if (valid(c, chunks)) store_chunk(v[c], q + E * index(c), pair);
  }

  // The E codes of one chunk at dst (E-byte aligned).
  template <class Pair>
  __device__ static void store_chunk(const uint4& chunk, uint8_t* dst, Pair&& pair) {
    const T* t = reinterpret_cast<const T*>(&chunk);
    uint32_t w[(E + 3) / 4] = {};
#pragma unroll
    for (int e = 0; e < E; e += 2) w[e / 4] |= (pair(to_float(t[e]), to_float(t[e + 1])) & 0xFFFFu) << (8 * (e % 4));
    if constexpr (E == 8)
      *reinterpret_cast<uint2*>(dst) = make_uint2(w[0], w[1]);
    else
      *reinterpret_cast<uint32_t*>(dst) = w[0];
  }
};

// Whether a row of K elements, ldx apart from x on, loads as 16-byte chunks
// (and its codes store as whole words: q's rows are K bytes apart).
template <class T>
__host__ __device__ inline bool row_chunks_aligned(const void* x, int64_t ldx, int64_t K, const void* q) {
  constexpr int64_t E = 16 / int64_t(sizeof(T));
  return K % E == 0 && ldx % E == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(q) % (E == 8 ? 8 : 4) == 0;
}

// Calls f(std::integral_constant<int, C>) with the fewest chunks per thread
// that hold `chunks` over N threads; false (f not called) for longer rows.
template <int N = kRowThreads, class F>
__host__ bool with_row_chunks(int64_t chunks, F&& f) {
  if (chunks <= N) return f(std::integral_constant<int, 1>{}), true;
  if (chunks <= 2 * N) return f(std::integral_constant<int, 2>{}), true;
  if (chunks <= 4 * N) return f(std::integral_constant<int, 4>{}), true;
  if (chunks <= kRowMaxChunks * N) return f(std::integral_constant<int, kRowMaxChunks>{}), true;
  return false;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
