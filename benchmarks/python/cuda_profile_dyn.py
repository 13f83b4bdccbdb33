"""Where the time of the dynamic-activation linears goes at M = 2048 (GPU machine): CUDA time per call of
each kernel (torch.profiler over 20 calls) for bf16 F.linear, int8 x int8 and float8 x float8 (per tensor,
per row), on the layer benchmark's three shapes.

    python benchmarks/python/cuda_profile_dyn.py > benchmarks/results/cuda_profile_dyn_h100.txt
"""
import argparse
import copy
from typing import Dict

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile

import torchao_cpp  # noqa: F401  (registers the ops)
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    PerRow,
    quantize_,
)

SHAPES = ((4096, 4096), (4096, 14336), (14336, 4096))


def kernel_times_us(fn, calls: int) -> Dict[str, float]:
    """CUDA time per call of each kernel that runs once or more per call."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out = {}
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t > 0 and e.count >= calls:
            out[e.key] = t / calls
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--calls", type=int, default=20)
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, M = {args.rows}")
    for K, N in SHAPES:
        lin = nn.Linear(K, N, bias=False, dtype=torch.bfloat16, device="cuda")
        x = torch.randn(args.rows, K, dtype=torch.bfloat16, device="cuda")
        mods = {"bf16": lin}
        for label, cfg in (("int8dyn", Int8DynamicActivationInt8WeightConfig()),
                           ("f8 tensor", Float8DynamicActivationFloat8WeightConfig()),
                           ("f8 row", Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))):
            m = copy.deepcopy(lin)
            quantize_(m, cfg)
            mods[label] = m
        for label, m in mods.items():
            with torch.no_grad():
                for _ in range(5):
                    m(x)
                torch.cuda.synchronize()
                times = kernel_times_us(lambda: m(x), args.calls)
            print(f"K={K} N={N} {label}: {sum(times.values()):.1f} us/call of kernels")
            for name, t in sorted(times.items(), key=lambda kv: -kv[1])[:6]:
                print(f"    {t:8.1f} us  x1  {name[:90]}")


if __name__ == "__main__":
    main()
