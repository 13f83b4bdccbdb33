"""Settings of the float8 x float8 matmul (mirrors torchao.float8.inference)."""
from typing import NamedTuple


class Float8MMConfig(NamedTuple):
    """How the float8 GEMM runs.

    `use_fast_accum` lets CUDA's FP8 tensor cores use their faster,
    lower-precision accumulation (cuBLASLt's FAST_ACCUM); the CPU kernels
    always sum the exact products in float32. `emulate` and `pad_inner_dim`
    are accepted for compatibility and change nothing: quantized layers need
    in_features that are a multiple of 16 anyway.

    Example:
        >>> Float8MMConfig()
        Float8MMConfig(emulate=False, use_fast_accum=False, pad_inner_dim=False)
    """

    emulate: bool = False
    use_fast_accum: bool = False
    pad_inner_dim: bool = False
