"""Python faces of the C++ quantized-tensor classes.

`AffineQuantizedTensor` and `LinearActivationQuantizedTensor` are torch.Tensor
subclasses that carry a `torch.classes.torchao_cpp` object (`.impl`). They
report the original shape and float dtype; `F.linear` runs the C++ kernels on
the stored codes; any other op sees the dequantized weight.
"""
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}

# Ops that keep a quantized weight as it is.
_SELF = {torch.Tensor.detach, torch.Tensor.requires_grad_}
# Ops that only read metadata: run on the wrapper itself, never dequantize.
_METADATA = {torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.is_floating_point,
             torch.Tensor.element_size, torch.Tensor.is_complex}
# dtype conversions: a no-op for the weight's own dtype, refused otherwise.
_CASTS = {torch.Tensor.float: torch.float32, torch.Tensor.bfloat16: torch.bfloat16, torch.Tensor.half: torch.float16}


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' / 'bfloat16' / 'float16' for the C++ classes.

    Example:
        >>> dtype_name(torch.bfloat16)
        'bfloat16'
    """
    if dtype not in _DTYPE_NAMES:
        raise TypeError(f"expected a float32, bfloat16 or float16 tensor, got {dtype}")
    return _DTYPE_NAMES[dtype]


def linear_args(args: tuple, kwargs: dict) -> Tuple[Any, Any, Any]:
    """(input, weight, bias) of an F.linear call as __torch_function__ receives it."""
    return args[0], args[1], args[2] if len(args) > 2 else kwargs.get("bias")


def call_unwrapped(func: Any, args: tuple, kwargs: dict, cls: type, unwrap: Any) -> Any:
    """func with every `cls` tensor in args / kwargs (also inside lists and tuples) replaced
    by unwrap(tensor), torch functions disabled: the fallback of the weight wrappers'
    __torch_function__."""

    def plain(a):
        if isinstance(a, cls):
            return unwrap(a)
        if isinstance(a, (list, tuple)):
            return type(a)(plain(b) for b in a)
        return a

    with torch._C.DisableTorchFunction():
        return func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})


class _Frozen:
    """A quantized weight handed to an autograd.Function as a plain object: the weight is
    frozen, so autograd must not treat it as one of the function's tensor inputs."""

    __slots__ = ("weight",)

    def __init__(self, weight: "_QuantizedTensorBase"):
        self.weight = weight


