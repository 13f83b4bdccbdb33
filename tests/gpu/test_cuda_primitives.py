"""CUDA quant primitives and the int8 dynamic-activation linear, against the
CPU ops (GPU machine only: scripts/gpu_test.sh).

The primitives share their scalar code with the CPU kernels, so every code,
scale and zero point must be bit-identical. The int8 x int8 linear sums
integer products exactly, so its output must equal the CPU formula
a_scale * (w_scale * acc) + bias evaluated in float32 with torch ops.
"""
import copy

import pytest
import torch
import torch.nn as nn

from cuda_graphs import capture, replays_in_graph
import torchao_cpp  # noqa: F401
from torchao_cpp.dtypes import (
    MarlinQQQLayout,
    MarlinSparseLayout,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    SemiSparseLayout,
    float8_e4m3fn,
    float8_e5m2,
    int2,
    int3,
    int5,
    uint1,
    uint3,
    uint4,
    uint7,
)
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    GemliteUIntXWeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    IntxWeightOnlyConfig,
    MappingType,
    PerAxis,
    PerGroup,
    UIntXWeightOnlyConfig,
    quantize_,
)

assert torch.cuda.is_available(), "tests/gpu needs a CUDA device"
ops = torch.ops.torchao_cpp
FLOATS = [torch.float32, torch.bfloat16, torch.float16]

# (input shape, block size): per row, per group, per tensor, 2-d blocks that
# span rows (reordered by the wrapper), a 3-d input, a 0-d input.
BLOCKS = [
    ((37, 256), (1, 256)),
    ((37, 256), (1, 32)),
    ((16, 64), (16, 64)),
    ((12, 64), (4, 16)),
    ((4, 6, 64), (2, 1, 32)),
    ((), ()),
]
# (mapping, domain, preserve_zero, quant range)
QPARAMS = [
    ("ASYMMETRIC", "INT", True, (0, 255)),
    ("ASYMMETRIC", "INT", True, (-8, 7)),
    ("ASYMMETRIC", "FLOAT", False, (0, 15)),
    ("ASYMMETRIC", "NONE", True, (-128, 127)),
    ("SYMMETRIC", "INT", True, (-128, 127)),
    ("SYMMETRIC", "NONE", True, (-127, 127)),
    ("SYMMETRIC_NO_CLIPPING_ERR", "INT", True, (-8, 7)),
]


