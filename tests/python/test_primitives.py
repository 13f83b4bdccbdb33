"""Quant primitive ops: an independent torch reference over many shapes and
dtypes, and every edge input with its defined result or error."""
import itertools

import pytest
import torch

import reference as ref
from conftest import sqnr
from torchao_cpp.dtypes import float8_e4m3fn, float8_e5m2
from torchao_cpp.quantization import quant_primitives as qp

ops = torch.ops.torchao_cpp
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _data(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.rand(shape[0], *([1] * (len(shape) - 1)), generator=g) * 3
    return x.to(dtype)


BLOCKS = [((6, 96), (1, 96)), ((6, 96), (1, 32)), ((6, 96), (6, 96)), ((4, 6, 64), (1, 1, 16)), ((4, 6, 64), (2, 3, 64))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,block", BLOCKS)
@pytest.mark.parametrize("mapping,preserve_zero,domain,qmin,qmax,scale_dtype", [
    ("SYMMETRIC", True, "INT", -128, 127, None),
    ("SYMMETRIC", True, "NONE", -8, 7, torch.float32),
    ("SYMMETRIC", True, "INT", -1, 0, None),
    ("SYMMETRIC_NO_CLIPPING_ERR", True, "INT", -8, 7, None),
    ("ASYMMETRIC", True, "INT", 0, 255, None),
    ("ASYMMETRIC", True, "INT", -4, 3, torch.float32),
    ("ASYMMETRIC", False, "FLOAT", 0, 15, None),
    ("ASYMMETRIC", True, "NONE", -128, 127, None),
])
def test_matches_torch_reference(dtype, shape, block, mapping, preserve_zero, domain, qmin, qmax, scale_dtype):
    x = _data(shape, dtype)
    eps = 1e-6 if domain == "FLOAT" else None
    s, z = ops.choose_qparams_affine(x, mapping, list(block), qmin, qmax, eps, scale_dtype, None, preserve_zero, domain)
    rs, rz = ref.choose_qparams(x, mapping, list(block), qmin, qmax, eps, scale_dtype, None, preserve_zero, domain)
    assert s.dtype == rs.dtype and s.shape == rs.shape
    assert torch.equal(s, rs)
    zp = None if domain == "NONE" else z
    if rz is not None:
        assert torch.equal(z, rz)
    out_dtype = torch.uint8 if qmin >= 0 else torch.int8
    q = ops.quantize_affine(x, list(block), s, zp, out_dtype, qmin, qmax, domain)
    assert torch.equal(q, ref.quantize(x, list(block), s, zp, out_dtype, qmin, qmax, domain))
    for od in DTYPES:
        d = ops.dequantize_affine(q, list(block), s, zp, qmin, qmax, domain, od)
        assert d.dtype == od
        assert torch.equal(d, ref.dequantize(q, list(block), s, zp, qmin, qmax, domain, od))


@pytest.mark.parametrize("bits,signed", list(itertools.product(range(1, 9), [True, False])))
def test_every_bit_width(bits, signed):
    target = getattr(qp._dtypes, f"{'int' if signed else 'uint'}{bits}", None) if bits < 8 else (
        torch.int8 if signed else torch.uint8)
    qmin, qmax = qp._dtypes.dtype_range(target)
    x = _data((8, 64), torch.float32, seed=bits)
    s, z = qp.choose_qparams_affine(x, qp.MappingType.ASYMMETRIC, [1, 16], target)
    q = qp.quantize_affine(x, [1, 16], s, z, target)
    assert q.dtype == (torch.int8 if signed else torch.uint8)
    assert int(q.min()) >= qmin and int(q.max()) <= qmax
    assert int(q.max()) - int(q.min()) == qmax - qmin  # the full range is used
    d = qp.dequantize_affine(q, [1, 16], s, z, target)
    # Asymmetric quantization error is at most half a step per element.
    step = s.repeat_interleave(16, dim=1)
    assert ((d - x).abs() <= step / 2 + 1e-6).all()


def test_sqnr_grows_with_bits():
    x = _data((32, 256), torch.float32)
    prev = 0.0
    for bits in (2, 4, 8):
        target = {2: qp._dtypes.int2, 4: qp._dtypes.int4, 8: torch.int8}[bits]
        s, z = qp.choose_qparams_affine(x, "SYMMETRIC", [1, 32], target)
        d = qp.dequantize_affine(qp.quantize_affine(x, [1, 32], s, z, target), [1, 32], s, z, target)
        cur = sqnr(x, d)
        assert cur > prev + 5, f"{bits} bits: {cur:.1f} dB"
        prev = cur
    assert prev > 40


# --- edge inputs ----------------------------------------------------------------------------


def test_empty_tensor():
    x = torch.empty(0, 64)
    s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 64], 0, 255)
    assert s.shape == (0,) and z.shape == (0,)
    q = ops.quantize_affine(x, [1, 64], s, z, torch.uint8, 0, 255)
    assert q.shape == (0, 64) and q.dtype == torch.uint8
    assert ops.dequantize_affine(q, [1, 64], s, z, 0, 255).shape == (0, 64)


