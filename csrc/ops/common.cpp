#include "common.h"

#include "../kernels/cpu/aligned.h"
#include "../kernels/cpu/sparse24.h"

#include <limits>

namespace torchao_cpp {
namespace ops {

k::MappingType parse_mapping_type(const std::string& s) {
  if (s == "SYMMETRIC") return k::MappingType::Symmetric;
  if (s == "SYMMETRIC_NO_CLIPPING_ERR") return k::MappingType::SymmetricNoClippingErr;
  if (s == "ASYMMETRIC") return k::MappingType::Asymmetric;
  TORCH_CHECK_VALUE(false, "mapping_type must be SYMMETRIC, SYMMETRIC_NO_CLIPPING_ERR or ASYMMETRIC, got '", s, "'");
}

k::ZeroPointDomain parse_zero_point_domain(const std::string& s) {
  if (s == "INT") return k::ZeroPointDomain::Int;
  if (s == "FLOAT") return k::ZeroPointDomain::Float;
  if (s == "NONE") return k::ZeroPointDomain::None;
  TORCH_CHECK_VALUE(false, "zero_point_domain must be INT, FLOAT or NONE, got '", s, "'");
}

std::string zero_point_domain_name(k::ZeroPointDomain d) {
  switch (d) {
    case k::ZeroPointDomain::Int:
      return "INT";
    case k::ZeroPointDomain::Float:
      return "FLOAT";
    default:
      return "NONE";
  }
}

k::Float8Format parse_float8_dtype(const std::string& s) {
  if (s == "e4m3fn" || s == "float8_e4m3fn") return k::Float8Format::E4M3FN;
  if (s == "e5m2" || s == "float8_e5m2") return k::Float8Format::E5M2;
  TORCH_CHECK_VALUE(false, "float8_dtype must be 'e4m3fn' or 'e5m2', got '", s, "'");
}

k::BlockGeometry make_geometry(const char* op, at::IntArrayRef shape, at::IntArrayRef block_size) {
  TORCH_CHECK_VALUE(block_size.size() == shape.size(), op, ": block_size has ", block_size.size(),
                    " entries but input has ", shape.size(), " dims (shape ", shape, ")");
  k::BlockGeometry g;
  for (size_t i = 0; i < shape.size(); ++i) {
    TORCH_CHECK_VALUE(block_size[i] >= 1, op, ": block_size[", i, "] must be >= 1, got ", block_size[i]);
    TORCH_CHECK_VALUE(shape[i] % block_size[i] == 0, op, ": block_size[", i, "] = ", block_size[i],
                      " does not divide input size ", shape[i], " (shape ", shape, ", block_size ", block_size, ")");
    g.sizes.push_back(shape[i]);
    g.block.push_back(block_size[i]);
  }
  return g;
}

std::vector<int64_t> qparams_shape(at::IntArrayRef shape, at::IntArrayRef block_size) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (block_size[i] == shape[i] && block_size[i] != 1) continue;
    if (block_size[i] == shape[i] && shape[i] == 1 && block_size[i] != 1) continue;
    out.push_back(shape[i] / block_size[i]);
  }
  return out;
}

void check_float_dtype(const char* op, const char* arg, at::ScalarType t) {
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kBFloat16 || t == at::kHalf, op, ": ", arg,
                   " must be float32, bfloat16 or float16, got ", t);
}

void check_code_dtype(const char* op, const char* arg, at::ScalarType t) {
  TORCH_CHECK_TYPE(t == at::kByte || t == at::kChar || t == at::kShort || t == at::kInt, op, ": ", arg,
                   " must hold integer codes of dtype uint8, int8, int16 or int32, got ", t);
}

void check_quant_range(const char* op, int64_t quant_min, int64_t quant_max) {
  TORCH_CHECK_VALUE(quant_min < quant_max, op, ": quant_min (", quant_min, ") must be < quant_max (", quant_max, ")");
  TORCH_CHECK_VALUE(quant_min >= std::numeric_limits<int32_t>::min() && quant_max <= std::numeric_limits<int32_t>::max(),
                    op, ": quant_min/quant_max must fit in int32, got [", quant_min, ", ", quant_max, "]");
}

void check_range_fits(const char* op, at::ScalarType t, int64_t quant_min, int64_t quant_max) {
  int64_t lo = 0, hi = 0;
  switch (t) {
    case at::kByte:
      lo = 0, hi = 255;
      break;
    case at::kChar:
      lo = -128, hi = 127;
      break;
    case at::kShort:
      lo = -32768, hi = 32767;
      break;
    case at::kInt:
      lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
      break;
    default:
      TORCH_CHECK_TYPE(false, op, ": output_dtype must be uint8, int8, int16 or int32, got ", t);
  }
  TORCH_CHECK_VALUE(quant_min >= lo && quant_max <= hi, op, ": range [", quant_min, ", ", quant_max,
                    "] does not fit in ", t);
}

at::Tensor float8_codes_as_uint8(const char* op, const at::Tensor& t) {
#if TORCHAO_CPP_HAS_FLOAT8
  if (t.scalar_type() == at::kFloat8_e4m3fn || t.scalar_type() == at::kFloat8_e5m2) return t.view(at::kByte);
#endif
  TORCH_CHECK_TYPE(t.scalar_type() == at::kByte, op, ": float8 codes must be uint8 (raw bytes) or a torch float8 dtype, got ",
                   t.scalar_type());
  return t;
}

