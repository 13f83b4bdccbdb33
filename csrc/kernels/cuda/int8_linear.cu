// int8 x int8 linear kernels (see int8_linear.cuh for the math).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cublaslt_gemm.cuh"
#include "int8_linear.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

constexpr int kWarps = 8;  // output columns per CTA of the dp4a kernel
constexpr int kRows = 8;   // activation rows per pass over a weight row

// One warp per output column; each lane takes 16 codes per step (kVec) or
// one (any K, any alignment). The zero-point term uses the column's code sum,
// accumulated alongside.
template <class T, bool kVec>
__global__ void __launch_bounds__(kWarps * 32) int8_dp4a_kernel(Int8LinearArgs<T> p, int64_t m0) {
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= p.N) return;
  m0 += int64_t(blockIdx.y) * kRows;
  const int rows = p.M - m0 < kRows ? int(p.M - m0) : kRows;
  const int8_t* wr = p.w + n * p.K;
  int32_t acc[kRows] = {};
  int32_t wsum = 0;
  if constexpr (kVec) {
    for (int64_t k = int64_t(lane) * 16; k < p.K; k += 32 * 16) {
      const int4 wv = *reinterpret_cast<const int4*>(wr + k);
      wsum = __dp4a(wv.x, 0x01010101, wsum);
      wsum = __dp4a(wv.y, 0x01010101, wsum);
      wsum = __dp4a(wv.z, 0x01010101, wsum);
      wsum = __dp4a(wv.w, 0x01010101, wsum);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (r < rows) {
          const int4 av = *reinterpret_cast<const int4*>(p.a + (m0 + r) * p.K + k);
          acc[r] = __dp4a(av.x, wv.x, acc[r]);
          acc[r] = __dp4a(av.y, wv.y, acc[r]);
          acc[r] = __dp4a(av.z, wv.z, acc[r]);
          acc[r] = __dp4a(av.w, wv.w, acc[r]);
        }
      }
    }
  } else {
    for (int64_t k = lane; k < p.K; k += 32) {
      const int32_t wk = wr[k];
      wsum += wk;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (r < rows) acc[r] += int32_t(p.a[(m0 + r) * p.K + k]) * wk;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    wsum += __shfl_xor_sync(0xffffffffu, wsum, o);
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
  }
  if (lane != 0) return;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r < rows) {
      const int64_t m = m0 + r;
      const int32_t a = p.a_zp ? acc[r] - int32_t(p.a_zp[m]) * wsum : acc[r];
      p.out[m * p.N + n] = int8_epilogue(p, p.a_scale[m], n, a);
    }
  }
}

// blockIdx.y strides over rows, the x blocks and threads over a row's
// kVec-column pieces (kVec = 4: 16-byte loads of the sums, cols % 4 == 0).
// No index division: a 64-bit one per piece held the epilogue at 1.8 TB/s
// (H100, M = 2048, N = 14336: 96 us for the int32 sums and bf16 outputs).
template <class T, int kVec>
__global__ void epilogue_kernel(Int8LinearArgs<T> p, const int32_t* acc, int64_t n0, int64_t cols) {
  const int64_t pieces = cols / kVec;
  for (int64_t m = blockIdx.y; m < p.M; m += gridDim.y) {
    const float as = p.a_scale[m];
    const int32_t az = p.a_zp ? int32_t(p.a_zp[m]) : 0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < pieces; i += int64_t(gridDim.x) * blockDim.x) {
      const int64_t j = i * kVec;
      int32_t v[kVec];
      if constexpr (kVec == 4) {
        const int4 a4 = __ldg(reinterpret_cast<const int4*>(acc + m * cols + j));
        v[0] = a4.x, v[1] = a4.y, v[2] = a4.z, v[3] = a4.w;
      } else {
        v[0] = acc[m * cols + j];
      }
      T o[kVec];
#pragma unroll
      for (int t = 0; t < kVec; ++t) {
        const int64_t n = n0 + j + t;
        const int32_t a = p.a_zp ? v[t] - az * p.w_sum[n] : v[t];
        o[t] = int8_epilogue(p, as, n, a);
      }
      T* dst = p.out + m * p.N + n0 + j;
      if constexpr (kVec == 4) {
        if ((reinterpret_cast<uintptr_t>(dst) & 7) == 0) {
          *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(o);
          continue;
        }
      }
#pragma unroll
      for (int t = 0; t < kVec; ++t) dst[t] = o[t];
    }
  }
}

