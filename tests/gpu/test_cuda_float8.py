"""float8 x float8 linears on CUDA (FP8 tensor cores through cuBLASLt) against
the CPU kernels on the same quantized weights. Run on the GPU machine."""
import copy

import pytest
import torch
import torch.nn as nn

from cuda_graphs import capture
from torchao_cpp.dtypes import float8_e4m3fn, float8_e5m2
from torchao_cpp.float8 import Float8MMConfig
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    PerRow,
    quantize_,
)

assert torch.cuda.is_available(), "tests/gpu needs a CUDA device"

EXACT = Float8MMConfig(use_fast_accum=False)
CONFIGS = {
    "tensor": lambda: Float8DynamicActivationFloat8WeightConfig(mm_config=EXACT),
    "tensor_fast": lambda: Float8DynamicActivationFloat8WeightConfig(),
    "row": lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), mm_config=EXACT),
    "row_fast": lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
    "act_e5m2": lambda: Float8DynamicActivationFloat8WeightConfig(activation_dtype=float8_e5m2, mm_config=EXACT),
    "w_e5m2": lambda: Float8DynamicActivationFloat8WeightConfig(weight_dtype=float8_e5m2, mm_config=EXACT),
    # cuBLASLt has no e5m2 x e5m2 GEMM: the exact float32 fallback.
    "both_e5m2": lambda: Float8DynamicActivationFloat8WeightConfig(activation_dtype=float8_e5m2,
                                                                   weight_dtype=float8_e5m2, mm_config=EXACT),
    "static": lambda: Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.01), mm_config=EXACT),
    # 2:4 float8 (e5m2 per-token activations, e4m3fn per-row weights): on the sparse tensor cores (mma.sp)
    # up to 16 rows, above the codes expanded per call and the dense GEMM; and the other pairs of formats.
    "sparse24": lambda: Float8DynamicActivationFloat8SemiSparseWeightConfig(),
    "sparse24_e4m3": lambda: Float8DynamicActivationFloat8SemiSparseWeightConfig(activation_dtype=float8_e4m3fn),
    "sparse24_e5m2": lambda: Float8DynamicActivationFloat8SemiSparseWeightConfig(weight_dtype=float8_e5m2),
}
CFG_DTYPES = [(c, d) for c in CONFIGS for d in (torch.bfloat16, torch.float16, torch.float32)
              if not (c.startswith("row") and d != torch.bfloat16)]


def sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    ref, x = ref.double(), x.double()
    return float(10 * torch.log10(ref.pow(2).mean() / (ref - x).pow(2).mean().clamp_min(1e-30)))


def _pair(cfg, dtype, k=512, n=384, bias=True, seed=0):
    torch.manual_seed(seed)
    cpu = nn.Linear(k, n, bias=bias).to(dtype)
    cpu.float_weight = cpu.weight.detach().float().clone()
    quantize_(cpu, CONFIGS[cfg]())
    gpu = copy.deepcopy(cpu)
    gpu.weight = nn.Parameter(gpu.weight.to("cuda"), requires_grad=False)
    if bias:
        gpu.bias = nn.Parameter(gpu.bias.cuda())
    return cpu, gpu


ULP = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11, torch.float32: 2.0 ** -23}
# Hopper's FP8 tensor cores keep fewer bits than float32 in their running sums even without fast
# accumulation: measured on an H200, |error| <= 6.3e-5 * sum_k |x_k w_k| for K = 512 (float32 output).
FP8_ACC = 2e-4


def tolerance(cpu: nn.Module, x: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One rounding of the output either side, plus the tensor cores' accumulation error."""
    mag = (x.double().abs() @ cpu.float_weight.double().abs().t())
    return 2 * ULP[dtype] * ref.abs() + FP8_ACC * mag


@pytest.mark.parametrize("cfg,dtype", CFG_DTYPES)
@pytest.mark.parametrize("shape", [(1, 512), (3, 512), (2, 7, 512), (16, 512), (33, 512), (300, 512)])
@pytest.mark.parametrize("bias", [True, False])
def test_cuda_matches_cpu(cfg, dtype, shape, bias):
    cpu, gpu = _pair(cfg, dtype, bias=bias)
    torch.manual_seed(1)
    x = torch.randn(*shape).to(dtype)
    with torch.no_grad():
        ref = cpu(x).double()
        got = gpu(x.cuda())
    assert got.dtype == dtype and got.shape == ref.shape
    got = got.cpu().double()
    # Same activation codes and scales on both devices (the same per-element functions); the float32 sums
    # differ in order, and fast accumulation keeps fewer bits.
    if cfg.endswith("_fast"):
        assert sqnr(ref, got) > 45
    else:
        excess = (got - ref).abs() - tolerance(cpu, x, ref, dtype)
        assert (excess <= 0).all(), excess.max().item()


def test_non_contiguous_inputs():
    cpu, gpu = _pair("row", torch.bfloat16)
    x = torch.randn(6, 1024, dtype=torch.bfloat16)
    with torch.no_grad():
        for xs in (x[:, ::2], x[::2, :512], x.view(6, 2, 512).transpose(0, 1)):
            ref = cpu(xs.contiguous()).double()
            got = gpu(xs.cuda()).cpu().double()
            assert ((got - ref).abs() <= tolerance(cpu, xs, ref, torch.bfloat16)).all()


def test_zero_and_nan_inputs():
    _, gpu = _pair("row", torch.bfloat16)
    x = torch.randn(4, 512, dtype=torch.bfloat16, device="cuda")
    x[1] = 0
    x[2, 5] = float("nan")
    with torch.no_grad():
        y = gpu(x)
    assert torch.equal(y[1], gpu.bias.detach())
    assert torch.isnan(y[2]).all() and torch.isfinite(y[0]).all() and torch.isfinite(y[3]).all()


@pytest.mark.parametrize("cfg", ["tensor_fast", "row_fast", "static", "sparse24"])
def test_cuda_graph_capture_replays_eager_result(cfg):
    _, gpu = _pair(cfg, torch.bfloat16)
    x = torch.randn(5, 512, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        g, out = capture(lambda: gpu(x))
        x.copy_(torch.randn_like(x) * 3)
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, gpu(x))


def test_op_on_cuda_checks_devices():
    _, gpu = _pair("tensor", torch.bfloat16)
    la = gpu.weight
    w = la.original_weight_tensor.impl
    with pytest.raises(ValueError, match="weight_scale is on cpu"):
        torch.ops.torchao_cpp.float8_linear(torch.randn(2, 512, dtype=torch.bfloat16, device="cuda"), "float8_e4m3fn",
                                            "PerTensor", None, w.packed_data(), "float8_e4m3fn", w.scale().cpu())
