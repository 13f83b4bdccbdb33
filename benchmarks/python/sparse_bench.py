"""2:4 sparsity against the dense config on the CPU: the 154 decoder linears of model_bench.py's
1.1 B Llama-shaped model (hidden 2048, intermediate 5632, 22 layers, 4 KV heads), quantized
twice and held at once (neither fits in cache):
- int8: Int8DynamicActivationInt8WeightConfig, PlainLayout against SemiSparseLayout (float32 model);
- int8_wo_decode: the same with weight_only_decode=True, decode only (the weight-only 2:4 kernel);
- float8: Float8DynamicActivationFloat8WeightConfig(e5m2 activations, PerRow) against
  Float8DynamicActivationFloat8SemiSparseWeightConfig (the same math on the pruned weight;
  bfloat16 model, as PerRow needs);
- int4: Int4WeightOnlyConfig(group_size=128), Int4CPULayout (4 bits + scales and zero points) against
  MarlinSparseLayout (2:4, 3 bits + scales and zero points).
Passes over all linears alternate between the two, for M = 1 (decode) and M = 256 (prefill);
the median pass of each is reported.

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
from torchao_cpp.dtypes import Int4CPULayout, MarlinSparseLayout, SemiSparseLayout, float8_e5m2
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    PerRow,
    quantize_,
)

# (family, model dtype, dense config, 2:4 config, activation rows)
FAMILIES = {
    "int8": (torch.float32, lambda: Int8DynamicActivationInt8WeightConfig(),
             lambda: Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()), (1, 256)),
    # weight_only_decode=True: decode steps stay float and meet the int8 weight directly (weight-only kernels).
    "int8_wo_decode": (torch.float32, lambda: Int8DynamicActivationInt8WeightConfig(weight_only_decode=True),
                       lambda: Int8DynamicActivationInt8WeightConfig(weight_only_decode=True,
                                                                     layout=SemiSparseLayout()), (1,)),
    "float8": (torch.bfloat16,
               lambda: Float8DynamicActivationFloat8WeightConfig(activation_dtype=float8_e5m2, granularity=PerRow()),
               lambda: Float8DynamicActivationFloat8SemiSparseWeightConfig(), (1, 256)),
    "int4": (torch.float32, lambda: Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()),
             lambda: Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()), (1, 256)),
}


def decoder_linears(cfg, dtype: torch.dtype = torch.float32, seed: int = 0) -> List[nn.Linear]:
    """The model's linears (q, k, v, o, gate, up, down per layer) with random weights, quantized."""
    torch.manual_seed(seed)
    shapes = [(2048, 2048), (256, 2048), (256, 2048), (2048, 2048), (5632, 2048), (5632, 2048), (2048, 5632)] * 22
    mods = []
    for n, k in shapes:
        holder = nn.Sequential(nn.Linear(k, n, bias=False).to(dtype))
        quantize_(holder, cfg)
        mods.append(holder[0])
    return mods


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--passes", type=int, default=7)
    p.add_argument("--out", default="benchmarks/results/sparse_bench.json")
    p.add_argument("--families", default="int8,int8_wo_decode,float8,int4", help="comma-separated: " + ", ".join(FAMILIES))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: Dict[str, Dict[str, float]] = {}
    for family in args.families.split(","):
        dtype, dense_cfg, sparse_cfg, Ms = FAMILIES[family]
        sets = {f"dense {family}": decoder_linears(dense_cfg(), dtype), f"2:4 {family}": decoder_linears(sparse_cfg(), dtype)}
        with torch.no_grad():
            for M in Ms:
                xs = {k: torch.randn(1, M, k).to(dtype) for k in (2048, 5632)}
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
                    results[f"{name} M={M}"] = {"weight_bytes": wb, "pass_ms": med * 1e3,
                                                "weight_GB_s": wb / med / 1e9,
                                                "passes_ms": [t * 1e3 for t in times[name]]}
                    print(f"M={M:3d} {name:20s} weights {wb / 1e9:.2f} GB  median pass {med * 1e3:7.1f} ms "
                          f"({wb / med / 1e9:5.1f} GB/s of weights)", flush=True)
                d, s = results[f"dense {family} M={M}"]["pass_ms"], results[f"2:4 {family} M={M}"]["pass_ms"]
                print(f"M={M:3d} {family} 2:4 speed-up over dense: {d / s:.2f}x", flush=True)
                results[f"{family} speedup M={M}"] = {"ratio": d / s}
        del sets
    with open(args.out, "w") as f:
        json.dump({"threads": args.threads, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
