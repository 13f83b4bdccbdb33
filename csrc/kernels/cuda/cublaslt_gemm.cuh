// The cuBLASLt GEMM both quantized linears run (int8 x int8, float8 x
// float8): row-major out[M][N] = x[M][K] . w[N][K]^T, which cuBLAS's
// column-major view reads as D (N x M) = op(A) B with A = the weight stored
// K x N (ld K) and transposed, B = the activations stored K x M (ld K): the
// "TN" form integer and FP8 tensor cores need. Host code, torch-free.
#pragma once

#include <cublasLt.h>

#include <cstdint>

namespace torchao_cpp {
namespace kernels {
namespace cuda {

class TnGemm {
 public:
  TnGemm(cublasComputeType_t compute, cudaDataType_t scale_type) {
    st_ = cublasLtMatmulDescCreate(&desc_, compute, scale_type);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    set(CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    set(CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  }
  TnGemm(const TnGemm&) = delete;
  TnGemm& operator=(const TnGemm&) = delete;
  ~TnGemm() {
    if (pref_) cublasLtMatmulPreferenceDestroy(pref_);
    if (ld_) cublasLtMatrixLayoutDestroy(ld_);
    if (lb_) cublasLtMatrixLayoutDestroy(lb_);
    if (la_) cublasLtMatrixLayoutDestroy(la_);
    if (desc_) cublasLtMatmulDescDestroy(desc_);
  }

  // A descriptor attribute (scales, epilogue, ...); a failure is kept for run().
  void set(cublasLtMatmulDescAttributes_t attr, const void* v, size_t n) {
    if (st_ == CUBLAS_STATUS_SUCCESS) st_ = cublasLtMatmulDescSetAttribute(desc_, attr, v, n);
  }

  // The first failure on the way, or CUBLAS_STATUS_NOT_SUPPORTED where the
  // heuristic has no algorithm for the form. alpha/beta are of the scale type.
  cublasStatus_t run(cublasLtHandle_t handle, cudaDataType_t w_type, const void* w, cudaDataType_t x_type,
                     const void* x, cudaDataType_t out_type, void* out, int64_t M, int64_t N, int64_t K,
                     const void* alpha, const void* beta, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (st_ == CUBLAS_STATUS_SUCCESS) st_ = cublasLtMatrixLayoutCreate(&la_, w_type, uint64_t(K), uint64_t(N), K);
    if (st_ == CUBLAS_STATUS_SUCCESS) st_ = cublasLtMatrixLayoutCreate(&lb_, x_type, uint64_t(K), uint64_t(M), K);
    if (st_ == CUBLAS_STATUS_SUCCESS) st_ = cublasLtMatrixLayoutCreate(&ld_, out_type, uint64_t(N), uint64_t(M), N);
    if (st_ == CUBLAS_STATUS_SUCCESS) st_ = cublasLtMatmulPreferenceCreate(&pref_);
    if (st_ == CUBLAS_STATUS_SUCCESS)
      st_ = cublasLtMatmulPreferenceSetAttribute(pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                 sizeof(workspace_bytes));
    cublasLtMatmulHeuristicResult_t heur = {};
    int found = 0;
    if (st_ == CUBLAS_STATUS_SUCCESS)
      st_ = cublasLtMatmulAlgoGetHeuristic(handle, desc_, la_, lb_, ld_, ld_, pref_, 1, &heur, &found);
    if (st_ == CUBLAS_STATUS_SUCCESS && found == 0) st_ = CUBLAS_STATUS_NOT_SUPPORTED;
    if (st_ == CUBLAS_STATUS_SUCCESS)
      st_ = cublasLtMatmul(handle, desc_, alpha, w, la_, x, lb_, beta, out, ld_, out, ld_, &heur.algo, workspace,
                           workspace_bytes, stream);
    return st_;
  }

 private:
  cublasStatus_t st_ = CUBLAS_STATUS_SUCCESS;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t la_ = nullptr, lb_ = nullptr, ld_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
};

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
