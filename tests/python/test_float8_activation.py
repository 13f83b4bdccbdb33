"""Float8DynamicActivationFloat8WeightConfig / Float8StaticActivationFloat8WeightConfig on CPU:
numerics against an independent reference, the seed's validation and shape rule, 3-d weights."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import sqnr
from torchao_cpp.dtypes import LinearActivationQuantizedTensor, float8_e4m3fn, float8_e5m2
from torchao_cpp.float8 import Float8MMConfig
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    PerAxis,
    PerGroup,
    PerRow,
    PerTensor,
    quantize_,
)
from torchao_cpp.quantization import quant_primitives as qp

ops = torch.ops.torchao_cpp


def float8_values(codes: torch.Tensor, fmt) -> torch.Tensor:
    """Decodes raw float8 bytes from their bit fields (independent of the library's tables)."""
    c = codes.to(torch.int64)
    sign = torch.where(c >= 128, -1.0, 1.0).double()
    if fmt is float8_e4m3fn:
        e, m, bias, mbits = (c >> 3) & 0xF, c & 7, 7, 3
    else:
        e, m, bias, mbits = (c >> 2) & 0x1F, c & 3, 15, 2
    frac = m.double() / (1 << mbits)
    normal = (1 + frac) * torch.pow(2.0, (e - bias).double())
    sub = frac * 2.0 ** (1 - bias)
    return sign * torch.where(e == 0, sub, normal)


def reference(x, w, bias, act_fmt, w_fmt, act_row, w_row, act_scale=None):
    """torch._scaled_mm's math: exact products of the float8 values, then both scales, then the bias."""
    K = x.shape[-1]
    x2 = x.reshape(-1, K)
    xblock = [1, K] if act_row else list(x2.shape)
    xs = act_scale if act_scale is not None else qp.choose_qparams_affine_float8(x2, act_fmt, xblock, torch.float32)
    xq = qp.quantize_affine_float8(x2, xs.reshape(qp_shape(x2.shape, xblock)), act_fmt, xblock)
    wblock = [1, K] if w_row else list(w.shape)
    ws = qp.choose_qparams_affine_float8(w, w_fmt, wblock, torch.float32)
    wq = qp.quantize_affine_float8(w, ws, w_fmt, wblock)
    acc = float8_values(xq, act_fmt) @ float8_values(wq, w_fmt).t()
    out = acc * xs.double().reshape(-1, 1 if act_row else 1) * ws.double().reshape(1, -1)
    if bias is not None:
        out = out + bias.double()
    return out.reshape(*x.shape[:-1], w.shape[0])


def qp_shape(shape, block):
    return [s // b for s, b in zip(shape, block) if not (b == s and b != 1)]


def _linear(w, bias):
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
        if bias is not None:
            lin.bias.copy_(bias)
    return nn.Sequential(lin)


ULP = {torch.float32: 2.0 ** -22, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -10}


@pytest.mark.parametrize("M", [1, 3, 17, 40])
@pytest.mark.parametrize("K,N", [(64, 32), (256, 48)])
@pytest.mark.parametrize("dtype,gran", [(torch.float32, PerTensor()), (torch.bfloat16, PerTensor()),
                                        (torch.float16, PerTensor()), (torch.bfloat16, PerRow())])
@pytest.mark.parametrize("act_fmt,w_fmt", [(float8_e4m3fn, float8_e4m3fn), (float8_e5m2, float8_e4m3fn),
                                           (float8_e4m3fn, float8_e5m2)])
def test_dynamic_matches_the_reference(M, K, N, dtype, gran, act_fmt, w_fmt):
    torch.manual_seed(M * 1000 + K + N)
    w = (torch.randn(N, K) * torch.linspace(0.2, 3, K)).to(dtype)
    bias = torch.randn(N).to(dtype)
    x = (torch.randn(2, M, K) * torch.linspace(3, 0.1, K)).to(dtype)
    m = _linear(w, bias)
    quantize_(m, Float8DynamicActivationFloat8WeightConfig(activation_dtype=act_fmt, weight_dtype=w_fmt,
                                                           granularity=gran))
    assert isinstance(m[0].weight, LinearActivationQuantizedTensor)
    row = isinstance(gran, PerRow)
    y = m(x)
    assert y.dtype == dtype and y.shape == (2, M, N)
    ref = reference(x, w, bias, act_fmt, w_fmt, row, row)
    # One rounding to dtype after float32 sums of exact products.
    err = (y.double() - ref).abs()
    tol = ref.abs() * ULP[dtype] + 1e-5 * ref.abs().max()
    assert (err <= tol).all(), f"max error {err.max().item()} (worst excess {(err - tol).max().item()})"
    # and the quantization error itself is that of float8
    exact = F.linear(x.double(), w.double(), bias.double())
    assert sqnr(exact, y) > (24 if act_fmt is float8_e4m3fn and w_fmt is float8_e4m3fn else 18)


def test_golden_outputs_are_within_rounding_of_torchao(golden_cases):
    for name, gran in [("fp8dq_tensor_bf16", PerTensor()), ("fp8dq_row_bf16", PerRow())]:
        case = golden_cases[name]
        m = _linear(case["weight"], case["bias"])
        quantize_(m, Float8DynamicActivationFloat8WeightConfig(granularity=gran))
        y = m(case["input"])
        # torchao ran _scaled_mm with fast accumulation on an H100: its sums differ in the last bits.
        assert sqnr(case["output"], y) > 55, name
        ref = case["output"].double()
        assert ((y.double() - ref).abs() <= 2 * ref.abs() * 2.0 ** -8 + 1e-3).all(), name


def test_static_scale_is_used_and_saturates():
    torch.manual_seed(0)
    w = torch.randn(32, 64)
    x = torch.randn(5, 64)
    x[0, 0] = 100.0  # beyond 448 * scale: saturates to the largest float8 value
    scale = torch.tensor(0.05)
    m = _linear(w, None)
    quantize_(m, Float8StaticActivationFloat8WeightConfig(scale=scale))
    la = m[0].weight
    assert la.impl.act_quant() == "float8_e4m3fn_static" and torch.equal(la.impl.act_scale(), scale)
    y = m(x)
    ref = reference(x, w, None, float8_e4m3fn, float8_e4m3fn, False, False, act_scale=scale)
    assert ((y.double() - ref).abs() <= ref.abs() * 2.0 ** -22 + 1e-5 * ref.abs().max()).all()
    xq = la.impl.quantize_dequantize_input(x)
    assert xq[0, 0].item() == 448 * 0.05 or abs(xq[0, 0].item() - 448 * 0.05) < 1e-5


def test_zero_rows_and_zero_input_give_bias_not_nan():
    m = _linear(torch.randn(16, 32).bfloat16(), torch.randn(16).bfloat16())
    quantize_(m, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    x = torch.randn(3, 32).bfloat16()
    x[1] = 0
    y = m(x)
    assert torch.isfinite(y).all() and torch.equal(y[1], m[0].bias.detach())
    assert torch.equal(m(torch.zeros(2, 32).bfloat16()), m[0].bias.detach().expand(2, 16))


def test_layers_that_are_not_multiples_of_16_are_skipped_and_logged(caplog):
    m = nn.Sequential(nn.Linear(24, 32), nn.Linear(32, 40), nn.Linear(40, 16), nn.Linear(16, 32))
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, Float8DynamicActivationFloat8WeightConfig())
    assert [isinstance(l.weight, LinearActivationQuantizedTensor) for l in m] == [False, False, False, True]
    assert "Skipping Float8DynamicActivationFloat8WeightConfig for 0" in caplog.text
    assert "multiples of 16" in caplog.text


@pytest.mark.parametrize("make,exc,fragment", [
    (lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerAxis(0)), ValueError,
     "invalid granularity specification PerAxis()"),
    (lambda: Float8DynamicActivationFloat8WeightConfig(granularity=[PerRow(), PerGroup(32)]), ValueError,
     "invalid granularity types"),
    (lambda: Float8DynamicActivationFloat8WeightConfig(granularity=[PerRow(), PerTensor()]), ValueError,
     "different granularities for activation and weight are not supported"),
    (lambda: Float8DynamicActivationFloat8WeightConfig(granularity=[PerRow()] * 3), ValueError,
     "invalid granularity specification"),
    (lambda: Float8DynamicActivationFloat8WeightConfig(activation_dtype=torch.int8), ValueError,
     "Float8DynamicActivationFloat8WeightConfig.activation_dtype must be one of float8_e4m3fn, float8_e5m2"),
    (lambda: Float8DynamicActivationFloat8WeightConfig(mm_config="fast"), TypeError,
     "mm_config must be a Float8MMConfig"),
    (lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.1), granularity=PerRow()), ValueError,
     "static quantization only supports PerTensor granularity"),
    (lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.ones(2)), ValueError,
     "scale must hold one activation scale"),
    (lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(-1.0)), ValueError,
     "scale must be finite and > 0"),
    (lambda: Float8StaticActivationFloat8WeightConfig(scale=0.1), TypeError, "scale must be a torch.Tensor"),
])
def test_config_validation(make, exc, fragment):
    with pytest.raises(exc) as e:
        make()
    assert fragment in str(e.value)


