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

// One warp per output column n: each lane takes 16 packed bytes (32 codes,
// always inside one group since groups are multiples of 32) per step, so a
// warp reads 512 contiguous bytes per step, fully coalesced. The per-group
// terms use sum_k x*q and sum_k x: (q - 8)*s + z = q*s + (z - 8s).
template <class T, int MB>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    int4_wo_kernel(const T* __restrict__ x, int64_t ldx, const uint8_t* __restrict__ codes,
                   const T* __restrict__ scale, const T* __restrict__ zero, int64_t M, int64_t N, int64_t K,
                   int64_t group_size, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t m0 = int64_t(blockIdx.y) * MB;
  if (n >= N) return;
  const int rows = int(M - m0 < MB ? M - m0 : MB);
  const int64_t row_bytes = K / 2, groups = K / group_size;
  const uint8_t* wrow = codes + n * row_bytes;
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0.0f;
  for (int64_t b = int64_t(lane) * 16; b < row_bytes; b += 32 * 16) {
    const uint4 w = __ldg(reinterpret_cast<const uint4*>(wrow + b));
    const int64_t k0 = 2 * b, g = k0 / group_size;
    const float s = to_f32(scale[n * groups + g]);
    const float off = to_f32(zero[n * groups + g]) - 8.0f * s;
    float q[32];
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) q[i * 8 + j] = float((words[i] >> (4 * j)) & 15u);
#pragma unroll
    for (int r = 0; r < MB; ++r) {
      if (r < rows) {
        const T* xr = x + (m0 + r) * ldx + k0;
        float d = 0.0f, xs = 0.0f;
#pragma unroll
        for (int i = 0; i < 32; ++i) {
          const float xv = to_f32(xr[i]);
          d = fmaf(xv, q[i], d);
          xs += xv;
        }
        acc[r] = fmaf(s, d, fmaf(off, xs, acc[r]));
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
  int4_wo_kernel<T, MB><<<grid, kWarpsPerBlock * 32, 0, stream>>>(x, ldx, codes, scale, zero, M, N, K, group_size,
                                                                   out);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  if (K % 32 != 0 || group_size % 32 != 0 || K % group_size != 0) return cudaErrorInvalidValue;
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
