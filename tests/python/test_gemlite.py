"""GemliteUIntXWeightOnlyConfig: the seed's gemlite config (float16 models) on this project's kernels.

4-bit: HQQ codes per group, float16 scales and FLOAT-domain zero points (checked against the
seed's algorithm written with torch ops, reference.hqq); 8-bit: symmetric int8 per channel with
eps 1e-5 (reference.choose_qparams / quantize). Linears are checked against the dequantized weight.
"""
import copy
import logging

import pytest
import torch
import torch.nn as nn

from conftest import scripted_matches_eager, sqnr, state_dict_round_trip
from reference import choose_qparams, hqq, quantize
from torchao_cpp.dtypes import AffineQuantizedTensor, GemlitePackedLayout
from torchao_cpp.quantization import (
    GemliteUIntXWeightOnlyConfig,
    UIntXWeightOnlyConfig,
    gemlite_uintx_weight_only,
    quantize_,
)

F16 = torch.float16


def _linear(N, K, seed=0, bias=True):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(K, N, bias=bias)).to(F16)
    with torch.no_grad():
        m[0].weight.mul_(1.0 + 4.0 * (torch.rand(N, K) < 0.003).to(F16))  # a few outliers
    return m


def _quantized(N, K, config, seed=0, bias=True):
    m = _linear(N, K, seed, bias)
    w = m[0].weight.detach().clone()
    quantize_(m, config)
    return m, w


