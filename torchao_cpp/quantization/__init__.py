"""quantize_, configs and quant primitives (mirrors torchao.quantization)."""
from .granularity import Granularity, PerAxis, PerGroup, PerRow, PerTensor, PerToken
from .quant_api import (
    AOBaseConfig,
    AOPerModuleConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8MMConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
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
    int4_weight_only,
    int8_dynamic_activation_int4_weight,
    int8_dynamic_activation_int8_weight,
    int8_weight_only,
    quantize_,
    register_quantize_module_handler,
    swap_conv2d_1x1_to_linear,
    uintx_weight_only,
)
from .quant_primitives import (
    MappingType,
    ZeroPointDomain,
    choose_qparams_affine,
    choose_qparams_affine_float8,
    dequantize_affine,
    dequantize_affine_float8,
    quantize_affine,
    quantize_affine_float8,
)

__all__ = [name for name in dir() if not name.startswith("_")]
