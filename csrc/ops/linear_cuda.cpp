// CUDA wrappers of the quantized linear ops: check, allocate through torch's
// caching allocator, launch the torch-free kernels (kernels/cuda/) on the
// current stream. No host synchronisation, so they are safe in CUDA graphs.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/library.h>

#include "../kernels/cuda/float8_linear.cuh"
#include "../kernels/cuda/int8_linear.cuh"
#include "../kernels/cuda/quant_primitives.cuh"
#include "../kernels/cpu/bitpack.h"
#include "../kernels/cpu/floatx.h"
#include "../kernels/cuda/weight_only_linear.cuh"
#include "../kernels/cuda/sparse24_float8_linear.cuh"
#include "../kernels/cuda/sparse24_int4_linear.cuh"
#include "../kernels/cpu/sparse24.h"
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
#include "../kernels/cuda/sparse24_gemm.h"
#endif
#include "common.h"
#include "common_cuda.h"
#include "linear.h"

namespace torchao_cpp {
namespace ops {
namespace {

namespace kc = kernels::cuda;

// From this many activation rows the weight is dequantized to T once per call
// and cuBLAS runs the GEMM; below, the tensor-core kernel dequantizes in
// registers, reading the codes once per 32 rows. Both round W to T once, the
// same way. On H100 the kernel at 64 rows takes about as long as the
// dequantize pass plus cuBLAS (benchmarks/results/cuda_h100.txt).
constexpr int64_t kDequantizeGemmRows = 64;

// A tensor the kernel may read as `dtype`: as it is, or converted where that
// is exact (integer zero points into a float type).
at::Tensor kernel_qparam(const char* op, const at::Tensor& t, const char* arg, at::ScalarType dtype) {
  TORCH_CHECK_NOT_IMPLEMENTED(t.scalar_type() == dtype || !at::isFloatingType(t.scalar_type()), op, ": the CUDA kernel ",
                              "reads ", arg, " in the activation dtype ", dtype, ", got ", t.scalar_type(),
                              " (quantize the model in ", dtype, ")");
  return t.to(dtype).contiguous();
}

// A CUDA linear's input, checked and viewed as rows the kernels read (unit
// stride within a row, any row stride).
struct CudaLinearInput {
  at::Tensor x2d;
  std::vector<int64_t> out_shape;
};

CudaLinearInput cuda_linear_input(const char* op, const at::Tensor& input, int64_t K, int64_t N) {
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least 1 dim, got a scalar");
  TORCH_CHECK_VALUE(input.is_cuda(), op, ": input must be a CUDA tensor, got device ", input.device());
  TORCH_CHECK_VALUE(input.size(-1) == K, op, ": input has ", input.size(-1),
                    " features in its last dim but the weight expects in_features=", K, " (input shape ",
                    input.sizes(), ")");
  const auto dtype = input.scalar_type();
  TORCH_CHECK_NOT_IMPLEMENTED(dtype == at::kBFloat16 || dtype == at::kHalf, op,
                              ": the CUDA kernels take bfloat16 or float16 activations, got ", dtype);
  CudaLinearInput in;
  in.out_shape = input.sizes().vec();
  in.out_shape.back() = N;
  in.x2d = input.reshape({-1, K});
  if (in.x2d.stride(1) != 1 || in.x2d.stride(0) < K) in.x2d = in.x2d.contiguous();
  return in;
}

// The bias in the activation dtype, or undefined.
at::Tensor cuda_bias(const char* op, const c10::optional<at::Tensor>& bias, const at::Tensor& input, int64_t N) {
  if (!bias.has_value() || !bias->defined()) return at::Tensor();
  TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == N, op, ": bias must have shape (", N, ",), got ",
                    bias->sizes());
  check_on(op, *bias, "bias", input.device());
  return bias->to(input.scalar_type()).contiguous();
}

// f(T{}) for the CUDA linears' activation dtypes (bfloat16, else float16: checked by cuda_linear_input).
template <class F>
void dispatch_half(at::ScalarType dtype, F&& f) {
  if (dtype == at::kBFloat16)
    f(__nv_bfloat16{});
  else
    f(__half{});
}

// The many-row path of the weight-only linears: W (N x K) expanded to T, the
// activation dtype, by dequantize(T* w) once per call, then one dense GEMM
// (cuBLAS) with the bias, into out.
template <class T, class Dequantize>
void dequantized_gemm(const char* op, const at::Tensor& x2d, int64_t N, int64_t K, const at::Tensor& bias,
                      at::Tensor& out, Dequantize&& dequantize) {
  auto w = at::empty({N, K}, x2d.options());
  check_launch(op, dequantize(reinterpret_cast<T*>(w.data_ptr())));
  if (bias.defined())
    at::addmm_out(out, bias, x2d, w.t());
  else
    at::mm_out(out, x2d, w.t());
}

at::Tensor weight_only_linear_cuda(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                                   int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                                   const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                   int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain,
                                   const c10::optional<at::Tensor>& bias) {
  const char* op = "weight_only_linear";
  const int64_t N = out_features, K = in_features;
  const auto in = cuda_linear_input(op, input, K, N);
  const auto dtype = input.scalar_type();
  const bool int4 = code_format == "packed" && bits == 4 && codes.scalar_type() == at::kByte;
  const bool int8 = code_format == "plain" && codes.scalar_type() == at::kChar;
  const bool e4m3 = code_format == "float8_e4m3fn", e5m2 = code_format == "float8_e5m2";
  // Other N-bit packed rows (UIntX, packed intx, float-x formats such as fp6)
  // are read as they are stored, each code through a table of its values.
  int fx_e = 0, fx_m = 0;
  const bool floatx = kernels::floatx_parse_name(code_format, &fx_e, &fx_m);
  const bool table = (floatx || (code_format == "packed" && !int4)) && codes.scalar_type() == at::kByte;
  TORCH_CHECK_NOT_IMPLEMENTED(int4 || int8 || e4m3 || e5m2 || table, op, ": the CUDA kernels read N-bit packed ",
                              "(uint8), int8 plain, float8 or float-x codes, got ", code_format, " codes of ", bits,
                              " bits in ", codes.scalar_type());
  TORCH_CHECK_VALUE(!table || (bits >= 1 && bits <= 8 && (!floatx || bits == 1 + fx_e + fx_m)), op, ": ",
                    code_format, " codes of ", bits, " bits: bits must be in 1..8",
                    floatx ? " and equal 1 + ebits + mbits" : "");
  const at::Tensor code_bytes = e4m3 || e5m2 ? float8_codes_as_uint8(op, codes) : codes;
  TORCH_CHECK_VALUE(group_size >= 1 && K % group_size == 0, op, ": group_size=", group_size,
                    " must be >= 1 and divide in_features=", K);
  const int64_t per_load = int4 || table ? 32 : 16;  // codes a lane decodes per step
  TORCH_CHECK_NOT_IMPLEMENTED(K % per_load == 0 && group_size % per_load == 0, op, ": the CUDA kernel needs ",
                              "in_features and group_size that are multiples of ", per_load, " for ",
                              table ? std::to_string(bits) + "-bit packed" : int4 ? "4-bit" : "8-bit",
                              " codes, got in_features=", K, ", group_size=", group_size);
  const int64_t row_bytes = int4 || table ? kernels::packed_row_bytes(K, int(bits)) : K;
  TORCH_CHECK_VALUE(code_bytes.dim() == 2 && code_bytes.size(0) == N && code_bytes.size(1) == row_bytes, op,
                    ": codes must have shape (", N, ", ", row_bytes, "), got ", codes.sizes());
  const auto domain = parse_zero_point_domain(zero_point_domain);
  TORCH_CHECK_VALUE(!(e4m3 || e5m2 || floatx) || domain == kernels::ZeroPointDomain::None, op, ": ", code_format,
                    " codes take no zero point, got zero_point_domain ", zero_point_domain);
  const int64_t G = K / group_size;
  TORCH_CHECK_VALUE(scale.numel() == N * G, op, ": scale has ", scale.numel(), " elements, expected ", N * G);
  check_on(op, codes, "codes", input.device());
  check_on(op, scale, "scale", input.device());
  const bool has_zp = domain != kernels::ZeroPointDomain::None;
  at::Tensor zp;
  if (has_zp) {
    TORCH_CHECK_VALUE(zero_point.has_value() && zero_point->defined(), op, ": zero_point_domain ", zero_point_domain,
                      " needs a zero_point");
    TORCH_CHECK_VALUE(zero_point->numel() == N * G, op, ": zero_point has ", zero_point->numel(),
                      " elements, expected ", N * G);
    check_on(op, *zero_point, "zero_point", input.device());
    zp = kernel_qparam(op, *zero_point, "zero_point", dtype);
  }
  auto sc = kernel_qparam(op, scale, "scale", dtype);
  const at::Tensor b = cuda_bias(op, bias, input, N);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto& shape = in.out_shape;
  const auto& x2d = in.x2d;
  // The kernel reads codes as 16-byte vectors.
  auto c = code_bytes.contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  auto out = at::empty({x2d.size(0), N}, input.options());
  kc::CodeTable values{};
  if (table)
    for (int c = 0; c < (1 << bits); ++c)
      values.value[c] = floatx ? kernels::floatx_table(fx_e, fx_m)[c] : float(c);
  auto run = [&](auto t) {
    using T = decltype(t);
    kc::WeightOnlyArgs<T> a;
    a.x = reinterpret_cast<const T*>(x2d.data_ptr());
    a.ldx = x2d.stride(0);
    a.codes = c.data_ptr();
    a.format = table  ? kc::CodeFormat::PackedTable
               : int4 ? kc::CodeFormat::Uint4
               : int8 ? kc::CodeFormat::Int8
               : e4m3 ? kc::CodeFormat::Float8E4M3
                      : kc::CodeFormat::Float8E5M2;
    a.bits = int(bits);
    a.table = &values;
    // Packed integer codes store code - quant_min.
    a.code_offset = (int4 || table) && !floatx ? float(quant_min) : 0.0f;
    a.scale = reinterpret_cast<const T*>(sc.data_ptr());
    a.zero = has_zp ? reinterpret_cast<const T*>(zp.data_ptr()) : nullptr;
    a.domain = domain == kernels::ZeroPointDomain::Int     ? kc::ZeroDomain::Int
               : domain == kernels::ZeroPointDomain::Float ? kc::ZeroDomain::Float
                                                           : kc::ZeroDomain::None;
    a.mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
    a.bias = b.defined() ? reinterpret_cast<const T*>(b.data_ptr()) : nullptr;
    a.M = x2d.size(0);
    a.N = N;
    a.K = K;
    a.group_size = group_size;
    a.out = reinterpret_cast<T*>(out.data_ptr());
    const auto stream = at::cuda::getCurrentCUDAStream();
    if (table ? a.M <= kc::kTableGemvRows : a.M < kDequantizeGemmRows) {
      check_launch(op, kc::weight_only_linear(a, stream));
      return;
    }
    dequantized_gemm<T>(op, x2d, N, K, b, out, [&](T* w) { return kc::weight_only_dequantize(a, w, stream); });
  };
  dispatch_half(dtype, run);
  return out.view(shape);
}

// sparse24_int4_linear: MarlinSparseLayout's weight in the sparse tensor cores' form
// (sparse24_int4_mma_pack), W = code * scale rounded once to the input's dtype: up to
// 16 activation rows the mma.sp GEMV, above, W expanded to the dtype once per call and a
// dense GEMM (cuBLAS), as weight_only_linear does for many rows.
at::Tensor sparse24_int4_linear_cuda(const at::Tensor& input, const at::Tensor& values, const at::Tensor& meta,
                                     int64_t out_features, int64_t in_features, int64_t group_size,
                                     const at::Tensor& scale, const c10::optional<at::Tensor>& bias) {
  const char* op = "sparse24_int4_linear";
  const int64_t N = out_features, K = in_features;
  const auto in = cuda_linear_input(op, input, K, N);
  TORCH_CHECK_NOT_IMPLEMENTED(N >= 1 && K % 128 == 0 && group_size >= 128 && group_size % 128 == 0 &&
                                  K % group_size == 0,
                              op, ": needs in_features and group_size multiples of 128 (group_size dividing ",
                              "in_features), got in_features=", K, ", group_size=", group_size);
  const int64_t words = kernels::sparse24_mma_tiles(N) * K;
  TORCH_CHECK_VALUE(values.scalar_type() == at::kInt && values.dim() == 1 && values.numel() == words &&
                        meta.scalar_type() == at::kInt && meta.dim() == 1 && meta.numel() == words / 2,
                    op, ": values and meta must be the int32 tensors sparse24_int4_mma_pack returns for a (", N, ", ",
                    K, ") weight (", words, " and ", words / 2, " elements), got ", values.scalar_type(), " ",
                    values.sizes(), " and ", meta.scalar_type(), " ", meta.sizes());
  check_on(op, values, "values", input.device());
  check_on(op, meta, "meta", input.device());
  check_on(op, scale, "scale", input.device());
  TORCH_CHECK_VALUE(scale.numel() == N * (K / group_size), op, ": scale has ", scale.numel(), " elements, expected ",
                    N * (K / group_size));
  const auto dtype = input.scalar_type();
  const auto sc = kernel_qparam(op, scale, "scale", dtype);
  const at::Tensor b = cuda_bias(op, bias, input, N);
  const c10::cuda::CUDAGuard guard(input.device());
  // The kernels read both as 16-byte vectors.
  auto aligned = [](const at::Tensor& t) {
    auto c = t.contiguous();
    return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 ? c.clone() : c;
  };
  const auto v = aligned(values), m = aligned(meta);
  at::Tensor x2d = in.x2d;
  if (x2d.stride(0) % 2 || reinterpret_cast<uintptr_t>(x2d.data_ptr()) % 4) x2d = x2d.contiguous().clone();
  const int64_t M = x2d.size(0);
  auto out = at::empty({M, N}, input.options());
  if (M == 0) return out.view(in.out_shape);
  auto run = [&](auto t) {
    using T = decltype(t);
    kc::Sparse24Int4Args<T> a;
    a.x = reinterpret_cast<const T*>(x2d.data_ptr());
    a.ldx = x2d.stride(0);
    a.values = reinterpret_cast<const uint32_t*>(v.data_ptr());
    a.meta = reinterpret_cast<const uint32_t*>(m.data_ptr());
    a.scale = reinterpret_cast<const T*>(sc.data_ptr());
    a.bias = b.defined() ? reinterpret_cast<const T*>(b.data_ptr()) : nullptr;
    a.M = M, a.N = N, a.K = K, a.group_size = group_size;
    a.out = reinterpret_cast<T*>(out.data_ptr());
    const auto stream = at::cuda::getCurrentCUDAStream();
    if (M <= kc::kSparse24Int4GemvRows) {
      check_launch(op, kc::sparse24_int4_linear(a, stream));
      return;
    }
    dequantized_gemm<T>(op, x2d, N, K, b, out, [&](T* w) { return kc::sparse24_int4_dequantize(a, w, stream); });
  };
  dispatch_half(dtype, run);
  return out.view(in.out_shape);
}

// From this many activation rows the integer GEMM runs on tensor cores
// (cuBLASLt); below, the dp4a kernel reads the weight once per 8 rows.
constexpr int64_t kInt8GemmRows = 16;
// cuBLASLt's workspace, from torch's caching allocator on every call.
constexpr size_t kCublasLtWorkspace = size_t(4) << 20;
// Activation rows up to which per-row float8 scales are applied by our
// epilogue after an unscaled GEMM instead of by cuBLASLt.
constexpr int64_t kFloat8RowwiseEpilogueRows = 16;

#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Bytes of a "cusparselt" weight: cuSPARSELt's compressed form, then for int8
// (at a 16-byte aligned offset) the N int32 row sums of the weight, which
// asymmetric activations need; *sums_offset is where they start. -1 where
// cuSPARSELt refuses the shape.
int64_t sparselt_weight_bytes(kc::SparseLtType t, int64_t N, int64_t K, int64_t* sums_offset = nullptr) {
  size_t bytes = 0, scratch = 0;
  if (kc::sparselt_compressed_size(t, N, K, &bytes, &scratch) != 0) return -1;
  if (t != kc::SparseLtType::Int8) return int64_t(bytes);
  const int64_t offset = round_up(int64_t(bytes), 16);
  if (sums_offset) *sums_offset = offset;
  return offset + 4 * N;
}

// out = a * W^T on the sparse tensor cores for `rows` rows (a multiple of kSparseLtRowMultiple). The
// first call of a shape outside graph capture picks cuSPARSELt's fastest algorithm for it (its default one
// ran 2:4 int8 no faster than the dense int8 GEMM on an H200).
void sparselt_run(const char* op, kc::SparseLtType t, const void* w, const void* a, void* out, int64_t rows, int64_t N,
                  int64_t K, const at::TensorOptions& opts, cudaStream_t stream) {
  size_t ws_bytes = 0;
  int st = kc::sparselt_gemm_workspace(t, rows, N, K, &ws_bytes);
  TORCH_CHECK(st == 0, op, ": cuSPARSELt has no plan for ", rows, " x ", N, " x ", K, ": ",
              kc::sparselt_error_string(st));
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (!kc::sparselt_gemm_tuned(t, rows, N, K) &&
      cudaStreamIsCapturing(stream, &capture) == cudaSuccess && capture == cudaStreamCaptureStatusNone) {
    const int64_t tune_bytes = std::max<int64_t>(int64_t(kc::kSparseLtTuneWorkspace), int64_t(ws_bytes));
    auto tune_ws = at::empty({tune_bytes}, opts.dtype(at::kByte));
    st = kc::sparselt_gemm_tune(t, w, a, out, rows, N, K, tune_ws.data_ptr(), stream);
    if (st <= kc::kSparseLtSearchFailed) {
      TORCH_WARN(op, ": cuSPARSELt's algorithm search failed for ", rows, " x ", N, " x ", K, " (",
                 kc::sparselt_error_string(st), "); this shape keeps its default algorithm");
    } else {
      TORCH_CHECK(st == 0, op, ": cuSPARSELt plan failed: ", kc::sparselt_error_string(st));
    }
    st = kc::sparselt_gemm_workspace(t, rows, N, K, &ws_bytes);
    TORCH_CHECK(st == 0, op, ": cuSPARSELt workspace query failed: ", kc::sparselt_error_string(st));
  }
  for (int attempt = 0;; ++attempt) {
    auto workspace = at::empty({std::max<int64_t>(int64_t(ws_bytes), 1)}, opts.dtype(at::kByte));
    st = kc::sparselt_gemm(t, w, a, out, rows, N, K, workspace.data_ptr(), ws_bytes, stream);
    if (st != kc::kSparseLtWorkspaceTooSmall || attempt > 0) break;
    // Another thread's tuning of this shape grew its workspace since the query above.
    st = kc::sparselt_gemm_workspace(t, rows, N, K, &ws_bytes);
    TORCH_CHECK(st == 0, op, ": cuSPARSELt workspace query failed: ", kc::sparselt_error_string(st));
  }
  TORCH_CHECK(st == 0, op, ": cuSPARSELt GEMM failed: ", kc::sparselt_error_string(st));
}
#endif

// sparse24_cusparselt_compress: a 2:4 weight (int8 codes, or bfloat16 values) in the "cusparselt" form
// int8_dynamic_linear and sparse24_linear read, or an empty tensor where this build has no cuSPARSELt or it
// refuses the shape or the dtype (float16) (the caller keeps the dense weight).
at::Tensor sparse24_cusparselt_compress_cuda(const at::Tensor& codes) {
  const char* op = "sparse24_cusparselt_compress";
  TORCH_CHECK_VALUE(codes.is_cuda(), op, ": codes must be a CUDA tensor, got device ", codes.device());
  const auto dtype = codes.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kChar || dtype == at::kBFloat16 || dtype == at::kHalf, op,
                   ": codes must be int8, bfloat16 or float16, got ", dtype);
  TORCH_CHECK_VALUE(codes.dim() == 2, op, ": codes must be 2-d (out_features, in_features), got shape ",
                    codes.sizes());
  const c10::cuda::CUDAGuard guard(codes.device());
  auto none = at::empty({0}, codes.options().dtype(at::kByte));
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
  // float16 stays dense: on the H200 (cuSPARSELt 0.8) the algorithm search of a float16 GEMM failed with an
  // internal error and left an illegal-instruction fault behind, where int8 and bfloat16 ran.
  if (dtype == at::kHalf) return none;
  const auto t = dtype == at::kChar ? kc::SparseLtType::Int8 : kc::SparseLtType::BFloat16;
  const int64_t N = codes.size(0), K = codes.size(1);
  if (N == 0 || K == 0) return none;
  int64_t sums_offset = 0;
  const int64_t total = sparselt_weight_bytes(t, N, K, &sums_offset);
  size_t workspace = 0;
  // A shape whose compression cuSPARSELt takes but whose GEMM it refuses stays dense.
  if (total < 0 || kc::sparselt_gemm_workspace(t, kc::kSparseLtRowMultiple, N, K, &workspace) != 0)
    return none;
  size_t bytes = 0, scratch_bytes = 0;
  kc::sparselt_compressed_size(t, N, K, &bytes, &scratch_bytes);
  const auto stream = at::cuda::getCurrentCUDAStream();
  auto c = codes.contiguous();
  auto out = at::empty({total}, codes.options().dtype(at::kByte));
  auto scratch = at::empty({std::max<int64_t>(int64_t(scratch_bytes), 1)}, codes.options().dtype(at::kByte));
  const int st = kc::sparselt_compress(t, c.data_ptr(), N, K, out.data_ptr(), scratch.data_ptr(), stream);
  TORCH_CHECK(st == 0, op, ": cuSPARSELt compression failed: ", kc::sparselt_error_string(st));
  if (t == kc::SparseLtType::Int8)
    check_launch(op, kc::int8_row_sums(c.data_ptr<int8_t>(), N, K,
                                       reinterpret_cast<int32_t*>(out.data_ptr<uint8_t>() + sums_offset), stream));
  return out;
#else
  return none;
#endif
}

// sparse24_linear: x @ W^T + bias with W a 2:4 bfloat16 weight in the form sparse24_cusparselt_compress
// returns, on the sparse tensor cores (the bias added after the GEMM, in bfloat16).
at::Tensor sparse24_linear_cuda(const at::Tensor& input, const at::Tensor& weight, int64_t out_features,
                                int64_t in_features, const c10::optional<at::Tensor>& bias) {
  const char* op = "sparse24_linear";
  const int64_t N = out_features, K = in_features;
  const auto in = cuda_linear_input(op, input, K, N);
  check_on(op, weight, "weight", input.device());
  const at::Tensor b = cuda_bias(op, bias, input, N);
  const c10::cuda::CUDAGuard guard(input.device());
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
  TORCH_CHECK_NOT_IMPLEMENTED(input.scalar_type() == at::kBFloat16, op, ": takes bfloat16 inputs (float16 2:4 weights ",
                              "run dense), got ", input.scalar_type());
  const auto t = kc::SparseLtType::BFloat16;
  const int64_t total = sparselt_weight_bytes(t, N, K);
  TORCH_CHECK_NOT_IMPLEMENTED(total >= 0, op, ": cuSPARSELt refuses a (", N, ", ", K, ") ", input.scalar_type(),
                              " weight");
  TORCH_CHECK_VALUE(weight.dim() == 1 && weight.scalar_type() == at::kByte && weight.numel() == total, op,
                    ": weight must be the 1-d uint8 tensor sparse24_cusparselt_compress returns for a (", N, ", ", K,
                    ") ", input.scalar_type(), " weight (", total, " bytes), got ", weight.scalar_type(),
                    " of shape ", weight.sizes());
  const int64_t M = in.x2d.size(0);
  const int64_t rows = round_up(std::max<int64_t>(M, 1), kc::kSparseLtRowMultiple);
  // cuSPARSELt takes whole blocks of contiguous rows: padding rows are zeros.
  at::Tensor x = in.x2d;
  if (rows != M || x.stride(0) != K || reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0) {
    x = at::zeros({rows, K}, input.options());
    x.narrow(0, 0, M).copy_(in.x2d);
  }
  auto out = at::empty({rows, N}, input.options());
  if (M > 0 && N > 0)
    sparselt_run(op, t, weight.data_ptr(), x.data_ptr(), out.data_ptr(), rows, N, K, input.options(),
                 at::cuda::getCurrentCUDAStream());
  auto y = out.narrow(0, 0, M);
  if (b.defined()) y.add_(b);
  return y.view(in.out_shape);
#else
  TORCH_CHECK_NOT_IMPLEMENTED(false, op, ": this build has no cuSPARSELt");
  return at::Tensor();
#endif
}

at::Tensor int8_dynamic_linear_cuda(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                                    const std::string& code_format, int64_t bits, int64_t out_features,
                                    int64_t in_features, int64_t group_size, const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& weight_zero_point, int64_t quant_min,
                                    const c10::optional<at::Tensor>& bias) {
  const char* op = "int8_dynamic_linear";
  const int64_t N = out_features, K = in_features;
  const auto in = cuda_linear_input(op, input, K, N);
  // Before the cusparselt size lookup, which runs on the current device.
  const c10::cuda::CUDAGuard guard(input.device());
  const auto dtype = input.scalar_type();
  kc::ActQuant mode;
  if (act_quant == "asymmetric")
    mode = kc::ActQuant::Asymmetric;
  else if (act_quant == "symmetric_reduced_range")
    mode = kc::ActQuant::SymmetricReducedRange;
  else if (act_quant == "int4_symmetric")
    mode = kc::ActQuant::Int4Symmetric;
  else
    parse_act_quant(op, act_quant);  // names the valid choices
  // "cusparselt": a 2:4 weight compressed by sparse24_cusparselt_compress, on sparse tensor cores.
  const bool sparse = code_format == "cusparselt";
  TORCH_CHECK_NOT_IMPLEMENTED((code_format == "plain" || sparse) && group_size == K, op,
                              ": the CUDA kernels take per-channel int8 weights (plain int8 codes or cusparselt, ",
                              "group_size = in_features), got ", code_format, " codes of ", bits, " bits in ",
                              codes.scalar_type(), " with group_size=", group_size);
  TORCH_CHECK_NOT_IMPLEMENTED(!(weight_zero_point.has_value() && weight_zero_point->defined()), op,
                              ": the CUDA kernels take symmetric weights (no weight_zero_point)");
  [[maybe_unused]] int64_t sums_offset = -1, total = -1;
  if (sparse) {
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
    total = sparselt_weight_bytes(kc::SparseLtType::Int8, N, K, &sums_offset);
#endif
    TORCH_CHECK_NOT_IMPLEMENTED(total >= 0, op, ": cusparselt codes need a build with cuSPARSELt that takes "
                                "the shape (", N, ", ", K, "); this one has none or refuses it");
    TORCH_CHECK_VALUE(codes.dim() == 1 && codes.scalar_type() == at::kByte && codes.numel() == total, op,
                      ": cusparselt codes must be the 1-d uint8 tensor sparse24_cusparselt_compress returns for ",
                      "a (", N, ", ", K, ") weight (", total, " bytes), got ", codes.scalar_type(), " of shape ",
                      codes.sizes());
  } else {
    TORCH_CHECK_NOT_IMPLEMENTED(codes.scalar_type() == at::kChar, op, ": plain codes must be int8, got ",
                                codes.scalar_type());
    TORCH_CHECK_VALUE(codes.dim() == 2 && codes.size(0) == N && codes.size(1) == K, op, ": codes must have shape (",
                      N, ", ", K, "), got ", codes.sizes());
  }
  TORCH_CHECK_VALUE(weight_scale.numel() == N, op, ": weight_scale has ", weight_scale.numel(), " elements, expected ",
                    N);
  check_on(op, codes, "codes", input.device());
  check_on(op, weight_scale, "weight_scale", input.device());
  const at::Tensor b = cuda_bias(op, bias, input, N);
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto& shape = in.out_shape;
  const auto& x2d = in.x2d;
  const int64_t M = x2d.size(0);
  auto out = at::empty({M, N}, input.options());
  if (M == 0 || N == 0) return out.view(shape);
  auto c = codes.contiguous();
  auto ws = weight_scale.to(at::kFloat).contiguous();
  // cuSPARSELt takes whole blocks of activation rows: the padding rows are zeros.
  int64_t rows = M;
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
  if (sparse) rows = round_up(M, kc::kSparseLtRowMultiple);
#endif
  auto a = at::empty({rows, K}, input.options().dtype(at::kChar));
  if (rows > M) a.narrow(0, M, rows - M).zero_();
  auto a_scale = at::empty({M}, input.options().dtype(at::kFloat));
  auto a_zp = at::empty({M}, input.options().dtype(at::kFloat));
  check_launch(op, kc::quantize_per_token_int8(x2d.data_ptr(), kernel_dtype(dtype), x2d.stride(0), M, K, mode, a.data_ptr<int8_t>(),
                                                a_scale.data_ptr<float>(), a_zp.data_ptr<float>(), stream));
  auto run = [&](auto t) {
    using T = decltype(t);
    kc::Int8LinearArgs<T> p;
    p.a = a.data_ptr<int8_t>();
    p.a_scale = a_scale.data_ptr<float>();
    p.a_zp = mode == kc::ActQuant::Asymmetric ? a_zp.data_ptr<float>() : nullptr;
    p.w = sparse ? nullptr : c.data_ptr<int8_t>();
    p.w_scale = ws.data_ptr<float>();
    p.bias = b.defined() ? reinterpret_cast<const T*>(b.data_ptr()) : nullptr;
    p.M = M;
    p.N = N;
    p.K = K;
    p.out = reinterpret_cast<T*>(out.data_ptr());
#ifdef TORCHAO_CPP_HAVE_CUSPARSELT
    if (sparse) {
      const auto* bytes = c.data_ptr<uint8_t>();
      if (p.a_zp) p.w_sum = reinterpret_cast<const int32_t*>(bytes + sums_offset);
      auto acc = at::empty({rows, N}, input.options().dtype(at::kInt));
      sparselt_run(op, kc::SparseLtType::Int8, bytes, p.a, acc.data_ptr<int32_t>(), rows, N, K, input.options(),
                   stream);
      check_launch(op, kc::int8_linear_epilogue(p, acc.data_ptr<int32_t>(), 0, N, stream));
      return;
    }
#endif
    if (M >= kInt8GemmRows) {
      // Both GEMM routes need the weight's row sums for asymmetric activations (the dp4a fallback does not).
      at::Tensor sums;
      auto row_sums = [&]() {
        if (!p.a_zp) return;
        sums = at::empty({N}, input.options().dtype(at::kInt));
        check_launch(op, kc::int8_row_sums(p.w, N, K, sums.data_ptr<int32_t>(), stream));
        p.w_sum = sums.data_ptr<int32_t>();
      };
      // Hopper, where the benchmark says it wins: our wgmma GEMM with the scales in its epilogue
      // (no int32 sums in memory). Other GPUs answer cudaErrorNotSupported.
      if (K % 16 == 0 && reinterpret_cast<uintptr_t>(p.w) % 16 == 0 && kc::int8_wgmma_preferred(M)) {
        row_sums();
        const cudaError_t e = kc::int8_linear_wgmma(p, stream);
        if (e != cudaErrorNotSupported) {
          check_launch(op, e);
          return;
        }
      }
      auto acc = at::empty({M, N}, input.options().dtype(at::kInt));
      auto workspace = at::empty({int64_t(kCublasLtWorkspace)}, input.options().dtype(at::kByte));
      const cublasStatus_t st = kc::int8_gemm_s32(at::cuda::getCurrentCUDABlasLtHandle(), p.a, p.w,
                                                  acc.data_ptr<int32_t>(), M, N, K, workspace.data_ptr(),
                                                  kCublasLtWorkspace, stream);
      if (st == CUBLAS_STATUS_SUCCESS) {
        if (!p.w_sum) row_sums();
        check_launch(op, kc::int8_linear_epilogue(p, acc.data_ptr<int32_t>(), 0, N, stream));
        return;
      }
      // No tensor-core algorithm for this shape (e.g. K not a multiple of 4): the exact dp4a kernel.
      // (Splitting the GEMM into column chunks whose sums stay in L2 was slower on an H100: 0.91x
      // against 1.24x of bf16 at 2048 x 4096 x 14336.)
      TORCH_CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE, op,
                  ": cuBLASLt int8 GEMM failed with status ", int(st));
    }
    check_launch(op, kc::int8_linear_dp4a(p, stream));
  };
  dispatch_half(dtype, run);
  return out.view(shape);
}

