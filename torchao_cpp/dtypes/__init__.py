"""Quantized tensor types, layouts and stand-in dtypes (mirrors torchao.dtypes)."""
from ._dtypes import (
    Float8Dtype,
    SubByteDtype,
    code_dtype_name,
    dtype_info,
    dtype_range,
    float8_e4m3fn,
    float8_e5m2,
    int1,
    int2,
    int3,
    int4,
    int5,
    int6,
    int7,
    is_float8,
    storage_dtype,
    uint1,
    uint2,
    uint3,
    uint4,
    uint5,
    uint6,
    uint7,
)
from .affine_quantized_tensor import AffineQuantizedTensor, LinearActivationQuantizedTensor
from .layouts import (
    CutlassInt4PackedLayout,
    Float8Layout,
    FloatxTensorCoreLayout,
    Int4CPULayout,
    Layout,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    PlainLayout,
    QDQLayout,
    TensorCoreTiledLayout,
    UintxLayout,
)

__all__ = [
    "AffineQuantizedTensor", "LinearActivationQuantizedTensor", "Layout", "PlainLayout", "TensorCoreTiledLayout",
    "Int4CPULayout", "CutlassInt4PackedLayout", "UintxLayout", "QDQLayout", "Float8Layout", "FloatxTensorCoreLayout", "PackedLinearInt8DynamicActivationIntxWeightLayout", "SubByteDtype", "Float8Dtype", "float8_e4m3fn",
    "float8_e5m2", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7", "int1", "int2", "int3", "int4",
    "int5", "int6", "int7", "dtype_info", "dtype_range", "storage_dtype", "code_dtype_name", "is_float8",
]
