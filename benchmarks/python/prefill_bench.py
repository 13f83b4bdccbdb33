"""Prefill-only companion of model_bench.py, for the CPU issue's prefill ratios.

The same 1.1 B Llama-shaped decoder: fp32 (OpenBLAS), torch's own
`quantize_dynamic` int8 model, and this project's Int8DynAct-Int8Weight and
Int8DynAct-Int4Weight g32 models are built first; then, in each of --rounds
rounds, every model runs one --length-token prefill, back to back, in an order
rotated from round to round. This shared machine's speed drifts by up to 2x
over minutes, and model_bench.py compares the best round of each model, which
may come from different moments; here each ratio (int8 x int8 against
`quantize_dynamic` and against fp32, 8da4w against int8 x int8) is taken
within a round, and the median over the rounds is reported with its range.

    OPENBLAS_CORETYPE=Cooperlake OPENBLAS_THREAD_TIMEOUT=4 GOMP_SPINCOUNT=20000 python benchmarks/python/prefill_bench.py \
        --threads 2 --rounds 9 --out benchmarks/results/prefill_bench.json

(benchmarks/run.sh sets the three variables; it says why.)
"""
import argparse
import copy
import gc
import json
import os
import platform
import statistics
import time
from typing import Dict, List

import torch
import torch.nn as nn

import model_bench as mb
import torchao_cpp
from torchao_cpp.quantization import (
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    quantize_,
)

# (ratio name, numerator model, denominator model): the prefill targets.
RATIOS = [
    ("int8 x int8 / quantize_dynamic", "Int8DynAct-Int8Weight", "torch quantize_dynamic int8"),
    ("int8 x int8 / fp32", "Int8DynAct-Int8Weight", "fp32"),
    ("8da4w g32 / int8 x int8", "Int8DynAct-Int4Weight g32", "Int8DynAct-Int8Weight"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--length", type=int, default=256, help="prompt tokens")
    p.add_argument("--layers", type=int, default=22, help="decoder blocks (22: the 1.1 B model)")
    p.add_argument("--out", default="benchmarks/results/prefill_bench.json")
    args = p.parse_args()
    if args.rounds < 1 or args.length < 1 or args.layers < 1:
        p.error("--rounds, --length and --layers must be positive")
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, torch {torch.__version__}, torchao_cpp {torchao_cpp.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'auto')}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'default')}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'default')}", flush=True)
    base = mb.build_model(layers=args.layers)
    models: Dict[str, nn.Module] = {
        "fp32": base,
        "torch quantize_dynamic int8": torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(base), {nn.Linear}, dtype=torch.qint8),
    }
    for name, cfg in [("Int8DynAct-Int8Weight", Int8DynamicActivationInt8WeightConfig()),
                      ("Int8DynAct-Int4Weight g32", Int8DynamicActivationInt4WeightConfig(group_size=32))]:
        m = copy.deepcopy(base)
        quantize_(m, cfg)
        models[name] = m
        gc.collect()
    names = list(models)
    tok = torch.randint(0, 32000, (1, args.length))
    tps: Dict[str, List[float]] = {n: [] for n in names}
    with torch.no_grad():
        for m in models.values():
            m(tok[:, :16])  # warm-up: first-call allocations, OpenMP's threads
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for n in order:
                t = time.perf_counter()
                models[n](tok)
                tps[n].append(args.length / (time.perf_counter() - t))
            print(f"round {rnd + 1}: " + ", ".join(f"{n} {tps[n][-1]:.1f}" for n in names) + " tok/s", flush=True)
    results = {n: {"prefill_tok_s_rounds": v, "median_tok_s": statistics.median(v), "best_tok_s": max(v)}
               for n, v in tps.items()}
    ratios = {}
    for label, a, b in RATIOS:
        per_round = [x / y for x, y in zip(tps[a], tps[b])]
        ratios[label] = {"rounds": per_round, "median": statistics.median(per_round), "min": min(per_round),
                         "max": max(per_round), "of_best_rounds": max(tps[a]) / max(tps[b])}
    for n, r in results.items():
        print(f"{n:28s} prefill median {r['median_tok_s']:7.1f} tok/s, best {r['best_tok_s']:7.1f}")
    for label, r in ratios.items():
        print(f"{label:32s} median over rounds {r['median']:.2f}x (range {r['min']:.2f}-{r['max']:.2f}x); "
              f"best rounds {r['of_best_rounds']:.2f}x")
    out = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
           "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default"),
           "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", "default"),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), "layers": args.layers,
           "length": args.length, "rounds": args.rounds, "results": results, "ratios": ratios}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
