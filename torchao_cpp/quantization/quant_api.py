"""quantize_ and the quantization configs (mirrors torchao 0.11's quant_api.py).

The configs are thin dataclasses with the seed's names, fields and defaults:
their fields are validated, and weights quantized, by the C++ registry of
config handlers (`torch.ops.torchao_cpp.validate_quant_config` /
`quantize_weight`, csrc/api/quant_configs.cpp). `register_quantize_module_handler`
adds handlers for new configs from Python.

Example:
    >>> import torch, torchao_cpp
    >>> from torchao_cpp.quantization import quantize_, Int4WeightOnlyConfig
    >>> m = torch.nn.Sequential(torch.nn.Linear(128, 16))
    >>> quantize_(m, Int4WeightOnlyConfig(group_size=64))
    >>> m[0].weight.layout
    'TensorCoreTiledLayout'
"""
import dataclasses
import enum
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

import torch
import torch.nn as nn

from ..dtypes import _dtypes
from ..dtypes.affine_quantized_tensor import AffineQuantizedTensor, LinearActivationQuantizedTensor, _QuantizedTensorBase
from ..dtypes.layouts import (
    CutlassInt4PackedLayout,
    CutlassSemiSparseLayout,
    Layout,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    PlainLayout,
    QDQLayout,
    TensorCoreTiledLayout,
)
from ..float8.inference import Float8MMConfig
from .granularity import Granularity, PerAxis, PerGroup, PerRow, PerTensor
from .linear_activation_weight_observed_tensor import LinearActivationWeightObservedTensor
from .observer import AffineQuantizedObserverBase, get_block_size  # noqa: F401  (the seed's quant_api names)
from .quant_primitives import MappingType, ZeroPointDomain
from .weight_tensor_linear_activation_quantization import (  # noqa: F401
    to_weight_tensor_with_linear_activation_quantization_metadata,
)

logger = logging.getLogger(__name__)

_FLOAT_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class AOBaseConfig:
    """Base class of every quantization config (the seed's AOBaseConfig).

    Example:
        >>> isinstance(Int8WeightOnlyConfig(), AOBaseConfig)
        True
    """


def _field_value(name: str, value: Any) -> Dict[str, Any]:
    """A Python field as the C++ registry reads it (objects by name)."""
    if value is None or isinstance(value, (bool, int, float)):
        return {name: value}
    if isinstance(value, str):  # the seed's fields hold objects, never names: let the registry reject it
        return {name: repr(value)}
    if isinstance(value, enum.Enum):
        return {name: value.name}
    if isinstance(value, torch.Tensor):
        return {name: value}
    if isinstance(value, Float8MMConfig):
        return {name: "Float8MMConfig", f"{name}_emulate": bool(value.emulate),
                f"{name}_use_fast_accum": bool(value.use_fast_accum), f"{name}_pad_inner_dim": bool(value.pad_inner_dim)}
    if isinstance(value, (list, tuple)) and all(isinstance(v, Granularity) for v in value):
        return {name: [type(v).__name__ for v in value]}
    if isinstance(value, PackedLinearInt8DynamicActivationIntxWeightLayout):
        return {name: value.name, "layout_target": value.target}
    if isinstance(value, Layout):
        return {name: value.name}
    if isinstance(value, PerGroup):
        return {name: "PerGroup", "group_size": value.group_size}
    if isinstance(value, PerAxis):
        return {name: "PerAxis", "axis": value.axis}
    if isinstance(value, Granularity):
        return {name: type(value).__name__}
    if value in _FLOAT_DTYPE_NAMES:
        return {name: _FLOAT_DTYPE_NAMES[value]}
    try:
        return {name: _dtypes.code_dtype_name(value)}
    except TypeError:
        return {name: repr(value)}  # the registry rejects it with the field's name


