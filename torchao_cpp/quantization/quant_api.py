"""quantize_ and the quantization configs (mirrors torchao 0.11's quant_api.py).

Example:
    >>> import torch, torchao_cpp
    >>> from torchao_cpp.quantization import quantize_, Int4WeightOnlyConfig
    >>> m = torch.nn.Sequential(torch.nn.Linear(128, 16))
    >>> quantize_(m, Int4WeightOnlyConfig(group_size=64))
    >>> m[0].weight.layout
    'TensorCoreTiledLayout'
"""
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import torch
import torch.nn as nn

from ..dtypes import _dtypes
from ..dtypes.affine_quantized_tensor import AffineQuantizedTensor, LinearActivationQuantizedTensor, _QuantizedTensorBase
from ..dtypes.layouts import Float8Layout, Int4CPULayout, Layout, PlainLayout, QDQLayout, TensorCoreTiledLayout, UintxLayout
from .granularity import Granularity, PerAxis, PerGroup
from .quant_primitives import MappingType, ZeroPointDomain

logger = logging.getLogger(__name__)

_FP32_EPS = torch.finfo(torch.float32).eps


class AOBaseConfig:
    """Base class of every quantization config (the seed's AOBaseConfig).

    Example:
        >>> isinstance(Int8WeightOnlyConfig(), AOBaseConfig)
        True
    """


def _check_sym_or_asym(cfg: Any, name: str) -> None:
    value = getattr(cfg, name)
    if value not in (MappingType.SYMMETRIC, MappingType.ASYMMETRIC):
        raise ValueError(f"{type(cfg).__name__}.{name} must be SYMMETRIC or ASYMMETRIC, got {value}")


def _check_type(cfg: Any, name: str, value: Any, types_: Tuple[type, ...], allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) and bool not in types_:
        raise TypeError(f"{type(cfg).__name__}.{name} must be {'/'.join(t.__name__ for t in types_)}, got {value!r}")
    if not isinstance(value, types_):
        raise TypeError(f"{type(cfg).__name__}.{name} must be {'/'.join(t.__name__ for t in types_)}, got {value!r}")


@dataclass
class Int8WeightOnlyConfig(AOBaseConfig):
    """int8 weights, symmetric, per output channel (or per group); activations stay float.

    Example:
        >>> Int8WeightOnlyConfig(group_size=64).group_size
        64
    """

    group_size: Optional[int] = None
    set_inductor_config: bool = True

    def __post_init__(self):
        _check_type(self, "group_size", self.group_size, (int,), allow_none=True)
        if self.group_size is not None and self.group_size < 1:
            raise ValueError(f"Int8WeightOnlyConfig.group_size must be >= 1, got {self.group_size}")


@dataclass
class Int4WeightOnlyConfig(AOBaseConfig):
    """int4 weights per group with a float zero point (tinygemm convention).

    Example:
        >>> Int4WeightOnlyConfig(group_size=32, layout=Int4CPULayout()).layout
        Int4CPULayout()
    """

    group_size: int = 128
    layout: Layout = field(default_factory=lambda: TensorCoreTiledLayout(inner_k_tiles=8))
    use_hqq: bool = False
    zero_point_domain: Optional[ZeroPointDomain] = ZeroPointDomain.NONE
    set_inductor_config: bool = True

    def __post_init__(self):
        _check_type(self, "group_size", self.group_size, (int,))
        if self.group_size not in (32, 64, 128, 256):
            raise ValueError(f"Int4WeightOnlyConfig.group_size must be one of [32, 64, 128, 256], got {self.group_size}")
        if not isinstance(self.layout, (TensorCoreTiledLayout, Int4CPULayout)):
            raise NotImplementedError(
                f"Int4WeightOnlyConfig.layout {self.layout!r}: supported layouts are TensorCoreTiledLayout and Int4CPULayout")
        if self.use_hqq:
            raise NotImplementedError("Int4WeightOnlyConfig.use_hqq=True: HQQ is not available in this release")