cudaDataType_t float8_cuda_type(kernels::Float8Format f) {
  return f == kernels::Float8Format::E4M3FN ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2;
}

cudaDataType_t float_cuda_type(at::ScalarType t) {
  return t == at::kBFloat16 ? CUDA_R_16BF : t == at::kHalf ? CUDA_R_16F : CUDA_R_32F;
}

// A float8 linear's input as M x K rows (K contiguous) and its quantized activations.
struct Float8Input {
  at::Tensor x2d;
  std::vector<int64_t> out_shape;
  at::Tensor q;   // M x K float8 codes, row stride K
  at::Tensor xs;  // M (per row) or 1 float32 scales
};

Float8Input quantize_float8_input(const char* op, const at::Tensor& input, const Float8LinearSpec& s,
                                  cudaStream_t stream) {
  Float8Input f;
  f.out_shape = input.sizes().vec();
  f.out_shape.back() = s.N;
  f.x2d = input.reshape({-1, s.K});
  if (f.x2d.stride(1) != 1 || f.x2d.stride(0) < s.K) f.x2d = f.x2d.contiguous();
  const int64_t M = f.x2d.size(0);
  const auto opts = input.options();
  f.q = at::empty({M, s.K}, opts.dtype(at::kByte));
  f.xs = at::empty({s.act_per_row ? M : 1}, opts.dtype(at::kFloat));
  if (M == 0) return f;
  auto amax = at::empty({1}, opts.dtype(at::kInt));
  check_launch(op, kc::quantize_activations_float8(
                       f.x2d.data_ptr(), kernel_dtype(input.scalar_type()), f.x2d.stride(0), M, s.K, s.act_per_row,
                       s.act, s.act_scale.defined() ? s.act_scale.data_ptr<float>() : nullptr,
                       f.q.data_ptr<uint8_t>(), f.xs.data_ptr<float>(),
                       reinterpret_cast<uint32_t*>(amax.data_ptr<int32_t>()), stream));
  return f;
}