def _input(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 3 + 0.5).to(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,block", BLOCKS)
@pytest.mark.parametrize("mapping,domain,preserve_zero,qrange", QPARAMS)
def test_affine_primitives_match_cpu_bit_for_bit(dtype, shape, block, mapping, domain, preserve_zero, qrange):
    x = _input(shape, dtype)
    qmin, qmax = qrange
    code_dtype = torch.uint8 if qmin >= 0 else torch.int8
    zdt = dtype if domain == "FLOAT" else torch.int32
    args = (mapping, list(block), qmin, qmax, None, None, zdt, preserve_zero, domain)
    s_cpu, z_cpu = ops.choose_qparams_affine(x, *args)
    s_gpu, z_gpu = ops.choose_qparams_affine(x.cuda(), *args)
    assert s_gpu.dtype == s_cpu.dtype and z_gpu.dtype == z_cpu.dtype and s_gpu.shape == s_cpu.shape
    assert torch.equal(s_gpu.cpu(), s_cpu) and torch.equal(z_gpu.cpu(), z_cpu)
    q_cpu = ops.quantize_affine(x, list(block), s_cpu, z_cpu, code_dtype, qmin, qmax, domain)
    q_gpu = ops.quantize_affine(x.cuda(), list(block), s_gpu, z_gpu, code_dtype, qmin, qmax, domain)
    assert q_gpu.dtype == code_dtype and q_gpu.shape == x.shape
    assert torch.equal(q_gpu.cpu(), q_cpu)
    for out_dtype in FLOATS:
        d_cpu = ops.dequantize_affine(q_cpu, list(block), s_cpu, z_cpu, qmin, qmax, domain, out_dtype)
        d_gpu = ops.dequantize_affine(q_gpu, list(block), s_gpu, z_gpu, qmin, qmax, domain, out_dtype)
        assert d_gpu.dtype == out_dtype and torch.equal(d_gpu.cpu(), d_cpu)


@pytest.mark.parametrize("scale_dtype", FLOATS)
def test_quantize_with_scales_in_another_dtype(scale_dtype):
    x = _input((8, 128), torch.bfloat16, seed=1)
    args = ("ASYMMETRIC", [1, 64], 0, 15, None, scale_dtype, torch.float32, False, "FLOAT")
    s, z = ops.choose_qparams_affine(x, *args)
    sg, zg = ops.choose_qparams_affine(x.cuda(), *args)
    assert torch.equal(sg.cpu(), s) and torch.equal(zg.cpu(), z)
    # A float32 zero point with bfloat16 scales: PyTorch's float32 promotion path.
    q = ops.quantize_affine(x, [1, 64], s, z, torch.uint8, 0, 15, "FLOAT")
    qg = ops.quantize_affine(x.cuda(), [1, 64], sg, zg, torch.uint8, 0, 15, "FLOAT")
    assert torch.equal(qg.cpu(), q)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt", ["e4m3fn", "e5m2"])
@pytest.mark.parametrize("shape,block", BLOCKS[:5])
def test_float8_primitives_match_cpu_bit_for_bit(dtype, fmt, shape, block):
    x = _input(shape, dtype, seed=2)
    s = ops.choose_qparams_affine_float8(x, list(block), fmt, torch.float32)
    sg = ops.choose_qparams_affine_float8(x.cuda(), list(block), fmt, torch.float32)
    assert torch.equal(sg.cpu(), s)
    q = ops.quantize_affine_float8(x, list(block), s, fmt)
    qg = ops.quantize_affine_float8(x.cuda(), list(block), sg, fmt)
    assert qg.dtype == torch.uint8 and torch.equal(qg.cpu(), q)
    for out_dtype in FLOATS:
        d = ops.dequantize_affine_float8(q, list(block), s, fmt, out_dtype)
        dg = ops.dequantize_affine_float8(qg, list(block), sg, fmt, out_dtype)
        assert torch.equal(dg.cpu(), d)


def test_float8_saturates_and_keeps_nan_codes_like_cpu():
    x = torch.tensor([[0.0, 1.0, -1.0, 1e30, -1e30, float("inf"), float("nan"), 3.0]])
    s = torch.tensor([0.01])
    for fmt in ("e4m3fn", "e5m2"):
        q = ops.quantize_affine_float8(x, [1, 8], s, fmt)
        assert torch.equal(ops.quantize_affine_float8(x.cuda(), [1, 8], s.cuda(), fmt).cpu(), q)


@pytest.mark.parametrize("dtype", FLOATS)
# 14336: a row in registers at 8 chunks a thread (bfloat16); 20000: past the registers; 300: unaligned rows.
@pytest.mark.parametrize("shape", [(1, 4096), (37, 300), (2, 3, 1000), (5, 20000), (3, 14336)])
def test_per_token_quantizers_match_cpu_bit_for_bit(dtype, shape):
    x = _input(shape, dtype, seed=3)
    for fn in (ops.int8_asymm_per_token_quant, ops.int8_symm_per_token_reduced_range_quant):
        ref, got = fn(x), fn(x.cuda())
        for r, g in zip(ref, got):
            assert g.dtype == r.dtype and g.shape == r.shape and torch.equal(g.cpu(), r)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("K", [4096, 300])
def test_per_token_quantizers_match_cpu_on_one_signed_and_flat_rows(dtype, K):
    # Rows whose zero point sits at the range's ends (all positive, all
    # negative), constant and zero rows, tiny and huge magnitudes: the codes
    # are clamped before rounding on the GPU, after it on the CPU.
    g = torch.Generator().manual_seed(11)
    base = torch.rand(K, generator=g)
    rows = [base + 0.25, -base - 0.25, base * 1e-3 + 7.0, torch.full((K,), -2.5), torch.zeros(K),
            (base - 0.5) * 1e-6, (base - 0.5) * 6e4, torch.randn(K, generator=g).round() * 0.5]
    x = torch.stack(rows).to(dtype)
    for fn in (ops.int8_asymm_per_token_quant, ops.int8_symm_per_token_reduced_range_quant):
        ref, got = fn(x), fn(x.cuda())
        for r, g_ in zip(ref, got):
            assert torch.equal(g_.cpu(), r), fn


@pytest.mark.parametrize("K", [4096, 300])
def test_per_token_row_with_inf_gets_nan_scale_on_cuda(K):
    x = _input((4, K), torch.bfloat16, seed=5)
    x[1, 7] = float("inf")
    for fn in (ops.int8_asymm_per_token_quant, ops.int8_symm_per_token_reduced_range_quant):
        q, s, _ = fn(x.cuda())
        s = s.cpu().float().flatten()
        assert torch.isnan(s[1]) and torch.isfinite(s[[0, 2, 3]]).all()
        assert (q.cpu()[1] == 0).all()  # the non-finite row's codes are 0
        ref_q, ref_s, _ = fn(x[[0, 2, 3]])
        assert torch.equal(q.cpu()[[0, 2, 3]], ref_q) and torch.equal(s[[0, 2, 3]], ref_s.float().flatten())


def test_non_finite_block_gets_nan_scale_on_cuda():
    # The CPU op raises; the CUDA op cannot without a host sync (documented).
    x = torch.randn(4, 64)
    x[2, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 64], 0, 255)
    s, _ = ops.choose_qparams_affine(x.cuda(), "ASYMMETRIC", [1, 64], 0, 255)
    s = s.cpu()
    assert torch.isnan(s[2]).all() and torch.isfinite(s[[0, 1, 3]]).all()


def test_primitive_errors_name_the_argument():
    x = torch.randn(4, 64, device="cuda")
    with pytest.raises(ValueError, match="does not divide"):
        ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 48], 0, 255)
    s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 64], 0, 255)
    with pytest.raises(ValueError, match="scale is on cpu but input is on cuda"):
        ops.quantize_affine(x, [1, 64], s.cpu(), z, torch.uint8, 0, 255)
    with pytest.raises(TypeError, match="integer codes"):
        ops.dequantize_affine(x, [1, 64], s, z, 0, 255)
    with pytest.raises(ValueError, match="float8_dtype"):
        ops.choose_qparams_affine_float8(x, [1, 64], "e3m4")


# --- int8 dynamic activation x int8 weight ------------------------------------


def _cpu_and_cuda(config, dtype, M, K, with_module=False, N=136):
    """A (K -> N) linear quantized on the CPU, a copy on CUDA, and both outputs for one input."""
    torch.manual_seed(M + K)
    lin = nn.Linear(K, N).to(dtype)
    quantize_(lin, config)
    gpu = copy.deepcopy(lin)
    gpu.weight = nn.Parameter(gpu.weight.to("cuda"), requires_grad=False)
    gpu.bias = nn.Parameter(gpu.bias.cuda(), requires_grad=False)
    x = torch.randn(M, K, dtype=dtype)
    with torch.no_grad():
        got = gpu(x.cuda()).cpu()
        cpu = lin(x)
    return (lin, x, got, cpu, gpu) if with_module else (lin, x, got, cpu)


