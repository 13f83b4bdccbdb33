"""CUDA dispatch-key tests: run on the GPU machine (scripts/gpu_test.sh), not
collected by CI's suite (tests/python), which has no GPU.

Every CUDA output is checked against the CPU kernels on the same quantized
weights (the CPU kernels are themselves checked against torchao's goldens).
"""
import copy
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cuda_graphs import capture, replays_in_graph
import torchao_cpp
from torchao_cpp.dtypes import AffineQuantizedTensor, Int4CPULayout, float8_e5m2, uint3
from torchao_cpp.quantization import (
    Float8WeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int8WeightOnlyConfig,
    UIntXWeightOnlyConfig,
    quantize_,
)

assert torch.cuda.is_available(), "tests/gpu needs a CUDA device"

DTYPES = [torch.bfloat16, torch.float16]
CONFIGS = {
    "int4_g32": lambda: Int4WeightOnlyConfig(group_size=32, layout=Int4CPULayout()),
    "int4_g128": lambda: Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()),
    "int4_g256": lambda: Int4WeightOnlyConfig(group_size=256, layout=Int4CPULayout()),
    "int8": lambda: Int8WeightOnlyConfig(),
    "int8_g64": lambda: Int8WeightOnlyConfig(group_size=64),
    "float8_e4m3": lambda: Float8WeightOnlyConfig(),
    "float8_e5m2": lambda: Float8WeightOnlyConfig(weight_dtype=float8_e5m2),
}


def sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    ref, x = ref.double(), x.double()
    return float(10 * torch.log10(ref.pow(2).mean() / (ref - x).pow(2).mean().clamp_min(1e-30)))


def _pair(cfg_name, dtype, k=512, n=384, bias=True, seed=0):
    torch.manual_seed(seed)
    cpu = nn.Linear(k, n, bias=bias).to(dtype)
    quantize_(cpu, CONFIGS[cfg_name]())
    gpu = copy.deepcopy(cpu)
    gpu.weight = nn.Parameter(gpu.weight.to("cuda"), requires_grad=False)
    if bias:
        gpu.bias = nn.Parameter(gpu.bias.cuda())
    return cpu, gpu


# Rows from which the CUDA op dequantizes the weight to the activation dtype
# and calls cuBLAS (csrc/ops/linear_cuda.cpp); below, the tensor-core kernel
# dequantizes in registers. Both round the weight to the activation dtype once.
GEMM_ROWS = 64


def _close(cpu_out, gpu_out, dtype, rounded_weight=True):
    # Both accumulate in float32 and round once to dtype: at most a couple of
    # ulps apart (a few more where the weight was rounded to dtype too).
    ref = cpu_out.float()
    got = gpu_out.cpu().float()
    tol = (2 ** -7 if dtype == torch.bfloat16 else 2 ** -10) * (4 if rounded_weight else 2)
    assert got.shape == ref.shape and gpu_out.dtype == dtype
    assert torch.allclose(got, ref, rtol=tol, atol=tol * ref.abs().max().item()), (got - ref).abs().max()
    assert sqnr(ref, got) > (40 if rounded_weight else 45)


# float8 e5m2 in float16: the per-row scale (amax / 57344) is below float16's
# range, which quantize_ refuses (tests/python covers that error).
CFG_DTYPES = [(c, d) for c in CONFIGS for d in DTYPES if not (c == "float8_e5m2" and d == torch.float16)]


@pytest.mark.parametrize("cfg,dtype", CFG_DTYPES)
@pytest.mark.parametrize("shape", [(1, 512), (3, 512), (2, 7, 512), (16, 512), (33, 512), (GEMM_ROWS + 1, 512)])
def test_cuda_matches_cpu(cfg, dtype, shape):
    cpu, gpu = _pair(cfg, dtype)
    assert gpu.weight.device.type == "cuda" and isinstance(gpu.weight, AffineQuantizedTensor)
    x = torch.randn(*shape, dtype=dtype)
    with torch.no_grad():
        _close(cpu(x), gpu(x.cuda()), dtype)


