"""The bad-input table of issue 7: the error contract of every public op, class and config.

Each row is (id, expected, fragment, call):
  - expected is an exception class: call() must raise it (or a subclass) and `fragment` must
    appear in str(exception);
  - expected is OK: call() must return, having run at least one check() (the fragment then
    says, for the reader, what the checks assert).

The ops are called with keyword arguments named as in their schemas (csrc/ops/library.cpp);
each builder (cq, qa, dq, ...) fills in valid defaults, so a row shows only what is wrong.

Run as a script, this module is the crash-isolated worker that test_bad_input.py starts:
    python bad_input_cases.py --table main --start N --out FILE
It runs rows N, N+1, ... and appends one JSON line to FILE before and one after each row, so
that a row which kills the process (a signal) is known to the parent by its unfinished line.
"""
import argparse
import copyreg
import faulthandler
import functools
import io
import json
import math
import os
import signal
import sys
from typing import Any, Callable, List, NamedTuple, Union

import torch
import torch.nn as nn

import torchao_cpp  # noqa: F401  (loads the ops library)
from torchao_cpp.dtypes import (
    AffineQuantizedTensor,
    MarlinQQQLayout,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    PlainLayout,
    TensorCoreTiledLayout,
    UintxLayout,
    float8_e4m3fn,
    float8_e5m2,
    int4,
    uint3,
    uint4,
)
from torchao_cpp.quantization import (
    AOBaseConfig,
    AOPerModuleConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    MappingType,
    PerAxis,
    PerGroup,
    PerRow,
    PerTensor,
    UIntXWeightOnlyConfig,
    ZeroPointDomain,
    quantize_,
)
from torchao_cpp.quantization import FPXWeightOnlyConfig
from torchao_cpp.quantization import quant_primitives as qp

ops = torch.ops.torchao_cpp
OK = "ok"
NAN, INF = float("nan"), float("inf")
FMAX = torch.finfo(torch.float32).max


class Row(NamedTuple):
    id: str
    expected: Union[type, str]  # an exception class, or OK
    fragment: str  # must appear in str(exception); for OK rows, what the checks assert
    call: Callable[[], Any]


class CheckFailed(AssertionError):
    """A check of an OK row failed (distinct from AssertionErrors the code under test raises)."""


# --- checks --------------------------------------------------------------------------------------

_checks = [0]


def check(cond: bool, what: str) -> None:
    _checks[0] += 1
    if not cond:
        raise CheckFailed(what)


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """torch.equal, with NaN equal to NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        an, bn = a.isnan(), b.isnan()
        return torch.equal(an, bn) and torch.equal(a[~an], b[~bn])
    return torch.equal(a, b)


def same(got: Any, want: Any, what: str = "result") -> None:
    """Same tensors (dtype, shape, device, values bit for bit), elementwise for tuples."""
    if isinstance(want, (tuple, list)):
        check(isinstance(got, (tuple, list)) and len(got) == len(want), f"{what}: {len(want)} results expected")
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{what}[{i}]")
        return
    check(isinstance(got, torch.Tensor), f"{what}: expected a tensor, got {type(got).__name__}")
    check((got.dtype, tuple(got.shape), got.device) == (want.dtype, tuple(want.shape), want.device),
          f"{what}: got {got.dtype} {tuple(got.shape)} on {got.device}, "
          f"expected {want.dtype} {tuple(want.shape)} on {want.device}")
    if got.device.type != "meta":
        check(_equal(got, want), f"{what}: values differ")


def shaped(got: Any, *specs) -> None:
    """Results with the given (shape, dtype[, device]) specs (device: cpu unless named)."""
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    check(len(got) == len(specs), f"{len(specs)} results expected, got {len(got)}")
    for i, (t, spec) in enumerate(zip(got, specs)):
        shape, dtype = spec[0], spec[1]
        device = spec[2] if len(spec) > 2 else "cpu"
        check((tuple(t.shape), t.dtype, t.device.type) == (tuple(shape), dtype, device),
              f"result {i}: got {t.dtype} {tuple(t.shape)} on {t.device}, expected {dtype} {tuple(shape)} on {device}")


def same_as_contiguous(fn: Callable, **kwargs) -> None:
    """fn(**kwargs), where some tensors are non-contiguous or overlap in memory, equals fn of their
    contiguous clones bit for bit."""
    check(any(isinstance(v, torch.Tensor) and not v.is_contiguous() for v in kwargs.values()),
          "the row's input is contiguous: the row tests nothing")
    clean = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    same(fn(**kwargs), fn(**clean))


def nan_in_row_only(y: torch.Tensor, row: int) -> None:
    """NaN propagation in a linear: output row `row` (whose input holds a NaN) is all NaN, no other is."""
    check(bool(y[row].isnan().all()), f"output row {row} is not all NaN")
    check(int(y.isnan().sum()) == y[row].numel(), f"NaN outside output row {row}")


def scaled_exactly(fn: Callable, x: torch.Tensor, k: float = 2.0 ** 100, **kwargs) -> None:
    """Huge inputs: fn(k * x) == k * fn(x) bit for bit for a power of two k (every op here is
    scale-equivariant in its input; k = 2^100 ~ 1.3e30 overflows nothing in float32)."""
    big = fn(input=x * k, **kwargs)
    check(bool(torch.isfinite(big).all()), "huge input gave non-finite outputs")
    same(big, fn(input=x, **kwargs) * k, "fn(k x) vs k fn(x)")


# --- inputs --------------------------------------------------------------------------------------


def _randn(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


X = _randn(4, 64, seed=1)  # activations / a tensor to quantize
W = _randn(8, 64, seed=2)  # weight (out_features=8, in_features=64)


def nc(t: torch.Tensor) -> torch.Tensor:
    """Same values, not contiguous (every other element of a wider buffer)."""
    return torch.stack([t, torch.zeros_like(t)], dim=-1)[..., 0]


def tr(t: torch.Tensor) -> torch.Tensor:
    """Same values, transposed storage."""
    return t.t().contiguous().t()


def ov(t: torch.Tensor) -> torch.Tensor:
    """Overlapping memory: the first row repeated with stride 0."""
    return t[:1].expand_as(t)


def meta(t: torch.Tensor) -> torch.Tensor:
    return t.to("meta")


def with_value(t: torch.Tensor, index, value: float) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


# --- op builders: valid defaults, overridden by keyword ----------------------------------------------


def cq(**kw):
    a = dict(input=X, mapping_type="ASYMMETRIC", block_size=[1, 32], quant_min=-128, quant_max=127)
    a.update(kw)
    return ops.choose_qparams_affine(**a)


@functools.lru_cache(maxsize=None)
def _xq():
    """X's per-group (1, 32) asymmetric int8 scale, zero point and codes."""
    s, z = cq()
    return s, z, ops.quantize_affine(X, [1, 32], s, z, torch.int8, -128, 127)


def qa(**kw):
    s, z, _ = _xq()
    a = dict(input=X, block_size=[1, 32], scale=s, zero_point=z, output_dtype=torch.int8, quant_min=-128,
             quant_max=127)
    a.update(kw)
    return ops.quantize_affine(**a)


def dq(**kw):
    s, z, q = _xq()
    a = dict(input=q, block_size=[1, 32], scale=s, zero_point=z, quant_min=-128, quant_max=127)
    a.update(kw)
    return ops.dequantize_affine(**a)


def cqf8(**kw):
    a = dict(input=X, block_size=[1, 64], float8_dtype="e4m3fn")
    a.update(kw)
    return ops.choose_qparams_affine_float8(**a)


@functools.lru_cache(maxsize=None)
def _xf8():
    """X's per-row e4m3fn scale (float32) and codes."""
    s = ops.choose_qparams_affine_float8(X, [1, 64], "e4m3fn", torch.float32)
    return s, ops.quantize_affine_float8(X, [1, 64], s, "e4m3fn")


def qf8(**kw):
    a = dict(input=X, block_size=[1, 64], scale=_xf8()[0], float8_dtype="e4m3fn")
    a.update(kw)
    return ops.quantize_affine_float8(**a)


def dqf8(**kw):
    a = dict(input=_xf8()[1], block_size=[1, 64], scale=_xf8()[0], float8_dtype="e4m3fn")
    a.update(kw)
    return ops.dequantize_affine_float8(**a)


C8 = torch.randint(0, 16, (4, 8), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)  # 4-bit codes


def pack(**kw):
    a = dict(codes=C8, bits=4, quant_min=0)
    a.update(kw)
    return ops.pack_bits(**a)


def unpack(**kw):
    a = dict(packed=ops.pack_bits(C8, 4, 0), bits=4, quant_min=0, cols=8, output_dtype=torch.uint8)
    a.update(kw)
    return ops.unpack_bits(**a)


@functools.lru_cache(maxsize=None)
def _wq():
    """W's per-group (1, 32) asymmetric int8 codes, scale, zero point (INT domain)."""
    s, z = ops.choose_qparams_affine(W, "ASYMMETRIC", [1, 32], -128, 127)
    return ops.quantize_affine(W, [1, 32], s, z, torch.int8, -128, 127), s, z


@functools.lru_cache(maxsize=None)
def _wq_uint3():
    """W's per-group (1, 32) uint3 codes, bit-packed (8, 24 bytes), with scale and zero point."""
    s, z = ops.choose_qparams_affine(W, "ASYMMETRIC", [1, 32], 0, 7)
    codes = ops.quantize_affine(W, [1, 32], s, z, torch.uint8, 0, 7)
    return ops.pack_bits(codes, 3, 0), s, z


def wol(**kw):
    codes, s, z = _wq()
    a = dict(input=X, codes=codes, code_format="plain", bits=8, out_features=8, in_features=64, group_size=32,
             scale=s, zero_point=z, quant_min=-128, quant_max=127, zero_point_domain="INT")
    a.update(kw)
    return ops.weight_only_linear(**a)


def wol_packed(**kw):
    packed, s, z = _wq_uint3()
    a = dict(codes=packed, code_format="packed", bits=3, scale=s, zero_point=z, quant_min=0, quant_max=7)
    a.update(kw)
    return wol(**a)


@functools.lru_cache(maxsize=None)
def _wq_sym():
    """W's per-channel symmetric int8 codes and scale (no zero point)."""
    s, _ = ops.choose_qparams_affine(W, "SYMMETRIC", [1, 64], -128, 127)
    return ops.quantize_affine(W, [1, 64], s, None, torch.int8, -128, 127, "NONE"), s


def i8dl(**kw):
    codes, s = _wq_sym()
    a = dict(input=X, act_quant="asymmetric", codes=codes, code_format="plain", bits=8, out_features=8,
             in_features=64, group_size=64, weight_scale=s, weight_zero_point=None, quant_min=-128)
    a.update(kw)
    return ops.int8_dynamic_linear(**a)


@functools.lru_cache(maxsize=None)
def _wf8():
    """W's per-row e4m3fn scale (float32, 8 elements) and codes (8, 64)."""
    s = ops.choose_qparams_affine_float8(W, [1, 64], "e4m3fn", torch.float32)
    return ops.quantize_affine_float8(W, [1, 64], s, "e4m3fn"), s


def f8l(**kw):
    codes, s = _wf8()
    a = dict(input=X, act_dtype="e4m3fn", act_granularity="PerRow", act_scale=None, codes=codes,
             weight_dtype="e4m3fn", weight_scale=s)
    a.update(kw)
    return ops.float8_linear(**a)


def aq(**kw):
    a = dict(weight=W, mapping_type="ASYMMETRIC", block_size=[1, 32], code_dtype="int8", quant_min=-128,
             quant_max=127)
    a.update(kw)
    return ops.affine_quantize(**a)


def qw(weight=W, config_type="Int8WeightOnlyConfig", fields=None, fqn="layers.0"):
    return ops.quantize_weight(weight, config_type, {} if fields is None else fields, fqn)


# --- quantized-tensor objects ----------------------------------------------------------------------

_AQT = {
    "int8_g32": lambda: aq(),
    "int8_per_channel": lambda: aq(mapping_type="SYMMETRIC", block_size=[1, 64], zero_point_domain="NONE"),
    "int4_g32_in_int8": lambda: aq(mapping_type="SYMMETRIC", code_dtype="int4", quant_min=-8, quant_max=7),
    "uint3_packed": lambda: aq(code_dtype="uint3", quant_min=0, quant_max=7, zero_point_dtype=torch.int32,
                               layout="UintxLayout"),
    "int4_tiled": lambda: qw(config_type="Int4WeightOnlyConfig", fields={"group_size": 32})[0],
    "fp8_per_row": lambda: aq(mapping_type="SYMMETRIC", block_size=[1, 64], code_dtype="float8_e4m3fn",
                              scale_dtype=torch.float32, zero_point_domain="NONE", layout="Float8Layout"),
    "fp8_per_tensor": lambda: aq(mapping_type="SYMMETRIC", block_size=[8, 64], code_dtype="float8_e4m3fn",
                                 scale_dtype=torch.float32, zero_point_domain="NONE", layout="Float8Layout"),
    "fp8_e5m2_per_row": lambda: aq(mapping_type="SYMMETRIC", block_size=[1, 64], code_dtype="float8_e5m2",
                                   scale_dtype=torch.float32, zero_point_domain="NONE", layout="Float8Layout"),
    "fp6_e3m2": lambda: aq(mapping_type="SYMMETRIC", block_size=[1, 64], code_dtype="fp6_e3m2", quant_min=0,
                           quant_max=63, zero_point_domain="NONE", layout="FloatxTensorCoreLayout"),
}


@functools.lru_cache(maxsize=None)
def aqt(kind: str):
    """A valid torch.classes.torchao_cpp.AffineQuantizedTensor of W."""
    return _AQT[kind]()


_LAQT = {
    "int8_dyn": ("int8_per_channel", "int8_symm_per_token_reduced_range", None),
    "int8_dyn_asym": ("int8_per_channel", "int8_asymm_per_token", None),
    "int8_dyn_noop_decode": ("int8_per_channel", "int8_symm_per_token_reduced_range_noop_decode", None),
    "8da4w": ("int4_g32_in_int8", "int8_asymm_per_token", None),
    "fp8_dyn_row": ("fp8_per_row", "float8_e4m3fn_per_row", None),
    "fp8_dyn_tensor": ("fp8_per_tensor", "float8_e4m3fn_per_tensor", None),
    "fp8_static": ("fp8_per_tensor", "float8_e4m3fn_static", 0.02),
}


@functools.lru_cache(maxsize=None)
def laqt(kind: str):
    """A valid torch.classes.torchao_cpp.LinearActivationQuantizedTensor over W."""
    w, act, scale = _LAQT[kind]
    return torch.classes.torchao_cpp.LinearActivationQuantizedTensor(
        aqt(w), act, None if scale is None else torch.tensor(scale), False)


def aql(input=X, weight="int8_g32", bias=None):
    return ops.affine_quantized_linear(input, aqt(weight) if isinstance(weight, str) else weight, bias)


def alq(input=X, weight="int8_dyn", bias=None):
    return ops.activation_quantized_linear(input, laqt(weight) if isinstance(weight, str) else weight, bias)


def new_aqt(codes, scale, zero_point, block_size, quant_min, quant_max, zero_point_domain, layout, code_dtype,
            dtype="float32"):
    return torch.classes.torchao_cpp.AffineQuantizedTensor(codes, scale, zero_point, block_size, quant_min, quant_max,
                                                          zero_point_domain, layout, code_dtype, dtype)


def new_laqt(weight="fp8_per_tensor", act_quant="float8_e4m3fn_static", act_scale=None, fast_accum=False):
    return torch.classes.torchao_cpp.LinearActivationQuantizedTensor(aqt(weight), act_quant, act_scale, fast_accum)


# --- pickled state ---------------------------------------------------------------------------------
# AffineQuantizedTensor state (kStateVersion 1), by index:
#   0 version, 1 codes (packed), 2 scale, 3 zero_point, 4 block_size, 5 shape, 6 dtype, 7 quant_min,
#   8 quant_max, 9 zero_point_domain, 10 layout, 11 code_dtype
# LinearActivationQuantizedTensor state (kStateVersion 2): 0 version, 1 weight state, 2 act_quant,
#   3 act_scale, 4 fast_accum. Version 1 was (1, weight state, act_quant).

_QUALNAME = "__torch__.torch.classes.torchao_cpp."


def state(kind: str = "int8_g32") -> List[Any]:
    return list(aqt(kind).__getstate__()[0])


def la_state(kind: str = "int8_dyn") -> List[Any]:
    return list(laqt(kind).__getstate__()[0])


def unpickle(st, cls: str = "AffineQuantizedTensor"):
    """What pickle.loads does with a (possibly forged) state: a new object, then __setstate__."""
    obj = torch.ScriptObject.__new__(torch.ScriptObject)
    obj.__setstate__((tuple(st), _QUALNAME + cls))
    return obj


def tampered(kind: str, index: int, value: Any):
    """Unpickles `kind`'s state with field `index` replaced by value (or value(old))."""
    st = state(kind)
    st[index] = value(st[index]) if callable(value) else value
    return unpickle(st)


def la_tampered(kind: str, index: int, value: Any):
    st = la_state(kind)
    st[index] = value(st[index]) if callable(value) else value
    return unpickle(st, "LinearActivationQuantizedTensor")


def untampered_round_trip() -> None:
    for kind in _AQT:
        same(unpickle(state(kind)).dequantize(), aqt(kind).dequantize(), kind)
    for kind in _LAQT:
        b = unpickle(la_state(kind), "LinearActivationQuantizedTensor")
        same(ops.activation_quantized_linear(X, b, None), alq(weight=kind), kind)


class _Forged:
    """Pickles as a ScriptObject with the given state: what a forged or old checkpoint holds."""

    def __init__(self, st, cls: str):
        self.st, self.cls = tuple(st), cls

    @property
    def __class__(self):  # pickle's NEWOBJ check: the object claims to be the ScriptObject it pickles as
        return torch.ScriptObject

    def __reduce__(self):
        return copyreg.__newobj__, (torch.ScriptObject,), (self.st, _QUALNAME + self.cls)


class _ForgedWeight:
    """Pickles as the Python AffineQuantizedTensor parameter of a state_dict (its ScriptObject forged).
    (A LinearActivationQuantizedTensor parameter pickles its AffineQuantizedTensor and act_quant, not
    its own ScriptObject state, which only TorchScript files hold.)"""

    def __init__(self, st):
        self.impl = _Forged(st, "AffineQuantizedTensor")

    def __reduce__(self):
        from torchao_cpp.dtypes.affine_quantized_tensor import _rebuild

        return _rebuild, (AffineQuantizedTensor, (self.impl,), True)


def load_checkpoint(st):
    """torch.save of a state_dict holding a forged quantized weight, then torch.load."""
    buf = io.BytesIO()
    torch.save({"0.weight": _ForgedWeight(st), "0.bias": torch.zeros(8)}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# --- models ----------------------------------------------------------------------------------------


def model(in_features: int = 64, out_features: int = 32, dtype=torch.float32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_features, out_features)).to(dtype).eval()


def quantized(config: AOBaseConfig, **kw) -> nn.Module:
    m = model(**kw)
    quantize_(m, config)
    return m


def qz(make_config: Callable[[], AOBaseConfig], **kw) -> nn.Module:
    """quantize_ on a one-linear model with the config make_config() builds (construction included)."""
    return quantized(make_config(), **kw)


