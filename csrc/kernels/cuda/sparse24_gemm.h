// 2:4 sparse GEMMs on the sparse tensor cores, through cuSPARSELt (built
// only where its header and library are found: TORCHAO_CPP_HAVE_CUSPARSELT).
// Torch-free: the caller allocates every buffer (torch's caching allocator)
// and passes the stream; only sparselt_gemm_tune synchronises.
//
// The weight W (N x K, row-major, at most 2 nonzeros in each group of 4 along
// K) is compressed once into cuSPARSELt's opaque form; then
//   out (M x N, row-major) = a (M x K, row-major) * W^T
// with a and W of one type:
//   Int8: out int32, exact sums (as int8_gemm_s32);
//   BFloat16: out bfloat16, float32 accumulation.
// Plans are built once per (type, device, M, N, K) and cached for the
// process (their setup costs more than the GEMM).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

enum class SparseLtType { Int8, BFloat16 };

// Activation rows are padded to a multiple of this (cuSPARSELt refuses other
// dense operands); the caller zeroes the padding rows.
constexpr int64_t kSparseLtRowMultiple = 32;

// Status codes of the functions below: 0 on success, else cuSPARSELt's
// cusparseStatus_t value (sparselt_error_string names it).
const char* sparselt_error_string(int status);

// Bytes of W's compressed form and of the scratch buffer compressing needs, on
// the current device. Nonzero where cuSPARSELt refuses the shape.
int sparselt_compressed_size(SparseLtType t, int64_t N, int64_t K, size_t* bytes, size_t* scratch_bytes);

// Compresses W (device pointer) into `out` (bytes from sparselt_compressed_size).
int sparselt_compress(SparseLtType t, const void* w, int64_t N, int64_t K, void* out, void* scratch,
                      cudaStream_t stream);

// Workspace bytes of the GEMM for M rows (a multiple of kSparseLtRowMultiple);
// builds and caches its plan. Nonzero where cuSPARSELt refuses the shape.
int sparselt_gemm_workspace(SparseLtType t, int64_t M, int64_t N, int64_t K, size_t* bytes);

// Whether the plan of this shape has been tuned (below).
bool sparselt_gemm_tuned(SparseLtType t, int64_t M, int64_t N, int64_t K);

// Times cuSPARSELt's algorithms for the plan on these buffers and keeps the
// fastest (cusparseLtMatmulSearch: it synchronises, so never under CUDA-graph
// capture); once per plan. `workspace` must hold kSparseLtTuneWorkspace bytes,
// or the plan's workspace if larger; query the workspace again afterwards.
// Where the search itself fails, the plan is rebuilt with the default
// algorithm, still usable, and the result is kSparseLtSearchFailed - status
// (<= kSparseLtSearchFailed; sparselt_error_string names the status): the
// caller may warn and go on. Other nonzero results: the plan is unusable.
constexpr size_t kSparseLtTuneWorkspace = size_t(64) << 20;
constexpr int kSparseLtSearchFailed = -1000;
int sparselt_gemm_tune(SparseLtType t, const void* w_compressed, const void* a, void* out, int64_t M, int64_t N,
                       int64_t K, void* workspace, cudaStream_t stream);

// out = a * W^T for M rows (a multiple of kSparseLtRowMultiple), W compressed.
// Returns kSparseLtWorkspaceTooSmall, launching nothing, where the plan needs
// more than workspace_bytes (another thread's tuning may have grown it since
// the caller's query): query again and retry.
constexpr int kSparseLtWorkspaceTooSmall = -1;
int sparselt_gemm(SparseLtType t, const void* w_compressed, const void* a, void* out, int64_t M, int64_t N, int64_t K,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