def test_all_zero_block():
    x = torch.zeros(2, 32)
    x[1] = torch.linspace(-1, 1, 32)
    s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 32], -128, 127)
    assert s[0].item() == torch.finfo(torch.float32).eps  # clamped to eps
    assert z[0].item() == -128
    q = ops.quantize_affine(x, [1, 32], s, z, torch.int8, -128, 127)
    assert (q[0] == -128).all()
    assert (ops.dequantize_affine(q, [1, 32], s, z, -128, 127)[0] == 0).all()


def test_float16_all_zero_and_tiny_blocks():
    # eps (float32's) as a float16 scale: its reciprocal overflows float16, so the codes use the float32
    # reciprocal. torchao's x * inf would saturate every nonzero code and make 0 * inf = NaN a code.
    x = torch.zeros(3, 32, dtype=torch.float16)
    x[1] = torch.linspace(-1, 1, 32)
    x[2] = torch.linspace(-1e-5, 1e-5, 32)
    for mapping, zp_domain, qmin, qmax in [("SYMMETRIC", "INT", -128, 127), ("ASYMMETRIC", "INT", 0, 255)]:
        s, z = ops.choose_qparams_affine(x, mapping, [1, 32], qmin, qmax, eps=torch.finfo(torch.float32).eps)
        assert s.dtype == torch.float16 and s[0].item() > 0 and torch.isinf(1.0 / s[0].half())
        q = ops.quantize_affine(x, [1, 32], s, z, torch.int32, qmin, qmax, zp_domain)
        assert (q[0] == z[0]).all()  # the zero row: the code of 0
        assert torch.equal(q, ref.quantize(x, [1, 32], s, z, torch.int32, qmin, qmax, zp_domain))
        d = ops.dequantize_affine(q, [1, 32], s, z, qmin, qmax, zp_domain, torch.float32)
        assert (d[0] == 0).all()
        assert (d[2] - x[2].float()).abs().max() <= s[2].float() / 2 * 1.01  # in range: not saturated


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_block_is_rejected(bad):
    x = torch.randn(3, 16)
    x[2, 5] = bad
    with pytest.raises(ValueError, match=r"NaN or Inf \(block 2\)"):
        ops.choose_qparams_affine(x, "SYMMETRIC", [1, 16], -128, 127)
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.choose_qparams_affine_float8(x, [1, 16], "e4m3fn")


def test_non_finite_values_quantize_to_defined_codes():
    s = torch.tensor([0.5])
    q = ops.quantize_affine(torch.tensor([[float("nan"), float("inf"), -float("inf"), 1.0]]), [1, 4], s,
                            torch.tensor([3]), torch.int8, -8, 7, "INT")
    assert q.tolist() == [[3, 7, -8, 5]]  # NaN -> zero point; +-inf saturate
    f = ops.quantize_affine_float8(torch.tensor([[float("nan"), float("inf"), -1e9, 2.0]]), [1, 4], s, "e4m3fn")
    assert f.tolist() == [[0x7F, 0x7E, 0xFE, 0x48]]  # NaN stays NaN, infinities saturate to +-448, 4.0 = 0x48