def skipped(make_config: Callable[[], AOBaseConfig], **kw) -> None:
    """quantize_ leaves the layer in float (the seed's skip-and-log cases)."""
    m = qz(make_config, **kw)
    check(type(m[0].weight) is nn.Parameter, f"the layer was quantized: {m[0].weight!r}")
    same(m[0].weight, model(**kw)[0].weight)


def with_weight(w: torch.Tensor) -> nn.Module:
    """A one-linear model with weight w (used as given: possibly non-contiguous) and a zero bias."""
    m = nn.Sequential(nn.Linear(w.shape[1], w.shape[0]))
    m[0].weight = nn.Parameter(w)
    m[0].bias = nn.Parameter(torch.zeros(w.shape[0]))
    return m


def _float_max_weight(config: AOBaseConfig) -> None:
    w = with_value(with_value(W, (1, 0), FMAX), (1, 1), -FMAX)
    m = with_weight(w)
    quantize_(m, config)
    d = m[0].weight.dequantize()
    check(bool(torch.isfinite(d).all()), "non-finite dequantized weights")
    check(bool(((d[1].double() - w[1].double()).abs() <= FMAX / 127.5).all()), "row 1 is off by more than one step")


def quantize_noncontiguous_weight(config: AOBaseConfig) -> None:
    a, b = with_weight(nc(W)), with_weight(W.clone())
    check(not a[0].weight.is_contiguous(), "weight is contiguous")
    quantize_(a, config)
    quantize_(b, config)
    same(a(X), b(X))


def load_into(src_config, dst_config, src_kw=None, dst_kw=None):
    src = quantized(src_config, **(src_kw or {}))
    dst = quantized(dst_config, seed=1, **(dst_kw or {}))
    dst.load_state_dict(src.state_dict())
    return src, dst


class _NoHandlerConfig(AOBaseConfig):
    pass


# --- rows ------------------------------------------------------------------------------------------


def _section(prefix: str, rows) -> List[Row]:
    return [Row(f"{prefix}.{r[0]}", r[1], r[2], r[3]) for r in rows]


# Row ids: <op | class method | config>.<category>.<case>, categories: dtype, device (meta), rank, shape,
# zero_size, noncontiguous, overlap, nan, inf, huge, scale, zero_point, bits, block_size / group_size,
# version / arity (pickled state), and the op's own arguments. Where a row fails today, the row states
# the behaviour a demanding user expects, not the current one.
ROWS: List[Row] = []

# choose_qparams_affine(input, mapping_type, block_size, quant_min, quant_max, eps, scale_dtype,
#                       zero_point_dtype, preserve_zero, zero_point_domain)
ROWS += _section("choose_qparams_affine", [
    ("dtype.int32_input", TypeError, "choose_qparams_affine: input must be float32, bfloat16 or float16, got Int",
     lambda: cq(input=X.int())),
    ("dtype.scale_dtype_int8", TypeError, "scale_dtype must be float32, bfloat16 or float16, got Char",
     lambda: cq(scale_dtype=torch.int8)),
    ("dtype.zero_point_dtype_bool", TypeError, "zero_point_dtype", lambda: cq(zero_point_dtype=torch.bool)),
    ("device.meta_gives_shapes", OK, "meta scale and zero point of shape (4, 2)",
     lambda: shaped(cq(input=meta(X)), ((4, 2), torch.float32, "meta"), ((4, 2), torch.float32, "meta"))),
    ("device.meta_empty_quant_range", ValueError, "quant_min (5) must be < quant_max (3)",
     lambda: cq(input=meta(X), quant_min=5, quant_max=3)),
    ("rank.block_size_too_short", ValueError, "block_size has 1 entries but input has 2 dims",
     lambda: cq(block_size=[32])),
    ("rank.0d_input", OK, "a 0-d input has one 0-d scale and zero point",
     lambda: shaped(cq(input=torch.tensor(3.0), block_size=[]), ((), torch.float32), ((), torch.float32))),
    ("zero_size.no_rows", OK, "(0, 64): empty (0, 2) qparams",
     lambda: shaped(cq(input=torch.zeros(0, 64)), ((0, 2), torch.float32), ((0, 2), torch.float32))),
    ("zero_size.no_columns", OK, "(4, 0): empty (4, 0) qparams",
     lambda: shaped(cq(input=torch.zeros(4, 0)), ((4, 0), torch.float32), ((4, 0), torch.float32))),
    ("noncontiguous.transposed", OK,
     "same qparams as the contiguous input",
     lambda: same_as_contiguous(cq, input=tr(X))),
    ("overlap.expanded_row", OK, "same qparams as the contiguous clone", lambda: same_as_contiguous(cq, input=ov(X))),
    ("nan.input", ValueError, "input contains NaN or Inf (block 1)", lambda: cq(input=with_value(X, (0, 40), NAN))),
    ("inf.negative_symmetric", ValueError, "input contains NaN or Inf (block 7)",
     lambda: cq(input=with_value(X, (3, 63), -INF), mapping_type="SYMMETRIC")),
    ("huge.float_max_symmetric", OK, "finite scale max/127.5 for +-float max",
     lambda: check(math.isclose(cq(input=with_value(with_value(X, (0, 0), FMAX), (0, 1), -FMAX),
                                   mapping_type="SYMMETRIC")[0][0, 0].item(), FMAX / 127.5, rel_tol=1e-6),
                   "scale of the +-float max block")),
    # (max - min) / 255 is finite (2.7e36) but (max - min) overflows float32.
    ("huge.float_max_asymmetric", ValueError, "block 0",
     lambda: cq(input=with_value(with_value(X, (0, 0), FMAX), (0, 1), -FMAX))),
    ("huge.scale_dtype_overflows", ValueError, "choose_qparams_affine: block 0 gets scale inf",
     lambda: cq(input=with_value(X, (0, 0), 1e38), mapping_type="SYMMETRIC", scale_dtype=torch.float16)),
    ("device.meta_zero_point_dtype_bool", TypeError, "choose_qparams_affine: zero_point_dtype",
     lambda: cq(input=meta(X), zero_point_dtype=torch.bool)),
    ("bits.empty_range", ValueError, "quant_min (0) must be < quant_max (0)", lambda: cq(quant_min=0, quant_max=0)),
    ("bits.beyond_int32", ValueError,
     "quant_min/quant_max must fit in int32",
     lambda: cq(quant_min=0, quant_max=2 ** 40)),
    ("mapping_type.unknown", ValueError,
     "mapping_type must be SYMMETRIC, SYMMETRIC_NO_CLIPPING_ERR or ASYMMETRIC, got 'SYM'",
     lambda: cq(mapping_type="SYM")),
    ("zero_point_domain.unknown", ValueError, "zero_point_domain must be INT, FLOAT or NONE, got 'HALF'",
     lambda: cq(zero_point_domain="HALF")),
    ("eps.negative", ValueError, "eps must be finite and >= 0", lambda: cq(eps=-1e-6)),
    ("eps.nan", ValueError, "eps must be finite and >= 0", lambda: cq(eps=NAN)),
    ("block_size.zero", ValueError, "block_size[1] must be >= 1, got 0", lambda: cq(block_size=[1, 0])),
    ("block_size.not_dividing", ValueError, "block_size[1] = 48 does not divide input size 64",
     lambda: cq(block_size=[1, 48])),
    ("block_size.huge", ValueError, "does not divide input size 64", lambda: cq(block_size=[1, 2 ** 62])),
    ("symmetric.preserve_zero_false", ValueError, "preserve_zero=False is not supported for symmetric quantization",
     lambda: cq(mapping_type="SYMMETRIC", preserve_zero=False)),
    ("symmetric.float_zero_point_domain", ValueError,
     "zero_point_domain must be INT or NONE for symmetric quantization, got FLOAT",
     lambda: cq(mapping_type="SYMMETRIC", zero_point_domain="FLOAT")),
    ("symmetric_no_clipping_err.unsigned_range", ValueError,
     "SYMMETRIC_NO_CLIPPING_ERR needs quant_min < 0 < quant_max, got [0, 255]",
     lambda: cq(mapping_type="SYMMETRIC_NO_CLIPPING_ERR", quant_min=0, quant_max=255)),
    ("asymmetric.no_preserve_zero_int_domain", ValueError,
     "preserve_zero=False needs zero_point_domain FLOAT (or NONE), got INT", lambda: cq(preserve_zero=False)),
])

# torchao_cpp.quantization.quant_primitives: the Python faces of the primitives.
ROWS += _section("py.quant_primitives", [
    ("choose_qparams_affine.float_target_dtype", TypeError, "unsupported integer code dtype torch.float32",
     lambda: qp.choose_qparams_affine(X, MappingType.ASYMMETRIC, [1, 32], torch.float32)),
    ("choose_qparams_affine.range_outside_dtype", ValueError, "quant range [0, 16] is outside",
     lambda: qp.choose_qparams_affine(X, MappingType.ASYMMETRIC, [1, 32], uint4, 0, 16)),
    ("choose_qparams_affine.mapping_type_of_wrong_type", TypeError, "mapping_type must be a MappingType, got 1",
     lambda: qp.choose_qparams_affine(X, 1, [1, 32], torch.int8)),
    ("choose_qparams_affine.mapping_type_unknown_name", ValueError, "mapping_type must be a MappingType, got 'SYM'",
     lambda: qp.choose_qparams_affine(X, "SYM", [1, 32], torch.int8)),
    ("choose_qparams_affine.zero_point_domain_of_wrong_type", TypeError, "zero_point_domain must be a ZeroPointDomain",
     lambda: qp.choose_qparams_affine(X, MappingType.ASYMMETRIC, [1, 32], torch.int8,
                                      zero_point_domain=MappingType.ASYMMETRIC)),
    ("choose_qparams_affine.block_size_none", TypeError, "block_size",
     lambda: qp.choose_qparams_affine(X, MappingType.ASYMMETRIC, None, torch.int8)),
    ("quantize_affine.sub_byte_range", ValueError, "quant range [-9, 7] is outside",
     lambda: qp.quantize_affine(X, [1, 32], _xq()[0], _xq()[1], int4, -9, 7)),
    ("quantize_affine.float8_output_dtype", TypeError, "unsupported integer code dtype",
     lambda: qp.quantize_affine(X, [1, 32], _xq()[0], _xq()[1], float8_e4m3fn)),
    ("dequantize_affine.int_output_dtype", TypeError, "output_dtype must be float32, bfloat16 or float16, got Int",
     lambda: qp.dequantize_affine(_xq()[2], [1, 32], _xq()[0], _xq()[1], torch.int8, output_dtype=torch.int32)),
    ("quantize_affine_float8.block_not_inferable", ValueError,
     "cannot infer block_size from scale with 3 elements for a tensor of shape (4, 64)",
     lambda: qp.quantize_affine_float8(X, torch.ones(3))),
    ("quantize_affine_float8.integer_float8_dtype", TypeError, "expected float8_e4m3fn or float8_e5m2, got torch.int8",
     lambda: qp.quantize_affine_float8(X, torch.ones(()), float8_dtype=torch.int8)),
    ("from_float.float64_weight", TypeError,
     "from_float: weight must be float32, bfloat16 or float16, got torch.float64",
     lambda: AffineQuantizedTensor.from_float(W.double(), "SYMMETRIC", [1, 64], torch.int8)),
    ("from_float.tiled_layout_int8_range", ValueError, "TensorCoreTiledLayout holds codes in [0, 15], got [-128, 127]",
     lambda: AffineQuantizedTensor.from_float(W, "SYMMETRIC", [1, 32], torch.int8, layout=TensorCoreTiledLayout())),
])

# quantize_affine(input, block_size, scale, zero_point, output_dtype, quant_min, quant_max, zero_point_domain)
ROWS += _section("quantize_affine", [
    ("dtype.int_input", TypeError, "quantize_affine: input must be float32, bfloat16 or float16, got Int",
     lambda: qa(input=X.int())),
    ("dtype.int_scale", TypeError, "quantize_affine: scale must be float32, bfloat16 or float16, got Int",
     lambda: qa(scale=_xq()[0].int())),
    ("dtype.float_output_dtype", TypeError, "output_dtype must be uint8, int8, int16 or int32, got Float",
     lambda: qa(output_dtype=torch.float32)),
    ("dtype.int_zero_point_in_float_domain", TypeError, "zero_point (FLOAT domain) must be float32",
     lambda: qa(zero_point=_xq()[1].int(), zero_point_domain="FLOAT")),
    ("bits.range_does_not_fit_uint8", ValueError, "range [-1, 255] does not fit in Byte",
     lambda: qa(output_dtype=torch.uint8, quant_min=-1, quant_max=255)),
    ("scale.wrong_numel", ValueError,
     "scale has 12 elements but input shape [4, 64] with block_size [1, 32] has 8 blocks",
     lambda: qa(scale=torch.ones(4, 3))),
    ("scale.flat_with_the_right_numel", OK, "scale is read as one value per block: a flat (8,) scale is fine",
     lambda: same(qa(scale=_xq()[0].reshape(-1)), _xq()[2])),
    ("scale.zero", ValueError, "quantize_affine: scale must be finite and > 0, got 0 at block 3",
     lambda: qa(scale=with_value(_xq()[0], (1, 1), 0.0))),
    ("scale.negative", ValueError, "scale must be finite and > 0, got -1 at block 0",
     lambda: qa(scale=with_value(_xq()[0], (0, 0), -1.0))),
    ("scale.nan", ValueError, "scale must be finite and > 0, got nan at block 7",
     lambda: qa(scale=with_value(_xq()[0], (3, 1), NAN))),
    ("zero_point.wrong_numel", ValueError, "zero_point has 4 elements but there are 8 blocks",
     lambda: qa(zero_point=torch.zeros(4))),
    ("zero_point.missing_int_domain", ValueError,
     "zero_point_domain INT needs a zero_point",
     lambda: qa(zero_point=None)),
    ("zero_point.nan", ValueError, "zero_point", lambda: qa(zero_point=with_value(_xq()[1], (0, 0), NAN))),
    ("zero_point.inf_float_domain", ValueError, "zero_point",
     lambda: qa(zero_point=with_value(_xq()[1], (0, 0), INF), zero_point_domain="FLOAT")),
    ("zero_point.inf_int_domain", ValueError, "quantize_affine: zero_point must be finite, got -inf at block 5",
     lambda: qa(zero_point=with_value(_xq()[1], (2, 1), -INF))),
    ("device.scale_on_meta", ValueError, "quantize_affine: scale is on meta but input is on cpu",
     lambda: qa(scale=meta(_xq()[0]))),
    ("device.meta_gives_shape", OK, "meta int8 codes of shape (4, 64)",
     lambda: shaped(qa(input=meta(X), scale=meta(_xq()[0]), zero_point=meta(_xq()[1])), ((4, 64), torch.int8, "meta"))),
    ("device.meta_scale_wrong_numel", ValueError, "scale has 4 elements",
     lambda: qa(input=meta(X), scale=meta(torch.ones(4)), zero_point=meta(_xq()[1]))),
    ("rank.block_size_too_short", ValueError,
     "block_size has 1 entries but input has 2 dims",
     lambda: qa(block_size=[32])),
    ("rank.0d_input", OK, "0.5 / 0.01 + 3 -> code 53",
     lambda: check(qa(input=torch.tensor(0.5), block_size=[], scale=torch.tensor(0.01),
                      zero_point=torch.tensor(3)).item() == 53, "code of a 0-d input")),
    ("block_size.not_dividing", ValueError, "block_size[1] = 48 does not divide input size 64",
     lambda: qa(block_size=[1, 48])),
    ("zero_size.no_rows", OK, "(0, 64): empty int8 codes",
     lambda: shaped(qa(input=torch.zeros(0, 64), scale=torch.ones(0, 2), zero_point=torch.zeros(0, 2)),
                    ((0, 64), torch.int8))),
    ("noncontiguous.transposed_input", OK, "same codes", lambda: same_as_contiguous(qa, input=tr(X))),
    ("noncontiguous.scale_and_zero_point", OK, "same codes",
     lambda: same_as_contiguous(qa, scale=nc(_xq()[0]), zero_point=tr(_xq()[1]))),
    ("overlap.input", OK, "same codes as the contiguous clone",
     lambda: same_as_contiguous(qa, input=ov(X), scale=ov(_xq()[0]), zero_point=ov(_xq()[1]))),
    ("nan.input_maps_to_zero_point", OK, "a NaN element gets its block's zero point; the others are unchanged",
     lambda: (check(qa(input=with_value(X, (0, 40), NAN))[0, 40].item() == int(_xq()[1][0, 1]), "code of NaN"),
              same(with_value(qa(input=with_value(X, (0, 40), NAN)), (0, 40), 0), with_value(_xq()[2], (0, 40), 0)))),
    ("inf.input_saturates", OK, "+Inf -> quant_max, -Inf -> quant_min",
     lambda: check(qa(input=with_value(with_value(X, (1, 1), INF), (1, 2), -INF))[1, 1:3].tolist() == [127, -128],
                   "codes of +-Inf")),
    ("huge.input_saturates", OK, "1e38 and -float max -> quant_max and quant_min",
     lambda: check(qa(input=with_value(with_value(X, (1, 1), 1e38), (1, 2), -FMAX))[1, 1:3].tolist() == [127, -128],
                   "codes of huge values")),
])

# dequantize_affine(input, block_size, scale, zero_point, quant_min, quant_max, zero_point_domain, output_dtype)
ROWS += _section("dequantize_affine", [
    ("dtype.float_codes", TypeError, "dequantize_affine: input", lambda: dq(input=X)),
    ("dtype.int_output_dtype", TypeError,
     "dequantize_affine: output_dtype must be float32, bfloat16 or float16, got Int",
     lambda: dq(output_dtype=torch.int32)),
    ("dtype.int_scale", TypeError, "dequantize_affine: scale must be float32, bfloat16 or float16, got Int",
     lambda: dq(scale=_xq()[0].int())),
    ("scale.wrong_numel", ValueError, "dequantize_affine: scale has 2 elements", lambda: dq(scale=torch.ones(2))),
    ("zero_point.wrong_numel", ValueError, "dequantize_affine: zero_point has 9 elements but there are 8 blocks",
     lambda: dq(zero_point=torch.zeros(9))),
    ("zero_point.none_is_zero", OK, "like torchao, a missing INT zero point dequantizes as zero",
     lambda: same(dq(zero_point=None), dq(zero_point=torch.zeros(4, 2)))),
    ("device.scale_on_meta", ValueError, "dequantize_affine: scale is on meta but input is on cpu",
     lambda: dq(scale=meta(_xq()[0]))),
    ("device.meta_float_codes", TypeError, "dequantize_affine: input must hold integer codes",
     lambda: dq(input=meta(X), scale=meta(_xq()[0]), zero_point=meta(_xq()[1]))),
    ("device.meta_gives_shape", OK, "meta bfloat16 values of shape (4, 64)",
     lambda: shaped(dq(input=meta(_xq()[2]), scale=meta(_xq()[0]), zero_point=meta(_xq()[1]),
                       output_dtype=torch.bfloat16), ((4, 64), torch.bfloat16, "meta"))),
    ("rank.block_size_too_long", ValueError, "block_size has 3 entries but input has 2 dims",
     lambda: dq(block_size=[1, 1, 32])),
    ("block_size.not_dividing", ValueError, "block_size[1] = 24 does not divide input size 64",
     lambda: dq(block_size=[1, 24])),
    ("zero_size.no_rows", OK, "(0, 64) codes: empty float32 values",
     lambda: shaped(dq(input=torch.zeros(0, 64, dtype=torch.int8), scale=torch.ones(0, 2),
                       zero_point=torch.zeros(0, 2)),
                    ((0, 64), torch.float32))),
    ("noncontiguous.codes", OK, "same values", lambda: same_as_contiguous(dq, input=nc(_xq()[2]))),
    ("overlap.codes", OK, "same values as the contiguous clone",
     lambda: same_as_contiguous(dq, input=ov(_xq()[2]), scale=ov(_xq()[0]), zero_point=ov(_xq()[1]))),
    ("nan.scale_propagates", OK, "a NaN scale gives NaN in its block only",
     lambda: (check(bool(dq(scale=with_value(_xq()[0], (0, 1), NAN))[0, 32:].isnan().all()), "NaN block"),
              check(int(dq(scale=with_value(_xq()[0], (0, 1), NAN)).isnan().sum()) == 32, "NaN elsewhere"))),
])

