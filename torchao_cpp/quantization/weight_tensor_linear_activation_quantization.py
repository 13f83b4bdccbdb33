"""A weight that quantizes the linear's input with fixed (calibrated) parameters
(mirrors torchao.quantization.weight_tensor_linear_activation_quantization).

`to_weight_tensor_with_linear_activation_quantization_metadata(weight,
input_quant_func, scale, zero_point, quant_kwargs)` wraps a weight (float or
quantized by this project); `F.linear(x, wrapped)` computes
`F.linear(input_quant_func(x, scale=scale, zero_point=zero_point, **quant_kwargs), weight, bias)`.
In this project `input_quant_func` returns a float tensor (the input after
quantization and dequantization: e.g. `fake_quantize_affine` below), which
the weight's own kernel then meets; for float8 static activations with the C++
kernel end to end, use Float8StaticActivationFloat8WeightConfig with the
calibrated scale instead.

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from torchao_cpp.quantization.weight_tensor_linear_activation_quantization import fake_quantize_affine
    >>> w = to_weight_tensor_with_linear_activation_quantization_metadata(
    ...     torch.eye(4), fake_quantize_affine, torch.tensor(0.5), torch.tensor(0),
    ...     {"block_size": [1, 4], "target_dtype": torch.int8})
    >>> F.linear(torch.tensor([[0.3, 0.9, -1.2, 2.0]]), w)
    tensor([[ 0.5000,  1.0000, -1.0000,  2.0000]])
"""
from typing import Any, Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from ..dtypes.affine_quantized_tensor import _QuantizedTensorBase, call_unwrapped, linear_args
from .quant_primitives import ZeroPointDomain, dequantize_affine, quantize_affine

__all__ = [
    "WeightTensorWithLinearActivationQuantizationMetadata",
    "to_weight_tensor_with_linear_activation_quantization_metadata",
    "fake_quantize_affine",
]


def fake_quantize_affine(
    input: torch.Tensor,
    scale: torch.Tensor,
    zero_point: Optional[torch.Tensor],
    block_size: Sequence[int],
    target_dtype: Any,
    quant_min: Optional[int] = None,
    quant_max: Optional[int] = None,
    zero_point_domain: ZeroPointDomain = ZeroPointDomain.INT,
) -> torch.Tensor:
    """dequantize_affine(quantize_affine(input)) with the given parameters, in input's dtype.

    A scale / zero point of one element applies to the whole input whatever its
    shape (per-tensor calibration).

    Example:
        >>> fake_quantize_affine(torch.tensor([[0.26, -0.74]]), torch.tensor(0.5), None, [1, 2], torch.int8,
        ...                      zero_point_domain=ZeroPointDomain.NONE)
        tensor([[ 0.5000, -0.5000]])
    """
    block = list(block_size)
    if scale.numel() == 1:
        block = list(input.shape)
    q = quantize_affine(input, block, scale, zero_point, target_dtype, quant_min, quant_max, zero_point_domain)
    return dequantize_affine(q, block, scale, zero_point, target_dtype, quant_min, quant_max, zero_point_domain,
                             output_dtype=input.dtype)


class WeightTensorWithLinearActivationQuantizationMetadata(torch.Tensor):
    """A weight plus the static quantization of the linear's input (see the module docstring)."""

    @staticmethod
    def __new__(cls, original_weight_tensor: torch.Tensor, input_quant_func: Callable[..., torch.Tensor],
                scale: torch.Tensor, zero_point: Optional[torch.Tensor], quant_kwargs: Dict[str, Any]):
        if not isinstance(original_weight_tensor, torch.Tensor):
            raise TypeError("original_weight_tensor must be a tensor, got "
                            f"{type(original_weight_tensor).__name__}")
        if not callable(input_quant_func):
            raise TypeError(f"input_quant_func must be callable, got {type(input_quant_func).__name__}")
        if not isinstance(scale, torch.Tensor):
            raise TypeError(f"scale must be a tensor, got {type(scale).__name__}")
        if zero_point is not None and not isinstance(zero_point, torch.Tensor):
            raise TypeError(f"zero_point must be a tensor or None, got {type(zero_point).__name__}")
        w = original_weight_tensor
        t = torch.Tensor._make_wrapper_subclass(cls, list(w.shape), dtype=w.dtype, device=w.device,
                                                requires_grad=False)
        t.original_weight_tensor = w
        t.input_quant_func = input_quant_func
        t.scale = scale
        t.zero_point = zero_point
        t.quant_kwargs = dict(quant_kwargs or {})
        return t

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    @classmethod
    def from_float(cls, input_float: torch.Tensor, input_quant_func: Callable[..., torch.Tensor],
                   scale: torch.Tensor, zero_point: Optional[torch.Tensor] = None,
                   quant_kwargs: Optional[Dict[str, Any]] = None):
        return cls(input_float, input_quant_func, scale, zero_point, quant_kwargs or {})

    def dequantize(self) -> torch.Tensor:
        w = self.original_weight_tensor
        return w.dequantize() if isinstance(w, _QuantizedTensorBase) else w

    def __repr__(self) -> str:
        fn = getattr(self.input_quant_func, "__name__", repr(self.input_quant_func))
        return (f"WeightTensorWithLinearActivationQuantizationMetadata(weight={self.original_weight_tensor!r}, "
                f"input_quant_func={fn}, scale={self.scale.tolist()})")

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self.original_weight_tensor, self.input_quant_func, self.scale, self.zero_point,
                           self.quant_kwargs, bool(getattr(self, "_is_param", False))))

    def __deepcopy__(self, memo):
        import copy

        if id(self) in memo:
            return memo[id(self)]
        out = _rebuild(copy.deepcopy(self.original_weight_tensor, memo), self.input_quant_func,
                       self.scale.clone(), None if self.zero_point is None else self.zero_point.clone(),
                       copy.deepcopy(self.quant_kwargs, memo), bool(getattr(self, "_is_param", False)))
        memo[id(self)] = out
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w, bias = linear_args(args, kwargs)
            if isinstance(w, WeightTensorWithLinearActivationQuantizationMetadata):
                xq = w.input_quant_func(x, scale=w.scale, zero_point=w.zero_point, **w.quant_kwargs)
                return F.linear(xq, w.original_weight_tensor, bias)
        if func in (torch.Tensor.detach, torch.Tensor.requires_grad_) and isinstance(args[0], cls):
            return args[0]
        return call_unwrapped(func, args, kwargs, cls, lambda t: t.dequantize())


    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise NotImplementedError(f"{cls.__name__} does not support {func} at the dispatcher level")


def _rebuild(w, fn, scale, zp, kw, is_param):
    t = WeightTensorWithLinearActivationQuantizationMetadata(w, fn, scale, zp, kw)
    if is_param:
        t._is_param = True
    return t


def to_weight_tensor_with_linear_activation_quantization_metadata(
    input_float: torch.Tensor,
    input_quant_func: Callable[..., torch.Tensor],
    scale: torch.Tensor,
    zero_point: Optional[torch.Tensor],
    quant_kwargs: Optional[Dict[str, Any]] = None,
) -> WeightTensorWithLinearActivationQuantizationMetadata:
    """The seed's constructor function (see the module docstring for an example)."""
    return WeightTensorWithLinearActivationQuantizationMetadata.from_float(input_float, input_quant_func, scale,
                                                                          zero_point, quant_kwargs)
