#include "sparse24_gemm.h"

#include <cusparseLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

// The objects a plan points into must keep their addresses: they live in one
// heap block per cached plan.
struct Plan {
  cusparseLtMatDescriptor_t w, a, acc;
  cusparseLtMatmulDescriptor_t matmul;
  cusparseLtMatmulAlgSelection_t alg;
  cusparseLtMatmulPlan_t plan;
  size_t workspace = 0;
  bool tuned = false;
};

struct State {
  std::mutex mu;
  std::map<int, std::unique_ptr<cusparseLtHandle_t>> handles;                          // per device
  std::map<std::tuple<int, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans;  // (device, M, N, K)
  // (device, N, K) -> compressed and scratch bytes: each query costs a descriptor's setup.
  std::map<std::tuple<int, int64_t, int64_t>, std::pair<size_t, size_t>> sizes;
};

State& state() {
  static State* s = new State;  // never destroyed: plans may be used until the process exits
  return *s;
}

#define SPARSELT_TRY(expr)                               \
  do {                                                   \
    const cusparseStatus_t status_ = (expr);             \
    if (status_ != CUSPARSE_STATUS_SUCCESS) return int(status_); \
  } while (0)

int current_device(int* device) {
  const cudaError_t e = cudaGetDevice(device);
  return e == cudaSuccess ? 0 : int(CUSPARSE_STATUS_EXECUTION_FAILED);
}

// The current device's handle (state().mu held).
int handle_locked(cusparseLtHandle_t** out) {
  int device = 0;
  if (int e = current_device(&device)) return e;
  auto& h = state().handles[device];
  if (!h) {
    auto fresh = std::make_unique<cusparseLtHandle_t>();
    SPARSELT_TRY(cusparseLtInit(fresh.get()));
    h = std::move(fresh);
  }
  *out = h.get();
  return 0;
}

// W as cuSPARSELt sees it: N x K, row-major, 2:4 along K.
cusparseStatus_t weight_descriptor(cusparseLtHandle_t* h, cusparseLtMatDescriptor_t* d, int64_t N, int64_t K) {
  return cusparseLtStructuredDescriptorInit(h, d, N, K, K, 16, CUDA_R_8I, CUSPARSE_ORDER_ROW,
                                            CUSPARSELT_SPARSITY_50_PERCENT);
}

// The cached plan of an M x N x K GEMM (state().mu held). D = W * a^T is N x M
// in column-major order with leading dimension N: acc, M x N row-major.
int plan_locked(int64_t M, int64_t N, int64_t K, Plan** out) {
  cusparseLtHandle_t* h = nullptr;
  if (int e = handle_locked(&h)) return e;
  int device = 0;
  if (int e = current_device(&device)) return e;
  auto& slot = state().plans[{device, M, N, K}];
  if (!slot) {
    auto p = std::make_unique<Plan>();
    SPARSELT_TRY(weight_descriptor(h, &p->w, N, K));
    SPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->a, M, K, K, 16, CUDA_R_8I, CUSPARSE_ORDER_ROW));
    SPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->acc, N, M, N, 16, CUDA_R_32I, CUSPARSE_ORDER_COL));
    SPARSELT_TRY(cusparseLtMatmulDescriptorInit(h, &p->matmul, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                                CUSPARSE_OPERATION_TRANSPOSE, &p->w, &p->a, &p->acc, &p->acc,
                                                CUSPARSE_COMPUTE_32I));
    SPARSELT_TRY(cusparseLtMatmulAlgSelectionInit(h, &p->alg, &p->matmul, CUSPARSELT_MATMUL_ALG_DEFAULT));
    SPARSELT_TRY(cusparseLtMatmulPlanInit(h, &p->plan, &p->matmul, &p->alg));
    SPARSELT_TRY(cusparseLtMatmulGetWorkspace(h, &p->plan, &p->workspace));
    slot = std::move(p);
  }
  *out = slot.get();
  return 0;
}

}  // namespace

