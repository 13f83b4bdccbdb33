"""Loads the native ops library (registers torch.ops.torchao_cpp.* and torch.classes.torchao_cpp.*)."""
import os

import torch

_LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
# TORCHAO_CPP_LIBRARY picks another build of the ops library, e.g. the
# sanitized one that scripts/reliability.sh runs the Python tests against.
LIBRARY_PATH = os.environ.get("TORCHAO_CPP_LIBRARY") or os.path.join(_LIB_DIR, "libtorchao_cpp_ops.so")


def load() -> str:
    """Loads libtorchao_cpp_ops.so once and returns its path.

    Example:
        >>> import torchao_cpp._library as lib; lib.load().endswith(".so")
        True
    """
    if not os.path.exists(LIBRARY_PATH):
        raise ImportError(
            f"torchao_cpp: native library not found at {LIBRARY_PATH}; build the package with "
            "`pip install --no-build-isolation .` (or -e .)"
        )
    if LIBRARY_PATH not in torch.ops.loaded_libraries:
        torch.ops.load_library(LIBRARY_PATH)
    return LIBRARY_PATH
