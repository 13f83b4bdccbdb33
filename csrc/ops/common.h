// Shared helpers of the ATen wrappers: argument checks, dtype dispatch onto
// the torch-free kernel types, and the one place that guards torch versions.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "../kernels/cpu/numeric.h"
#include "../kernels/cpu/quant_primitives.h"

// torch >= 2.1 has float8 dtypes.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define TORCHAO_CPP_HAS_FLOAT8 1
#else
#define TORCHAO_CPP_HAS_FLOAT8 0
#endif

namespace torchao_cpp {
namespace ops {

namespace k = ::torchao_cpp::kernels;

inline int num_threads() { return std::max(1, at::get_num_threads()); }

k::MappingType parse_mapping_type(const std::string& s);
k::ZeroPointDomain parse_zero_point_domain(const std::string& s);
k::Float8Format parse_float8_dtype(const std::string& s);
std::string zero_point_domain_name(k::ZeroPointDomain d);

// Validates block_size against the input's shape (torchao's
// _get_reduction_params rules) and returns the geometry of the contiguous input.
k::BlockGeometry make_geometry(const char* op, at::IntArrayRef shape, at::IntArrayRef block_size);

// Shape of choose_qparams_affine's outputs: dims with block == size are
// reduced away, the others become size / block (torchao's amin(keepdim=False)).
std::vector<int64_t> qparams_shape(at::IntArrayRef shape, at::IntArrayRef block_size);

void check_float_dtype(const char* op, const char* arg, at::ScalarType t);
// `arg` must sit on the input's device.
void check_on(const char* op, const at::Tensor& t, const char* arg, const at::Device& device);
void check_quant_range(const char* op, int64_t quant_min, int64_t quant_max);

// Calls f(T{}) with the kernel storage type of a float dtype.
template <class F>
auto dispatch_float(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat:
      return f(float{});
    case at::kBFloat16:
      return f(k::bf16{});
    case at::kHalf:
      return f(k::fp16{});
    default:
      TORCH_CHECK_TYPE(false, "expected float32, bfloat16 or float16, got ", t);
  }
}

// Integer codes are uint8, int8, int16 or int32 (what the kernels read).
void check_code_dtype(const char* op, const char* arg, at::ScalarType t);

// Calls f(T{}) with the C++ type of an integer code dtype; `arg` of `op` names
// the tensor in the error.
template <class F>
auto dispatch_code(const char* op, const char* arg, at::ScalarType t, F&& f) {
  switch (t) {
    case at::kByte:
      return f(uint8_t{});
    case at::kChar:
      return f(int8_t{});
    case at::kShort:
      return f(int16_t{});
    case at::kInt:
      return f(int32_t{});
    default:
      check_code_dtype(op, arg, t);
      TORCH_CHECK_TYPE(false, op, ": ", arg, ": no kernel reads ", t);  // unreachable
  }
}

template <class T>
inline T* ptr(const at::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

// Range of integer values a code dtype can hold.
void check_range_fits(const char* op, at::ScalarType t, int64_t quant_min, int64_t quant_max);

// float8 codes as uint8 (a torch float8 tensor is viewed, not copied).
at::Tensor float8_codes_as_uint8(const char* op, const at::Tensor& t);

// A weight's stored tensor, contiguous, on huge pages where kernels::huge_pages_wanted
// says so (a CPU tensor of 4 MB or more: a copy into such storage), else t itself.
at::Tensor on_huge_pages(const at::Tensor& t);

// The arguments of float8_linear, checked the same way on every backend.
struct Float8LinearSpec {
  int64_t N = 0, K = 0;
  k::Float8Format act = k::Float8Format::E4M3FN, weight = k::Float8Format::E4M3FN;
  bool act_per_row = false;
  bool weight_per_row = false;
  at::Tensor act_scale;     // float32, one element; undefined when the activations are scaled dynamically
  at::Tensor codes;         // (N, K) raw float8 bytes, or (N, sparse24_row_bytes(K)) 2:4 compressed rows; contiguous
  at::Tensor weight_scale;  // float32, contiguous: 1 or N elements
};
Float8LinearSpec check_float8_linear(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                     const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                     const at::Tensor& codes, const std::string& weight_dtype,
                                     const at::Tensor& weight_scale, int64_t sparse_in_features = -1);
// The same for a weight held in another form (no codes: s.codes undefined), of (out_features, in_features).
Float8LinearSpec check_float8_linear_shape(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                           const std::string& act_granularity,
                                           const c10::optional<at::Tensor>& act_scale, int64_t out_features,
                                           int64_t in_features, const std::string& weight_dtype,
                                           const at::Tensor& weight_scale);

}  // namespace ops
}  // namespace torchao_cpp
