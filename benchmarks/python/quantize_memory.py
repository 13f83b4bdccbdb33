"""Peak extra memory of quantize_ on the 1.1 B benchmark model (issue 7, reliability).

Claim checked: quantize_ never holds more than one layer's float weight in extra
memory at a time. For each config, in a fresh subprocess: build model_bench.py's
decoder (~1.1 B parameters, ~4.4 GB fp32), gc, malloc_trim, take VmRSS as the
baseline, reset the kernel's RSS high-water mark (write "5" to
/proc/self/clear_refs), then run quantize_ while a thread samples RSS
(/proc/self/statm) every ~1 ms. Peak extra = max(sampled peak, VmHWM) - baseline.
The bound is the largest single nn.Linear float weight (lm_head, 32000 x 2048
fp32 = 250 MiB) plus a fixed slack of 64 MiB for allocator noise and the
sampler; any config above it makes the script exit non-zero, after printing the
table and writing the JSON. To show where memory goes, the quantize handler is
wrapped (called unchanged) to log RSS after each layer.

    .venv/bin/python benchmarks/python/quantize_memory.py --out benchmarks/results/quantize_memory.json
"""
import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_bench  # noqa: E402  (build_model: the 1.1 B decoder)

import torchao_cpp  # noqa: E402
from torchao_cpp.dtypes import Int4CPULayout  # noqa: E402
from torchao_cpp.quantization import (  # noqa: E402
    AOBaseConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)
from torchao_cpp.quantization import quant_api  # noqa: E402

MIB = 1 << 20
SLACK_BYTES = 64 * MIB
PAGE = os.sysconf("SC_PAGE_SIZE")

CONFIGS: Dict[str, Callable[[], AOBaseConfig]] = {
    "Int8WeightOnly": lambda: Int8WeightOnlyConfig(),
    "Int4WeightOnly g128 Int4CPU": lambda: Int4WeightOnlyConfig(group_size=128, layout=Int4CPULayout()),
    "Int8DynAct-Int8Weight": lambda: Int8DynamicActivationInt8WeightConfig(),
}


def rss_bytes(fd: int) -> int:
    """Resident set size from an open /proc/self/statm (cheap enough to read every millisecond)."""
    return int(os.pread(fd, 128, 0).split()[1]) * PAGE


def status_bytes(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_hwm() -> bool:
    """Resets VmHWM to the current RSS (clear_refs "5"); True if the kernel accepted it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return status_bytes("VmHWM") <= status_bytes("VmRSS") + 4 * MIB


def malloc_trim() -> None:
    """Returns freed heap pages to the OS (glibc), so the baseline holds no garbage."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Sampler(threading.Thread):
    """Samples RSS every `interval` s until stopped; keeps the peak and when it happened."""

    def __init__(self, interval: float = 0.001):
        super().__init__(daemon=True)
        self.interval = interval
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.peak = rss_bytes(self.fd)
        self.peak_layer = ""
        self.layer = ""  # set by the instrumented handler: the layer being quantized
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            r = rss_bytes(self.fd)
            self.samples += 1
            if r > self.peak:
                self.peak, self.peak_layer = r, self.layer
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        os.close(self.fd)


def largest_linear_weight(model: nn.Module) -> Tuple[str, int]:
    """(FQN, bytes) of the largest float nn.Linear weight."""
    return max(((n, m.weight.numel() * m.weight.element_size()) for n, m in model.named_modules()
                if isinstance(m, nn.Linear)), key=lambda t: t[1])


def measure(name: str, threads: int) -> Dict[str, Any]:
    """Runs in the subprocess: quantize_ the freshly built model with config `name`, return the numbers."""
    torch.set_num_threads(threads)
    model = model_bench.build_model()
    largest_fqn, largest = largest_linear_weight(model)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    float_linear_bytes = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                             if isinstance(m, nn.Linear))
    config = CONFIGS[name]()
    gc.collect()
    malloc_trim()
    baseline = status_bytes("VmRSS")
    hwm_reset = reset_hwm()
    sampler = Sampler()
    per_layer: List[Tuple[str, int]] = []
    handler = quant_api._cpp_handler

    def logged(weight: torch.Tensor, cfg: AOBaseConfig, fqn: str) -> Optional[torch.Tensor]:
        sampler.layer = fqn
        out = handler(weight, cfg, fqn)
        per_layer.append((fqn, rss_bytes(sampler.fd) - baseline))
        return out

    quant_api._cpp_handler = logged  # _handler_for looks the name up at each call
    try:
        sampler.start()
        t = time.perf_counter()
        quantize_(model, config)
        seconds = time.perf_counter() - t
        sampler.stop()
    finally:
        quant_api._cpp_handler = handler
    hwm = status_bytes("VmHWM") if hwm_reset else 0
    peak = max(sampler.peak, hwm)
    gc.collect()
    after = status_bytes("VmRSS")
    quantized_bytes = sum(m.weight.nbytes_quantized() for m in model.modules()
                          if isinstance(m, nn.Linear) and hasattr(m.weight, "nbytes_quantized"))
    return {
        "config": name, "config_repr": repr(config), "threads": threads, "quantize_s": seconds,
        "baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "peak_extra_bytes": peak - baseline,
        "sampled_peak_extra_bytes": sampler.peak - baseline, "vmhwm_peak_extra_bytes": (hwm - baseline) if hwm_reset else None,
        "hwm_reset": hwm_reset, "samples": sampler.samples, "peak_during_layer": sampler.peak_layer,
        "rss_after_bytes": after, "rss_after_minus_baseline_bytes": after - baseline,
        "largest_linear_fqn": largest_fqn, "largest_linear_weight_bytes": largest,
        "n_linear": n_linear, "float_linear_weight_bytes": float_linear_bytes,
        "quantized_linear_weight_bytes": quantized_bytes,
        # After the last layer's handler returned, before quantize_ assigned (and so released) any weight.
        "extra_after_last_handler_bytes": per_layer[-1][1] if per_layer else 0,
        "extra_after_each_layer_bytes": per_layer,
    }


