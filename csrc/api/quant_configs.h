// The registry of quantization configs: for each config type (by the seed's
// class name), a validator of its fields and the handler that quantizes a
// weight (the seed's register_quantize_module_handler, in C++). The Python
// configs are thin: they pass their fields here.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>

#include <functional>
#include <string>
#include <vector>

#include "../classes/affine_quantized_tensor.h"

namespace torchao_cpp {
namespace api {

// A config's fields; dtypes, layouts, granularities and enums are given by name.
using ConfigFields = c10::Dict<std::string, c10::IValue>;

struct QuantizedWeight {
  c10::intrusive_ptr<classes::AffineQuantizedTensor> weight;  // null: the layer is skipped
  std::string act_quant;                                      // empty: weight-only
  c10::optional<at::Tensor> act_scale;                        // float8 static activation scale
  bool fast_accum = false;                                    // float8 GEMM accumulation (mm_config)
  std::string skip_reason;                                    // why it was skipped (logged by quantize_)
};

using ConfigValidator = std::function<void(const ConfigFields&)>;
using QuantizeHandler =
    std::function<QuantizedWeight(const at::Tensor& weight, const ConfigFields& fields, const std::string& fqn)>;

// max_weight_dim: 2 for linear weights; 3 where the config also quantizes
// batched (expert) weights, as the seed's float8 configs.
void register_config(const std::string& config_type, ConfigValidator validate, QuantizeHandler handler,
                     int64_t max_weight_dim = 2);
std::vector<std::string> registered_configs();
// Raises ValueError / TypeError / NotImplementedError naming "Config.field".
void validate_config(const std::string& config_type, const ConfigFields& fields);
// What quantize_weight would refuse about this weight (config fields, rank, dtype, the handler's own
// refusals, NaN/Inf, values too large to quantize), checked without quantizing: quantize_ checks every
// layer before it replaces any. The values of a layer the config skips are not looked at (as the seed).
void check_weight(const at::Tensor& weight, const std::string& config_type, const ConfigFields& fields,
                  const std::string& fqn);
QuantizedWeight quantize_weight(const at::Tensor& weight, const std::string& config_type, const ConfigFields& fields,
                                const std::string& fqn);

// Quantizes `weight` into an AffineQuantizedTensor: choose_qparams_affine +
// quantize_affine (or their float8 forms), then packing for `layout`.
c10::intrusive_ptr<classes::AffineQuantizedTensor> affine_quantize(
    const at::Tensor& weight, const std::string& mapping_type, std::vector<int64_t> block_size,
    const std::string& code_dtype, int64_t quant_min, int64_t quant_max, c10::optional<double> eps,
    c10::optional<at::ScalarType> scale_dtype, c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero,
    const std::string& zero_point_domain, const std::string& layout);

}  // namespace api
}  // namespace torchao_cpp
