"""How each golden case maps onto this project's primitives.

`compute(case)` returns (codes, scale, zero_point) computed here for the case's
weight (or input, for the activation quantizers). Cases that this project does
not cover yet are listed in NOT_COVERED with the reason, so none is skipped
silently.
"""
import torch

from torchao_cpp.dtypes import uint1, uint2, uint3, uint4, uint5, uint6, uint7
from torchao_cpp.dtypes import float8_e4m3fn, float8_e5m2, int1, int2, int3, int4, int5, int6, int7
from torchao_cpp.quantization import quant_primitives as qp
from torchao_cpp.quantization.quant_api import (
    Float8DynamicActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    FPXWeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    UIntXWeightOnlyConfig,
    _handler_for,
)
from torchao_cpp.dtypes.layouts import Int4CPULayout, TensorCoreTiledLayout
from torchao_cpp.quantization.granularity import PerAxis, PerGroup, PerRow, PerTensor
from torchao_cpp.quantization.quant_primitives import MappingType

FP32_EPS = torch.finfo(torch.float32).eps
INTX = {1: int1, 2: int2, 3: int3, 4: int4, 5: int5, 6: int6, 7: int7, 8: torch.int8}
UINTX = {1: uint1, 2: uint2, 3: uint3, 4: uint4, 5: uint5, 6: uint6, 7: uint7}

NOT_COVERED = {
    "int4wo_hqq_g64_bf16": "torchao's own run of this case failed (the file records a KeyError and no weight): "
                           "nothing to compare; HQQ is checked against a reference in test_hqq.py",
}


def _config(case):
    """The config object of this project that the case's torchao config names."""
    name, cfg = case["name"], case["config"]
    if name.startswith("int8wo"):
        return Int8WeightOnlyConfig(group_size=64 if "g64" in name else None)
    if name.startswith("int8dq"):
        return Int8DynamicActivationInt8WeightConfig(
            act_mapping_type=MappingType.ASYMMETRIC if "asym" in name else MappingType.SYMMETRIC)
    if name.startswith("int4wo"):
        g = int(name.split("_g")[1].split("_")[0])
        return Int4WeightOnlyConfig(group_size=g, layout=Int4CPULayout() if "_cpu_" in name else TensorCoreTiledLayout())
    if name.startswith("8da4w"):
        g = int(name.split("_g")[1].split("_")[0])
        return Int8DynamicActivationInt4WeightConfig(
            group_size=g, act_mapping_type=MappingType.SYMMETRIC if "sym_act" in name else MappingType.ASYMMETRIC)
    if name.startswith("intxwo") or name.startswith("8daintx"):
        bits = int(name.split("_int")[1].split("_")[0])
        gran = PerAxis(0) if "axis0" in name else PerGroup(32)
        mapping = MappingType.ASYMMETRIC if ("asym" in name and "asymw" not in name) or "asymw" in name else MappingType.SYMMETRIC
        if name.startswith("intxwo"):
            return IntxWeightOnlyConfig(weight_dtype=INTX[bits], granularity=gran, mapping_type=mapping)
        return Int8DynamicActivationIntxWeightConfig(
            weight_dtype=INTX[bits], weight_granularity=gran, weight_mapping_type=mapping,
            act_mapping_type=MappingType.SYMMETRIC if "symact" in name else MappingType.ASYMMETRIC)
    if name.startswith("uintxwo"):
        bits = int(name.split("_uint")[1].split("_")[0])
        g = int(name.split("_g")[1].split("_")[0])
        return UIntXWeightOnlyConfig(dtype=UINTX[bits] if bits < 8 else torch.uint8, group_size=g)
    if name.startswith("fp8wo"):
        return Float8WeightOnlyConfig(weight_dtype=float8_e5m2 if "e5m2" in name else float8_e4m3fn)
    if name.startswith("fp6_") or name.startswith("fp5_"):  # e.g. "FPXWeightOnlyConfig(ebits=3, mbits=2)"
        fields = dict(kv.split("=") for kv in cfg[cfg.index("(") + 1: -1].split(", "))
        return FPXWeightOnlyConfig(ebits=int(fields["ebits"]), mbits=int(fields["mbits"]))
    if name.startswith("fp8dq"):
        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow() if "_row_" in name else PerTensor())
    raise KeyError(f"no mapping for golden case {name} ({cfg})")


def quantized_weight(case):
    """Runs this project's handler for the case's config on its weight."""
    cfg = _config(case)
    w = _handler_for(cfg)(case["weight"], cfg, case["name"])
    return cfg, w


def compute(case):
    """(codes, scale, zero_point or None) as this project computes them."""
    name = case["name"]
    if name.startswith("act__int8_asymm"):
        return qp._int8_asymm_per_token_quant(case["input"])
    if name.startswith("act__int8_symm"):
        return qp._int8_symm_per_token_reduced_range_quant(case["input"])
    _, w = quantized_weight(case)
    if w is None:
        raise ValueError(f"{name}: this project skips the layer (torchao did too: {case['weight_type']})")
    aqt = getattr(w, "original_weight_tensor", w)
    return aqt.get_plain()
