"""Observers for static quantization (mirrors torchao.quantization.observer).

An observer is an nn.Module that records statistics of the tensors passed
through it (calibration) and turns them into quantization parameters with the
C++ `choose_qparams_affine` op, so the parameters are those the dynamic path
would compute on the same values.

Example:
    >>> import torch
    >>> from torchao_cpp.quantization import MappingType, PerTensor
    >>> obs = AffineQuantizedMinMaxObserver(MappingType.ASYMMETRIC, torch.uint8, PerTensor())
    >>> _ = obs(torch.tensor([[-1.0, 3.0]])); _ = obs(torch.tensor([[2.0, 5.0]]))
    >>> obs.min_val.item(), obs.max_val.item()
    (-1.0, 5.0)
    >>> scale, zero_point = obs.calculate_qparams()
    >>> round(scale.item(), 6), zero_point.item()
    (0.023529, 42.0)
"""
import functools
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..dtypes import _dtypes
from .granularity import Granularity, PerAxis, PerGroup, PerRow, PerTensor, PerToken
from .quant_primitives import MappingType, ZeroPointDomain, _domain_name, _mapping_name, choose_qparams_affine

__all__ = ["AffineQuantizedObserverBase", "AffineQuantizedMinMaxObserver", "get_block_size"]


def get_block_size(input_shape: Sequence[int], granularity: Granularity) -> Tuple[int, ...]:
    """The block size of `granularity` for a tensor of `input_shape` (the seed's get_block_size).

    Example:
        >>> get_block_size((4, 64), PerGroup(32)), get_block_size((4, 64), PerAxis(0))
        ((1, 32), (1, 64))
    """
    shape = tuple(int(s) for s in input_shape)
    if isinstance(granularity, PerTensor):
        return shape
    if isinstance(granularity, PerAxis):
        axis = granularity.axis
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"PerAxis({axis}) is out of range for a tensor of shape {shape}")
        block = list(shape)
        block[axis] = 1
        return tuple(block)
    if isinstance(granularity, (PerRow, PerToken)):
        if not shape:
            raise ValueError(f"{type(granularity).__name__}() needs a tensor with at least one dim, got a scalar")
        return (1,) * (len(shape) - 1) + (shape[-1],)
    if isinstance(granularity, PerGroup):
        if not shape or shape[-1] % granularity.group_size:
            raise ValueError(f"PerGroup({granularity.group_size}) does not divide the last dim of shape {shape}")
        return (1,) * (len(shape) - 1) + (granularity.group_size,)
    raise ValueError(f"unsupported granularity {granularity!r}; expected PerTensor, PerAxis, PerRow, PerToken or PerGroup")


def _with_args(cls_or_self: Any, *args: Any, **kwargs: Any) -> Any:
    """A factory that builds a new observer with these arguments on each call (the seed's with_args)."""
    return functools.partial(cls_or_self, *args, **kwargs)


