// C++ entry points of the affine quant primitive ops (also used by the
// custom classes and the linear ops).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>

#include "../kernels/cpu/int8_gemm.h"
#include "common.h"

namespace torchao_cpp {
namespace ops {

// The checked arguments of an op, shared by its CPU and CUDA implementations
// (quant_primitives.cpp, quant_primitives_cuda.cpp).
struct ChooseQParamsPlan {
  k::QParamsSpec spec;
  k::BlockGeometry g;
  std::vector<int64_t> qshape;
  at::ScalarType sdt, zdt;
};
ChooseQParamsPlan plan_choose_qparams_affine(const at::Tensor& input, const std::string& mapping_type,
                                              at::IntArrayRef block_size, int64_t quant_min, int64_t quant_max,
                                              c10::optional<double> eps, c10::optional<at::ScalarType> scale_dtype,
                                              c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero,
                                              const std::string& zero_point_domain,
                                              const char* op = "choose_qparams_affine");
// The op's zero point from the float zero points the kernels compute.
at::Tensor zero_point_from_float(const ChooseQParamsPlan& p, const at::Tensor& zp_f);

struct QuantizePlan {
  k::ZeroPointDomain domain;
  k::BlockGeometry g;
  at::Tensor scale;  // contiguous
  at::Tensor zp_f;   // float32 zero points, undefined without
  bool zp_is_scale_dtype = true;
};
QuantizePlan plan_quantize_affine(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                  const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                  at::ScalarType output_dtype, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain);

struct DequantizePlan {
  k::ZeroPointDomain domain;
  k::BlockGeometry g;
  at::ScalarType odt;
  at::Tensor scale;  // contiguous
  at::Tensor zp_f;   // float32 (INT domain through int32), undefined without
};
DequantizePlan plan_dequantize_affine(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                      const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                      int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain,
                                      c10::optional<at::ScalarType> output_dtype);

struct Float8QParamsPlan {
  k::Float8Format fmt;
  at::ScalarType sdt;
  k::BlockGeometry g;
  std::vector<int64_t> qshape;
};
Float8QParamsPlan plan_choose_qparams_affine_float8(const char* op, const at::Tensor& input,
                                                    at::IntArrayRef block_size, const std::string& float8_dtype,
                                                    c10::optional<at::ScalarType> scale_dtype);

struct Float8Plan {
  k::Float8Format fmt;
  at::ScalarType odt;  // the result's dtype (uint8 codes for quantize)
  k::BlockGeometry g;
};
Float8Plan plan_quantize_affine_float8(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                       const at::Tensor& scale, const std::string& float8_dtype);
Float8Plan plan_dequantize_affine_float8(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                         const at::Tensor& scale, const std::string& float8_dtype,
                                         c10::optional<at::ScalarType> output_dtype);

// Rejects scales a kernel would turn into inf/NaN codes (zero, negative, non-finite, or, when
// reciprocal_must_fit, with a reciprocal that overflows the scale's dtype); `arg` names the tensor.
// Reads values: CPU tensors only.
void check_scale_values(const char* op, const char* arg, const at::Tensor& scale, bool reciprocal_must_fit = true);

// scale (and zero_point) hold one value per block and sit on input's device.
void check_qparams(const char* op, const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                   const c10::optional<at::Tensor>& zero_point, int64_t nb);
bool has_zp(const c10::optional<at::Tensor>& zp);

std::tuple<at::Tensor, at::Tensor> choose_qparams_affine(const at::Tensor& input, const std::string& mapping_type,
                                                         at::IntArrayRef block_size, int64_t quant_min,
                                                         int64_t quant_max, c10::optional<double> eps,
                                                         c10::optional<at::ScalarType> scale_dtype,
                                                         c10::optional<at::ScalarType> zero_point_dtype,
                                                         bool preserve_zero, const std::string& zero_point_domain);
at::Tensor quantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                           const c10::optional<at::Tensor>& zero_point, at::ScalarType output_dtype,
                           int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain);
at::Tensor dequantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                             const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                             const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype);
at::Tensor choose_qparams_affine_float8(const at::Tensor& input, at::IntArrayRef block_size,
                                        const std::string& float8_dtype, c10::optional<at::ScalarType> scale_dtype);
at::Tensor quantize_affine_float8(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const std::string& float8_dtype);
at::Tensor dequantize_affine_float8(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                    const std::string& float8_dtype, c10::optional<at::ScalarType> output_dtype);
// The CPU ops for ops built on them: `op` names the caller in error messages.
at::Tensor choose_qparams_affine_float8_cpu(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                            const std::string& float8_dtype,
                                            c10::optional<at::ScalarType> scale_dtype);
at::Tensor quantize_affine_float8_cpu(const char* op, const at::Tensor& input, at::IntArrayRef block_size,
                                      const at::Tensor& scale, const std::string& float8_dtype);
// The seed's per-token activation quantizers (int8_gemm.h's ActQuant): codes
// (int8), scale and zero point (zeros for the symmetric ones).
std::tuple<at::Tensor, at::Tensor, at::Tensor> per_token_quant_cpu(const char* op, const at::Tensor& input,
                                                                   kernels::ActQuant mode);

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_asymm_per_token_quant(const at::Tensor& input);
std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_symm_per_token_reduced_range_quant(const at::Tensor& input);
// Through the dispatcher (the input's device picks the CPU or CUDA kernel).
std::tuple<at::Tensor, at::Tensor, at::Tensor> call_int8_per_token_quant(const at::Tensor& input, bool asymmetric);
at::Tensor call_dequantize_affine(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype);
// HQQ: the checks both backends share, the CPU op, and the op through the dispatcher (CPU or CUDA solver).
void check_hqq(const char* op, const at::Tensor& weight, int64_t nbits, int64_t group_size);
std::tuple<at::Tensor, at::Tensor, at::Tensor> choose_qparams_and_quantize_affine_hqq(const at::Tensor& weight,
                                                                                      int64_t nbits,
                                                                                      int64_t group_size);
std::tuple<at::Tensor, at::Tensor, at::Tensor> call_choose_qparams_and_quantize_affine_hqq(const at::Tensor& weight,
                                                                                           int64_t nbits,
                                                                                           int64_t group_size);

at::Tensor pack_bits(const at::Tensor& codes, int64_t bits, int64_t quant_min);
// Zeroes the 2 smallest |w| of every group of 4 along the last dim (CPU).
at::Tensor prune_2to4(const at::Tensor& weight);
at::Tensor unpack_bits(const at::Tensor& packed, int64_t bits, int64_t quant_min, int64_t cols,
                       at::ScalarType output_dtype);

}  // namespace ops
}  // namespace torchao_cpp
