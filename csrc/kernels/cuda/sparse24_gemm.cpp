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

struct TypeInfo {
  cudaDataType_t in, out;
  cusparseComputeType compute;
};

TypeInfo type_info(SparseLtType t) {
  if (t == SparseLtType::Int8) return {CUDA_R_8I, CUDA_R_32I, CUSPARSE_COMPUTE_32I};
  return {CUDA_R_16BF, CUDA_R_16BF, CUSPARSE_COMPUTE_32F};
}

// The objects a plan points into must keep their addresses: they live in one
// heap block per cached plan.
struct Plan {
  cusparseLtMatDescriptor_t w, a, out;
  cusparseLtMatmulDescriptor_t matmul;
  cusparseLtMatmulAlgSelection_t alg;
  cusparseLtMatmulPlan_t plan;
  size_t workspace = 0;
  bool tuned = false;
};

using PlanKey = std::tuple<int, int, int64_t, int64_t, int64_t>;  // type, device, M, N, K

struct State {
  std::mutex mu;
  std::map<int, std::unique_ptr<cusparseLtHandle_t>> handles;  // per device
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  // (type, device, N, K) -> compressed and scratch bytes: each query costs a descriptor's setup.
  std::map<std::tuple<int, int, int64_t, int64_t>, std::pair<size_t, size_t>> sizes;
};

State& state() {
  static State* s = new State;  // never destroyed: plans may be used until the process exits
  return *s;
}

#define SPARSELT_TRY(expr)                                       \
  do {                                                           \
    const cusparseStatus_t status_ = (expr);                     \
    if (status_ != CUSPARSE_STATUS_SUCCESS) return int(status_); \
  } while (0)

int current_device(int* device) {
  return cudaGetDevice(device) == cudaSuccess ? 0 : int(CUSPARSE_STATUS_EXECUTION_FAILED);
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
cusparseStatus_t weight_descriptor(cusparseLtHandle_t* h, cusparseLtMatDescriptor_t* d, SparseLtType t, int64_t N,
                                   int64_t K) {
  return cusparseLtStructuredDescriptorInit(h, d, N, K, K, 16, type_info(t).in, CUSPARSE_ORDER_ROW,
                                            CUSPARSELT_SPARSITY_50_PERCENT);
}

// The default-algorithm plan of p's matmul and its workspace.
int init_plan(cusparseLtHandle_t* h, Plan* p) {
  SPARSELT_TRY(cusparseLtMatmulAlgSelectionInit(h, &p->alg, &p->matmul, CUSPARSELT_MATMUL_ALG_DEFAULT));
  SPARSELT_TRY(cusparseLtMatmulPlanInit(h, &p->plan, &p->matmul, &p->alg));
  SPARSELT_TRY(cusparseLtMatmulGetWorkspace(h, &p->plan, &p->workspace));
  return 0;
}

// The cached plan of an M x N x K GEMM (state().mu held). D = W * a^T is N x M
// in column-major order with leading dimension N: out, M x N row-major.
int plan_locked(SparseLtType t, int64_t M, int64_t N, int64_t K, cusparseLtHandle_t** handle, Plan** out) {
  cusparseLtHandle_t* h = nullptr;
  if (int e = handle_locked(&h)) return e;
  int device = 0;
  if (int e = current_device(&device)) return e;
  auto& slot = state().plans[{int(t), device, M, N, K}];
  if (!slot) {
    const TypeInfo ti = type_info(t);
    auto p = std::make_unique<Plan>();
    SPARSELT_TRY(weight_descriptor(h, &p->w, t, N, K));
    SPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->a, M, K, K, 16, ti.in, CUSPARSE_ORDER_ROW));
    SPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->out, N, M, N, 16, ti.out, CUSPARSE_ORDER_COL));
    SPARSELT_TRY(cusparseLtMatmulDescriptorInit(h, &p->matmul, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                                CUSPARSE_OPERATION_TRANSPOSE, &p->w, &p->a, &p->out, &p->out,
                                                ti.compute));
    if (int e = init_plan(h, p.get())) return e;
    slot = std::move(p);
  }
  *handle = h;
  *out = slot.get();
  return 0;
}

}  // namespace

