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


def replays_in_graph(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eager: torch.Tensor) -> None:
    """module's call on x (moved to CUDA), captured in a graph and replayed, gives `eager` (its output on the CPU)."""
    xs = x.cuda()
    with torch.no_grad():
        g, out = capture(lambda: module(xs))
        g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), eager)