def _int8_dyn_reference(x_cpu, lin, asymmetric):
    """The CPU formula over exact integer sums, in float32 torch ops."""
    quant = ops.int8_asymm_per_token_quant if asymmetric else ops.int8_symm_per_token_reduced_range_quant
    x2 = x_cpu.reshape(-1, x_cpu.shape[-1])
    a, a_s, a_z = quant(x2)
    codes, w_s, _ = lin.weight.original_weight_tensor.impl.get_plain()
    acc = (a.long() - a_z.long().unsqueeze(-1)) @ codes.long().t()
    out = a_s.float().unsqueeze(-1) * (w_s.float().reshape(1, -1) * acc.float())
    if lin.bias is not None:
        out = out + lin.bias.float()
    return out.to(x_cpu.dtype).reshape(*x_cpu.shape[:-1], -1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("asymmetric", [False, True])
# 2100 rows: the wgmma kernel on an H100/H200 where K % 16 == 0 (from 512 rows), several row tiles and bands.
@pytest.mark.parametrize("M", [1, 5, 16, 33, 300, 2100])
@pytest.mark.parametrize("K", [512, 100, 98])  # 98: no tensor-core algorithm, dp4a fallback
@pytest.mark.parametrize("N", [136, 137])  # 137: the GEMM's epilogue one column at a time
def test_int8_dynamic_linear_is_exact(dtype, asymmetric, M, K, N):
    mapping = MappingType.ASYMMETRIC if asymmetric else MappingType.SYMMETRIC
    lin, x, got, cpu = _cpu_and_cuda(Int8DynamicActivationInt8WeightConfig(act_mapping_type=mapping), dtype, M, K,
                                     N=N)
    ref = _int8_dyn_reference(x, lin, asymmetric)
    assert got.dtype == dtype and got.shape == (M, N)
    assert torch.equal(got, ref)
    # The CPU kernel's (VNNI) float rounding of large sums differs by at most an ulp or two.
    assert torch.allclose(got.float(), cpu.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("asymmetric", [False, True])
@pytest.mark.parametrize("M", [1, 33, 300])
@pytest.mark.parametrize("K,N", [(512, 256), (1024, 384), (512, 136), (100, 136)])
def test_int8_dynamic_linear_semi_sparse_on_cuda(dtype, asymmetric, M, K, N):
    # 2:4 int8 weights: on the sparse tensor cores (cuSPARSELt) where it takes the shape, else dense; exact either way.
    mapping = MappingType.ASYMMETRIC if asymmetric else MappingType.SYMMETRIC
    cfg = Int8DynamicActivationInt8WeightConfig(act_mapping_type=mapping, layout=SemiSparseLayout())
    lin, x, got, cpu, gpu = _cpu_and_cuda(cfg, dtype, M, K, with_module=True, N=N)
    assert lin.weight.original_weight_tensor.impl.layout() == "SemiSparseLayout"
    # The path taken: cuSPARSELt takes these shapes (K, N multiples of 64), so the weight holds its form.
    if K % 64 == 0 and N % 64 == 0:
        assert gpu.weight.original_weight_tensor.impl.cusparselt_codes() is not None
    assert got.dtype == dtype and got.shape == (M, N)
    assert torch.equal(got, _int8_dyn_reference(x, lin, asymmetric))
    assert torch.allclose(got.float(), cpu.float(), rtol=2e-2, atol=2e-2)
    replays_in_graph(gpu, x, got)


@pytest.mark.parametrize("layout", ["semi_sparse", "marlin_sparse"])
def test_sparse_weight_quantized_on_cuda_is_captured_at_its_first_call(layout):
    # A weight quantized on the device holds its device forms from the start (cuSPARSELt's, or the dense
    # codes), so its very first call may be under CUDA-graph capture.
    N, K = 256, 512
    torch.manual_seed(0)
    lin = nn.Linear(K, N).to(torch.bfloat16).cuda()
    if layout == "semi_sparse":
        quantize_(lin, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))
        assert lin.weight.original_weight_tensor.impl.cusparselt_codes() is not None
    else:
        quantize_(lin, Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()))
    x = torch.randn(3, K, dtype=torch.bfloat16, device="cuda")
    g = torch.cuda.CUDAGraph()
    with torch.no_grad():
        with torch.cuda.graph(g):
            out = lin(x)
        g.replay()
        torch.cuda.synchronize()
        eager = lin(x)
    assert torch.equal(out, eager)


def _sparse_int8_weight(N, K):
    """A 2:4 int8 weight (N, K) on CUDA and its per-channel scales."""
    torch.manual_seed(N + K)
    codes = ops.prune_2to4(torch.randint(-127, 128, (N, K)).float()).to(torch.int8)
    return codes.cuda(), (torch.rand(N) / 100 + 1e-3).cuda()


@pytest.mark.parametrize("M", [1, 31, 32, 33, 2048])
@pytest.mark.parametrize("asymmetric", [False, True])
def test_cusparselt_codes_are_exact_and_smaller(M, asymmetric):
    N, K = 512, 1024
    codes, scale = _sparse_int8_weight(N, K)
    packed = ops.sparse24_cusparselt_compress(codes)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    # kept values (half the codes) and their 2-bit indices, plus N int32 row sums: under 5/8 of the dense bytes + 4N
    assert 0 < packed.numel() <= N * K * 5 // 8 + 4 * N + 1024
    mode = "asymmetric" if asymmetric else "symmetric_reduced_range"
    x = torch.randn(M, K, dtype=torch.bfloat16, device="cuda")
    bias = torch.randn(N, dtype=torch.bfloat16, device="cuda")
    sparse = ops.int8_dynamic_linear(x, mode, packed, "cusparselt", 8, N, K, K, scale, None, -127, bias)
    dense = ops.int8_dynamic_linear(x, mode, codes, "plain", 8, N, K, K, scale, None, -127, bias)
    assert torch.equal(sparse, dense)
    g, out = capture(lambda: ops.int8_dynamic_linear(x, mode, packed, "cusparselt", 8, N, K, K, scale, None, -127,
                                                     bias))
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, dense)