# choose_qparams_affine_float8(input, block_size, float8_dtype, scale_dtype)
# quantize_affine_float8(input, block_size, scale, float8_dtype)
# dequantize_affine_float8(input, block_size, scale, float8_dtype, output_dtype)
ROWS += _section("choose_qparams_affine_float8", [
    ("dtype.int_input", TypeError, "choose_qparams_affine_float8: input must be float32, bfloat16 or float16, got Int",
     lambda: cqf8(input=X.int())),
    ("dtype.int_scale_dtype", TypeError, "choose_qparams_affine_float8: scale_dtype must be float32",
     lambda: cqf8(scale_dtype=torch.int32)),
    ("float8_dtype.unknown", ValueError, "float8_dtype must be 'e4m3fn' or 'e5m2', got 'e4m3'",
     lambda: cqf8(float8_dtype="e4m3")),
    ("block_size.not_dividing", ValueError, "block_size[1] = 40 does not divide input size 64",
     lambda: cqf8(block_size=[1, 40])),
    ("nan.input", ValueError, "choose_qparams_affine_float8: input contains NaN or Inf (block 2)",
     lambda: cqf8(input=with_value(X, (2, 5), NAN))),
    ("zero.all_zero_block", OK, "an all-zero row gets a finite positive (eps) scale",
     lambda: check(0 < cqf8(input=with_value(X, 1, 0.0))[1].item() < 1e-6, "scale of a zero row")),
    ("huge.float_max", OK, "float max: scale = float max / 448, finite",
     lambda: check(math.isclose(cqf8(input=with_value(X, (0, 0), -FMAX))[0].item(), FMAX / 448, rel_tol=1e-6),
                   "scale of a float max row")),
    ("zero_size.no_rows", OK, "(0, 64): an empty scale",
     lambda: shaped(cqf8(input=torch.zeros(0, 64)), ((0,), torch.float32))),
    ("noncontiguous.input", OK, "same scales", lambda: same_as_contiguous(cqf8, input=nc(X))),
    ("overlap.input", OK, "same scales as the contiguous clone", lambda: same_as_contiguous(cqf8, input=ov(X))),
    ("device.meta_gives_shape", OK, "meta scale of shape (4,)",
     lambda: shaped(cqf8(input=meta(X)), ((4,), torch.float32, "meta"))),
])

ROWS += _section("quantize_affine_float8", [
    ("dtype.int_input", TypeError, "quantize_affine_float8: input must be float32, bfloat16 or float16, got Int",
     lambda: qf8(input=X.int())),
    ("dtype.int_scale", TypeError, "quantize_affine_float8: scale must be float32, bfloat16 or float16, got Int",
     lambda: qf8(scale=_xf8()[0].int())),
    ("float8_dtype.unknown", ValueError, "float8_dtype must be 'e4m3fn' or 'e5m2', got 'float8'",
     lambda: qf8(float8_dtype="float8")),
    ("scale.wrong_numel", ValueError, "quantize_affine_float8: scale has 2 elements", lambda: qf8(scale=torch.ones(2))),
    ("scale.zero", ValueError, "quantize_affine_float8: scale must be finite and > 0, got 0 at block 1",
     lambda: qf8(scale=with_value(_xf8()[0], 1, 0.0))),
    ("scale.float16_e5m2_reciprocal_overflows", ValueError, "its reciprocal overflows",
     lambda: qf8(scale=torch.full((4,), 1e-6).half(), float8_dtype="e5m2")),
    ("device.scale_on_meta", ValueError, "quantize_affine_float8: scale is on meta but input is on cpu",
     lambda: qf8(scale=meta(_xf8()[0]))),
    ("device.meta_gives_shape", OK, "meta uint8 codes (4, 64)",
     lambda: shaped(qf8(input=meta(X), scale=meta(_xf8()[0])), ((4, 64), torch.uint8, "meta"))),
    ("device.meta_block_not_dividing", ValueError, "block_size[1] = 40 does not divide input size 64",
     lambda: qf8(input=meta(X), block_size=[1, 40], scale=meta(_xf8()[0]))),
    ("block_size.not_dividing", ValueError, "block_size[1] = 40 does not divide input size 64",
     lambda: qf8(block_size=[1, 40])),
    ("nan.input_stays_nan", OK, "NaN -> the e4m3fn NaN code (0x7f, any sign)",
     lambda: check(int(qf8(input=with_value(X, (0, 3), NAN))[0, 3]) & 0x7F == 0x7F, "code of NaN")),
    ("inf.input_saturates", OK, "+Inf -> 448 (0x7e), -Inf -> -448 (0xfe)",
     lambda: check(qf8(input=with_value(with_value(X, (0, 3), INF), (0, 4), -INF),
                       scale=torch.ones(4))[0, 3:5].tolist() == [0x7E, 0xFE], "codes of +-Inf")),
    ("inf.input_saturates_e5m2", OK, "+Inf -> 57344 (0x7b) in e5m2",
     lambda: check(int(qf8(input=with_value(X, (0, 3), INF), scale=torch.ones(4), float8_dtype="e5m2")[0, 3]) == 0x7B,
                   "code of +Inf")),
    ("huge.input_saturates", OK, "1e38 with scale 1 -> 448 (0x7e)",
     lambda: check(int(qf8(input=with_value(X, (0, 3), 1e38), scale=torch.ones(4))[0, 3]) == 0x7E, "code of 1e38")),
    ("zero_size.no_rows", OK, "(0, 64): empty codes",
     lambda: shaped(qf8(input=torch.zeros(0, 64), scale=torch.ones(0)), ((0, 64), torch.uint8))),
    ("noncontiguous.input", OK, "same codes", lambda: same_as_contiguous(qf8, input=tr(X))),
    ("overlap.input", OK, "same codes as the contiguous clone",
     lambda: same_as_contiguous(qf8, input=ov(X), scale=ov(_xf8()[0]))),
])

ROWS += _section("dequantize_affine_float8", [
    ("dtype.float_codes", TypeError,
     "dequantize_affine_float8: float8 codes must be uint8 (raw bytes) or a torch float8 dtype, got Float",
     lambda: dqf8(input=X)),
    ("dtype.int_output_dtype", TypeError, "dequantize_affine_float8: output_dtype must be float32, bfloat16 or float16",
     lambda: dqf8(output_dtype=torch.int16)),
    ("dtype.int_scale", TypeError,
     "dequantize_affine_float8: scale must be float32",
     lambda: dqf8(scale=_xf8()[0].long())),
    ("float8_dtype.unknown", ValueError, "float8_dtype must be 'e4m3fn' or 'e5m2', got 'E4M3'",
     lambda: dqf8(float8_dtype="E4M3")),
    ("scale.wrong_numel", ValueError,
     "dequantize_affine_float8: scale has 1 elements",
     lambda: dqf8(scale=torch.ones(1))),
    ("nan.code_stays_nan", OK, "the NaN code dequantizes to NaN",
     lambda: check(bool(dqf8(input=with_value(_xf8()[1], (1, 1), 0x7F))[1, 1].isnan()), "value of the NaN code")),
    ("zero_size.no_rows", OK, "(0, 64): empty values",
     lambda: shaped(dqf8(input=torch.zeros(0, 64, dtype=torch.uint8), scale=torch.ones(0)), ((0, 64), torch.float32))),
    ("noncontiguous.codes", OK, "same values", lambda: same_as_contiguous(dqf8, input=nc(_xf8()[1]))),
    ("device.meta_gives_shape", OK, "meta values (4, 64)",
     lambda: shaped(dqf8(input=meta(_xf8()[1]), scale=meta(_xf8()[0])), ((4, 64), torch.float32, "meta"))),
])

# int8_asymm_per_token_quant(input), int8_symm_per_token_reduced_range_quant(input) -> (codes, scale, zero_point)
_asym = ops.int8_asymm_per_token_quant
_symm = ops.int8_symm_per_token_reduced_range_quant
ROWS += _section("int8_asymm_per_token_quant", [
    ("dtype.int_input", TypeError, "input must be float32, bfloat16 or float16, got Int", lambda: _asym(X.int())),
    ("rank.0d_input", ValueError, "per-token quantization needs an input with at least 1 dim",
     lambda: _asym(torch.tensor(1.0))),
    ("rank.1d_input", OK, "a 1-d input is one token: codes (64,), 0-d scale and zero point",
     lambda: shaped(_asym(X[0]), ((64,), torch.int8), ((), torch.float32), ((), torch.int8))),
    ("rank.3d_input", OK, "(2, 3, 64): codes (2, 3, 64), qparams (2, 3)",
     lambda: shaped(_asym(_randn(2, 3, 64, seed=5)), ((2, 3, 64), torch.int8), ((2, 3), torch.float32),
                    ((2, 3), torch.int8))),
    ("zero_size.no_tokens", OK, "(0, 64): empty results",
     lambda: shaped(_asym(torch.zeros(0, 64)), ((0, 64), torch.int8), ((0,), torch.float32), ((0,), torch.int8))),
    ("zero_size.no_features", ValueError, "int8_asymm_per_token_quant", lambda: _asym(torch.zeros(4, 0))),
    ("device.meta_no_features", ValueError, "int8_asymm_per_token_quant: input has no features",
     lambda: _asym(meta(torch.zeros(4, 0)))),
    ("device.meta_4x1_gives_cpu_shapes", OK, "meta (4, 1) input: qparams (4, 1) as on CPU",
     lambda: shaped(_asym(meta(X[:, :1])), *[(t.shape, t.dtype, "meta") for t in _asym(X[:, :1])])),
    ("noncontiguous.input", OK, "same codes and qparams", lambda: same_as_contiguous(_asym, input=tr(X))),
    ("overlap.input", OK,
     "same codes and qparams as the contiguous clone",
     lambda: same_as_contiguous(_asym, input=ov(X))),
    ("nan.input", ValueError, "input contains NaN or Inf (block 3)", lambda: _asym(with_value(X, (3, 0), NAN))),
    ("huge.input", OK, "2^100 x: same codes, scales times 2^100",
     lambda: (same(_asym(X * 2.0 ** 100)[0], _asym(X)[0]), same(_asym(X * 2.0 ** 100)[1], _asym(X)[1] * 2.0 ** 100))),
    # (max - min) / 255 is finite but (max - min) overflows float32.
    ("huge.float_max", ValueError, "int8_asymm_per_token_quant",
     lambda: _asym(with_value(with_value(X, (0, 0), FMAX), (0, 1), -FMAX))),
    ("device.meta_gives_shapes", OK, "meta codes (4, 64), qparams (4,)",
     lambda: shaped(_asym(meta(X)), ((4, 64), torch.int8, "meta"), ((4,), torch.float32, "meta"),
                    ((4,), torch.int8, "meta"))),
])

ROWS += _section("int8_symm_per_token_reduced_range_quant", [
    ("dtype.int_input", TypeError, "input must be float32, bfloat16 or float16, got Long", lambda: _symm(X.long())),
    ("rank.0d_input", ValueError, "per-token quantization needs an input with at least 1 dim",
     lambda: _symm(torch.tensor(1.0))),
    ("noncontiguous.input", OK, "same codes and qparams", lambda: same_as_contiguous(_symm, input=nc(X))),
    ("nan.input", ValueError, "input contains NaN or Inf (block 2)", lambda: _symm(with_value(X, (2, 0), NAN))),
    ("huge.float_max", OK, "+-float max: finite scale, codes +-127",
     lambda: check(_symm(with_value(with_value(X, (0, 0), FMAX), (0, 1), -FMAX))[0][0, :2].tolist() == [127, -127],
                   "codes of +-float max")),
    ("dtype.float16_scale_is_float32", OK, "float16 input: float32 scales (no overflow)",
     lambda: shaped(_symm(X.half()), ((4, 64), torch.int8), ((4,), torch.float32), ((4,), torch.float16))),
    ("device.meta_float16_gives_shapes", OK, "meta float16 input: float32 scales as on CPU",
     lambda: shaped(_symm(meta(X.half())), ((4, 64), torch.int8, "meta"), ((4,), torch.float32, "meta"),
                    ((4,), torch.float16, "meta"))),
])

# pack_bits(codes, bits, quant_min), unpack_bits(packed, bits, quant_min, cols, output_dtype)
ROWS += _section("pack_bits", [
    ("bits.zero", ValueError, "pack_bits: bits must be in 1..8, got 0", lambda: pack(bits=0)),
    ("bits.nine", ValueError, "pack_bits: bits must be in 1..8, got 9", lambda: pack(bits=9)),
    ("bits.negative", ValueError, "pack_bits: bits must be in 1..8, got -1", lambda: pack(bits=-1)),
    ("dtype.float_codes", TypeError, "pack_bits: codes", lambda: pack(codes=C8.float())),
    ("dtype.bool_codes", TypeError, "pack_bits: codes", lambda: pack(codes=C8.bool(), bits=1)),
    ("device.meta_float_codes", TypeError, "pack_bits: codes must hold integer codes",
     lambda: pack(codes=meta(C8.float()))),
    ("range.code_above_the_bit_range", ValueError,
     "codes span [0, 16], outside the 4-bit range starting at quant_min=0",
     lambda: pack(codes=with_value(C8, (0, 0), 16))),
    ("range.code_below_quant_min", ValueError, "outside the 4-bit range starting at quant_min=1",
     lambda: pack(codes=with_value(C8, (0, 0), 0), quant_min=1)),
    ("rank.0d_codes", ValueError,
     "pack_bits: codes must have at least 1 dim",
     lambda: pack(codes=torch.tensor(3, dtype=torch.uint8))),
    ("zero_size.no_rows", OK, "(0, 8) 4-bit codes: (0, 4) bytes",
     lambda: shaped(pack(codes=torch.zeros(0, 8, dtype=torch.uint8)), ((0, 4), torch.uint8))),
    ("zero_size.no_columns", OK, "(4, 0) codes: (4, 0) bytes",
     lambda: shaped(pack(codes=torch.zeros(4, 0, dtype=torch.uint8)), ((4, 0), torch.uint8))),
    ("noncontiguous.codes", OK, "same bytes", lambda: same_as_contiguous(pack, codes=tr(C8))),
    ("overlap.codes", OK, "same bytes as the contiguous clone", lambda: same_as_contiguous(pack, codes=ov(C8))),
    ("device.meta_gives_shape", OK, "meta (4, 3) bytes for 8 3-bit codes",
     lambda: shaped(pack(codes=meta(C8), bits=3), ((4, 3), torch.uint8, "meta"))),
    ("device.meta_bits_zero", ValueError,
     "pack_bits: bits must be in 1..8, got 0",
     lambda: pack(codes=meta(C8), bits=0)),
])

ROWS += _section("unpack_bits", [
    ("bits.zero", ValueError, "unpack_bits: bits must be in 1..8, got 0", lambda: unpack(bits=0)),
    ("bits.nine", ValueError, "unpack_bits: bits must be in 1..8, got 9", lambda: unpack(bits=9)),
    ("dtype.int8_packed", TypeError, "unpack_bits: packed must be uint8, got Char",
     lambda: unpack(packed=ops.pack_bits(C8, 4, 0).to(torch.int8))),
    ("dtype.float_output_dtype", TypeError, "unpack_bits: output_dtype must be uint8, int8, int16 or int32, got Float",
     lambda: unpack(output_dtype=torch.float32)),
    ("cols.mismatch", ValueError, "unpack_bits: packed rows have 4 bytes, but 9 codes of 4 bits need 5",
     lambda: unpack(cols=9)),
    ("cols.negative", ValueError, "packed rows have 4 bytes, but -8 codes", lambda: unpack(cols=-8)),
    ("range.quant_min_does_not_fit", ValueError,
     "range [250, 265] does not fit in Byte",
     lambda: unpack(quant_min=250)),
    ("rank.0d_packed", ValueError, "unpack_bits: packed must have at least 1 dim",
     lambda: unpack(packed=torch.tensor(3, dtype=torch.uint8))),
    ("zero_size.no_rows", OK, "(0, 4) bytes: (0, 8) codes",
     lambda: shaped(unpack(packed=torch.zeros(0, 4, dtype=torch.uint8)), ((0, 8), torch.uint8))),
    ("noncontiguous.packed", OK, "same codes", lambda: same_as_contiguous(unpack, packed=nc(ops.pack_bits(C8, 4, 0)))),
    ("device.meta_gives_shape", OK, "meta (4, 8) int8 codes",
     lambda: shaped(unpack(packed=meta(ops.pack_bits(C8, 4, 0)), output_dtype=torch.int8),
                    ((4, 8), torch.int8, "meta"))),
    ("device.meta_bits_nine", ValueError, "unpack_bits: bits must be in 1..8, got 9",
     lambda: unpack(packed=meta(ops.pack_bits(C8, 4, 0)), bits=9)),
    ("device.meta_cols_mismatch", ValueError, "unpack_bits: packed rows have 4 bytes, but 9 codes of 4 bits need 5",
     lambda: unpack(packed=meta(ops.pack_bits(C8, 4, 0)), cols=9)),
])

