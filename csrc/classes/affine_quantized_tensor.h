// AffineQuantizedTensor: codes (packed as the layout says), scale, zero point
// and the metadata to dequantize them; torchao's AffineQuantizedTensor as a
// TorchScript custom class. LinearActivationQuantizedTensor pairs such a
// weight with the activation quantizer applied to a linear's input.
#pragma once

#include <torch/custom_class.h>
#include <torch/library.h>
#include <torch/script.h>

#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "../kernels/cpu/int8_gemm.h"
#include "../kernels/cpu/sparse24.h"
#include "layout.h"

namespace torchao_cpp {
namespace classes {

struct AffineQuantizedTensor : torch::CustomClassHolder {
  // Builds from plain (unpacked) codes and packs them for `layout`.
  AffineQuantizedTensor(const at::Tensor& codes, const at::Tensor& scale, const c10::optional<at::Tensor>& zero_point,
                        std::vector<int64_t> block_size, int64_t quant_min, int64_t quant_max,
                        const std::string& zero_point_domain, const std::string& layout, const std::string& code_dtype,
                        const std::string& dtype);

  at::Tensor dequantize() const;
  // (codes, scale, zero_point) with codes unpacked to one per element.
  std::tuple<at::Tensor, at::Tensor, c10::optional<at::Tensor>> get_plain() const;
  // input @ dequantize()^T + bias, computed from the stored codes.
  at::Tensor linear(const at::Tensor& input, const c10::optional<at::Tensor>& bias) const;
  std::string repr() const;
  // A copy on `device` ("cpu", "cuda", "cuda:1", ...).
  c10::intrusive_ptr<AffineQuantizedTensor> to(const std::string& device) const;
  std::string device() const;
  // How the linear kernels read `data`: "plain", "packed" or a float8 name.
  std::string code_format() const;
  // Bytes held by codes, scales and zero points.
  int64_t nbytes() const;

  using State = std::tuple<int64_t, at::Tensor, at::Tensor, c10::optional<at::Tensor>, std::vector<int64_t>,
                           std::vector<int64_t>, std::string, int64_t, int64_t, std::string, std::string, std::string>;
  State getstate() const;
  // Rebuilds from untrusted state: every field is validated.
  static c10::intrusive_ptr<AffineQuantizedTensor> setstate(State state);

  at::Tensor data;  // packed codes
  at::Tensor scale;
  c10::optional<at::Tensor> zero_point;
  std::vector<int64_t> block_size;
  std::vector<int64_t> shape;
  std::string dtype;  // float dtype of the original weight
  int64_t quant_min = 0, quant_max = 0;
  std::string zero_point_domain;
  std::string layout;
  std::string code_dtype;

  static constexpr int64_t kStateVersion = 1;

  // SemiSparseLayout codes on the CPU with their row sums and scales, for the
  // 2:4 GEMM (built on first use; the rows stay in `data`); nullptr otherwise.
  const kernels::Sparse24Weights* sparse24() const;
  // The int8 codes packed for the VNNI GEMM with their scales, built on first
  // use and kept (derived data: never pickled); nullptr where the GEMM does not
  // apply (not 2-d plain int8 codes, nonzero zero points, unsuitable groups).
  const kernels::PackedInt8Weights* int8_packed() const;
  // The zero point as contiguous float32, what the kernels read, converted
  // once (integer zero points would otherwise be converted on every call);
  // nullopt without one.
  const c10::optional<at::Tensor>& zero_point_f32() const;
  // The scale as contiguous float32 (exact; the scale itself where it already
  // is), converted once: what the CUDA int8 x int8 linear reads (converting a
  // bfloat16 scale on every call cost a 3.5 us kernel on an H100).
  const at::Tensor& scale_f32() const;
  // What the CUDA kernels read: integer zero points in the weight's float
  // dtype (exact), converted once instead of on every call; nullopt where
  // they are all zero (zero_point_domain_for_cuda then says NONE).
  const c10::optional<at::Tensor>& zero_point_for_cuda() const;
  // zero_point_domain, or NONE where every integer zero point is 0 (the same
  // weight, W = q * s: Int8WeightOnlyConfig's symmetric codes), which spares
  // the CUDA kernels the zero points' loads and subtractions.
  const std::string& zero_point_domain_for_cuda() const;

