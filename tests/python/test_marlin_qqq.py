"""Int8DynamicActivationInt4WeightConfig(layout=MarlinQQQLayout()): the seed's QQQ weights
(choose_qparams_and_quantize_affine_qqq: groups of 128 or per channel, two-level scales) on this
project's int8 x int4 kernels. Codes and scales against reference.qqq (the seed's algorithm in torch
ops, itself checked against the seed's code written out literally for float32 weights)."""
import logging

import pytest
import torch
import torch.nn as nn

import reference as ref
from conftest import scripted_matches_eager, sqnr, state_dict_round_trip
from torchao_cpp.dtypes import MarlinQQQLayout
from torchao_cpp.quantization import Int8DynamicActivationInt4WeightConfig, MappingType, quantize_

ops = torch.ops.torchao_cpp
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _config(group=128, act=MappingType.SYMMETRIC):
    return Int8DynamicActivationInt4WeightConfig(group_size=group, layout=MarlinQQQLayout(), act_mapping_type=act)


def _linear(N, K, dtype, seed=0, bias=True):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(K, N, bias=bias)).to(dtype)
    with torch.no_grad():
        m[0].weight.mul_(1.0 + 6.0 * (torch.rand(N, K) < 0.003).to(dtype))  # a few outliers
    return m


def _seed_qqq_float32(w, group_size):
    """choose_qparams_and_quantize_affine_qqq for num_bits=4, as the seed writes it (float32 weights)."""
    size_n, size_k = w.shape
    if group_size < size_k:
        w = w.reshape((-1, group_size))
        s_group = torch.amax(torch.abs(w), -1, keepdim=True)
        s_group *= 2 / 15
        q_w = torch.round(w / s_group).int()
        q_w += 8
        q_w = torch.clamp(q_w, 0, 15)
        w_ref = (q_w - 8).half() * s_group
        q_w = q_w.reshape((size_n, size_k)).contiguous()
        w_ref = w_ref.reshape((size_n, size_k)).contiguous()
        s_channel = torch.amax(torch.abs(w_ref), -1, keepdim=True)
        s_channel /= 127.0
        s_channel = s_channel.reshape(-1, 1).to(dtype=torch.float)
        s_group = (s_group.reshape(size_n, -1).contiguous() / s_channel).to(dtype=torch.half)
    else:
        s_channel = torch.amax(torch.abs(w), -1, keepdim=True)
        s_channel /= 7
        q_w = torch.round(w / s_channel).int()
        q_w = torch.clamp(q_w, -7, 7)
        s_group = torch.tensor([], dtype=torch.half)
        s_channel /= 2 ** (8 - 4)
        s_channel = s_channel.reshape(size_n, -1).contiguous().to(torch.float)
    return q_w, s_group, s_channel


@pytest.mark.parametrize("group", [128, 512])
def test_reference_is_the_seeds_code(group):
    w = _linear(64, 512, torch.float32)[0].weight.detach()
    q, s_group, s_channel, _ = ref.qqq(w, group)
    sq, ss_group, ss_channel = _seed_qqq_float32(w.clone(), group)
    assert torch.equal(q, sq) and torch.equal(s_group, ss_group) and torch.equal(s_channel, ss_channel)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,K,group", [(128, 256, 128), (64, 384, 128), (256, 128, -1), (128, 256, None),
                                       (128, 256, 256)])
