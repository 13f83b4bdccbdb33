"""float8 inference settings (mirrors torchao.float8).

Example:
    >>> from torchao_cpp.float8 import Float8MMConfig
    >>> Float8MMConfig(use_fast_accum=True).use_fast_accum
    True
"""
from .inference import Float8MMConfig

__all__ = ["Float8MMConfig"]