class _CppConfig(AOBaseConfig):
    """A config whose validation and handler live in the C++ registry, under the class's name."""

    def _cpp_fields(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out.update(_field_value(f.name, getattr(self, f.name)))
        return out

    def _cpp_type(self) -> str:
        """The registry name: this class's, or that of the first registered base (for subclasses)."""
        for cls in type(self).__mro__:
            if cls.__name__ in _cpp_config_names():
                return cls.__name__
        return type(self).__name__

    def __post_init__(self):
        torch.ops.torchao_cpp.validate_quant_config(self._cpp_type(), self._cpp_fields())


@dataclass
class Int8WeightOnlyConfig(_CppConfig):
    """int8 weights, symmetric, per output channel (or per group); activations stay float.

    Example:
        >>> Int8WeightOnlyConfig(group_size=64).group_size
        64
    """

    group_size: Optional[int] = None
    set_inductor_config: bool = True


@dataclass
class Int4WeightOnlyConfig(_CppConfig):
    """int4 weights per group with a float zero point (tinygemm convention).

    Example:
        >>> from torchao_cpp.dtypes import Int4CPULayout
        >>> Int4WeightOnlyConfig(group_size=32, layout=Int4CPULayout()).layout
        Int4CPULayout()
    """

    group_size: int = 128
    layout: Layout = field(default_factory=lambda: TensorCoreTiledLayout(inner_k_tiles=8))
    use_hqq: bool = False
    zero_point_domain: Optional[ZeroPointDomain] = ZeroPointDomain.NONE
    set_inductor_config: bool = True


@dataclass
class Int8DynamicActivationInt8WeightConfig(_CppConfig):
    """int8 per-token dynamic activations x int8 per-channel symmetric weights.

    `weight_only_decode=True` leaves inputs with x.shape[1] == 1 (decode
    steps) in float, as the seed does.

    Example:
        >>> Int8DynamicActivationInt8WeightConfig().act_mapping_type
        <MappingType.SYMMETRIC: 1>
    """

    layout: Layout = field(default_factory=PlainLayout)
    act_mapping_type: MappingType = MappingType.SYMMETRIC
    weight_only_decode: bool = False
    set_inductor_config: bool = True


@dataclass
class Int8DynamicActivationInt4WeightConfig(_CppConfig):
    """int8 per-token dynamic activations x int4 per-group symmetric weights ("8da4w").

    `group_size` None or -1 quantizes per output channel (as the seed). With `layout=MarlinQQQLayout()`
    the weights are the seed's QQQ ones (`choose_qparams_and_quantize_affine_qqq`: groups of 128 or per
    channel, two-level scales) and run this project's int8 x int4 kernels (see MarlinQQQLayout); the seed
    pairs it with `act_mapping_type=MappingType.SYMMETRIC`.

    Example:
        >>> Int8DynamicActivationInt4WeightConfig(group_size=32).group_size
        32
        >>> from torchao_cpp.dtypes import MarlinQQQLayout
        >>> m = torch.nn.Sequential(torch.nn.Linear(256, 128)).half()
        >>> quantize_(m, Int8DynamicActivationInt4WeightConfig(group_size=128, layout=MarlinQQQLayout(),
        ...                                                    act_mapping_type=MappingType.SYMMETRIC))
        >>> m[0].weight.original_weight_tensor.layout
        'MarlinQQQLayout'
    """

    group_size: Optional[int] = 32
    layout: Layout = field(default_factory=PlainLayout)
    mapping_type: MappingType = MappingType.SYMMETRIC
    act_mapping_type: MappingType = MappingType.ASYMMETRIC
    set_inductor_config: bool = True


@dataclass
class Int4DynamicActivationInt4WeightConfig(_CppConfig):
    """int4 per-token dynamic activations x int4 per-row weights, both symmetric in [-8, 7]
    with float32 scales (the seed's `_int4_symm_cutlass_quant` for both).

    As in the seed, any layout but CutlassInt4PackedLayout and asymmetric
    weights or activations raise NotImplementedError (here at construction).

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 8))
        >>> quantize_(m, Int4DynamicActivationInt4WeightConfig())
        >>> m[0].weight.original_weight_tensor.layout
        'CutlassInt4PackedLayout'
        >>> m(torch.randn(2, 64)).shape
        torch.Size([2, 8])
    """

    layout: Layout = field(default_factory=CutlassInt4PackedLayout)
    mapping_type: MappingType = MappingType.SYMMETRIC
    act_mapping_type: MappingType = MappingType.SYMMETRIC
    set_inductor_config: bool = True


@dataclass
class IntxWeightOnlyConfig(_CppConfig):
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


@dataclass
class Int8DynamicActivationIntxWeightConfig(_CppConfig):
    """int8 per-token dynamic activations x int1..int8 weights (QDQLayout, or bit-packed with
    PackedLinearInt8DynamicActivationIntxWeightLayout).

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


@dataclass
class UIntXWeightOnlyConfig(_CppConfig):
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


@dataclass
class GemliteUIntXWeightOnlyConfig(_CppConfig):
    """The seed's gemlite weight-only config for float16 models, on this project's kernels.

    bit_width=4: asymmetric uint4 codes per group of `group_size` (None: per channel), optimised
    with HQQ as the seed does, float16 scales and FLOAT-domain zero points. bit_width=8: symmetric
    int8 codes per channel (`group_size` must be None), float16 scales, no zero point. The seed's
    checks are kept: bit_width 4 or 8, packing_bitwidth 8, 16 or 32, group_size 32..1024 or None,
    float16 weights only (TypeError otherwise); layers whose in_features the group size does not
    divide are skipped and logged. The weights use GemlitePackedLayout (codes bit-packed along rows,
    4 or 8 bits per weight) and run the weight-only kernels on CPU and CUDA (no Triton, no gemlite
    package); `packing_bitwidth` and `contiguous` only shape gemlite's own packing and change nothing
    here. The zero points are stored as FLOAT-domain values, (8 - z) * scale for HQQ's own zero z, so
    `dequantize()` gives the weight that gemlite's kernel computes, (code - z) * scale.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(128, 16)).half()
        >>> quantize_(m, GemliteUIntXWeightOnlyConfig(group_size=64, bit_width=4))
        >>> m[0].weight.layout, m[0].weight.get_plain()[1].shape
        ('GemlitePackedLayout', torch.Size([16, 2]))
    """

    group_size: Optional[int] = 64
    bit_width: int = 4
    packing_bitwidth: int = 32
    contiguous: Optional[bool] = None
    set_inductor_config: bool = True


@dataclass
class Float8WeightOnlyConfig(_CppConfig):
    """float8 weights with one scale per output channel; runs on CPU too.

    Example:
        >>> from torchao_cpp.dtypes import float8_e4m3fn
        >>> Float8WeightOnlyConfig().weight_dtype == float8_e4m3fn
        True
    """

    weight_dtype: Any = _dtypes.float8_e4m3fn
    set_inductor_config: bool = True


@dataclass
class FPXWeightOnlyConfig(_CppConfig):
    """Float-x weights (1 sign, `ebits` exponent, `mbits` mantissa bits; fp6 e3m2, fp5 e2m2, fp4 e2m1, ...)
    with one scale per output row; activations stay float.

    The seed's fp6-llm config (`FloatxTensorCoreLayout`): 1 + ebits + mbits <= 8, ebits >= 1; no code is
    Inf or NaN; values round to nearest (ties to even) and saturate at the largest normal. Layers whose
    in_features is not a multiple of 64 or out_features not a multiple of 256 are skipped and logged, as
    the seed's kernel requires. Runs on CPU (the codes are bit-packed, N bits per weight); the seed needs a
    CUDA GPU.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(128, 256))
        >>> quantize_(m, FPXWeightOnlyConfig(ebits=3, mbits=2))
        >>> m[0].weight.layout, m[0].weight.get_plain()[0].dtype
        ('FloatxTensorCoreLayout', torch.uint8)
    """

    ebits: int
    mbits: int
    set_inductor_config: bool = True


FP8Granularity = Union[PerTensor, PerRow]


def _normalized_fp8_granularity(granularity: Any) -> List[Granularity]:
    """[activation, weight] granularity (the registry has already validated `granularity`)."""
    if granularity is None:
        return [PerTensor(), PerTensor()]
    if isinstance(granularity, Granularity):
        return [granularity, granularity]
    return list(granularity)


@dataclass
class Float8DynamicActivationFloat8WeightConfig(_CppConfig):
    """float8 activations, quantized on every call, x float8 weights (the seed's _scaled_mm path).

    `granularity`: PerTensor() (default), PerRow() (bfloat16 only, as the
    seed), or an (activation, weight) pair of the same kind. Layers whose
    in_features or out_features is not a multiple of 16 are skipped and logged.
    Runs on CPU too (the seed needs a GPU with compute capability 8.9).

    Example:
        >>> cfg = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        >>> cfg.granularity, cfg.mm_config.use_fast_accum
        ([PerRow(), PerRow()], True)
    """

    activation_dtype: Any = _dtypes.float8_e4m3fn
    weight_dtype: Any = _dtypes.float8_e4m3fn
    granularity: Optional[Union[FP8Granularity, List[FP8Granularity], Tuple[FP8Granularity, FP8Granularity]]] = None
    mm_config: Optional[Float8MMConfig] = None
    set_inductor_config: bool = True

    def __post_init__(self):
        if self.mm_config is None:
            self.mm_config = Float8MMConfig(use_fast_accum=True)
        super().__post_init__()
        self.granularity = _normalized_fp8_granularity(self.granularity)


@dataclass
class Float8StaticActivationFloat8WeightConfig(_CppConfig):
    """float8 activations with a calibrated scale (`scale`, one element) x float8 weights; PerTensor only.

    Example:
        >>> cfg = Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.02))
        >>> cfg.granularity
        [PerTensor(), PerTensor()]
    """

    scale: torch.Tensor
    activation_dtype: Any = _dtypes.float8_e4m3fn
    weight_dtype: Any = _dtypes.float8_e4m3fn
    granularity: Optional[Union[FP8Granularity, Tuple[FP8Granularity, FP8Granularity]]] = None
    mm_config: Optional[Float8MMConfig] = field(default_factory=lambda: Float8MMConfig(use_fast_accum=True))
    set_inductor_config: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.granularity = _normalized_fp8_granularity(self.granularity)


@dataclass
class Float8DynamicActivationFloat8SemiSparseWeightConfig(_CppConfig):
    """float8 per-token dynamic activations x 2:4 sparse float8 per-row weights (the seed's CUTLASS path).

    quantize_ prunes each group of 4 weights along a row to its 2 largest
    magnitudes (the seed's mask_creator), quantizes the rest to `weight_dtype`
    with one float32 scale per row and stores the rows compressed (kept codes
    plus 2-bit column indices: 5 bits per weight). Activations are quantized
    to `activation_dtype` per token on every call. The CPU kernel multiplies
    only the kept codes; on CUDA the codes are expanded to dense float8 once
    (no sparse tensor-core kernel yet). Layers whose in_features is not a
    multiple of 4 are skipped and logged. Runs on CPU too (the seed needs
    compute capability 9.0).

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(64, 32))
        >>> quantize_(m, Float8DynamicActivationFloat8SemiSparseWeightConfig())
        >>> int((m[0].weight.dequantize().view(32, 16, 4) != 0).sum(-1).max())
        2
        >>> m(torch.randn(3, 64)).shape
        torch.Size([3, 32])
    """

    layout: Layout = field(default_factory=CutlassSemiSparseLayout)
    activation_dtype: Any = _dtypes.float8_e5m2
    weight_dtype: Any = _dtypes.float8_e4m3fn


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

# Handlers registered from Python; they take precedence over the C++ registry.
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
        ...     return AffineQuantizedTensor.from_float(weight, "SYMMETRIC", [1, weight.shape[1]], torch.int8)
        >>> m = torch.nn.Sequential(torch.nn.Linear(32, 4))
        >>> quantize_(m, PerRowInt8Config())
        >>> type(m[0].weight).__name__
        'AffineQuantizedTensor'
    """

    def wrap(fn):
        _HANDLERS[config_type] = fn
        return fn

    return wrap


def _cpp_handler(weight: torch.Tensor, config: "_CppConfig", fqn: str) -> Optional[torch.Tensor]:
    impl, act_impl, skip_reason = torch.ops.torchao_cpp.quantize_weight(weight, config._cpp_type(), config._cpp_fields(), fqn)
    if act_impl is not None:
        return LinearActivationQuantizedTensor._wrap(act_impl)
    if impl is None:
        logger.info(skip_reason)
        return None
    return AffineQuantizedTensor(impl)


@functools.lru_cache(maxsize=None)
def _cpp_config_names() -> Tuple[str, ...]:
    return tuple(torch.ops.torchao_cpp.registered_quant_configs())


def _check_for(config: AOBaseConfig) -> Optional[Callable[[torch.Tensor, Any, str], None]]:
    """The config's up-front weight check (C++ configs), or None where its handler has none."""
    if _handler_for(config) is _cpp_handler:
        return lambda w, cfg, fqn: torch.ops.torchao_cpp.check_weight(w, cfg._cpp_type(), cfg._cpp_fields(), fqn)
    return None


def _handler_for(config: AOBaseConfig) -> Callable[[torch.Tensor, Any, str], Optional[torch.Tensor]]:
    for cls in type(config).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    if isinstance(config, _CppConfig) and config._cpp_type() in _cpp_config_names():
        return _cpp_handler
    raise NotImplementedError(f"quantize_: no handler registered for {type(config).__name__}")


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
    before it is quantized. Every chosen weight is checked first (config
    fields, rank, dtype, the config's own refusals, NaN/Inf, values too
    large to quantize; layers the config skips are not looked at), so a bad
    weight leaves the model unchanged; then each layer is quantized and its
    float weight replaced in turn, so at most one layer's new weight is held
    besides the model.

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

    if per_module is None:
        _handler_for(config)
    else:
        for c in per_module.module_fqn_to_config.values():
            if c is not None:
                _handler_for(c)
    filter_fn = filter_fn or _is_linear

    chosen: List[Tuple[str, nn.Module]] = []

    def visit(mod: nn.Module, fqn: str) -> None:
        if filter_fn(mod, fqn):
            chosen.append((fqn, mod))
            return
        for name, child in mod.named_children():
            visit(child, f"{fqn}.{name}" if fqn else name)

    visit(model, "")

    def failed(e: Exception, fqn: str, cfg: AOBaseConfig) -> Exception:
        return type(e)(f"quantize_: failed to quantize '{fqn or '<root>'}' with {type(cfg).__name__}: {e}")

    # Pass 1 checks every weight, so that what can be refused is refused before anything is replaced.
    plan: List[Tuple[str, nn.Module, AOBaseConfig]] = []
    for fqn, mod in chosen:
        cfg = per_module.config_for(fqn) if per_module is not None else config
        if cfg is None:
            continue
        if device is not None:
            mod.to(device)
        check = _check_for(cfg)
        try:
            if check is not None:
                check(mod.weight.detach(), cfg, fqn)
        except Exception as e:
            raise failed(e, fqn, cfg) from e
        plan.append((fqn, mod, cfg))
    # Pass 2 replaces one layer at a time: each float weight is freed as its quantized one takes its place
    # (computing all of them first held every new weight besides the float model: about 1 GB for 1.1 B
    # parameters in int8).
    for fqn, mod, cfg in plan:
        try:
            w = _handler_for(cfg)(mod.weight.detach(), cfg, fqn)
        except Exception as e:
            raise failed(e, fqn, cfg) from e
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


def insert_observers_(
    model: nn.Module,
    input_observer: Optional[Any],
    weight_observer: Optional[Any],
    *,
    filter_fn: Optional[Callable[[nn.Module, str], bool]] = None,
) -> None:
    """Wraps the weight of each chosen linear in a LinearActivationWeightObservedTensor (in place).

    Every chosen linear gets its own copy of `input_observer` and
    `weight_observer` (each layer has its own statistics); its outputs do not
    change. After calibration, `module.weight.input_observer.calculate_qparams()`
    gives the layer's parameters, e.g. the scale of
    Float8StaticActivationFloat8WeightConfig; quantize_ then replaces the
    observed weight (observers included) by the quantized one.

    Example:
        >>> from torchao_cpp.quantization.observer import AffineQuantizedMinMaxObserver
        >>> from torchao_cpp.dtypes import float8_e4m3fn
        >>> m = nn.Sequential(nn.Linear(32, 32))
        >>> obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, float8_e4m3fn, PerTensor(),
        ...                                     eps=torch.finfo(torch.float32).eps, scale_dtype=torch.float32,
        ...                                     zero_point_domain=ZeroPointDomain.NONE)
        >>> insert_observers_(m, obs, None)
        >>> _ = m(torch.randn(4, 32))  # calibration
        >>> scale, _ = m[0].weight.input_observer.calculate_qparams()
        >>> quantize_(m, Float8StaticActivationFloat8WeightConfig(scale=scale))
        >>> type(m[0].weight).__name__
        'LinearActivationQuantizedTensor'
    """
    import copy

    for name, obs in (("input_observer", input_observer), ("weight_observer", weight_observer)):
        if obs is not None and not isinstance(obs, nn.Module):
            raise TypeError(f"insert_observers_: {name} must be an observer module or None, got {type(obs).__name__}")
    chosen = filter_fn or _is_linear
    targets = [(fqn, mod) for fqn, mod in model.named_modules()
               if isinstance(mod, nn.Linear) and not isinstance(mod.weight, LinearActivationWeightObservedTensor)
               and chosen(mod, fqn)]
    for fqn, mod in targets:
        if isinstance(mod.weight, _QuantizedTensorBase):
            raise TypeError(f"insert_observers_: '{fqn}' is already quantized ({mod.weight!r}); observe the float model")
    for _, mod in targets:
        w = mod.weight
        mod.weight = nn.Parameter(
            LinearActivationWeightObservedTensor.from_float(
                w, copy.deepcopy(input_observer) if input_observer is not None else None,
                copy.deepcopy(weight_observer) if weight_observer is not None else None),
            requires_grad=w.requires_grad)


# BC aliases (the seed's function-style names).
int8_weight_only = Int8WeightOnlyConfig
int4_weight_only = Int4WeightOnlyConfig
int8_dynamic_activation_int8_weight = Int8DynamicActivationInt8WeightConfig
int8_dynamic_activation_int4_weight = Int8DynamicActivationInt4WeightConfig
int4_dynamic_activation_int4_weight = Int4DynamicActivationInt4WeightConfig


def int8_dynamic_activation_int8_semi_sparse_weight() -> "Int8DynamicActivationInt8WeightConfig":
    """The seed's deprecated spelling of Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     int8_dynamic_activation_int8_semi_sparse_weight().layout
        SemiSparseLayout()
    """
    import warnings

    from ..dtypes.layouts import SemiSparseLayout

    warnings.warn("int8_dynamic_activation_int8_semi_sparse_weight() is deprecated (as in the seed): use "
                  "Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())", DeprecationWarning)
    return Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())
uintx_weight_only = UIntXWeightOnlyConfig
gemlite_uintx_weight_only = GemliteUIntXWeightOnlyConfig
float8_weight_only = Float8WeightOnlyConfig
fpx_weight_only = FPXWeightOnlyConfig
float8_dynamic_activation_float8_weight = Float8DynamicActivationFloat8WeightConfig
float8_static_activation_float8_weight = Float8StaticActivationFloat8WeightConfig