def test_non_contiguous_and_transposed_inputs():
    base = _data((64, 48), torch.bfloat16)
    for x in (base.t(), base[:, ::2], base.t()[::2]):
        assert not x.is_contiguous()
        block = [1, x.shape[1]]
        s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", block, 0, 15)
        s2, z2 = ops.choose_qparams_affine(x.contiguous(), "ASYMMETRIC", block, 0, 15)
        assert torch.equal(s, s2) and torch.equal(z, z2)
        q = ops.quantize_affine(x, block, s, z, torch.uint8, 0, 15)
        assert torch.equal(q, ops.quantize_affine(x.contiguous(), block, s, z, torch.uint8, 0, 15))
        assert torch.equal(ops.dequantize_affine(q.t().contiguous().t(), block, s, z, 0, 15),
                           ops.dequantize_affine(q, block, s, z, 0, 15))


def test_block_size_errors():
    x = torch.randn(4, 10)
    with pytest.raises(ValueError, match=r"block_size\[1\] = 3 does not divide input size 10"):
        ops.choose_qparams_affine(x, "SYMMETRIC", [1, 3], -8, 7)
    with pytest.raises(ValueError, match="block_size has 1 entries but input has 2 dims"):
        ops.quantize_affine(x, [10], torch.ones(4), None, torch.int8, -8, 7, "NONE")
    with pytest.raises(ValueError, match=r"block_size\[0\] must be >= 1"):
        ops.dequantize_affine(torch.zeros(4, 10, dtype=torch.int8), [0, 10], torch.ones(4), None, -8, 7, "NONE")


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "SYMETRIC", [1, 4], -8, 7), ValueError, "mapping_type must be"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "SYMMETRIC", [1, 4], 7, -8), ValueError, "quant_min (7) must be < quant_max"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4).int(), "SYMMETRIC", [1, 4], -8, 7), TypeError, "input must be float32"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "SYMMETRIC", [1, 4], -8, 7, None, None, None, False), ValueError, "preserve_zero=False is not supported for symmetric"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "SYMMETRIC", [1, 4], -8, 7, None, None, None, True, "FLOAT"), ValueError, "must be INT or NONE for symmetric"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "ASYMMETRIC", [1, 4], 0, 15, None, None, None, True, "HALF"), ValueError, "zero_point_domain must be"),
    (lambda: ops.choose_qparams_affine(torch.randn(2, 4), "SYMMETRIC_NO_CLIPPING_ERR", [1, 4], 0, 15), ValueError, "needs quant_min < 0 < quant_max"),
    (lambda: ops.quantize_affine(torch.randn(2, 4), [1, 4], torch.ones(3), None, torch.int8, -8, 7, "NONE"), ValueError, "scale has 3 elements"),
    (lambda: ops.quantize_affine(torch.randn(2, 4), [1, 4], torch.tensor([1.0, 0.0]), None, torch.int8, -8, 7, "NONE"), ValueError, "scale must be finite and > 0"),
    (lambda: ops.quantize_affine(torch.randn(2, 4), [1, 4], torch.ones(2), None, torch.float32, -8, 7, "NONE"), TypeError, "output_dtype must be uint8, int8, int16 or int32"),
    (lambda: ops.quantize_affine(torch.randn(2, 4), [1, 4], torch.ones(2), None, torch.int8, 0, 255, "NONE"), ValueError, "does not fit in"),
    (lambda: ops.quantize_affine(torch.randn(2, 4), [1, 4], torch.ones(2), None, torch.int8, -8, 7, "INT"), ValueError, "needs a zero_point"),
    (lambda: ops.dequantize_affine(torch.randn(2, 4), [1, 4], torch.ones(2), None, -8, 7, "NONE"), TypeError, "dequantize_affine: input must hold integer codes"),
    (lambda: ops.quantize_affine_float8(torch.randn(2, 4), [1, 4], torch.ones(2), "e4m3"), ValueError, "float8_dtype must be"),
    (lambda: ops.pack_bits(torch.tensor([[0, 9]], dtype=torch.int8), 3, 0), ValueError, "outside the 3-bit range"),
    (lambda: ops.pack_bits(torch.tensor([[0, 1]], dtype=torch.int8), 9, 0), ValueError, "bits must be in 1..8"),
    (lambda: ops.unpack_bits(torch.zeros(2, 3, dtype=torch.uint8), 4, 0, 8, torch.uint8), ValueError, "need 4"),
    (lambda: qp.quantize_affine(torch.randn(2, 4), [1, 4], torch.ones(2), None, torch.int8, -200, 7, "NONE"), ValueError, "outside torch.int8's range"),
])
def test_bad_arguments(call, exc, fragment):
    with pytest.raises(exc) as e:
        call()
    assert fragment in str(e.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduced_precision_inputs_compute_in_their_own_dtype(dtype):
    # torchao computes scales in the input's dtype: a bf16/fp16 scale is the
    # dtype-rounded quotient, not the float32 one.
    x = _data((4, 64), dtype)
    s, _ = ops.choose_qparams_affine(x, "SYMMETRIC", [1, 64], -8, 7)
    expect = torch.clamp((x.float().abs().amax(1) / 7.5).to(dtype).float(), min=torch.finfo(dtype).eps).to(dtype)
    assert s.dtype == dtype and torch.equal(s, expect)


# --- float8 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,fmax", [(float8_e4m3fn, 448.0), (float8_e5m2, 57344.0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_row", [True, False])
def test_float8_round_trip(fmt, fmax, dtype, per_row):
    x = _data((16, 64), dtype)
    block = [1, 64] if per_row else [16, 64]
    s = qp.choose_qparams_affine_float8(x, fmt, block, torch.float32)
    assert s.shape == ((16,) if per_row else ())
    q = qp.quantize_affine_float8(x, s, fmt, block)
    assert q.dtype == torch.uint8
    d = qp.dequantize_affine_float8(q, s, dtype, fmt, block)
    assert d.dtype == dtype
    # The largest magnitude of each block maps onto the format's max.
    assert torch.allclose(d.float().abs().amax(1 if per_row else (0, 1)), x.float().abs().amax(1 if per_row else (0, 1)), rtol=1e-2)
    assert sqnr(x.float(), d.float()) > (28 if fmt is float8_e4m3fn else 22)


def test_float8_torch_dtype_views():
    x = torch.randn(4, 8)
    s = qp.choose_qparams_affine_float8(x)
    if isinstance(float8_e4m3fn, torch.dtype):
        q = qp.quantize_affine_float8(x, s, as_torch_float8=True)
        assert q.dtype == torch.float8_e4m3fn
        assert torch.equal(qp.dequantize_affine_float8(q, s), qp.dequantize_affine_float8(q.view(torch.uint8), s))
        assert torch.equal(q.float() * s, qp.dequantize_affine_float8(q, s))  # torch's own float8 decoding agrees
    else:
        with pytest.raises(TypeError, match="has no float8 dtypes"):
            qp.quantize_affine_float8(x, s, as_torch_float8=True)


# --- activation quantizers and meta ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_quantizers_on_3d_inputs(dtype):
    x = _data((2, 5, 48), dtype)
    q, s, z = qp._int8_asymm_per_token_quant(x)
    assert q.shape == x.shape and s.shape == (2, 5) and s.dtype == torch.float32 and z.dtype == torch.int8
    q, s, z = qp._int8_symm_per_token_reduced_range_quant(x)
    assert int(q.min()) >= -127 and int(q.max()) == 127
    assert s.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    assert (z == 0).all()


def test_meta_tensors_give_shapes_and_dtypes():
    x = torch.empty(4, 6, 64, device="meta", dtype=torch.bfloat16)
    s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 1, 32], 0, 15, None, torch.float32, torch.int32)
    assert s.device.type == "meta" and s.shape == (4, 6, 2) and s.dtype == torch.float32 and z.dtype == torch.int32
    q = ops.quantize_affine(x, [1, 1, 32], s, z, torch.uint8, 0, 15)
    assert q.shape == x.shape and q.dtype == torch.uint8 and q.device.type == "meta"
    assert ops.dequantize_affine(q, [1, 1, 32], s, z, 0, 15, "INT", torch.bfloat16).dtype == torch.bfloat16
    assert ops.quantize_affine_float8(x, [4, 6, 64], torch.empty((), device="meta"), "e5m2").dtype == torch.uint8
    assert ops.int8_asymm_per_token_quant(x)[1].shape == (4, 6)
    assert ops.pack_bits(torch.empty(3, 10, device="meta", dtype=torch.uint8), 3, 0).shape == (3, 4)


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_bits_round_trip_and_size(bits):
    codes = torch.randint(0, 1 << bits, (5, 37), dtype=torch.int32).to(torch.uint8)
    p = ops.pack_bits(codes, bits, 0)
    assert p.shape == (5, (37 * bits + 7) // 8)
    assert torch.equal(ops.unpack_bits(p, bits, 0, 37, torch.uint8), codes)


def test_results_do_not_depend_on_the_thread_count():
    x = _data((64, 256), torch.bfloat16)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            s, z = ops.choose_qparams_affine(x, "ASYMMETRIC", [1, 32], 0, 15, 1e-6, None, None, False, "FLOAT")
            q = ops.quantize_affine(x, [1, 32], s, z, torch.uint8, 0, 15, "FLOAT")
            d = ops.dequantize_affine(q, [1, 32], s, z, 0, 15, "FLOAT", torch.bfloat16)
            y = ops.weight_only_linear(x[:5], ops.pack_bits(q, 4, 0), "packed", 4, 64, 256, 32, s, z, 0, 15, "FLOAT")
            outs.append((s, z, q, d, y))
    finally:
        torch.set_num_threads(before)
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other))


