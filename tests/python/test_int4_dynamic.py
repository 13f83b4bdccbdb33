"""Int4DynamicActivationInt4WeightConfig: int4 per-token activations x int4 per-row weights.

The seed's `_int4_symm_cutlass_quant` (symmetric, [-8, 7], float32 scales,
eps = float32 eps, no zero point) quantizes both; the references below are
tests/python/reference.py's formulas and an exact float64 sum of the integer
products.
"""
import copy

import pytest
import torch
import torch.nn as nn

import torchao_cpp  # noqa: F401
from conftest import sqnr
from reference import choose_qparams, dequantize, quantize
from torchao_cpp.dtypes import AffineQuantizedTensor, CutlassInt4PackedLayout, LinearActivationQuantizedTensor
from torchao_cpp.dtypes.layouts import PlainLayout, TensorCoreTiledLayout
from torchao_cpp.quantization import (
    Int4DynamicActivationInt4WeightConfig,
    MappingType,
    int4_dynamic_activation_int4_weight,
    quantize_,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
FP32_EPS = torch.finfo(torch.float32).eps


def _int4_symm(x):
    """The seed's _int4_symm_cutlass_quant on the rows of x: (codes, float32 scales)."""
    block = [1] * (x.dim() - 1) + [x.shape[-1]]
    scale, _ = choose_qparams(x, "SYMMETRIC", block, -8, 7, eps=FP32_EPS, scale_dtype=torch.float32, domain="NONE")
    q = quantize(x, block, scale, None, torch.int8, -8, 7, domain="NONE")
    return q, scale.reshape(x.shape[:-1])


def _exact_linear(x, w_q, w_scale, bias):
    """out = a_scale * w_scale * sum_k qa * qw + bias, in float64 from the reference codes."""
    a_q, a_scale = _int4_symm(x)
    acc = a_q.double() @ w_q.double().t()
    out = acc * a_scale.double()[:, None] * w_scale.double()[None, :]
    return out + (0 if bias is None else bias.double())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 256), (7, 36), (33, 100)])