@dataclass
class Int8DynamicActivationInt8WeightConfig(AOBaseConfig):
    """int8 per-token dynamic activations x int8 per-channel symmetric weights.

    Example:
        >>> Int8DynamicActivationInt8WeightConfig().act_mapping_type
        <MappingType.SYMMETRIC: 1>
    """

    layout: Layout = field(default_factory=PlainLayout)
    act_mapping_type: MappingType = MappingType.SYMMETRIC
    weight_only_decode: bool = False
    set_inductor_config: bool = True

    def __post_init__(self):
        _check_sym_or_asym(self, "act_mapping_type")
        if not isinstance(self.layout, PlainLayout):
            raise NotImplementedError(f"Int8DynamicActivationInt8WeightConfig.layout {self.layout!r}: only PlainLayout")


@dataclass
class Int8DynamicActivationInt4WeightConfig(AOBaseConfig):
    """int8 per-token dynamic activations x int4 per-group symmetric weights ("8da4w").

    Example:
        >>> Int8DynamicActivationInt4WeightConfig(group_size=32).group_size
        32
    """

    group_size: int = 32
    layout: Layout = field(default_factory=PlainLayout)
    mapping_type: MappingType = MappingType.SYMMETRIC
    act_mapping_type: MappingType = MappingType.ASYMMETRIC
    set_inductor_config: bool = True

    def __post_init__(self):
        _check_type(self, "group_size", self.group_size, (int,))
        if self.group_size < 1:
            raise ValueError(f"Int8DynamicActivationInt4WeightConfig.group_size must be >= 1, got {self.group_size}")
        _check_sym_or_asym(self, "mapping_type")
        _check_sym_or_asym(self, "act_mapping_type")


def _check_intx(cfg: Any, field_name: str, dtype: Any) -> None:
    bits = None
    try:
        bits, signed = _dtypes.dtype_info(dtype)
    except TypeError:
        signed = False
    if bits is None or not signed or bits > 8:
        raise ValueError(f"{type(cfg).__name__}.{field_name} must be one of int1..int8, got {dtype}")


def _check_granularity(cfg: Any, field_name: str, g: Any) -> None:
    if isinstance(g, PerGroup) or (isinstance(g, PerAxis) and g.axis == 0):
        return
    raise ValueError(f"{type(cfg).__name__}.{field_name} must be PerGroup(group_size) or PerAxis(0), got {g!r}")


@dataclass
class IntxWeightOnlyConfig(AOBaseConfig):
    """int1..int8 weights per group or per channel; activations stay float.

    Example:
        >>> from torchao_cpp.dtypes import int4
        >>> IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(32)).granularity
        PerGroup(group_size=32)
    """

    weight_dtype: Any = torch.int8
    granularity: Granularity = field(default_factory=lambda: PerAxis(0))
    mapping_type: MappingType = MappingType.SYMMETRIC
    scale_dtype: Optional[torch.dtype] = None
    layout: Layout = field(default_factory=QDQLayout)

    def __post_init__(self):
        _check_intx(self, "weight_dtype", self.weight_dtype)
        _check_granularity(self, "granularity", self.granularity)
        _check_sym_or_asym(self, "mapping_type")
        if not isinstance(self.layout, QDQLayout):
            raise NotImplementedError(f"IntxWeightOnlyConfig.layout {self.layout!r}: only QDQLayout")


@dataclass
class Int8DynamicActivationIntxWeightConfig(AOBaseConfig):
    """int8 per-token dynamic activations x int1..int8 weights.

    Example:
        >>> from torchao_cpp.dtypes import int4
        >>> Int8DynamicActivationIntxWeightConfig(weight_dtype=int4).weight_granularity
        PerGroup(group_size=32)
    """

    weight_dtype: Any = torch.int8
    weight_granularity: Granularity = field(default_factory=lambda: PerGroup(32))
    weight_zero_point_domain: Optional[ZeroPointDomain] = None
    weight_mapping_type: MappingType = MappingType.SYMMETRIC
    weight_scale_dtype: Optional[torch.dtype] = None
    act_mapping_type: MappingType = MappingType.ASYMMETRIC
    layout: Layout = field(default_factory=QDQLayout)

    def __post_init__(self):
        _check_intx(self, "weight_dtype", self.weight_dtype)
        _check_granularity(self, "weight_granularity", self.weight_granularity)
        _check_sym_or_asym(self, "weight_mapping_type")
        _check_sym_or_asym(self, "act_mapping_type")
        if not isinstance(self.layout, QDQLayout):
            raise NotImplementedError(f"Int8DynamicActivationIntxWeightConfig.layout {self.layout!r}: only QDQLayout")