# weight_only_linear(input, codes, code_format, bits, out_features, in_features, group_size, scale, zero_point,
#                    quant_min, quant_max, zero_point_domain, bias)
ROWS += _section("weight_only_linear", [
    ("dtype.int_input", TypeError, "weight_only_linear: input must be float32, bfloat16 or float16, got Int",
     lambda: wol(input=X.int())),
    ("dtype.int_scale", TypeError, "weight_only_linear: scale must be float32, bfloat16 or float16, got Int",
     lambda: wol(scale=_wq()[1].int())),
    ("dtype.float_plain_codes", TypeError, "weight_only_linear: codes", lambda: wol(codes=_wq()[0].float())),
    ("dtype.int8_packed_codes", TypeError, "weight_only_linear: packed codes must be uint8, got Char",
     lambda: wol_packed(codes=_wq_uint3()[0].to(torch.int8))),
    ("rank.0d_input", ValueError, "weight_only_linear: input must have at least 1 dim, got a scalar",
     lambda: wol(input=torch.tensor(1.0))),
    ("shape.in_features_mismatch", ValueError,
     "weight_only_linear: input has 63 features in its last dim but the weight expects in_features=64",
     lambda: wol(input=X[:, :63])),
    ("shape.codes_mismatch", ValueError, "plain codes must have shape (8, 64), got [8, 32]",
     lambda: wol(codes=_wq()[0][:, :32].contiguous())),
    ("shape.packed_codes_mismatch", ValueError, "packed codes must have shape (8, 24), got [8, 23]",
     lambda: wol_packed(codes=_wq_uint3()[0][:, :23].contiguous())),
    ("shape.negative_out_features", ValueError, "weight_only_linear: scale has 16 elements, expected -16",
     lambda: wol(out_features=-8)),
    ("group_size.not_dividing", ValueError, "weight_only_linear: group_size=48 must be >= 1 and divide in_features=64",
     lambda: wol(group_size=48)),
    ("group_size.zero", ValueError, "group_size=0 must be >= 1 and divide in_features=64", lambda: wol(group_size=0)),
    ("bits.nine_packed", ValueError, "weight_only_linear: bits must be in 1..8, got 9", lambda: wol_packed(bits=9)),
    ("code_format.unknown", ValueError,
     "weight_only_linear: code_format must be plain, packed, float8_e4m3fn, float8_e5m2 or a float-x format "
     "fp<N>_e<E>m<M>, got 'int8'",
     lambda: wol(code_format="int8")),
    ("code_format.float8_with_int8_codes", TypeError, "float8 codes must be uint8",
     lambda: wol(code_format="float8_e4m3fn", zero_point=None, zero_point_domain="NONE")),
    ("scale.wrong_numel", ValueError, "weight_only_linear: scale has 8 elements, expected 16",
     lambda: wol(scale=torch.ones(8))),
    ("zero_point.missing", ValueError, "weight_only_linear: zero_point_domain INT needs a zero_point",
     lambda: wol(zero_point=None)),
    ("zero_point.wrong_numel", ValueError, "weight_only_linear: zero_point has 17 elements, expected 16",
     lambda: wol(zero_point=torch.zeros(17))),
    ("bias.wrong_shape", ValueError,
     "weight_only_linear: bias must have shape (8,), got [4]",
     lambda: wol(bias=torch.ones(4))),
    ("device.codes_on_meta", ValueError, "weight_only_linear: codes is on meta, the input on cpu",
     lambda: wol(codes=meta(_wq()[0]))),
    ("device.meta_gives_shape", OK, "meta (4, 8) output",
     lambda: shaped(wol(input=meta(X), codes=meta(_wq()[0]), scale=meta(_wq()[1]), zero_point=meta(_wq()[2])),
                    ((4, 8), torch.float32, "meta"))),
    ("device.meta_in_features_mismatch", ValueError, "the weight expects in_features=64",
     lambda: wol(input=meta(X[:, :63]), codes=meta(_wq()[0]), scale=meta(_wq()[1]), zero_point=meta(_wq()[2]))),
    ("zero_size.no_rows", OK,
     "(0, 64) -> (0, 8)",
     lambda: shaped(wol(input=torch.zeros(0, 64)), ((0, 8), torch.float32))),
    ("zero_size.no_out_features", OK, "out_features 0 -> (4, 0)",
     lambda: shaped(wol(codes=torch.zeros(0, 64, dtype=torch.int8), out_features=0, scale=torch.ones(0),
                        zero_point=torch.zeros(0)), ((4, 0), torch.float32))),
    ("zero_size.no_in_features", OK, "in_features 0 -> zeros (4, 8), like F.linear",
     lambda: same(wol(input=torch.zeros(4, 0), codes=torch.zeros(8, 0, dtype=torch.int8), in_features=0, group_size=1,
                      scale=torch.ones(0), zero_point=torch.zeros(0)), torch.zeros(4, 8))),
    ("zero_size.no_in_features_bias", OK, "in_features 0 with a bias -> the bias in every row, like F.linear",
     lambda: same(wol(input=torch.zeros(2, 3, 0), codes=torch.zeros(8, 0, dtype=torch.int8), in_features=0,
                      group_size=1, scale=torch.ones(0), zero_point=torch.zeros(0), bias=torch.arange(8.0)),
                  torch.arange(8.0).expand(2, 3, 8))),
    ("noncontiguous.input", OK, "same output", lambda: same_as_contiguous(wol, input=tr(X))),
    ("noncontiguous.codes_scale_zero_point", OK, "same output",
     lambda: same_as_contiguous(wol, codes=tr(_wq()[0]), scale=nc(_wq()[1]), zero_point=tr(_wq()[2]))),
    ("overlap.input", OK, "same output as the contiguous clone", lambda: same_as_contiguous(wol, input=ov(X))),
    ("nan.input_propagates", OK, "a NaN in row 2 makes row 2 NaN, the other rows unchanged",
     lambda: (check(bool(wol(input=with_value(X, (2, 7), NAN))[2].isnan().all()), "row 2 is NaN"),
              same(wol(input=with_value(X, (2, 7), NAN))[[0, 1, 3]], wol()[[0, 1, 3]]))),
    ("huge.input", OK, "2^100 x -> 2^100 y exactly", lambda: scaled_exactly(wol, X)),
])

# int8_dynamic_linear(input, act_quant, codes, code_format, bits, out_features, in_features, group_size,
#                     weight_scale, weight_zero_point, quant_min, bias)
ROWS += _section("int8_dynamic_linear", [
    ("dtype.int_input", TypeError, "int8_dynamic_linear: input must be float32, bfloat16 or float16, got Int",
     lambda: i8dl(input=X.int())),
    ("dtype.int32_plain_codes", TypeError, "int8_dynamic_linear: plain weight codes must be int8 or uint8, got Int",
     lambda: i8dl(codes=_wq_sym()[0].int())),
    ("act_quant.unknown", ValueError,
     "int8_dynamic_linear: act_quant must be 'asymmetric', 'symmetric_reduced_range' or 'int4_symmetric', got 'symmetric'",
     lambda: i8dl(act_quant="symmetric")),
    ("code_format.float8", ValueError, "int8_dynamic_linear: code_format must be plain, packed, got 'float8_e4m3fn'",
     lambda: i8dl(code_format="float8_e4m3fn")),
    ("bits.nine_packed", ValueError, "int8_dynamic_linear: bits must be in 1..8, got 9",
     lambda: i8dl(codes=torch.zeros(8, 72, dtype=torch.uint8), code_format="packed", bits=9)),
    ("rank.0d_input", ValueError, "int8_dynamic_linear: input must have at least 1 dim, got a scalar",
     lambda: i8dl(input=torch.tensor(2.0))),
    ("shape.in_features_mismatch", ValueError,
     "int8_dynamic_linear: input has 32 features in its last dim but the weight expects in_features=64",
     lambda: i8dl(input=X[:, :32])),
    ("shape.codes_mismatch", ValueError, "plain codes must have shape (8, 64), got [4, 64]",
     lambda: i8dl(codes=_wq_sym()[0][:4].contiguous())),
    ("group_size.not_dividing", ValueError, "int8_dynamic_linear: group_size=24 must be >= 1 and divide in_features=64",
     lambda: i8dl(group_size=24)),
    ("group_size.too_large_for_int32_sums", ValueError, "group_size must be <= 32768 for int32 accumulation, got 65536",
     lambda: i8dl(input=torch.ones(1, 65536), codes=torch.ones(1, 65536, dtype=torch.int8), out_features=1,
                  in_features=65536, group_size=65536, weight_scale=torch.ones(1))),
    ("scale.wrong_numel", ValueError, "int8_dynamic_linear: weight_scale has 4 elements, expected 8",
     lambda: i8dl(weight_scale=torch.ones(4))),
    ("zero_point.wrong_numel", ValueError, "int8_dynamic_linear: weight_zero_point has 16 elements, expected 8",
     lambda: i8dl(weight_zero_point=torch.zeros(16))),
    ("bias.wrong_shape", ValueError, "int8_dynamic_linear: bias must have shape (8,), got [9]",
     lambda: i8dl(bias=torch.ones(9))),
    ("device.codes_on_meta", ValueError,
     "int8_dynamic_linear: codes is on meta",
     lambda: i8dl(codes=meta(_wq_sym()[0]))),
    ("device.meta_gives_shape", OK, "meta (4, 8) output",
     lambda: shaped(i8dl(input=meta(X), codes=meta(_wq_sym()[0]), weight_scale=meta(_wq_sym()[1])),
                    ((4, 8), torch.float32, "meta"))),
    ("zero_size.no_rows", OK,
     "(0, 64) -> (0, 8)",
     lambda: shaped(i8dl(input=torch.zeros(0, 64)), ((0, 8), torch.float32))),
    ("zero_size.no_in_features", OK, "in_features 0 with a bias -> the bias in every row, like F.linear",
     lambda: same(i8dl(input=torch.zeros(4, 0), codes=torch.zeros(8, 0, dtype=torch.int8), in_features=0,
                       group_size=1, weight_scale=torch.ones(0), bias=torch.arange(8.0)), torch.arange(8.0).expand(4, 8))),
    ("device.meta_in_features_mismatch", ValueError, "the weight expects in_features=64",
     lambda: i8dl(input=meta(X[:, :63]), codes=meta(_wq_sym()[0]), weight_scale=meta(_wq_sym()[1]))),
    ("device.bias_on_meta", ValueError, "int8_dynamic_linear: bias is on meta, the input on cpu",
     lambda: i8dl(bias=meta(torch.ones(8)))),
    ("noncontiguous.input", OK, "same output", lambda: same_as_contiguous(i8dl, input=tr(X))),
    ("noncontiguous.codes", OK, "same output", lambda: same_as_contiguous(i8dl, codes=tr(_wq_sym()[0]))),
    ("overlap.input", OK, "same output as the contiguous clone", lambda: same_as_contiguous(i8dl, input=ov(X))),
    ("nan.input", ValueError, "input contains NaN or Inf", lambda: i8dl(input=with_value(X, (1, 1), NAN))),
    ("huge.input", OK, "2^100 x -> 2^100 y exactly", lambda: scaled_exactly(i8dl, X)),
])

# float8_linear(input, act_dtype, act_granularity, act_scale, codes, weight_dtype, weight_scale, bias, fast_accum)
ROWS += _section("float8_linear", [
    ("dtype.int_input", TypeError, "float8_linear: input must be float32, bfloat16 or float16, got Int",
     lambda: f8l(input=X.int())),
    ("dtype.float_codes", TypeError,
     "float8_linear: float8 codes must be uint8 (raw bytes) or a torch float8 dtype, got Float",
     lambda: f8l(codes=W)),
    ("dtype.int_act_scale", TypeError, "float8_linear: act_scale must be float32, bfloat16 or float16, got Long",
     lambda: f8l(act_granularity="PerTensor", act_scale=torch.tensor(1))),
    ("act_dtype.unknown", ValueError,
     "float8_dtype must be 'e4m3fn' or 'e5m2', got 'int8'",
     lambda: f8l(act_dtype="int8")),
    ("act_granularity.unknown", ValueError,
     "float8_linear: act_granularity must be 'PerTensor' or 'PerRow', got 'PerGroup'",
     lambda: f8l(act_granularity="PerGroup")),
    ("rank.0d_input", ValueError, "float8_linear: input must have at least 1 dim, got a scalar",
     lambda: f8l(input=torch.tensor(1.0))),
    ("rank.1d_codes", ValueError, "float8_linear: codes must be 2-d (out_features, in_features), got shape [512]",
     lambda: f8l(codes=_wf8()[0].reshape(-1))),
    ("shape.in_features_mismatch", ValueError,
     "float8_linear: input has 48 features in its last dim but the weight expects in_features=64",
     lambda: f8l(input=X[:, :48])),
    ("scale.wrong_numel", ValueError,
     "float8_linear: weight_scale has 3 elements, expected 1 (per tensor) or out_features=8",
     lambda: f8l(weight_scale=torch.ones(3))),
    ("act_scale.with_per_row", ValueError, "a static act_scale is one scale per tensor",
     lambda: f8l(act_scale=torch.tensor(0.1))),
    ("act_scale.two_elements", ValueError, "float8_linear: act_scale must hold one element, got shape [2]",
     lambda: f8l(act_granularity="PerTensor", act_scale=torch.ones(2))),
    ("act_scale.zero", ValueError, "act_scale", lambda: f8l(act_granularity="PerTensor", act_scale=torch.tensor(0.0))),
    ("bias.wrong_shape", ValueError, "float8_linear: bias must have shape (8,), got [8, 1]",
     lambda: f8l(bias=torch.ones(8, 1))),
    ("device.codes_on_meta", ValueError,
     "float8_linear: codes is on meta, the input on cpu",
     lambda: f8l(codes=meta(_wf8()[0]))),
    ("device.meta_gives_shape", OK, "meta (4, 8) output",
     lambda: shaped(f8l(input=meta(X), codes=meta(_wf8()[0]), weight_scale=meta(_wf8()[1])),
                    ((4, 8), torch.float32, "meta"))),
    ("device.meta_in_features_mismatch", ValueError, "the weight expects in_features=64",
     lambda: f8l(input=meta(X[:, :48]), codes=meta(_wf8()[0]), weight_scale=meta(_wf8()[1]))),
    ("zero_size.no_rows", OK,
     "(0, 64) -> (0, 8)",
     lambda: shaped(f8l(input=torch.zeros(0, 64)), ((0, 8), torch.float32))),
    ("zero_size.no_out_features", OK, "codes (0, 64) -> (4, 0)",
     lambda: shaped(f8l(codes=torch.zeros(0, 64, dtype=torch.uint8), weight_scale=torch.ones(1)),
                    ((4, 0), torch.float32))),
    ("zero_size.no_in_features", OK, "in_features 0 -> zeros (4, 8), like F.linear",
     lambda: same(f8l(input=torch.zeros(4, 0), codes=torch.zeros(8, 0, dtype=torch.uint8)), torch.zeros(4, 8))),
    ("zero_size.no_in_features_bias", OK, "in_features 0 with a bias -> the bias in every row",
     lambda: same(f8l(input=torch.zeros(4, 0), codes=torch.zeros(8, 0, dtype=torch.uint8), bias=torch.arange(8.0)),
                  torch.arange(8.0).expand(4, 8))),
    ("act_scale.nan", ValueError, "float8_linear: act_scale must be finite and > 0, got nan",
     lambda: f8l(act_granularity="PerTensor", act_scale=torch.tensor(NAN))),
    ("device.bias_on_meta", ValueError, "float8_linear: bias is on meta, the input on cpu",
     lambda: f8l(bias=meta(torch.ones(8)))),
    ("noncontiguous.input", OK, "same output", lambda: same_as_contiguous(f8l, input=tr(X))),
    ("noncontiguous.codes", OK, "same output", lambda: same_as_contiguous(f8l, codes=tr(_wf8()[0]))),
    ("overlap.input_per_tensor", OK, "same output as the contiguous clone",
     lambda: same_as_contiguous(f8l, input=ov(X), act_granularity="PerTensor")),
    ("nan.input_dynamic", ValueError, "input contains NaN or Inf", lambda: f8l(input=with_value(X, (0, 0), NAN))),
    ("nan.input_static_propagates", OK, "static scale: a NaN input keeps its NaN code, its row only is NaN",
     lambda: nan_in_row_only(f8l(input=with_value(X, (3, 9), NAN), act_granularity="PerTensor",
                                 act_scale=torch.tensor(0.02)), 3)),
    ("nan.weight_code_propagates", OK, "a NaN weight code makes its output column NaN",
     lambda: check(bool(f8l(codes=with_value(_wf8()[0], (5, 0), 0x7F))[:, 5].isnan().all()), "column 5 is NaN")),
    ("huge.input", OK, "2^100 x -> 2^100 y exactly", lambda: scaled_exactly(f8l, X)),
])

# affine_quantize(weight, mapping_type, block_size, code_dtype, quant_min, quant_max, eps, scale_dtype,
#                 zero_point_dtype, preserve_zero, zero_point_domain, layout) -> AffineQuantizedTensor
ROWS += _section("affine_quantize", [
    ("dtype.int_weight", TypeError, "affine_quantize: weight must be float32, bfloat16 or float16, got Int",
     lambda: aq(weight=W.int())),
    ("code_dtype.uint9", ValueError,
     "unknown code dtype 'uint9'", lambda: aq(code_dtype="uint9",
     quant_min=0, quant_max=511)),
    ("code_dtype.int0", ValueError, "unknown code dtype 'int0'", lambda: aq(code_dtype="int0")),
    ("bits.range_exceeds_int4", ValueError,
     "AffineQuantizedTensor: [quant_min, quant_max] = [-8, 8] exceeds the range of int4",
     lambda: aq(code_dtype="int4", quant_min=-8, quant_max=8)),
    ("bits.uintx_layout_int32", ValueError, "UintxLayout packs codes of at most 8 bits, got int32",
     lambda: aq(code_dtype="int32", layout="UintxLayout")),
    ("layout.unknown", ValueError, "unknown layout 'BlockSparseLayout'", lambda: aq(layout="BlockSparseLayout")),
    ("layout.tiled_with_int8", ValueError, "TensorCoreTiledLayout holds 2-d weights of 4-bit codes, got int8",
     lambda: aq(layout="TensorCoreTiledLayout")),
    ("layout.plain_with_float8", ValueError, "code_dtype float8_e4m3fn needs Float8Layout or CutlassSemiSparseLayout, got PlainLayout",
     lambda: aq(code_dtype="float8_e4m3fn", zero_point_domain="NONE")),
    ("layout.float8_with_int8", ValueError, "Float8Layout needs a float8 code_dtype, got int8",
     lambda: aq(layout="Float8Layout")),
    ("block_size.not_dividing", ValueError,
     "block_size[1] = 48 does not divide input size 64",
     lambda: aq(block_size=[1, 48])),
    ("nan.weight", ValueError, "input contains NaN or Inf", lambda: aq(weight=with_value(W, (7, 63), NAN))),
    ("device.meta_weight", NotImplementedError, "affine_quantize", lambda: aq(weight=meta(W))),
    ("zero_size.no_rows", OK, "(0, 64): an empty quantized tensor",
     lambda: shaped(aq(weight=torch.zeros(0, 64)).dequantize(), ((0, 64), torch.float32))),
    ("noncontiguous.weight", OK, "same codes and qparams",
     lambda: same(aq(weight=tr(W), layout="UintxLayout", code_dtype="uint4", quant_min=0, quant_max=15).get_plain(),
                  aq(weight=W, layout="UintxLayout", code_dtype="uint4", quant_min=0, quant_max=15).get_plain())),
])

# affine_quantized_linear(input, AffineQuantizedTensor weight, bias)
ROWS += _section("affine_quantized_linear", [
    ("dtype.bfloat16_input_float32_weight", TypeError,
     "linear: input dtype BFloat16 does not match the weight's dtype float32",
     lambda: aql(input=X.bfloat16())),
    ("rank.0d_input", ValueError, "input must have at least 1 dim, got a scalar", lambda: aql(input=torch.tensor(1.0))),
    ("rank.3d_weight", NotImplementedError, "AffineQuantizedTensor.linear: needs a 2-d weight",
     lambda: aql(weight=aq(weight=_randn(2, 8, 64, seed=7), block_size=[1, 1, 64]))),
    ("rank.block_across_rows", NotImplementedError,
     "quantized per row or per group along in_features, got shape [8, 64] with block_size [2, 32]",
     lambda: aql(weight=aq(block_size=[2, 32]))),
    ("shape.in_features_mismatch", ValueError,
     "input has 65 features in its last dim but the weight expects in_features=64",
     lambda: aql(input=_randn(4, 65, seed=8))),
    ("bias.wrong_shape", ValueError, "bias must have shape (8,), got [64]", lambda: aql(bias=torch.ones(64))),
    ("weight.none", RuntimeError, "for argument 'weight'", lambda: aql(weight=None)),
    ("device.bias_on_meta", ValueError, "bias is on meta", lambda: aql(bias=meta(torch.ones(8)))),
    ("device.meta_input_gives_shape", OK, "meta input: meta (4, 8) output",
     lambda: shaped(aql(input=meta(X)), ((4, 8), torch.float32, "meta"))),
    ("zero_size.no_rows", OK,
     "(0, 64) -> (0, 8)",
     lambda: shaped(aql(input=torch.zeros(0, 64)), ((0, 8), torch.float32))),
    ("noncontiguous.input_int8", OK, "same output", lambda: same_as_contiguous(aql, input=tr(X))),
    ("noncontiguous.input_uint3_packed", OK, "same output",
     lambda: same_as_contiguous(aql, input=nc(X), weight="uint3_packed")),
    ("noncontiguous.input_int4_tiled", OK, "same output",
     lambda: same_as_contiguous(aql, input=tr(X), weight="int4_tiled")),
    ("noncontiguous.input_float8", OK,
     "same output",
     lambda: same_as_contiguous(aql, input=nc(X), weight="fp8_per_row")),
    ("overlap.input_int4_tiled", OK, "same output as the contiguous clone",
     lambda: same_as_contiguous(aql, input=ov(X), weight="int4_tiled")),
    ("nan.input_propagates_int4", OK, "a NaN in row 1 makes row 1 NaN only",
     lambda: nan_in_row_only(aql(input=with_value(X, (1, 0), NAN), weight="int4_tiled"), 1)),
    ("huge.input_uint3", OK, "2^100 x -> 2^100 y exactly",
     lambda: scaled_exactly(lambda input: aql(input=input, weight="uint3_packed"), X)),
])

