"""2:4 semi-structured sparsity: Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())."""
import io
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torchao_cpp  # noqa: F401
from torchao_cpp.dtypes import SemiSparseLayout
from torchao_cpp.quantization import Int8DynamicActivationInt8WeightConfig, MappingType, quantize_


def reference_prune(w: torch.Tensor) -> torch.Tensor:
    """The seed's pre_process (argsort of |w| per group of 4, 2 smallest zeroed), with a stable sort."""
    g = w.detach().clone().reshape(-1, 4)
    idx = torch.sort(g.abs(), dim=1, stable=True).indices[:, :2]
    return g.scatter(1, idx, 0.0).reshape(w.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_prune_matches_argsort_reference(dtype):
    torch.manual_seed(0)
    w = torch.randn(37, 68).to(dtype)
    got = torch.ops.torchao_cpp.prune_2to4(w)
    assert got.dtype == dtype and got.shape == w.shape
    assert torch.equal(got, reference_prune(w))
    assert int((got.view(-1, 4) != 0).sum(1).max()) == 2
    assert torch.equal(w, w.clone())  # input untouched


def test_prune_rejects_bad_input():
    with pytest.raises(ValueError, match="last dim must be a multiple of 4"):
        torch.ops.torchao_cpp.prune_2to4(torch.randn(3, 6))
    with pytest.raises(TypeError, match="weight"):
        torch.ops.torchao_cpp.prune_2to4(torch.ones(4, 4, dtype=torch.int32))
    assert torch.ops.torchao_cpp.prune_2to4(torch.randn(2, 8, device="meta")).shape == (2, 8)


def test_cusparselt_form_is_cuda_only():
    # The sparse tensor cores' form (cuSPARSELt) exists on CUDA only; the CPU reads its own compressed rows.
    codes = torch.zeros(8, 16, dtype=torch.int8)
    with pytest.raises(NotImplementedError, match="CUDA only.*move them to a CUDA device"):
        torch.ops.torchao_cpp.sparse24_cusparselt_compress(codes)
    with pytest.raises(NotImplementedError, match="sparse24_linear: runs on CUDA only"):
        torch.ops.torchao_cpp.sparse24_linear(torch.randn(2, 16), torch.zeros(8, dtype=torch.uint8), 8, 16)
    lin = nn.Linear(64, 32)
    quantize_(lin, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))
    assert lin.weight.original_weight_tensor.impl.cusparselt_codes() is None