// out (M x N, the input's dtype) = (q w^T) * xs * ws + bias with w the dense
// float8 codes (N x K bytes) on cuBLASLt's FP8 tensor cores.
void float8_gemm_out(const char* op, const Float8LinearSpec& s, const Float8Input& f, const void* w,
                     const at::Tensor& b, bool fast_accum, at::Tensor& out, cudaStream_t stream) {
  const int64_t M = f.q.size(0), N = s.N, K = s.K;
  const auto opts = out.options();
  const auto dtype = out.scalar_type();
  // cuBLASLt scales both operands per tensor, or both per row (outer vectors).
  const bool rowwise = s.act_per_row || s.weight_per_row;
  const at::Tensor xsv = rowwise && !s.act_per_row ? f.xs.expand({M}).contiguous() : f.xs;
  const at::Tensor wsv = rowwise && !s.weight_per_row ? s.weight_scale.expand({N}).contiguous() : s.weight_scale;
  auto workspace = at::empty({int64_t(kCublasLtWorkspace)}, opts.dtype(at::kByte));
  const auto handle = at::cuda::getCurrentCUDABlasLtHandle();
  kc::Float8GemmArgs g;
  g.x = f.q.data_ptr();
  g.w = w;
  g.x_type = float8_cuda_type(s.act);
  g.w_type = float8_cuda_type(s.weight);
  g.M = M;
  g.N = N;
  g.K = K;
  g.xs = xsv.data_ptr<float>();
  g.ws = wsv.data_ptr<float>();
  g.rowwise = rowwise;
  g.bias = b.defined() ? b.data_ptr() : nullptr;
  g.out = out.data_ptr();
  g.out_type = float_cuda_type(dtype);
  g.fast_accum = fast_accum;
  auto refused = [&](cublasStatus_t st) {
    TORCH_CHECK(st == CUBLAS_STATUS_SUCCESS || st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE,
                op, ": cuBLASLt float8 GEMM failed with status ", int(st));
    return st != CUBLAS_STATUS_SUCCESS;
  };
  // The whole linear in one call: scales and bias in cuBLASLt's epilogue.
  // Its per-row (outer-vector) scaling is slow for a few activation rows
  // (H200, K = 14336: 56 us at M = 1 against 32 for per-tensor scales).
  if (!(rowwise && M <= kFloat8RowwiseEpilogueRows) &&
      !refused(kc::float8_gemm(handle, g, workspace.data_ptr(), kCublasLtWorkspace, stream)))
    return;
  // Few rows with per-row scales, or where cuBLASLt refuses the scaled form
  // (e.g. per-row scales on an older cuBLASLt, float32 output with a bias):
  // an unscaled float8 GEMM into float32 and our epilogue; where it refuses
  // float8 altogether (e5m2 x e5m2), the codes' values in float32 (exact,
  // even under TF32) and a float32 GEMM.
  auto acc = at::empty({M, N}, opts.dtype(at::kFloat));
  g.xs = g.ws = nullptr;
  g.rowwise = false;
  g.bias = nullptr;
  g.out = acc.data_ptr();
  g.out_type = CUDA_R_32F;
  if (refused(kc::float8_gemm(handle, g, workspace.data_ptr(), kCublasLtWorkspace, stream))) {
    auto xv = at::empty({M, K}, opts.dtype(at::kFloat));
    auto wv = at::empty({N, K}, opts.dtype(at::kFloat));
    check_launch(op, kc::float8_to_float32(f.q.data_ptr<uint8_t>(), M * K, s.act, xv.data_ptr<float>(), stream));
    check_launch(op, kc::float8_to_float32(static_cast<const uint8_t*>(w), N * K, s.weight, wv.data_ptr<float>(),
                                           stream));
    at::mm_out(acc, xv, wv.t());
  }
  check_launch(op, kc::float8_linear_epilogue(acc.data_ptr<float>(), f.xs.data_ptr<float>(), s.act_per_row ? 1 : 0,
                                              s.weight_scale.data_ptr<float>(), s.weight_per_row ? 1 : 0,
                                              b.defined() ? b.data_ptr() : nullptr, kernel_dtype(dtype), M, N,
                                              out.data_ptr(), stream));
}

