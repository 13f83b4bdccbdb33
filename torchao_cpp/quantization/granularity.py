"""Quantization granularities (mirrors torchao.quantization.granularity)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Granularity:
    """Base class of the granularities.

    Example:
        >>> isinstance(PerTensor(), Granularity)
        True
    """


@dataclass(frozen=True)
class PerTensor(Granularity):
    """One scale for the whole tensor.

    Example:
        >>> PerTensor()
        PerTensor()
    """


@dataclass(frozen=True)
class PerAxis(Granularity):
    """One scale per index of `axis`.

    Example:
        >>> PerAxis(0).axis
        0
    """

    axis: int


@dataclass(frozen=True)
class PerGroup(Granularity):
    """One scale per `group_size` consecutive elements of the last dim.

    Example:
        >>> PerGroup(32).group_size
        32
    """

    group_size: int


@dataclass(frozen=True)
class PerRow(Granularity):
    """One scale per row (all dims but the last).

    Example:
        >>> PerRow()
        PerRow()
    """


@dataclass(frozen=True)
class PerToken(Granularity):
    """One scale per token (all dims but the last).

    Example:
        >>> PerToken()
        PerToken()
    """
