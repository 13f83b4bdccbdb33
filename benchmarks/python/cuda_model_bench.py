"""Model-level CUDA benchmark (GPU machine): a Llama-3-8B-shaped decoder with
random bf16 weights (hidden 4096, intermediate 14336, 32 layers, 32 heads with
8 KV heads, vocabulary 128256), batch-1 decode tokens/s, eager and replayed
from one captured CUDA graph per config.

The decode step has static shapes so that one graph serves every position:
the KV cache is preallocated, new keys and values are written at a position
held in a tensor, and attention reads the whole cache under a mask. The same
model code runs for every config; only the linears change.

    python benchmarks/python/cuda_model_bench.py --out benchmarks/results/cuda_model_h100.json
"""
import argparse
import copy
import gc
import json
import math
import os
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

import torchao_cpp  # noqa: F401  (registers the ops)
from torchao_cpp.dtypes import Int4CPULayout
from torchao_cpp.quantization import (
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_bench import Block, RMSNorm  # noqa: E402  (the CPU benchmark's layers)


class StaticBlock(Block):
    """Block with a static-shape decode step (one token, position in a tensor)."""

    def step(self, x, pos, freqs, mask, cache):
        B = x.shape[0]
        h = self.n1(x)

        def rot(t, heads):  # rotary in float32: complex views need it
            tc = torch.view_as_complex(t.view(B, 1, heads, -1, 2).float())
            return torch.view_as_real(tc * freqs).flatten(3).to(x.dtype)

        q = rot(self.q(h), self.heads)
        cache[0].index_copy_(1, pos, rot(self.k(h), self.kv_heads))
        cache[1].index_copy_(1, pos, self.v(h).view(B, 1, self.kv_heads, self.hd))
        keys, values = cache[0].transpose(1, 2), cache[1].transpose(1, 2)
        rep = self.heads // self.kv_heads
        qg = q.transpose(1, 2).reshape(B, self.kv_heads, rep, self.hd)
        att = (qg * (1.0 / math.sqrt(self.hd))) @ keys.transpose(-1, -2) + mask
        y = (att.float().softmax(-1).to(x.dtype) @ values).reshape(B, 1, -1)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    def __init__(self, vocab=128256, dim=4096, hidden=14336, layers=32, heads=32, kv_heads=8, max_len=512):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(StaticBlock(dim, hidden, heads, kv_heads) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.kv_heads, self.hd, self.max_len = kv_heads, dim // heads, max_len
        self.register_buffer("freqs", self.rotary_table(), persistent=False)

    def rotary_table(self) -> torch.Tensor:
        """Rotary factors (max_len, 1, hd / 2), complex64."""
        inv = 1.0 / (500000 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        ang = torch.arange(self.max_len, dtype=torch.float32)[:, None] * inv[None, :]
        return torch.polar(torch.ones_like(ang), ang)[:, None, :]

    def new_cache(self, dtype, device):
        shape = (1, self.max_len, self.kv_heads, self.hd)
        return [(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))
                for _ in self.blocks]

    def step(self, token, pos, cache):
        """Logits for one token (1, 1) at position pos (a 1-element long tensor)."""
        x = self.emb(token)
        freqs = self.freqs.index_select(0, pos)
        idx = torch.arange(self.max_len, device=pos.device)
        mask = torch.where(idx <= pos, 0.0, float("-inf")).to(x.dtype)
        for b, c in zip(self.blocks, cache):
            x = b.step(x, pos, freqs, mask, c)
        return self.lm_head(self.norm(x))


def decode_tps(model: Decoder, graph: bool, steps: int = 64) -> float:
    dev = model.emb.weight.device
    cache = model.new_cache(torch.bfloat16, dev)
    token = torch.zeros(1, 1, dtype=torch.long, device=dev)
    pos = torch.zeros(1, dtype=torch.long, device=dev)
    with torch.no_grad():
        run: Callable[[], torch.Tensor] = lambda: model.step(token, pos, cache)
        for _ in range(3):
            run()
        torch.cuda.synchronize()
        if graph:
            g = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                run()
            torch.cuda.current_stream().wait_stream(s)
            with torch.cuda.graph(g):
                logits = model.step(token, pos, cache)
            run = lambda: (g.replay(), logits)[1]  # noqa: E731
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(steps):
            pos.fill_(i)
            token.copy_(run().argmax(-1).view(1, 1))
        torch.cuda.synchronize()
        return steps / (time.perf_counter() - t)


def build(seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    with torch.device("cuda"):
        m = Decoder()
        freqs = m._buffers.pop("freqs")  # complex: keep it out of the bfloat16 cast
        m.to(torch.bfloat16).register_buffer("freqs", freqs, persistent=False)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.02)
    return m.eval()


def linear_weight_bytes(model: nn.Module) -> int:
    total = 0
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            w = mod.weight
            total += w.nbytes_quantized() if hasattr(w, "nbytes_quantized") else w.numel() * w.element_size()
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/cuda_model.json")
    p.add_argument("--steps", type=int, default=64)
    args = p.parse_args()
    name = torch.cuda.get_device_name()
    base = build()
    params = sum(p.numel() for p in base.parameters())
    print(f"{name}, torch {torch.__version__}: {params / 1e9:.2f} B parameters", flush=True)
    configs: Dict[str, object] = {
        "bf16": None,
        "int4 g128 weight-only (ours)": Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()),
        "int8 weight-only (ours)": Int8WeightOnlyConfig(),
        "int8 dyn x int8 (ours)": Int8DynamicActivationInt8WeightConfig(),
    }
    rows: List[Dict] = []
    for label, cfg in configs.items():
        model, quant_s = base, None
        if cfg is not None:
            model = copy.deepcopy(base)
            t = time.perf_counter()
            quantize_(model, cfg)
            torch.cuda.synchronize()
            quant_s = time.perf_counter() - t
        wb = linear_weight_bytes(model)
        r = {"config": label, "linear_weight_GB": wb / 1e9, "quantize_s": quant_s}
        for graph in (False, True):
            r["graph_tok_s" if graph else "eager_tok_s"] = decode_tps(model, graph, args.steps)
        rows.append(r)
        print(f"{label:30s} weights {wb / 1e9:6.2f} GB  eager {r['eager_tok_s']:7.1f} tok/s  "
              f"graph {r['graph_tok_s']:7.1f} tok/s" + (f"  quantize_ {quant_s:.1f} s" if quant_s else ""), flush=True)
        if model is not base:
            del model
        gc.collect()
        torch.cuda.empty_cache()
    for r in rows:
        r["eager_speedup_vs_bf16"] = r["eager_tok_s"] / rows[0]["eager_tok_s"]
        r["graph_speedup_vs_bf16"] = r["graph_tok_s"] / rows[0]["graph_tok_s"]
        print(f"{r['config']:30s} vs bf16: eager {r['eager_speedup_vs_bf16']:4.2f}x  "
              f"graph {r['graph_speedup_vs_bf16']:4.2f}x")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"device": name, "torch": torch.__version__, "parameters": params, "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
