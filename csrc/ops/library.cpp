// The torchao_cpp operator library: every schema, in one table of contents.
// Kernels are registered per dispatch key beside their implementations
// (quant_primitives.cpp, linear.cpp).
#include <torch/library.h>

#include "../classes/affine_quantized_tensor.h"

TORCH_LIBRARY(torchao_cpp, m) {
  // Classes: AffineQuantizedTensor, LinearActivationQuantizedTensor (csrc/classes/).
  torchao_cpp::classes::register_classes(m);

  // Affine quant primitives (torchao.quantization.quant_primitives).
  m.def(
      "choose_qparams_affine(Tensor input, str mapping_type, int[] block_size, int quant_min, int quant_max, "
      "float? eps=None, ScalarType? scale_dtype=None, ScalarType? zero_point_dtype=None, bool preserve_zero=True, "
      "str zero_point_domain=\"INT\") -> (Tensor scale, Tensor zero_point)");
  m.def(
      "quantize_affine(Tensor input, int[] block_size, Tensor scale, Tensor? zero_point, ScalarType output_dtype, "
      "int quant_min, int quant_max, str zero_point_domain=\"INT\") -> Tensor");
  m.def(
      "dequantize_affine(Tensor input, int[] block_size, Tensor scale, Tensor? zero_point, int quant_min, "
      "int quant_max, str zero_point_domain=\"INT\", ScalarType? output_dtype=None) -> Tensor");

  // float8 (codes are raw bytes in uint8; e4m3fn or e5m2).
  m.def(
      "choose_qparams_affine_float8(Tensor input, int[] block_size, str float8_dtype=\"e4m3fn\", "
      "ScalarType? scale_dtype=None) -> Tensor");
  m.def("quantize_affine_float8(Tensor input, int[] block_size, Tensor scale, str float8_dtype=\"e4m3fn\") -> Tensor");
  m.def(
      "dequantize_affine_float8(Tensor input, int[] block_size, Tensor scale, str float8_dtype=\"e4m3fn\", "
      "ScalarType? output_dtype=None) -> Tensor");

  // float-x (FPXWeightOnlyConfig): 2-d input, one scale per row, codes as unpacked uint8 (torchao's
  // floatx_unpacked: sign, ebits exponent and mbits mantissa bits, 1 + ebits + mbits <= 8).
  m.def("choose_qparams_affine_floatx(Tensor input, int ebits, int mbits) -> Tensor");
  m.def("quantize_affine_floatx(Tensor input, Tensor scale, int ebits, int mbits) -> Tensor");
  m.def(
      "dequantize_affine_floatx(Tensor input, Tensor scale, int ebits, int mbits, ScalarType? output_dtype=None) -> "
      "Tensor");

  // The seed's per-token activation quantizers: (codes, scale, zero_point).
  m.def("int8_asymm_per_token_quant(Tensor input) -> (Tensor, Tensor, Tensor)");
  m.def("int8_symm_per_token_reduced_range_quant(Tensor input) -> (Tensor, Tensor, Tensor)");

  // HQQ (torchao's choose_qparams_and_quantize_affine_hqq with its default solver) of a 2-d weight in
  // groups of group_size along the last dim: uint8 codes in [0, 2^nbits - 1] and the FLOAT-domain
  // float32 scale and zero point per group (each (N, K / group_size)).
  m.def(
      "choose_qparams_and_quantize_affine_hqq(Tensor weight, int nbits, int group_size) -> (Tensor codes, "
      "Tensor scale, Tensor zero_point)");

  // Bit packing of N-bit codes along the last dim (UintxLayout).
  m.def("pack_bits(Tensor codes, int bits, int quant_min) -> Tensor");
  m.def("unpack_bits(Tensor packed, int bits, int quant_min, int cols, ScalarType output_dtype) -> Tensor");

  // 2:4 semi-structured pruning along the last dim (SemiSparseLayout's pre_process).
  m.def("prune_2to4(Tensor weight) -> Tensor");

  // Quantized linears.
  m.def(
      "weight_only_linear(Tensor input, Tensor codes, str code_format, int bits, int out_features, int in_features, "
      "int group_size, Tensor scale, Tensor? zero_point, int quant_min, int quant_max, str zero_point_domain, "
      "Tensor? bias=None) -> Tensor");
  m.def(
      "int8_dynamic_linear(Tensor input, str act_quant, Tensor codes, str code_format, int bits, int out_features, "
      "int in_features, int group_size, Tensor weight_scale, Tensor? weight_zero_point, int quant_min, "
      "Tensor? bias=None) -> Tensor");
  // A 2:4 weight (N, K; at most 2 nonzeros in each group of 4 along K) in cuSPARSELt's compressed form, for
  // the sparse tensor cores (CUDA only): int8 codes for int8_dynamic_linear's "cusparselt" code format,
  // bfloat16 values for sparse24_linear. Empty where the build has no cuSPARSELt or it refuses the shape, and
  // for float16 values (they run dense). The 2:4 pattern is not checked (a sync): cuSPARSELt keeps two values
  // per group of 4, so other weights give wrong products; the quantized-tensor classes only pass 2:4 weights.
  m.def("sparse24_cusparselt_compress(Tensor codes) -> Tensor");
  m.def("sparse24_linear(Tensor input, Tensor weight, int out_features, int in_features, Tensor? bias=None) -> Tensor");
  // MarlinSparseLayout (2:4 signed 4-bit codes) on the sparse tensor cores (mma.sp): its compressed rows
  // rearranged once, on the CPU, as the instruction's operands (values, metadata; 3 bits per weight), and the
  // linear that reads them (CUDA): W = code * scale[n, k / group_size] rounded once to the input's dtype.
  m.def("sparse24_int4_mma_pack(Tensor rows, int out_features, int in_features) -> (Tensor values, Tensor meta)");
  m.def(
      "sparse24_int4_linear(Tensor input, Tensor values, Tensor meta, int out_features, int in_features, "
      "int group_size, Tensor scale, Tensor? bias=None) -> Tensor");
  // CutlassSemiSparseLayout (2:4 float8 codes) likewise (mma.sp m16n8k64, compute capability 8.9 and newer;
  // 5 bits per weight), and float8_linear on that form (CUDA).
  m.def("sparse24_float8_mma_pack(Tensor rows, int out_features, int in_features) -> (Tensor values, Tensor meta)");
  m.def(
      "sparse24_float8_linear(Tensor input, str act_dtype, str act_granularity, Tensor? act_scale, Tensor values, "
      "Tensor meta, int out_features, int in_features, str weight_dtype, Tensor weight_scale, Tensor? bias=None, "
      "bool fast_accum=False) -> Tensor");
  // float8 activations (quantized per tensor or per row, or with a static act_scale) x float8 weights,
  // as torch._scaled_mm: codes (N, K), weight_scale 1 or N elements.
  m.def(
      "float8_linear(Tensor input, str act_dtype, str act_granularity, Tensor? act_scale, Tensor codes, "
      "str weight_dtype, Tensor weight_scale, Tensor? bias=None, bool fast_accum=False) -> Tensor");
  // Quantizing a weight: a config's handler from the C++ registry (csrc/api/quant_configs.cpp),
  // and the generic affine quantizer behind them.
  m.def("registered_quant_configs() -> str[]");
  m.def("validate_quant_config(str config_type, Dict(str, Any) fields) -> ()");
  m.def(
      "quantize_weight(Tensor weight, str config_type, Dict(str, Any) fields, str fqn) -> "
      "(__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor?, "
      "__torch__.torch.classes.torchao_cpp.LinearActivationQuantizedTensor?, str)");
  m.def("check_weight(Tensor weight, str config_type, Dict(str, Any) fields, str fqn) -> ()");
  m.def(
      "affine_quantize(Tensor weight, str mapping_type, int[] block_size, str code_dtype, int quant_min, "
      "int quant_max, float? eps=None, ScalarType? scale_dtype=None, ScalarType? zero_point_dtype=None, "
      "bool preserve_zero=True, str zero_point_domain=\"INT\", str layout=\"PlainLayout\") -> "
      "__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor");

  // Linears over the quantized-tensor classes (what scripted models call).
  m.def(
      "affine_quantized_linear(Tensor input, __torch__.torch.classes.torchao_cpp.AffineQuantizedTensor weight, "
      "Tensor? bias=None) -> Tensor");
  m.def(
      "activation_quantized_linear(Tensor input, "
      "__torch__.torch.classes.torchao_cpp.LinearActivationQuantizedTensor weight, Tensor? bias=None) -> Tensor");
}

// torch 1.13 reaches a Meta kernel through AutogradMeta only if something is
// registered there; the ops are not differentiable, so fall through.
TORCH_LIBRARY_IMPL(torchao_cpp, AutogradMeta, m) {
  for (const char* op :
       {"choose_qparams_affine", "quantize_affine", "dequantize_affine", "choose_qparams_affine_float8",
        "quantize_affine_float8", "dequantize_affine_float8", "choose_qparams_affine_floatx",
        "quantize_affine_floatx", "dequantize_affine_floatx", "int8_asymm_per_token_quant",
        "int8_symm_per_token_reduced_range_quant", "choose_qparams_and_quantize_affine_hqq", "pack_bits",
        "unpack_bits", "prune_2to4", "weight_only_linear",
        "int8_dynamic_linear", "sparse24_cusparselt_compress", "sparse24_linear", "sparse24_int4_mma_pack", "sparse24_int4_linear",
        "sparse24_float8_mma_pack", "sparse24_float8_linear", "float8_linear", "affine_quantized_linear", "activation_quantized_linear",
        "quantize_weight", "check_weight", "affine_quantize"})
    m.impl(op, torch::CppFunction::makeFallthrough());
}