def _block_min_max(x: torch.Tensor, block_size: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Min and max of each block of x, shaped as the seed's observer keeps them (reduced dims dropped)."""
    shape: List[int] = []
    dims: List[int] = []
    for s, b in zip(x.shape, block_size):
        if b != s and b > 1:
            shape += [s // b, b]
            dims.append(len(shape) - 1)
        else:
            if b != 1:
                dims.append(len(shape))
            shape.append(s)
    xr = x.reshape(shape)
    if not dims:
        return xr.clone(), xr.clone()
    return torch.amin(xr, dim=dims), torch.amax(xr, dim=dims)


class AffineQuantizedObserverBase(nn.Module):
    """Base of the affine quantization observers: the seed's arguments, validated at construction.

    `forward(input)` records statistics and returns `input` unchanged;
    `calculate_qparams()` returns (scale, zero_point), zero_point None for
    ZeroPointDomain.NONE.

    Example:
        >>> obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerRow())
        >>> isinstance(obs, AffineQuantizedObserverBase)
        True
    """

    with_args = classmethod(_with_args)

    def __init__(
        self,
        mapping_type: MappingType,
        target_dtype: Any,
        granularity: Granularity,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        eps: Optional[float] = None,
        scale_dtype: Optional[torch.dtype] = None,
        zero_point_dtype: Optional[torch.dtype] = None,
        preserve_zero: bool = True,
        zero_point_domain: ZeroPointDomain = ZeroPointDomain.INT,
    ):
        super().__init__()
        if granularity is None or not isinstance(granularity, Granularity):
            raise ValueError(f"{type(self).__name__}: granularity must be a Granularity (PerTensor(), PerAxis(0), "
                             f"...), got {granularity!r}")
        if zero_point_domain is None:
            raise ValueError(f"{type(self).__name__}: use ZeroPointDomain.NONE instead of None")
        _mapping_name(mapping_type)
        _domain_name(zero_point_domain)
        self.mapping_type = mapping_type
        self.target_dtype = target_dtype
        self.granularity = granularity
        self.quant_min = quant_min
        self.quant_max = quant_max
        self.eps = eps
        self.scale_dtype = scale_dtype
        self.zero_point_dtype = zero_point_dtype
        self.preserve_zero = preserve_zero
        self.zero_point_domain = zero_point_domain
        self._range()  # an unknown target dtype or a range outside it fails here, not after calibration

    def _range(self) -> Tuple[int, int]:
        if _dtypes.is_float8(self.target_dtype):
            fmax = int(_dtypes.float8_max(self.target_dtype))
            lo, hi = -fmax, fmax
        else:
            lo, hi = _dtypes.dtype_range(self.target_dtype)
        qmin = lo if self.quant_min is None else int(self.quant_min)
        qmax = hi if self.quant_max is None else int(self.quant_max)
        if not lo <= qmin < qmax <= hi:
            raise ValueError(f"{type(self).__name__}: quant range [{qmin}, {qmax}] is empty or outside "
                             f"{self.target_dtype}'s range [{lo}, {hi}]")
        return qmin, qmax

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def calculate_qparams(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        raise NotImplementedError


class AffineQuantizedMinMaxObserver(AffineQuantizedObserverBase):
    """Running min and max per block; qparams as choose_qparams_affine computes them from those.

    The parameters equal those of `choose_qparams_affine` on all the observed
    values at once (the seed's choose_qparams_affine_with_min_max), computed
    by the same C++ op: the [min, max] pair of each block is quantized as a
    block of two values, whose min and max are exactly those.

    Example:
        >>> obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerAxis(0))
        >>> _ = obs(torch.tensor([[1.0, -2.0], [0.5, 4.0]]))
        >>> obs.calculate_qparams()[0]
        tensor([0.0157, 0.0314])
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.numel() == 0:
            return input
        x = input.detach()
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__}: observes float tensors, got {x.dtype}")
        block = get_block_size(x.shape, self.granularity)
        mn, mx = _block_min_max(x, block)
        if not hasattr(self, "min_val"):
            self.min_val, self.max_val = mn, mx
            return input
        if self.min_val.shape != mn.shape:
            raise ValueError(f"{type(self).__name__}: blocks of shape {tuple(mn.shape)} do not match the "
                             f"{tuple(self.min_val.shape)} observed before (input shape {tuple(x.shape)})")
        self.min_val = torch.min(self.min_val, mn)
        self.max_val = torch.max(self.max_val, mx)
        return input

    def calculate_qparams(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if not hasattr(self, "min_val"):
            raise RuntimeError(f"{type(self).__name__}: nothing observed yet; run calibration data through the "
                               "observer (or the observed model) before calculate_qparams()")
        qmin, qmax = self._range()
        pairs = torch.stack([self.min_val.reshape(-1), self.max_val.reshape(-1)], dim=1)
        scale, zp = torch.ops.torchao_cpp.choose_qparams_affine(
            pairs, _mapping_name(self.mapping_type), [1, 2], qmin, qmax, self.eps, self.scale_dtype,
            self.zero_point_dtype, self.preserve_zero, _domain_name(self.zero_point_domain))
        scale = scale.reshape(self.min_val.shape)
        if _domain_name(self.zero_point_domain) == "NONE":
            return scale, None
        return scale, zp.reshape(self.min_val.shape)
