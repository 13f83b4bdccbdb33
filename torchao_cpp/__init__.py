"""torchao's quantization API as a PyTorch C++ extension.

Example:
    >>> import torch, torchao_cpp
    >>> from torchao_cpp.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 32)).eval()
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> model(torch.randn(2, 64)).shape
    torch.Size([2, 32])
"""
from . import _library

_library.load()

import torch  # noqa: E402

from . import _C  # noqa: E402
from . import dtypes, quantization  # noqa: E402
from .scripting import runner_path, script  # noqa: E402

__version__ = _C.build_info()["version"]
# The ops; the classes are torch.classes.torchao_cpp.AffineQuantizedTensor and friends.
ops = torch.ops.torchao_cpp
library_path = _library.LIBRARY_PATH


def build_info() -> dict:
    """Versions and options of this build, plus the CPU features found at run time.

    Example:
        >>> import torchao_cpp
        >>> sorted(torchao_cpp.build_info())[:3]
        ['compiler', 'cpu_features', 'cuda']
    """
    info = dict(_C.build_info())
    info["cpu_features"] = dict(_C.cpu_features())
    return info


__all__ = ["build_info", "dtypes", "library_path", "ops", "quantization", "runner_path", "script"]
