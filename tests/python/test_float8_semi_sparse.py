"""Float8DynamicActivationFloat8SemiSparseWeightConfig: 2:4 pruned float8 weights
(CutlassSemiSparseLayout, stored compressed) x float8 per-token activations. Serialization and
TorchScript run over it in test_serialization.py / test_torchscript.py (CONFIGS)."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import sqnr
from test_float8_activation import ULP, _linear, reference
from test_semi_sparse import reference_prune
from torchao_cpp.dtypes import CutlassSemiSparseLayout, LinearActivationQuantizedTensor, SemiSparseLayout, float8_e4m3fn, float8_e5m2
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    PerRow,
    quantize_,
)
from torchao_cpp.quantization import quant_primitives as qp

Config = Float8DynamicActivationFloat8SemiSparseWeightConfig
AQT = torch.classes.torchao_cpp.AffineQuantizedTensor


def _weights(N, K, dtype, seed):
    torch.manual_seed(seed)
    w = (torch.randn(N, K) * torch.linspace(0.2, 3, K)).to(dtype)
    return w, torch.randn(N).to(dtype)


def test_config_defaults_are_the_seeds():
    cfg = Config()
    assert cfg.layout == CutlassSemiSparseLayout()
    assert cfg.activation_dtype is float8_e5m2 and cfg.weight_dtype is float8_e4m3fn


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("w_fmt", [float8_e4m3fn, float8_e5m2])
def test_codes_are_the_pruned_weights_float8_codes(dtype, w_fmt):
    w, bias = _weights(40, 136, dtype, 1)
    m = _linear(w, bias)
    quantize_(m, Config(weight_dtype=w_fmt))
    t = m[0].weight
    assert isinstance(t, LinearActivationQuantizedTensor)
    impl = t.impl.weight()
    assert impl.layout() == "CutlassSemiSparseLayout" and impl.block_size() == [1, 136]
    assert t.impl.act_quant() == "float8_e5m2_per_row"
    # The seed: mask_creator's pruning, then one float32 scale per row (choose_qparams_affine_float8).
    pruned = reference_prune(w)
    scale = qp.choose_qparams_affine_float8(pruned, w_fmt, [1, 136], torch.float32)
    codes = qp.quantize_affine_float8(pruned, scale, w_fmt, [1, 136])
    plain, s, zp = impl.get_plain()
    assert zp is None and torch.equal(s, scale.reshape(s.shape)) and torch.equal(plain, codes)
    assert int((plain.view(-1, 4) != 0).sum(1).max()) <= 2
    # Compressed: 2 of 4 codes plus 2-bit indices, 5 bits per weight.
    assert impl.packed_data().shape == (40, 136 // 2 + 136 // 8)
    assert impl.nbytes() == 40 * (68 + 17) + 40 * 4


@pytest.mark.parametrize("M", [1, 3, 17])
@pytest.mark.parametrize("N,K", [(1, 20), (33, 68), (130, 1000), (48, 256)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear_matches_the_exact_reference(M, N, K, dtype):
    w, bias = _weights(N, K, dtype, M * 7 + N + K)
    x = (torch.randn(2, M, K) * torch.linspace(3, 0.1, K)).to(dtype)
    m = _linear(w, bias)
    quantize_(m, Config())
    with torch.no_grad():
        y = m(x)
    assert y.dtype == dtype and y.shape == (2, M, N)
    # _scaled_mm's math on the pruned weight: exact float8 products summed in float32, scales, bias.
    ref = reference(x, reference_prune(w), bias, float8_e5m2, float8_e4m3fn, True, True)
    err = (y.double() - ref).abs()
    tol = ref.abs() * ULP[dtype] + 1e-5 * ref.abs().max()
    assert (err <= tol).all(), f"max error {err.max().item()} (worst excess {(err - tol).max().item()})"
    # Against the dense float model: pruning half the weights costs most of the SQNR.
    pruned_exact = F.linear(x.double(), reference_prune(w).double(), bias.double())
    assert sqnr(pruned_exact, y) > 16


def test_bfloat16_output_equals_the_dense_float8_config_on_the_pruned_weight():
    w, bias = _weights(64, 208, torch.bfloat16, 5)
    dense, sparse = _linear(reference_prune(w), bias), _linear(w, bias)
    quantize_(dense, Float8DynamicActivationFloat8WeightConfig(activation_dtype=float8_e5m2, granularity=PerRow()))
    quantize_(sparse, Config())
    assert torch.equal(sparse[0].weight.dequantize(), dense[0].weight.dequantize())
    x = torch.randn(9, 208).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(sparse(x), dense(x))


def test_in_features_not_multiple_of_4_is_skipped_and_logged(caplog):
    m = nn.Sequential(nn.Linear(66, 8), nn.Linear(8, 8))
    with caplog.at_level(logging.INFO):
        quantize_(m, Config(), filter_fn=lambda mod, fqn: fqn == "0")
    assert type(m[0].weight) is nn.Parameter
    assert "Skipping Float8DynamicActivationFloat8SemiSparseWeightConfig for 0" in caplog.text
    assert "in_features a multiple of 4" in caplog.text


def test_other_layouts_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="only CutlassSemiSparseLayout layout is supported, received "
                                                  "SemiSparseLayout"):
        Config(layout=SemiSparseLayout())
    with pytest.raises(ValueError, match="activation_dtype must be one of"):
        Config(activation_dtype=torch.float32)


def _aqt(codes, layout="CutlassSemiSparseLayout", code_dtype="float8_e4m3fn", scale=None, block=None):
    N, K = codes.shape
    return AQT(codes, torch.ones(N) if scale is None else scale, None, block or [1, K], -448, 448, "NONE", layout,
               code_dtype, "float32")


def test_bad_codes_are_refused():
    with pytest.raises(ValueError, match="needs 2:4 sparse codes"):
        _aqt(torch.tensor([[0x38, 0x40, 0x01, 0, 0, 0, 0, 0]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="float8 codes contain NaN or Inf"):
        _aqt(torch.tensor([[0x7F, 0, 0, 0x38, 0, 0, 0, 0]], dtype=torch.uint8))
    with pytest.raises(TypeError, match="codes for code_dtype int8 must be"):
        _aqt(torch.zeros(1, 8, dtype=torch.uint8), code_dtype="int8")
    with pytest.raises(ValueError, match="CutlassSemiSparseLayout needs a float8 code_dtype"):
        _aqt(torch.zeros(1, 8, dtype=torch.int8), code_dtype="int8")
    with pytest.raises(ValueError, match=r"per-channel codes \(block_size \[1, in_features\]\)"):
        _aqt(torch.zeros(1, 8, dtype=torch.uint8), scale=torch.ones(2), block=[1, 4])
    # A state whose metadata was tampered with: kept columns not increasing.
    state = list(_aqt(torch.tensor([[0x38, 0, 0x40, 0]], dtype=torch.uint8)).__getstate__()[0])
    state[1] = state[1].clone()
    state[1][0, 2] = 0x5  # columns 1 and 1
    obj = torch.ScriptObject.__new__(torch.ScriptObject)
    with pytest.raises(ValueError, match="metadata of row 0 is invalid"):
        obj.__setstate__((tuple(state), "__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor"))


@pytest.mark.parametrize("layout_case", ["float8", "int8"])
@pytest.mark.parametrize("M", [1, 8, 9])
def test_weight_only_linear_over_2_4_codes_matches_the_dequantized_weight(layout_case, M):
    """The bare weight's linear (float activations): the kept codes only for up to 8 rows, dense above."""
    w, bias = _weights(40, 200, torch.float32, M)
    m = _linear(w, bias)
    cfg = Config() if layout_case == "float8" else Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())
    quantize_(m, cfg)
    aqt = m[0].weight.impl.weight()
    x = torch.randn(M, 200)
    wd = aqt.dequantize().double()
    ref = F.linear(x.double(), wd, bias.double())
    with torch.no_grad():
        y = aqt.linear(x, bias)
    assert y.dtype == torch.float32 and y.shape == (M, 40)
    assert ((y.double() - ref).abs() <= 1e-6 * (x.double().abs() @ wd.abs().t()) + 1e-7).all()


