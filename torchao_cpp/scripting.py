"""TorchScript export of quantized models.

`script(model)` returns a TorchScript module in which every quantized linear
calls `torch.ops.torchao_cpp.affine_quantized_linear` (or
`activation_quantized_linear`) on a `torch.classes.torchao_cpp` object. Saved
with `torch.jit.save`, it loads in C++ with LibTorch and this library only
(see `torchao_cpp_run` and `runner_path()`).
"""
import copy
import os
from typing import Optional

import torch
import torch.nn as nn

from .dtypes.affine_quantized_tensor import AffineQuantizedTensor, LinearActivationQuantizedTensor


class _ScriptableLinear(nn.Module):
    """Holds a torch.classes.torchao_cpp weight object and an optional bias."""

    bias: Optional[torch.Tensor]

    def __init__(self, weight, bias: Optional[torch.Tensor]):
        super().__init__()
        self.weight = weight
        self.bias = bias


class AffineQuantizedLinear(_ScriptableLinear):
    """Scriptable linear over an AffineQuantizedTensor object.

    Example:
        >>> from torchao_cpp.dtypes import AffineQuantizedTensor
        >>> w = AffineQuantizedTensor.from_float(torch.randn(4, 32), "SYMMETRIC", [1, 32], torch.int8)
        >>> AffineQuantizedLinear(w.impl, None)(torch.randn(2, 32)).shape
        torch.Size([2, 4])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.torchao_cpp.affine_quantized_linear(x, self.weight, self.bias)


class ActivationQuantizedLinear(_ScriptableLinear):
    """Scriptable linear over a LinearActivationQuantizedTensor object.

    Example:
        >>> from torchao_cpp.dtypes import AffineQuantizedTensor, LinearActivationQuantizedTensor
        >>> w = AffineQuantizedTensor.from_float(torch.randn(4, 32), "SYMMETRIC", [1, 32], torch.int8)
        >>> lw = LinearActivationQuantizedTensor(w, "int8_asymm_per_token")
        >>> ActivationQuantizedLinear(lw.impl, None)(torch.randn(2, 32)).shape
        torch.Size([2, 4])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.torchao_cpp.activation_quantized_linear(x, self.weight, self.bias)


def to_scriptable(model: nn.Module) -> nn.Module:
    """A copy of `model` whose quantized nn.Linear layers are scriptable modules (model is not changed).

    Example:
        >>> from torchao_cpp.quantization import quantize_, Int8WeightOnlyConfig
        >>> m = nn.Sequential(nn.Linear(32, 4)); quantize_(m, Int8WeightOnlyConfig())
        >>> type(to_scriptable(m)[0]).__name__
        'AffineQuantizedLinear'
    """
    model = copy.deepcopy(model)

    def convert(mod: nn.Module) -> nn.Module:
        if isinstance(mod, nn.Linear):
            w = mod.weight
            bias = None if mod.bias is None else mod.bias.detach().clone()
            if isinstance(w, LinearActivationQuantizedTensor):
                return ActivationQuantizedLinear(w.impl, bias)
            if isinstance(w, AffineQuantizedTensor):
                return AffineQuantizedLinear(w.impl, bias)
            return mod
        for name, child in mod.named_children():
            setattr(mod, name, convert(child))
        return mod

    return convert(model)


def script(model: nn.Module) -> torch.jit.ScriptModule:
    """TorchScript module of a quantized model (its linears call torch.ops.torchao_cpp.*).

    Example:
        >>> from torchao_cpp.quantization import quantize_, Int4WeightOnlyConfig
        >>> m = nn.Sequential(nn.Linear(64, 8), nn.ReLU()).eval(); quantize_(m, Int4WeightOnlyConfig(group_size=32))
        >>> ts = script(m)
        >>> x = torch.randn(2, 64)
        >>> torch.equal(ts(x), m(x))
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"script: model must be a torch.nn.Module, got {type(model).__name__}")
    return torch.jit.script(to_scriptable(model))


def runner_path() -> str:
    """Path of `torchao_cpp_run` (model.ts input.pt output.pt), the C++ runner built with the package.

    Example:
        >>> os.path.basename(runner_path())
        'torchao_cpp_run'
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "torchao_cpp_run")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: rebuild the package (pip install --no-build-isolation .)")
    return path
