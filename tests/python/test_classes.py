"""The quantized-tensor custom classes: packing, dequantization, linears,
TorchScript round trips and validation of untrusted state."""
import io

import pytest
import torch

from conftest import sqnr
from torchao_cpp.dtypes import AffineQuantizedTensor, LinearActivationQuantizedTensor, float8_e4m3fn, int4, uint3
from torchao_cpp.dtypes.layouts import Int4CPULayout, QDQLayout, TensorCoreTiledLayout, UintxLayout
from torchao_cpp.quantization import quant_primitives as qp

torch.manual_seed(0)
W = torch.randn(24, 128)


def _aqt(kind: str, w: torch.Tensor = W) -> AffineQuantizedTensor:
    if kind == "int8":
        return AffineQuantizedTensor.from_float(w, "SYMMETRIC", [1, w.shape[1]], torch.int8)
    if kind == "int4_qdq":
        return AffineQuantizedTensor.from_float(w, "SYMMETRIC", [1, 32], int4, layout=QDQLayout())
    if kind == "int4_tinygemm":
        return AffineQuantizedTensor.from_float(w, "ASYMMETRIC", [1, 64], torch.int32, 0, 15, eps=1e-6,
                                                preserve_zero=False, zero_point_domain="FLOAT", layout=Int4CPULayout())
    if kind == "uint3":
        return AffineQuantizedTensor.from_float(w, "ASYMMETRIC", [1, 32], uint3, zero_point_dtype=torch.int32,
                                                layout=UintxLayout(uint3))
    if kind == "fp8":
        return AffineQuantizedTensor.from_float(w, "SYMMETRIC", [1, w.shape[1]], float8_e4m3fn)
    raise KeyError(kind)


KINDS = ["int8", "int4_qdq", "int4_tinygemm", "uint3", "fp8"]


@pytest.mark.parametrize("kind,packed_shape,dtype", [
    ("int8", (24, 128), torch.int8),
    ("int4_qdq", (24, 128), torch.int8),
    ("int4_tinygemm", (24, 64), torch.uint8),  # two codes per byte
    ("uint3", (24, 48), torch.uint8),          # 3 bits per code: 128 * 3 / 8 bytes per row
    ("fp8", (24, 128), torch.uint8),
])
def test_packing_and_storage_size(kind, packed_shape, dtype):
    a = _aqt(kind)
    data = a.impl.packed_data()
    assert tuple(data.shape) == packed_shape and data.dtype == dtype
    assert a.shape == W.shape and a.dtype == torch.float32
    zp = a.impl.zero_point()
    expect = data.numel() * data.element_size() + a.impl.scale().numel() * a.impl.scale().element_size()
    expect += 0 if zp is None else zp.numel() * zp.element_size()
    assert a.nbytes_quantized() == expect


@pytest.mark.parametrize("kind", KINDS)
def test_get_plain_and_dequantize_match_primitives(kind):
    a = _aqt(kind)
    codes, scale, zp = a.get_plain()
    assert codes.shape == W.shape
    bs = list(a.block_size)
    if kind == "fp8":
        ref = qp.dequantize_affine_float8(codes, scale, torch.float32, float8_e4m3fn, bs)
    else:
        domain = a.impl.zero_point_domain()
        ref = torch.ops.torchao_cpp.dequantize_affine(codes, bs, scale, zp, a.impl.quant_min(), a.impl.quant_max(),
                                                      domain, torch.float32)
    assert torch.equal(a.dequantize(), ref)
    floor = {"int8": 38, "int4_qdq": 18, "int4_tinygemm": 18, "uint3": 12, "fp8": 28}[kind]
    assert sqnr(W, a.dequantize()) > floor


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lead", [(1,), (2, 1), (3, 7), (2, 20)])  # decode path (<= 8 rows) and row decode
def test_linear_reads_codes(kind, dtype, lead):
    w = W.to(dtype)
    a = _aqt(kind, w)
    x = torch.randn(*lead, 128).to(dtype)
    bias = torch.randn(24).to(dtype)
    y = torch.nn.functional.linear(x, a, bias)
    assert y.shape == (*lead, 24) and y.dtype == dtype
    ref = torch.nn.functional.linear(x.double(), a.dequantize().double(), bias.double())
    assert sqnr(ref, y) > (60 if dtype == torch.float32 else 40)


@pytest.mark.parametrize("act", ["int8_asymm_per_token", "int8_symm_per_token_reduced_range"])
@pytest.mark.parametrize("kind", ["int8", "int4_qdq", "int4_tinygemm"])
def test_linear_activation_quantized(act, kind):
    a = _aqt(kind)
    la = LinearActivationQuantizedTensor(a, act)
    x = torch.randn(5, 128)
    y = torch.nn.functional.linear(x, la)
    xq = la.impl.quantize_dequantize_input(x)
    ref = torch.nn.functional.linear(xq.double(), a.dequantize().double())
    assert sqnr(ref, y) > 80  # integer accumulation: only float rounding differs
    assert sqnr(x @ W.t(), y) > 15