def test_defaults_mirror_the_seed():
    c = Float8DynamicActivationFloat8WeightConfig()
    assert c.granularity == [PerTensor(), PerTensor()] and c.mm_config == Float8MMConfig(use_fast_accum=True)
    c = Float8DynamicActivationFloat8WeightConfig(mm_config=Float8MMConfig())
    m = _linear(torch.randn(16, 32), None)
    quantize_(m, c)
    assert m[0].weight.impl.fast_accum() is False and "fast_accum" not in repr(m[0].weight)
    m = _linear(torch.randn(16, 32), None)
    quantize_(m, Float8DynamicActivationFloat8WeightConfig())
    assert m[0].weight.impl.fast_accum() is True and "fast_accum=True" in repr(m[0].weight)


def test_per_row_needs_bfloat16_weights_and_leaves_the_model_alone():
    m = nn.Sequential(nn.Linear(32, 16), nn.Linear(16, 16))
    before = m[0].weight.detach().clone()
    with pytest.raises(TypeError, match="PerRow quantization only works for bfloat16 weights, got Float"):
        quantize_(m, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    assert type(m[0].weight) is nn.Parameter and torch.equal(m[0].weight, before)


class Experts(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 32, 64).bfloat16())


@pytest.mark.parametrize("gran,block", [(PerTensor(), [1, 32, 64]), (PerRow(), [1, 1, 64])])
def test_three_d_weights(gran, block):
    m = nn.Sequential(Experts())
    w = m[0].weight.detach().clone()
    quantize_(m, Float8DynamicActivationFloat8WeightConfig(granularity=gran), filter_fn=lambda mod, fqn: isinstance(mod, Experts))
    q = m[0].weight
    assert isinstance(q, LinearActivationQuantizedTensor) and q.shape == (4, 32, 64)
    assert list(q.original_weight_tensor.block_size) == block
    assert sqnr(w.float(), q.dequantize().float()) > 28
    with pytest.raises(NotImplementedError, match="a linear takes a 2-d weight"):
        F.linear(torch.randn(2, 64).bfloat16(), q)
    with pytest.raises(ValueError, match="this config takes 2-d or 3-d weights"):
        ops.quantize_weight(torch.randn(2, 2, 16, 16), "Float8DynamicActivationFloat8WeightConfig", {}, "w")


