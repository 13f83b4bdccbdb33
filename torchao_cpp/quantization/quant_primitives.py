"""Affine quantization primitives (mirrors torchao.quantization.quant_primitives).

Thin wrappers over torch.ops.torchao_cpp.*: they accept torchao's argument
forms (enums, target dtypes such as torch.int8 or torchao_cpp.dtypes.uint4,
default ranges) and call the C++ ops. Results match torchao 0.11 bit for bit.
"""
import operator
from enum import Enum
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch

from ..dtypes import _dtypes


class MappingType(Enum):
    """How the float range maps onto the integer range.

    Example:
        >>> MappingType.SYMMETRIC.name
        'SYMMETRIC'
    """

    SYMMETRIC = 1
    SYMMETRIC_NO_CLIPPING_ERR = 2
    ASYMMETRIC = 3


class ZeroPointDomain(Enum):
    """INT: integer zero point; FLOAT: float zero point (tinygemm), zero not exact; NONE: no zero point.

    Example:
        >>> ZeroPointDomain.FLOAT.name
        'FLOAT'
    """

    INT = 1
    FLOAT = 2
    NONE = 3


def _mapping_name(m: Union[MappingType, str]) -> str:
    if isinstance(m, MappingType):
        return m.name
    if not isinstance(m, str):
        raise TypeError(f"mapping_type must be a MappingType, got {m!r}")
    if m in MappingType.__members__:
        return m
    raise ValueError(f"mapping_type must be a MappingType, got {m!r}")


def _domain_name(d: Union[ZeroPointDomain, str, None]) -> str:
    if d is None:
        return "NONE"
    if isinstance(d, ZeroPointDomain):
        return d.name
    if not isinstance(d, str):
        raise TypeError(f"zero_point_domain must be a ZeroPointDomain, got {d!r}")
    if d in ZeroPointDomain.__members__:
        return d
    raise ValueError(f"zero_point_domain must be a ZeroPointDomain, got {d!r}")


def _block_size(block_size: Sequence[int]) -> List[int]:
    """block_size as the ops take it: a list of ints."""
    try:
        return [operator.index(b) for b in block_size]
    except TypeError:
        raise TypeError(f"block_size must be a sequence of ints, got {block_size!r}") from None


def _range(target_dtype: Any, quant_min: Optional[int], quant_max: Optional[int]) -> Tuple[int, int]:
    """torchao's _get_and_check_qmin_qmax: defaults from the dtype, bounds checked."""
    lo, hi = _dtypes.dtype_range(target_dtype)
    qmin = lo if quant_min is None else int(quant_min)
    qmax = hi if quant_max is None else int(quant_max)
    if qmin < lo or qmax > hi:
        raise ValueError(f"quant range [{qmin}, {qmax}] is outside {target_dtype}'s range [{lo}, {hi}]")
    return qmin, qmax


