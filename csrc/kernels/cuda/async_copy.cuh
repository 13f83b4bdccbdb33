// cp.async: 16 bytes global -> shared without registers (zeros when bytes =
// 0), in commit groups waited on by count. Shared by the kernels that stream
// their operands through shared-memory rings.
#pragma once

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// L2 only by default. kL1: through L1 instead, for data every warp reads (the
// gemv's activations: through L2 only, every SM requested the same few L2
// lines and it ran 3-10x slower, H200). The memory clobbers keep shared-memory
// reads and writes on their side.
template <bool kL1 = false>
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  if constexpr (kL1)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
  else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
