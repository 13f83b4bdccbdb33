"""Int4WeightOnlyConfig(layout=MarlinSparseLayout()): the seed's 2:4 sparse int4 (symmetric codes
around the INT zero point 8, group 128 or per channel), stored with 4-bit kept codes (3 bits per weight).
Serialization and TorchScript run over it in test_serialization.py / test_torchscript.py (CONFIGS)."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import reference as ref
from test_semi_sparse import reference_prune
from torchao_cpp.dtypes import AffineQuantizedTensor, MarlinSparseLayout
from torchao_cpp.quantization import Int4WeightOnlyConfig, ZeroPointDomain, quantize_

AQT = torch.classes.torchao_cpp.AffineQuantizedTensor


def _linear(N, K, dtype, seed, bias=True):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(K, N, bias=bias)).to(dtype)
    return m


def _config(group=128):
    return Int4WeightOnlyConfig(group_size=group, layout=MarlinSparseLayout())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("K,group", [(256, 128), (128, 128), (64, 64)])
def test_codes_are_the_seeds_symmetric_codes_of_the_pruned_weight(dtype, K, group):
    m = _linear(24, K, dtype, 0)
    w = m[0].weight.detach().clone()
    quantize_(m, _config(group))
    t = m[0].weight
    assert isinstance(t, AffineQuantizedTensor)
    impl = t.impl
    assert impl.layout() == "MarlinSparseLayout" and impl.zero_point_domain() == "INT"
    pruned = reference_prune(w)
    scale, zp = ref.choose_qparams(pruned, "SYMMETRIC", [1, group], 0, 15, eps=1e-6, zp_dtype=torch.bfloat16)
    codes = ref.quantize(pruned, [1, group], scale, zp, torch.uint8, 0, 15)
    plain, s, z = impl.get_plain()
    assert torch.equal(plain, codes)
    assert torch.equal(s.reshape(scale.shape), scale) and s.dtype == dtype
    assert z.dtype == torch.bfloat16 and bool((z == 8).all())
    assert int(((plain.view(-1, 4).to(torch.int16) - 8) != 0).sum(1).max()) <= 2
    # 3 bits per weight: per 64 columns, 16 code bytes and 8 index bytes.
    assert impl.packed_data().shape == (24, K // 64 * 24)


@pytest.mark.parametrize("M", [1, 3, 8, 9, 33])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("N,K,group", [(40, 256, 128), (7, 128, 128), (33, 64, 64)])
def test_linear_matches_the_dequantized_weight(M, dtype, N, K, group):
    m = _linear(N, K, dtype, M + N)
    quantize_(m, _config(group))
    x = torch.randn(2, M, K).to(dtype)
    with torch.no_grad():
        y = m(x)
    assert y.dtype == dtype and y.shape == (2, M, N)
    # The kernels dequantize in float32 ((code - 8) * scale, exact), not in the weight's dtype.
    codes, scale, _ = m[0].weight.impl.get_plain()
    wd = ((codes.double() - 8).view(N, K // group, group) * scale.double().view(N, -1, 1)).view(N, K)
    exact = F.linear(x.double(), wd, m[0].bias.double())
    mag = x.double().abs() @ wd.abs().t()
    ulp = {torch.float32: 2.0 ** -22, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -10}[dtype]
    err = (y.double() - exact).abs()
    assert (err <= exact.abs() * ulp + 1e-5 * mag + 1e-6).all(), err.max().item()


def test_the_seeds_rules_are_kept(caplog):
    # Group size: 128 or per channel only (the seed's assertion, a ValueError here, before any layer changes).
    m = nn.Sequential(nn.Linear(512, 8), nn.Linear(512, 8))
    with pytest.raises(ValueError, match="MarlinSparseLayout only supports 128 group size or per channel"):
        quantize_(m, _config(64))
    assert type(m[0].weight) is nn.Parameter and type(m[1].weight) is nn.Parameter
    with pytest.raises(NotImplementedError, match="zero_point_domain=FLOAT is not supported by MarlinSparseLayout"):
        Int4WeightOnlyConfig(layout=MarlinSparseLayout(), zero_point_domain=ZeroPointDomain.FLOAT)
    with pytest.raises(NotImplementedError, match="use_hqq=True is not supported with MarlinSparseLayout"):
        Int4WeightOnlyConfig(layout=MarlinSparseLayout(), use_hqq=True)
    cfg = Int4WeightOnlyConfig(layout=MarlinSparseLayout(), zero_point_domain=ZeroPointDomain.INT)
    m = nn.Sequential(nn.Linear(130, 8))  # in_features not a multiple of the group: skipped and logged
    with caplog.at_level(logging.INFO):
        quantize_(m, cfg)
    assert type(m[0].weight) is nn.Parameter and "Skipping Int4WeightOnlyConfig" in caplog.text


def test_bad_codes_are_refused():
    def make(codes, zp=8.0, qmax=15, domain="INT", scale=None):
        N, K = codes.shape
        z = None if zp is None else torch.full((N * K // 64,), zp)
        return AQT(codes, torch.ones(N * K // 64) if scale is None else scale, z, [1, 64], 0, qmax, domain,
                   "MarlinSparseLayout", "uint4", "float32")
    ok = torch.full((2, 64), 8, dtype=torch.uint8)
    ok[:, 1], ok[:, 2] = 3, 15
    assert torch.equal(make(ok).get_plain()[0], ok)
    bad = ok.clone()
    bad[0, 0] = 9  # a third nonzero value (9 - 8) in group 0
    with pytest.raises(ValueError, match="needs 2:4 sparse codes"):
        make(bad)
    with pytest.raises(ValueError, match="with zero point 8"):
        make(ok, zp=7.0)
    with pytest.raises(ValueError, match="zero_point_domain NONE takes no zero_point|with zero point 8"):
        make(ok, zp=None, domain="NONE")
    st = list(make(ok).__getstate__()[0])
    st[1] = st[1].clone()
    st[1][0, 16] = 0x5  # the first group's kept columns: 1 and 1
    obj = torch.ScriptObject.__new__(torch.ScriptObject)
    with pytest.raises(ValueError, match="metadata of row 0 is invalid"):
        obj.__setstate__((tuple(st), "__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor"))


def test_sparse_tensor_core_form_holds_every_kept_code():
    # sparse24_int4_mma_pack: the compressed rows as mma.sp's operands (3 bits per weight, 16-row tiles), which
    # the CUDA kernel reads; on the CPU the op only builds it. Each (row, 4-column group) of the form is found
    # through the documented layout (csrc/kernels/cpu/sparse24.h) and must hold the weight's kept codes.
    N, K = 24, 256
    m = _linear(N, K, torch.bfloat16, 5)
    quantize_(m, _config(128))
    impl = m[0].weight.impl
    values, meta = torch.ops.torchao_cpp.sparse24_int4_mma_pack(impl.packed_data(), N, K)
    tiles = (N + 15) // 16
    assert values.dtype == torch.int32 and values.shape == (tiles * K,) and meta.shape == (tiles * K // 2,)
    codes = impl.get_plain()[0].to(torch.int16) - 8  # (N, K) in [-8, 7], 2:4
    v = values.view(tiles, K // 128, 32, 4).to(torch.int64) & 0xFFFFFFFF
    e = meta.view(tiles, K // 128, 16, 4).to(torch.int64) & 0xFFFFFFFF
    for n in range(N):
        t, r = divmod(n, 16)
        g, upper = r % 8, r // 8
        for grp in range(K // 4):
            b, j = divmod(grp, 8)
            word = int(v[t, b // 4, 4 * g + j % 4, b % 4])
            reg = upper + 2 * (j // 4)
            nib = int(e[t, b // 4, 2 * g + j // 4, b % 4]) >> (16 * upper + 4 * (j % 4))
            dense = [0, 0, 0, 0]
            dense[nib & 3] = ((word >> (4 * reg)) & 15) - 8
            dense[(nib >> 2) & 3] = ((word >> (4 * (reg + 4))) & 15) - 8
            assert (nib & 3) < ((nib >> 2) & 3)
            assert dense == codes[n, 4 * grp:4 * grp + 4].tolist(), (n, grp)


def test_sparse_tensor_core_ops_refuse_bad_input():
    ops = torch.ops.torchao_cpp
    rows = torch.zeros(16, 96, dtype=torch.uint8)  # K = 256: 4 chunks of 24 bytes
    with pytest.raises(ValueError, match="multiple of 128"):
        ops.sparse24_int4_mma_pack(rows, 16, 192)
    with pytest.raises(ValueError, match=r"rows must be the \(16, 96\) uint8"):
        ops.sparse24_int4_mma_pack(rows[:, 1:], 16, 256)
    with pytest.raises(ValueError, match="kept columns are not two increasing indices"):
        ops.sparse24_int4_mma_pack(rows, 16, 256)  # all-zero metadata: columns 0 and 0
    with pytest.raises(NotImplementedError, match="sparse24_int4_linear: runs on CUDA only"):
        ops.sparse24_int4_linear(torch.randn(1, 256), torch.zeros(4096, dtype=torch.int32),
                                 torch.zeros(2048, dtype=torch.int32), 16, 256, 128, torch.ones(16, 2))