def choose_qparams_affine(
    input: torch.Tensor,
    mapping_type: Union[MappingType, str],
    block_size: Sequence[int],
    target_dtype: Any,
    quant_min: Optional[int] = None,
    quant_max: Optional[int] = None,
    eps: Optional[float] = None,
    scale_dtype: Optional[torch.dtype] = None,
    zero_point_dtype: Optional[torch.dtype] = None,
    preserve_zero: bool = True,
    zero_point_domain: Union[ZeroPointDomain, str, None] = ZeroPointDomain.INT,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Scale and zero point per block (zero point None for ZeroPointDomain.NONE).

    Example:
        >>> s, z = choose_qparams_affine(torch.randn(4, 64), MappingType.ASYMMETRIC, [1, 32], torch.uint8)
        >>> s.shape, z.shape
        (torch.Size([4, 2]), torch.Size([4, 2]))
    """
    qmin, qmax = _range(target_dtype, quant_min, quant_max)
    domain = _domain_name(zero_point_domain)
    scale, zp = torch.ops.torchao_cpp.choose_qparams_affine(
        input, _mapping_name(mapping_type), _block_size(block_size), qmin, qmax, eps, scale_dtype, zero_point_dtype,
        preserve_zero, domain)
    return scale, (None if domain == "NONE" else zp)


def quantize_affine(
    input: torch.Tensor,
    block_size: Sequence[int],
    scale: torch.Tensor,
    zero_point: Optional[torch.Tensor],
    output_dtype: Any,
    quant_min: Optional[int] = None,
    quant_max: Optional[int] = None,
    zero_point_domain: Union[ZeroPointDomain, str, None] = ZeroPointDomain.INT,
) -> torch.Tensor:
    """Integer codes of `input` (sub-byte dtypes are stored in int8/uint8).

    Example:
        >>> x = torch.tensor([[-1.0, 0.0, 1.0, 3.0]])
        >>> s, z = choose_qparams_affine(x, MappingType.ASYMMETRIC, [1, 4], torch.int8)
        >>> quantize_affine(x, [1, 4], s, z, torch.int8).tolist()
        [[-128, -64, 0, 127]]
    """
    qmin, qmax = _range(output_dtype, quant_min, quant_max)
    return torch.ops.torchao_cpp.quantize_affine(
        input, _block_size(block_size), scale, zero_point, _dtypes.storage_dtype(output_dtype), qmin, qmax,
        _domain_name(zero_point_domain))


def dequantize_affine(
    input: torch.Tensor,
    block_size: Sequence[int],
    scale: torch.Tensor,
    zero_point: Optional[torch.Tensor],
    input_dtype: Any,
    quant_min: Optional[int] = None,
    quant_max: Optional[int] = None,
    zero_point_domain: Union[ZeroPointDomain, str, None] = ZeroPointDomain.INT,
    *,
    output_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Float values of integer codes.

    Example:
        >>> q = torch.tensor([[-128, -64, 0, 127]], dtype=torch.int8)
        >>> dequantize_affine(q, [1, 4], torch.tensor([4 / 255]), torch.tensor([-64]), torch.int8).shape
        torch.Size([1, 4])
    """
    qmin, qmax = _range(input_dtype, quant_min, quant_max)
    return torch.ops.torchao_cpp.dequantize_affine(
        input, _block_size(block_size), scale, zero_point, qmin, qmax, _domain_name(zero_point_domain), output_dtype)


def choose_qparams_affine_float8(
    tensor: torch.Tensor,
    float8_dtype: Any = _dtypes.float8_e4m3fn,
    block_size: Optional[Sequence[int]] = None,
    scale_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """float8 scale per block (per tensor when block_size is None): max|x| / max(float8).

    Example:
        >>> choose_qparams_affine_float8(torch.ones(2, 4) * 448.0).item()
        1.0
    """
    block = list(tensor.shape) if block_size is None else list(block_size)
    return torch.ops.torchao_cpp.choose_qparams_affine_float8(tensor, block, _dtypes.float8_name(float8_dtype), scale_dtype)


def _float8_block(tensor: torch.Tensor, scale: torch.Tensor, block_size: Optional[Sequence[int]]) -> List[int]:
    if block_size is not None:
        return list(block_size)
    if scale.numel() == 1:
        return list(tensor.shape)
    if tensor.dim() >= 1 and scale.numel() == tensor.numel() // tensor.shape[-1]:
        return [1] * (tensor.dim() - 1) + [tensor.shape[-1]]  # per row
    raise ValueError(
        f"cannot infer block_size from scale with {scale.numel()} elements for a tensor of shape {tuple(tensor.shape)}")


def quantize_affine_float8(
    tensor: torch.Tensor,
    scale: torch.Tensor,
    float8_dtype: Any = _dtypes.float8_e4m3fn,
    block_size: Optional[Sequence[int]] = None,
    as_torch_float8: bool = False,
) -> torch.Tensor:
    """float8 codes as uint8 bytes; `as_torch_float8=True` views them as torch's float8 dtype (torch >= 2.1).

    Example:
        >>> quantize_affine_float8(torch.tensor([448.0, -1.0]), torch.tensor(1.0)).tolist()
        [126, 184]
    """
    codes = torch.ops.torchao_cpp.quantize_affine_float8(
        tensor, _float8_block(tensor, scale, block_size), scale, _dtypes.float8_name(float8_dtype))
    if as_torch_float8:
        if not isinstance(float8_dtype, torch.dtype):
            raise TypeError(f"torch {torch.__version__} has no float8 dtypes; codes are returned as uint8")
        return codes.view(float8_dtype)
    return codes


def dequantize_affine_float8(
    tensor: torch.Tensor,
    scale: torch.Tensor,
    output_dtype: torch.dtype = torch.float32,
    float8_dtype: Any = None,
    block_size: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Float values of float8 codes (uint8 bytes, or torch float8 tensors whose dtype says the format).

    Example:
        >>> dequantize_affine_float8(torch.tensor([126, 184], dtype=torch.uint8), torch.tensor(1.0)).tolist()
        [448.0, -1.0]
    """
    if float8_dtype is None:
        float8_dtype = tensor.dtype if _dtypes.is_float8(tensor.dtype) else _dtypes.float8_e4m3fn
    return torch.ops.torchao_cpp.dequantize_affine_float8(
        tensor, _float8_block(tensor, scale, block_size), scale, _dtypes.float8_name(float8_dtype), output_dtype)


def choose_qparams_affine_floatx(tensor: torch.Tensor, ebits: int, mbits: int) -> torch.Tensor:
    """Float-x scale per row of a 2-d tensor, in its dtype: max|row| (float32, clamped to 1e-12) over the
    format's largest value (FPXWeightOnlyConfig; 1 + ebits + mbits <= 8). A row holding NaN or Inf raises.

    Example:
        >>> choose_qparams_affine_floatx(torch.tensor([[28.0, -1.0], [0.5, 2.8]]), 3, 2).tolist()
        [1.0, 0.10000000149011612]
    """
    return torch.ops.torchao_cpp.choose_qparams_affine_floatx(tensor, ebits, mbits)


def quantize_affine_floatx(tensor: torch.Tensor, scale: torch.Tensor, ebits: int, mbits: int) -> torch.Tensor:
    """Float-x codes (uint8, sign at bit ebits + mbits) of float32(tensor) / float32(scale[row]): round to nearest,
    ties to even, saturating at the largest value; no Inf/NaN codes (torchao's _f32_to_floatx_unpacked, whose
    conversion of a NaN input this reproduces).

    Example:
        >>> quantize_affine_floatx(torch.tensor([[28.0, -0.09375, 100.0]]), torch.tensor([1.0]), 3, 2).tolist()
        [[31, 34, 31]]
    """
    return torch.ops.torchao_cpp.quantize_affine_floatx(tensor, scale, ebits, mbits)


def dequantize_affine_floatx(
    tensor: torch.Tensor, scale: torch.Tensor, ebits: int, mbits: int, output_dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Values of float-x codes times float32(scale[row]), in output_dtype.

    Example:
        >>> dequantize_affine_floatx(torch.tensor([[31, 34]], dtype=torch.uint8), torch.tensor([0.5]), 3, 2).tolist()
        [[14.0, -0.0625]]
    """
    return torch.ops.torchao_cpp.dequantize_affine_floatx(tensor, scale, ebits, mbits, output_dtype)


def _int8_asymm_per_token_quant(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seed's int8 asymmetric per-token activation quantizer: (codes, scale, zero_point).

    Example:
        >>> q, s, z = _int8_asymm_per_token_quant(torch.randn(3, 16))
        >>> q.dtype, s.dtype, z.dtype
        (torch.int8, torch.float32, torch.int8)
    """
    return tuple(torch.ops.torchao_cpp.int8_asymm_per_token_quant(x))


def _int8_symm_per_token_reduced_range_quant(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seed's int8 symmetric per-token quantizer with range [-127, 127]: (codes, scale, zero_point).

    Example:
        >>> q, s, z = _int8_symm_per_token_reduced_range_quant(torch.randn(3, 16))
        >>> int(q.min()) >= -127
        True
    """
    return tuple(torch.ops.torchao_cpp.int8_symm_per_token_reduced_range_quant(x))


__all__ = [
    "MappingType", "ZeroPointDomain", "choose_qparams_affine", "quantize_affine", "dequantize_affine",
    "choose_qparams_affine_float8", "quantize_affine_float8", "dequantize_affine_float8",
    "choose_qparams_affine_floatx", "quantize_affine_floatx", "dequantize_affine_floatx",
    "_int8_asymm_per_token_quant", "_int8_symm_per_token_reduced_range_quant",
]