# activation_quantized_linear(input, LinearActivationQuantizedTensor weight, bias)
ROWS += _section("activation_quantized_linear", [
    ("dtype.float16_input_float32_weight", TypeError,
     "linear: input dtype Half does not match the weight's dtype float32",
     lambda: alq(input=X.half())),
    ("dtype.float16_input_float8_weight", TypeError, "does not match the weight's dtype float32",
     lambda: alq(input=X.half(), weight="fp8_dyn_row")),
    ("rank.0d_input", ValueError, "at least 1 dim", lambda: alq(input=torch.tensor(1.0))),
    ("rank.3d_input", OK, "(2, 3, 64) -> (2, 3, 8), row for row the 2-d result",
     lambda: same(alq(input=_randn(2, 3, 64, seed=9)).reshape(6, 8),
                  alq(input=_randn(2, 3, 64, seed=9).reshape(6, 64)))),
    ("shape.in_features_mismatch", ValueError, "the weight expects in_features=64", lambda: alq(input=X[:, :60])),
    ("shape.in_features_mismatch_float8", ValueError, "the weight expects in_features=64",
     lambda: alq(input=X[:, :60], weight="fp8_dyn_tensor")),
    ("bias.wrong_shape", ValueError, "bias must have shape (8,), got [7]", lambda: alq(bias=torch.ones(7))),
    ("device.meta_input_gives_shape", OK, "meta input: meta (4, 8) output",
     lambda: shaped(alq(input=meta(X)), ((4, 8), torch.float32, "meta"))),
    ("zero_size.no_rows", OK,
     "(0, 64) -> (0, 8)",
     lambda: shaped(alq(input=torch.zeros(0, 64)), ((0, 8), torch.float32))),
    ("zero_size.no_rows_float8", OK, "(0, 64) -> (0, 8)",
     lambda: shaped(alq(input=torch.zeros(0, 64), weight="fp8_dyn_tensor"), ((0, 8), torch.float32))),
    ("noncontiguous.input_int8", OK, "same output", lambda: same_as_contiguous(alq, input=tr(X))),
    ("noncontiguous.input_8da4w", OK, "same output", lambda: same_as_contiguous(alq, input=nc(X), weight="8da4w")),
    ("noncontiguous.input_float8_static", OK, "same output",
     lambda: same_as_contiguous(alq, input=tr(X), weight="fp8_static")),
    ("overlap.input_int8_asym", OK, "same output as the contiguous clone",
     lambda: same_as_contiguous(alq, input=ov(X), weight="int8_dyn_asym")),
    ("nan.input_int8", ValueError, "input contains NaN or Inf", lambda: alq(input=with_value(X, (2, 2), NAN))),
    ("nan.input_8da4w", ValueError,
     "input contains NaN or Inf",
     lambda: alq(input=with_value(X, (2, 2), NAN), weight="8da4w")),
    ("nan.input_float8_dynamic", ValueError, "input contains NaN or Inf",
     lambda: alq(input=with_value(X, (2, 2), NAN), weight="fp8_dyn_row")),
    ("huge.input_int8", OK, "2^100 x -> 2^100 y exactly", lambda: scaled_exactly(alq, X)),
    ("huge.input_float8_dynamic", OK, "2^100 x -> 2^100 y exactly",
     lambda: scaled_exactly(lambda input: alq(input=input, weight="fp8_dyn_tensor"), X)),
    ("decode_step.noop_decode_is_weight_only", OK, "x.shape[1] == 1 skips activation quantization",
     lambda: same(alq(input=_randn(2, 1, 64, seed=10), weight="int8_dyn_noop_decode"),
                  aql(input=_randn(2, 1, 64, seed=10), weight="int8_per_channel"))),
])

# torch.classes.torchao_cpp.AffineQuantizedTensor(codes, scale, zero_point, block_size, quant_min, quant_max,
#     zero_point_domain, layout, code_dtype, dtype) and LinearActivationQuantizedTensor(weight, act_quant,
#     act_scale, fast_accum)
_S8 = torch.ones(8)
ROWS += _section("AffineQuantizedTensor.__init__", [
    ("dtype.codes_do_not_match_code_dtype", TypeError, "codes for code_dtype int8 must be Char, got Int",
     lambda: new_aqt(_wq_sym()[0].int(), _S8, None, [1, 64], -128, 127, "NONE", "PlainLayout", "int8")),
    ("dtype.float64", ValueError, "dtype must be 'float32', 'bfloat16' or 'float16', got 'float64'",
     lambda: new_aqt(_wq_sym()[0], _S8, None, [1, 64], -128, 127, "NONE", "PlainLayout", "int8", "float64")),
    ("range.packed_codes_out_of_range", ValueError, "codes must lie in [quant_min, quant_max] = [0, 7]",
     lambda: new_aqt(torch.full((8, 64), 9, dtype=torch.uint8), _S8, torch.zeros(8), [1, 64], 0, 7, "INT",
                     "UintxLayout", "uint3")),
    ("range.plain_codes_out_of_range", ValueError, "codes lie outside [quant_min, quant_max] = [-8, 7]",
     lambda: new_aqt(torch.full((8, 64), 9, dtype=torch.int8), _S8, None, [1, 64], -8, 7, "NONE", "PlainLayout",
                     "int4")),
    ("zero_point.given_for_none_domain", ValueError, "zero_point_domain NONE takes no zero_point",
     lambda: new_aqt(_wq_sym()[0], _S8, torch.zeros(8), [1, 64], -128, 127, "NONE", "PlainLayout", "int8")),
    ("rank.0d_packed_codes", ValueError, "codes must have at least 1 dim",
     lambda: new_aqt(torch.tensor(1, dtype=torch.uint8), torch.ones(()), None, [], 0, 7, "NONE", "UintxLayout",
                     "uint3")),
    ("device.meta_codes", ValueError, "codes must be on a CPU or CUDA device, got meta",
     lambda: new_aqt(meta(_wq_sym()[0]), meta(_S8), None, [1, 64], -128, 127, "NONE", "PlainLayout", "int8")),
    ("device.scale_on_meta", ValueError, "scale is on meta, codes on cpu",
     lambda: new_aqt(_wq_sym()[0], meta(_S8), None, [1, 64], -128, 127, "NONE", "PlainLayout", "int8")),
    ("noncontiguous.codes", OK, "non-contiguous codes are stored contiguous: same dequantized weight",
     lambda: same(new_aqt(tr(_wq_sym()[0]), _wq_sym()[1], None, [1, 64], -128, 127, "NONE", "PlainLayout",
                          "int8").dequantize(),
                  new_aqt(_wq_sym()[0], _wq_sym()[1], None, [1, 64], -128, 127, "NONE", "PlainLayout",
                          "int8").dequantize())),
])

ROWS += _section("LinearActivationQuantizedTensor.__init__", [
    ("act_quant.unknown", ValueError,
     "act_quant must be 'int8_asymm_per_token'",
     lambda: new_laqt(act_quant="fp8_per_row")),
    ("act_quant.float8_on_int8_weight", ValueError, "need a float8 weight, got code_dtype int8",
     lambda: new_laqt(weight="int8_per_channel", act_quant="float8_e4m3fn_per_row")),
    ("fast_accum.with_int8", ValueError, "fast_accum applies to float8 activations only",
     lambda: new_laqt(weight="int8_per_channel", act_quant="int8_asymm_per_token", fast_accum=True)),
    ("act_scale.with_int8", ValueError, "act_scale is for float8 static activation quantization",
     lambda: new_laqt(weight="int8_per_channel", act_quant="int8_asymm_per_token", act_scale=torch.tensor(1.0))),
    ("act_scale.missing_for_static", ValueError,
     "act_quant 'float8_e4m3fn_static' needs act_scale",
     lambda: new_laqt()),
    ("act_scale.two_elements", ValueError, "act_scale must hold one element, got shape [2]",
     lambda: new_laqt(act_scale=torch.ones(2))),
    ("act_scale.int", TypeError,
     "act_scale must be a float tensor, got Long",
     lambda: new_laqt(act_scale=torch.tensor(2))),
    ("act_scale.nan", ValueError,
     "act_scale must be finite and > 0, got nan",
     lambda: new_laqt(act_scale=torch.tensor(NAN))),
    ("act_scale.on_meta", ValueError, "act_scale is on meta, the weight on cpu",
     lambda: new_laqt(act_scale=meta(torch.tensor(1.0)))),
    ("weight.float8_blocks_of_rows", ValueError,
     "a float8 weight is scaled per tensor or per row, got block_size [2, 64]",
     lambda: torch.classes.torchao_cpp.LinearActivationQuantizedTensor(
         aq(mapping_type="SYMMETRIC", block_size=[2, 64], code_dtype="float8_e4m3fn", zero_point_domain="NONE",
            layout="Float8Layout"), "float8_e4m3fn_per_row", None, False)),
])

# __setstate__ of untrusted state (what pickle.loads / torch.load / torch.jit.load feed the classes).
_V = "AffineQuantizedTensor.__setstate__: "
ROWS += _section("AffineQuantizedTensor.__setstate__", [
    ("control.untampered_round_trip", OK, "every kind of weight unpickles to the same values",
     untampered_round_trip),
    ("version.0", ValueError,
     _V + "unsupported state version 0 (this build reads version 1)", lambda: tampered("int8_g32",
     0, 0)),
    ("version.2", ValueError, _V + "unsupported state version 2", lambda: tampered("int8_g32", 0, 2)),
    ("arity.one_field_short", ValueError, "AffineQuantizedTensor.__setstate__", lambda: unpickle(state()[:-1])),
    ("type.string_for_codes", TypeError,
     "AffineQuantizedTensor.__setstate__", lambda: tampered("int8_g32",
     1, "codes")),
    ("codes.truncated", ValueError, _V + "codes must have shape [8, 64] for PlainLayout and shape [8, 64], got [8, 10]",
     lambda: tampered("int8_g32", 1, lambda t: t[:, :10].contiguous())),
    ("codes.wrong_dtype", TypeError, _V + "codes must be Char for PlainLayout/int8, got Int",
     lambda: tampered("int8_g32", 1, lambda t: t.int())),
    ("codes.noncontiguous", ValueError, _V + "codes must be contiguous", lambda: tampered("int8_g32", 1, tr)),
    ("codes.on_meta", ValueError,
     _V + "codes must be on a CPU or CUDA device, got meta", lambda: tampered("int8_g32",
     1, meta)),
    ("codes.out_of_int4_range", ValueError, _V + "codes lie outside [quant_min, quant_max] = [-8, 7]",
     lambda: tampered("int4_g32_in_int8", 1, lambda t: with_value(t, (0, 0), 100))),
    ("codes.packed_row_bytes", ValueError,
     _V + "codes must have shape [8, 24] for UintxLayout and shape [8, 64], got [8, 23]",
     lambda: tampered("uint3_packed", 1, lambda t: t[:, :23].contiguous())),
    ("codes.float8_nan", ValueError, _V + "float8 codes contain NaN or Inf",
     lambda: tampered("fp8_per_row", 1, lambda t: with_value(t, (3, 3), 0xFF))),
    ("codes.float8_e5m2_inf", ValueError, _V + "float8 codes contain NaN or Inf",
     lambda: tampered("fp8_e5m2_per_row", 1, lambda t: with_value(t, (3, 3), 0x7C))),
    ("scale.nan", ValueError, _V + "scale must be finite and > 0",
     lambda: tampered("int4_tiled", 2, lambda t: with_value(t, (0, 0), NAN))),
    ("scale.wrong_numel", ValueError, _V + "scale has 8 elements, expected 16 (one per block)",
     lambda: tampered("int8_g32", 2, lambda t: t[:, 0].contiguous())),
    ("scale.int_dtype", TypeError, _V + "scale must be float32, bfloat16 or float16, got Int",
     lambda: tampered("int8_g32", 2, lambda t: t.int())),
    ("scale.on_meta", ValueError, _V + "scale is on meta, codes on cpu", lambda: tampered("int8_g32", 2, meta)),
    ("zero_point.missing", ValueError,
     _V + "zero_point_domain INT needs a zero_point", lambda: tampered("int8_g32",
     3, None)),
    ("zero_point.given_for_float8", ValueError, _V + "zero_point_domain NONE takes no zero_point",
     lambda: tampered("fp8_per_row", 3, torch.zeros(8))),
    ("zero_point.wrong_numel", ValueError, _V + "zero_point has 8 elements, expected 16",
     lambda: tampered("int8_g32", 3, torch.zeros(8))),
    ("zero_point.bool", TypeError,
     _V + "zero_point has unsupported dtype Bool", lambda: tampered("int8_g32",
     3, lambda t: t.bool())),
    ("zero_point.out_of_range", ValueError, _V + "INT zero points must be integers in [-128, 127]",
     lambda: tampered("int8_g32", 3, lambda t: with_value(t, (0, 0), 300))),
    ("zero_point.nan_float_domain", ValueError, _V + "zero_point must be finite",
     lambda: tampered("int4_tiled", 3, lambda t: with_value(t, (1, 1), NAN))),
    ("block_size.not_dividing", ValueError, _V + "block_size [1, 48] does not divide shape [8, 64]",
     lambda: tampered("int8_g32", 4, [1, 48])),
    ("block_size.wrong_rank", ValueError,
     _V + "block_size [32] does not match shape [8, 64]", lambda: tampered("int8_g32",
     4, [32])),
    ("shape.negative", ValueError, _V + "negative size in shape [8, -64]", lambda: tampered("int8_g32", 5, [8, -64])),
    ("shape.huge", ValueError, "4611686018427387904",
     lambda: tampered("int8_g32", 5, [2 ** 62, 64])),
    # (found by fuzz_affine_setstate: the element count was 0, and the packed row size overflowed)
    ("shape.huge_after_zero_size", ValueError, "size 4611686018427387904 in shape [0, 4611686018427387904] exceeds",
     lambda: tampered("uint3_packed", 5, [0, 2 ** 62])),
    # A pickled state reaches __setstate__ (typed Any, so that other versions get a clear error) through
    # torch's Python-to-IValue conversion, which cannot type an empty list: it refuses before our checks
    # (torch.jit.load's unpickler keeps list types, and then the shape check below names the problem).
    ("shape.empty_for_packed_layout", RuntimeError, "cannot infer type", lambda: unpickle(
        [1, torch.zeros((), dtype=torch.uint8), torch.ones(()), torch.zeros(()), [], [], "float32", 0, 7, "INT",
         "UintxLayout", "uint3"])),
    ("shape.3d_tiled", ValueError, _V + "TensorCoreTiledLayout holds 2-d weights of 4-bit codes",
     lambda: tampered("int4_tiled", 5, [2, 4, 64])),
    ("dtype.float64", ValueError, "dtype must be 'float32', 'bfloat16' or 'float16', got 'float64'",
     lambda: tampered("int8_g32", 6, "float64")),
    ("bits.empty_range", ValueError,
     _V + "quant_min (127) must be < quant_max (127)", lambda: tampered("int8_g32",
     7, 127)),
    ("bits.range_exceeds_uint4", ValueError, _V + "[quant_min, quant_max] = [0, 16] exceeds the range of uint4",
     lambda: tampered("int4_tiled", 8, 16)),
    ("zero_point_domain.unknown", ValueError, "zero_point_domain must be INT, FLOAT or NONE, got 'HALF'",
     lambda: tampered("int8_g32", 9, "HALF")),
    ("layout.unknown", ValueError,
     "unknown layout 'BlockSparseLayout'", lambda: tampered("int8_g32",
     10, "BlockSparseLayout")),
    ("layout.float8_with_plain", ValueError, _V + "code_dtype float8_e4m3fn needs Float8Layout or CutlassSemiSparseLayout, got PlainLayout",
     lambda: tampered("fp8_per_row", 10, "PlainLayout")),
    ("code_dtype.uint9", ValueError, "unknown code dtype 'uint9'", lambda: tampered("int8_g32", 11, "uint9")),
    ("code_dtype.narrower_than_range", ValueError,
     _V + "[quant_min, quant_max] = [-128, 127] exceeds the range of int4",
     lambda: tampered("int8_g32", 11, "int4")),
])

_VL = "LinearActivationQuantizedTensor.__setstate__: "
ROWS += _section("LinearActivationQuantizedTensor.__setstate__", [
    ("version.1_state_of_version_1", ValueError, _VL + "unsupported state version 1 (this build reads version 2)",
     lambda: unpickle([1, tuple(state("int8_per_channel")), "int8_asymm_per_token"],
                      "LinearActivationQuantizedTensor")),
    ("version.1", ValueError, _VL + "unsupported state version 1", lambda: la_tampered("int8_dyn", 0, 1)),
    ("version.3", ValueError, _VL + "unsupported state version 3", lambda: la_tampered("int8_dyn", 0, 3)),
    ("act_quant.unknown", ValueError,
     "act_quant must be 'int8_asymm_per_token'", lambda: la_tampered("int8_dyn",
     2, "int4_per_token")),
    ("act_scale.with_int8", ValueError, "act_scale is for float8 static activation quantization",
     lambda: la_tampered("int8_dyn", 3, torch.tensor(1.0))),
    ("act_scale.missing_for_static", ValueError, "needs act_scale", lambda: la_tampered("fp8_static", 3, None)),
    ("act_scale.nan", ValueError,
     "act_scale must be finite and > 0", lambda: la_tampered("fp8_static",
     3, torch.tensor(NAN))),
    ("fast_accum.with_int8", ValueError,
     "fast_accum applies to float8 activations only", lambda: la_tampered("int8_dyn",
     4, True)),
    ("weight.bad_nested_state", ValueError, _V + "scale must be finite and > 0",
     lambda: la_tampered("int8_dyn", 1, lambda s: s[:2] + (s[2] * 0,) + s[3:])),
])