const char* sparselt_error_string(int status) {
  if (status == kSparseLtWorkspaceTooSmall) return "the plan needs a larger workspace than was passed";
  if (status <= kSparseLtSearchFailed) return cusparseLtGetErrorString(cusparseStatus_t(kSparseLtSearchFailed - status));
  return cusparseLtGetErrorString(cusparseStatus_t(status));
}

int sparselt_compressed_size(SparseLtType t, int64_t N, int64_t K, size_t* bytes, size_t* scratch_bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  int device = 0;
  if (int e = current_device(&device)) return e;
  const auto key = std::make_tuple(int(t), device, N, K);
  auto it = state().sizes.find(key);
  if (it == state().sizes.end()) {
    cusparseLtHandle_t* h = nullptr;
    if (int e = handle_locked(&h)) return e;
    cusparseLtMatDescriptor_t w;
    SPARSELT_TRY(weight_descriptor(h, &w, t, N, K));
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

int sparselt_compress(SparseLtType t, const void* w, int64_t N, int64_t K, void* out, void* scratch,
                      cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state().mu);
  cusparseLtHandle_t* h = nullptr;
  if (int e = handle_locked(&h)) return e;
  cusparseLtMatDescriptor_t d;
  SPARSELT_TRY(weight_descriptor(h, &d, t, N, K));
  const cusparseStatus_t st =
      cusparseLtSpMMACompress2(h, &d, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, w, out, scratch, stream);
  cusparseLtMatDescriptorDestroy(&d);
  return int(st);
}

int sparselt_gemm_workspace(SparseLtType t, int64_t M, int64_t N, int64_t K, size_t* bytes) {
  std::lock_guard<std::mutex> lock(state().mu);
  cusparseLtHandle_t* h = nullptr;
  Plan* p = nullptr;
  if (int e = plan_locked(t, M, N, K, &h, &p)) return e;
  *bytes = p->workspace;
  return 0;
}

bool sparselt_gemm_tuned(SparseLtType t, int64_t M, int64_t N, int64_t K) {
  std::lock_guard<std::mutex> lock(state().mu);
  int device = 0;
  if (current_device(&device) != 0) return true;
  auto it = state().plans.find({int(t), device, M, N, K});
  return it != state().plans.end() && it->second && it->second->tuned;
}

int sparselt_gemm_tune(SparseLtType t, const void* w_compressed, const void* a, void* out, int64_t M, int64_t N,
                       int64_t K, void* workspace, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state().mu);
  cusparseLtHandle_t* h = nullptr;
  Plan* p = nullptr;
  if (int e = plan_locked(t, M, N, K, &h, &p)) return e;
  if (p->tuned) return 0;
  p->tuned = true;  // one search per plan: a failed one is not retried on every call
  const float alpha = 1.0f, beta = 0.0f;
  const cusparseStatus_t st =
      cusparseLtMatmulSearch(h, &p->plan, &alpha, w_compressed, a, &beta, out, out, workspace, &stream, 1);
  if (st == CUSPARSE_STATUS_SUCCESS) {
    SPARSELT_TRY(cusparseLtMatmulGetWorkspace(h, &p->plan, &p->workspace));
    return 0;
  }
  // A failed search may leave the plan half-configured: back to a fresh default one.
  cusparseLtMatmulPlanDestroy(&p->plan);
#if defined(CUSPARSELT_VERSION) && CUSPARSELT_VERSION >= 800  // earlier releases have no destructor for it
  cusparseLtMatmulAlgSelectionDestroy(&p->alg);
#endif
  if (int e = init_plan(h, p)) {
    int device = 0;
    current_device(&device);  // it worked in plan_locked
    state().plans.erase({int(t), device, M, N, K});  // never used half-built: the next call builds it afresh
    return e;
  }
  return kSparseLtSearchFailed - int(st);
}

int sparselt_gemm(SparseLtType t, const void* w_compressed, const void* a, void* out, int64_t M, int64_t N, int64_t K,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state().mu);
  cusparseLtHandle_t* h = nullptr;
  Plan* p = nullptr;
  if (int e = plan_locked(t, M, N, K, &h, &p)) return e;
  if (p->workspace > workspace_bytes) return kSparseLtWorkspaceTooSmall;
  const float alpha = 1.0f, beta = 0.0f;
  SPARSELT_TRY(cusparseLtMatmul(h, &p->plan, &alpha, w_compressed, a, &beta, out, out, workspace, &stream, 1));
  return 0;
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
