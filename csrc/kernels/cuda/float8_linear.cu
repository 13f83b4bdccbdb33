// CUDA kernels of the float8 x float8 linear. Per-element math comes from the
// CPU kernels (kernels/cpu/quant_primitives.h, TAO_HD); compiled with
// --fmad=false like the other primitives.
#include <algorithm>

#include "cublaslt_gemm.cuh"
#include "float8_codes.cuh"
#include "float8_linear.cuh"
#include "row_chunks.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;
static_assert(kThreads == kRowThreads, "block_max reduces over the row quantizer's blocks too");
constexpr int64_t kTensorBlocks = 1024;

// |v| as ordered bits: integer max over them is the float max, and NaN
// (above every finite value and inf) wins, so it reaches the scale.
__device__ inline uint32_t abs_bits(float v) { return __float_as_uint(v) & 0x7fffffffu; }

__device__ uint32_t block_max(uint32_t v) {
  __shared__ uint32_t s[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) s[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kThreads / 32 ? s[threadIdx.x] : 0u;
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) s[0] = v;
  }
  __syncthreads();
  const uint32_t r = s[0];
  __syncthreads();
  return r;
}

// choose_qparams_affine_float8's scale for max|x| = amax (float32 result).
template <class T, Float8Format F>
__device__ inline float scale_from_amax(uint32_t amax_bits) {
  const float a = __uint_as_float(amax_bits);
  return float8_scale_from_minmax<T, float>(-a, a, 1.0f / Float8Traits<F>::kMax, __FLT_EPSILON__);
}

// One block per row: its max, its scale, then its codes (the row is re-read
// from L1/L2): rows too long for registers or not 16-byte aligned.
template <class T, Float8Format F>
__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const T* x, int64_t ldx, int64_t M, int64_t K, uint8_t* q, float* scale) {
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const T* row = x + m * ldx;
    uint32_t a = 0;
    for (int64_t k = threadIdx.x; k < K; k += kThreads) a = max(a, abs_bits(to_float(row[k])));
    const float s = scale_from_amax<T, F>(block_max(a));
    if (threadIdx.x == 0) scale[m] = s;
    const float r = 1.0f / s;
    for (int64_t k = threadIdx.x; k < K; k += kThreads) q[m * K + k] = float8_code<F>(to_float(row[k]), r);
  }
}

// The same with the row in registers (RowChunks) between its max and its codes.
template <class T, Float8Format F, int C>
__global__ void __launch_bounds__(kRowThreads)
    quantize_rows_in_registers(const T* x, int64_t ldx, int64_t M, int64_t K, uint8_t* q, float* scale) {
  const int64_t chunks = K / RowChunks<T, C>::E;
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    RowChunks<T, C> row;
    row.load(x + m * ldx, chunks);
    uint32_t a = 0;  // the zeros past the row's end leave the max as it is
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int e = 0; e < RowChunks<T, C>::E; ++e) a = max(a, abs_bits(row.at(c, e)));
    const float s = scale_from_amax<T, F>(block_max(a));
    if (threadIdx.x == 0) scale[m] = s;
    const float r = 1.0f / s;
    row.store_codes(q + m * K, chunks, [r](float u, float v) { return float8_code_pair<F>(u, v, r); });
  }
}

// Per tensor: blockIdx.y strides over rows, the x blocks and threads over a
// row's 16-byte chunks (kVec: rows aligned as row_chunks_aligned says) or elements.
// (Four rows' loads in flight per thread instead of one measured the same on
// an H100: 10.1 against 9.9 us for 2048 x 4096 bfloat16.)
template <class T, bool kVec>
__global__ void __launch_bounds__(kThreads) amax_kernel(const T* x, int64_t ldx, int64_t M, int64_t K, uint32_t* amax) {
  constexpr int E = kVec ? 16 / int(sizeof(T)) : 1;
  const int64_t units = K / E;
  uint32_t a = 0;
  for (int64_t m = blockIdx.y; m < M; m += gridDim.y)
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < units; i += int64_t(gridDim.x) * kThreads) {
      if constexpr (kVec) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(x + m * ldx) + i);
#pragma unroll
        for (int e = 0; e < E; ++e) a = max(a, abs_bits(to_float(reinterpret_cast<const T*>(&v)[e])));
      } else {
        a = max(a, abs_bits(to_float(x[m * ldx + i])));
      }
    }
  a = block_max(a);
  if (threadIdx.x == 0 && a != 0) atomicMax(amax, a);
}

// One scale for the tensor: the static one, or the one from the amax pass.
template <class T, Float8Format F, bool kVec>
__global__ void __launch_bounds__(kThreads)
    quantize_tensor_kernel(const T* x, int64_t ldx, int64_t M, int64_t K, const float* static_scale,
                           const uint32_t* amax, uint8_t* q, float* scale) {
  const float s = static_scale ? *static_scale : scale_from_amax<T, F>(*amax);
  if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *scale = s;
  const float r = 1.0f / s;
  constexpr int E = kVec ? RowChunks<T, 1>::E : 1;
  const int64_t units = K / E;
  for (int64_t m = blockIdx.y; m < M; m += gridDim.y)
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < units; i += int64_t(gridDim.x) * kThreads) {
      if constexpr (kVec) {
        RowChunks<T, 1>::store_chunk(__ldg(reinterpret_cast<const uint4*>(x + m * ldx) + i), q + m * K + E * i,
                                     [r](float u, float v) { return float8_code_pair<F>(u, v, r); });
      } else {
        q[m * K + i] = float8_code<F>(to_float(x[m * ldx + i]), r);
      }
    }
}

