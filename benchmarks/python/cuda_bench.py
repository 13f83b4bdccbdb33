"""Layer-level CUDA benchmark (GPU machine): bf16 activations, M in {1, 16, 2048}
x (K, N) in {(4096, 4096), (4096, 14336), (14336, 4096)}.

For each shape it times, with CUDA events after warm-up, eager and replayed
from a captured CUDA graph: bf16 `F.linear` (cuBLAS), this project's int4
(group 128), int8, float8 e4m3 (per channel) and fp6 e3m2 (6-bit packed rows) weight-only linears and its int8 dynamic
activation x int8 weight linear (dense, and 2:4 sparse through cuSPARSELt), 2:4 int4 (MarlinSparseLayout) and
the same weight as 2:4 bfloat16 on the sparse tensor cores (op sparse24_linear), torch's own `aten._weight_int4pack_mm`
(tinygemm), and `torch._int_mm` with the per-token activation quantization
and the scaling done separately in torch ops (M > 16 only, as `_int_mm`);
float8 dynamic activation x float8 weight (per tensor and per row, ours; and 2:4 sparse, CutlassSemiSparseLayout,
on the sparse tensor cores) against `torch._scaled_mm` with the float8 activation quantization done in torch ops. Each method cycles through enough
weight copies to exceed the L2 cache, so weights come from HBM as in decode.
The device-to-device copy bandwidth (read + write) is measured in the same run.

    python benchmarks/python/cuda_bench.py --out benchmarks/results/cuda_layers_h100.json
"""
import argparse
import copy
import json
import os
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

import torchao_cpp  # noqa: F401  (registers the ops)
from torchao_cpp.dtypes import AffineQuantizedTensor, Int4CPULayout, MarlinSparseLayout, SemiSparseLayout
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    FPXWeightOnlyConfig,
    PerRow,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096)]
L2_MULTIPLE_BYTES = 250e6  # five times the H100's 50 MB L2


def copy_bandwidth() -> float:
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        b.copy_(a)
    e1.record()
    torch.cuda.synchronize()
    return 2 * a.numel() * 10 / (e0.elapsed_time(e1) * 1e-3)


def time_us(calls: List[Callable[[], torch.Tensor]], graph: bool, iters: int = 100) -> float:
    """Mean microseconds per call, cycling through `calls`."""
    n = len(calls)
    with torch.no_grad():
        for i in range(max(3 * n, 10)):
            calls[i % n]()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if graph:
            g = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                calls[0]()
            torch.cuda.current_stream().wait_stream(s)
            with torch.cuda.graph(g):
                for i in range(iters):
                    calls[i % n]()
            g.replay()
            torch.cuda.synchronize()
            e0.record()
            g.replay()
            e1.record()
        else:
            e0.record()
            for i in range(iters):
                calls[i % n]()
            e1.record()
        torch.cuda.synchronize()
        return e0.elapsed_time(e1) * 1e3 / iters


def host_us_per_call(fn: Callable[[], torch.Tensor], iters: int = 2000) -> float:
    """Wall time per call of a layer too small for the GPU to matter: the launch cost on the host."""
    with torch.no_grad():
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / iters * 1e6