const char* sparselt_error_string(int status) { return cusparseLtGetErrorString(cusparseStatus_t(status)); }

int sparselt_int8_compressed_size(int64_t N, int64_t K, size_t* bytes, size_t* scratch_bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  int device = 0;
  if (int e = current_device(&device)) return e;
  const auto key = std::make_tuple(device, N, K);
  auto it = state().sizes.find(key);
  if (it == state().sizes.end()) {
    cusparseLtHandle_t* h = nullptr;
    if (int e = handle_locked(&h)) return e;
    cusparseLtMatDescriptor_t w;
    SPARSELT_TRY(weight_descriptor(h, &w, N, K));
    std::pair<size_t, size_t> sz;
    const cusparseStatus_t st = cusparseLtSpMMACompressedSize2(h, &w, &sz.first, &sz.second);
    cusparseLtMatDescriptorDestroy(&w);
    if (st != CUSPARSE_STATUS_SUCCESS) return int(st);
    it = state().sizes.emplace(key, sz).first;
  }
  *bytes = it->second.first;
  *scratch_bytes = it->second.second;
  return 0;
}

int sparselt_int8_compress(const int8_t* w, int64_t N, int64_t K, void* out, void* scratch, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state().mu);
  cusparseLtHandle_t* h = nullptr;
  if (int e = handle_locked(&h)) return e;
  cusparseLtMatDescriptor_t d;
  SPARSELT_TRY(weight_descriptor(h, &d, N, K));
  const cusparseStatus_t st =
      cusparseLtSpMMACompress2(h, &d, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, w, out, scratch, stream);
  cusparseLtMatDescriptorDestroy(&d);
  return int(st);
}

int sparselt_int8_gemm_workspace(int64_t M, int64_t N, int64_t K, size_t* bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  Plan* p = nullptr;
  if (int e = plan_locked(M, N, K, &p)) return e;
  *bytes = p->workspace;
  return 0;
}

int sparselt_int8_gemm_tune(const void* w_compressed, const int8_t* a, int32_t* acc, int64_t M, int64_t N, int64_t K,
                            void* workspace, cudaStream_t stream) {
  cusparseLtHandle_t* h = nullptr;
  Plan* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (int e = handle_locked(&h)) return e;
    if (int e = plan_locked(M, N, K, &p)) return e;
    if (p->tuned) return 0;
    p->tuned = true;  // one search per plan, even if it fails
  }
  const float alpha = 1.0f, beta = 0.0f;
  SPARSELT_TRY(cusparseLtMatmulSearch(h, &p->plan, &alpha, w_compressed, a, &beta, acc, acc, workspace, &stream, 1));
  std::lock_guard<std::mutex> lock(state().mu);
  SPARSELT_TRY(cusparseLtMatmulGetWorkspace(h, &p->plan, &p->workspace));
  return 0;
}

bool sparselt_int8_gemm_tuned(int64_t M, int64_t N, int64_t K) {
  std::lock_guard<std::mutex> lock(state().mu);
  int device = 0;
  if (current_device(&device) != 0) return true;
  auto it = state().plans.find({device, M, N, K});
  return it != state().plans.end() && it->second && it->second->tuned;
}

int sparselt_int8_gemm(const void* w_compressed, const int8_t* a, int32_t* acc, int64_t M, int64_t N, int64_t K,
                       void* workspace, cudaStream_t stream) {
  cusparseLtHandle_t* h = nullptr;
  Plan* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (int e = handle_locked(&h)) return e;
    if (int e = plan_locked(M, N, K, &p)) return e;
  }
  const float alpha = 1.0f, beta = 0.0f;
  SPARSELT_TRY(cusparseLtMatmul(h, &p->plan, &alpha, w_compressed, a, &beta, acc, acc, workspace, &stream, 1));
  return 0;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
