#include "weight_only_linear.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
// Activation rows handled per pass over a weight row: each weight chunk is
// loaded once and reused from registers for all of them.
constexpr int kMaxRowsPerPass = 8;
// 16-byte chunks each lane loads before using any, so that a warp keeps
// 2 KB of one weight row in flight (all of a 4096-wide int4 row).
constexpr int kUnroll = 4;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ uint32_t word(const uint4& c, int i) { return i == 0 ? c.x : i == 1 ? c.y : i == 2 ? c.z : c.w; }

// The codes of one 16-byte chunk as exact floats, without int-to-float
// conversions (a quarter-rate instruction): the code goes into the low
// mantissa bits of 2^23 and 2^23 is subtracted.
template <int Bits>
struct Chunk;
template <>
struct Chunk<4> {
  static constexpr int kCodes = 32;
  __device__ __forceinline__ static float code(const uint4& c, int j) {
    return __uint_as_float(((word(c, j / 8) >> (4 * (j % 8))) & 15u) | 0x4B000000u) - 8388608.0f;
  }
};
template <>
struct Chunk<8> {
  static constexpr int kCodes = 16;
  // int8: flipping the sign bit gives q + 128 as a byte; PRMT puts it under 2^23.
  __device__ __forceinline__ static float code(const uint4& c, int j) {
    return __uint_as_float(__byte_perm(word(c, j / 4) ^ 0x80808080u, 0x4B000000u, 0x7440u | unsigned(j % 4))) -
           8388736.0f;
  }
};

// Eight activations of row xr (16 bytes: one vector load when aligned).
template <class T, bool kVec>
__device__ __forceinline__ void load8(const T* xr, float* v) {
  if constexpr (kVec) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(xr));
    const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = to_f32(h[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = to_f32(xr[i]);
  }
}

// The group's W = q * s + off, from its scale and zero point.
template <class T>
__device__ __forceinline__ void group_affine(const WeightOnlyArgs<T>& a, float s, float z, float& off) {
  off = s * a.code_offset;
  if (a.domain == ZeroDomain::Int)
    off = s * (a.code_offset - z);
  else if (a.domain == ZeroDomain::Float)
    off = fmaf(s, a.code_offset - a.mid, z);
}

// One warp per output column n. Lane l takes 16-byte chunks l, l + 32, ...
// of the weight row (a chunk lies inside one group), so a warp's loads are
// 512 contiguous bytes. W = q*s + off per group, so each row's partial sum is
// s * sum(x*q) + off * sum(x).
template <class T, int Bits, int MB, bool kVec>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) wo_kernel(const WeightOnlyArgs<T> a, int64_t m_begin) {
  using C = Chunk<Bits>;
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t m0 = m_begin + int64_t(blockIdx.y) * MB;
  if (n >= a.N || m0 >= a.M) return;
  const int rows = int(a.M - m0 < MB ? a.M - m0 : MB);
  const int64_t chunks = a.K / C::kCodes, groups = a.K / a.group_size;
  const uint4* wrow = reinterpret_cast<const uint4*>(a.codes) + n * chunks;
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0.0f;
  for (int64_t base = 0; base < chunks; base += 32 * kUnroll) {
    // Codes, scales and zero points of all kUnroll chunks are requested
    // before any is used: one memory latency per kUnroll chunks, not three
    // dependent ones per chunk.
    uint4 w[kUnroll];
    float sc[kUnroll], zc[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * 32 + lane;
      const bool in = i < chunks;
      const int64_t g = n * groups + (in ? i * C::kCodes / a.group_size : 0);
      w[u] = in ? __ldg(wrow + i) : make_uint4(0u, 0u, 0u, 0u);
      sc[u] = to_f32(a.scale[g]);
      zc[u] = a.domain != ZeroDomain::None ? to_f32(a.zero[g]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * 32 + lane;
      if (i >= chunks) break;
      const int64_t k0 = i * C::kCodes;
      const float s = sc[u];
      float off;
      group_affine(a, s, zc[u], off);
      float d[MB], xs[MB];
#pragma unroll
      for (int r = 0; r < MB; ++r) d[r] = xs[r] = 0.0f;
#pragma unroll
      for (int j0 = 0; j0 < C::kCodes; j0 += 8) {
        float q[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) q[j] = C::code(w[u], j0 + j);
#pragma unroll
        for (int r = 0; r < MB; ++r) {
          if (r < rows) {
            float xv[8];
            load8<T, kVec>(a.x + (m0 + r) * a.ldx + k0 + j0, xv);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
              d[r] = fmaf(xv[j], q[j], d[r]);
              xs[r] += xv[j];
            }
          }
        }
      }
#pragma unroll
      for (int r = 0; r < MB; ++r) acc[r] = fmaf(s, d[r], fmaf(off, xs[r], acc[r]));
    }
  }
  const float b = a.bias ? to_f32(a.bias[n]) : 0.0f;
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && r < rows) a.out[(m0 + r) * a.N + n] = from_f32<T>(v + b);
  }
}