def tinygemm_weights(lin: nn.Linear, group: int = 128):
    """torch's own int4 packing of the same asymmetric group-128 quantization."""
    w = lin.weight.detach().float()
    N, K = w.shape
    wg = w.reshape(N, K // group, group)
    mn, mx = wg.amin(-1, keepdim=True), wg.amax(-1, keepdim=True)
    scale = ((mx - mn) / 15).clamp_min(1e-6)
    zero = mn + scale * 8
    q = ((wg - mn) / scale).round().clamp(0, 15).to(torch.uint8).reshape(N, K)
    packed_u8 = (q[:, ::2] << 4 | q[:, 1::2]).contiguous()
    wpack = torch.ops.aten._convert_weight_to_int4pack(packed_u8, 8)
    sz = torch.stack([scale.reshape(N, -1), zero.reshape(N, -1)], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
    return wpack, sz


def int_mm_linear(x: torch.Tensor, w_t: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """int8 x int8 with torch's own ops: symmetric per-token activation
    quantization, `torch._int_mm`, then both scales (torchao's eager recipe)."""
    s = x.abs().amax(-1, keepdim=True).float().clamp_min(1e-5) / 127
    q = (x.float() / s).round().clamp(-127, 127).to(torch.int8)
    return (torch._int_mm(q, w_t).float() * s * w_scale).to(x.dtype)


def scaled_mm_linear(x: torch.Tensor, w_t: torch.Tensor, w_scale: torch.Tensor, rowwise: bool) -> torch.Tensor:
    """float8 x float8 with torch's own ops: dynamic e4m3 activation quantization
    (per tensor or per row, torchao's recipe), then `torch._scaled_mm` with fast accumulation."""
    amax = x.abs().amax(-1, keepdim=True) if rowwise else x.abs().amax()
    s = (amax.float() / 448.0).clamp_min(torch.finfo(torch.float32).eps)
    q = (x.float() / s).clamp(-448, 448).to(torch.float8_e4m3fn)
    return torch._scaled_mm(q, w_t, scale_a=s, scale_b=w_scale, out_dtype=x.dtype, use_fast_accum=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/cuda_layers.json")
    p.add_argument("--rows", default="1,16,2048")
    p.add_argument("--only", default="", help="comma-separated substrings: time only the methods whose label "
                   "holds one (bf16 F.linear, the baseline, always runs)")
    args = p.parse_args()
    torch.manual_seed(0)
    bw = copy_bandwidth()
    name = torch.cuda.get_device_name()
    print(f"{name}, torch {torch.__version__}: device-to-device copy {bw / 1e9:.0f} GB/s (read + write)", flush=True)
    rows: List[Dict] = []
    small = nn.Linear(256, 256, bias=False, dtype=torch.bfloat16, device="cuda")
    xs = torch.randn(1, 256, dtype=torch.bfloat16, device="cuda")
    host = {"bf16 F.linear": host_us_per_call(lambda: F.linear(xs, small.weight))}
    for label, cfg in (("int4 g128 (ours)", Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout())),
                       ("int8 (ours)", Int8WeightOnlyConfig())):
        m = copy.deepcopy(small)
        quantize_(m, cfg)
        host[label + " op"] = host_us_per_call(
            lambda w=m.weight: torch.ops.torchao_cpp.affine_quantized_linear(xs, w.impl, None))
        host[label + " module"] = host_us_per_call(lambda m=m: m(xs))
    print("host time per eager call (256 x 256 layer): " + ", ".join(f"{k} {v:.1f} us" for k, v in host.items()),
          flush=True)
    for K, N in SHAPES:
        copies = max(2, int(L2_MULTIPLE_BYTES // (N * K // 2)))
        lin = nn.Linear(K, N, bias=False, dtype=torch.bfloat16, device="cuda")
        # Copies of one weight in distinct memory (values do not change the timings).
        bf16 = [lin.weight.detach().clone() for _ in range(max(2, copies // 4))]
        l4, l8 = copy.deepcopy(lin), copy.deepcopy(lin)
        quantize_(l4, Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()))
        quantize_(l8, Int8WeightOnlyConfig())
        q4 = [AffineQuantizedTensor(l4.weight.impl.to("cpu").to("cuda")) for _ in range(copies)]
        q8 = [AffineQuantizedTensor(l8.weight.impl.to("cpu").to("cuda")) for _ in range(max(2, copies // 2))]
        lf = copy.deepcopy(lin)
        quantize_(lf, Float8WeightOnlyConfig())
        qf = [AffineQuantizedTensor(lf.weight.impl.to("cpu").to("cuda")) for _ in range(max(2, copies // 2))]
        l6 = copy.deepcopy(lin)
        quantize_(l6, FPXWeightOnlyConfig(3, 2))
        q6 = [AffineQuantizedTensor(l6.weight.impl.to("cpu").to("cuda")) for _ in range(max(2, copies * 2 // 3))]
        ld = copy.deepcopy(lin)
        quantize_(ld, Int8DynamicActivationInt8WeightConfig())
        qd = [ld.weight._moved(torch.device("cpu"))._moved(torch.device("cuda")) for _ in range(max(2, copies // 2))]
        ls = copy.deepcopy(lin)
        quantize_(ls, Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()))
        qs24 = [ls.weight._moved(torch.device("cpu"))._moved(torch.device("cuda")) for _ in range(max(2, copies))]
        lm = copy.deepcopy(lin)
        quantize_(lm, Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()))
        # Its sparse tensor cores' form is what a call reads: 3 bits per weight (and scales), as the stored rows.
        qm24 = [AffineQuantizedTensor(lm.weight.impl.to("cpu").to("cuda")) for _ in range(max(2, copies * 4 // 3))]
        # The same 2:4 weight dequantized to bfloat16 on the sparse tensor cores (op sparse24_linear).
        bf24 = torch.ops.torchao_cpp.sparse24_cusparselt_compress(lm.weight.dequantize().cuda())
        bf24 = [bf24.clone() for _ in range(max(2, copies // 2))] if bf24.numel() else []
        f8 = {}
        for label, gran in (("tensor", None), ("row", PerRow())):
            lq = copy.deepcopy(lin)
            quantize_(lq, Float8DynamicActivationFloat8WeightConfig(granularity=gran))
            f8[label] = [lq.weight._moved(torch.device("cpu"))._moved(torch.device("cuda"))
                         for _ in range(max(2, copies // 2))]
        # 2:4 float8 (the seed's defaults: e5m2 per-token activations, e4m3fn per-row weights): a call reads
        # the sparse tensor cores' form, 5 bits per weight.
        lf24 = copy.deepcopy(lin).cpu()
        quantize_(lf24, Float8DynamicActivationFloat8SemiSparseWeightConfig())
        qf24 = [lf24.weight._moved(torch.device("cuda")) for _ in range(max(2, copies * 4 // 5))]
        scaled_mm = {}
        try:
            for label, qs in f8.items():
                c, sc, _ = qs[0].original_weight_tensor.impl.get_plain()
                w_t = c.view(torch.float8_e4m3fn).t()
                sc = sc.float().reshape(1, -1) if label == "row" else sc.float().reshape(())
                scaled_mm[label] = [(w_t.t().clone().t(), sc.clone()) for _ in range(max(2, copies // 2))]
                scaled_mm_linear(torch.randn(32, K, dtype=torch.bfloat16, device="cuda"), *scaled_mm[label][0],
                                 label == "row")
        except Exception as e:  # noqa: BLE001  (recorded, not hidden)
            print(f"  torch _scaled_mm unavailable: {type(e).__name__}: {e}")
            scaled_mm = {}
        codes, w_scale, _ = ld.weight.original_weight_tensor.impl.get_plain()
        int_mm = [(codes.cuda().t(), w_scale.cuda().float().reshape(1, -1)) for _ in range(max(2, copies // 2))]
        try:
            int_mm_linear(torch.randn(32, K, dtype=torch.bfloat16, device="cuda"), *int_mm[0])
        except Exception as e:  # noqa: BLE001  (recorded, not hidden)
            print(f"  torch _int_mm unavailable: {type(e).__name__}: {e}")
            int_mm = []
        tiny = []
        try:
            t = tinygemm_weights(lin)
            tiny = [(t[0].clone(), t[1].clone()) for _ in range(copies)]
        except Exception as e:  # noqa: BLE001  (recorded, not hidden)
            print(f"  torch tinygemm unavailable: {type(e).__name__}: {e}")
        wbytes4 = q4[0].nbytes_quantized()
        wbytes8 = q8[0].nbytes_quantized()
        wbytes6 = q6[0].nbytes_quantized()
        wbytes16 = N * K * 2
        for M in [int(m) for m in args.rows.split(",")]:
            x = torch.randn(M, K, dtype=torch.bfloat16, device="cuda")
            methods = {
                "bf16 F.linear (cuBLAS)": ([lambda w=w: F.linear(x, w) for w in bf16], wbytes16),
                "int4 g128 weight-only (ours)": (
                    [lambda w=w: torch.ops.torchao_cpp.affine_quantized_linear(x, w.impl, None) for w in q4], wbytes4),
                "int8 weight-only (ours)": (
                    [lambda w=w: torch.ops.torchao_cpp.affine_quantized_linear(x, w.impl, None) for w in q8], wbytes8),
                "float8 weight-only (ours)": (
                    [lambda w=w: torch.ops.torchao_cpp.affine_quantized_linear(x, w.impl, None) for w in qf], wbytes8),
                "fp6 e3m2 weight-only (ours)": (
                    [lambda w=w: torch.ops.torchao_cpp.affine_quantized_linear(x, w.impl, None) for w in q6], wbytes6),
            }
            methods["int8 dyn x int8 (ours)"] = (
                [lambda w=w: torch.ops.torchao_cpp.activation_quantized_linear(x, w.impl, None) for w in qd], wbytes8)
            # MarlinSparseLayout on CUDA: mma.sp over the kept codes (3 bits per weight) and the group scales
            methods["int4 2:4 Marlin weight-only (ours)"] = (
                [lambda w=w: torch.ops.torchao_cpp.affine_quantized_linear(x, w.impl, None) for w in qm24],
                qm24[0].nbytes_quantized())
            if bf24:  # the kept bfloat16 values and cuSPARSELt's metadata: about 9 bits per weight
                methods["bf16 2:4 sparse24_linear (ours)"] = (
                    [lambda p=p: torch.ops.torchao_cpp.sparse24_linear(x, p, N, K) for p in bf24], N * K * 9 // 8)
            # kept codes and their 2-bit indices: 5 bits per weight
            methods["int8 dyn x int8 2:4 (ours)"] = (
                [lambda w=w: torch.ops.torchao_cpp.activation_quantized_linear(x, w.impl, None) for w in qs24],
                N * K * 5 // 8)
            if M > 16 and int_mm:
                methods["torch _int_mm + act quant"] = ([lambda t=t: int_mm_linear(x, *t) for t in int_mm], wbytes8)
            for label, qs in f8.items():
                methods[f"float8 dyn per-{label} (ours)"] = (
                    [lambda w=w: torch.ops.torchao_cpp.activation_quantized_linear(x, w.impl, None) for w in qs],
                    wbytes8)
                if M > 16 and label in scaled_mm:
                    methods[f"torch _scaled_mm per-{label} + act quant"] = (
                        [lambda t=t, r=label == "row": scaled_mm_linear(x, *t, r) for t in scaled_mm[label]], wbytes8)
            methods["float8 dyn x float8 2:4 (ours)"] = (
                [lambda w=w: torch.ops.torchao_cpp.activation_quantized_linear(x, w.impl, None) for w in qf24],
                N * K * 5 // 8)
            if tiny:
                methods["torch _weight_int4pack_mm"] = (
                    [lambda t=t: torch.ops.aten._weight_int4pack_mm(x, t[0], 128, t[1]) for t in tiny], wbytes4)
            if args.only:
                keep = [o for o in args.only.split(",") if o]
                methods = {k: v for k, v in methods.items()
                           if k.startswith("bf16 F.linear") or any(o in k for o in keep)}
            res = {}
            for label, (calls, wb) in methods.items():
                for graph in (False, True):
                    us = time_us(calls, graph)
                    res[(label, graph)] = us
                    rows.append({"M": M, "K": K, "N": N, "method": label, "cuda_graph": graph, "us": us,
                                 "weight_GB_s": wb / (us * 1e-6) / 1e9, "copy_bw_fraction": wb / (us * 1e-6) / bw})
            for graph in (False, True):
                base = res[("bf16 F.linear (cuBLAS)", graph)]
                line = f"M={M:5d} K={K:5d} N={N:5d} {'graph' if graph else 'eager'}:"
                for label, _ in methods.items():
                    us = res[(label, graph)]
                    r = next(r for r in rows if r["M"] == M and r["K"] == K and r["method"] == label
                             and r["cuda_graph"] == graph and r["N"] == N)
                    r["speedup_vs_bf16"] = base / us
                    line += f"  {label.split(' (')[0]} {us:8.1f} us ({base / us:4.2f}x, {100 * r['copy_bw_fraction']:3.0f}% BW)"
                print(line, flush=True)
        del bf16, q4, q8, qf, q6, qd, qs24, qm24, bf24, int_mm, tiny, f8, qf24, scaled_mm
        torch.cuda.empty_cache()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"device": name, "torch": torch.__version__, "copy_bandwidth_GB_s": bw / 1e9,
                   "host_us_per_eager_call": host, "rows": rows}, f,
                  indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