__global__ void row_sums_kernel(const int8_t* w, int64_t N, int64_t K, int32_t* sums) {
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  int32_t s = 0;
  for (int64_t k = lane; k < K; k += 32) s += w[n * K + k];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) sums[n] = s;
}

}  // namespace

template <class T>
cudaError_t int8_linear_dp4a(const Int8LinearArgs<T>& p, cudaStream_t stream) {
  if (p.M == 0 || p.N == 0) return cudaSuccess;
  const bool vec = p.K % 16 == 0 && reinterpret_cast<uintptr_t>(p.a) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.w) % 16 == 0;
  const unsigned cols = unsigned((p.N + kWarps - 1) / kWarps);
  // grid.y is limited to 65535 row groups per launch.
  const int64_t rows_per_launch = int64_t(65535) * kRows;
  for (int64_t m0 = 0; m0 < p.M; m0 += rows_per_launch) {
    const dim3 grid(cols, unsigned((std::min(rows_per_launch, p.M - m0) + kRows - 1) / kRows));
    if (vec)
      int8_dp4a_kernel<T, true><<<grid, kWarps * 32, 0, stream>>>(p, m0);
    else
      int8_dp4a_kernel<T, false><<<grid, kWarps * 32, 0, stream>>>(p, m0);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cublasStatus_t int8_gemm_s32(cublasLtHandle_t handle, const int8_t* a, const int8_t* w, int32_t* c, int64_t M,
                             int64_t N, int64_t K, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  TnGemm g(CUBLAS_COMPUTE_32I, CUDA_R_32I);
  const int32_t alpha = 1, beta = 0;
  return g.run(handle, CUDA_R_8I, w, CUDA_R_8I, a, CUDA_R_32I, c, M, N, K, &alpha, &beta, workspace, workspace_bytes,
               stream);
}

template <class T>
cudaError_t int8_linear_epilogue(const Int8LinearArgs<T>& p, const int32_t* acc, int64_t n0, int64_t cols,
                                 cudaStream_t stream) {
  const int64_t total = p.M * cols;
  if (total == 0) return cudaSuccess;
  if ((p.a_zp && !p.w_sum) || n0 < 0 || n0 + cols > p.N) return cudaErrorInvalidValue;
  const bool vec = cols % 4 == 0 && reinterpret_cast<uintptr_t>(acc) % 16 == 0;
  const int64_t pieces = vec ? cols / 4 : cols;
  const int64_t gx = std::min<int64_t>((pieces + 255) / 256, 64);
  const dim3 grid(unsigned(gx), unsigned(std::min<int64_t>(p.M, std::max<int64_t>(1, 16384 / gx))));
  if (vec)
    epilogue_kernel<T, 4><<<grid, 256, 0, stream>>>(p, acc, n0, cols);
  else
    epilogue_kernel<T, 1><<<grid, 256, 0, stream>>>(p, acc, n0, cols);
  return cudaGetLastError();
}

cudaError_t int8_row_sums(const int8_t* w, int64_t N, int64_t K, int32_t* sums, cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  row_sums_kernel<<<unsigned((N + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(w, N, K, sums);
  return cudaGetLastError();
}

template cudaError_t int8_linear_dp4a<__nv_bfloat16>(const Int8LinearArgs<__nv_bfloat16>&, cudaStream_t);
template cudaError_t int8_linear_dp4a<__half>(const Int8LinearArgs<__half>&, cudaStream_t);
template cudaError_t int8_linear_epilogue<__nv_bfloat16>(const Int8LinearArgs<__nv_bfloat16>&, const int32_t*,
                                                         int64_t, int64_t, cudaStream_t);
template cudaError_t int8_linear_epilogue<__half>(const Int8LinearArgs<__half>&, const int32_t*, int64_t, int64_t,
                                                  cudaStream_t);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
