// Two 16-bit floats in one register (low half first), the tensor cores'
// operand format, and what the weight-only kernels do with them: the packed
// arithmetic, the dense and sparse (2:4) mma instructions, the magic-number
// decode of integer codes. Shared by weight_only_linear.cu and
// sparse24_int4_linear.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ uint32_t word(const uint4& c, int i) { return i == 0 ? c.x : i == 1 ? c.y : i == 2 ? c.z : c.w; }
template <class V>
__device__ __forceinline__ uint32_t as_u32(V v) { return *reinterpret_cast<uint32_t*>(&v); }
template <class V>
__device__ __forceinline__ V from_u32(uint32_t u) { return *reinterpret_cast<V*>(&u); }

// Two T in one register (low half first), the tensor cores' operand format,
// and the packed arithmetic on them. A code c becomes the exact T value
// kMagic + c by writing c into the low mantissa bits of kMagic (no
// int-to-float conversion).
template <class T>
struct Pair;
// Pair<T>'s products on the tensor cores, for the PTX type name TY ("f16",
// "bf16"; asm takes only string literals, hence a macro): mma, the dense
// m16n8k16 product, and mma_sp, the 2:4 sparse m16n8k32 one (A as 16 x 16
// kept values, metadata e from lanes 0 and 1 of each quad).
#define TORCHAO_CPP_PAIR_MMA(TY)                                                                                    \
  __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {                    \
    asm("mma.sync.aligned.m16n8k16.row.col.f32." TY "." TY ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "          \
        "{%0,%1,%2,%3};\n"                                                                                          \
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                           \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                                          \
  }                                                                                                                 \
  __device__ static void mma_sp(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {       \
    asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32." TY "." TY ".f32 {%0,%1,%2,%3}, "             \
        "{%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"                                                 \
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                           \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));         \
  }
template <>
struct Pair<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic4 = 0x64006400u;  // 1024 + nibble
  static constexpr float kMagic = 1024.0f;
  static constexpr bool kBytesExact = true;  // 1024 + byte is exact too
  TORCHAO_CPP_PAIR_MMA("f16")
  __device__ static uint32_t of(float lo, float hi) { return as_u32(__floats2half2_rn(lo, hi)); }
};
template <>
struct Pair<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic4 = 0x43004300u;  // 128 + nibble
  static constexpr float kMagic = 128.0f;
  static constexpr bool kBytesExact = false;  // 8 significant bits: a byte takes the float32 route
  TORCHAO_CPP_PAIR_MMA("bf16")
  __device__ static uint32_t of(float lo, float hi) { return as_u32(__floats2bfloat162_rn(lo, hi)); }
};
#undef TORCHAO_CPP_PAIR_MMA

// (a & mask) | magic in one LOP3. Written as C++, with both constants
// immediates, it compiled to two (a LOP3 takes one immediate): a quarter of
// the int4 decode's instructions (SASS of the gemv, H100).
template <uint32_t kMask>
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t magic) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "n"(kMask), "r"(magic));
  return d;
}

template <class T>
__device__ __forceinline__ uint32_t sub2(uint32_t a, uint32_t b) {
  using T2 = typename Pair<T>::T2;
  return as_u32(__hsub2(from_u32<T2>(a), from_u32<T2>(b)));
}
template <class T>
__device__ __forceinline__ uint32_t fma2(uint32_t a, uint32_t b, uint32_t c) {
  using T2 = typename Pair<T>::T2;
  return as_u32(__hfma2(from_u32<T2>(a), from_u32<T2>(b), from_u32<T2>(c)));
}
template <class T>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t b) {
  using T2 = typename Pair<T>::T2;
  return as_u32(__hmul2(from_u32<T2>(a), from_u32<T2>(b)));
}

// The 2:4 GEMVs' end: each warp of W summed a run of K into acc (NT tiles x MT
// groups of 8 activation rows, the mma's 4 accumulators a lane); warp 0 gets
// the block's sums, in warp order, and true; the other warps false.
template <int W, int NT, int MT>
__device__ __forceinline__ bool sum_over_warps(float (&acc)[NT][MT][4]) {
  __shared__ float part[W][NT][MT][4][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) part[warp][t][j][i][lane] = acc[t][j][i];
  __syncthreads();
  if (warp != 0) return false;
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < W; ++w) sum += part[w][t][j][i][lane];
        acc[t][j][i] = sum;
      }
  return true;
}

// Then warp 0 hands each sum inside N x M to f(n, m, sum): accumulator i of
// lane (g, q) is weight row g + 8 (i / 2) of its tile, activation row
// 2 q + i % 2 of its group of 8 (the mma's C layout); tiles from tile0.
template <int NT, int MT, class F>
__device__ __forceinline__ void for_each_output(const float (&acc)[NT][MT][4], int64_t tile0, int64_t N, int64_t M,
                                                F&& f) {
  const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t n = (tile0 + t) * 16 + g + 8 * (i / 2), m = 8 * j + 2 * q + i % 2;
        if (n < N && m < M) f(n, m, acc[t][j][i]);
      }
}

// Weight codes are read once: stream them past L1.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