  // The codes one per byte on the codes' device (bit-packed integer codes
  // unpacked to int8, 2:4 compressed rows expanded, once): what the CUDA int8
  // tensor-core GEMM and the float8 kernels read, and the weight-only kernels
  // where a packed shape is not theirs. Not for float-x codes.
  const at::Tensor& int8_codes_for_cuda() const;
  // SemiSparseLayout int8 weights on CUDA: cuSPARSELt's compressed form
  // (op sparse24_cusparselt_compress) for the sparse tensor cores, built once
  // (when the weight moves to the device); undefined where the build has no
  // cuSPARSELt or it refuses the shape, and the codes then run dense.
  const at::Tensor& cusparselt_codes_for_cuda() const;
  // MarlinSparseLayout and CutlassSemiSparseLayout weights on CUDA: the kept
  // codes and metadata arranged as the sparse tensor cores' operands (ops
  // sparse24_int4_mma_pack, 3 bits per weight, and sparse24_float8_mma_pack,
  // 5), which ops sparse24_int4_linear and sparse24_float8_linear read at
  // every M; built once. MarlinSparseLayout needs in_features and the group
  // multiples of 128 (else undefined: the dense int8 codes run instead).
  const std::pair<at::Tensor, at::Tensor>& mma_sp_form_for_cuda() const;

  // Builds now, on a CUDA weight, the device forms its linears read
  // (cuSPARSELt's compressed codes, int8 codes expanded from packed or 2:4
  // ones, zero points in the float dtype), so that none is built at a first
  // call under CUDA-graph capture; nothing on the CPU. Run by every path that
  // makes a CUDA weight: the constructor, to() and __setstate__.
  void prepare_device_forms() const;

  // Empty shell for setstate, which fills and validates it.
  AffineQuantizedTensor() = default;
  // Checks every field for consistency; `what` prefixes messages.
  void validate(const char* what) const;

 private:
  mutable std::once_flag int8_packed_once_;
  mutable std::unique_ptr<kernels::PackedInt8Weights> int8_packed_;
  mutable std::once_flag sparse24_once_;
  mutable std::unique_ptr<kernels::Sparse24Weights> sparse24_;
  mutable std::once_flag zero_point_f32_once_;
  mutable c10::optional<at::Tensor> zero_point_f32_;
  mutable std::once_flag scale_f32_once_;
  mutable at::Tensor scale_f32_;
  mutable std::once_flag zero_point_cuda_once_;
  mutable c10::optional<at::Tensor> zero_point_cuda_;
  mutable std::string zero_point_domain_cuda_;
  mutable std::once_flag int8_codes_cuda_once_;
  mutable at::Tensor int8_codes_cuda_;
  mutable std::once_flag cusparselt_once_;
  mutable at::Tensor cusparselt_codes_;
  mutable std::once_flag mma_sp_once_;
  mutable std::pair<at::Tensor, at::Tensor> mma_sp_form_;
};

struct LinearActivationQuantizedTensor : torch::CustomClassHolder {
  // act_scale: the static activation scale of "float8_*_static" (one
  // element), None otherwise. fast_accum: the float8 GEMM may use the
  // tensor cores' fast (lower precision) accumulation (CUDA only).
  LinearActivationQuantizedTensor(c10::intrusive_ptr<AffineQuantizedTensor> weight, const std::string& act_quant,
                                  const c10::optional<at::Tensor>& act_scale = c10::nullopt, bool fast_accum = false);

  at::Tensor linear(const at::Tensor& input, const c10::optional<at::Tensor>& bias) const;
  // The activation quantizer applied on its own: dequantize(quantize(x)).
  at::Tensor quantize_dequantize_input(const at::Tensor& input) const;
  std::string repr() const;
  // True where the quantizer leaves this input in float (noop_decode).
  bool skips_input(const at::Tensor& input) const;
  // A copy on `device`.
  c10::intrusive_ptr<LinearActivationQuantizedTensor> to(const std::string& device) const;

  using State = std::tuple<int64_t, AffineQuantizedTensor::State, std::string, c10::optional<at::Tensor>, bool>;
  State getstate() const;
  static c10::intrusive_ptr<LinearActivationQuantizedTensor> setstate(State state);
  static constexpr int64_t kStateVersion = 2;

  c10::intrusive_ptr<AffineQuantizedTensor> weight;
  // int8 per token: "int8_asymm_per_token" | "int8_symm_per_token_reduced_range" |
  // "int8_symm_per_token_reduced_range_noop_decode";
  // float8: "float8_{e4m3fn,e5m2}_{per_tensor,per_row,static}".
  std::string act_quant;
  c10::optional<at::Tensor> act_scale;
  bool fast_accum = false;
};

// Registers both classes with the torchao_cpp library (called from its
// TORCH_LIBRARY block, before the schemas that name them).
void register_classes(torch::Library& m);

}  // namespace classes
}  // namespace torchao_cpp