at::Tensor float8_linear_cuda(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                              const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                              const std::string& weight_dtype, const at::Tensor& weight_scale,
                              const c10::optional<at::Tensor>& bias, bool fast_accum) {
  const char* op = "float8_linear";
  TORCH_CHECK_VALUE(input.is_cuda(), op, ": input must be a CUDA tensor, got device ", input.device());
  const auto s = check_float8_linear(op, input, act_dtype, act_granularity, act_scale, codes, weight_dtype,
                                     weight_scale);
  const at::Tensor b = cuda_bias(op, bias, input, s.N);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto f = quantize_float8_input(op, input, s, stream);
  auto out = at::empty({f.q.size(0), s.N}, input.options());
  if (out.numel() > 0) float8_gemm_out(op, s, f, s.codes.data_ptr(), b, fast_accum, out, stream);
  return out.view(f.out_shape);
}

// sparse24_float8_linear: float8_linear on CutlassSemiSparseLayout's weight in the sparse
// tensor cores' form (sparse24_float8_mma_pack): up to 16 activation rows the mma.sp GEMV
// (compute capability 8.9 and newer), otherwise the dense codes expanded per call for
// float8_linear's GEMM.
at::Tensor sparse24_float8_linear_cuda(const at::Tensor& input, const std::string& act_dtype,
                                       const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                       const at::Tensor& values, const at::Tensor& meta, int64_t out_features,
                                       int64_t in_features, const std::string& weight_dtype,
                                       const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                                       bool fast_accum) {
  const char* op = "sparse24_float8_linear";
  TORCH_CHECK_VALUE(input.is_cuda(), op, ": input must be a CUDA tensor, got device ", input.device());
  const auto s = check_float8_linear_shape(op, input, act_dtype, act_granularity, act_scale, out_features,
                                           in_features, weight_dtype, weight_scale);
  const int64_t N = s.N, K = s.K;
  const int64_t words = kernels::sparse24_mma_tiles(N) * kernels::sparse24_float8_mma_blocks(K) * 32;
  TORCH_CHECK_VALUE(values.scalar_type() == at::kInt && values.dim() == 1 && values.numel() == 4 * words &&
                        meta.scalar_type() == at::kInt && meta.dim() == 1 && meta.numel() == words,
                    op, ": values and meta must be the int32 tensors sparse24_float8_mma_pack returns for a (", N,
                    ", ", K, ") weight (", 4 * words, " and ", words, " elements), got ", values.scalar_type(), " ",
                    values.sizes(), " and ", meta.scalar_type(), " ", meta.sizes());
  check_on(op, values, "values", input.device());
  check_on(op, meta, "meta", input.device());
  const at::Tensor b = cuda_bias(op, bias, input, N);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  // The kernels read the values as 16-byte vectors.
  auto v = values.contiguous();
  if (reinterpret_cast<uintptr_t>(v.data_ptr()) % 16) v = v.clone();
  const auto m = meta.contiguous();
  const auto f = quantize_float8_input(op, input, s, stream);
  const int64_t M = f.q.size(0);
  auto out = at::empty({M, N}, input.options());
  if (M == 0) return out.view(f.out_shape);
  const auto* vp = reinterpret_cast<const uint32_t*>(v.data_ptr());
  const auto* mp = reinterpret_cast<const uint32_t*>(m.data_ptr());
  if (M <= kc::kSparse24Float8GemvRows && kc::sparse24_float8_mma_supported()) {
    kc::Sparse24Float8Args a;
    a.x = f.q.data_ptr<uint8_t>();
    a.x_fmt = s.act;
    a.w_fmt = s.weight;
    a.values = vp;
    a.meta = mp;
    a.xs = f.xs.data_ptr<float>();
    a.xs_stride = s.act_per_row ? 1 : 0;
    a.ws = s.weight_scale.data_ptr<float>();
    a.ws_stride = s.weight_per_row ? 1 : 0;
    a.bias = b.defined() ? b.data_ptr() : nullptr;
    a.out_t = kernel_dtype(input.scalar_type());
    a.M = M, a.N = N, a.K = K;
    a.out = out.data_ptr();
    check_launch(op, kc::sparse24_float8_linear(a, stream));
    return out.view(f.out_shape);
  }
  auto codes = at::empty({N, K}, input.options().dtype(at::kByte));
  check_launch(op, kc::sparse24_float8_expand(vp, mp, N, K, codes.data_ptr<uint8_t>(), stream));
  float8_gemm_out(op, s, f, codes.data_ptr(), b, fast_accum, out, stream);
  return out.view(f.out_shape);
}

}  // namespace
}  // namespace ops
}  // namespace torchao_cpp

TORCH_LIBRARY_IMPL(torchao_cpp, CUDA, m) {
  using namespace torchao_cpp::ops;
  m.impl("weight_only_linear", &weight_only_linear_cuda);
  m.impl("int8_dynamic_linear", &int8_dynamic_linear_cuda);
  m.impl("sparse24_cusparselt_compress", &sparse24_cusparselt_compress_cuda);
  m.impl("sparse24_linear", &sparse24_linear_cuda);
  m.impl("sparse24_int4_linear", &sparse24_int4_linear_cuda);
  m.impl("sparse24_float8_linear", &sparse24_float8_linear_cuda);
  m.impl("float8_linear", &float8_linear_cuda);
  m.impl("affine_quantized_linear", &affine_quantized_linear);
  m.impl("activation_quantized_linear", &activation_quantized_linear);
}