def test_repr_names_the_quantization():
    r = repr(_aqt("int4_tinygemm"))
    for frag in ("AffineQuantizedTensor(", "shape=[24, 128]", "block_size=[1, 64]", "layout=Int4CPULayout()",
                 "zero_point_domain=FLOAT", "code_dtype=uint4", "dtype=float32"):
        assert frag in r
    assert "act_quant=int8_asymm_per_token" in repr(LinearActivationQuantizedTensor(_aqt("int8"), "int8_asymm_per_token"))


class _Holder(torch.nn.Module):
    def __init__(self, w, la):
        super().__init__()
        self.w = w
        self.la = la

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.linear(x, None) + self.la.linear(x, None)


def test_torchscript_save_load_round_trip():
    m = torch.jit.script(_Holder(_aqt("uint3").impl,
                                 LinearActivationQuantizedTensor(_aqt("int8"), "int8_asymm_per_token").impl))
    x = torch.randn(4, 128)
    buf = io.BytesIO()
    torch.jit.save(m, buf)
    buf.seek(0)
    m2 = torch.jit.load(buf)
    assert torch.equal(m(x), m2(x))
    assert torch.equal(m2.w.dequantize(), _aqt("uint3").dequantize())


def test_user_torchscript_function_calls_ops():
    @torch.jit.script
    def fake_quant(x: torch.Tensor) -> torch.Tensor:
        s, z = torch.ops.torchao_cpp.choose_qparams_affine(x, "ASYMMETRIC", [1, x.size(1)], 0, 255)
        q = torch.ops.torchao_cpp.quantize_affine(x, [1, x.size(1)], s, z, torch.uint8, 0, 255)
        return torch.ops.torchao_cpp.dequantize_affine(q, [1, x.size(1)], s, z, 0, 255)

    x = torch.randn(4, 64)
    assert "torchao_cpp::quantize_affine" in str(fake_quant.graph)
    assert sqnr(x, fake_quant(x)) > 40


def _state(kind="int4_tinygemm"):
    # Python's __getstate__ of a ScriptObject gives (def_pickle state, class name).
    return list(_aqt(kind).impl.__getstate__()[0])


def _unpickle(state):
    """What pickle.loads does with a (possibly forged) state: a new object, then __setstate__."""
    obj = torch.ScriptObject.__new__(torch.ScriptObject)
    obj.__setstate__((tuple(state), "__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor"))
    return obj


def _tamper(i, value, kind="int4_tinygemm"):
    st = _state(kind)
    st[i] = value(st[i]) if callable(value) else value
    return tuple(st)


@pytest.mark.parametrize("state,exc,fragment", [
    (_tamper(0, 2), ValueError, "unsupported state version 2"),
    (_tamper(1, lambda t: t[:, :10].contiguous()), ValueError, "codes must have shape [24, 64]"),
    (_tamper(1, lambda t: t.to(torch.int32)), TypeError, "codes must be Byte"),
    (_tamper(2, lambda t: t * 0), ValueError, "scale must be finite and > 0"),
    (_tamper(2, lambda t: t.fill_(float("nan"))), ValueError, "scale must be finite and > 0"),
    (_tamper(2, lambda t: t[:3]), ValueError, "scale has 6 elements, expected 48"),
    (_tamper(3, None), ValueError, "zero_point_domain FLOAT needs a zero_point"),
    (_tamper(3, lambda t: t.fill_(float("inf"))), ValueError, "zero_point must be finite"),
    (_tamper(4, [1, 48]), ValueError, "does not divide shape"),
    (_tamper(4, [1]), ValueError, "does not match shape"),
    (_tamper(5, [24, -128]), ValueError, "negative size"),
    (_tamper(6, "float64"), ValueError, "dtype must be"),
    (_tamper(8, 16), ValueError, "exceeds the range of uint4"),
    (_tamper(9, "HALF"), ValueError, "zero_point_domain must be"),
    (_tamper(10, "MarlinLayout"), ValueError, "unknown layout 'MarlinLayout'"),
    (_tamper(11, "uint9"), ValueError, "unknown code dtype 'uint9'"),
    (_tamper(11, "uint3"), ValueError, "exceeds the range of uint3"),
    (_tamper(11, "int4"), ValueError, "exceeds the range of int4"),
])
def test_setstate_rejects_bad_state(state, exc, fragment):
    with pytest.raises(exc) as e:
        _unpickle(state)
    assert fragment in str(e.value)