def test_weight_codes_and_scales_match_the_reference(dtype, shape):
    torch.manual_seed(1)
    w = (torch.randn(*shape) * torch.rand(shape[0], 1) * 3).to(dtype)
    w[0] = 0  # an all-zero row: the scale is clamped to eps
    m = nn.Sequential(nn.Linear(shape[1], shape[0]).to(dtype))
    with torch.no_grad():
        m[0].weight.copy_(w)
    quantize_(m, Int4DynamicActivationInt4WeightConfig())
    lw = m[0].weight
    assert isinstance(lw, LinearActivationQuantizedTensor)
    aqt = lw.original_weight_tensor
    assert isinstance(aqt, AffineQuantizedTensor)
    assert aqt.layout == "CutlassInt4PackedLayout"
    codes, scale, zp = aqt.impl.get_plain()
    ref_q, ref_scale = _int4_symm(w)
    assert zp is None and scale.dtype == torch.float32 and codes.dtype == torch.int8
    assert torch.equal(codes, ref_q)
    assert torch.equal(scale.reshape(-1), ref_scale.reshape(-1))
    assert float(scale.reshape(-1)[0]) == pytest.approx(FP32_EPS)
    assert int(codes.min()) >= -8 and int(codes.max()) <= 7
    ref_deq = dequantize(ref_q, [1, shape[1]], ref_scale, None, -8, 7, domain="NONE", out_dtype=dtype)
    assert torch.equal(lw.dequantize(), ref_deq)
    # Storage: two codes per byte (the packed rows), plus one float32 scale per row.
    assert aqt.nbytes_quantized() == shape[0] * ((shape[1] * 4 + 7) // 8) + shape[0] * 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 256, 64), (3, 36, 7), (17, 100, 33), (64, 512, 48)])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_is_the_exact_integer_product(dtype, M, K, N, bias):
    torch.manual_seed(M * 1000 + K + N)
    lin = nn.Linear(K, N, bias=bias).to(dtype)
    x = (torch.randn(M, K) * 2).to(dtype)
    x[0, :5] = 0.0
    m = nn.Sequential(lin)
    quantize_(m, Int4DynamicActivationInt4WeightConfig())
    codes, scale, _ = m[0].weight.original_weight_tensor.impl.get_plain()
    ref = _exact_linear(x, codes, scale.reshape(-1), None if not bias else lin.bias.detach())
    y = m(x)
    assert y.dtype == dtype and y.shape == (M, N)
    # float32 sums of exact integer products: only the output rounding differs.
    tol = {torch.float32: 1e-5, torch.bfloat16: 8e-3, torch.float16: 1e-3}[dtype]
    assert torch.allclose(y.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_linear_matches_the_portable_op_and_3d_inputs():
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(96, 40))
    quantize_(m, Int4DynamicActivationInt4WeightConfig())
    x = torch.randn(2, 5, 96)
    y = m(x)
    aqt = m[0].weight.original_weight_tensor.impl
    # The integer kernel on the stored (bit-packed) codes, without the VNNI tiles.
    y_op = torch.ops.torchao_cpp.int8_dynamic_linear(x, "int4_symmetric", aqt.packed_data(), "packed", 4, 40, 96, 96,
                                                     aqt.scale(), None, -8, m[0].bias)
    assert y.shape == (2, 5, 40)
    assert torch.allclose(y, y_op, rtol=1e-5, atol=1e-5)
    assert torch.allclose(y.reshape(10, 40), m(x.reshape(10, 96)), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_quantizer_matches_the_reference(dtype):
    torch.manual_seed(4)
    m = nn.Sequential(nn.Linear(80, 16).to(dtype))
    quantize_(m, Int4DynamicActivationInt4WeightConfig())
    x = (torch.randn(6, 80) * torch.rand(6, 1) * 10).to(dtype)
    q, s = _int4_symm(x)
    ref = dequantize(q, [1, 80], s, None, -8, 7, domain="NONE", out_dtype=dtype)
    assert torch.equal(m[0].weight.impl.quantize_dequantize_input(x), ref)


def test_sqnr_against_the_float_model():
    # Measured 16-18 dB for one layer of Gaussian weights and inputs (4-bit codes on both sides).
    torch.manual_seed(5)
    m = nn.Sequential(nn.Linear(512, 256), nn.Linear(256, 64)).eval()
    x = torch.randn(8, 512)
    ref = m(x)
    q = copy.deepcopy(m)
    quantize_(q, Int4DynamicActivationInt4WeightConfig())
    assert sqnr(ref, q(x)) > 12


def test_repr_alias_and_quantization_type():
    assert int4_dynamic_activation_int4_weight is Int4DynamicActivationInt4WeightConfig
    cfg = Int4DynamicActivationInt4WeightConfig()
    assert cfg.layout == CutlassInt4PackedLayout() and cfg.mapping_type == MappingType.SYMMETRIC
    m = nn.Sequential(nn.Linear(64, 8))
    quantize_(m, cfg)
    text = repr(m)
    assert "act_quant=int4_symm_per_token" in text and "code_dtype=int4" in text
    assert "layout=CutlassInt4PackedLayout()" in text


@pytest.mark.parametrize("make,fragment", [
    (lambda: Int4DynamicActivationInt4WeightConfig(layout=PlainLayout()),
     "Int4DynamicActivationInt4WeightConfig.layout: only CutlassInt4PackedLayout layout is supported, received PlainLayout()"),
    (lambda: Int4DynamicActivationInt4WeightConfig(layout=TensorCoreTiledLayout()),
     "received TensorCoreTiledLayout()"),
    (lambda: Int4DynamicActivationInt4WeightConfig(mapping_type=MappingType.ASYMMETRIC),
     "Int4DynamicActivationInt4WeightConfig.mapping_type: only mapping_type=SYMMETRIC is supported"),
    (lambda: Int4DynamicActivationInt4WeightConfig(act_mapping_type=MappingType.ASYMMETRIC),
     "Int4DynamicActivationInt4WeightConfig.act_mapping_type: only act_mapping_type=SYMMETRIC is supported"),
])
def test_the_seeds_refusals_are_not_implemented_errors(make, fragment):
    with pytest.raises(NotImplementedError) as e:
        make()
    assert fragment in str(e.value)


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(ValueError, match="must be one of SYMMETRIC, ASYMMETRIC"):
        Int4DynamicActivationInt4WeightConfig(mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR)
    with pytest.raises(TypeError, match="set_inductor_config must be bool"):
        Int4DynamicActivationInt4WeightConfig(set_inductor_config=3)
    m = nn.Sequential(nn.Linear(64, 8))
    quantize_(m, Int4DynamicActivationInt4WeightConfig())
    x = torch.randn(2, 64)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        m(x)
    with pytest.raises(ValueError, match="act_quant must be 'asymmetric', 'symmetric_reduced_range' or 'int4_symmetric'"):
        aqt = m[0].weight.original_weight_tensor.impl
        torch.ops.torchao_cpp.int8_dynamic_linear(torch.randn(2, 64), "int4", aqt.packed_data(), "packed", 4, 8, 64, 64,
                                                  aqt.scale(), None, -8, None)