@dataclass
class UIntXWeightOnlyConfig(AOBaseConfig):
    """uint1..uint7 weights per group, bit-packed (N bits per weight plus scales).

    Example:
        >>> from torchao_cpp.dtypes import uint3
        >>> UIntXWeightOnlyConfig(dtype=uint3, group_size=64).group_size
        64
    """

    dtype: Any = None
    group_size: int = 64
    pack_dim: int = -1
    use_hqq: bool = False
    set_inductor_config: bool = True

    def __post_init__(self):
        try:
            bits, signed = _dtypes.dtype_info(self.dtype)
        except TypeError:
            bits, signed = 0, True
        if signed or not 1 <= bits <= 7:
            raise ValueError(f"UIntXWeightOnlyConfig.dtype must be one of uint1..uint7, got {self.dtype}")
        _check_type(self, "group_size", self.group_size, (int,))
        if self.group_size < 1:
            raise ValueError(f"UIntXWeightOnlyConfig.group_size must be >= 1, got {self.group_size}")
        if self.pack_dim != -1:
            raise NotImplementedError(f"UIntXWeightOnlyConfig.pack_dim={self.pack_dim}: only -1 is supported")
        if self.use_hqq:
            raise NotImplementedError("UIntXWeightOnlyConfig.use_hqq=True: HQQ is not available in this release")


@dataclass
class Float8WeightOnlyConfig(AOBaseConfig):
    """float8 weights with one scale per output channel; runs on CPU too.

    Example:
        >>> from torchao_cpp.dtypes import float8_e4m3fn
        >>> Float8WeightOnlyConfig().weight_dtype == float8_e4m3fn
        True
    """

    weight_dtype: Any = _dtypes.float8_e4m3fn
    set_inductor_config: bool = True

    def __post_init__(self):
        if not _dtypes.is_float8(self.weight_dtype):
            raise ValueError(f"Float8WeightOnlyConfig.weight_dtype must be float8_e4m3fn or float8_e5m2, got {self.weight_dtype}")


@dataclass
class AOPerModuleConfig(AOBaseConfig):
    """A config per module FQN; the key "_default" covers every module not named; None skips a module.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 8))
        >>> quantize_(m, AOPerModuleConfig({"0": Int4WeightOnlyConfig(group_size=32), "_default": None}))
        >>> type(m[0].weight).__name__, type(m[1].weight).__name__
        ('AffineQuantizedTensor', 'Parameter')
    """

    module_fqn_to_config: Dict[str, Optional[AOBaseConfig]] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.module_fqn_to_config, dict):
            raise TypeError(f"AOPerModuleConfig.module_fqn_to_config must be a dict, got {type(self.module_fqn_to_config).__name__}")
        for fqn, c in self.module_fqn_to_config.items():
            if not isinstance(fqn, str):
                raise TypeError(f"AOPerModuleConfig.module_fqn_to_config keys must be module FQNs (str), got {fqn!r}")
            if c is not None and (not isinstance(c, AOBaseConfig) or isinstance(c, AOPerModuleConfig)):
                raise TypeError(f"AOPerModuleConfig.module_fqn_to_config[{fqn!r}] must be a config or None, got {c!r}")

    def config_for(self, fqn: str) -> Optional[AOBaseConfig]:
        """The config of module `fqn`: its own entry, else "_default", else None."""
        if fqn in self.module_fqn_to_config:
            return self.module_fqn_to_config[fqn]
        return self.module_fqn_to_config.get("_default")


# --- handlers: config -> quantized weight (or None to skip the layer) --------------------

_HANDLERS: Dict[Type[AOBaseConfig], Callable[[torch.Tensor, Any, str], Optional[torch.Tensor]]] = {}


