"""Model-level CPU benchmark: a Llama-shaped decoder with random weights.

hidden 2048, intermediate 5632, 22 layers, 32 heads (4 KV heads), vocabulary
32000: about 1.1 B parameters, so the weights do not fit in any cache. For
fp32 (OpenBLAS), torch's own `quantize_dynamic` int8 model (fbgemm/oneDNN) and
each config of this project (int4 weight-only also on the model in bfloat16,
the activation dtype torchao's CPU int4 layout takes) it measures, in one run and with one thread count:
decode tokens/s at batch 1 (KV cache) in eager mode and as TorchScript
(torchao_cpp.scripting.script), prefill tokens/s for a 256-token prompt, and
the time quantize_ takes. A streaming read of a buffer larger than the
last-level cache (on transparent huge pages, as this project's weights are; the
4 KB-page figure is recorded too) gives the machine's read bandwidth, the decode roofline; it is
measured at the start and again just before and after each decode, which is
compared with the larger of those two, and (paired shares) after every decode
step, which is compared with the read that follows it. All models are built first and measured
in rounds (--rounds), each keeping its best: the machines this runs on are
shared, and their speed drifts over minutes.

    python benchmarks/python/model_bench.py --out benchmarks/results/model_bench.json
"""
import argparse
import copy
import ctypes
import gc
import json
import math
import os
import platform
import time
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import torchao_cpp
from torchao_cpp.scripting import script
from torchao_cpp.dtypes import Int4CPULayout
from torchao_cpp.quantization import (
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, T, H, D) as a complex product; freqs is (T, 1, D/2) complex."""
    # (in float32: there is no bfloat16 complex type)
    xc = torch.view_as_complex(x.float().reshape(x.shape[0], x.shape[1], x.shape[2], -1, 2))
    return torch.view_as_real(xc * freqs).flatten(3).to(x.dtype)


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.n1, self.n2 = RMSNorm(dim), RMSNorm(dim)

    def forward(self, x: torch.Tensor, start: int, freqs: torch.Tensor, mask: Optional[torch.Tensor],
                cache: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, T, _ = x.shape
        h = self.n1(x)
        q = rotary(self.q(h).view(B, T, self.heads, self.hd), freqs)
        k = rotary(self.k(h).view(B, T, self.kv_heads, self.hd), freqs)
        # Preallocated KV cache (B, S_max, kv_heads, hd): new positions are
        # written in place, attention reads the filled prefix.
        cache[0][:, start:start + T] = k
        cache[1][:, start:start + T] = self.v(h).view(B, T, self.kv_heads, self.hd)
        S = start + T
        keys, values = cache[0][:, :S].transpose(1, 2), cache[1][:, :S].transpose(1, 2)
        # Grouped-query attention: the query heads sharing a KV head are
        # stacked along the time axis, so K and V are never repeated.
        rep = self.heads // self.kv_heads
        qg = q.transpose(1, 2).reshape(B, self.kv_heads, rep * T, self.hd)
        att = (qg * (1.0 / math.sqrt(self.hd))) @ keys.transpose(-1, -2)
        if mask is not None:
            att = (att.view(B, self.kv_heads, rep, T, S) + mask).view(B, self.kv_heads, rep * T, S)
        y = (att.softmax(-1) @ values).view(B, self.heads, T, self.hd).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    def __init__(self, vocab=32000, dim=2048, hidden=5632, layers=22, heads=32, kv_heads=4, max_len=4096):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, hidden, heads, kv_heads) for _ in range(layers))
        self.layers = layers
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.kv_heads, self.hd = kv_heads, dim // heads
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None, :]
        # Rotary factors computed once (a buffer, not a Linear weight: never quantized).
        self.register_buffer("freqs", torch.polar(torch.ones_like(ang), ang)[:, None, :], persistent=False)

    @torch.jit.export
    def new_cache(self, length: int, batch: int = 1) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """An empty KV cache for `length` positions, one (keys, values) pair per block."""
        shape = [batch, length, self.kv_heads, self.hd]
        dt = self.emb.weight.dtype  # the model's dtype (the embedding is never quantized)
        return [(torch.zeros(shape, dtype=dt), torch.zeros(shape, dtype=dt)) for _ in range(self.layers)]

    def forward(self, tokens: torch.Tensor, start: int = 0,
                caches: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None
                ) -> Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]:
        """Logits for `tokens` at positions start.. (the cache holds the earlier ones)."""
        x = self.emb(tokens)
        T = tokens.shape[1]
        if caches is None:
            caches = self.new_cache(start + T, tokens.shape[0])
        freqs = self.freqs[start:start + T]
        mask: Optional[torch.Tensor] = None
        if T > 1:  # causal mask over the cached and new positions, built once per call
            mask = torch.full((T, start + T), float("-inf"), dtype=x.dtype).triu(start + 1)
        # (enumerate, not zip: the model is also run as TorchScript)
        for i, b in enumerate(self.blocks):
            x = b(x, start, freqs, mask, caches[i])
        return self.lm_head(self.norm(x)), caches


def build_model(seed: int = 0, layers: int = 22) -> Decoder:
    torch.manual_seed(seed)
    with torch.no_grad():
        m = Decoder(layers=layers)
        for p in m.parameters():  # cheap init; numerics do not matter for speed
            if p.dim() == 2:
                p.normal_(0, 0.02)
    return m.eval()


_HUGE_PAGE = 2 << 20


def _madvise_huge(addr: int, length: int) -> bool:
    """MADV_HUGEPAGE on [addr, addr + length) (Linux); False where that is not available."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return False
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise(addr, length, 14) == 0  # 14: MADV_HUGEPAGE


