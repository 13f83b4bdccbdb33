import os

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
