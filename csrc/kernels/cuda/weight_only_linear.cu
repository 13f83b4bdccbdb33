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

__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Eight activations of row xr from k (16 bytes: one vector load when aligned).
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

// One warp per output column n. Each lane takes 4 packed bytes (8 codes,
// inside one group since groups are multiples of 32) per step, so a warp's
// weight load covers 128 contiguous bytes and its activation load 512
// contiguous bytes (both coalesced); kUnroll steps are loaded before any is
// used, to keep several loads in flight. The per-group terms use sum x*q and
// sum x: (q - 8)*s + z = q*s + (z - 8s).
constexpr int kUnroll = 4;

template <class T, int MB, bool kVec>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    int4_wo_kernel(const T* __restrict__ x, int64_t ldx, const uint8_t* __restrict__ codes,
                   const T* __restrict__ scale, const T* __restrict__ zero, int64_t M, int64_t N, int64_t K,
                   int64_t group_size, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t m0 = int64_t(blockIdx.y) * MB;
  if (n >= N) return;
  const int rows = int(M - m0 < MB ? M - m0 : MB);
  const int64_t row_words = K / 8, groups = K / group_size;
  const uint32_t* wrow = reinterpret_cast<const uint32_t*>(codes) + n * row_words;
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0.0f;
  for (int64_t base = 0; base < row_words; base += 32 * kUnroll) {
    uint32_t w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * 32 + lane;
      w[u] = i < row_words ? __ldg(wrow + i) : 0u;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * 32 + lane;
      if (i >= row_words) break;
      const int64_t k0 = 8 * i, g = k0 / group_size;
      const float s = to_f32(scale[n * groups + g]);
      const float off = to_f32(zero[n * groups + g]) - 8.0f * s;
      float q[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) q[j] = float((w[u] >> (4 * j)) & 15u);
#pragma unroll
      for (int r = 0; r < MB; ++r) {
        if (r < rows) {
          float xv[8];
          load8<T, kVec>(x + (m0 + r) * ldx + k0, xv);
          float d = 0.0f, xs = 0.0f;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            d = fmaf(xv[j], q[j], d);
            xs += xv[j];
          }
          acc[r] = fmaf(s, d, fmaf(off, xs, acc[r]));
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && r < rows) out[(m0 + r) * N + n] = from_f32<T>(v);
  }
}

template <class T, int MB>
cudaError_t launch(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero, int64_t M, int64_t N,
                   int64_t K, int64_t group_size, T* out, cudaStream_t stream) {
  const dim3 grid(unsigned((N + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned((M + MB - 1) / MB));
  // 16-byte activation loads need 16-byte aligned rows.
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && ldx % 8 == 0;
  if (vec)
    int4_wo_kernel<T, MB, true><<<grid, kWarpsPerBlock * 32, 0, stream>>>(x, ldx, codes, scale, zero, M, N, K,
                                                                          group_size, out);
  else
    int4_wo_kernel<T, MB, false><<<grid, kWarpsPerBlock * 32, 0, stream>>>(x, ldx, codes, scale, zero, M, N, K,
                                                                           group_size, out);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  if (K % 32 != 0 || group_size % 32 != 0 || K % group_size != 0) return cudaErrorInvalidValue;
  // Codes are read as 32-bit words.
  if (reinterpret_cast<uintptr_t>(codes) % 4 != 0) return cudaErrorMisalignedAddress;
  if (M == 1) return launch<T, 1>(x, ldx, codes, scale, zero, M, N, K, group_size, out, stream);
  if (M <= 2) return launch<T, 2>(x, ldx, codes, scale, zero, M, N, K, group_size, out, stream);
  if (M <= 4) return launch<T, 4>(x, ldx, codes, scale, zero, M, N, K, group_size, out, stream);
  return launch<T, kMaxRowsPerPass>(x, ldx, codes, scale, zero, M, N, K, group_size, out, stream);
}

template cudaError_t int4_weight_only_linear<__nv_bfloat16>(const __nv_bfloat16*, int64_t, const uint8_t*,
                                                            const __nv_bfloat16*, const __nv_bfloat16*, int64_t,
                                                            int64_t, int64_t, int64_t, __nv_bfloat16*, cudaStream_t);
template cudaError_t int4_weight_only_linear<__half>(const __half*, int64_t, const uint8_t*, const __half*,
                                                     const __half*, int64_t, int64_t, int64_t, int64_t, __half*,
                                                     cudaStream_t);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
