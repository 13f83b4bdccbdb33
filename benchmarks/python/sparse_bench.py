"""2:4 sparsity against dense int8 on the CPU: the 154 decoder linears of model_bench.py's
1.1 B Llama-shaped model (hidden 2048, intermediate 5632, 22 layers, 4 KV heads), quantized
with Int8DynamicActivationInt8WeightConfig, PlainLayout and SemiSparseLayout, both held at once
(0.97 GB and 0.61 GB of weights: neither fits in cache). Passes over all linears alternate
between the two, for M = 1 (decode) and M = 256 (prefill); the median pass of each is reported.

    python benchmarks/python/sparse_bench.py --out benchmarks/results/sparse_bench.json
"""
import argparse
import json
import os
import statistics
import time
from typing import Dict, List, Optional

import torch
import torch.nn as nn

import model_bench as mb
from torchao_cpp.dtypes import SemiSparseLayout
from torchao_cpp.quantization import Int8DynamicActivationInt8WeightConfig, quantize_


def decoder_linears(cfg, seed: int = 0) -> List[nn.Linear]:
    """The model's linears (q, k, v, o, gate, up, down per layer) with random weights, quantized."""
    torch.manual_seed(seed)
    shapes = [(2048, 2048), (256, 2048), (256, 2048), (2048, 2048), (5632, 2048), (5632, 2048), (2048, 5632)] * 22
    mods = []
    for n, k in shapes:
        holder = nn.Sequential(nn.Linear(k, n, bias=False))
        quantize_(holder, cfg)
        mods.append(holder[0])
    return mods


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--passes", type=int, default=7)
    p.add_argument("--out", default="benchmarks/results/sparse_bench.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {"dense int8 x int8": decoder_linears(Int8DynamicActivationInt8WeightConfig()),
            "2:4 int8 x int8": decoder_linears(Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))}
    results: Dict[str, Dict[str, float]] = {}
    with torch.no_grad():
        for M in (1, 256):
            xs = {k: torch.randn(1, M, k) for k in (2048, 5632)}
            times: Dict[str, List[float]] = {name: [] for name in sets}
            for i in range(args.passes + 1):  # the first pass warms up (lazy weight packing)
                for name, mods in sets.items():
                    t = time.perf_counter()
                    for m in mods:
                        m(xs[m.in_features])
                    if i:
                        times[name].append(time.perf_counter() - t)
            for name, mods in sets.items():
                wb = mb.linear_weight_bytes(nn.ModuleList(mods))
                med = statistics.median(times[name])
                results[f"{name} M={M}"] = {"weight_bytes": wb, "pass_ms": med * 1e3, "weight_GB_s": wb / med / 1e9,
                                            "passes_ms": [t * 1e3 for t in times[name]]}
                print(f"M={M:3d} {name:18s} weights {wb / 1e9:.2f} GB  median pass {med * 1e3:7.1f} ms "
                      f"({wb / med / 1e9:5.1f} GB/s of weights)", flush=True)
            d, s = results[f"dense int8 x int8 M={M}"]["pass_ms"], results[f"2:4 int8 x int8 M={M}"]["pass_ms"]
            print(f"M={M:3d} 2:4 speed-up over dense: {d / s:.2f}x", flush=True)
            results[f"speedup M={M}"] = {"ratio": d / s}
    with open(args.out, "w") as f:
        json.dump({"threads": args.threads, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