def register_quantize_module_handler(config_type: Type[AOBaseConfig]):
    """Registers `fn(weight, config, fqn) -> quantized weight or None (skip)` for a config type.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class PerRowInt8Config(AOBaseConfig):
        ...     pass
        >>> @register_quantize_module_handler(PerRowInt8Config)
        ... def _per_row_int8(weight, config, fqn):
        ...     return None if fqn == "skip" else AffineQuantizedTensor.from_float(
        ...         weight, "SYMMETRIC", [1, weight.shape[1]], torch.int8)
        >>> m = torch.nn.Sequential(torch.nn.Linear(32, 4))
        >>> quantize_(m, PerRowInt8Config())
        >>> type(m[0].weight).__name__
        'AffineQuantizedTensor'
    """

    def wrap(fn):
        _HANDLERS[config_type] = fn
        return fn

    return wrap


def _act_quant(act_mapping_type: MappingType) -> str:
    """The seed's activation quantizer for an act_mapping_type."""
    if act_mapping_type == MappingType.ASYMMETRIC:
        return "int8_asymm_per_token"
    return "int8_symm_per_token_reduced_range"


def _block(weight: torch.Tensor, group_size: Optional[int]) -> List[int]:
    return [1] * (weight.dim() - 1) + [weight.shape[-1] if group_size is None else group_size]


def _group_fits(weight: torch.Tensor, group_size: int, what: str, fqn: str) -> bool:
    if weight.shape[-1] % group_size != 0:
        logger.info(
            "Skipping %s for %s: in_features of weight %s is not divisible by group_size %d",
            what, fqn or "<root>", tuple(weight.shape), group_size)
        return False
    return True


@register_quantize_module_handler(Int8WeightOnlyConfig)
def _int8_weight_only(weight, config, fqn):
    gs = config.group_size
    if gs is not None and not _group_fits(weight, gs, "Int8WeightOnlyConfig", fqn):
        return None
    return AffineQuantizedTensor.from_float(
        weight, MappingType.SYMMETRIC, _block(weight, gs), torch.int8, eps=_FP32_EPS, zero_point_dtype=torch.int64)


@register_quantize_module_handler(Int4WeightOnlyConfig)
def _int4_weight_only(weight, config, fqn):
    if not _group_fits(weight, config.group_size, "Int4WeightOnlyConfig", fqn):
        return None
    zp_dtype = weight.dtype if isinstance(config.layout, Int4CPULayout) else torch.bfloat16
    return AffineQuantizedTensor.from_float(
        weight, MappingType.ASYMMETRIC, _block(weight, config.group_size), torch.int32, 0, 15, eps=1e-6,
        zero_point_dtype=zp_dtype, preserve_zero=False, zero_point_domain=ZeroPointDomain.FLOAT, layout=config.layout)


@register_quantize_module_handler(Int8DynamicActivationInt8WeightConfig)
def _int8_dynamic_int8(weight, config, fqn):
    if weight.shape[-1] <= 16:
        logger.info("Skipping Int8DynamicActivationInt8WeightConfig for %s: in_features %d <= 16",
                    fqn or "<root>", weight.shape[-1])
        return None
    w = AffineQuantizedTensor.from_float(
        weight, MappingType.SYMMETRIC, _block(weight, None), torch.int8, eps=_FP32_EPS, zero_point_dtype=torch.int64,
        zero_point_domain=ZeroPointDomain.NONE)
    if config.weight_only_decode:  # the seed: inputs with x.shape[1] == 1 skip activation quantization
        return LinearActivationQuantizedTensor(w, "int8_symm_per_token_reduced_range_noop_decode")
    return LinearActivationQuantizedTensor(w, _act_quant(config.act_mapping_type))


@register_quantize_module_handler(Int8DynamicActivationInt4WeightConfig)
def _int8_dynamic_int4(weight, config, fqn):
    if not _group_fits(weight, config.group_size, "Int8DynamicActivationInt4WeightConfig", fqn):
        return None
    w = AffineQuantizedTensor.from_float(
        weight, config.mapping_type, _block(weight, config.group_size), torch.int8, -8, 7, eps=_FP32_EPS)
    return LinearActivationQuantizedTensor(w, _act_quant(config.act_mapping_type))