def run_subprocess(name: str, threads: int) -> Dict[str, Any]:
    """Measures one config in a fresh interpreter (nothing of an earlier config stays in its heap)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"worker for {name} failed (rc {p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", default="benchmarks/results/quantize_memory.json")
    p.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.threads)))
        return

    print(f"threads {args.threads}, torch {torch.__version__}, torchao_cpp {torchao_cpp.__version__}; "
          f"bound: largest float linear weight + {SLACK_BYTES // MIB} MiB slack", flush=True)
    results = []
    hdr = (f"{'config':30s} {'quantize_ s':>11s} {'baseline MiB':>12s} {'peak extra MiB':>14s} "
           f"{'bound MiB':>9s} {'extra after last handler MiB':>28s} {'quantized MiB':>13s} {'after-baseline MiB':>18s}  "
           "peak during")
    print(hdr)
    for name in args.configs:
        r = run_subprocess(name, args.threads)
        r["bound_bytes"] = r["largest_linear_weight_bytes"] + SLACK_BYTES
        r["within_bound"] = r["peak_extra_bytes"] <= r["bound_bytes"]
        results.append(r)
        print(f"{name:30s} {r['quantize_s']:11.1f} {r['baseline_rss_bytes'] / MIB:12.0f} "
              f"{r['peak_extra_bytes'] / MIB:14.0f} {r['bound_bytes'] / MIB:9.0f} "
              f"{r['extra_after_last_handler_bytes'] / MIB:28.0f} {r['quantized_linear_weight_bytes'] / MIB:13.0f} "
              f"{r['rss_after_minus_baseline_bytes'] / MIB:18.0f}  "
              f"{r['peak_during_layer']}" + ("" if r["within_bound"] else "   OVER"), flush=True)
    first = results[0]
    print(f"largest float linear weight: {first['largest_linear_fqn']} {first['largest_linear_weight_bytes'] / MIB:.0f} MiB "
          f"({first['largest_linear_weight_bytes'] / 1e6:.0f} MB); all {first['n_linear']} linears "
          f"{first['float_linear_weight_bytes'] / MIB:.0f} MiB; VmHWM reset {'worked' if first['hwm_reset'] else 'refused'}")
    out = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
           "slack_bytes": SLACK_BYTES, "results": results}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")
    over = [r for r in results if not r["within_bound"]]
    if over:
        raise SystemExit("quantize_ held more than one layer's float weight in extra memory: " + "; ".join(
            f"{r['config']} peak extra {r['peak_extra_bytes'] / MIB:.0f} MiB > bound {r['bound_bytes'] / MIB:.0f} MiB "
            f"({r['extra_after_last_handler_bytes'] / MIB:.0f} MiB already held when the last layer's handler returned, "
            f"before any float weight was released)" for r in over))


if __name__ == "__main__":
    main()
