"""LinearActivationWeightObservedTensor: a float weight whose linears feed observers
(mirrors torchao.quantization.linear_activation_weight_observed_tensor).

The tensor is the float weight itself (same storage, shape and dtype); in
`F.linear` it first passes the input through `input_observer` and the weight
through `weight_observer`, then computes the float linear, so calibration
changes no output. `insert_observers_` (quant_api) installs it on a model.

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from torchao_cpp.quantization import MappingType, PerTensor
    >>> from torchao_cpp.quantization.observer import AffineQuantizedMinMaxObserver
    >>> obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerTensor())
    >>> w = LinearActivationWeightObservedTensor.from_float(torch.randn(4, 8), input_observer=obs)
    >>> F.linear(torch.ones(2, 8), w).shape, obs.max_val.item()
    (torch.Size([2, 4]), 1.0)
"""
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..dtypes.affine_quantized_tensor import call_unwrapped, linear_args
from .observer import AffineQuantizedObserverBase

__all__ = ["LinearActivationWeightObservedTensor"]

# Ops that return the observed weight itself (nn.Parameter's detach, requires_grad_).
_SELF = {torch.Tensor.detach, torch.Tensor.requires_grad_}


class LinearActivationWeightObservedTensor(torch.Tensor):
    """A float weight that runs its observers in F.linear."""

    input_observer: Optional[AffineQuantizedObserverBase]
    weight_observer: Optional[AffineQuantizedObserverBase]

    @staticmethod
    def __new__(cls, original_weight_tensor: torch.Tensor, input_observer: Optional[AffineQuantizedObserverBase] = None,
                weight_observer: Optional[AffineQuantizedObserverBase] = None):
        if not isinstance(original_weight_tensor, torch.Tensor) or not original_weight_tensor.is_floating_point():
            raise TypeError("LinearActivationWeightObservedTensor: original_weight_tensor must be a float tensor, got "
                            f"{type(original_weight_tensor).__name__} {getattr(original_weight_tensor, 'dtype', '')}")
        for name, obs in (("input_observer", input_observer), ("weight_observer", weight_observer)):
            if obs is not None and not callable(obs):
                raise TypeError(f"LinearActivationWeightObservedTensor: {name} must be an observer module or None, "
                                f"got {type(obs).__name__}")
        plain = original_weight_tensor.detach()
        if type(plain) is not torch.Tensor:
            plain = plain.as_subclass(torch.Tensor)
        t = torch.Tensor._make_subclass(cls, plain, original_weight_tensor.requires_grad)
        t.input_observer = input_observer
        t.weight_observer = weight_observer
        return t

    def __init__(self, original_weight_tensor: torch.Tensor, input_observer: Any = None, weight_observer: Any = None):
        pass

    @classmethod
    def from_float(cls, original_weight_tensor: torch.Tensor, input_observer: Any = None,
                   weight_observer: Any = None) -> "LinearActivationWeightObservedTensor":
        return cls(original_weight_tensor, input_observer, weight_observer)

    @property
    def original_weight_tensor(self) -> torch.Tensor:
        """The float weight as a plain tensor (same storage)."""
        with torch._C.DisableTorchFunction():
            return self.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return (f"LinearActivationWeightObservedTensor(shape={tuple(self.shape)}, dtype={self.dtype}, "
                f"input_observer={type(self.input_observer).__name__ if self.input_observer is not None else None}, "
                f"weight_observer={type(self.weight_observer).__name__ if self.weight_observer is not None else None})")

    def _state(self) -> tuple:
        with torch._C.DisableTorchFunction():
            w = self.detach().as_subclass(torch.Tensor).requires_grad_(self.requires_grad)
        return (w, self.input_observer, self.weight_observer, bool(getattr(self, "_is_param", False)))

    def __reduce_ex__(self, protocol):
        # Pickling (torch.save) keeps the float weight and the observers.
        return (_rebuild, self._state())

    def __deepcopy__(self, memo):
        import copy

        if id(self) in memo:
            return memo[id(self)]
        w, i, o, p = self._state()
        out = _rebuild(w.detach().clone().requires_grad_(w.requires_grad), copy.deepcopy(i, memo),
                       copy.deepcopy(o, memo), p)
        memo[id(self)] = out
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w, bias = linear_args(args, kwargs)
            if isinstance(w, LinearActivationWeightObservedTensor):
                if w.input_observer is not None:
                    x = w.input_observer(x)
                weight = w.original_weight_tensor
                if w.weight_observer is not None:
                    weight = w.weight_observer(weight)
                return F.linear(x, weight, bias)
        if func in _SELF and isinstance(args[0], LinearActivationWeightObservedTensor):
            if func is torch.Tensor.requires_grad_:
                with torch._C.DisableTorchFunction():
                    func(*args, **kwargs)
            return args[0]
        if getattr(func, "__name__", "") == "__get__":  # attributes (grad_fn, is_leaf, ...) of the tensor itself
            with torch._C.DisableTorchFunction():
                return func(*args, **kwargs)
        # Anything else: the plain float weight.
        return call_unwrapped(func, args, kwargs, LinearActivationWeightObservedTensor,
                              lambda t: t.original_weight_tensor)


def _rebuild(weight: torch.Tensor, input_observer: Any, weight_observer: Any, is_param: bool):
    t = LinearActivationWeightObservedTensor(weight, input_observer, weight_observer)
    if is_param:
        t._is_param = True
    return t