@pytest.mark.parametrize("cfg", ["int4_g128", "int8", "float8_e4m3"])
def test_kernel_and_cublas_paths_see_the_same_weight(cfg):
    # Rows below GEMM_ROWS run the register-dequantizing kernel, rows from
    # GEMM_ROWS dequantize + cuBLAS: both round the weight the same way, so
    # outputs differ only by float32 summation order, which almost never
    # changes the bfloat16 rounding (a different weight rounding would change
    # about half of them).
    _, gpu = _pair(cfg, torch.bfloat16)
    x = torch.randn(GEMM_ROWS, 512, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        small, large = gpu(x[:GEMM_ROWS - 1]).float(), gpu(x)[:GEMM_ROWS - 1].float()
    assert (small == large).float().mean().item() > 0.95 and sqnr(large, small) > 50


@pytest.mark.parametrize("cfg", ["int4_g128", "int8"])
def test_non_contiguous_and_unaligned_inputs(cfg):
    cpu, gpu = _pair(cfg, torch.bfloat16)
    base = torch.randn(6, 1030, dtype=torch.bfloat16)
    for x in (base[:, 3:515], base.t().contiguous().t()[:, :512], base[::2, :512]):
        with torch.no_grad():
            _close(cpu(x.contiguous()), gpu(x.cuda() if x.is_contiguous() else x.to("cuda")), torch.bfloat16)
    xt = torch.randn(512, 5, dtype=torch.bfloat16).t()  # transposed: last dim not contiguous
    with torch.no_grad():
        _close(cpu(xt.contiguous()), gpu(xt.cuda()), torch.bfloat16)


def test_quantize_on_cuda_and_device_argument():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64)).to(torch.bfloat16)
    a, b, c = copy.deepcopy(ref), copy.deepcopy(ref).cuda(), copy.deepcopy(ref)
    quantize_(a, Int4WeightOnlyConfig(group_size=64, layout=Int4CPULayout()))
    quantize_(b, Int4WeightOnlyConfig(group_size=64, layout=Int4CPULayout()))
    quantize_(c, Int4WeightOnlyConfig(group_size=64, layout=Int4CPULayout()), device="cuda")
    for m in (b, c):
        assert m[0].weight.device.type == "cuda" and m[0].weight.impl.device().startswith("cuda")
        assert torch.equal(m[0].weight.impl.packed_data().cpu(), a[0].weight.impl.packed_data())
    x = torch.randn(4, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        _close(a(x), b(x.cuda()), torch.bfloat16)
        _close(a(x), c(x.cuda()), torch.bfloat16)


def test_weight_round_trips_between_devices():
    cpu, gpu = _pair("int4_g128", torch.bfloat16)
    back = gpu.weight.to("cpu")
    assert back.device.type == "cpu"
    for u, v in zip((back.impl.packed_data(), back.impl.scale(), back.impl.zero_point()),
                    (cpu.weight.impl.packed_data(), cpu.weight.impl.scale(), cpu.weight.impl.zero_point())):
        assert torch.equal(u, v)
    assert torch.equal(gpu.weight.dequantize().cpu(), cpu.weight.dequantize())
    assert gpu.weight.cuda() is gpu.weight


def test_save_and_load_cuda_model():
    _, gpu = _pair("int8", torch.bfloat16)
    buf = io.BytesIO()
    torch.save(gpu, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert loaded.weight.device.type == "cuda"
    x = torch.randn(2, 512, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        assert torch.equal(loaded(x), gpu(x))


def test_cuda_graph_capture_replays_eager_result():
    _, gpu = _pair("int4_g128", torch.bfloat16)
    x = torch.randn(1, 512, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        eager = gpu(x)
        g, out = capture(lambda: gpu(x))
        x.copy_(torch.randn_like(x))
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, gpu(x)) and not torch.equal(out, eager)


def test_scripted_op_on_cuda():
    cpu, gpu = _pair("int4_g128", torch.bfloat16)
    x = torch.randn(3, 512, dtype=torch.bfloat16, device="cuda")
    out = torch.ops.torchao_cpp.affine_quantized_linear(x, gpu.weight.impl, gpu.bias)
    with torch.no_grad():
        assert torch.equal(out, gpu(x))


def test_unsupported_cases_raise_clear_errors():
    _, gpu = _pair("int4_g128", torch.bfloat16)
    with pytest.raises(ValueError, match="input is on cpu but the quantized weight is on cuda"):
        F.linear(torch.randn(1, 512, dtype=torch.bfloat16), gpu.weight)
    w32 = copy.deepcopy(nn.Linear(512, 64))
    quantize_(w32, Int8WeightOnlyConfig(), device="cuda")
    with pytest.raises(NotImplementedError, match="bfloat16 or float16 activations, got Float"):
        w32(torch.randn(1, 512, device="cuda"))
    ux = nn.Linear(512, 64).to(torch.bfloat16)
    quantize_(ux, UIntXWeightOnlyConfig(uint3, group_size=8), device="cuda")
    with pytest.raises(NotImplementedError, match="group_size that are multiples of 16"):
        ux(torch.randn(1, 512, dtype=torch.bfloat16, device="cuda"))
    # The op itself: N-bit packed rows need in_features and groups in multiples of 32 (a code chunk per lane).
    op = torch.ops.torchao_cpp.weight_only_linear
    xb = torch.randn(2, 48, dtype=torch.bfloat16, device="cuda")
    sc = torch.ones(8, 1, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(NotImplementedError, match="multiples of 32 for 3-bit packed codes, got in_features=48"):
        op(xb, torch.zeros(8, 18, dtype=torch.uint8, device="cuda"), "packed", 3, 8, 48, 48, sc, None, 0, 7, "NONE")
    with pytest.raises(ValueError, match="fp6_e3m2 codes take no zero point"):
        op(xb[:, :32], torch.zeros(8, 24, dtype=torch.uint8, device="cuda"), "fp6_e3m2", 6, 8, 32, 32, sc, sc, 0, 0,
           "FLOAT")
    with pytest.raises(ValueError, match="codes must have shape \\(8, 24\\)"):
        op(xb[:, :32], torch.zeros(8, 32, dtype=torch.uint8, device="cuda"), "fp6_e3m2", 6, 8, 32, 32, sc, None, 0, 0,
           "NONE")
    moved = nn.Sequential(nn.Linear(64, 32)).to(torch.bfloat16)
    quantize_(moved, Int8WeightOnlyConfig())
    x = torch.randn(2, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        ref = moved(x)
    # Module._apply either swaps in the moved weight (then it must compute the
    # same) or assigns .data, which a quantized weight refuses with advice.
    try:
        moved.cuda()
    except NotImplementedError as e:
        assert "move the float model first" in str(e)
    else:
        assert moved[0].weight.device.type == "cuda" and isinstance(moved[0].weight, AffineQuantizedTensor)
        with torch.no_grad():
            _close(ref, moved(x.cuda()), torch.bfloat16)


@pytest.mark.parametrize("cfg", ["int4_g128", "int8"])
def test_large_batch_goes_through_dequantize_and_cublas(cfg):
    # M >= GEMM_ROWS: the weight is dequantized to bfloat16 once per call and cuBLAS
    # runs the GEMM (as tinygemm, the weight is rounded to bfloat16).
    cpu, gpu = _pair(cfg, torch.bfloat16)
    x = torch.randn(300, 512, dtype=torch.bfloat16)
    with torch.no_grad():
        ref, got = cpu(x).float(), gpu(x.cuda()).cpu().float()
    assert got.shape == (300, 384) and sqnr(ref, got) > 40


FLOATX_FORMATS = [(3, 2), (2, 3), (1, 4), (2, 1), (4, 3), (5, 2)]  # fp6 e3m2 / e2m3 / e1m4, fp4, fp8 e4m3 / e5m2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M", [1, 5, 8, 9, 300])
@pytest.mark.parametrize("fmt", FLOATX_FORMATS, ids=lambda f: f"e{f[0]}m{f[1]}")
def test_floatx_weights_run_their_packed_codes_on_cuda(dtype, M, fmt):
    """FPXWeightOnlyConfig on CUDA: a CUDA weight quantizes (on the CPU kernels, then moves) and dequantizes as
    on the CPU, and its linear reads the N-bit packed codes as stored (each through the format's table of
    values): up to 8 rows the GEMV, above them a dequantize pass and cuBLAS. Against the exact dequantized
    weight and the CPU, and in a graph."""
    from torchao_cpp.quantization import FPXWeightOnlyConfig

    torch.manual_seed(M)
    m = nn.Sequential(nn.Linear(128, 256)).to(dtype)
    ref = copy.deepcopy(m)
    quantize_(ref, FPXWeightOnlyConfig(*fmt))
    quantize_(m, FPXWeightOnlyConfig(*fmt), device="cuda")
    w = m[0].weight
    assert isinstance(w, AffineQuantizedTensor) and w.device.type == "cuda" and w.layout == "FloatxTensorCoreLayout"
    assert torch.equal(w.dequantize().cpu(), ref[0].weight.dequantize())
    x = torch.randn(M, 128, dtype=dtype)
    with torch.no_grad():
        got = m(x.cuda()).cpu()
        cpu = ref(x)
    wd = ref[0].weight.dequantize().double()
    exact = x.double() @ wd.t() + ref[0].bias.double()
    eps = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
    tol = 2 * eps * exact.abs() + 4 * eps * (x.double().abs() @ wd.abs().t())
    assert ((got.double() - exact).abs() <= tol).all() and ((cpu.double() - exact).abs() <= tol).all()
    replays_in_graph(m, x, got)
    back = w.to("cpu")
    assert torch.equal(F.linear(x, back, ref[0].bias), ref(x))


@pytest.mark.parametrize("cfg", ["fp6_e3m2", "uint3_g64", "uint6_per_row"])
def test_packed_codes_stay_packed_on_cuda(cfg):
    """fp6 costs 6 bits a weight on the device too: the weight holds K * bits / 8 bytes a row and a linear
    call keeps nothing beyond its output (no expanded copy of the codes is cached)."""
    from torchao_cpp.dtypes import uint6
    from torchao_cpp.quantization import FPXWeightOnlyConfig

    config, bits = {
        "fp6_e3m2": (lambda: FPXWeightOnlyConfig(3, 2), 6),
        "uint3_g64": (lambda: UIntXWeightOnlyConfig(uint3, group_size=64), 3),
        "uint6_per_row": (lambda: UIntXWeightOnlyConfig(uint6, group_size=1024), 6),
    }[cfg]
    m = nn.Sequential(nn.Linear(1024, 512)).to(torch.bfloat16)
    quantize_(m, config(), device="cuda")
    w = m[0].weight
    assert w.device.type == "cuda"
    # Codes plus a scale and a zero point (at most 8 bytes) per row or per group of 64.
    assert 512 * 1024 * bits // 8 < w.nbytes_quantized() <= 512 * 1024 * bits // 8 + 8 * 512 * 1024 // 64
    x = torch.randn(4, 1024, dtype=torch.bfloat16, device="cuda")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    with torch.no_grad():
        out = m(x)  # the first call: an expanded copy would be made (and kept) now
    torch.cuda.synchronize()
    # Beyond the output, at most the integer zero points converted once to bfloat16 (one per group).
    zero_points = 0 if cfg == "fp6_e3m2" else 512 * (1024 // (64 if cfg == "uint3_g64" else 1024)) * 2
    assert torch.cuda.memory_allocated() - before <= out.numel() * out.element_size() + zero_points
