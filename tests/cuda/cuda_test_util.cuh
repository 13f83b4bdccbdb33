// What the torch-free CUDA kernel tests share: a status check that stops the
// test binary with the failing call's place, and a device copy of a host vector.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#define TAO_CHECK_CUDA(x)                                                                 \
  do {                                                                                    \
    const cudaError_t err_ = (x);                                                         \
    if (err_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(err_)); \
      std::exit(2);                                                                       \
    }                                                                                     \
  } while (0)

// n elements of T on the device (16 bytes of slack past the end), or a copy of h.
template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { TAO_CHECK_CUDA(cudaMalloc(&p, n * sizeof(T) + 16)); }
  explicit DeviceBuffer(const std::vector<T>& h) : DeviceBuffer(h.size()) {
    TAO_CHECK_CUDA(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(p); }
  std::vector<T> host(size_t n) const {
    std::vector<T> h(n);
    TAO_CHECK_CUDA(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

// Microseconds per call of call(i % copies) (a cudaError_t-returning launch; copies of the weight taken in
// turn so that it comes from HBM): CUDA events around 400 calls after 20 of warm-up.
template <class Call>
double time_calls_us(Call&& call, int copies) {
  for (int i = 0; i < 20; ++i) TAO_CHECK_CUDA(call(i % copies));
  cudaEvent_t e0, e1;
  TAO_CHECK_CUDA(cudaEventCreate(&e0));
  TAO_CHECK_CUDA(cudaEventCreate(&e1));
  const int iters = 400;
  TAO_CHECK_CUDA(cudaEventRecord(e0));
  for (int i = 0; i < iters; ++i) call(i % copies);
  TAO_CHECK_CUDA(cudaEventRecord(e1));
  TAO_CHECK_CUDA(cudaEventSynchronize(e1));
  float ms = 0;
  TAO_CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 1e3 * ms / iters;
}