def ones(numel: int, huge_pages: Optional[bool] = None) -> torch.Tensor:
    """float32 ones to read from. huge_pages (default: unless TORCHAO_CPP_HUGE_PAGES=0, as for this
    project's weights): the 2 MB-aligned buffer is advised as transparent huge pages before its first
    write, so that the bandwidth the weights are compared with is read from the same kind of pages (a 2 GB
    sum read 10-15 % faster from them than from 4 KB pages on the Intel Xeon VM)."""
    if huge_pages is None:
        huge_pages = os.environ.get("TORCHAO_CPP_HUGE_PAGES", "1") != "0"
    if not huge_pages:
        return torch.ones(numel)
    raw = torch.empty(numel + _HUGE_PAGE // 4)  # untouched: a fresh mapping at this size
    skip = (-raw.data_ptr()) % _HUGE_PAGE // 4
    buf = raw[skip:skip + numel]
    _madvise_huge(buf.data_ptr(), numel * 4 // _HUGE_PAGE * _HUGE_PAGE)
    return buf.fill_(1.0)


def read_bandwidth(gib: float = 2.0, huge_pages: Optional[bool] = None) -> float:
    buf = ones(int(gib * (1 << 30) / 4), huge_pages)
    buf.sum()
    t = time.perf_counter()
    for _ in range(3):
        buf.sum()
    return buf.numel() * 4 * 3 / (time.perf_counter() - t)


def start_decode(model, prompt: int, steps: int) -> Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]:
    """Prefill of `prompt` random tokens and one warm-up step (call under no_grad): the next token and a KV
    cache with room for `steps` more."""
    tok = torch.randint(0, 32000, (1, prompt))
    caches = model.new_cache(prompt + steps + 1)
    logits, _ = model(tok, 0, caches)
    nxt = logits[:, -1:].argmax(-1)
    model(nxt, prompt, caches)  # warm-up step
    return nxt, caches


def decode_tps(model, prompt: int = 8, steps: int = 8) -> float:
    with torch.no_grad():
        nxt, caches = start_decode(model, prompt, steps)
        t = time.perf_counter()
        pos = prompt + 1
        for _ in range(steps):
            logits, _ = model(nxt, pos, caches)
            nxt = logits[:, -1:].argmax(-1)
            pos += 1
        return steps / (time.perf_counter() - t)


def last_level_cache_bytes() -> int:
    """Size of CPU 0's level-3 cache from sysfs (0 where Linux does not say)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
    except OSError:
        return 0
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text or 0)


def decode_paired_share(model, weight_bytes: int, probe: torch.Tensor, prompt: int = 8,
                        steps: int = 16) -> Tuple[float, float]:
    """Median over decode steps of the weight bytes streamed per second in a step over the read bandwidth
    of a plain sum of `probe` (larger than the last-level cache) run right after that step, and the
    median of those bandwidths. This VM's read bandwidth moves by up to 2x within seconds; pairing each
    step with a read made milliseconds later compares the two at the same moment.
    """
    with torch.no_grad():
        nxt, caches = start_decode(model, prompt, steps)
        probe.sum()
        shares, bws = [], []
        for i in range(steps):
            t0 = time.perf_counter()
            logits, _ = model(nxt, prompt + 1 + i, caches)
            nxt = logits[:, -1:].argmax(-1)
            t1 = time.perf_counter()
            probe.sum()
            bw = probe.numel() * probe.element_size() / (time.perf_counter() - t1)
            shares.append(weight_bytes / (t1 - t0) / bw)
            bws.append(bw)
        shares.sort()
        bws.sort()
        return shares[len(shares) // 2], bws[len(bws) // 2]


def prefill_tps(model, length: int = 256, runs: int = 1) -> float:
    """Tokens/s of the better of `runs` prefills (this shared machine's noise only ever slows a run)."""
    with torch.no_grad():
        tok = torch.randint(0, 32000, (1, length))
        model(tok[:, :16])  # warm-up
        best = 0.0
        for _ in range(runs):
            t = time.perf_counter()
            model(tok)
            best = max(best, length / (time.perf_counter() - t))
        return best


def linear_weight_bytes(model) -> int:
    total = 0
    for m in model.modules():
        if hasattr(m, "_packed_params") and callable(getattr(m, "weight", None)):  # torch's dynamic quantized linear
            w = m.weight()
            total += w.numel() * w.element_size() + 4 * w.shape[0]
        elif isinstance(m, nn.Linear):
            w = m.weight
            total += w.nbytes_quantized() if hasattr(w, "nbytes_quantized") else w.numel() * w.element_size()
    return total


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", default="benchmarks/results/model_bench.json")
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="measurements of every model, best kept")
    p.add_argument("--float32-matmul-precision", default="highest", choices=["highest", "high", "medium"],
                   help="torch.set_float32_matmul_precision: 'high' lets float32 weight-only linears take "
                        "bfloat16x3 products on AMX tiles (torch 1.13's own CPU matmuls ignore it)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.float32_matmul_precision)
    print(f"threads {args.threads}, torch {torch.__version__}, torchao_cpp {torchao_cpp.__version__}", flush=True)
    bw = read_bandwidth()
    bw_4k = read_bandwidth(huge_pages=False)
    print(f"read bandwidth {bw / 1e9:.1f} GB/s ({bw_4k / 1e9:.1f} GB/s from 4 KB pages)", flush=True)
    base = build_model()
    results: Dict[str, Dict[str, float]] = {}
    # Every model is built first and all are measured in rounds, one after the
    # other: this shared machine's speed (read bandwidth 13-25 GB/s within one
    # run) drifts over minutes, so each model gets the best of its rounds and
    # no model is measured only in a slow spell.
    models: Dict[str, nn.Module] = {"fp32": base}
    models["torch quantize_dynamic int8"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(base), {nn.Linear}, dtype=torch.qint8)
    # (name, config, model dtype). The bfloat16 row is the model with its
    # parameters in bfloat16, as torchao runs int4 on CPU (its Int4CPULayout
    # takes bfloat16 activations): the kernels then use the CPU's BF16 dot.
    configs = [
        ("Int8WeightOnly", Int8WeightOnlyConfig(), torch.float32),
        ("Int4WeightOnly g128", Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()), torch.float32),
        ("Int4WeightOnly g128 bf16", Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()), torch.bfloat16),
        ("Int8DynAct-Int8Weight", Int8DynamicActivationInt8WeightConfig(), torch.float32),
        ("Int8DynAct-Int4Weight g32", Int8DynamicActivationInt4WeightConfig(group_size=32), torch.float32),
    ]
    for name, cfg, dtype in configs:
        m = copy.deepcopy(base)
        for prm in m.parameters():  # parameters only: the rotary buffer stays complex
            prm.data = prm.data.to(dtype)
        t = time.perf_counter()
        quantize_(m, cfg)
        results[name] = {"quantize_s": time.perf_counter() - t}
        models[name] = m
        gc.collect()
    results = {name: results.get(name, {}) for name in models}  # in the table's order
    for name in models:
        results[name].update({"weight_bytes": linear_weight_bytes(models[name]), "decode_tok_s": 0.0,
                                             "decode_tok_s_torchscript": 0.0, "prefill_tok_s": 0.0})

    # The paired reads' buffer: 256 MiB, or three times the last-level cache where that is larger.
    probe = ones(max(64 << 20, 3 * last_level_cache_bytes() // 4))

    def measure(name: str, model: nn.Module) -> None:
        r = results[name]
        wb = r["weight_bytes"]
        # Decode is compared with the larger of the read bandwidths measured
        # just before and just after it, so a dip in one cannot inflate the
        # share; the share is that of the round with the best eager decode.
        bw_before = read_bandwidth()
        d = decode_tps(model, steps=args.decode_steps)
        # The same model as TorchScript (torchao_cpp.scripting.script), as it is
        # deployed to C++: no Python between the ops.
        scripted = script(model)
        d_ts = decode_tps(scripted, steps=args.decode_steps)
        # Each decode step paired with a read right after it (decode_paired_share): the share at the same moment.
        paired, paired_bw = decode_paired_share(model, wb, probe, steps=args.decode_steps)
        paired_ts, paired_bw_ts = decode_paired_share(scripted, wb, probe, steps=args.decode_steps)
        r["paired_share"] = max(r.get("paired_share", 0.0), paired)
        r["paired_share_torchscript"] = max(r.get("paired_share_torchscript", 0.0), paired_ts)
        r.setdefault("paired_rounds", []).append({"share": paired, "share_torchscript": paired_ts,
                                                  "read_GB_s": paired_bw / 1e9, "read_GB_s_torchscript": paired_bw_ts / 1e9})
        del scripted
        gc.collect()
        bw_around = max(bw_before, read_bandwidth())
        pf = prefill_tps(model, runs=1)
        print(f"  {name:28s} read BW {bw_around / 1e9:4.1f} GB/s; decode {d:6.2f} tok/s ({wb * d / 1e9:5.1f} GB/s, "
              f"{100 * wb * d / bw_around:3.0f}%), TorchScript {d_ts:6.2f} tok/s ({100 * wb * d_ts / bw_around:3.0f}%); "
              f"paired shares {100 * paired:3.0f}% / {100 * paired_ts:3.0f}% (reads {paired_bw / 1e9:4.1f} / "
              f"{paired_bw_ts / 1e9:4.1f} GB/s); prefill {pf:7.1f} tok/s", flush=True)
        if d > r["decode_tok_s"]:
            r.update({"decode_tok_s": d, "decode_weight_GB_s": wb * d / 1e9,
                      "read_bandwidth_around_decode_GB_s": bw_around / 1e9, "decode_weight_bw_fraction": wb * d / bw_around})
        if d_ts > r["decode_tok_s_torchscript"]:
            r.update({"decode_tok_s_torchscript": d_ts,
                      "read_bandwidth_around_decode_torchscript_GB_s": bw_around / 1e9,
                      "decode_weight_bw_fraction_torchscript": wb * d_ts / bw_around})
        r["prefill_tok_s"] = max(r["prefill_tok_s"], pf)

    for rnd in range(args.rounds):
        print(f"round {rnd + 1} of {args.rounds}", flush=True)
        for name, model in models.items():
            measure(name, model)
    for name, r in results.items():
        print(f"{name:28s} decode {r['decode_tok_s']:6.2f} tok/s ({r['decode_weight_GB_s']:5.1f} GB/s, "
              f"{100 * r['decode_weight_bw_fraction']:3.0f}% of read BW), TorchScript {r['decode_tok_s_torchscript']:6.2f} "
              f"tok/s ({100 * r['decode_weight_bw_fraction_torchscript']:3.0f}%); paired shares "
              f"{100 * r['paired_share']:3.0f}% / {100 * r['paired_share_torchscript']:3.0f}%; prefill {r['prefill_tok_s']:7.1f} tok/s"
              + (f"; quantize_ {r['quantize_s']:4.1f} s" if "quantize_s" in r else ""), flush=True)
    fp32 = results["fp32"]
    for r in results.values():
        r["decode_vs_fp32"] = r["decode_tok_s"] / fp32["decode_tok_s"]
        r["decode_torchscript_vs_fp32"] = r["decode_tok_s_torchscript"] / fp32["decode_tok_s_torchscript"]
        r["prefill_vs_fp32"] = r["prefill_tok_s"] / fp32["prefill_tok_s"]
    out = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
           "float32_matmul_precision": args.float32_matmul_precision,
           "torch": torch.__version__, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
           "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default"),
           "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", "default"),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
           "read_bandwidth_GB_s": bw / 1e9, "read_bandwidth_4k_pages_GB_s": bw_4k / 1e9, "rounds": args.rounds, "results": results}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(results)
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
        ys = range(len(names))
        ax[0].barh([y - 0.2 for y in ys], [results[n]["decode_tok_s"] for n in names], height=0.4, label="eager")
        ax[0].barh([y + 0.2 for y in ys], [results[n]["decode_tok_s_torchscript"] for n in names], height=0.4,
                   label="TorchScript")
        ax[0].set_yticks(list(ys), names)
        ax[0].legend()
        ax[0].set_xlabel("decode tokens/s (batch 1)")
        ax[1].barh(names, [results[n]["prefill_tok_s"] for n in names])
        ax[1].set_xlabel("prefill tokens/s (256-token prompt)")
        for a in ax:
            a.invert_yaxis()
        fig.suptitle(f"1.1B Llama-shaped decoder, {args.threads} threads, read BW {bw / 1e9:.0f} GB/s")
        fig.tight_layout()
        png = os.path.splitext(args.out)[0] + ".png"
        fig.savefig(png, dpi=100)
        print(f"wrote {png}")
    except ImportError:
        print("matplotlib not installed: no chart (scripts/bootstrap.sh installs python3-matplotlib)")


if __name__ == "__main__":
    main()
