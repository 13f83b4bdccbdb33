"""Decode-only companion of model_bench.py: the same 1.1 B Llama-shaped decoder,
quantized in place (no fp32 copy alive, unlike model_bench.py, which keeps the
fp32 model for its baselines), batch-1 decode tokens/s measured twice per
config in eager mode and once as TorchScript, each config after a fresh
torch.sum read bandwidth measurement, which its shares are taken against.

    python benchmarks/python/decode_bench.py --threads 2 [--compare-page-sizes]
"""
import argparse
import gc
import os

import torch

import model_bench as mb
from torchao_cpp.dtypes import Int4CPULayout
from torchao_cpp.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
from torchao_cpp.scripting import script


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--compare-page-sizes", action="store_true",
                   help="quantize each model twice, its weights on 4 KB pages (TORCHAO_CPP_HUGE_PAGES=0) and on "
                        "huge pages, each compared with a read of the same kind of pages")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; read bandwidth {mb.read_bandwidth() / 1e9:.1f} GB/s "
          f"({mb.read_bandwidth(huge_pages=False) / 1e9:.1f} GB/s from 4 KB pages)", flush=True)
    configs = [("Int4WeightOnly g128", Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout())),
               ("Int8WeightOnly", Int8WeightOnlyConfig())]
    settings = ["0", "1"] if args.compare_page_sizes else [os.environ.get("TORCHAO_CPP_HUGE_PAGES", "1")]
    for name, cfg in configs:
        for setting in settings:
            os.environ["TORCHAO_CPP_HUGE_PAGES"] = setting  # read by each weight allocation and by mb.ones
            pages = "4 KB pages" if setting == "0" else "huge pages"
            m = mb.build_model()
            quantize_(m, cfg)
            gc.collect()
            wb = mb.linear_weight_bytes(m)
            bw = mb.read_bandwidth()
            print(f"read bandwidth {bw / 1e9:.1f} GB/s ({pages})", flush=True)
            runs = [("eager", m), ("eager", m), ("TorchScript", script(m))]
            for mode, model in runs:
                t = mb.decode_tps(model, steps=args.steps)
                print(f"{name:22s} {pages:10s} {mode:11s} decode {t:6.2f} tok/s ({wb * t / 1e9:5.1f} GB/s of weights, "
                      f"{100 * wb * t / bw:3.0f}% of read BW)", flush=True)
            del m, runs, model
            gc.collect()
    print(f"read bandwidth {mb.read_bandwidth() / 1e9:.1f} GB/s", flush=True)


if __name__ == "__main__":
    main()
