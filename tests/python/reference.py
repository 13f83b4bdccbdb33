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
