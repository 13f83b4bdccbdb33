"""Decode-only companion of model_bench.py: the same 1.1 B Llama-shaped decoder,
quantized in place (no fp32 copy alive, unlike model_bench.py, which keeps the
fp32 model for its baselines), batch-1 decode tokens/s in eager mode and as
TorchScript, in --rounds rounds, each round after a fresh torch.sum read
bandwidth measurement, which its shares are taken against. With
--compare-page-sizes each config is quantized twice, weights on 4 KB pages
(TORCHAO_CPP_HUGE_PAGES=0) and on huge pages, and the two alternate round by
round, each against a read of its own kind of pages.

    python benchmarks/python/decode_bench.py --threads 2 [--rounds 6 --compare-page-sizes]
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
    p.add_argument("--rounds", type=int, default=2)
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
        # Every model of the config is built first, then all are measured in alternating rounds (this
        # machine's read bandwidth drifts within seconds), each round after a read of its kind of pages.
        models = []
        for setting in settings:
            os.environ["TORCHAO_CPP_HUGE_PAGES"] = setting  # read by each weight allocation and by mb.ones
            m = mb.build_model()
            quantize_(m, cfg)
            gc.collect()
            models.append((setting, "4 KB pages" if setting == "0" else "huge pages", m, script(m)))
        wb = mb.linear_weight_bytes(models[0][2])
        shares = {}
        for rnd in range(args.rounds):
            for setting, pages, m, scripted in models:
                os.environ["TORCHAO_CPP_HUGE_PAGES"] = setting
                bw = mb.read_bandwidth()
                for mode, model in (("eager", m), ("TorchScript", scripted)):
                    t = mb.decode_tps(model, steps=args.steps)
                    shares.setdefault((pages, mode), []).append((t, wb * t / bw))
                    print(f"round {rnd} {name:22s} {pages:10s} {mode:11s} decode {t:6.2f} tok/s "
                          f"({wb * t / 1e9:5.1f} GB/s of weights, {100 * wb * t / bw:3.0f}% of a {bw / 1e9:4.1f} GB/s read)",
                          flush=True)
        for (pages, mode), r in shares.items():
            tps = sorted(x[0] for x in r)
            sh = sorted(x[1] for x in r)
            print(f"{name:22s} {pages:10s} {mode:11s} best {tps[-1]:6.2f} tok/s, median {tps[len(tps) // 2]:6.2f}; "
                  f"share of read BW best {100 * sh[-1]:3.0f}%, median {100 * sh[len(sh) // 2]:3.0f}%", flush=True)
        del models, m, scripted
        gc.collect()
    print(f"read bandwidth {mb.read_bandwidth() / 1e9:.1f} GB/s", flush=True)


if __name__ == "__main__":
    main()