def _intx_weight(weight, dtype, granularity, mapping_type, scale_dtype, layout, what, fqn):
    gs = granularity.group_size if isinstance(granularity, PerGroup) else None
    if gs is not None and not _group_fits(weight, gs, what, fqn):
        return None
    qmin, qmax = _dtypes.dtype_range(dtype)
    return AffineQuantizedTensor.from_float(
        weight, mapping_type, _block(weight, gs), dtype, qmin, qmax, scale_dtype=scale_dtype,
        zero_point_dtype=torch.int8, layout=layout)


@register_quantize_module_handler(IntxWeightOnlyConfig)
def _intx_weight_only(weight, config, fqn):
    return _intx_weight(weight, config.weight_dtype, config.granularity, config.mapping_type, config.scale_dtype,
                        config.layout, "IntxWeightOnlyConfig", fqn)


@register_quantize_module_handler(Int8DynamicActivationIntxWeightConfig)
def _int8_dynamic_intx(weight, config, fqn):
    w = _intx_weight(weight, config.weight_dtype, config.weight_granularity, config.weight_mapping_type,
                     config.weight_scale_dtype, config.layout, "Int8DynamicActivationIntxWeightConfig", fqn)
    if w is None:
        return None
    return LinearActivationQuantizedTensor(w, _act_quant(config.act_mapping_type))


@register_quantize_module_handler(UIntXWeightOnlyConfig)
def _uintx_weight_only(weight, config, fqn):
    if not _group_fits(weight, config.group_size, "UIntXWeightOnlyConfig", fqn):
        return None
    return AffineQuantizedTensor.from_float(
        weight, MappingType.ASYMMETRIC, _block(weight, config.group_size), config.dtype, eps=_FP32_EPS,
        zero_point_dtype=torch.int32, layout=UintxLayout(config.dtype))


@register_quantize_module_handler(Float8WeightOnlyConfig)
def _float8_weight_only(weight, config, fqn):
    return AffineQuantizedTensor.from_float(weight, MappingType.SYMMETRIC, _block(weight, None), config.weight_dtype)


# --- quantize_ -----------------------------------------------------------------------------------


def _quantization_type(weight: torch.Tensor) -> str:
    if isinstance(weight, _QuantizedTensorBase):
        return repr(weight)
    return "not quantized"


def _linear_extra_repr(self) -> str:
    return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, weight={_quantization_type(self.weight)}"


def _is_linear(mod: nn.Module, fqn: str) -> bool:
    return (
        isinstance(mod, nn.Linear)
        and hasattr(mod, "weight")
        and not isinstance(mod.weight, _QuantizedTensorBase)
    )


