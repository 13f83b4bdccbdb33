"""quantize_, configs and quant primitives (mirrors torchao.quantization)."""
from .granularity import Granularity, PerAxis, PerGroup, PerRow, PerTensor, PerToken
from .quant_api import (
    AOBaseConfig,
    AOPerModuleConfig,
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8MMConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    FPXWeightOnlyConfig,
    GemliteUIntXWeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    UIntXWeightOnlyConfig,
    float8_dynamic_activation_float8_weight,
    float8_static_activation_float8_weight,
    float8_weight_only,
    fpx_weight_only,
    gemlite_uintx_weight_only,
    int4_dynamic_activation_int4_weight,
    int4_weight_only,
    int8_dynamic_activation_int4_weight,
    int8_dynamic_activation_int8_semi_sparse_weight,
    int8_dynamic_activation_int8_weight,
    insert_observers_,
    int8_weight_only,
    quantize_,
    register_quantize_module_handler,
    swap_conv2d_1x1_to_linear,
    uintx_weight_only,
)
from .linear_activation_weight_observed_tensor import LinearActivationWeightObservedTensor
from .observer import AffineQuantizedMinMaxObserver, AffineQuantizedObserverBase, get_block_size
from .weight_tensor_linear_activation_quantization import (
    WeightTensorWithLinearActivationQuantizationMetadata,
    to_weight_tensor_with_linear_activation_quantization_metadata,
)
from .quant_primitives import (
    MappingType,
    ZeroPointDomain,
    choose_qparams_affine,
    choose_qparams_affine_float8,
    choose_qparams_affine_floatx,
    dequantize_affine,
    dequantize_affine_float8,
    dequantize_affine_floatx,
    quantize_affine,
    quantize_affine_float8,
    quantize_affine_floatx,
)

__all__ = [name for name in dir() if not name.startswith("_")]