# Checkpoints: state_dicts into models quantized with another config, and forged quantized weights in torch.load.
_ANOTHER = "the checkpoint was quantized with another config"
ROWS += _section("state_dict", [
    ("int4_group_32_into_group_64", RuntimeError, _ANOTHER,
     lambda: load_into(Int4WeightOnlyConfig(group_size=32), Int4WeightOnlyConfig(group_size=64))),
    ("int8_weight_only_into_int4", RuntimeError, 'While copying the parameter named "0.weight"',
     lambda: load_into(Int8WeightOnlyConfig(), Int4WeightOnlyConfig(group_size=32))),
    ("int8_dynamic_asym_into_sym", RuntimeError, _ANOTHER,
     lambda: load_into(Int8DynamicActivationInt8WeightConfig(act_mapping_type=MappingType.ASYMMETRIC),
                       Int8DynamicActivationInt8WeightConfig())),
    ("weight_only_into_dynamic", RuntimeError, _ANOTHER,
     lambda: load_into(Int8WeightOnlyConfig(), Int8DynamicActivationInt8WeightConfig())),
    ("bfloat16_into_float32", RuntimeError, _ANOTHER,
     lambda: load_into(Int8WeightOnlyConfig(), Int8WeightOnlyConfig(), src_kw=dict(dtype=torch.bfloat16))),
    ("float_into_quantized", RuntimeError, "quantize the model the checkpoint came from with the same config first",
     lambda: quantized(UIntXWeightOnlyConfig(dtype=uint3, group_size=32)).load_state_dict(model().state_dict())),
    ("other_shape", RuntimeError, "size mismatch for 0.weight",
     lambda: load_into(Int8WeightOnlyConfig(), Int8WeightOnlyConfig(), dst_kw=dict(in_features=128))),
    ("float8_static_other_scale", OK, "the calibrated scale is state: loading takes it over",
     lambda: (lambda sd: same(sd[1](X), sd[0](X)))(
         load_into(Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.03)),
                   Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.01))))),
    ("forged.version_2", ValueError, _V + "unsupported state version 2",
     lambda: load_checkpoint([2] + state()[1:])),
    ("forged.truncated_codes", ValueError, _V + "codes must have shape [8, 64]",
     lambda: load_checkpoint(state()[:1] + [state()[1][:4].contiguous()] + state()[2:])),
    ("forged.nan_scale", ValueError, _V + "scale must be finite and > 0",
     lambda: load_checkpoint(state()[:2] + [with_value(state()[2], (0, 0), NAN)] + state()[3:])),
])

# quantize_weight(weight, config_type, fields, fqn) and validate_quant_config(config_type, fields): the C++ registry.
ROWS += _section("quantize_weight", [
    ("config_type.unknown", NotImplementedError, "no quantization handler is registered for config type 'Int3Config'",
     lambda: qw(config_type="Int3Config")),
    ("rank.1d_weight", ValueError, "Int8WeightOnlyConfig: 'layers.0' has a 1-d weight; linear weights are 2-d",
     lambda: qw(weight=W[0])),
    ("rank.3d_weight", ValueError,
     "Int8WeightOnlyConfig: 'layers.0' has a 3-d weight",
     lambda: qw(weight=W.reshape(2, 4, 64))),
    ("rank.4d_weight_float8", ValueError, "'layers.0' has a 4-d weight; this config takes 2-d or 3-d weights",
     lambda: qw(weight=W.reshape(2, 2, 2, 64), config_type="Float8DynamicActivationFloat8WeightConfig")),
    ("dtype.int_weight", TypeError, "weight must be float32, bfloat16 or float16, got Int", lambda: qw(weight=W.int())),
    ("nan.weight", ValueError, "input contains NaN or Inf (block 3)", lambda: qw(weight=with_value(W, (3, 3), NAN))),
    ("device.meta_weight", NotImplementedError, "quantize_weight", lambda: qw(weight=meta(W))),
    ("fields.unknown", ValueError, "Int8WeightOnlyConfig has no field 'bits'", lambda: qw(fields={"bits": 8})),
    ("fields.wrong_type", TypeError, "Int8WeightOnlyConfig.group_size must be int, got str '32'",
     lambda: qw(fields={"group_size": "32"})),
    ("fields.missing_required", ValueError, "Int4WeightOnlyConfig: missing field 'group_size'",
     lambda: qw(config_type="Int4WeightOnlyConfig")),
    ("group_size.not_dividing_skips", OK, "returns no weight and the skip reason",
     lambda: check(qw(fields={"group_size": 48})[:2] == (None, None)
                   and "not divisible by group_size 48" in qw(fields={"group_size": 48})[2], "skip")),
    ("zero_size.no_rows", OK, "(0, 64): an empty quantized weight",
     lambda: shaped(qw(weight=torch.zeros(0, 64))[0].dequantize(), ((0, 64), torch.float32))),
    ("noncontiguous.weight", OK, "same quantized weight",
     lambda: same(qw(weight=tr(W), config_type="Int4WeightOnlyConfig", fields={"group_size": 32})[0].get_plain(),
                  qw(weight=W, config_type="Int4WeightOnlyConfig", fields={"group_size": 32})[0].get_plain())),
])

def cw(weight=W, config_type="Int8WeightOnlyConfig", fields=None, fqn="layers.0"):
    return ops.check_weight(weight, config_type, {} if fields is None else fields, fqn)


# quantize_'s first pass: what quantize_weight would refuse, found without quantizing.
ROWS += _section("check_weight", [
    ("control.good_weight", OK, "a finite float32 weight passes (returns None)",
     lambda: check(cw() is None, "passes")),
    ("config_type.unknown", NotImplementedError, "no quantization handler is registered for config type 'Int3Config'",
     lambda: cw(config_type="Int3Config")),
    ("fields.unknown", ValueError, "Int8WeightOnlyConfig has no field 'bits'", lambda: cw(fields={"bits": 8})),
    ("rank.1d_weight", ValueError, "Int8WeightOnlyConfig: 'layers.0' has a 1-d weight", lambda: cw(weight=W[0])),
    ("dtype.int_weight", TypeError,
     "Int8WeightOnlyConfig: the weight of 'layers.0' must be float32, bfloat16 or float16, got Int",
     lambda: cw(weight=W.int())),
    ("device.meta_weight", NotImplementedError, "check_weight: the weight of 'layers.0' is on meta",
     lambda: cw(weight=meta(W))),
    ("nan.weight", ValueError, "Int8WeightOnlyConfig: the weight of 'layers.0' contains NaN or Inf",
     lambda: cw(weight=with_value(W, (3, 3), NAN))),
    ("inf.weight_last_chunk", ValueError, "the weight of 'layers.0' contains NaN or Inf",
     lambda: cw(weight=with_value(torch.zeros(64, 1 << 15), (63, (1 << 15) - 1), float("-inf")))),
    ("huge.float16_weight", ValueError, "above 16376 (a quarter of its dtype's range) the quantization scales overflow",
     lambda: cw(weight=with_value(W.half(), (0, 0), 60000.0))),
    ("zero_size.no_rows", OK, "(0, 64) passes", lambda: check(cw(weight=torch.zeros(0, 64)) is None, "passes")),
])

ROWS += _section("validate_quant_config", [
    ("config_type.unknown", NotImplementedError, "no quantization handler is registered for config type 'Nope'",
     lambda: ops.validate_quant_config("Nope", {})),
    ("fields.unknown", ValueError, "Float8WeightOnlyConfig has no field 'granularity'",
     lambda: ops.validate_quant_config("Float8WeightOnlyConfig", {"granularity": "PerRow"})),
    ("fields.none_for_required_int", TypeError, "Int4WeightOnlyConfig.group_size must be int, got None",
     lambda: ops.validate_quant_config("Int4WeightOnlyConfig", {"group_size": None})),
    ("fields.list_for_name", TypeError, "IntxWeightOnlyConfig.weight_dtype must be a name (str), got list",
     lambda: ops.validate_quant_config("IntxWeightOnlyConfig", {"weight_dtype": ["int4"]})),
    ("fields.tensor_for_int", TypeError, "UIntXWeightOnlyConfig.group_size must be int, got Tensor",
     lambda: ops.validate_quant_config("UIntXWeightOnlyConfig", {"dtype": "uint4", "group_size": torch.tensor(32)})),
])

# The config classes of quant_api.py, through quantize_ on a Linear(64, 32) (construction validates).
ROWS += _section("Int8WeightOnlyConfig", [
    ("group_size.zero", ValueError, "Int8WeightOnlyConfig.group_size must be >= 1, got 0",
     lambda: qz(lambda: Int8WeightOnlyConfig(group_size=0))),
    ("group_size.str", TypeError,
     "Int8WeightOnlyConfig.group_size must be int, got str",
     lambda: qz(lambda: Int8WeightOnlyConfig(group_size="32"))),
    ("group_size.not_dividing_skips", OK, "K=64 not divisible by 48: the layer stays float",
     lambda: skipped(lambda: Int8WeightOnlyConfig(group_size=48))),
    ("set_inductor_config.str", TypeError, "Int8WeightOnlyConfig.set_inductor_config must be bool, got str",
     lambda: qz(lambda: Int8WeightOnlyConfig(set_inductor_config="yes"))),
    ("dtype.float64_model", TypeError,
     "quantize_: failed to quantize '0' with Int8WeightOnlyConfig: Int8WeightOnlyConfig: the weight of '0' must be "
     "float32, bfloat16 or float16, got Double",
     lambda: qz(Int8WeightOnlyConfig, dtype=torch.float64)),
    ("nan.weight", ValueError,
     "quantize_: failed to quantize '0' with Int8WeightOnlyConfig: Int8WeightOnlyConfig: the weight of '0' contains "
     "NaN or Inf",
     lambda: quantize_(with_weight(with_value(W, (1, 1), NAN)), Int8WeightOnlyConfig())),
    # torchao's symmetric scale max/127.5 puts code -128 at -1.004 max, which overflows float32: refused
    # up front (a finite grid would need other numerics than torchao's).
    ("huge.float_max_weight", ValueError,
     "failed to quantize '0' with Int8WeightOnlyConfig: Int8WeightOnlyConfig: the weight of '0' holds values up to "
     "3.40282e+38 in magnitude",
     lambda: _float_max_weight(Int8WeightOnlyConfig())),
    ("device.meta", NotImplementedError, "quantize_: failed to quantize '0' with Int8WeightOnlyConfig",
     lambda: quantize_(model(), Int8WeightOnlyConfig(), device="meta")),
    ("zero_size.no_out_features", OK, "Linear(64, 0): quantized, output (2, 0)",
     lambda: shaped(qz(Int8WeightOnlyConfig, out_features=0)(X[:2]), ((2, 0), torch.float32))),
    ("zero_size.no_in_features", ValueError, "quantize_: failed to quantize '0' with Int8WeightOnlyConfig",
     lambda: qz(Int8WeightOnlyConfig, in_features=0)),
    ("noncontiguous.weight", OK, "a non-contiguous weight quantizes to the same layer",
     lambda: quantize_noncontiguous_weight(Int8WeightOnlyConfig(group_size=32))),
])

ROWS += _section("Int4WeightOnlyConfig", [
    ("group_size.48", ValueError, "Int4WeightOnlyConfig.group_size must be one of [32, 64, 128, 256], got 48",
     lambda: qz(lambda: Int4WeightOnlyConfig(group_size=48))),
    ("group_size.0", ValueError, "got 0", lambda: qz(lambda: Int4WeightOnlyConfig(group_size=0))),
    ("group_size.None", TypeError, "Int4WeightOnlyConfig.group_size must be int, got None",
     lambda: qz(lambda: Int4WeightOnlyConfig(group_size=None))),
    ("group_size.larger_than_in_features_skips", OK, "group 128 > K=64: the layer stays float",
     lambda: skipped(lambda: Int4WeightOnlyConfig(group_size=128))),
    ("layout.plain", NotImplementedError,
     "Int4WeightOnlyConfig.layout PlainLayout: supported layouts are TensorCoreTiledLayout, Int4CPULayout, "
     "Int4XPULayout and MarlinSparseLayout",
     lambda: qz(lambda: Int4WeightOnlyConfig(layout=PlainLayout()))),
    ("layout.inner_k_tiles_3", ValueError, "TensorCoreTiledLayout.inner_k_tiles must be 2, 4 or 8, got 3",
     lambda: qz(lambda: Int4WeightOnlyConfig(layout=TensorCoreTiledLayout(inner_k_tiles=3)))),
    ("use_hqq.str", TypeError, "Int4WeightOnlyConfig.use_hqq must be bool, got str",
     lambda: qz(lambda: Int4WeightOnlyConfig(use_hqq="True"))),
    ("use_hqq.nan_weight", ValueError, "NaN or Inf",
     lambda: quantize_(with_weight(with_value(W, (1, 2), NAN)), Int4WeightOnlyConfig(group_size=32, use_hqq=True))),
    ("zero_point_domain.int", NotImplementedError, "Int4WeightOnlyConfig.zero_point_domain=INT is not supported",
     lambda: qz(lambda: Int4WeightOnlyConfig(zero_point_domain=ZeroPointDomain.INT))),
    ("zero_point_domain.str", ValueError,
     "Int4WeightOnlyConfig.zero_point_domain must be one of NONE, FLOAT, INT, got 'FLOAT'",
     lambda: qz(lambda: Int4WeightOnlyConfig(zero_point_domain="FLOAT"))),
    ("huge.float_max_weight", ValueError, "quantize_: failed to quantize '0' with Int4WeightOnlyConfig",
     lambda: quantize_(with_weight(with_value(with_value(W, (1, 0), FMAX), (1, 1), -FMAX)),
                       Int4WeightOnlyConfig(group_size=32))),
    ("noncontiguous.weight", OK, "a non-contiguous weight quantizes to the same layer",
     lambda: quantize_noncontiguous_weight(Int4WeightOnlyConfig(group_size=32))),
])

ROWS += _section("Int8DynamicActivationInt8WeightConfig", [
    ("act_mapping_type.no_clipping_err", ValueError,
     "Int8DynamicActivationInt8WeightConfig.act_mapping_type must be one of SYMMETRIC, ASYMMETRIC, "
     "got SYMMETRIC_NO_CLIPPING_ERR",
     lambda: qz(lambda: Int8DynamicActivationInt8WeightConfig(act_mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR))),
    ("layout.tiled", NotImplementedError,
     "Int8DynamicActivationInt8WeightConfig.layout TensorCoreTiledLayout: supported layouts are PlainLayout and SemiSparseLayout",
     lambda: qz(lambda: Int8DynamicActivationInt8WeightConfig(layout=TensorCoreTiledLayout()))),
    ("weight_only_decode.int", TypeError,
     "Int8DynamicActivationInt8WeightConfig.weight_only_decode must be bool, got int 1",
     lambda: qz(lambda: Int8DynamicActivationInt8WeightConfig(weight_only_decode=1))),
    ("in_features.16_skips", OK, "in_features <= 16: the layer stays float",
     lambda: skipped(Int8DynamicActivationInt8WeightConfig, in_features=16)),
    ("forward.nan_input", ValueError, "input contains NaN or Inf",
     lambda: qz(Int8DynamicActivationInt8WeightConfig)(with_value(X, (0, 0), NAN))),
    ("forward.meta_input", ValueError, "input must be a CPU tensor, got device meta",
     lambda: qz(Int8DynamicActivationInt8WeightConfig)(meta(X))),
    ("forward.int_input", TypeError, "linear: input dtype Int does not match the weight's dtype float32",
     lambda: qz(Int8DynamicActivationInt8WeightConfig)(X.int())),
    ("forward.noncontiguous_input", OK, "same output",
     lambda: (lambda m: same(m(tr(X)), m(X)))(qz(Int8DynamicActivationInt8WeightConfig))),
])

ROWS += _section("Int8DynamicActivationInt4WeightConfig", [
    ("group_size.zero", ValueError, "Int8DynamicActivationInt4WeightConfig.group_size must be >= 1, -1 or None, got 0",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(group_size=0))),
    ("layout.marlin_qqq_group_32", ValueError,
     "Int8DynamicActivationInt4WeightConfig: MarlinQQQLayout takes group_size 128 or per channel (-1 or in_features), "
     "got 32 for '0' with in_features 64",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(group_size=32, layout=MarlinQQQLayout()))),
    ("layout.marlin_qqq_tiles", ValueError,
     "MarlinQQQLayout needs in_features a multiple of 64 and out_features a multiple of 128",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(group_size=-1, layout=MarlinQQQLayout()))),
    ("group_size.str", TypeError, "Int8DynamicActivationInt4WeightConfig.group_size must be int, got str",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(group_size="32"))),
    ("group_size.not_dividing_skips", OK, "K=64 not divisible by 24: the layer stays float",
     lambda: skipped(lambda: Int8DynamicActivationInt4WeightConfig(group_size=24))),
    ("mapping_type.no_clipping_err", ValueError,
     "Int8DynamicActivationInt4WeightConfig.mapping_type must be one of SYMMETRIC, ASYMMETRIC",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR))),
    ("act_mapping_type.str", ValueError,
     "Int8DynamicActivationInt4WeightConfig.act_mapping_type must be one of SYMMETRIC, ASYMMETRIC",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(act_mapping_type="ASYMMETRIC"))),
    ("layout.uintx", NotImplementedError, "Int8DynamicActivationInt4WeightConfig.layout UintxLayout: only PlainLayout",
     lambda: qz(lambda: Int8DynamicActivationInt4WeightConfig(layout=UintxLayout()))),
    ("forward.nan_input", ValueError, "input contains NaN or Inf",
     lambda: qz(Int8DynamicActivationInt4WeightConfig)(with_value(X, (3, 3), NAN))),
])

ROWS += _section("Int4DynamicActivationInt4WeightConfig", [
    ("layout.plain", NotImplementedError,
     "Int4DynamicActivationInt4WeightConfig.layout: only CutlassInt4PackedLayout layout is supported, received PlainLayout()",
     lambda: qz(lambda: Int4DynamicActivationInt4WeightConfig(layout=PlainLayout()))),
    ("mapping_type.asymmetric", NotImplementedError,
     "Int4DynamicActivationInt4WeightConfig.mapping_type: only mapping_type=SYMMETRIC is supported",
     lambda: qz(lambda: Int4DynamicActivationInt4WeightConfig(mapping_type=MappingType.ASYMMETRIC))),
    ("act_mapping_type.asymmetric", NotImplementedError,
     "Int4DynamicActivationInt4WeightConfig.act_mapping_type: only act_mapping_type=SYMMETRIC is supported",
     lambda: qz(lambda: Int4DynamicActivationInt4WeightConfig(act_mapping_type=MappingType.ASYMMETRIC))),
    ("act_mapping_type.str", ValueError,
     "Int4DynamicActivationInt4WeightConfig.act_mapping_type must be one of SYMMETRIC, ASYMMETRIC",
     lambda: qz(lambda: Int4DynamicActivationInt4WeightConfig(act_mapping_type="SYMMETRIC"))),
    ("set_inductor_config.int", TypeError,
     "Int4DynamicActivationInt4WeightConfig.set_inductor_config must be bool, got int 1",
     lambda: qz(lambda: Int4DynamicActivationInt4WeightConfig(set_inductor_config=1))),
    ("weight.nan", ValueError, "NaN or Inf",
     lambda: quantize_(with_weight(with_value(W, (1, 2), NAN)), Int4DynamicActivationInt4WeightConfig())),
    ("forward.nan_input", ValueError, "input contains NaN or Inf",
     lambda: qz(Int4DynamicActivationInt4WeightConfig)(with_value(X, (3, 3), NAN))),
    ("forward.int_input", TypeError, "linear: input dtype Int does not match the weight's dtype float32",
     lambda: qz(Int4DynamicActivationInt4WeightConfig)(X.int())),
    ("forward.noncontiguous_input", OK, "same output",
     lambda: (lambda m: same(m(tr(X)), m(X)))(qz(Int4DynamicActivationInt4WeightConfig))),
])