# --- float-x primitives (FPXWeightOnlyConfig) ------------------------------------------------------------

FLOATX_FORMATS = [(3, 2), (2, 3), (2, 2), (2, 1), (4, 3), (1, 1), (1, 0), (5, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ebits,mbits", FLOATX_FORMATS)
def test_floatx_primitives_match_the_enumerating_reference(ebits, mbits, dtype):
    w = _data((7, 200), dtype, seed=ebits * 8 + mbits)
    scale = qp.choose_qparams_affine_floatx(w, ebits, mbits)
    assert scale.dtype == dtype and scale.shape == (7,)
    assert torch.equal(scale, ref.choose_qparams_floatx(w, ebits, mbits))
    codes = qp.quantize_affine_floatx(w, scale, ebits, mbits)
    want = ref.quantize_floatx(w, scale, ebits, mbits)
    assert codes.dtype == torch.uint8 and codes.shape == w.shape
    assert torch.equal(codes, want), f"{int((codes != want).sum())} codes differ"
    for out in DTYPES:
        deq = qp.dequantize_affine_floatx(codes, scale, ebits, mbits, out)
        assert deq.dtype == out and torch.equal(deq, ref.dequantize_floatx(codes, scale, ebits, mbits, out))
    # Every code of the format round-trips through its value (scale 1).
    n = 1 << (1 + ebits + mbits)
    every = torch.arange(n, dtype=torch.uint8).reshape(1, n)
    one = torch.ones(1)
    vals = qp.dequantize_affine_floatx(every, one, ebits, mbits)
    assert torch.equal(qp.quantize_affine_floatx(vals, one, ebits, mbits), every)
    assert torch.equal(vals[0, : n // 2].double(), ref.floatx_values(ebits, mbits))  # the non-negative codes


def test_floatx_primitive_edges():
    one = torch.ones(1)
    # fp6 e3m2: ties to even (0.09375 between 1/16 and 2/16), saturation (Inf too), signed zeros, half the
    # smallest subnormal to zero, a third of the way up rounding down.
    x = torch.tensor([[0.09375, 29.0, float("inf"), -float("inf"), -0.0, 1e-30, -1e-30, 1 / 32, 0.25 + 1 / 48]])
    assert qp.quantize_affine_floatx(x, one, 3, 2).tolist() == [[2, 31, 31, 63, 32, 0, 32, 0, 4]]
    # A NaN input: torchao's integer path on the NaN's bits (the default +NaN -> 14, -NaN -> 46 in fp6 e3m2).
    nan = torch.tensor([[float("nan"), -float("nan")]])
    got = qp.quantize_affine_floatx(nan, one, 3, 2).tolist()[0]
    signs = torch.signbit(nan[0]).tolist()
    assert got == [46 if s else 14 for s in signs]
    # choose refuses non-finite rows, naming the row.
    with pytest.raises(ValueError, match="choose_qparams_affine_floatx: row 1 of the weight holds NaN or Inf"):
        qp.choose_qparams_affine_floatx(torch.tensor([[1.0, 2.0], [float("inf"), 0.0]]), 3, 2)
    # An all-zero row: scale 1e-12 / 28 (0 in float16, where the row dequantizes to 0).
    z = qp.choose_qparams_affine_floatx(torch.zeros(2, 4), 3, 2)
    assert torch.equal(z, torch.full((2,), 1e-12) / 28.0)
    assert qp.choose_qparams_affine_floatx(torch.zeros(2, 4, dtype=torch.float16), 3, 2).tolist() == [0.0, 0.0]
    # Non-contiguous inputs give the contiguous result; meta inputs their shapes.
    w = torch.randn(64, 6)
    s = qp.choose_qparams_affine_floatx(w.t(), 2, 2)
    assert torch.equal(s, qp.choose_qparams_affine_floatx(w.t().contiguous(), 2, 2))
    assert torch.equal(qp.quantize_affine_floatx(w.t(), s, 2, 2), qp.quantize_affine_floatx(w.t().contiguous(), s, 2, 2))
    m = torch.empty(6, 64, device="meta")
    assert ops.choose_qparams_affine_floatx(m, 3, 2).shape == (6,)
    assert ops.quantize_affine_floatx(m, torch.empty(6, device="meta"), 3, 2).dtype == torch.uint8
    assert ops.dequantize_affine_floatx(torch.empty(6, 64, dtype=torch.uint8, device="meta"),
                                        torch.empty(6, device="meta"), 3, 2, torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: qp.choose_qparams_affine_floatx(torch.randn(4, 8), 0, 2), ValueError,
     "choose_qparams_affine_floatx: (ebits, mbits) = (0, 2) is not a float-x format"),
    (lambda: qp.quantize_affine_floatx(torch.randn(4, 8), torch.ones(4), 4, 4), ValueError,
     "quantize_affine_floatx: (ebits, mbits) = (4, 4) is not a float-x format: ebits >= 1, mbits >= 0 and "
     "1 + ebits + mbits <= 8"),
    (lambda: qp.choose_qparams_affine_floatx(torch.randn(2, 4, 8), 3, 2), ValueError,
     "input must be 2-d (out_features, in_features), got shape [2, 4, 8]"),
    (lambda: qp.choose_qparams_affine_floatx(torch.randn(4, 8).double(), 3, 2), TypeError,
     "choose_qparams_affine_floatx: input must be float32, bfloat16 or float16, got Double"),
    (lambda: qp.quantize_affine_floatx(torch.randn(4, 8), torch.ones(3), 3, 2), ValueError,
     "quantize_affine_floatx: scale has 3 elements, expected 4 (one per row)"),
    (lambda: qp.quantize_affine_floatx(torch.randn(4, 8), torch.ones(4, dtype=torch.int32), 3, 2), TypeError,
     "quantize_affine_floatx: scale must be float32, bfloat16 or float16, got Int"),
    (lambda: qp.dequantize_affine_floatx(torch.zeros(4, 8, dtype=torch.int8), torch.ones(4), 3, 2), TypeError,
     "dequantize_affine_floatx: input (codes) must be uint8, got Char"),
    (lambda: qp.dequantize_affine_floatx(torch.zeros(4, 8, dtype=torch.uint8), torch.ones(4), 3, 2, torch.int32),
     TypeError, "dequantize_affine_floatx: output_dtype must be float32, bfloat16 or float16, got Int"),
    (lambda: qp.quantize_affine_floatx(torch.randn(4, 8), torch.ones(4, device="meta"), 3, 2), ValueError,
     "quantize_affine_floatx: scale is on meta, the input on cpu"),
])
def test_floatx_primitive_bad_inputs(call, exc, fragment):
    with pytest.raises(exc) as e:
        call()
    assert fragment in str(e.value)