@pytest.mark.parametrize("M", [1, 40, 2048])
def test_sparse24_linear_matches_dense(M):
    dtype = torch.bfloat16
    N, K = 384, 1024
    torch.manual_seed(M)
    w = ops.prune_2to4(torch.randn(N, K)).to(dtype).cuda()
    packed = ops.sparse24_cusparselt_compress(w)
    assert packed.dtype == torch.uint8 and 0 < packed.numel() < N * K * 2  # half the values + metadata
    x = torch.randn(M, K, dtype=dtype, device="cuda")
    b = torch.randn(N, dtype=dtype, device="cuda")
    got = ops.sparse24_linear(x, packed, N, K, b)
    exact = x.double() @ w.double().t() + b.double()
    tol = 2 * 2.0 ** -8 * exact.abs() + 1e-3 * (x.double().abs() @ w.double().abs().t())
    assert got.dtype == dtype and got.shape == (M, N) and ((got.double() - exact).abs() <= tol).all()
    x3 = torch.randn(2, 3, 2 * K, dtype=dtype, device="cuda")[..., :K]  # 3-d, rows 2K apart
    assert torch.allclose(ops.sparse24_linear(x3, packed, N, K).double(), x3.double() @ w.double().t(),
                          rtol=2e-2, atol=2e-1)
    with pytest.raises(ValueError, match="weight must be the 1-d uint8 tensor"):
        ops.sparse24_linear(x, packed[1:], N, K, b)
    # float16 2:4 weights stay dense (see sparse24_cusparselt_compress)
    assert ops.sparse24_cusparselt_compress(w.half()).numel() == 0
    with pytest.raises(NotImplementedError, match="takes bfloat16 inputs"):
        ops.sparse24_linear(x.half(), packed, N, K)


def test_semi_sparse_weight_keeps_no_dense_copy_on_cuda():
    # The device holds the CPU's compressed rows and cuSPARSELt's form, never the dense int8 codes.
    N, K = 1024, 2048
    lin = nn.Linear(K, N, bias=False).to(torch.bfloat16)
    quantize_(lin, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    w = lin.weight.to("cuda")
    with torch.no_grad():
        F_out = torch.nn.functional.linear(torch.randn(4, K, dtype=torch.bfloat16, device="cuda"), w)
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated() - before - F_out.numel() * F_out.element_size()
    assert held < N * K * 3 // 2, held  # 5/8 + 5/8 of N * K (+ scales); a dense copy would add N * K


def test_cusparselt_format_errors():
    N, K = 256, 512
    codes, scale = _sparse_int8_weight(N, K)
    packed = ops.sparse24_cusparselt_compress(codes)
    x = torch.randn(4, K, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="cusparselt codes must be the 1-d uint8 tensor"):
        ops.int8_dynamic_linear(x, "symmetric_reduced_range", packed[:-1], "cusparselt", 8, N, K, K, scale, None,
                                -127, None)
    with pytest.raises(ValueError, match="cusparselt codes must be the 1-d uint8 tensor"):
        ops.int8_dynamic_linear(x, "symmetric_reduced_range", codes, "cusparselt", 8, N, K, K, scale, None, -127,
                                None)
    with pytest.raises(TypeError, match="codes must be int8, bfloat16 or float16"):
        ops.sparse24_cusparselt_compress(codes.float())
    with pytest.raises(NotImplementedError, match="CUDA only"):
        ops.sparse24_cusparselt_compress(codes.cpu())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M", [1, 9, 16, 33, 300])
@pytest.mark.parametrize("N", [136, 256])
def test_int4_marlin_sparse_on_cuda(dtype, M, N):
    # 2:4 int4 (MarlinSparseLayout): on CUDA the sparse tensor cores' form (mma.sp GEMV up to 16 rows, the
    # weight expanded once per call and a dense GEMM above); the CPU runs its 2:4 kernel (M <= 8) or float panels.
    cfg = Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout())
    lin, x, got, cpu, gpu = _cpu_and_cuda(cfg, dtype, M, 256, with_module=True, N=N)
    assert lin.weight.impl.layout() == "MarlinSparseLayout" and got.dtype == dtype and got.shape == (M, N)
    replays_in_graph(gpu, x, got)
    codes, scale, _ = lin.weight.impl.get_plain()
    w = ((codes.double() - 8).view(N, 2, 128) * scale.double().view(N, 2, 1)).view(N, 256)
    exact = x.double() @ w.t() + lin.bias.double()
    tol = 2 * 2.0 ** -8 * exact.abs() + 1e-3 * (x.double().abs() @ w.abs().t())
    assert ((got.double() - exact).abs() <= tol).all()
    assert ((cpu.double() - exact).abs() <= tol).all()