@pytest.mark.parametrize("group_size", [32, 64, 128, 256, None])
@pytest.mark.parametrize("K", [256, 512])
def test_4bit_codes_are_the_seeds_hqq_codes(group_size, K):
    m, w = _quantized(48, K, GemliteUIntXWeightOnlyConfig(group_size=group_size, bit_width=4))
    aqt = m[0].weight
    assert isinstance(aqt, AffineQuantizedTensor) and aqt.layout == "GemlitePackedLayout"
    g = group_size or K
    assert aqt.impl.block_size() == [1, g] and aqt.impl.zero_point_domain() == "FLOAT"
    codes, scale, zero = aqt.impl.get_plain()
    assert codes.dtype == torch.uint8 and codes.shape == (48, K) and int(codes.max()) <= 15
    assert scale.dtype == F16 and zero.dtype == F16 and scale.shape == (48, K // g) == zero.shape
    rq, rs, rz = hqq(w, 4, g, F16)  # the seed: use_hqq=True for 4 bits, zero_point_dtype float16
    # The solver's float32 sums run in another order than torch's: a rare code on a tie may differ.
    assert (codes.to(torch.int16) - rq.to(torch.int16)).abs().max() <= 1
    assert (codes != rq).float().mean() < 1e-3
    assert torch.allclose(scale.float(), rs.float(), rtol=1e-3, atol=0)
    assert torch.allclose(zero.float(), rz.float(), rtol=2e-2, atol=1e-3 * rz.float().abs().max().item())
    # Bit-packed: 4 bits per weight.
    assert aqt.impl.packed_data().shape == (48, K // 2)


def test_4bit_is_uintx_hqq_with_float16_parameters():
    # The same solver as UIntXWeightOnlyConfig(uint4, use_hqq=True), whose zero points are in the weight's dtype.
    from torchao_cpp.dtypes import uint4

    m, _ = _quantized(32, 256, GemliteUIntXWeightOnlyConfig(group_size=64))
    u, _ = _quantized(32, 256, UIntXWeightOnlyConfig(dtype=uint4, group_size=64, use_hqq=True))
    a, b = m[0].weight.impl.get_plain(), u[0].weight.impl.get_plain()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_8bit_codes_are_symmetric_int8_per_channel():
    m, w = _quantized(40, 320, GemliteUIntXWeightOnlyConfig(group_size=None, bit_width=8))
    aqt = m[0].weight
    codes, scale, zero = aqt.impl.get_plain()
    assert zero is None and aqt.impl.zero_point_domain() == "NONE"
    assert codes.dtype == torch.int8 and scale.dtype == F16 and scale.numel() == 40
    rs, _ = choose_qparams(w, "SYMMETRIC", [1, 320], -128, 127, eps=1e-5, domain="NONE")
    rq = quantize(w, [1, 320], rs, None, torch.int8, -128, 127, domain="NONE")
    assert torch.equal(scale.reshape(-1), rs.reshape(-1))
    assert torch.equal(codes, rq)
    assert aqt.impl.packed_data().shape == (40, 320)


def test_8bit_eps_and_zero_rows():
    m = _linear(4, 64)
    with torch.no_grad():
        m[0].weight[1].fill_(1e-4)  # max / 127.5 < 1e-5: the scale is clamped to the seed's eps
        m[0].weight[2].zero_()
    w = m[0].weight.detach().clone()
    quantize_(m, GemliteUIntXWeightOnlyConfig(group_size=None, bit_width=8))
    codes, scale, _ = m[0].weight.impl.get_plain()
    eps16 = torch.tensor(1e-5, dtype=F16)
    assert scale.reshape(-1)[1] == eps16 and scale.reshape(-1)[2] == eps16
    # 1 / eps overflows float16: the codes use the float32 reciprocal (torchao's would saturate).
    assert torch.equal(codes[1], torch.full((64,), 10, dtype=torch.int8))  # 1e-4 / 1.0014e-5 = 9.99
    assert torch.equal(codes[2], torch.zeros(64, dtype=torch.int8))
    rs, _ = choose_qparams(w, "SYMMETRIC", [1, 64], -128, 127, eps=1e-5, domain="NONE")
    assert torch.equal(codes, quantize(w, [1, 64], rs, None, torch.int8, -128, 127, domain="NONE"))
    y = m(torch.ones(2, 64, dtype=F16))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("bits,group_size", [(4, 32), (4, 128), (4, None), (8, None)])
@pytest.mark.parametrize("M", [1, 3, 17])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_the_dequantized_weight(bits, group_size, M, bias):
    m, w = _quantized(70, 256, GemliteUIntXWeightOnlyConfig(group_size=group_size, bit_width=bits), bias=bias)
    torch.manual_seed(1)
    x = torch.randn(M, 256).to(F16)
    y = m(x)
    assert y.dtype == F16 and y.shape == (M, 70)
    wd = m[0].weight.dequantize()
    assert wd.dtype == F16
    b = m[0].bias.float() if bias else None
    ref = nn.functional.linear(x.float(), wd.float(), b)
    assert sqnr(ref, y.float()) > 55  # float16 output rounding only
    # and the quantization itself is as good as 4 or 8 bits are
    assert sqnr(w.float(), wd.float()) > (18 if bits == 4 else 40)


def test_hqq_beats_min_max_on_the_output():
    # Plain asymmetric min/max uint4 per group of 64 (FLOAT zero points) on the same weights.
    m, w = _quantized(64, 512, GemliteUIntXWeightOnlyConfig(group_size=64))
    torch.manual_seed(2)
    x = torch.randn(32, 512).to(F16)
    ref = nn.functional.linear(x.float(), w.float())
    s, z = choose_qparams(w, "ASYMMETRIC", [1, 64], 0, 15, eps=1e-6, zp_dtype=F16, preserve_zero=False,
                          domain="FLOAT")
    from reference import dequantize

    q = quantize(w, [1, 64], s, z, torch.uint8, 0, 15, domain="FLOAT")
    wmm = dequantize(q, [1, 64], s, z, 0, 15, domain="FLOAT", out_dtype=F16)
    err_hqq = (m(x).float() - ref - m[0].bias.float()).pow(2).mean()
    err_mm = (nn.functional.linear(x.float(), wmm.float()) - ref).pow(2).mean()
    assert err_hqq < err_mm


def test_the_seeds_checks_are_kept(caplog):
    with pytest.raises(ValueError, match=r"GemliteUIntXWeightOnlyConfig.bit_width must be 4 or 8.*got 3"):
        GemliteUIntXWeightOnlyConfig(bit_width=3)
    with pytest.raises(ValueError, match=r"packing_bitwidth must be 8, 16 or 32, got 12"):
        GemliteUIntXWeightOnlyConfig(packing_bitwidth=12)
    with pytest.raises(ValueError, match=r"group_size must be one of 32, 64, 128, 256, 512, 1024 or None, got 48"):
        GemliteUIntXWeightOnlyConfig(group_size=48)
    with pytest.raises(ValueError, match=r"group_size must be None \(per channel\) for bit_width=8, got 64"):
        GemliteUIntXWeightOnlyConfig(group_size=64, bit_width=8)
    with pytest.raises(TypeError, match=r"GemliteUIntXWeightOnlyConfig.contiguous must be bool"):
        GemliteUIntXWeightOnlyConfig(contiguous=1)
    # float16 weights only; nothing is converted when a layer is refused.
    m = nn.Sequential(nn.Linear(64, 8).half(), nn.Linear(8, 8))
    with pytest.raises(TypeError, match=r"gemlite only works with float16 weights, the weight of '1' is Float"):
        quantize_(m, GemliteUIntXWeightOnlyConfig())
    assert type(m[0].weight) is nn.Parameter and type(m[1].weight) is nn.Parameter
    # in_features the group size does not divide: skipped and logged
    m = nn.Sequential(nn.Linear(96, 8).half())
    with caplog.at_level(logging.INFO):
        quantize_(m, GemliteUIntXWeightOnlyConfig(group_size=64))
    assert type(m[0].weight) is nn.Parameter and "Skipping GemliteUIntXWeightOnlyConfig" in caplog.text


def test_packing_fields_change_nothing_and_the_alias_is_the_config():
    assert gemlite_uintx_weight_only is GemliteUIntXWeightOnlyConfig
    a, _ = _quantized(16, 128, GemliteUIntXWeightOnlyConfig(packing_bitwidth=8, contiguous=True))
    b, _ = _quantized(16, 128, GemliteUIntXWeightOnlyConfig(packing_bitwidth=32))
    assert torch.equal(a[0].weight.impl.packed_data(), b[0].weight.impl.packed_data())
    assert "layout=GemlitePackedLayout()" in repr(a[0])
    assert GemlitePackedLayout(group_size=128).name == "GemlitePackedLayout"
    with pytest.raises(ValueError, match="GemlitePackedLayout.bit_width must be 4 or 8, got 2"):
        GemlitePackedLayout(bit_width=2)


def test_from_float_with_the_layout_narrows_uint8_to_uint4():
    w = _linear(8, 64)[0].weight.detach()
    aqt = AffineQuantizedTensor.from_float(w, "ASYMMETRIC", [1, 32], torch.uint8, 0, 15, eps=1e-6,
                                           zero_point_dtype=F16, preserve_zero=False, zero_point_domain="FLOAT",
                                           layout=GemlitePackedLayout(group_size=32))
    assert aqt.layout == "GemlitePackedLayout" and aqt.impl.code_dtype() == "uint4"
    assert aqt.impl.packed_data().shape == (8, 32)


class _Net(nn.Module):
    # No ReLU: torch 1.13 has no float16 clamp on the CPU.
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(128, 256)
        self.down = nn.Linear(256, 128, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.up(x))


def _net(config, seed=0):
    torch.manual_seed(seed)
    m = _Net().half().eval()
    quantize_(m, config)
    return m


@pytest.mark.parametrize("bits,group_size", [(4, 64), (8, None)])
def test_save_load_state_dict_and_torchscript(bits, group_size, tmp_path):
    config = GemliteUIntXWeightOnlyConfig(group_size=group_size, bit_width=bits)
    m = _net(config)
    x = torch.randn(2, 3, 128).to(F16)
    state_dict_round_trip(m, _net(config, seed=1), x)
    assert torch.equal(copy.deepcopy(m)(x), m(x))
    ts = scripted_matches_eager(m, x, tmp_path)
    assert "torchao_cpp::affine_quantized_linear" in str(ts.up.graph)
