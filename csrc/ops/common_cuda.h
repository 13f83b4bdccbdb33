// Helpers shared by the CUDA wrappers (linear_cuda.cpp, quant_primitives_cuda.cpp).
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include "../kernels/cuda/quant_primitives.cuh"

namespace torchao_cpp {
namespace ops {

inline void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// The torch-free kernels' name for a dtype.
inline kernels::cuda::DType kernel_dtype(at::ScalarType t) {
  using D = kernels::cuda::DType;
  switch (t) {
    case at::kFloat:
      return D::Float32;
    case at::kBFloat16:
      return D::BFloat16;
    case at::kHalf:
      return D::Float16;
    case at::kByte:
      return D::UInt8;
    case at::kChar:
      return D::Int8;
    case at::kShort:
      return D::Int16;
    case at::kInt:
      return D::Int32;
    default:
      TORCH_CHECK_TYPE(false, "no CUDA kernel reads dtype ", t);
  }
}

}  // namespace ops
}  // namespace torchao_cpp