def test_python_pickle_and_deepcopy_round_trip():
    import copy
    import pickle

    a = _aqt("uint3").impl
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), _unpickle(_state("uint3"))):
        assert torch.equal(b.dequantize(), a.dequantize())
        assert torch.equal(b.packed_data(), a.packed_data())


def test_setstate_rejects_out_of_range_codes_and_nan_float8():
    st = _state("int4_qdq")
    st[1] = st[1].clone()
    st[1][0, 0] = 100  # int4 codes must lie in [-8, 7]
    with pytest.raises(ValueError, match=r"codes lie outside \[quant_min, quant_max\] = \[-8, 7\]"):
        _unpickle(st)
    st = _state("fp8")
    st[1] = st[1].clone()
    st[1][3, 3] = 0x7F
    with pytest.raises(ValueError, match="float8 codes contain NaN or Inf"):
        _unpickle(st)
    st = _state("int8")
    st[3] = torch.zeros(24, dtype=torch.int64)  # a zero point under domain INT is fine ...
    _unpickle(st)
    st[3] = torch.full((24,), 300, dtype=torch.int64)  # ... but not outside the code range
    with pytest.raises(ValueError, match="INT zero points must be integers in"):
        _unpickle(st)


def test_constructor_validates_too():
    with pytest.raises(ValueError, match="codes must lie in"):
        torch.classes.torchao_cpp.AffineQuantizedTensor(
            torch.full((2, 4), 20, dtype=torch.uint8), torch.ones(2), torch.zeros(2), [1, 4], 0, 15, "FLOAT",
            "Int4CPULayout", "uint4", "float32")
    with pytest.raises(ValueError, match="act_quant must be"):
        LinearActivationQuantizedTensor(_aqt("int8"), "fp8_per_row")
    with pytest.raises(TypeError, match="must be float32, bfloat16 or float16"):
        AffineQuantizedTensor.from_float(W.double(), "SYMMETRIC", [1, 128], torch.int8)
    with pytest.raises(ValueError, match=r"TensorCoreTiledLayout holds codes in \[0, 15\]"):
        AffineQuantizedTensor.from_float(W, "SYMMETRIC", [1, 32], torch.int8, layout=TensorCoreTiledLayout())


@pytest.mark.parametrize("act", ["int8_asymm_per_token", "int8_symm_per_token_reduced_range"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_per_channel_int8_dynamic_linear_many_rows(act, dtype):
    # Per-channel int8 weights: the pre-packed (VNNI) GEMM on AVX-512 VNNI machines, the
    # row-dot kernel elsewhere; both must match the reference.
    w = AffineQuantizedTensor.from_float(W.to(dtype), "SYMMETRIC", [1, 128], torch.int8, zero_point_domain="NONE")
    la = LinearActivationQuantizedTensor(w, act)
    bias = torch.randn(24).to(dtype)
    for shape in ((40, 128), (2, 17, 128)):
        x = torch.randn(*shape).to(dtype)
        y = torch.nn.functional.linear(x, la, bias)
        assert y.shape == (*shape[:-1], 24) and y.dtype == dtype
        xq = la.impl.quantize_dequantize_input(x)
        ref = torch.nn.functional.linear(xq.double(), w.dequantize().double(), bias.double())
        assert sqnr(ref, y) > (80 if dtype == torch.float32 else 40)
        # Row by row gives the same values up to float rounding (per-token quantization).
        rows = torch.cat([torch.nn.functional.linear(r, la, bias) for r in x.reshape(-1, 128).split(1)])
        assert sqnr(rows.double(), y.reshape(-1, 24)) > (100 if dtype == torch.float32 else 45)


@pytest.mark.parametrize("act", ["int8_asymm_per_token", "int8_symm_per_token_reduced_range"])
@pytest.mark.parametrize("group", [32, 64])
def test_grouped_int4_codes_in_int8_dynamic_linear(act, group):
    # 8da4w-style weights (int4 codes in int8 storage, per-group scales, zero points 0):
    # the packed GEMM per group on VNNI machines, the row-dot kernel elsewhere.
    w = AffineQuantizedTensor.from_float(W, "SYMMETRIC", [1, group], qp._dtypes.int4, -8, 7)
    la = LinearActivationQuantizedTensor(w, act)
    for shape in ((1, 128), (40, 128), (2, 17, 128)):
        x = torch.randn(*shape)
        y = torch.nn.functional.linear(x, la)
        ref = torch.nn.functional.linear(la.impl.quantize_dequantize_input(x).double(), w.dequantize().double())
        assert sqnr(ref, y) > 80