ROWS += _section("IntxWeightOnlyConfig", [
    ("weight_dtype.uint8", ValueError, "IntxWeightOnlyConfig.weight_dtype must be one of int1..int8, got uint8",
     lambda: qz(lambda: IntxWeightOnlyConfig(weight_dtype=torch.uint8))),
    ("weight_dtype.uint4", ValueError, "IntxWeightOnlyConfig.weight_dtype must be one of int1..int8, got uint4",
     lambda: qz(lambda: IntxWeightOnlyConfig(weight_dtype=uint4))),
    ("weight_dtype.int32", ValueError, "IntxWeightOnlyConfig.weight_dtype must be one of int1..int8, got int32",
     lambda: qz(lambda: IntxWeightOnlyConfig(weight_dtype=torch.int32))),
    ("weight_dtype.int16", ValueError,
     "IntxWeightOnlyConfig.weight_dtype",
     lambda: qz(lambda: IntxWeightOnlyConfig(weight_dtype=torch.int16))),
    ("weight_dtype.str", ValueError,
     "IntxWeightOnlyConfig.weight_dtype",
     lambda: qz(lambda: IntxWeightOnlyConfig(weight_dtype="int4"))),
    ("granularity.per_group_zero", ValueError, "IntxWeightOnlyConfig.granularity group_size must be >= 1, got 0",
     lambda: qz(lambda: IntxWeightOnlyConfig(granularity=PerGroup(0)))),
    ("granularity.per_group_not_dividing_skips", OK, "K=64 not divisible by 48: the layer stays float",
     lambda: skipped(lambda: IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(48)))),
    ("granularity.per_axis_1", ValueError,
     "IntxWeightOnlyConfig.granularity must be PerGroup(group_size) or PerAxis(0), got PerAxis(1)",
     lambda: qz(lambda: IntxWeightOnlyConfig(granularity=PerAxis(1)))),
    ("granularity.per_tensor", ValueError,
     "IntxWeightOnlyConfig.granularity must be one of PerGroup, PerAxis, got PerTensor",
     lambda: qz(lambda: IntxWeightOnlyConfig(granularity=PerTensor()))),
    ("mapping_type.no_clipping_err", ValueError,
     "IntxWeightOnlyConfig.mapping_type must be one of SYMMETRIC, ASYMMETRIC",
     lambda: qz(lambda: IntxWeightOnlyConfig(mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR))),
    ("scale_dtype.int8", ValueError, "IntxWeightOnlyConfig.scale_dtype must be float32, bfloat16 or float16, got int8",
     lambda: qz(lambda: IntxWeightOnlyConfig(scale_dtype=torch.int8))),
    ("layout.plain", NotImplementedError, "IntxWeightOnlyConfig.layout PlainLayout: only QDQLayout",
     lambda: qz(lambda: IntxWeightOnlyConfig(layout=PlainLayout()))),
])

ROWS += _section("Int8DynamicActivationIntxWeightConfig", [
    ("weight_dtype.uint4", ValueError,
     "Int8DynamicActivationIntxWeightConfig.weight_dtype must be one of int1..int8, got uint4",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_dtype=uint4))),
    ("weight_granularity.per_group_negative", ValueError,
     "Int8DynamicActivationIntxWeightConfig.weight_granularity group_size must be >= 1, got -1",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_granularity=PerGroup(-1)))),
    ("weight_granularity.per_row", ValueError,
     "Int8DynamicActivationIntxWeightConfig.weight_granularity must be one of PerGroup, PerAxis, got PerRow",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_granularity=PerRow()))),
    ("weight_zero_point_domain.none", NotImplementedError,
     "Int8DynamicActivationIntxWeightConfig.weight_zero_point_domain=NONE: only integer zero points are supported",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_zero_point_domain=ZeroPointDomain.NONE))),
    ("weight_zero_point_domain.float", ValueError,
     "Int8DynamicActivationIntxWeightConfig.weight_zero_point_domain must be one of INT, NONE, got FLOAT",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_zero_point_domain=ZeroPointDomain.FLOAT))),
    ("weight_scale_dtype.int32", ValueError,
     "Int8DynamicActivationIntxWeightConfig.weight_scale_dtype must be float32, bfloat16 or float16",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(weight_scale_dtype=torch.int32))),
    ("act_mapping_type.no_clipping_err", ValueError,
     "Int8DynamicActivationIntxWeightConfig.act_mapping_type must be one of SYMMETRIC, ASYMMETRIC",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(act_mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR))),
    ("layout.tiled", ValueError,
     "Int8DynamicActivationIntxWeightConfig.layout must be one of QDQLayout, "
     "PackedLinearInt8DynamicActivationIntxWeightLayout, got TensorCoreTiledLayout",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(layout=TensorCoreTiledLayout()))),
    ("layout.packed_unknown_target", ValueError,
     "PackedLinearInt8DynamicActivationIntxWeightLayout.target must be one of auto, universal, kleidiai, aten, "
     "got 'neon'",
     lambda: qz(lambda: Int8DynamicActivationIntxWeightConfig(
         layout=PackedLinearInt8DynamicActivationIntxWeightLayout(target="neon")))),
    ("group_size.not_dividing_skips", OK, "K=64 not divisible by 40: the layer stays float",
     lambda: skipped(lambda: Int8DynamicActivationIntxWeightConfig(weight_dtype=int4,
                                                                   weight_granularity=PerGroup(40)))),
])

ROWS += _section("UIntXWeightOnlyConfig", [
    ("dtype.none", ValueError,
     "UIntXWeightOnlyConfig.dtype must be one of uint1..uint7, got None",
     lambda: qz(UIntXWeightOnlyConfig)),
    ("dtype.uint8", ValueError, "UIntXWeightOnlyConfig.dtype must be one of uint1..uint7, got uint8",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=torch.uint8))),
    ("dtype.int4", ValueError, "UIntXWeightOnlyConfig.dtype must be one of uint1..uint7, got int4",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=int4))),
    ("dtype.float16", ValueError, "UIntXWeightOnlyConfig.dtype must be one of uint1..uint7, got float16",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=torch.float16))),
    ("group_size.zero", ValueError, "UIntXWeightOnlyConfig.group_size must be >= 1, got 0",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=uint3, group_size=0))),
    ("group_size.not_dividing_skips", OK, "K=64 not divisible by 48: the layer stays float",
     lambda: skipped(lambda: UIntXWeightOnlyConfig(dtype=uint3, group_size=48))),
    ("pack_dim.0", NotImplementedError, "UIntXWeightOnlyConfig.pack_dim=0: only -1 is supported",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=uint3, pack_dim=0))),
    ("use_hqq.int", TypeError, "UIntXWeightOnlyConfig.use_hqq must be bool, got int 1",
     lambda: qz(lambda: UIntXWeightOnlyConfig(dtype=uint3, use_hqq=1))),
    ("noncontiguous.weight", OK, "a non-contiguous weight quantizes to the same layer",
     lambda: quantize_noncontiguous_weight(UIntXWeightOnlyConfig(dtype=uint3, group_size=32))),
])

ROWS += _section("Float8WeightOnlyConfig", [
    ("weight_dtype.int8", ValueError,
     "Float8WeightOnlyConfig.weight_dtype must be one of float8_e4m3fn, float8_e5m2, got int8",
     lambda: qz(lambda: Float8WeightOnlyConfig(weight_dtype=torch.int8))),
    ("weight_dtype.float16", ValueError,
     "Float8WeightOnlyConfig.weight_dtype must be one of float8_e4m3fn, float8_e5m2, got float16",
     lambda: qz(lambda: Float8WeightOnlyConfig(weight_dtype=torch.float16))),
    ("weight_dtype.str", ValueError,
     "Float8WeightOnlyConfig.weight_dtype must be one of float8_e4m3fn, float8_e5m2, got 'float8_e4m3fn'",
     lambda: qz(lambda: Float8WeightOnlyConfig(weight_dtype="float8_e4m3fn"))),
    ("float16_model_e5m2", ValueError,
     "quantize_: failed to quantize '0' with Float8WeightOnlyConfig: quantize_affine_float8: scale",
     lambda: qz(lambda: Float8WeightOnlyConfig(weight_dtype=float8_e5m2), dtype=torch.float16)),
    ("nan.weight", ValueError,
     "failed to quantize '0' with Float8WeightOnlyConfig: Float8WeightOnlyConfig: the weight of '0' contains NaN or "
     "Inf",
     lambda: quantize_(with_weight(with_value(W, (2, 2), NAN)), Float8WeightOnlyConfig())),
])

# FPXWeightOnlyConfig quantizes layers with in_features % 64 == 0 and out_features % 256 == 0 only.
W256 = _randn(256, 64, seed=3)


def _fpx(ebits=3, mbits=2):
    return FPXWeightOnlyConfig(ebits=ebits, mbits=mbits)


def _fpx_fields(**kw):
    return {"ebits": 3, "mbits": 2, **kw}


@functools.lru_cache(maxsize=None)
def _wfx():
    """W's fp6 e3m2 weight: packed codes (8, 48 bytes) and per-row scale."""
    return aqt("fp6_e3m2").packed_data(), aqt("fp6_e3m2").scale()


def wol_floatx(**kw):
    packed, s = _wfx()
    a = dict(codes=packed, code_format="fp6_e3m2", bits=6, group_size=64, scale=s, zero_point=None, quant_min=0,
             quant_max=63, zero_point_domain="NONE")
    a.update(kw)
    return wol(**a)


def _fpx_noncontiguous_weight() -> None:
    a, b = with_weight(W256.t().contiguous().t()), with_weight(W256.clone())
    check(not a[0].weight.is_contiguous(), "weight is contiguous")
    quantize_(a, _fpx())
    quantize_(b, _fpx())
    check(isinstance(a[0].weight, AffineQuantizedTensor), "the layer was not quantized")
    same(a(X), b(X))


# choose_qparams_affine_floatx(input, ebits, mbits), quantize_affine_floatx(input, scale, ebits, mbits),
# dequantize_affine_floatx(input, scale, ebits, mbits, output_dtype)
def cqfx(**kw):
    a = dict(input=W, ebits=3, mbits=2)
    a.update(kw)
    return ops.choose_qparams_affine_floatx(**a)


def qfx(**kw):
    a = dict(input=W, scale=cqfx(), ebits=3, mbits=2)
    a.update(kw)
    return ops.quantize_affine_floatx(**a)


def dqfx(**kw):
    a = dict(input=qfx(), scale=cqfx(), ebits=3, mbits=2)
    a.update(kw)
    return ops.dequantize_affine_floatx(**a)


ROWS += _section("choose_qparams_affine_floatx", [
    ("control", OK, "per-row scales max|w| / 28", lambda: same(cqfx(), (W.abs().amax(1) / 28.0))),
    ("bits.ebits_zero", ValueError, "choose_qparams_affine_floatx: (ebits, mbits) = (0, 2) is not a float-x format",
     lambda: cqfx(ebits=0)),
    ("bits.nine", ValueError, "(ebits, mbits) = (5, 3) is not a float-x format", lambda: cqfx(ebits=5, mbits=3)),
    ("bits.negative_mbits", ValueError, "(ebits, mbits) = (3, -1)", lambda: cqfx(mbits=-1)),
    ("rank.1d", ValueError, "choose_qparams_affine_floatx: input must be 2-d (out_features, in_features), got shape [64]",
     lambda: cqfx(input=W[0])),
    ("rank.3d", ValueError, "input must be 2-d", lambda: cqfx(input=W.reshape(2, 4, 64))),
    ("dtype.int", TypeError, "choose_qparams_affine_floatx: input must be float32, bfloat16 or float16, got Int",
     lambda: cqfx(input=W.int())),
    ("device.meta", OK, "shape (8,) on meta", lambda: shaped(cqfx(input=meta(W)), ((8,), torch.float32, "meta"))),
    ("nan.row", ValueError, "choose_qparams_affine_floatx: row 3 of the weight holds NaN or Inf",
     lambda: cqfx(input=with_value(W, (3, 9), NAN))),
    ("inf.row", ValueError, "row 5 of the weight holds NaN or Inf", lambda: cqfx(input=with_value(W, (5, 0), -INF))),
    ("zero_size.no_rows", OK, "(0, 64) -> (0,)", lambda: shaped(cqfx(input=torch.zeros(0, 64)), ((0,), torch.float32))),
    ("noncontiguous.input", OK, "same scales", lambda: same_as_contiguous(cqfx, input=nc(W))),
    ("huge.float_max", OK, "max / 28 stays finite", lambda: check(bool(torch.isfinite(
        cqfx(input=with_value(W, (0, 0), FMAX))).all()), "finite scales")),
])

ROWS += _section("quantize_affine_floatx", [
    ("control", OK, "codes in [0, 63], the row max at 31 (28)",
     lambda: check(int(qfx().max()) <= 63 and int((qfx() & 31).amax(1).min()) == 31, "codes")),
    ("bits.wide", ValueError, "quantize_affine_floatx: (ebits, mbits) = (4, 4) is not a float-x format",
     lambda: qfx(ebits=4, mbits=4)),
    ("rank.1d", ValueError, "quantize_affine_floatx: input must be 2-d", lambda: qfx(input=W[0])),
    ("dtype.int_input", TypeError, "quantize_affine_floatx: input must be float32, bfloat16 or float16, got Int",
     lambda: qfx(input=W.int())),
    ("scale.numel", ValueError, "quantize_affine_floatx: scale has 4 elements, expected 8 (one per row)",
     lambda: qfx(scale=torch.ones(4))),
    ("scale.int", TypeError, "quantize_affine_floatx: scale must be float32, bfloat16 or float16, got Long",
     lambda: qfx(scale=torch.ones(8, dtype=torch.long))),
    ("device.scale_on_meta", ValueError, "quantize_affine_floatx: scale is on meta, the input on cpu",
     lambda: qfx(scale=meta(torch.ones(8)))),
    ("device.meta", OK, "uint8 (8, 64) on meta",
     lambda: shaped(qfx(input=meta(W), scale=meta(torch.ones(8))), ((8, 64), torch.uint8, "meta"))),
    ("nan.input", OK, "torchao's conversion of a NaN: its bits' code (fp6 e3m2: +NaN 14, -NaN 46)",
     lambda: check(qfx(input=torch.tensor([[NAN, 1.0]]), scale=torch.ones(1))[0].tolist() ==
                   [46 if bool(torch.signbit(torch.tensor(NAN))) else 14, 12], "NaN code")),
    ("inf.input", OK, "+-Inf saturate to +-28 (codes 31, 63)",
     lambda: check(qfx(input=torch.tensor([[INF, -INF]]), scale=torch.ones(1)).tolist() == [[31, 63]], "saturation")),
    ("scale.zero", OK, "a zero scale (float16 underflow, as the seed): x / 0 saturates, 0 / 0 is NaN's code",
     lambda: check(qfx(input=torch.tensor([[2.0, -2.0]]), scale=torch.zeros(1)).tolist() == [[31, 63]], "saturation")),
    ("zero_size.no_columns", OK, "(8, 0) -> (8, 0)",
     lambda: shaped(qfx(input=torch.zeros(8, 0)), ((8, 0), torch.uint8))),
    ("noncontiguous.input_scale", OK, "same codes", lambda: same_as_contiguous(qfx, input=nc(W), scale=nc(cqfx()))),
    ("overlap.input", OK, "same codes as the contiguous clone",
     lambda: same_as_contiguous(qfx, input=ov(W), scale=torch.ones(ov(W).shape[0]))),
])

ROWS += _section("dequantize_affine_floatx", [
    ("control", OK, "code value x scale, in float32 by default",
     lambda: same(dqfx(input=torch.tensor([[31, 34]], dtype=torch.uint8), scale=torch.tensor([0.5])),
                  torch.tensor([[14.0, -0.0625]]))),
    ("bits.zero_ebits", ValueError, "dequantize_affine_floatx: (ebits, mbits) = (0, 5) is not a float-x format",
     lambda: dqfx(ebits=0, mbits=5)),
    ("dtype.int8_codes", TypeError, "dequantize_affine_floatx: input (codes) must be uint8, got Char",
     lambda: dqfx(input=qfx().to(torch.int8))),
    ("dtype.output_int", TypeError, "dequantize_affine_floatx: output_dtype must be float32, bfloat16 or float16",
     lambda: dqfx(output_dtype=torch.int32)),
    ("rank.1d", ValueError, "dequantize_affine_floatx: input must be 2-d", lambda: dqfx(input=qfx()[0])),
    ("scale.numel", ValueError, "dequantize_affine_floatx: scale has 9 elements, expected 8",
     lambda: dqfx(scale=torch.ones(9))),
    ("device.meta", OK, "bfloat16 (8, 64) on meta",
     lambda: shaped(dqfx(input=meta(qfx()), scale=meta(cqfx()), output_dtype=torch.bfloat16),
                    ((8, 64), torch.bfloat16, "meta"))),
    ("codes.high_bits_ignored", OK, "bits above the format's N are ignored (code 64 + 31 is 31)",
     lambda: same(dqfx(input=torch.tensor([[95]], dtype=torch.uint8), scale=torch.ones(1)), torch.tensor([[28.0]]))),
    ("noncontiguous.input", OK, "same values", lambda: same_as_contiguous(dqfx, input=tr(qfx()), scale=nc(torch.ones(8) * 0.5))),
])

