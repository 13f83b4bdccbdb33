#pragma once

#include <ATen/ATen.h>

#include <string>

#include "../classes/affine_quantized_tensor.h"
#include "../kernels/cpu/int8_gemm.h"

namespace torchao_cpp {
namespace ops {

at::Tensor weight_only_linear(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                              int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                              const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point, int64_t quant_min,
                              int64_t quant_max, const std::string& zero_point_domain,
                              const c10::optional<at::Tensor>& bias);
// act_quant of int8_dynamic_linear: "asymmetric" | "symmetric_reduced_range" | "int4_symmetric".
kernels::ActQuant parse_act_quant(const char* op, const std::string& act_quant);
at::Tensor int8_dynamic_linear(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                               const std::string& code_format, int64_t bits, int64_t out_features, int64_t in_features,
                               int64_t group_size, const at::Tensor& weight_scale,
                               const c10::optional<at::Tensor>& weight_zero_point, int64_t quant_min,
                               const c10::optional<at::Tensor>& bias);
// float8 activations (quantized here: per tensor or per row, or with a static
// act_scale) x float8 weights (weight_scale: 1 or out_features elements).
at::Tensor float8_linear(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                         const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                         const std::string& weight_dtype, const at::Tensor& weight_scale,
                         const c10::optional<at::Tensor>& bias, bool fast_accum);

// weight_only_linear, int8_dynamic_linear and float8_linear through the dispatcher, so the input's device picks the
// kernel (what the quantized-tensor classes call).
at::Tensor call_weight_only_linear(const at::Tensor& input, const at::Tensor& codes, const std::string& code_format,
                                   int64_t bits, int64_t out_features, int64_t in_features, int64_t group_size,
                                   const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                                   int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain,
                                   const c10::optional<at::Tensor>& bias);

at::Tensor call_int8_dynamic_linear(const at::Tensor& input, const std::string& act_quant, const at::Tensor& codes,
                                    const std::string& code_format, int64_t bits, int64_t out_features,
                                    int64_t in_features, int64_t group_size, const at::Tensor& weight_scale,
                                    const c10::optional<at::Tensor>& weight_zero_point, int64_t quant_min,
                                    const c10::optional<at::Tensor>& bias);

// sparse24_cusparselt_compress through the dispatcher: cuSPARSELt's form of 2:4 int8 codes on CUDA, or an
// empty tensor where there is none.
at::Tensor call_sparse24_cusparselt_compress(const at::Tensor& codes);

// sparse24_int4_mma_pack and sparse24_int4_linear through the dispatcher: the
// sparse tensor cores' form of MarlinSparseLayout's compressed rows (built on
// the CPU), and the linear that reads it (CUDA).
std::tuple<at::Tensor, at::Tensor> call_sparse24_int4_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                               int64_t in_features);
at::Tensor call_sparse24_int4_linear(const at::Tensor& input, const at::Tensor& values, const at::Tensor& meta,
                                     int64_t out_features, int64_t in_features, int64_t group_size,
                                     const at::Tensor& scale, const c10::optional<at::Tensor>& bias);

// sparse24_float8_mma_pack and sparse24_float8_linear through the dispatcher: the same for
// CutlassSemiSparseLayout's float8 rows, and float8_linear on that form (CUDA).
std::tuple<at::Tensor, at::Tensor> call_sparse24_float8_mma_pack(const at::Tensor& rows, int64_t out_features,
                                                                 int64_t in_features);
at::Tensor call_sparse24_float8_linear(const at::Tensor& input, const std::string& act_dtype,
                                       const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                       const at::Tensor& values, const at::Tensor& meta, int64_t out_features,
                                       int64_t in_features, const std::string& weight_dtype,
                                       const at::Tensor& weight_scale, const c10::optional<at::Tensor>& bias,
                                       bool fast_accum);

at::Tensor call_float8_linear(const at::Tensor& input, const std::string& act_dtype, const std::string& act_granularity,
                              const c10::optional<at::Tensor>& act_scale, const at::Tensor& codes,
                              const std::string& weight_dtype, const at::Tensor& weight_scale,
                              const c10::optional<at::Tensor>& bias, bool fast_accum);

// int8_dynamic_linear for pre-packed int8 weights (with their scales, no zero points).
at::Tensor int8_dynamic_linear_packed(const at::Tensor& input, const std::string& act_quant,
                                      const kernels::PackedInt8Weights& weight, const c10::optional<at::Tensor>& bias);
// The same on 2:4 sparse weights (SemiSparseLayout), read compressed.
at::Tensor int8_dynamic_linear_sparse24(const at::Tensor& input, const std::string& act_quant,
                                        const kernels::Sparse24Weights& weight, const c10::optional<at::Tensor>& bias);

// Activation rows up to which 2:4 linears gather the kept codes' activations
// (sparse24_gemm_f32); above, the float GEMM on expanded panels is faster.
constexpr int64_t kSparse24GatherMaxRows = 8;

// weight_only_linear on 2:4 compressed rows (N x sparse24_row_bytes(in_features)) of
// one-byte codes standing for `values`, times `scale` (per row or per group of
// group_size columns): the kept codes only (sparse24_gemm_f32).
at::Tensor weight_only_linear_sparse24(const at::Tensor& input, const at::Tensor& rows, int64_t in_features,
                                       kernels::Sparse24Values values, const at::Tensor& scale, int64_t group_size,
                                       const c10::optional<at::Tensor>& bias);

// float8_linear on 2:4 sparse float8 weights (CutlassSemiSparseLayout): `rows`
// holds the compressed rows (sparse24.h) of an N x in_features weight, read compressed.
at::Tensor float8_linear_sparse24(const at::Tensor& input, const std::string& act_dtype,
                                  const std::string& act_granularity, const c10::optional<at::Tensor>& act_scale,
                                  const at::Tensor& rows, int64_t in_features,
                                  const std::string& weight_dtype, const at::Tensor& weight_scale,
                                  const c10::optional<at::Tensor>& bias);

// The linears over the quantized-tensor classes: device-independent, the
// classes route to the kernels through the dispatcher.
at::Tensor affine_quantized_linear(const at::Tensor& input,
                                   const c10::intrusive_ptr<classes::AffineQuantizedTensor>& weight,
                                   const c10::optional<at::Tensor>& bias);
at::Tensor activation_quantized_linear(const at::Tensor& input,
                                       const c10::intrusive_ptr<classes::LinearActivationQuantizedTensor>& weight,
                                       const c10::optional<at::Tensor>& bias);

}  // namespace ops
}  // namespace torchao_cpp
