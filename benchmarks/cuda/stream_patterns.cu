// How fast a weight streams from DRAM in the access pattern of the weight-only
// gemv (weight_only_linear.cu), without its arithmetic: an N x K byte matrix
// read through a per-warp cp.async ring, 16-row tiles a block, the block's
// warps splitting K, each warp step taking W bytes of each of the 16 rows
// (row-major; "contig": the same steps stored contiguously). The consumer
// only xors the 16-byte words it reads back (keeps the loads live).
// Build and run (GPU machine):
//   nvcc -std=c++17 -arch=sm_90a -O3 --expt-relaxed-constexpr benchmarks/cuda/stream_patterns.cu -o /tmp/stream && /tmp/stream
// Results: benchmarks/results/cuda_stream_patterns_h100.txt.
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdint>
#include <vector>
#include <algorithm>
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("CUDA %s line %d\n", cudaGetErrorString(e_), __LINE__); return 1; } } while (0)
__device__ __forceinline__ void cpa(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int P> __device__ __forceinline__ void waitg() { asm volatile("cp.async.wait_group %0;\n" ::"n"(P) : "memory"); }

template <int W, bool CONTIG, int D>
__global__ void stream_kernel(const uint8_t* w, int64_t N, int64_t K, int chunk, uint4* out) {
  constexpr int L = W / 32;  // 16-byte loads per lane per step (16 rows x W bytes / 512)
  extern __shared__ uint4 ring[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t tile = blockIdx.x, kbs = K / W;
  const int64_t kb0 = int64_t(warp) * chunk;
  const int steps = int(std::min<int64_t>(chunk, std::max<int64_t>(0, kbs - kb0)));
  uint4* mine = ring + int64_t(warp) * (D + 1) * L * 32;
  const uint32_t mine_s = uint32_t(__cvta_generic_to_shared(mine));
  auto src = [&](int j, int64_t kb) -> const uint8_t* {
    const int e = (j * 32 + lane) * 16;
    if (CONTIG) return w + (tile * kbs + kb) * 16 * W + e;
    const int r = e / W, c = e % W;
    return w + (tile * 16 + r) * K + kb * W + c;
  };
  auto issue = [&](int slot, int i) {
    if (i < steps)
#pragma unroll
      for (int j = 0; j < L; ++j) cpa(mine_s + ((slot * L + j) * 32 + lane) * 16, src(j, kb0 + i));
    commit();
  };
  uint4 acc = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int u = 0; u < D; ++u) issue(u, u);
  for (int i = 0; i < steps; ++i) {
    const int u = i % (D + 1);
    issue((i + D) % (D + 1), i + D);
    waitg<D>();
#pragma unroll
    for (int j = 0; j < L; ++j) {
      const uint4 v = mine[(u * L + j) * 32 + lane];
      acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
  }
  out[int64_t(blockIdx.x) * blockDim.x + threadIdx.x] = acc;
}

__global__ void linear_read(const uint4* w, int64_t n16, uint4* out) {
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n16; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(w + i);
    acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
  }
  out[int64_t(blockIdx.x) * blockDim.x + threadIdx.x] = acc;
}

template <int W, bool CONTIG, int D>
int run(const char* name, int64_t K, int64_t N, int nw, uint8_t* buf, int64_t copies, uint4* out) {
  const int64_t bytes = N * K, kbs = K / W;
  if (K % W) return 0;
  const int chunk = int((kbs + nw - 1) / nw);
  const int smem = nw * (D + 1) * 16 * W;
  if (smem > 227 * 1024) return 0;
  auto kern = stream_kernel<W, CONTIG, D>;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int per_sm = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, nw * 32, smem));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0); cudaEventCreate(&e1);
  for (int i = 0; i < 10; ++i) kern<<<unsigned(N / 16), nw * 32, smem>>>(buf + (i % copies) * bytes, N, K, chunk, out);
  CK(cudaGetLastError());
  const int iters = 100;
  cudaEventRecord(e0);
  for (int i = 0; i < iters; ++i) kern<<<unsigned(N / 16), nw * 32, smem>>>(buf + (i % copies) * bytes, N, K, chunk, out);
  cudaEventRecord(e1);
  CK(cudaEventSynchronize(e1));
  float ms; cudaEventElapsedTime(&ms, e0, e1);
  const double us = ms * 1e3 / iters;
  printf("K=%5ld N=%5ld %-10s W=%3d D=%d warps=%2d blocks/SM=%d steps/warp=%2d: %6.1f us  %5.0f GB/s\n", long(K), long(N), name, W, D,
         nw, per_sm, chunk, us, bytes / us / 1e3);
  return 0;
}

int main() {
  const int64_t maxbytes = 14336ll * 4096, copies = 8;
  uint8_t* buf; uint4* out;
  CK(cudaMalloc(&buf, maxbytes * copies));
  CK(cudaMemset(buf, 0x37, maxbytes * copies));
  CK(cudaMalloc(&out, 64 << 20));
  {  // plain linear read
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    for (int64_t bytes : {int64_t(4096) * 4096, maxbytes}) {
      for (int i = 0; i < 5; ++i) linear_read<<<132 * 8, 256>>>((const uint4*)(buf + (i % copies) * bytes), bytes / 16, out);
      cudaEventRecord(e0);
      for (int i = 0; i < 100; ++i) linear_read<<<132 * 8, 256>>>((const uint4*)(buf + (i % copies) * bytes), bytes / 16, out);
      cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
      float ms; cudaEventElapsedTime(&ms, e0, e1);
      printf("linear read %ld bytes: %.1f us %.0f GB/s\n", long(bytes), ms * 10, bytes / (ms * 10) / 1e3);
    }
  }
  const int64_t shapes[3][2] = {{4096, 4096}, {4096, 14336}, {14336, 4096}};
  for (auto& s : shapes) {
    const int64_t K = s[0], N = s[1];
    for (int nw : {4, 8, 16}) {
      run<64, false, 2>("rowmajor", K, N, nw, buf, copies, out);
      run<64, false, 3>("rowmajor", K, N, nw, buf, copies, out);
      run<128, false, 2>("rowmajor", K, N, nw, buf, copies, out);
      run<256, false, 2>("rowmajor", K, N, nw, buf, copies, out);
      run<512, false, 1>("rowmajor", K, N, nw, buf, copies, out);
      run<64, true, 2>("contig", K, N, nw, buf, copies, out);
      run<256, true, 2>("contig", K, N, nw, buf, copies, out);
    }
  }
  return 0;
}