ROWS += _section("FPXWeightOnlyConfig", [
    ("ebits.zero", ValueError, "FPXWeightOnlyConfig.ebits must be >= 1, got 0", lambda: qz(lambda: _fpx(0, 2))),
    ("ebits.negative", ValueError, "FPXWeightOnlyConfig.ebits must be >= 1, got -3", lambda: qz(lambda: _fpx(-3, 2))),
    ("mbits.negative", ValueError, "FPXWeightOnlyConfig.mbits must be >= 0, got -1", lambda: qz(lambda: _fpx(3, -1))),
    ("bits.nine", ValueError,
     "FPXWeightOnlyConfig.ebits + FPXWeightOnlyConfig.mbits + 1 (the sign) must be <= 8 bits, got ebits=4, mbits=4",
     lambda: qz(lambda: _fpx(4, 4))),
    ("bits.ebits_8", ValueError, "must be <= 8 bits, got ebits=8, mbits=0", lambda: qz(lambda: _fpx(8, 0))),
    ("bits.huge", ValueError, "must be <= 8 bits, got ebits=3, mbits=9223372036854775807",
     lambda: qz(lambda: _fpx(3, 2 ** 63 - 1))),
    ("ebits.float", TypeError, "FPXWeightOnlyConfig.ebits must be int, got float", lambda: qz(lambda: _fpx(3.0, 2))),
    ("mbits.bool", TypeError, "FPXWeightOnlyConfig.mbits must be int, got bool True", lambda: qz(lambda: _fpx(3, True))),
    ("ebits.none", TypeError, "FPXWeightOnlyConfig.ebits must be int, got None", lambda: qz(lambda: _fpx(None, 2))),
    ("ebits.str", TypeError, "FPXWeightOnlyConfig.ebits must be int, got str", lambda: qz(lambda: _fpx("3", 2))),
    ("mbits.missing", TypeError, "mbits", lambda: qz(lambda: FPXWeightOnlyConfig(3))),
    ("fields.missing_mbits", ValueError, "FPXWeightOnlyConfig: missing field 'mbits'",
     lambda: ops.validate_quant_config("FPXWeightOnlyConfig", {"ebits": 3})),
    ("fields.unknown", ValueError, "FPXWeightOnlyConfig has no field 'group_size'",
     lambda: ops.validate_quant_config("FPXWeightOnlyConfig", _fpx_fields(group_size=64))),
    ("set_inductor_config.str", TypeError, "FPXWeightOnlyConfig.set_inductor_config must be bool",
     lambda: qz(lambda: FPXWeightOnlyConfig(3, 2, set_inductor_config="no"))),
    ("shape.out_features_32_skips", OK, "out_features 32 % 256 != 0: the layer stays float", lambda: skipped(_fpx)),
    ("shape.in_features_96_skips", OK, "in_features 96 % 64 != 0: the layer stays float",
     lambda: skipped(_fpx, in_features=96, out_features=256)),
    ("shape.skip_reason", OK, "the seed's message, with the layer",
     lambda: check(qw(W, "FPXWeightOnlyConfig", _fpx_fields())[2].startswith(
         "Skipping floatx quantization float6_3_2 because the shape is not compatible with the kernel: in_dim=64, "
         "out_dim=8 expected in_dim % 64 == 0 and out_dim % 256 == 0 (layer 'layers.0'"), "skip message")),
    ("rank.3d", ValueError, "FPXWeightOnlyConfig: 'layers.0' has a 3-d weight; linear weights are 2-d",
     lambda: qw(torch.randn(2, 256, 64), "FPXWeightOnlyConfig", _fpx_fields())),
    ("rank.1d", ValueError, "FPXWeightOnlyConfig: 'layers.0' has a 1-d weight",
     lambda: qw(torch.randn(256), "FPXWeightOnlyConfig", _fpx_fields())),
    ("dtype.float64", TypeError, "FPXWeightOnlyConfig: the weight of '0' must be float32, bfloat16 or float16, got Double",
     lambda: qz(_fpx, in_features=64, out_features=256, dtype=torch.float64)),
    ("device.meta", NotImplementedError, "the weight of 'layers.0' is on meta",
     lambda: qw(meta(W256), "FPXWeightOnlyConfig", _fpx_fields())),
    ("zero_size.no_rows", OK, "(0, 64): an empty quantized weight, (M, 0) outputs",
     lambda: shaped(ops.affine_quantized_linear(X, qw(torch.zeros(0, 64), "FPXWeightOnlyConfig", _fpx_fields())[0],
                                                None), ((4, 0), torch.float32))),
    ("zero_size.no_in_features", ValueError, "block_size [1, 0] does not divide shape [256, 0]",
     lambda: qw(torch.zeros(256, 0), "FPXWeightOnlyConfig", _fpx_fields())),
    ("nan.weight", ValueError,
     "failed to quantize '0' with FPXWeightOnlyConfig: FPXWeightOnlyConfig: the weight of '0' contains NaN or Inf",
     lambda: quantize_(with_weight(with_value(W256, (2, 2), NAN)), _fpx())),
    ("inf.weight", ValueError, "the weight of '0' contains NaN or Inf",
     lambda: quantize_(with_weight(with_value(W256, (200, 9), -INF)), _fpx())),
    ("nan.quantize_weight_op", ValueError, "choose_qparams_affine_floatx: row 2 of the weight holds NaN or Inf",
     lambda: qw(with_value(W256, (2, 2), NAN), "FPXWeightOnlyConfig", _fpx_fields())),
    ("huge.float_max", OK, "float32 max values quantize to finite weights within one step of the row",
     lambda: (lambda d: check(bool(torch.isfinite(d).all()) and float(d[1, 0]) == FMAX, "row 1"))(
         qw(with_value(W256, (1, 0), FMAX), "FPXWeightOnlyConfig", _fpx_fields())[0].dequantize())),
    ("huge.float16_max", ValueError, "largest fp6_e3m2 code times a row's scale overflows Half",
     lambda: qw(torch.full((256, 64), 65504.0, dtype=torch.float16), "FPXWeightOnlyConfig", _fpx_fields())),
    ("noncontiguous.weight", OK, "a non-contiguous weight quantizes to the same layer", _fpx_noncontiguous_weight),
    ("forward.nan_input_propagates", OK, "a NaN in row 1 of the input makes row 1 NaN only",
     lambda: nan_in_row_only(qz(_fpx, in_features=64, out_features=256)(with_value(X, (1, 1), NAN)), 1)),
    ("state_dict.into_another_format", RuntimeError, "quantized with another config",
     lambda: load_into(_fpx(3, 2), _fpx(2, 2), {"out_features": 256}, {"out_features": 256})),
])

# The float-x code format of weight_only_linear and the float-x checks of the classes.
ROWS += _section("weight_only_linear", [
    ("floatx.control", OK, "fp6_e3m2 codes give the quantized tensor's linear",
     lambda: same(wol_floatx(), aql(weight="fp6_e3m2"))),
    ("floatx.bits_mismatch", ValueError, "weight_only_linear: fp6_e3m2 codes have 6 bits, got bits=5",
     lambda: wol_floatx(bits=5)),
    ("floatx.zero_point_domain_int", ValueError, "weight_only_linear: fp6_e3m2 codes take no zero point",
     lambda: wol_floatx(zero_point=torch.zeros(8), zero_point_domain="INT")),
    ("floatx.codes_truncated", ValueError, "weight_only_linear: packed fp6_e3m2 codes must have shape (8, 48), got [8, 47]",
     lambda: wol_floatx(codes=_wfx()[0][:, :47].contiguous())),
    ("floatx.codes_int8", TypeError, "weight_only_linear: packed fp6_e3m2 codes must be uint8, got Char",
     lambda: wol_floatx(codes=_wfx()[0].to(torch.int8))),
    ("floatx.unknown_format", ValueError,
     "code_format must be plain, packed, float8_e4m3fn, float8_e5m2 or a float-x format fp<N>_e<E>m<M>, got 'fp9_e4m4'",
     lambda: wol_floatx(code_format="fp9_e4m4")),
    ("floatx.meta_input", OK, "shape (4, 8) on meta",
     lambda: shaped(wol_floatx(input=meta(X), codes=meta(_wfx()[0]), scale=meta(_wfx()[1])),
                    ((4, 8), torch.float32, "meta"))),
])

ROWS += _section("AffineQuantizedTensor.__init__", [
    ("floatx.codes_out_of_range", ValueError, "codes must lie in [quant_min, quant_max] = [0, 63]",
     lambda: new_aqt(torch.full((8, 64), 64, dtype=torch.uint8), _wfx()[1], None, [1, 64], 0, 63, "NONE",
                     "FloatxTensorCoreLayout", "fp6_e3m2")),
    ("floatx.uintx_layout", ValueError, "float-x code_dtype fp6_e3m2 needs FloatxTensorCoreLayout, got UintxLayout",
     lambda: new_aqt(torch.zeros(8, 64, dtype=torch.uint8), _wfx()[1], None, [1, 64], 0, 63, "NONE", "UintxLayout",
                     "fp6_e3m2")),
    ("floatx.uint6_codes", ValueError, "FloatxTensorCoreLayout needs a float-x code_dtype (fp<N>_e<E>m<M>), got uint6",
     lambda: new_aqt(torch.zeros(8, 64, dtype=torch.uint8), _wfx()[1], None, [1, 64], 0, 63, "NONE",
                     "FloatxTensorCoreLayout", "uint6")),
    ("floatx.groups", ValueError, "holds 2-d weights with one scale per row (block_size [1, in_features])",
     lambda: new_aqt(torch.zeros(8, 64, dtype=torch.uint8), torch.ones(16), None, [1, 32], 0, 63, "NONE",
                     "FloatxTensorCoreLayout", "fp6_e3m2")),
    ("floatx.zero_scale", OK, "a zero row scale (float16 underflow, as the seed) dequantizes the row to zeros",
     lambda: same(new_aqt(torch.full((8, 64), 31, dtype=torch.uint8), torch.zeros(8), None, [1, 64], 0, 63, "NONE",
                          "FloatxTensorCoreLayout", "fp6_e3m2").dequantize(), torch.zeros(8, 64))),
    ("floatx.negative_scale", ValueError, "scale must be finite and >= 0",
     lambda: new_aqt(torch.zeros(8, 64, dtype=torch.uint8), -torch.ones(8), None, [1, 64], 0, 63, "NONE",
                     "FloatxTensorCoreLayout", "fp6_e3m2")),
])

ROWS += _section("affine_quantize", [
    ("floatx.groups", ValueError, "affine_quantize: float-x codes (fp6_e3m2) take a 2-d weight and block_size [1, 64]",
     lambda: aq(code_dtype="fp6_e3m2", quant_min=0, quant_max=63, zero_point_domain="NONE",
                layout="FloatxTensorCoreLayout")),
    ("floatx.zero_point_domain", ValueError, "float-x codes (fp6_e3m2) have no zero point",
     lambda: aq(block_size=[1, 64], code_dtype="fp6_e3m2", quant_min=0, quant_max=63,
                layout="FloatxTensorCoreLayout")),
    ("floatx.bad_name", ValueError, "unknown code dtype 'fp6_e3m3'",
     lambda: aq(block_size=[1, 64], code_dtype="fp6_e3m3", zero_point_domain="NONE", layout="FloatxTensorCoreLayout")),
])

ROWS += _section("AffineQuantizedTensor.__setstate__", [
    ("floatx.layout", ValueError, _V + "float-x code_dtype fp6_e3m2 needs FloatxTensorCoreLayout, got UintxLayout",
     lambda: tampered("fp6_e3m2", 10, "UintxLayout")),
    ("floatx.code_dtype", ValueError, _V + "[quant_min, quant_max] = [0, 63] exceeds the range of fp4_e2m1",
     lambda: tampered("fp6_e3m2", 11, "fp4_e2m1")),
    ("floatx.quant_max", ValueError, _V + "fp6_e3m2 codes span [0, 63], got [quant_min, quant_max] = [0, 62]",
     lambda: tampered("fp6_e3m2", 8, 62)),
    ("floatx.codes_truncated", ValueError, _V + "codes must have shape [8, 48] for FloatxTensorCoreLayout",
     lambda: tampered("fp6_e3m2", 1, lambda t: t[:, :40].contiguous())),
    ("floatx.nan_scale", ValueError, _V + "scale must be finite and >= 0",
     lambda: tampered("fp6_e3m2", 2, lambda t: with_value(t, (3,), NAN))),
])

ROWS += _section("Float8DynamicActivationFloat8WeightConfig", [
    ("activation_dtype.int8", ValueError,
     "Float8DynamicActivationFloat8WeightConfig.activation_dtype must be one of float8_e4m3fn, float8_e5m2, got int8",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(activation_dtype=torch.int8))),
    ("weight_dtype.bfloat16", ValueError,
     "Float8DynamicActivationFloat8WeightConfig.weight_dtype must be one of float8_e4m3fn, float8_e5m2, got bfloat16",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(weight_dtype=torch.bfloat16))),
    ("granularity.per_group", ValueError,
     "Float8DynamicActivationFloat8WeightConfig.granularity: invalid granularity specification PerGroup()",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerGroup(32)))),
    ("granularity.mixed_pair", ValueError,
     "different granularities for activation and weight are not supported: [PerTensor(), PerRow()]",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(granularity=(PerTensor(), PerRow())))),
    ("granularity.list_of_one", ValueError,
     "Float8DynamicActivationFloat8WeightConfig.granularity: invalid granularity specification [PerRow()]",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(granularity=[PerRow()]))),
    ("granularity.per_axis_pair", ValueError, "invalid granularity types [PerAxis(), PerAxis()]",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(granularity=(PerAxis(0), PerAxis(0))))),
    ("granularity.per_row_float32_weight", TypeError,
     "failed to quantize '0' with Float8DynamicActivationFloat8WeightConfig: "
     "Float8DynamicActivationFloat8WeightConfig: PerRow quantization only works for bfloat16 weights, got Float",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))),
    ("mm_config.str", TypeError, "Float8DynamicActivationFloat8WeightConfig.mm_config must be a Float8MMConfig or None",
     lambda: qz(lambda: Float8DynamicActivationFloat8WeightConfig(mm_config="fast"))),
    ("mm_config.use_fast_accum_str", TypeError,
     "Float8DynamicActivationFloat8WeightConfig.mm_config_use_fast_accum must be bool",
     lambda: ops.validate_quant_config("Float8DynamicActivationFloat8WeightConfig",
                                       {"mm_config": "Float8MMConfig", "mm_config_use_fast_accum": "yes"})),
    ("in_features.24_skips", OK, "in_features not a multiple of 16: the layer stays float",
     lambda: skipped(Float8DynamicActivationFloat8WeightConfig, in_features=24)),
    ("forward.nan_input", ValueError, "input contains NaN or Inf",
     lambda: qz(Float8DynamicActivationFloat8WeightConfig)(with_value(X, (0, 0), NAN))),
])

ROWS += _section("Float8StaticActivationFloat8WeightConfig", [
    ("scale.missing", TypeError, "scale", lambda: qz(Float8StaticActivationFloat8WeightConfig)),
    ("scale.nan", ValueError, "Float8StaticActivationFloat8WeightConfig.scale must be finite and > 0, got nan",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(NAN)))),
    ("scale.zero", ValueError, "Float8StaticActivationFloat8WeightConfig.scale must be finite and > 0, got 0",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.0)))),
    ("scale.negative", ValueError, "Float8StaticActivationFloat8WeightConfig.scale must be finite and > 0, got -0.5",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(-0.5)))),
    ("scale.inf", ValueError, "Float8StaticActivationFloat8WeightConfig.scale must be finite and > 0, got inf",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(INF)))),
    ("scale.two_elements", ValueError,
     "Float8StaticActivationFloat8WeightConfig.scale must hold one activation scale (PerTensor), got shape [2]",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.ones(2)))),
    ("scale.int_tensor", TypeError, "Float8StaticActivationFloat8WeightConfig.scale must be a float tensor, got Long",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(1)))),
    ("scale.python_float", TypeError,
     "Float8StaticActivationFloat8WeightConfig.scale must be a torch.Tensor, got float",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=0.5))),
    ("scale.on_meta", ValueError, "Float8StaticActivationFloat8WeightConfig.scale",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=meta(torch.tensor(0.5))))),
    ("granularity.per_row", ValueError,
     "Float8StaticActivationFloat8WeightConfig.granularity: static quantization only supports PerTensor granularity",
     lambda: qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.5), granularity=PerRow()))),
    ("forward.nan_input_propagates", OK, "static scale: a NaN in row 1 makes row 1 NaN only",
     lambda: nan_in_row_only(
         qz(lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.02)))(with_value(X, (1, 1), NAN)), 1)),
])

ROWS += _section("AOPerModuleConfig", [
    ("not_a_dict", TypeError, "AOPerModuleConfig.module_fqn_to_config must be a dict, got list",
     lambda: qz(lambda: AOPerModuleConfig([("0", Int8WeightOnlyConfig())]))),
    ("key_not_str", TypeError, "AOPerModuleConfig.module_fqn_to_config keys must be module FQNs (str), got 0",
     lambda: qz(lambda: AOPerModuleConfig({0: Int8WeightOnlyConfig()}))),
    ("value_not_a_config", TypeError,
     "AOPerModuleConfig.module_fqn_to_config['0'] must be a config or None, got 'int8'",
     lambda: qz(lambda: AOPerModuleConfig({"0": "int8"}))),
    ("nested", TypeError, "AOPerModuleConfig.module_fqn_to_config['_default'] must be a config or None",
     lambda: qz(lambda: AOPerModuleConfig({"_default": AOPerModuleConfig({})}))),
    ("inner_config_invalid", ValueError, "Int4WeightOnlyConfig.group_size must be one of [32, 64, 128, 256], got 8",
     lambda: qz(lambda: AOPerModuleConfig({"0": Int4WeightOnlyConfig(group_size=8)}))),
])

ROWS += _section("quantize_", [
    ("model.not_a_module", TypeError, "quantize_: model must be a torch.nn.Module, got dict",
     lambda: quantize_({"0": W}, Int8WeightOnlyConfig())),
    ("config.callable", AssertionError, "passing a generic callable as the config is no longer supported",
     lambda: quantize_(model(), lambda m: m)),
    ("config.not_a_config", TypeError, "quantize_: config must be an AOBaseConfig, got str",
     lambda: quantize_(model(), "int8_weight_only")),
    ("config.without_handler", NotImplementedError, "quantize_: no handler registered for _NoHandlerConfig",
     lambda: quantize_(model(), _NoHandlerConfig())),
    ("error.names_the_module_and_leaves_the_model", OK, "a NaN weight in '1' raises naming '1'; '0' stays float",
     lambda: _all_or_nothing()),
    ("after.half", NotImplementedError, "cannot be converted to torch.float16",
     lambda: qz(lambda: Int8WeightOnlyConfig()).half()),
    ("after.to_meta", NotImplementedError, "AffineQuantizedTensor: kernels exist for cpu and cuda, not meta",
     lambda: qz(lambda: Int8WeightOnlyConfig()).to("meta")),
])


def _all_or_nothing() -> None:
    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))
    with torch.no_grad():
        m[1].weight[0, 0] = NAN
    try:
        quantize_(m, Int8WeightOnlyConfig())
    except ValueError as e:
        check("failed to quantize '1'" in str(e), f"message names the module: {e}")
    else:
        check(False, "quantize_ accepted a NaN weight")
    check(type(m[0].weight) is nn.Parameter, "'0' was quantized although '1' failed")


# --- harness self-test table: proves that crashes are isolated and reported ---------------------------

def _die(sig: int) -> None:
    faulthandler.disable()
    signal.signal(sig, signal.SIG_DFL)  # die of the signal itself, even under a sanitizer's handler
    os.kill(os.getpid(), sig)


def _raise(e: BaseException) -> None:
    raise e


SELFTEST_ROWS: List[Row] = [
    Row("raises", ValueError, "boom", lambda: _raise(ValueError("boom"))),
    Row("segfaults", OK, "", lambda: _die(signal.SIGSEGV)),
    Row("passes", OK, "a check", lambda: check(True, "true")),
    Row("aborts", OK, "", lambda: os.abort()),
    Row("last", OK, "a check", lambda: check(True, "true")),
]

TABLES = {"main": ROWS, "selftest": SELFTEST_ROWS}


# --- the worker ------------------------------------------------------------------------------------


def run_row(r: Row) -> dict:
    _checks[0] = 0
    torch.manual_seed(0)
    try:
        r.call()
    except BaseException as e:  # noqa: B902  (SystemExit, KeyboardInterrupt are outcomes too)
        if isinstance(e, KeyboardInterrupt):
            raise
        mro = [f"{c.__module__}.{c.__qualname__}" for c in type(e).__mro__]
        return {"outcome": "raised", "type": mro[0], "mro": mro, "message": str(e)[:4000],
                "check_failed": isinstance(e, CheckFailed)}
    return {"outcome": "ok", "checks": _checks[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="main", choices=sorted(TABLES))
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    faulthandler.enable()  # a crash prints the Python stack to stderr before the signal kills us
    rows = TABLES[a.table]
    with open(a.out, "a", encoding="utf-8") as f:
        def emit(rec: dict) -> None:
            f.write(json.dumps(rec) + "\n")
            f.flush()

        for i in range(a.start, len(rows)):
            emit({"index": i, "id": rows[i].id, "event": "start"})
            emit({"index": i, "id": rows[i].id, "event": "end", **run_row(rows[i])})
    return 0


if __name__ == "__main__":
    sys.exit(main())