namespace {
// What check_float8_linear and check_float8_linear_shape share: the formats and
// granularity, then (N and K known) the input's features and both scales.
Float8LinearSpec float8_linear_formats(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                       const std::string& act_granularity, const std::string& weight_dtype) {
  Float8LinearSpec s;
  s.act = parse_float8_dtype(act_dtype);
  s.weight = parse_float8_dtype(weight_dtype);
  TORCH_CHECK_VALUE(act_granularity == "PerTensor" || act_granularity == "PerRow", op,
                    ": act_granularity must be 'PerTensor' or 'PerRow', got '", act_granularity, "'");
  s.act_per_row = act_granularity == "PerRow";
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least 1 dim, got a scalar");
  check_float_dtype(op, "input", input.scalar_type());
  return s;
}

void check_float8_scales(const char* op, Float8LinearSpec& s, const at::Tensor& input,
                         const c10::optional<at::Tensor>& act_scale, const at::Tensor& weight_scale) {
  TORCH_CHECK_VALUE(input.size(-1) == s.K, op, ": input has ", input.size(-1),
                    " features in its last dim but the weight expects in_features=", s.K, " (input shape ",
                    input.sizes(), ")");
  check_float_dtype(op, "weight_scale", weight_scale.scalar_type());
  TORCH_CHECK_VALUE(weight_scale.numel() == 1 || weight_scale.numel() == s.N, op, ": weight_scale has ",
                    weight_scale.numel(), " elements, expected 1 (per tensor) or out_features=", s.N, " (per row)");
  check_on(op, weight_scale, "weight_scale", input.device());
  s.weight_per_row = weight_scale.numel() == s.N && s.N != 1;
  s.weight_scale = weight_scale.to(at::kFloat).contiguous();
  if (act_scale.has_value() && act_scale->defined()) {
    TORCH_CHECK_VALUE(!s.act_per_row, op, ": a static act_scale is one scale per tensor (act_granularity "
                      "'PerTensor'), got act_granularity 'PerRow'");
    TORCH_CHECK_VALUE(act_scale->numel() == 1, op, ": act_scale must hold one element, got shape ",
                      act_scale->sizes());
    check_float_dtype(op, "act_scale", act_scale->scalar_type());
    check_on(op, *act_scale, "act_scale", input.device());
    s.act_scale = act_scale->to(at::kFloat).reshape({1}).contiguous();
  }
}
}  // namespace

Float8LinearSpec check_float8_linear(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                     const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                     const at::Tensor& codes, const std::string& weight_dtype,
                                     const at::Tensor& weight_scale, int64_t sparse_in_features) {
  Float8LinearSpec s = float8_linear_formats(op, input, act_dtype, act_granularity, weight_dtype);
  s.codes = float8_codes_as_uint8(op, codes);
  TORCH_CHECK_VALUE(s.codes.dim() == 2, op, ": codes must be 2-d (out_features, in_features), got shape ",
                    codes.sizes());
  s.N = s.codes.size(0);
  s.K = sparse_in_features >= 0 ? sparse_in_features : s.codes.size(1);
  if (sparse_in_features >= 0)
    TORCH_CHECK_VALUE(s.K % 4 == 0 && s.codes.size(1) == k::sparse24_row_bytes(s.K), op,
                      ": 2:4 compressed codes of in_features=", s.K, " (a multiple of 4) have ",
                      s.K % 4 == 0 ? k::sparse24_row_bytes(s.K) : -1, " bytes per row, got shape ", codes.sizes());
  check_on(op, s.codes, "codes", input.device());
  s.codes = s.codes.contiguous();
  check_float8_scales(op, s, input, act_scale, weight_scale);
  return s;
}

Float8LinearSpec check_float8_linear_shape(const char* op, const at::Tensor& input, const std::string& act_dtype,
                                           const std::string& act_granularity,
                                           const c10::optional<at::Tensor>& act_scale, int64_t out_features,
                                           int64_t in_features, const std::string& weight_dtype,
                                           const at::Tensor& weight_scale) {
  Float8LinearSpec s = float8_linear_formats(op, input, act_dtype, act_granularity, weight_dtype);
  TORCH_CHECK_VALUE(out_features >= 1 && in_features >= 4 && in_features % 4 == 0, op,
                    ": needs out_features >= 1 and in_features a positive multiple of 4, got (", out_features, ", ",
                    in_features, ")");
  s.N = out_features;
  s.K = in_features;
  check_float8_scales(op, s, input, act_scale, weight_scale);
  return s;
}

void check_on(const char* op, const at::Tensor& t, const char* arg, const at::Device& device) {
  TORCH_CHECK_VALUE(t.device() == device, op, ": ", arg, " is on ", t.device(), ", the input on ", device);
}

at::Tensor on_huge_pages(const at::Tensor& t) {
  if (!t.defined() || !t.is_cpu() || !k::huge_pages_wanted(size_t(t.nbytes()))) return t;
  const auto src = t.contiguous();
  const size_t bytes = size_t(src.nbytes());
  void* p = k::allocate_weight_storage(bytes);
  auto out = at::from_blob(p, src.sizes(), [bytes](void* q) { k::free_weight_storage(q, bytes); }, src.options());
  out.copy_(src);
  return out;
}

}  // namespace ops
}  // namespace torchao_cpp