class _QuantizedLinear(torch.autograd.Function):
    """The quantized linear with gradients for its input and bias, as a float linear over the
    dequantized weight has them (straight through any activation quantization); the
    quantized weight is frozen and gets none. Used only where autograd records the call."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: Optional[torch.Tensor], frozen: _Frozen) -> torch.Tensor:
        ctx.frozen = frozen
        ctx.bias_shape = None if bias is None else bias.shape
        return frozen.weight._impl_linear(x, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            w = ctx.frozen.weight.dequantize()  # (out_features, in_features), the weight the kernels multiply
            grad_x = grad.matmul(w.to(device=grad.device, dtype=grad.dtype))
        if ctx.bias_shape is not None and ctx.needs_input_grad[1]:
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0).reshape(ctx.bias_shape)
        return grad_x, grad_bias, None


def _rebuild(cls, args: tuple, is_param: bool):
    t = cls(*args)
    if is_param:
        t._is_param = True
    return t


class _QuantizedTensorBase(torch.Tensor):
    @property
    def impl(self) -> Any:
        """The torch.classes.torchao_cpp object holding the data."""
        return self._impl

    @impl.setter
    def impl(self, value: Any) -> None:
        self._impl = value
        # Looked up once: a ScriptObject builds a new method object on every
        # attribute access, 2 of the 9 us a small linear call costs.
        self._impl_linear = value.linear

    @staticmethod
    def __new__(cls, impl: Any, shape, dtype: torch.dtype, device: torch.device):
        return torch.Tensor._make_wrapper_subclass(cls, list(shape), dtype=dtype, device=device, requires_grad=False)

    def _moved(self, device: torch.device) -> "_QuantizedTensorBase":
        """A copy on `device`."""
        raise NotImplementedError

    def _dequantize_impl(self) -> torch.Tensor:
        raise NotImplementedError

    def _ctor_args(self) -> tuple:
        """Arguments that rebuild this object (pickling, deepcopy)."""
        raise NotImplementedError

    def _assign(self, other: "_QuantizedTensorBase") -> None:
        """Takes over `other`'s contents (load_state_dict's copy_)."""
        raise NotImplementedError

    def dequantize(self, output_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        out = self._dequantize_impl()
        return out if output_dtype is None else out.to(output_dtype)

    def _linear(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        if torch.jit.is_tracing():
            # The tracer cannot record a call on the C++ object (torch's own error names neither the
            # layer nor the way out).
            raise RuntimeError(
                f"torch.jit.trace cannot record a linear with a quantized weight ({type(self).__name__}): "
                "export the model with "
                "torchao_cpp.scripting.script(model) (TorchScript, loadable from C++) instead")
        if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
            return _QuantizedLinear.apply(x, bias, _Frozen(self))
        return self._impl_linear(x, bias)

    def __reduce_ex__(self, protocol):
        # torch.save / pickle: the C++ object pickles through its def_pickle state.
        return (_rebuild, (type(self), self._ctor_args(), bool(getattr(self, "_is_param", False))))

    def __deepcopy__(self, memo):
        import copy

        if id(self) in memo:
            return memo[id(self)]
        out = _rebuild(type(self), copy.deepcopy(self._ctor_args(), memo), bool(getattr(self, "_is_param", False)))
        memo[id(self)] = out
        return out

    def _copy_from(self, src: Any) -> "_QuantizedTensorBase":
        if not isinstance(src, _QuantizedTensorBase):
            raise TypeError(
                f"cannot copy a {type(src).__name__} of dtype {getattr(src, 'dtype', None)} into a quantized weight "
                f"({self!r}): quantize the model the checkpoint came from with the same config first")
        if type(src) is not type(self) or repr(src) != repr(self):
            raise ValueError(f"checkpoint weight {src!r} does not match the model's {self!r}: "
                             "the checkpoint was quantized with another config")
        self._assign(src)
        return self

    def _to(self, *args, **kwargs) -> "_QuantizedTensorBase":
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        out = self._cast(dtype)
        if device is not None:
            device = torch.device(device)
            if device.type not in ("cpu", "cuda"):
                raise NotImplementedError(f"{type(self).__name__}: kernels exist for cpu and cuda, not {device}")
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", torch.cuda.current_device())
            if device != self.device:
                out = out._moved(device)
        return out

    def _cast(self, dtype: Optional[torch.dtype]) -> "_QuantizedTensorBase":
        if dtype is not None and dtype != self.dtype:
            raise NotImplementedError(
                f"{type(self).__name__} of dtype {self.dtype} cannot be converted to {dtype}; "
                "convert the float model before quantizing it")
        return self

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w, bias = linear_args(args, kwargs)
            if isinstance(w, _QuantizedTensorBase) and not isinstance(x, _QuantizedTensorBase):
                return w._linear(x, bias)
        if func in _SELF:
            return args[0]
        if func is torch.Tensor.copy_ and isinstance(args[0], _QuantizedTensorBase):
            return args[0]._copy_from(args[1])
        if func is torch.Tensor.to and isinstance(args[0], _QuantizedTensorBase):
            return args[0]._to(*args[1:], **kwargs)
        if func is torch.Tensor.cuda and isinstance(args[0], _QuantizedTensorBase):
            dev = args[1] if len(args) > 1 else kwargs.get("device")
            return args[0]._to(torch.device("cuda") if dev is None else torch.device("cuda", dev) if isinstance(dev, int)
                               else torch.device(dev))
        if func is torch.Tensor.cpu and isinstance(args[0], _QuantizedTensorBase):
            return args[0]._to("cpu")
        if func in _CASTS and isinstance(args[0], _QuantizedTensorBase):
            return args[0]._cast(_CASTS[func])
        name = getattr(func, "__name__", "")
        if func in _METADATA or name == "__get__":
            with torch._C.DisableTorchFunction():
                return func(*args, **kwargs)
        if name == "__set__" and len(args) == 2 and args[0] is args[1]:
            return None  # `param.data = param` from Module._apply
        if name == "__set__" and len(args) == 2 and isinstance(args[1], _QuantizedTensorBase):
            # Module._apply moving a quantized weight: a tensor's device cannot change in place.
            raise NotImplementedError(
                f"cannot move a quantized weight from {args[0].device} to {args[1].device} in place "
                "(module.to / .cuda after quantize_): move the float model first, then quantize_ it, "
                "or pass quantize_(model, config, device=...)")
        # Anything else runs on the dequantized weight.
        return call_unwrapped(func, args, kwargs, _QuantizedTensorBase, lambda t: t.dequantize())

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise NotImplementedError(f"{cls.__name__} does not support {func} at the dispatcher level")


class AffineQuantizedTensor(_QuantizedTensorBase):
    """A weight stored as affine-quantized codes (C++: torch.classes.torchao_cpp.AffineQuantizedTensor).

    Example:
        >>> import torch, torchao_cpp
        >>> from torchao_cpp.dtypes import AffineQuantizedTensor
        >>> w = AffineQuantizedTensor.from_float(torch.randn(8, 64), "ASYMMETRIC", [1, 32], torch.int8)
        >>> w.shape, w.dtype
        (torch.Size([8, 64]), torch.float32)
    """

    def __new__(cls, impl: Any):
        return super().__new__(cls, impl, impl.shape(), _DTYPES[impl.dtype()], torch.device(impl.device()))

    def __init__(self, impl: Any):
        self.impl = impl

    @classmethod
    def from_float(
        cls,
        weight: torch.Tensor,
        mapping_type: Any,
        block_size,
        target_dtype: Any,
        quant_min: Optional[int] = None,
        quant_max: Optional[int] = None,
        eps: Optional[float] = None,
        scale_dtype: Optional[torch.dtype] = None,
        zero_point_dtype: Optional[torch.dtype] = None,
        preserve_zero: bool = True,
        zero_point_domain: Any = "INT",
        layout: Any = None,
    ) -> "AffineQuantizedTensor":
        """Quantizes `weight` (torchao's to_affine_quantized_intx / _floatx).

        Example:
            >>> from torchao_cpp.dtypes import AffineQuantizedTensor, float8_e4m3fn
            >>> AffineQuantizedTensor.from_float(torch.randn(4, 32), "SYMMETRIC", [1, 32], float8_e4m3fn).layout
            'Float8Layout'
        """
        from ..quantization import quant_primitives as qp
        from . import _dtypes, layouts

        if weight.dtype not in _DTYPE_NAMES:
            raise TypeError(f"from_float: weight must be float32, bfloat16 or float16, got {weight.dtype}")
        block_size = list(block_size)
        if _dtypes.is_float8(target_dtype):
            layout = layout or layouts.Float8Layout()
            code_dtype, qmin, qmax = _dtypes.float8_name(target_dtype), 0, 0
        else:
            layout = layout or layouts.PlainLayout()
            qmin, qmax = qp._range(target_dtype, quant_min, quant_max)
            code_dtype = _code_dtype_for(target_dtype, qmin, qmax, layout)
        impl = torch.ops.torchao_cpp.affine_quantize(
            weight, qp._mapping_name(mapping_type), block_size, code_dtype, qmin, qmax, eps, scale_dtype,
            zero_point_dtype, preserve_zero, qp._domain_name(zero_point_domain), layout.name)
        return cls(impl)

    def _dequantize_impl(self) -> torch.Tensor:
        return self.impl.dequantize()

    def _moved(self, device: torch.device) -> "AffineQuantizedTensor":
        return AffineQuantizedTensor(self.impl.to(str(device)))

    def _ctor_args(self) -> tuple:
        return (self.impl,)

    def _assign(self, other: "AffineQuantizedTensor") -> None:
        self.impl = other.impl

    def get_plain(self) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(codes, scale, zero_point), codes unpacked one per element."""
        return tuple(self.impl.get_plain())

    @property
    def layout(self) -> str:
        return self.impl.layout()

    @property
    def block_size(self):
        return tuple(self.impl.block_size())

    def nbytes_quantized(self) -> int:
        """Bytes of codes + scales + zero points."""
        return self.impl.nbytes()

    def __repr__(self) -> str:
        return self.impl.repr()


class LinearActivationQuantizedTensor(_QuantizedTensorBase):
    """A quantized weight plus the quantizer applied to a linear's input.

    `act_quant` names the quantizer: int8 per token
    ("int8_asymm_per_token", "int8_symm_per_token_reduced_range",
    "int8_symm_per_token_reduced_range_noop_decode"), int4 per token
    ("int4_symm_per_token") or float8
    ("float8_e4m3fn_per_tensor", "float8_e4m3fn_per_row",
    "float8_e4m3fn_static", and the same for float8_e5m2). `act_scale` is
    the static quantizer's scale; `fast_accum` lets the CUDA float8 GEMM
    accumulate in its fast mode.

    Example:
        >>> import torch, torchao_cpp
        >>> from torchao_cpp.dtypes import AffineQuantizedTensor, LinearActivationQuantizedTensor
        >>> w = AffineQuantizedTensor.from_float(torch.randn(8, 64), "SYMMETRIC", [1, 64], torch.int8,
        ...                                      zero_point_domain="NONE")
        >>> lw = LinearActivationQuantizedTensor(w, "int8_symm_per_token_reduced_range")
        >>> torch.nn.functional.linear(torch.randn(2, 64), lw).shape
        torch.Size([2, 8])
    """

    def __new__(cls, weight: AffineQuantizedTensor, act_quant: str, act_scale: Optional[torch.Tensor] = None,
                fast_accum: bool = False):
        return super().__new__(cls, None, weight.shape, weight.dtype, weight.device)

    def __init__(self, weight: AffineQuantizedTensor, act_quant: str, act_scale: Optional[torch.Tensor] = None,
                 fast_accum: bool = False):
        self.original_weight_tensor = weight
        self.impl = torch.classes.torchao_cpp.LinearActivationQuantizedTensor(weight.impl, act_quant, act_scale,
                                                                             fast_accum)

    @classmethod
    def _wrap(cls, impl: Any) -> "LinearActivationQuantizedTensor":
        """The Python face of a C++ LinearActivationQuantizedTensor."""
        return cls(AffineQuantizedTensor(impl.weight()), impl.act_quant(), impl.act_scale(), impl.fast_accum())

    def _dequantize_impl(self) -> torch.Tensor:
        return self.original_weight_tensor.dequantize()

    def _moved(self, device: torch.device) -> "LinearActivationQuantizedTensor":
        return LinearActivationQuantizedTensor._wrap(self.impl.to(str(device)))

    def _ctor_args(self) -> tuple:
        return (self.original_weight_tensor, self.impl.act_quant(), self.impl.act_scale(), self.impl.fast_accum())

    def _assign(self, other: "LinearActivationQuantizedTensor") -> None:
        self.original_weight_tensor = other.original_weight_tensor
        self.impl = other.impl

    def nbytes_quantized(self) -> int:
        return self.original_weight_tensor.nbytes_quantized()

    def __repr__(self) -> str:
        return self.impl.repr()


def _code_torch_dtype(name: str) -> Any:
    from . import _dtypes

    return getattr(_dtypes, name, None) or getattr(torch, name)


# Layouts of the int4 weight-only (tinygemm) codes in [0, 15].
_TINYGEMM_LAYOUTS = ("TensorCoreTiledLayout", "Int4CPULayout", "Int4XPULayout")


def _code_dtype_for(target_dtype: Any, qmin: int, qmax: int, layout: Any) -> str:
    """Narrowest code dtype holding [qmin, qmax] (e.g. int32 with 0..15 -> uint4 for tinygemm)."""
    from . import _dtypes

    bits, signed = _dtypes.dtype_info(target_dtype)
    if bits > 8 or layout.name in _TINYGEMM_LAYOUTS:
        signed = qmin < 0
        span = max(qmax, -qmin - 1 if qmin < 0 else 0)
        bits = max(1, int(span).bit_length() + (1 if signed else 0))
        if layout.name in _TINYGEMM_LAYOUTS:
            if (qmin, qmax) != (0, 15):
                raise ValueError(f"{layout.name} holds codes in [0, 15], got [{qmin}, {qmax}]")
            bits, signed = 4, False
    if layout.name == "GemlitePackedLayout" and not signed and 0 <= qmin and qmax <= 15:
        bits = 4  # the seed passes uint8 with [0, 15] for gemlite's 4-bit codes
    if layout.name == "CutlassInt4PackedLayout":
        if qmin < -8 or qmax > 7:
            raise ValueError(f"CutlassInt4PackedLayout holds codes in [-8, 7], got [{qmin}, {qmax}]")
        bits, signed = 4, True
    return f"{'int' if signed else 'uint'}{bits}"
