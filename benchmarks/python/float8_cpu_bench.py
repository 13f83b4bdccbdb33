"""Float8 x float8 dynamic linears on the CPU against bfloat16 and float32 `F.linear`, in one process.

For the issue's prefill shapes, (K, N) in {(2048, 5632), (5632, 2048), (4096, 4096)} at 256 activation
rows of a bfloat16 model: `Float8DynamicActivationFloat8WeightConfig` with `PerRow` (the layer the seed's
config makes; e4m3fn activations and weights) and `PerTensor`, each timed against the same layer's
bfloat16 weight through `F.linear` (oneDNN, on AMX-BF16 tiles where the CPU has them) and its float32
weight through `F.linear` (BLAS). Calls alternate between the variants, round by round, and the best time of
each is kept (the machines this runs on are shared).

    python benchmarks/python/float8_cpu_bench.py --out benchmarks/results/float8_cpu_bench.json
"""
import argparse
import json
import platform
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from torchao_cpp.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_

SHAPES = [(2048, 5632), (5632, 2048), (4096, 4096)]


def best_ms(fns: Dict[str, Callable[[], torch.Tensor]], rounds: int, calls: int) -> Dict[str, float]:
    """Best time per call of each function, the functions alternating round by round."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()  # warm-up: weights paged in, kernels selected
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / calls * 1e3)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.manual_seed(0)
    results: List[dict] = []
    print(f"{'K x N':>12} {'rows':>5} {'float8 PerRow':>14} {'float8 PerTensor':>17} {'bf16 F.linear':>14} "
          f"{'fp32 F.linear':>14}   (ms per call, best of {args.rounds} rounds)")
    for K, N in SHAPES:
        x = torch.randn(args.rows, K, dtype=torch.bfloat16)
        w = torch.randn(N, K) / K ** 0.5
        layers = {}
        for name, gran in (("float8_per_row", PerRow()), ("float8_per_tensor", PerTensor())):
            layer = nn.Sequential(nn.Linear(K, N, bias=False)).to(torch.bfloat16)
            layer[0].weight.data.copy_(w)
            quantize_(layer, Float8DynamicActivationFloat8WeightConfig(granularity=gran))
            layers[name] = layer
        wb, xf = w.to(torch.bfloat16), x.float()
        fns = {
            "float8_per_row": lambda: layers["float8_per_row"](x),
            "float8_per_tensor": lambda: layers["float8_per_tensor"](x),
            "bf16_linear": lambda: F.linear(x, wb),
            "fp32_linear": lambda: F.linear(xf, w),
        }
        with torch.no_grad():
            t = best_ms(fns, args.rounds, args.calls)
        row = {"K": K, "N": N, "rows": args.rows, "ms": t,
               "per_row_vs_bf16": t["bf16_linear"] / t["float8_per_row"],
               "per_row_vs_fp32": t["fp32_linear"] / t["float8_per_row"]}
        results.append(row)
        print(f"{K:>5} x {N:<5} {args.rows:>5} {t['float8_per_row']:>14.2f} {t['float8_per_tensor']:>17.2f} "
              f"{t['bf16_linear']:>14.2f} {t['fp32_linear']:>14.2f}")
    if args.out:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor(),
                "time": time.strftime("%Y-%m-%d %H:%M")}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