def test_op_checks_its_arguments():
    x = torch.randn(2, 32)
    codes = torch.zeros(16, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="act_granularity must be 'PerTensor' or 'PerRow'"):
        ops.float8_linear(x, "float8_e4m3fn", "PerGroup", None, codes, "float8_e4m3fn", torch.ones(1))
    with pytest.raises(ValueError, match="weight_scale has 3 elements, expected 1"):
        ops.float8_linear(x, "float8_e4m3fn", "PerTensor", None, codes, "float8_e4m3fn", torch.ones(3))
    with pytest.raises(ValueError, match="a static act_scale is one scale per tensor"):
        ops.float8_linear(x, "float8_e4m3fn", "PerRow", torch.ones(1), codes, "float8_e4m3fn", torch.ones(1))
    with pytest.raises(ValueError, match="input has 31 features"):
        ops.float8_linear(x[:, :31], "float8_e4m3fn", "PerTensor", None, codes, "float8_e4m3fn", torch.ones(1))
    with pytest.raises(ValueError, match="float8_dtype must be"):
        ops.float8_linear(x, "float8_e3m4", "PerTensor", None, codes, "float8_e4m3fn", torch.ones(1))
    with pytest.raises(TypeError, match="float8 codes must be uint8"):
        ops.float8_linear(x, "float8_e4m3fn", "PerTensor", None, codes.float(), "float8_e4m3fn", torch.ones(1))
    assert ops.float8_linear(x[:0], "float8_e4m3fn", "PerTensor", None, codes, "float8_e4m3fn", torch.ones(1)).shape == (0, 16)


def test_class_checks_its_state():
    from torchao_cpp.dtypes import AffineQuantizedTensor

    w = AffineQuantizedTensor.from_float(torch.randn(16, 32), "SYMMETRIC", [16, 32], float8_e4m3fn)
    with pytest.raises(ValueError, match="needs act_scale"):
        LinearActivationQuantizedTensor(w, "float8_e4m3fn_static")
    with pytest.raises(ValueError, match="act_scale is for static quantization"):
        LinearActivationQuantizedTensor(w, "float8_e4m3fn_per_tensor", torch.tensor(1.0))
    with pytest.raises(ValueError, match="need a float8 weight"):
        LinearActivationQuantizedTensor(AffineQuantizedTensor.from_float(torch.randn(16, 32), "SYMMETRIC", [1, 32],
                                                                          torch.int8), "float8_e4m3fn_per_row")
    with pytest.raises(ValueError, match="fast_accum applies to float8 activations only"):
        LinearActivationQuantizedTensor(w, "int8_asymm_per_token", None, True)
    g = AffineQuantizedTensor.from_float(torch.randn(16, 32), "SYMMETRIC", [1, 16], float8_e4m3fn)
    with pytest.raises(ValueError, match="scaled per tensor or per row"):
        LinearActivationQuantizedTensor(g, "float8_e4m3fn_per_tensor")