// One thread per 16-byte chunk of codes: W[n, k] rounded once to T.
template <class T, int Bits>
__global__ void dequantize_kernel(const WeightOnlyArgs<T> a, T* __restrict__ w) {
  using C = Chunk<Bits>;
  const int64_t chunks = a.K / C::kCodes, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.N * chunks) return;
  const int64_t n = i / chunks, k0 = (i % chunks) * C::kCodes;
  const int64_t g = n * (a.K / a.group_size) + k0 / a.group_size;
  const float s = to_f32(a.scale[g]);
  float off;
  group_affine(a, s, a.domain != ZeroDomain::None ? to_f32(a.zero[g]) : 0.0f, off);
  const uint4 c = __ldg(reinterpret_cast<const uint4*>(a.codes) + i);
  T v[C::kCodes];
#pragma unroll
  for (int j = 0; j < C::kCodes; ++j) v[j] = from_f32<T>(fmaf(C::code(c, j), s, off));
  uint4* dst = reinterpret_cast<uint4*>(w + n * a.K + k0);
#pragma unroll
  for (int j = 0; j < C::kCodes / 8; ++j) dst[j] = reinterpret_cast<const uint4*>(v)[j];
}

template <class T, int Bits, int MB>
cudaError_t launch(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  // 16-byte activation loads need 16-byte aligned rows.
  const bool vec = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 8 == 0;
  const int64_t passes = (a.M + MB - 1) / MB;
  for (int64_t p0 = 0; p0 < passes; p0 += kMaxGridY) {
    const dim3 grid(unsigned((a.N + kWarpsPerBlock - 1) / kWarpsPerBlock),
                    unsigned(passes - p0 < kMaxGridY ? passes - p0 : kMaxGridY));
    if (vec)
      wo_kernel<T, Bits, MB, true><<<grid, kWarpsPerBlock * 32, 0, stream>>>(a, p0 * MB);
    else
      wo_kernel<T, Bits, MB, false><<<grid, kWarpsPerBlock * 32, 0, stream>>>(a, p0 * MB);
  }
  return cudaGetLastError();
}

template <class T, int Bits>
cudaError_t launch_rows(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  if (a.M == 1) return launch<T, Bits, 1>(a, stream);
  if (a.M <= 2) return launch<T, Bits, 2>(a, stream);
  if (a.M <= 4) return launch<T, Bits, 4>(a, stream);
  return launch<T, Bits, kMaxRowsPerPass>(a, stream);
}

template <class T>
cudaError_t check_args(const WeightOnlyArgs<T>& a) {
  if (a.bits != 4 && a.bits != 8) return cudaErrorInvalidValue;
  const int64_t codes_per_chunk = 128 / a.bits;
  if (a.K <= 0 || a.K % codes_per_chunk != 0 || a.group_size <= 0 || a.group_size % codes_per_chunk != 0 ||
      a.K % a.group_size != 0 || a.M < 0 || a.N < 0)
    return cudaErrorInvalidValue;
  if (a.domain != ZeroDomain::None && a.zero == nullptr) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(a.codes) % 16 != 0) return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

}  // namespace

template <class T>
cudaError_t weight_only_linear(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  if (const cudaError_t e = check_args(a)) return e;
  if (a.M == 0 || a.N == 0) return cudaSuccess;
  return a.bits == 4 ? launch_rows<T, 4>(a, stream) : launch_rows<T, 8>(a, stream);
}

template <class T>
cudaError_t weight_only_dequantize(const WeightOnlyArgs<T>& a, T* w, cudaStream_t stream) {
  if (const cudaError_t e = check_args(a)) return e;
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0) return cudaErrorMisalignedAddress;
  const int64_t chunks = a.N * (a.K / (128 / a.bits));
  if (chunks == 0) return cudaSuccess;
  const unsigned blocks = unsigned((chunks + 255) / 256);
  if (a.bits == 4)
    dequantize_kernel<T, 4><<<blocks, 256, 0, stream>>>(a, w);
  else
    dequantize_kernel<T, 8><<<blocks, 256, 0, stream>>>(a, w);
  return cudaGetLastError();
}

template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream) {
  WeightOnlyArgs<T> a;
  a.x = x;
  a.ldx = ldx;
  a.codes = codes;
  a.bits = 4;
  a.scale = scale;
  a.zero = zero;
  a.domain = ZeroDomain::Float;
  a.mid = 8.0f;
  a.M = M;
  a.N = N;
  a.K = K;
  a.group_size = group_size;
  a.out = out;
  return weight_only_linear(a, stream);
}

#define TORCHAO_CPP_INSTANTIATE(T)                                                                            \
  template cudaError_t weight_only_linear<T>(const WeightOnlyArgs<T>&, cudaStream_t);                        \
  template cudaError_t weight_only_dequantize<T>(const WeightOnlyArgs<T>&, T*, cudaStream_t);                 \
  template cudaError_t int4_weight_only_linear<T>(const T*, int64_t, const uint8_t*, const T*, const T*, int64_t, \
                                                  int64_t, int64_t, int64_t, T*, cudaStream_t);
TORCHAO_CPP_INSTANTIATE(__nv_bfloat16)
TORCHAO_CPP_INSTANTIATE(__half)
#undef TORCHAO_CPP_INSTANTIATE

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