@pytest.mark.parametrize("N,K", [(24, 200), (16, 64), (5, 4)])
def test_sparse_tensor_core_form_holds_every_kept_code(N, K):
    # sparse24_float8_mma_pack: the compressed rows as mma.sp m16n8k64's operands (5 bits per weight, 16-row
    # tiles, 64-column blocks), which the CUDA kernel reads; on the CPU the op only builds it. Each (row,
    # 4-column group) of the form is found through the documented layout (csrc/kernels/cpu/sparse24.h) and
    # must hold the weight's kept bytes.
    w, bias = _weights(N, K, torch.bfloat16, N + K)
    m = _linear(w, bias)
    quantize_(m, Config())
    impl = m[0].weight.impl.weight()
    values, meta = torch.ops.torchao_cpp.sparse24_float8_mma_pack(impl.packed_data(), N, K)
    tiles, blocks = (N + 15) // 16, (K + 63) // 64
    assert values.dtype == torch.int32 and values.shape == (tiles * blocks * 128,)
    assert meta.dtype == torch.int32 and meta.shape == (tiles * blocks * 32,)
    # 5 bits per weight at whole tiles and blocks.
    assert (values.numel() + meta.numel()) * 32 == 5 * (tiles * 16) * (blocks * 64)
    codes = impl.get_plain()[0]  # (N, K) float8 bytes, 2:4
    v = values.view(torch.uint8).view(tiles, blocks, 32, 16)
    e = meta.view(tiles, blocks, 32).to(torch.int64) & 0xFFFFFFFF
    for n in range(N):
        t, r = divmod(n, 16)
        g, upper_rows = r % 8, r // 8
        for grp in range(K // 4):
            b, j = divmod(grp, 16)
            q, upper_groups = (j % 8) // 2, j // 8
            reg = upper_rows + 2 * upper_groups
            byte = 4 * reg + 2 * (j % 2)
            nib = int(e[t, b, 4 * g + reg]) >> (4 * (j % 8))
            dense = [0, 0, 0, 0]
            dense[nib & 3] = int(v[t, b, 4 * g + q, byte])
            dense[(nib >> 2) & 3] = int(v[t, b, 4 * g + q, byte + 1])
            assert (nib & 3) < ((nib >> 2) & 3)
            assert dense == codes[n, 4 * grp:4 * grp + 4].tolist(), (n, grp)


def test_sparse_tensor_core_float8_ops_refuse_bad_input():
    ops = torch.ops.torchao_cpp
    rows = torch.zeros(16, 40, dtype=torch.uint8)  # K = 64: 32 codes + 8 metadata bytes
    with pytest.raises(ValueError, match="in_features a positive multiple of 4"):
        ops.sparse24_float8_mma_pack(rows, 16, 62)
    with pytest.raises(ValueError, match=r"rows must be the \(16, 40\) uint8"):
        ops.sparse24_float8_mma_pack(rows[:, 1:], 16, 64)
    with pytest.raises(ValueError, match="kept columns are not two increasing indices"):
        ops.sparse24_float8_mma_pack(rows, 16, 64)  # all-zero metadata: columns 0 and 0
    with pytest.raises(NotImplementedError, match="sparse24_float8_linear: runs on CUDA only"):
        ops.sparse24_float8_linear(torch.randn(1, 64), "float8_e5m2", "PerRow", None,
                                   torch.zeros(512, dtype=torch.int32), torch.zeros(128, dtype=torch.int32), 16, 64,
                                   "float8_e4m3fn", torch.ones(16))
