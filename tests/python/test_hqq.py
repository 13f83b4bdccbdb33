"""HQQ (use_hqq=True) for Int4WeightOnlyConfig and UIntXWeightOnlyConfig.

The C++ solver (csrc/kernels/cpu/hqq.h) is checked against the seed's
algorithm written with torch ops (reference.hqq), and against plain min/max
quantization of the same weights: HQQ must give a lower output error.
"""
import copy

import pytest
import torch
import torch.nn as nn

import torchao_cpp  # noqa: F401
from conftest import sqnr
from reference import hqq
from torchao_cpp.dtypes import AffineQuantizedTensor, Int4CPULayout, uint2, uint3, uint4, uint5, uint6, uint7
from torchao_cpp.quantization import Int4WeightOnlyConfig, UIntXWeightOnlyConfig, quantize_

UINTX = {2: uint2, 3: uint3, 4: uint4, 5: uint5, 6: uint6, 7: uint7}


def _weights(n=64, k=512, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    w = torch.randn(n, k) * 0.02
    w[torch.rand(n, k) < 0.002] *= 25  # a few outliers, as trained weights have
    return w.to(dtype)


def _quantized(w, config):
    m = nn.Sequential(nn.Linear(w.shape[1], w.shape[0], bias=False).to(w.dtype))
    with torch.no_grad():
        m[0].weight.copy_(w)
    quantize_(m, config)
    return m


def _match(codes, scale, zero, ref):
    rq, rs, rz = ref
    # The solver's float32 sums run in another order than torch's: the odd code
    # on a rounding tie may differ, parameters by a few ulps.
    assert (codes.to(torch.int16) - rq.to(torch.int16)).abs().max() <= 1
    assert (codes != rq).float().mean() < 1e-3
    assert torch.allclose(scale.float(), rs.float(), rtol=1e-2 if rs.dtype != torch.float32 else 1e-6, atol=0)
    assert torch.allclose(zero.float(), rz.float(), rtol=2e-2, atol=1e-3 * rz.float().abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("layout", ["tc", "cpu"])
def test_int4_hqq_matches_the_reference(dtype, group_size, layout):
    w = _weights(dtype=dtype)
    lay = Int4CPULayout() if layout == "cpu" else None
    cfg = Int4WeightOnlyConfig(group_size=group_size, use_hqq=True, **({"layout": lay} if lay else {}))
    m = _quantized(w, cfg)
    aqt = m[0].weight
    assert isinstance(aqt, AffineQuantizedTensor) and aqt.layout == ("Int4CPULayout" if lay else "TensorCoreTiledLayout")
    codes, scale, zero = aqt.impl.get_plain()
    compute = dtype if lay else torch.bfloat16  # the seed's zero_point_dtype
    assert scale.dtype == compute and zero.dtype == compute and aqt.impl.zero_point_domain() == "FLOAT"
    _match(codes, scale, zero, hqq(w, 4, group_size, compute))


@pytest.mark.parametrize("bits", [2, 3, 5, 7])
def test_uintx_hqq_matches_the_reference(bits):
    w = _weights(dtype=torch.bfloat16, seed=bits)
    m = _quantized(w, UIntXWeightOnlyConfig(dtype=UINTX[bits], group_size=64, use_hqq=True))
    aqt = m[0].weight
    assert aqt.layout == "PlainLayout" and aqt.impl.code_dtype() == f"uint{bits}"
    codes, scale, zero = aqt.impl.get_plain()
    assert int(codes.max()) <= 2 ** bits - 1
    _match(codes, scale, zero, hqq(w, bits, 64, torch.bfloat16))


# Measured gains (output SQNR, 1024 x 256 bfloat16 weights with outliers, two seeds):
# int4 g64 +1.0..1.1 dB, int4 g128 +1.2..1.3 dB, uint3 g64 +0.06..0.18 dB.
@pytest.mark.parametrize("make,margin_db", [
    (lambda hqq_on: Int4WeightOnlyConfig(group_size=64, layout=Int4CPULayout(), use_hqq=hqq_on), 0.5),
    (lambda hqq_on: Int4WeightOnlyConfig(group_size=128, use_hqq=hqq_on), 0.5),
    (lambda hqq_on: UIntXWeightOnlyConfig(dtype=uint3, group_size=64, use_hqq=hqq_on), 0.0),
])
def test_hqq_output_error_is_lower_than_min_max(make, margin_db):
    w = _weights(n=256, k=1024, dtype=torch.bfloat16, seed=3)
    x = torch.randn(64, 1024, dtype=torch.bfloat16)
    ref = x.float() @ w.float().t()
    plain = _quantized(w, make(False))
    opt = _quantized(w, make(True))
    with torch.no_grad():
        s_plain, s_hqq = sqnr(ref, plain(x).float()), sqnr(ref, opt(x).float())
        e_plain = (plain[0].weight.dequantize().float() - w.float()).abs().mean()
        e_hqq = (opt[0].weight.dequantize().float() - w.float()).abs().mean()
    assert s_hqq > s_plain + margin_db, (s_hqq, s_plain)
    assert e_hqq < e_plain


def test_hqq_weights_run_and_round_trip():
    w = _weights(n=32, k=256)
    m = _quantized(w, Int4WeightOnlyConfig(group_size=64, use_hqq=True))
    x = torch.randn(3, 256)
    with torch.no_grad():
        y = m(x)
        ref = x @ m[0].weight.dequantize().t()
    assert torch.allclose(y, ref, rtol=1e-4, atol=1e-4)
    m2 = copy.deepcopy(m)
    assert torch.equal(m2(x), y)
    # A constant group: the scale's inf clamps to 2e4 as in the seed, codes stay finite.
    wc = torch.ones(8, 64)
    mc = _quantized(wc, Int4WeightOnlyConfig(group_size=64, use_hqq=True))
    assert torch.allclose(mc[0].weight.dequantize(), wc, atol=1e-3)


def test_hqq_op_is_what_quantize_stores():
    # The solver as an op (CPU, Meta; CUDA on GPU machines): the codes, scale and zero point quantize_ stores.
    ops = torch.ops.torchao_cpp
    w = _weights(n=32, k=256)
    codes, scale, zero = ops.choose_qparams_and_quantize_affine_hqq(w, 4, 64)
    assert codes.dtype == torch.uint8 and codes.shape == (32, 256) and scale.shape == zero.shape == (32, 4)
    c, s, z = _quantized(w, Int4WeightOnlyConfig(group_size=64, use_hqq=True))[0].weight.impl.get_plain()
    # (stored in the config's compute dtype, bfloat16 for int4)
    assert torch.equal(c.to(torch.uint8), codes) and torch.equal(s, scale.to(s.dtype)) and torch.equal(z, zero.to(z.dtype))
    mc, ms, mz = ops.choose_qparams_and_quantize_affine_hqq(w.to("meta"), 3, 32)
    assert mc.shape == (32, 256) and ms.shape == mz.shape == (32, 8) and mc.device.type == "meta"
    with pytest.raises(ValueError, match="nbits must be in 1..8"):
        ops.choose_qparams_and_quantize_affine_hqq(w, 9, 64)
    with pytest.raises(ValueError, match="group size divides"):
        ops.choose_qparams_and_quantize_affine_hqq(w, 4, 48)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        ops.choose_qparams_and_quantize_affine_hqq(w.double(), 4, 64)
