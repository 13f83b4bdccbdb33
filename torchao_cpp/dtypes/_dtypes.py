"""Stand-ins for dtypes that old torch lacks (uint1..7, int1..7, float8).

Each name is torch's own dtype when the running torch has it, otherwise a
small descriptor object; `dtype_info` maps either to bits and signedness.
"""
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SubByteDtype:
    """An integer dtype of `bits` bits that this torch does not provide.

    Example:
        >>> SubByteDtype("uint4", 4, False).bits
        4
    """

    name: str
    bits: int
    signed: bool

    def __repr__(self) -> str:
        return f"torchao_cpp.dtypes.{self.name}"


@dataclass(frozen=True)
class Float8Dtype:
    """A float8 format that this torch does not provide (codes are stored as uint8).

    Example:
        >>> Float8Dtype("float8_e4m3fn", 448.0).max
        448.0
    """

    name: str
    max: float

    def __repr__(self) -> str:
        return f"torchao_cpp.dtypes.{self.name}"


def _get(name: str, fallback: Any) -> Any:
    return getattr(torch, name, fallback)


uint1, uint2, uint3, uint4, uint5, uint6, uint7 = (_get(f"uint{b}", SubByteDtype(f"uint{b}", b, False)) for b in range(1, 8))
int1, int2, int3, int4, int5, int6, int7 = (_get(f"int{b}", SubByteDtype(f"int{b}", b, True)) for b in range(1, 8))
float8_e4m3fn = _get("float8_e4m3fn", Float8Dtype("float8_e4m3fn", 448.0))
float8_e5m2 = _get("float8_e5m2", Float8Dtype("float8_e5m2", 57344.0))

_INT_INFO = {torch.int8: (8, True), torch.uint8: (8, False), torch.int16: (16, True), torch.int32: (32, True)}
for _b in range(1, 8):
    _INT_INFO[globals()[f"uint{_b}"]] = (_b, False)
    _INT_INFO[globals()[f"int{_b}"]] = (_b, True)
_FLOAT8 = {float8_e4m3fn: ("float8_e4m3fn", 448.0), float8_e5m2: ("float8_e5m2", 57344.0)}


def is_float8(dtype: Any) -> bool:
    """True for float8_e4m3fn / float8_e5m2 (torch's or the stand-ins).

    Example:
        >>> is_float8(float8_e4m3fn)
        True
    """
    return dtype in _FLOAT8


def float8_name(dtype: Any) -> str:
    """'float8_e4m3fn' or 'float8_e5m2'.

    Example:
        >>> float8_name(float8_e5m2)
        'float8_e5m2'
    """
    if dtype not in _FLOAT8:
        raise TypeError(f"expected float8_e4m3fn or float8_e5m2, got {dtype}")
    return _FLOAT8[dtype][0]


def float8_max(dtype: Any) -> float:
    """Largest finite value of a float8 format.

    Example:
        >>> float8_max(float8_e4m3fn)
        448.0
    """
    float8_name(dtype)
    return _FLOAT8[dtype][1]


def dtype_info(dtype: Any) -> "tuple[int, bool]":
    """(bits, signed) of an integer code dtype.

    Example:
        >>> dtype_info(uint4)
        (4, False)
    """
    if dtype not in _INT_INFO:
        raise TypeError(f"unsupported integer code dtype {dtype}; expected int1..int8, uint1..uint8, int16 or int32")
    return _INT_INFO[dtype]


def code_dtype_name(dtype: Any) -> str:
    """The C++ classes' name of a code dtype ('int4', 'uint3', 'float8_e4m3fn', ...).

    Example:
        >>> code_dtype_name(torch.int8)
        'int8'
    """
    if is_float8(dtype):
        return float8_name(dtype)
    bits, signed = dtype_info(dtype)
    return f"{'int' if signed else 'uint'}{bits}"


def storage_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype that holds one unpacked code of `dtype`.

    Example:
        >>> storage_dtype(int3)
        torch.int8
    """
    if is_float8(dtype):
        return torch.uint8
    bits, signed = dtype_info(dtype)
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if bits == 16 else torch.int32


def dtype_range(dtype: Any) -> "tuple[int, int]":
    """Default (quant_min, quant_max) of an integer code dtype.

    Example:
        >>> dtype_range(int4)
        (-8, 7)
    """
    bits, signed = dtype_info(dtype)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1
