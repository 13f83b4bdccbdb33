"""CUDA-graph capture shared by the tests/gpu suites."""
from typing import Callable, Tuple

import torch


def capture(fn: Callable[[], torch.Tensor]) -> Tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Warms `fn` up on a side stream (as torch's docs require), then captures one call.

    Returns the graph and the call's static output, which `graph.replay()` rewrites.

    Example:
        g, out = capture(lambda: model(x)); x.copy_(new_x); g.replay()
    """
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return g, out