template <class T>
__global__ void epilogue_kernel(const float* acc, const float* xs, int64_t xs_stride, const float* ws,
                                int64_t ws_stride, const T* bias, int64_t M, int64_t N, T* out) {
  const int64_t total = M * N;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < total; i += int64_t(gridDim.x) * kThreads) {
    const int64_t m = i / N, n = i - m * N;
    out[i] = from_float<T>(acc[i] * xs[m * xs_stride] * ws[n * ws_stride] + (bias ? to_float(bias[n]) : 0.0f));
  }
}

template <Float8Format F>
__global__ void decode_kernel(const uint8_t* c, int64_t n, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    out[i] = float8_to_float<F>(c[i]);
}

int grid_for(int64_t work) { return int(std::min<int64_t>((work + kThreads - 1) / kThreads, 65535 * 4)); }

}  // namespace

cudaError_t quantize_activations_float8(const void* x, DType in_t, int64_t ldx, int64_t M, int64_t K, bool per_row,
                                        Float8Format fmt, const float* static_scale, uint8_t* q, float* scale,
                                        uint32_t* amax, cudaStream_t stream) {
  if (M == 0 || K == 0) return cudaSuccess;
  return with_float(in_t, [&](auto t) {
    using T = decltype(t);
    const T* xp = static_cast<const T*>(x);
    return with_float8(fmt, [&](auto f) {
      constexpr Float8Format F = decltype(f)::value;
      const bool vec = row_chunks_aligned<T>(xp, ldx, K, q);
      if (per_row && !static_scale) {
        const int grid = int(std::min<int64_t>(M, 65535 * 8));
        const bool in_registers = vec && with_row_chunks(K / RowChunks<T, 1>::E, [&](auto c) {
          quantize_rows_in_registers<T, F, decltype(c)::value><<<grid, kRowThreads, 0, stream>>>(xp, ldx, M, K, q, scale);
        });
        if (!in_registers) quantize_rows_kernel<T, F><<<grid, kThreads, 0, stream>>>(xp, ldx, M, K, q, scale);
        return cudaGetLastError();
      }
      // At most kTensorBlocks blocks, each striding over many rows: one
      // atomicMax per block, where a block per (row, 256 columns) made
      // M * K / 256 atomics on one word serialise (250 us at M = 2048, K = 14336).
      const int64_t units = vec ? K / RowChunks<T, 1>::E : K;
      const int64_t gx = std::min<int64_t>((units + kThreads - 1) / kThreads, 64);
      const dim3 grid(unsigned(gx), unsigned(std::min<int64_t>(M, std::max<int64_t>(1, kTensorBlocks / gx))));
      if (!static_scale) {
        cudaError_t err = cudaMemsetAsync(amax, 0, sizeof(uint32_t), stream);
        if (err != cudaSuccess) return err;
        if (vec)
          amax_kernel<T, true><<<grid, kThreads, 0, stream>>>(xp, ldx, M, K, amax);
        else
          amax_kernel<T, false><<<grid, kThreads, 0, stream>>>(xp, ldx, M, K, amax);
        err = cudaGetLastError();
        if (err != cudaSuccess) return err;
      }
      if (vec)
        quantize_tensor_kernel<T, F, true><<<grid, kThreads, 0, stream>>>(xp, ldx, M, K, static_scale, amax, q, scale);
      else
        quantize_tensor_kernel<T, F, false><<<grid, kThreads, 0, stream>>>(xp, ldx, M, K, static_scale, amax, q, scale);
      return cudaGetLastError();
    });
  });
}

cublasStatus_t float8_gemm(cublasLtHandle_t handle, const Float8GemmArgs& g, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  // cuBLAS's A is the weight (TnGemm), so its scale is ws and B's is xs.
  TnGemm lt(CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (g.ws) lt.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.ws, sizeof(g.ws));
  if (g.xs) lt.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.xs, sizeof(g.xs));
  if (g.rowwise) {
    const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    lt.set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode));
    lt.set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode));
  }
  if (g.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const int32_t bias_type = g.out_type;
    lt.set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
    lt.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias));
    lt.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
  }
  if (g.fast_accum) {
    const int8_t fast = 1;
    lt.set(CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast));
  }
  const float alpha = 1.0f, beta = 0.0f;
  return lt.run(handle, g.w_type, g.w, g.x_type, g.x, g.out_type, g.out, g.M, g.N, g.K, &alpha, &beta, workspace,
                workspace_bytes, stream);
}

cudaError_t float8_linear_epilogue(const float* acc, const float* xs, int64_t xs_stride, const float* ws,
                                   int64_t ws_stride, const void* bias, DType out_t, int64_t M, int64_t N, void* out,
                                   cudaStream_t stream) {
  if (M * N == 0) return cudaSuccess;
  return with_float(out_t, [&](auto t) {
    using T = decltype(t);
    epilogue_kernel<T><<<grid_for(M * N), kThreads, 0, stream>>>(acc, xs, xs_stride, ws, ws_stride,
                                                                 static_cast<const T*>(bias), M, N,
                                                                 static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t float8_to_float32(const uint8_t* codes, int64_t n, Float8Format fmt, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return with_float8(fmt, [&](auto f) {
    decode_kernel<decltype(f)::value><<<grid_for(n), kThreads, 0, stream>>>(codes, n, out);
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