def _marlin_form(N, K, group, dtype):
    """The sparse tensor cores' form (on CUDA) of a MarlinSparseLayout weight's 2:4 codes, scales for groups of
    `group` (the form holds no scales: any group size the op takes, beyond the config's 128) and the weight."""
    torch.manual_seed(N + K)
    lin = nn.Sequential(nn.Linear(K, N)).to(dtype)
    quantize_(lin, Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()))
    impl = lin[0].weight.impl
    values, meta = ops.sparse24_int4_mma_pack(impl.packed_data(), N, K)
    codes = impl.get_plain()[0]
    scale = (0.01 + 0.02 * torch.rand(N, K // group)).to(dtype)
    w = ((codes.double() - 8).view(N, K // group, group) * scale.double().view(N, -1, 1)).view(N, K)
    return values.cuda(), meta.cuda(), scale.cuda(), lin[0].bias.detach().cuda(), w


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M", [1, 2, 8, 9, 16, 17, 64])
@pytest.mark.parametrize("N,K,group", [(16, 128, 128), (40, 512, 128), (256, 1024, 256), (72, 384, 384)])
def test_sparse24_int4_linear_op(dtype, M, N, K, group):
    # The op on its own: rows past N in the last tile, 1..16 activation rows on the GEMV, more through the
    # dense GEMM, groups of 128 and more, per channel; against the float64 product with W rounded once.
    values, meta, scale, bias, w = _marlin_form(N, K, group, dtype)
    x = torch.randn(M, K, dtype=dtype, device="cuda")
    wr = w.to(dtype).double().cuda()  # W rounded once to the dtype, as the kernels round it
    got = ops.sparse24_int4_linear(x, values, meta, N, K, group, scale, bias)
    exact = x.double() @ wr.t() + bias.double()
    tol = 2.0 ** -7 * exact.abs() + 2e-5 * (x.double().abs() @ wr.abs().t()) + 2.0 ** -7 * bias.double().abs()
    assert got.dtype == dtype and got.shape == (M, N)
    assert ((got.double() - exact).abs() <= tol).all(), (got.double() - exact).abs().max()
    # 3-d input with rows 2K apart (a strided view), no bias.
    x3 = torch.randn(2, 3, 2 * K, dtype=dtype, device="cuda")[..., :K]
    y3 = ops.sparse24_int4_linear(x3, values, meta, N, K, group, scale)
    e3 = x3.double() @ wr.t()
    assert y3.shape == (2, 3, N) and ((y3.double() - e3).abs() <= 2.0 ** -7 * e3.abs() + 2e-5 *
                                      (x3.double().abs() @ wr.abs().t())).all()
    replays_in_graph(lambda t: ops.sparse24_int4_linear(t, values, meta, N, K, group, scale, bias), x, got.cpu())


def test_sparse24_int4_linear_errors():
    N, K = 40, 512
    values, meta, scale, bias, _ = _marlin_form(N, K, 128, torch.bfloat16)
    x = torch.randn(2, K, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="values and meta must be the int32 tensors"):
        ops.sparse24_int4_linear(x, values[1:], meta, N, K, 128, scale)
    with pytest.raises(NotImplementedError, match="multiples of 128"):
        ops.sparse24_int4_linear(x, values, meta, N, K, 64, scale)
    with pytest.raises(ValueError, match="scale has"):
        ops.sparse24_int4_linear(x, values, meta, N, K, 128, scale[1:])
    with pytest.raises(ValueError, match="features in its last dim"):
        ops.sparse24_int4_linear(x[:, 1:], values, meta, N, K, 128, scale)


def _held_after_calls(cfg, N, K, rows):
    """Device bytes an (N, K) bfloat16 linear quantized with cfg holds once moved to CUDA and called with each
    of `rows` activation rows (inputs and outputs excluded)."""
    lin = nn.Linear(K, N, bias=False).to(torch.bfloat16)
    quantize_(lin, cfg)
    xs = [torch.randn(m, K, dtype=torch.bfloat16, device="cuda") for m in rows]
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    w = lin.weight.to("cuda")
    with torch.no_grad():
        outs = [torch.nn.functional.linear(x, w) for x in xs]
    torch.cuda.synchronize()
    return torch.cuda.memory_allocated() - before - sum(o.numel() * o.element_size() for o in outs)


def test_marlin_sparse_weight_keeps_no_dense_copy_on_cuda():
    # On the device: the compressed rows (3 bits a weight), the sparse tensor cores' form (3 bits) and the
    # scales; the dense int8 codes (8 bits) are never made.
    N, K = 1024, 2048
    held = _held_after_calls(Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()), N, K, [4])
    assert held < N * K, held  # 3/8 + 3/8 of N * K, plus scales; a dense int8 copy would add N * K


def _float8_sparse_form(N, K, dtype, w_fmt):
    """A CutlassSemiSparseLayout weight (2:4 float8 codes, one scale per row): the sparse tensor cores' form
    on CUDA, its dense codes, scales and bias (on the CPU) and its dequantized values in float64."""
    torch.manual_seed(N + K)
    lin = nn.Sequential(nn.Linear(K, N)).to(dtype)
    fmt = float8_e4m3fn if w_fmt == "float8_e4m3fn" else float8_e5m2
    quantize_(lin, Float8DynamicActivationFloat8SemiSparseWeightConfig(weight_dtype=fmt))
    impl = lin[0].weight.impl.weight()
    values, meta = ops.sparse24_float8_mma_pack(impl.packed_data(), N, K)
    codes, scale, _ = impl.get_plain()
    f8 = torch.float8_e4m3fn if w_fmt == "float8_e4m3fn" else torch.float8_e5m2
    w = codes.view(torch.uint8).view(f8).double() * scale.double().view(N, 1)
    return values.cuda(), meta.cuda(), codes, scale, lin[0].bias.detach(), w


F8_FORMATS = [("float8_e5m2", "float8_e4m3fn"), ("float8_e4m3fn", "float8_e4m3fn"), ("float8_e4m3fn", "float8_e5m2"),
              ("float8_e5m2", "float8_e5m2")]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("M", [1, 2, 9, 16, 17, 64])
@pytest.mark.parametrize("N,K", [(16, 64), (40, 200), (256, 1024), (72, 4)])
@pytest.mark.parametrize("fmts", F8_FORMATS)
def test_sparse24_float8_linear_op(dtype, M, N, K, fmts):
    # The op on its own: rows past N in the last tile, K not a multiple of 64, 1..16 activation rows on the
    # mma.sp GEMV, more through the codes expanded per call and float8_linear's GEMM; every pair of formats;
    # against the CPU's float8_linear on the dense codes (the same activation codes and scales, exact float32
    # products): one rounding of the output either side plus the tensor cores' summation error.
    act, wd = fmts
    values, meta, codes, scale, bias, w = _float8_sparse_form(N, K, dtype, wd)
    torch.manual_seed(M)
    x = torch.randn(M, K).to(dtype) * 3
    ref = ops.float8_linear(x, act, "PerRow", None, codes, wd, scale, bias).double()
    got = ops.sparse24_float8_linear(x.cuda(), act, "PerRow", None, values, meta, N, K, wd, scale.cuda(),
                                     bias.cuda())
    assert got.dtype == dtype and got.shape == (M, N)
    ulp = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11, torch.float32: 2.0 ** -23}[dtype]
    tol = 2 * ulp * ref.abs() + 2e-4 * (x.double().abs() @ w.abs().t()) + 1e-6
    assert ((got.cpu().double() - ref).abs() <= tol).all(), (got.cpu().double() - ref).abs().max()
    # 3-d input with rows 2K apart (a strided view), per-tensor activation scales, no bias; a static scale.
    x3 = (torch.randn(2, 3, 2 * K) * 3).to(dtype)[..., :K]
    for gran, act_scale in (("PerTensor", None), ("PerTensor", torch.tensor([0.02]))):
        r3 = ops.float8_linear(x3, act, gran, act_scale, codes, wd, scale).double()
        y3 = ops.sparse24_float8_linear(x3.cuda(), act, gran, None if act_scale is None else act_scale.cuda(),
                                        values, meta, N, K, wd, scale.cuda())
        assert y3.shape == (2, 3, N)
        assert ((y3.cpu().double() - r3).abs() <= 2 * ulp * r3.abs() + 2e-4 * (x3.double().abs() @ w.abs().t())
                + 1e-6).all()
    sc, bc = scale.cuda(), bias.cuda()
    replays_in_graph(lambda t: ops.sparse24_float8_linear(t, act, "PerRow", None, values, meta, N, K, wd, sc, bc),
                     x.cuda(), got.cpu())


def test_sparse24_float8_linear_errors():
    N, K = 40, 200
    values, meta, _, scale, bias, _ = _float8_sparse_form(N, K, torch.bfloat16, "float8_e4m3fn")
    x = torch.randn(2, K, dtype=torch.bfloat16, device="cuda")
    scale = scale.cuda()
    with pytest.raises(ValueError, match="values and meta must be the int32 tensors"):
        ops.sparse24_float8_linear(x, "float8_e5m2", "PerRow", None, values[1:], meta, N, K, "float8_e4m3fn", scale)
    with pytest.raises(ValueError, match="in_features a positive multiple of 4"):
        ops.sparse24_float8_linear(x, "float8_e5m2", "PerRow", None, values, meta, N, 198, "float8_e4m3fn", scale)
    with pytest.raises(ValueError, match="weight_scale has"):
        ops.sparse24_float8_linear(x, "float8_e5m2", "PerRow", None, values, meta, N, K, "float8_e4m3fn",
                                   scale[1:])
    with pytest.raises(ValueError, match="features in its last dim"):
        ops.sparse24_float8_linear(x[:, 1:], "float8_e5m2", "PerRow", None, values, meta, N, K, "float8_e4m3fn",
                                   scale)
    with pytest.raises(ValueError, match="values is on cpu"):
        ops.sparse24_float8_linear(x, "float8_e5m2", "PerRow", None, values.cpu(), meta, N, K, "float8_e4m3fn",
                                   scale)


def test_float8_semi_sparse_weight_keeps_no_dense_copy_on_cuda():
    # On the device: the compressed rows (5 bits a weight), the sparse tensor cores' form (5 bits) and the
    # scales; the dense float8 codes (8 bits) are never kept (the many-row path expands them per call).
    N, K = 1024, 2048
    held = _held_after_calls(Float8DynamicActivationFloat8SemiSparseWeightConfig(), N, K, [4, 40])
    assert held < 1.5 * N * K, held  # 5/8 + 5/8 of N * K, plus scales; a dense copy would add N * K


def _exact_and_graph(xd, w, lin, x, got, cpu, gpu):
    """float16 CUDA and CPU outputs against xd @ w^T + bias in float64 (xd: the input as the kernel sees it),
    and the CUDA call replays in a graph."""
    exact = xd @ w.t() + lin.bias.double()
    tol = 2 * 2.0 ** -10 * exact.abs() + 2e-3 * (xd.abs() @ w.abs().t())
    assert ((got.double() - exact).abs() <= tol).all()
    assert ((cpu.double() - exact).abs() <= tol).all()
    replays_in_graph(gpu, x, got)


@pytest.mark.parametrize("bits,group_size", [(4, 64), (4, None), (8, None)])
@pytest.mark.parametrize("M", [1, 33])
def test_gemlite_runs_the_weight_only_kernels(bits, group_size, M):
    # GemlitePackedLayout (float16 only): 4-bit codes run the packed int4 kernel with FLOAT zero points, 8-bit
    # codes are unpacked once to int8 and run the int8 kernel; both against the dequantized weight, and in a graph.
    cfg = GemliteUIntXWeightOnlyConfig(group_size=group_size, bit_width=bits)
    lin, x, got, cpu, gpu = _cpu_and_cuda(cfg, torch.float16, M, 256, with_module=True)
    assert lin.weight.impl.layout() == "GemlitePackedLayout" and got.dtype == torch.float16 and got.shape == (M, 136)
    _exact_and_graph(x.double(), lin.weight.dequantize().double(), lin, x, got, cpu, gpu)


@pytest.mark.parametrize("group", [128, -1])
@pytest.mark.parametrize("act", [MappingType.SYMMETRIC, MappingType.ASYMMETRIC])
@pytest.mark.parametrize("M", [1, 33])
def test_marlin_qqq_runs_on_cuda(group, act, M):
    # MarlinQQQLayout: per channel on the int8 tensor cores; per group of 128 the activations quantized and
    # dequantized on the device, then the int4 weight-only kernel. Against the exact int8 x dequantized math
    # and the CPU, and replayed in a CUDA graph (no host synchronisation).
    cfg = Int8DynamicActivationInt4WeightConfig(group_size=group, layout=MarlinQQQLayout(), act_mapping_type=act)
    lin, x, got, cpu, gpu = _cpu_and_cuda(cfg, torch.float16, M, 256, with_module=True, N=128)  # Marlin tiles
    assert lin.weight.original_weight_tensor.layout == "MarlinQQQLayout" and got.shape == (M, 128)
    quant = ops.int8_symm_per_token_reduced_range_quant if act == MappingType.SYMMETRIC else ops.int8_asymm_per_token_quant
    a, a_s, a_z = quant(x)
    xd = (a.double() - a_z.double().reshape(-1, 1)) * a_s.double().reshape(-1, 1)
    _exact_and_graph(xd, lin.weight.original_weight_tensor.dequantize().double(), lin, x, got, cpu, gpu)


N_BIT_WEIGHT_ONLY = {
    "uint1_g64": lambda: UIntXWeightOnlyConfig(uint1, group_size=64),
    "uint3_g64": lambda: UIntXWeightOnlyConfig(uint3, group_size=64),
    "uint4_g32": lambda: UIntXWeightOnlyConfig(uint4, group_size=32),
    "uint7_g128": lambda: UIntXWeightOnlyConfig(uint7, group_size=128),
    "int2_per_axis": lambda: IntxWeightOnlyConfig(weight_dtype=int2, granularity=PerAxis(0)),
    "int5_g32_asym": lambda: IntxWeightOnlyConfig(weight_dtype=int5, granularity=PerGroup(32),
                                                  mapping_type=MappingType.ASYMMETRIC),
}


@pytest.mark.parametrize("cfg", sorted(N_BIT_WEIGHT_ONLY))
@pytest.mark.parametrize("M", [1, 33])
def test_n_bit_weight_only_runs_on_cuda(cfg, M):
    # UIntX (bit-packed, INT zero points: unpacked once to int8 on the device; uint4 stays packed and runs the
    # int4 kernel) and Intx (plain int8 codes): the weight-only kernels, against the dequantized weight, the
    # CPU and in a CUDA graph.
    lin, x, got, cpu, gpu = _cpu_and_cuda(N_BIT_WEIGHT_ONLY[cfg](), torch.float16, M, 256, with_module=True)
    assert got.dtype == torch.float16 and got.shape == (M, 136)
    _exact_and_graph(x.double(), lin.weight.dequantize().double(), lin, x, got, cpu, gpu)


INT8_DYNAMIC_GROUPED = {
    "8da4w_g32": lambda: Int8DynamicActivationInt4WeightConfig(group_size=32),
    "8da4w_g128": lambda: Int8DynamicActivationInt4WeightConfig(group_size=128),
    "8daint3_g32_qdq": lambda: Int8DynamicActivationIntxWeightConfig(weight_dtype=int3),
    "8daint3_g32_packed": lambda: Int8DynamicActivationIntxWeightConfig(
        weight_dtype=int3, layout=PackedLinearInt8DynamicActivationIntxWeightLayout(target="aten")),
    "8daint5_per_axis_asym": lambda: Int8DynamicActivationIntxWeightConfig(
        weight_dtype=int5, weight_granularity=PerAxis(0), weight_mapping_type=MappingType.ASYMMETRIC),
}


@pytest.mark.parametrize("cfg", sorted(INT8_DYNAMIC_GROUPED))
@pytest.mark.parametrize("M", [1, 33])
def test_grouped_int8_dynamic_weights_run_on_cuda(cfg, M):
    # Weights the int8 tensor-core path does not take (per group, zero points, packed N-bit codes): the
    # seed's path, int8 activations (asymmetric, per token) quantized and dequantized on the device, then the
    # weight-only kernel. Against the exact math on the dequantized input, the CPU's integer GEMM and a graph.
    lin, x, got, cpu, gpu = _cpu_and_cuda(INT8_DYNAMIC_GROUPED[cfg](), torch.float16, M, 256, with_module=True)
    assert got.dtype == torch.float16 and got.shape == (M, 136)
    a, a_s, a_z = ops.int8_asymm_per_token_quant(x)
    xd = (a.double() - a_z.double().reshape(-1, 1)) * a_s.double().reshape(-1, 1)
    _exact_and_graph(xd, lin.weight.original_weight_tensor.dequantize().double(), lin, x, got, cpu, gpu)


# On sm_90 (int8_wgmma_preferred): 600 rows take the wgmma kernel, 120 rows cuBLASLt (with K = 256 and 8192).
@pytest.mark.parametrize("rows,K", [(40, 256), (200, 256), (40, 8192)])
def test_int8_dynamic_linear_3d_noncontiguous_and_graph(rows, K):
    torch.manual_seed(0)
    lin = nn.Linear(K, 96, bias=False).to(torch.bfloat16)
    quantize_(lin, Int8DynamicActivationInt8WeightConfig())
    gpu = copy.deepcopy(lin)
    gpu.weight = nn.Parameter(gpu.weight.to("cuda"), requires_grad=False)
    x = torch.randn(3, rows, 2 * K, dtype=torch.bfloat16)[..., ::2]  # non-contiguous last dim
    with torch.no_grad():
        got = gpu(x.cuda()).cpu()
    assert got.shape == (3, rows, 96) and torch.equal(got, _int8_dyn_reference(x.contiguous(), lin, False))
    xs = x.contiguous().cuda()
    with torch.no_grad():
        eager = gpu(xs)
        g, out = capture(lambda: gpu(xs))
        g.replay()
        torch.cuda.synchronize()
    assert torch.equal(out, eager)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M", [1, 5, 16, 300])
@pytest.mark.parametrize("K", [512, 98])
def test_int4_dynamic_int4_weight_linear_is_exact(dtype, M, K):
    # Int4DynamicActivationInt4WeightConfig on the int8 tensor cores: int4 codes
    # of both operands (per token / per row, float32 scales) and exact sums.
    lin, x, got, cpu, gpu = _cpu_and_cuda(Int4DynamicActivationInt4WeightConfig(), dtype, M, K, with_module=True)
    # The seed's _int4_symm_cutlass_quant through the CPU primitives, then exact sums.
    a_s, _ = ops.choose_qparams_affine(x, "SYMMETRIC", [1, K], -8, 7, torch.finfo(torch.float32).eps, torch.float32,
                                       None, True, "NONE")
    a = ops.quantize_affine(x, [1, K], a_s, None, torch.int8, -8, 7, "NONE")
    codes, w_s, _ = lin.weight.original_weight_tensor.impl.get_plain()
    acc = a.double() @ codes.double().t()
    ref = a_s.double().reshape(-1, 1) * (w_s.double().reshape(1, -1) * acc) + lin.bias.double()
    assert got.dtype == dtype and got.shape == (M, 136)
    tol = 2 ** -7 if dtype == torch.bfloat16 else 2 ** -10
    assert torch.allclose(got.double(), ref, rtol=2 * tol, atol=2 * tol * ref.abs().max().item())
    assert torch.allclose(got.float(), cpu.float(), rtol=4 * tol, atol=4 * tol * ref.abs().max().item())
    replays_in_graph(gpu, x, got)


def test_int8_dynamic_unsupported_inputs_raise_on_cuda():
    lin = nn.Linear(256, 64)
    quantize_(lin, Int8DynamicActivationInt4WeightConfig(group_size=32))
    lin.weight = nn.Parameter(lin.weight.to("cuda"), requires_grad=False)
    lin.bias = nn.Parameter(lin.bias.cuda(), requires_grad=False)
    with pytest.raises(NotImplementedError, match="bfloat16 or float16 activations"):
        lin(torch.randn(2, 256, device="cuda"))
    w8 = nn.Linear(256, 64)
    quantize_(w8, Int8DynamicActivationInt8WeightConfig(), device="cuda")
    with pytest.raises(NotImplementedError, match="bfloat16 or float16 activations"):
        w8(torch.randn(2, 256, device="cuda"))


@pytest.mark.parametrize("nbits,group", [(4, 64), (4, 128), (3, 32), (8, 256)])
def test_hqq_solver_runs_on_cuda(nbits, group):
    # The CPU solver's per-group steps, one thread per group, in the same order: the same codes and
    # parameters but where the device's powf differs from glibc's in the last bit.
    torch.manual_seed(nbits + group)
    w = torch.randn(96, 512) * 0.02
    cq, cs, cz = ops.choose_qparams_and_quantize_affine_hqq(w, nbits, group)
    gq, gs, gz = ops.choose_qparams_and_quantize_affine_hqq(w.cuda(), nbits, group)
    assert gq.is_cuda and gq.dtype == torch.uint8 and gs.shape == gz.shape == (96, 512 // group)
    assert (gq.cpu().int() - cq.int()).abs().max() <= 1 and (gq.cpu() != cq).float().mean() < 1e-3
    assert torch.equal(gs.cpu(), cs)  # the min/max scale, never moved by the solver
    assert torch.allclose(gz.cpu(), cz, rtol=1e-4, atol=1e-4 * cz.abs().max().item())
    # use_hqq=True on a CUDA weight solves there and matches the CPU-quantized weight.
    lin = nn.Linear(512, 96, bias=False).to(torch.bfloat16)
    gpu = copy.deepcopy(lin).cuda()
    quantize_(lin, Int4WeightOnlyConfig(group_size=64, use_hqq=True))
    quantize_(gpu, Int4WeightOnlyConfig(group_size=64, use_hqq=True))
    assert gpu.weight.device.type == "cuda"
    dq_cpu, dq_gpu = lin.weight.dequantize().float(), gpu.weight.dequantize().float().cpu()
    assert (dq_cpu != dq_gpu).float().mean() < 1e-2
    assert (dq_cpu - dq_gpu).abs().max() <= 1e-2 * dq_cpu.abs().max()