def quantize_(
    model: nn.Module,
    config: AOBaseConfig,
    filter_fn: Optional[Callable[[nn.Module, str], bool]] = None,
    device: Optional[Any] = None,
) -> None:
    """Quantizes the weights of `model`'s linears in place (every nn.Linear by default).

    `filter_fn(module, fqn)` picks the modules; `device` moves each module
    before it is quantized. All new weights are computed before any is
    assigned, so an error leaves the model unchanged.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 8))
        >>> quantize_(m, Int8WeightOnlyConfig())
        >>> type(m[0].weight).__name__
        'AffineQuantizedTensor'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, AOBaseConfig):
        if callable(config):
            raise AssertionError(
                "quantize_: passing a generic callable as the config is no longer supported; pass a config object "
                "such as Int8WeightOnlyConfig() (see torchao issue 1690)")
        raise TypeError(f"quantize_: config must be an AOBaseConfig, got {type(config).__name__}")
    per_module = config if isinstance(config, AOPerModuleConfig) else None

    def handler_for(cfg: AOBaseConfig):
        handler = _HANDLERS.get(type(cfg))
        if handler is None:
            raise NotImplementedError(f"quantize_: no handler registered for {type(cfg).__name__}")
        return handler

    if per_module is None:
        handler_for(config)
    else:
        for c in per_module.module_fqn_to_config.values():
            if c is not None:
                handler_for(c)
    filter_fn = filter_fn or _is_linear

    chosen: List[Tuple[str, nn.Module]] = []

    def visit(mod: nn.Module, fqn: str) -> None:
        if filter_fn(mod, fqn):
            chosen.append((fqn, mod))
            return
        for name, child in mod.named_children():
            visit(child, f"{fqn}.{name}" if fqn else name)

    visit(model, "")
    new_weights = []
    for fqn, mod in chosen:
        cfg = per_module.config_for(fqn) if per_module is not None else config
        if cfg is None:
            continue
        if device is not None:
            mod.to(device)
        weight = mod.weight.detach()
        try:
            new_weights.append((mod, handler_for(cfg)(weight, cfg, fqn)))
        except Exception as e:
            raise type(e)(f"quantize_: failed to quantize '{fqn or '<root>'}' with {type(cfg).__name__}: {e}") from e
    for mod, w in new_weights:
        if w is None:
            continue
        mod.weight = nn.Parameter(w, requires_grad=False)
        # A partial of a module-level function, unlike a bound method, survives torch.save(model).
        mod.extra_repr = functools.partial(_linear_extra_repr, mod)


class _PermuteSandwich(nn.Module):
    """Runs a linear on NCHW input as a 1x1 convolution would (channels last, then back)."""

    def __init__(self, mod: nn.Linear):
        super().__init__()
        self.mod = mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mod(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _is_pointwise_conv2d(mod: nn.Module, fqn: str = "") -> bool:
    # Only a 1x1 conv with unit stride, no padding, dilation or groups equals a linear over channels.
    return (isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1) and mod.stride == (1, 1)
            and mod.padding in ((0, 0), "valid") and mod.dilation == (1, 1) and mod.groups == 1
            and mod.padding_mode == "zeros")


def swap_conv2d_1x1_to_linear(model: nn.Module, filter_fn: Optional[Callable[[nn.Module, str], bool]] = None) -> None:
    """Replaces pointwise nn.Conv2d (1x1, stride 1, no padding, groups 1) by equivalent linears, in place.

    The linears can then be quantized. Unlike the seed, the default filter also
    checks stride, padding, dilation and groups, where a 1x1 conv is not a linear.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(16, 8, 1))
        >>> x = torch.randn(2, 16, 5, 5)
        >>> ref = m(x)
        >>> swap_conv2d_1x1_to_linear(m)
        >>> type(m[0].mod).__name__, torch.allclose(m(x), ref, atol=1e-6)
        ('Linear', True)
    """
    filter_fn = filter_fn or _is_pointwise_conv2d

    def convert(mod: nn.Module, fqn: str) -> nn.Module:
        if filter_fn(mod, fqn):
            if not _is_pointwise_conv2d(mod):
                raise ValueError(f"swap_conv2d_1x1_to_linear: '{fqn}' ({mod}) is not a pointwise 1x1 convolution")
            lin = nn.Linear(mod.in_channels, mod.out_channels, bias=mod.bias is not None,
                            device=mod.weight.device, dtype=mod.weight.dtype)
            with torch.no_grad():
                lin.weight.copy_(mod.weight.reshape(mod.out_channels, mod.in_channels))
                if mod.bias is not None:
                    lin.bias.copy_(mod.bias)
            return _PermuteSandwich(lin)
        for name, child in mod.named_children():
            setattr(mod, name, convert(child, f"{fqn}.{name}" if fqn else name))
        return mod

    for name, child in model.named_children():
        setattr(model, name, convert(child, name))


# BC aliases (the seed's function-style names).
int8_weight_only = Int8WeightOnlyConfig
int4_weight_only = Int4WeightOnlyConfig
int8_dynamic_activation_int8_weight = Int8DynamicActivationInt8WeightConfig
int8_dynamic_activation_int4_weight = Int8DynamicActivationInt4WeightConfig
uintx_weight_only = UIntXWeightOnlyConfig
float8_weight_only = Float8WeightOnlyConfig
