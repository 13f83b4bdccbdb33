"""The main job: quantize a real model with every config that works and print one table.

    python -m torchao_cpp.demo                      # default: Fashion-MNIST MLP (trained and cached on first use)
    python -m torchao_cpp.demo --model my.pt --input-shape 1,4096   # a user's torch.save(model)

Columns: weight bytes of the quantized linears (codes + scales + zero points),
bytes vs fp32, accuracy (default model) and SQNR of the outputs vs fp32, and
latency vs fp32 at batch 1 and batch 256 (same thread count for both).
"""
import argparse
import copy
import time
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn

import torchao_cpp
from torchao_cpp.dtypes import float8_e4m3fn, float8_e5m2, int4, uint3, uint5
from torchao_cpp.dtypes.layouts import (
    Int4CPULayout,
    MarlinQQQLayout,
    MarlinSparseLayout,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    SemiSparseLayout,
)
from torchao_cpp.quantization import (
    AOPerModuleConfig,
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    FPXWeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    MappingType,
    PerGroup,
    UIntXWeightOnlyConfig,
    quantize_,
)


def configs() -> List[Tuple[str, object]]:
    """Every config that runs end to end so far, with a short label."""
    return [
        ("Int8WeightOnly", Int8WeightOnlyConfig()),
        ("Int8WeightOnly g64", Int8WeightOnlyConfig(group_size=64)),
        ("Int4WeightOnly g128", Int4WeightOnlyConfig(group_size=128)),
        ("Int4WeightOnly g32 Int4CPU", Int4WeightOnlyConfig(group_size=32, layout=Int4CPULayout())),
        ("Int4WeightOnly g128 HQQ", Int4WeightOnlyConfig(group_size=128, use_hqq=True)),
        ("Int8DynAct-Int8Weight", Int8DynamicActivationInt8WeightConfig()),
        ("Int8DynAct-Int8Weight 2:4 sparse", Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())),
        ("Int8DynAct-Int4Weight g32", Int8DynamicActivationInt4WeightConfig(group_size=32)),
        # The seed's Marlin QQQ tiles need out_features % 64 == 0: the 10-output head (fc3) stays fp32.
        ("Int8DynAct-Int4Weight g128 QQQ, fc3 fp32", AOPerModuleConfig({
            "_default": Int8DynamicActivationInt4WeightConfig(group_size=128, layout=MarlinQQQLayout(),
                                                              act_mapping_type=MappingType.SYMMETRIC),
            "fc3": None})),
        ("IntxWeightOnly int4 g32", IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(32))),
        ("Int8DynAct-IntxWeight int4 g32", Int8DynamicActivationIntxWeightConfig(weight_dtype=int4)),
        ("Int8DynAct-IntxWeight int4 g32 packed", Int8DynamicActivationIntxWeightConfig(
            weight_dtype=int4, layout=PackedLinearInt8DynamicActivationIntxWeightLayout())),
        ("UIntXWeightOnly uint3 g64", UIntXWeightOnlyConfig(dtype=uint3, group_size=64)),
        ("UIntXWeightOnly uint5 g64", UIntXWeightOnlyConfig(dtype=uint5, group_size=64)),
        ("Float8WeightOnly e4m3fn", Float8WeightOnlyConfig(weight_dtype=float8_e4m3fn)),
        ("Float8WeightOnly e5m2", Float8WeightOnlyConfig(weight_dtype=float8_e5m2)),
        ("Float8DynAct-Float8Weight per-tensor", Float8DynamicActivationFloat8WeightConfig()),
        ("Float8DynAct-Float8Weight 2:4 sparse", Float8DynamicActivationFloat8SemiSparseWeightConfig()),
        ("Int4WeightOnly g128 2:4 Marlin", Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout())),
        ("Int4DynAct-Int4Weight", Int4DynamicActivationInt4WeightConfig()),
        ("FPXWeightOnly fp6 e3m2", FPXWeightOnlyConfig(ebits=3, mbits=2)),
    ]


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the weights of the model's nn.Linear layers."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            w = m.weight
            total += w.nbytes_quantized() if hasattr(w, "nbytes_quantized") else w.numel() * w.element_size()
    return total


def sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    noise = (ref.double() - x.double()).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.double().pow(2).sum() / noise))


def latency(fn: Callable[[], torch.Tensor], min_time: float = 0.3) -> float:
    """Median seconds per call over repeated runs of at least `min_time` in total."""
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def run(model: nn.Module, eval_x: torch.Tensor, labels: Optional[torch.Tensor], threads: int) -> List[List[str]]:
    torch.set_num_threads(threads)
    model = model.eval()
    b1, b256 = eval_x[:1], eval_x[:256]
    with torch.no_grad():
        ref_out = model(eval_x)
        t1_ref = latency(lambda: model(b1))
        t256_ref = latency(lambda: model(b256))
    fp32_bytes = linear_weight_bytes(model)

    def acc(out):
        return f"{(out.argmax(-1) == labels).float().mean().item() * 100:.2f}%" if labels is not None else "-"

    rows = [["fp32 (baseline)", f"{fp32_bytes:,}", "1.00x", acc(ref_out), "inf", "1.00x", "1.00x"]]
    for label, cfg in configs():
        q = copy.deepcopy(model)
        try:
            quantize_(q, cfg)
        except Exception as e:  # report and go on: one config must not hide the others
            rows.append([label, "error", "", "", "", "", f"{type(e).__name__}: {e}"])
            continue
        with torch.no_grad():
            out = q(eval_x)
            t1 = latency(lambda: q(b1))
            t256 = latency(lambda: q(b256))
        nb = linear_weight_bytes(q)
        rows.append([label, f"{nb:,}", f"{nb / fp32_bytes:.3f}x", acc(out), f"{sqnr(ref_out, out):.1f}",
                     f"{t1 / t1_ref:.2f}x", f"{t256 / t256_ref:.2f}x"])
    return rows


def print_table(rows: List[List[str]], out=print) -> None:
    header = ["config", "weight bytes", "bytes vs fp32", "accuracy", "SQNR vs fp32 (dB)", "latency b1 vs fp32",
              "latency b256 vs fp32"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    out("-+-".join("-" * w for w in widths))
    for r in rows:
        out(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model saved with torch.save(model) (default: the Fashion-MNIST MLP)")
    p.add_argument("--input-shape", help="comma-separated input shape for --model, e.g. 1,4096 (random inputs)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads for fp32 and quantized runs alike (default: torch's)")
    p.add_argument("--eval-samples", type=int, default=10000, help="test images used for accuracy (default model)")
    args = p.parse_args(argv)

    info = torchao_cpp.build_info()
    print(f"torchao_cpp {info['version']} on torch {torch.__version__}; threads: {args.threads}; "
          f"CPU: {', '.join(k for k, v in info['cpu_features'].items() if v)}")
    if args.model:
        model = torch.load(args.model, weights_only=False)  # a whole module, which torch >= 2.6's default refuses
        if not isinstance(model, nn.Module):
            raise SystemExit(f"--model {args.model}: expected a torch.save(model) of an nn.Module, got {type(model).__name__}")
        if not args.input_shape:
            raise SystemExit("--model needs --input-shape (e.g. --input-shape 8,4096)")
        shape = [int(s) for s in args.input_shape.split(",")]
        eval_x = torch.randn(max(shape[0], 256), *shape[1:], generator=torch.Generator().manual_seed(0))
        labels = None
        print(f"model: {args.model}, random inputs of shape {tuple(shape[1:])}")
    else:
        from torchao_cpp.models import fashion_mnist

        model = fashion_mnist.pretrained()
        eval_x, labels = fashion_mnist.load_split("t10k")
        eval_x, labels = eval_x[: args.eval_samples], labels[: args.eval_samples]
        print(f"model: Fashion-MNIST MLP (1024-512-512-10), {eval_x.shape[0]} test images")
    print_table(run(model, eval_x, labels, args.threads))


if __name__ == "__main__":
    main()
