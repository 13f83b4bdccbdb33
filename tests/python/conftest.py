import io
import os
import subprocess

import pytest
import torch

import torchao_cpp  # noqa: F401  (loads the ops library)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.environ.get("TORCHAO_CPP_GOLDEN", os.path.join(ROOT, "..", "shared", "golden", "torchao-0.11_seed0.pt"))


def load_golden():
    if not os.path.exists(GOLDEN):
        raise FileNotFoundError(
            f"golden file not found at {GOLDEN}: clone the repo with ../shared beside it or set TORCHAO_CPP_GOLDEN")
    return torch.load(GOLDEN)


@pytest.fixture(scope="session")
def golden_cases():
    return {c["name"]: c for c in load_golden()}


def sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    ref = ref.double()
    noise = (ref - x.double()).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref.pow(2).sum() / noise))


def state_dict_round_trip(m: torch.nn.Module, fresh: torch.nn.Module, x: torch.Tensor) -> None:
    """m's state_dict, saved and loaded into `fresh` (quantized the same way from other weights),
    reproduces m's output on x bit for bit."""
    y = m(x)
    assert not torch.equal(fresh(x), y)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    # Quantized weights hold C++ objects, which torch >= 2.6's default weights_only loader refuses.
    fresh.load_state_dict(torch.load(buf, weights_only=False))
    assert torch.equal(fresh(x), y)


def scripted_matches_eager(m: torch.nn.Module, x: torch.Tensor, tmp_path) -> torch.jit.ScriptModule:
    """torchao_cpp.script(m) gives m's output on x bit for bit, in Python, after torch.jit.save/load, and
    in C++ (the torchao_cpp_run LibTorch runner). Returns the scripted module."""
    import torchao_cpp

    y = m(x)
    ts = torchao_cpp.script(m)
    assert torch.equal(ts(x), y)
    path, xin, yout = tmp_path / "m.ts", tmp_path / "x.pt", tmp_path / "y.pt"
    torch.jit.save(ts, str(path))
    assert torch.equal(torch.jit.load(str(path))(x), y)
    torch.save(x, str(xin))
    run = subprocess.run([torchao_cpp.runner_path(), str(path), str(xin), str(yout)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert torch.equal(torch.load(str(yout)), y)  # C++ reproduces Python bit for bit
    return ts
