"""torchao 0.11's eager formulas written with plain torch ops: an independent
reference for shapes and dtypes that the golden file does not cover.

torch 1.13 lacks several float16 CPU kernels, so each op runs in float32 and
its result is rounded to the dtype PyTorch's type promotion gives it, which is
what eager PyTorch does for bfloat16/float16 tensors.
"""
from typing import List, Tuple

import torch

F32 = torch.float32


def _r(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round a float32 result to `dtype` and return it as float32 again."""
    return t.to(dtype).to(F32)


def _reduction(block_size: List[int], shape) -> Tuple[List[int], List[int]]:
    shape_for_reduction, reduction_dims, cur = [], [], 0
    for b, s in zip(block_size, shape):
        if b != s and b > 1:
            shape_for_reduction += [s // b, b]
            reduction_dims.append(cur + 1)
            cur += 2
        else:
            shape_for_reduction.append(s)
            if b != 1:
                reduction_dims.append(cur)
            cur += 1
    return shape_for_reduction, reduction_dims


def choose_qparams(x, mapping, block_size, qmin, qmax, eps=None, scale_dtype=None, zp_dtype=None,
                   preserve_zero=True, domain="INT"):
    T = x.dtype
    scale_dtype = scale_dtype or T
    zp_dtype = zp_dtype or T
    eps = torch.finfo(T).eps if eps is None else eps
    shape, dims = _reduction(block_size, x.shape)
    xr = x.view(shape).to(F32)
    mn = torch.amin(xr, dim=dims, keepdim=False)
    mx = torch.amax(xr, dim=dims, keepdim=False)
    if preserve_zero:
        mn = torch.clamp(mn, max=0.0)
        mx = torch.clamp(mx, min=0.0)
    if mapping in ("SYMMETRIC", "SYMMETRIC_NO_CLIPPING_ERR"):
        if mapping == "SYMMETRIC":
            scale = _r(torch.max(-mn, mx) / (float(qmax - qmin) / 2), T)
        else:
            smin, smax = _r(mn / float(qmin), T), _r(mx / float(qmax), T)
            scale = torch.where(smin > smax, smin, smax)
        zp = torch.full_like(scale, int((qmax + qmin + 1) / 2))
        scale = _r(torch.clamp(scale, min=eps), T)
    else:
        scale = _r(_r(mx - mn, T) / float(qmax - qmin), T)
        scale = _r(torch.clamp(scale, min=eps), T)
        if preserve_zero:
            zp = torch.clamp(_r(qmin - torch.round(_r(mn / scale, T)), T), qmin, qmax)
        else:
            zp = _r(mn + _r(scale * ((qmax + qmin + 1) / 2), T), T)
    zp = None if domain == "NONE" else zp.to(zp_dtype)
    return scale.to(scale_dtype), zp


def _view_params(block_size, shape, scale, zp):
    s, dims = _reduction(block_size, shape)
    after = list(s)
    for d in dims:
        after[d] = 1
    return s, scale.view(after), (None if zp is None else zp.view(after))


def quantize(x, block_size, scale, zp, out_dtype, qmin, qmax, domain="INT"):
    shape, s, z = _view_params(block_size, x.shape, scale, zp)
    C = torch.promote_types(x.dtype, scale.dtype)
    xr = x.view(shape).to(F32)
    sf = s.to(F32)
    if domain in ("INT", "NONE"):
        recip = _r(1.0 / sf, scale.dtype)
        recip = torch.where(torch.isinf(recip), 1.0 / sf, recip)  # overflowing reciprocals stay float32
        q = torch.round(_r(xr * recip, C))
        if domain == "INT":
            q = q + z.to(F32)
    else:
        P = torch.promote_types(z.dtype, scale.dtype)
        min_val = _r(z.to(F32) - _r(sf * ((qmax + qmin + 1) / 2), P), P)
        C = torch.promote_types(x.dtype, P)
        q = torch.round(_r(_r(xr - min_val, C) / sf, C))
    return torch.clamp(q, qmin, qmax).view(x.shape).to(out_dtype)


def dequantize(q, block_size, scale, zp, qmin, qmax, domain="INT", out_dtype=torch.float32):
    shape, s, z = _view_params(block_size, q.shape, scale, zp)
    qr = q.view(shape)
    sf = s.to(F32)
    if domain == "INT":
        d = qr.to(torch.int32)
        if z is not None:
            d = d - z.to(torch.int32)
        d = _r(_r(d.to(F32), out_dtype) * sf, out_dtype)
    elif domain == "NONE":
        d = _r(_r(qr.to(F32), out_dtype) * sf, out_dtype)
    else:
        d = _r(qr.to(F32) - (qmax + qmin + 1) / 2, out_dtype)
        d = _r(d * sf, out_dtype)
        if z is not None:
            d = _r(d + z.to(F32), out_dtype)
    return d.view(q.shape).to(out_dtype)


# --- float-x (FPXWeightOnlyConfig): torchao's choose_qparams_affine_floatx / quantize_affine_floatx /
# dequantize_affine_floatx, with the code chosen by enumerating every code's value (not torchao's bit tricks).


def floatx_values(ebits: int, mbits: int) -> torch.Tensor:
    """Values of the non-negative codes 0 .. 2^(ebits+mbits) - 1 (float64, index = code), by definition:
    exponent field 0 is subnormal (mantissa * 2^(1 - bias - mbits)), every other field normal."""
    bias = 2 ** (ebits - 1) - 1
    vals = []
    for c in range(2 ** (ebits + mbits)):
        e, mant = c >> mbits, c & (2 ** mbits - 1)
        vals.append(mant * 2.0 ** (1 - bias - mbits) if e == 0 else (1 + mant / 2 ** mbits) * 2.0 ** (e - bias))
    return torch.tensor(vals, dtype=torch.float64)


def floatx_max_normal(ebits: int, mbits: int) -> float:
    return float(floatx_values(ebits, mbits)[-1])


def choose_qparams_floatx(w: torch.Tensor, ebits: int, mbits: int) -> torch.Tensor:
    """One scale per row, computed in float32, returned in the weight's dtype."""
    return (w.float().abs().amax(1).clamp(min=1e-12) / floatx_max_normal(ebits, mbits)).to(w.dtype)


def encode_floatx(x: torch.Tensor, ebits: int, mbits: int) -> torch.Tensor:
    """uint8 codes of float32 `x` (no NaN): the nearest code value to |x| (ties to the even code), saturating
    at the largest value, with x's sign bit (so -0.0 and negatives that round to 0 give negative zero)."""
    vals = floatx_values(ebits, mbits)
    n = vals.numel()
    a = x.double().abs().reshape(-1, 1)
    d = (a - vals.reshape(1, -1)).abs()
    cand = d == d.min(1, keepdim=True).values
    even = cand & (torch.arange(n) % 2 == 0).reshape(1, -1)
    idx = torch.where(even.any(1), even.double().argmax(1), cand.double().argmax(1))
    idx = torch.where(a[:, 0] >= vals[-1], torch.full_like(idx, n - 1), idx)
    sign = torch.signbit(x.reshape(-1)).long() << (ebits + mbits)
    return (idx | sign).to(torch.uint8).reshape(x.shape)


def quantize_floatx(w: torch.Tensor, scale: torch.Tensor, ebits: int, mbits: int) -> torch.Tensor:
    return encode_floatx(w.float() / scale.float().reshape(-1, 1), ebits, mbits)


def dequantize_floatx(codes: torch.Tensor, scale: torch.Tensor, ebits: int, mbits: int,
                      out_dtype: torch.dtype) -> torch.Tensor:
    """value(code) in float32 times the float32 row scale, rounded to out_dtype."""
    vals = floatx_values(ebits, mbits)
    c = codes.long()
    mag = vals[c & (vals.numel() - 1)]
    v = torch.where((c >> (ebits + mbits)) & 1 == 1, -mag, mag).float()
    return (v * scale.float().reshape(-1, 1)).to(out_dtype)


def hqq(w, nbits, group_size, compute_dtype):
    """torchao's choose_qparams_and_quantize_affine_hqq (CPU: float32 solver, 20 rounds,
    lp_norm 0.7, beta 10, kappa 1.01, early stop), affine output format:
    (codes uint8 (N, K), scale (N, K/g), zero (N, K/g)) in compute_dtype."""
    W = w.to(F32).reshape(-1, group_size)
    mn = W.min(dim=1, keepdim=True)[0]
    mx = W.max(dim=1, keepdim=True)[0]
    max_v = 2 ** nbits - 1
    scale = (max_v / (mx - mn)).clamp(max=2e4)
    zero = -mn * scale
    if nbits == 4:
        zero = torch.round(zero)
    beta, best = 10.0, 1e4
    for _ in range(20):
        Wq = torch.round(W * scale + zero).clamp(0, max_v)
        Wr = (Wq - zero) / scale
        d = W - Wr
        We = torch.sign(d) * torch.relu(d.abs() - (1.0 / beta) * torch.pow(d.abs(), 0.7 - 1))
        zero = torch.mean(Wq - (W - We) * scale, dim=1, keepdim=True)
        beta *= 1.01
        err = float(torch.abs(W - Wr).mean())
        if err < best:
            best = err
        else:
            break
    Wq = torch.round(W * scale + zero).clamp(0, max_v)
    s = 1.0 / scale
    z = (((max_v + 1) / 2 - zero) * s)
    n = w.shape[0]
    return Wq.to(torch.uint8).reshape(w.shape), s.reshape(n, -1).to(compute_dtype), z.reshape(n, -1).to(compute_dtype)


def qqq(w, group_size):
    """torchao's choose_qparams_and_quantize_affine_qqq (4 bits) and the scale dequantize_affine_qqq
    multiplies the codes by: (codes int32, s_group float16 (N, K/g) or empty, s_channel float32 (N, 1),
    dequantization scale). Group codes are in [0, 15] around 8; per-channel codes in [-7, 7]."""
    T = w.dtype
    n, k = w.shape
    W = w.to(F32)
    if group_size < k:
        Wg = W.reshape(-1, group_size)
        s_group = _r(Wg.abs().amax(-1, keepdim=True) * (2 / 15), T)
        q = torch.round(_r(Wg / s_group, T))
        q = torch.nan_to_num(q, nan=0.0) + 8  # 0 / 0 in a zero group
        q = q.clamp(0, 15)
        R = torch.promote_types(torch.float16, T)
        w_ref = _r((q - 8) * s_group, R).reshape(n, k)
        s_channel = _r(w_ref.abs().amax(-1, keepdim=True) / 127.0, R)
        s_group = (s_group.reshape(n, -1) / s_channel).to(torch.float16)
        deq = _r(s_group.to(F32) * _r(s_channel, torch.float16), torch.float16)
        return q.reshape(n, k).int(), s_group, s_channel, deq
    s_channel = _r(W.abs().amax(-1, keepdim=True) / 7, T)
    q = torch.round(_r(W / s_channel, T)).clamp(-7, 7)
    s_channel = _r(s_channel / 16, T)
    return q.int(), torch.empty(0, dtype=torch.float16), s_channel, s_channel * 16