def test_codes_and_scales_are_the_seeds(dtype, N, K, group):
    m = _linear(N, K, dtype, seed=N + K)
    w = m[0].weight.detach().clone()
    quantize_(m, _config(group))
    aqt = m[0].weight.original_weight_tensor
    assert aqt.layout == "MarlinQQQLayout" and aqt.impl.packed_data().shape == (N, K // 2)  # 4 bits per weight
    codes, scale, zp = aqt.get_plain()
    g = K if group in (None, -1, K) else group
    q, s_group, s_channel, deq_scale = ref.qqq(w, g)
    assert zp is None and codes.dtype == torch.int8 and aqt.impl.block_size() == [1, g]
    if g < K:
        # stored signed: q - 8; the scale dequantize_affine_qqq uses, s_group * s_channel.half(), in float16
        assert torch.equal(codes.int(), q - 8) and scale.dtype == torch.float16
        assert torch.equal(scale.reshape(N, -1), deq_scale)
    else:
        assert torch.equal(codes.int(), q) and scale.dtype == torch.float32
        assert torch.equal(scale.reshape(N, 1), s_channel * 16)
    if dtype == torch.float16:  # dequantize() is dequantize_affine_qqq's
        if g < K:
            # float16 x float16, rounded to float16 (computed in float32: torch 1.13 lacks float16 CPU kernels)
            want = ((q - 8).float().reshape(-1, g) * deq_scale.reshape(-1, 1)).half().reshape(N, K)
        else:
            want = (q.float() * (s_channel * 16)).half()
        assert torch.equal(aqt.dequantize(), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group", [128, -1])
@pytest.mark.parametrize("act", [MappingType.SYMMETRIC, MappingType.ASYMMETRIC])
@pytest.mark.parametrize("M", [1, 7, 33])
def test_linear_is_the_quantized_activations_times_the_dequantized_weight(dtype, group, act, M):
    m = _linear(128, 256, dtype, seed=M)
    quantize_(m, _config(group, act))
    torch.manual_seed(M + 1)
    x = torch.randn(M, 256).to(dtype)
    y = m(x)
    assert y.dtype == dtype and y.shape == (M, 128)
    quant = ops.int8_symm_per_token_reduced_range_quant if act == MappingType.SYMMETRIC else ops.int8_asymm_per_token_quant
    a, a_s, a_z = quant(x)
    xd = (a.double() - a_z.double().reshape(-1, 1)) * a_s.double().reshape(-1, 1)
    w = m[0].weight.original_weight_tensor.dequantize().double()
    exact = xd @ w.t() + m[0].bias.double()
    assert sqnr(exact, y.double()) > (60 if dtype == torch.float32 else 40)


def test_zero_groups_and_rows_quantize_to_zero():
    m = _linear(128, 256, torch.float16)
    with torch.no_grad():
        m[0].weight[3].zero_()
        m[0].weight[5, 128:].zero_()
    w = m[0].weight.detach().clone()
    quantize_(m, _config(128))
    codes, scale, _ = m[0].weight.original_weight_tensor.get_plain()
    assert (codes[3] == 0).all() and (codes[5, 128:] == 0).all() and torch.isfinite(scale).all() and (scale > 0).all()
    q, _, _, deq_scale = ref.qqq(w, 128)
    live = torch.ones(128, 2, dtype=torch.bool)
    live[3] = False
    live[5, 1] = False
    assert torch.equal(codes.int().reshape(128, 2, 128)[live], (q - 8).reshape(128, 2, 128)[live])
    assert torch.equal(scale[live], deq_scale[live])
    y = m(torch.randn(2, 256).half())
    assert torch.isfinite(y).all() and torch.equal(y[:, 3], m[0].bias[3].expand(2))


def test_the_seeds_rules_are_kept(caplog):
    # group sizes choose_qparams_and_quantize_affine_qqq refuses: ValueError before any layer changes
    m = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 128))
    with pytest.raises(ValueError, match=r"MarlinQQQLayout takes group_size 128 or per channel .*got 64 for '0'"):
        quantize_(m, _config(64))
    assert type(m[0].weight) is nn.Parameter and type(m[1].weight) is nn.Parameter
    # shapes the seed's Marlin QQQ kernel does not tile
    m = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 96))
    with pytest.raises(ValueError, match=r"'1' has in_features 128 and out_features 96"):
        quantize_(m, _config(-1))
    assert type(m[0].weight) is nn.Parameter
    # in_features not a multiple of the group: skipped and logged (the seed's 8da4w rule)
    m = nn.Sequential(nn.Linear(192, 128))
    with caplog.at_level(logging.INFO):
        quantize_(m, _config(128))
    assert type(m[0].weight) is nn.Parameter and "Skipping Int8DynamicActivationInt4WeightConfig" in caplog.text
    with pytest.raises(ValueError, match=r"group_size must be >= 1, -1 or None, got -2"):
        Int8DynamicActivationInt4WeightConfig(group_size=-2, layout=MarlinQQQLayout())
    assert "layout=MarlinQQQLayout()" in repr(_quantized_block()[0].up)


def test_plain_8da4w_takes_a_per_channel_group_size_too():
    # The seed's transform maps group_size None / -1 to in_features for every layout.
    a = _linear(64, 128, torch.float32)
    b = _linear(64, 128, torch.float32)
    quantize_(a, Int8DynamicActivationInt4WeightConfig(group_size=-1))
    quantize_(b, Int8DynamicActivationInt4WeightConfig(group_size=128))
    assert a[0].weight.original_weight_tensor.impl.block_size() == [1, 128]
    assert torch.equal(a[0].weight.original_weight_tensor.get_plain()[0], b[0].weight.original_weight_tensor.get_plain()[0])


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(256, 256)
        self.down = nn.Linear(256, 128, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


def _quantized_block(seed=0, group=128):
    torch.manual_seed(seed)
    m = _Block().eval()
    quantize_(m, _config(group))
    return m, seed


@pytest.mark.parametrize("group", [128, -1])
def test_save_load_state_dict_and_torchscript(group, tmp_path):
    m, _ = _quantized_block(0, group)
    x = torch.randn(2, 3, 256)
    state_dict_round_trip(m, _quantized_block(1, group)[0], x)
    ts = scripted_matches_eager(m, x, tmp_path)
    assert "torchao_cpp::activation_quantized_linear" in str(ts.up.graph)