def _pair(N, K, act, bias=True, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    base = nn.Linear(K, N, bias=bias).to(dtype)
    dense, sparse = nn.Sequential(nn.Linear(K, N, bias=bias)).to(dtype), nn.Sequential(nn.Linear(K, N, bias=bias)).to(dtype)
    with torch.no_grad():
        dense[0].weight.copy_(reference_prune(base.weight))
        sparse[0].weight.copy_(base.weight)
        if bias:
            dense[0].bias.copy_(base.bias)
            sparse[0].bias.copy_(base.bias)
    quantize_(dense, Int8DynamicActivationInt8WeightConfig(act_mapping_type=act))
    quantize_(sparse, Int8DynamicActivationInt8WeightConfig(act_mapping_type=act, layout=SemiSparseLayout()))
    return dense, sparse


@pytest.mark.parametrize("act", [MappingType.SYMMETRIC, MappingType.ASYMMETRIC])
@pytest.mark.parametrize("N,K", [(1, 20), (33, 68), (130, 1000), (64, 256)])
@pytest.mark.parametrize("M", [1, 3, 17])
def test_sparse_linear_equals_dense_linear_on_pruned_weight(act, N, K, M):
    dense, sparse = _pair(N, K, act)
    w = sparse[0].weight
    assert w.impl.weight().layout() == "SemiSparseLayout" and w.shape == (N, K)
    assert torch.equal(w.dequantize(), dense[0].weight.dequantize())
    x = torch.randn(2, M, K)
    with torch.no_grad():
        assert torch.equal(sparse(x), dense(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sparse_linear_half_dtypes(dtype):
    dense, sparse = _pair(48, 128, MappingType.SYMMETRIC, dtype=dtype)
    x = torch.randn(5, 128).to(dtype)
    with torch.no_grad():
        y = sparse(x)
        assert y.dtype == dtype and torch.equal(y, dense(x))


def test_storage_is_five_bits_per_weight():
    _, sparse = _pair(64, 4096, MappingType.SYMMETRIC, bias=False)
    impl = sparse[0].weight.impl.weight()
    codes = impl.packed_data()
    assert codes.dtype == torch.uint8 and codes.shape == (64, 4096 // 2 + 4096 // 8)
    assert impl.nbytes() == 64 * (2048 + 512) + 64 * 4  # codes + float32 scales
    plain = impl.get_plain()[0]
    assert plain.dtype == torch.int8 and int((plain.view(-1, 4) != 0).sum(1).max()) <= 2


def test_round_trips_through_torch_save_and_state_dict():
    _, sparse = _pair(40, 96, MappingType.ASYMMETRIC)
    buf = io.BytesIO()
    torch.save(sparse, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)  # a whole module (torch >= 2.6 defaults to weights_only)
    x = torch.randn(3, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), sparse(x))
    _, other = _pair(40, 96, MappingType.ASYMMETRIC, seed=1)
    other.load_state_dict(sparse.state_dict())
    with torch.no_grad():
        assert torch.equal(other(x), sparse(x))


def test_runs_in_torchscript():
    _, sparse = _pair(24, 64, MappingType.SYMMETRIC)
    w = sparse[0].weight

    @torch.jit.script
    def f(x: torch.Tensor, w: torch.classes.torchao_cpp.LinearActivationQuantizedTensor,
          b: torch.Tensor) -> torch.Tensor:
        return w.linear(x, b)

    x = torch.randn(4, 64)
    with torch.no_grad():
        assert torch.equal(f(x, w.impl, sparse[0].bias.detach()), sparse[0](x))


def test_in_features_not_multiple_of_4_is_skipped_and_logged(caplog):
    m = nn.Sequential(nn.Linear(66, 8), nn.Linear(8, 8))
    with caplog.at_level(logging.INFO):
        quantize_(m, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()), filter_fn=lambda mod, fqn: fqn == "0")
    assert type(m[0].weight) is nn.Parameter
    assert "in_features a multiple of 4" in caplog.text


def test_codes_that_are_not_2_to_4_are_refused():
    codes = torch.tensor([[1, 2, 3, 0, 0, 0, 0, 0]], dtype=torch.int8)
    with pytest.raises(ValueError, match="needs 2:4 sparse codes"):
        torch.classes.torchao_cpp.AffineQuantizedTensor(codes, torch.ones(1), None, [1, 8], -128, 127, "NONE",
                                                        "SemiSparseLayout", "int8", "float32")
    with pytest.raises(ValueError, match="zero_point_domain NONE"):
        torch.classes.torchao_cpp.AffineQuantizedTensor(torch.zeros(1, 8, dtype=torch.int8), torch.ones(1),
                                                        torch.zeros(1), [1, 8], -128, 127, "INT", "SemiSparseLayout",
                                                        "int8", "float32")
    with pytest.raises(ValueError, match=r"per-channel codes \(block_size \[1, in_features\]\)"):
        torch.classes.torchao_cpp.AffineQuantizedTensor(torch.zeros(1, 8, dtype=torch.int8), torch.ones(2), None,
                                                        [1, 4], -128, 127, "NONE", "SemiSparseLayout", "int8",
                                                        "float32")


def test_noop_decode_and_weight_only_paths_match_dense():
    cfg = dict(weight_only_decode=True)
    torch.manual_seed(3)
    base = nn.Linear(64, 16)
    dense, sparse = nn.Sequential(nn.Linear(64, 16)), nn.Sequential(nn.Linear(64, 16))
    with torch.no_grad():
        dense[0].weight.copy_(reference_prune(base.weight))
        sparse[0].weight.copy_(base.weight)
        dense[0].bias.copy_(base.bias)
        sparse[0].bias.copy_(base.bias)
    quantize_(dense, Int8DynamicActivationInt8WeightConfig(**cfg))
    quantize_(sparse, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout(), **cfg))
    with torch.no_grad():
        x = torch.randn(1, 6, 64)  # prefill: the int8 x int8 GEMMs, bit-equal
        assert torch.equal(sparse(x), dense(x))
        # Decode steps stay float: the 2:4 weight-only kernel reads the kept codes only and folds each
        # row's scale into them, so its float32 sums round differently from the dense kernel's.
        x = torch.randn(1, 1, 64)
        w = sparse[0].weight.dequantize().double()
        ref = F.linear(x.double(), w, sparse[0].bias.double())
        mag = x.double().abs() @ w.abs().t()
        for y in (sparse(x), dense(x)):
            assert ((y.double() - ref).abs() <= 1e-6 * mag + 1e-7).all()
