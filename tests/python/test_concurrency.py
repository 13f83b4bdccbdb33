"""Quantized models run from several Python threads at once give the single-thread output bit for bit.

For every config that runs on CPU, N threads (N = 2, 4, 8) run the same quantized
model (eager, and the TorchScript module of `torchao_cpp.script`) for a fixed
number of iterations over inputs of batch 1 and 8, released together by a
barrier; every output must equal (`torch.equal`) the one computed single-threaded
on an identically quantized model.

The model under the threads is quantized afresh and never run before they start:
the weight objects build some caches on first use (`std::call_once` in
csrc/classes/affine_quantized_tensor.cpp: the pre-packed VNNI int8 weights, float
zero points), so the first calls race on that initialisation too. The sweep runs
the ops with one intra-op thread; one more test runs two callers that each open an
OpenMP team of two. (Two intra-op threads in the whole sweep oversubscribe the
2-core machine: libgomp's spin-waiting took it from ~5 s to ~40 s on a busy machine.)

    .venv/bin/python -m pytest tests/python/test_concurrency.py -q -p no:cacheprovider
"""
import threading
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn as nn

import torchao_cpp
from torchao_cpp.dtypes import (
    AffineQuantizedTensor,
    Int4CPULayout,
    LinearActivationQuantizedTensor,
    PackedLinearInt8DynamicActivationIntxWeightLayout,
    MarlinSparseLayout,
    SemiSparseLayout,
    float8_e4m3fn,
    float8_e5m2,
    int3,
    int4,
    uint3,
)
from torchao_cpp.quantization import (
    AOBaseConfig,
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    FPXWeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    MappingType,
    PerAxis,
    PerGroup,
    UIntXWeightOnlyConfig,
    quantize_,
)

# Every config (and layout) that runs on CPU. PerRow float8 needs bfloat16 (as the seed), which this
# float32 model is not.
CONFIGS: List[Tuple[str, AOBaseConfig]] = [
    ("int8wo", Int8WeightOnlyConfig()),
    ("int8wo-g32", Int8WeightOnlyConfig(group_size=32)),
    ("int4wo-g32-tiled", Int4WeightOnlyConfig(group_size=32)),
    ("int4wo-g64-int4cpu", Int4WeightOnlyConfig(group_size=64, layout=Int4CPULayout())),
    ("int8dyn-int8", Int8DynamicActivationInt8WeightConfig()),
    ("int8dyn-int8-asym-act", Int8DynamicActivationInt8WeightConfig(act_mapping_type=MappingType.ASYMMETRIC)),
    ("int8dyn-int8-wo-decode", Int8DynamicActivationInt8WeightConfig(weight_only_decode=True)),
    ("int8dyn-int8-2:4", Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())),
    ("int8dyn-int4-g32", Int8DynamicActivationInt4WeightConfig(group_size=32)),
    ("int4dyn-int4", Int4DynamicActivationInt4WeightConfig()),
    ("intxwo-int4-g32", IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(32))),
    ("intxwo-int3-axis0-asym", IntxWeightOnlyConfig(weight_dtype=int3, granularity=PerAxis(0),
                                                     mapping_type=MappingType.ASYMMETRIC)),
    ("int8dyn-intx-int4-qdq", Int8DynamicActivationIntxWeightConfig(weight_dtype=int4)),
    ("int8dyn-intx-int3-packed", Int8DynamicActivationIntxWeightConfig(
        weight_dtype=int3, layout=PackedLinearInt8DynamicActivationIntxWeightLayout(target="aten"))),
    ("uintxwo-uint3-g64", UIntXWeightOnlyConfig(dtype=uint3, group_size=64)),
    ("float8wo-e4m3", Float8WeightOnlyConfig(weight_dtype=float8_e4m3fn)),
    ("float8wo-e5m2", Float8WeightOnlyConfig(weight_dtype=float8_e5m2)),
    ("fpxwo-fp6-e3m2", FPXWeightOnlyConfig(ebits=3, mbits=2)),  # up and mid; head (out 64) stays float
    ("float8dyn-pertensor", Float8DynamicActivationFloat8WeightConfig()),
    ("float8static", Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.02))),
    ("float8dyn-2:4", Float8DynamicActivationFloat8SemiSparseWeightConfig()),
    ("int4wo-2:4-marlin", Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout())),
]
CONFIG_PARAMS = [pytest.param(c, id=name) for name, c in CONFIGS]

THREAD_COUNTS = (2, 4, 8)
ITERATIONS = 3  # passes over the inputs per thread
INTRA_OP_THREADS = 1  # torch.set_num_threads in every thread (the main one included) unless a test says otherwise


class MLP(nn.Module):
    """256 -> 512 -> 256 -> 64 with activations; the first and last linears have a bias, the middle one not."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(256, 512)
        self.mid = nn.Linear(512, 256, bias=False)
        self.head = nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.up(x))
        h = torch.relu(self.mid(h)) + x
        return self.head(h)


def _inputs() -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    # batch 1 and 8, 2-d and 3-d; (8, 1, 256) is a decode-shaped input (x.shape[1] == 1).
    shapes = [(1, 256), (8, 256), (8, 1, 256), (2, 4, 256)]
    return [torch.randn(s, generator=g) for s in shapes]


def _quantized(config: AOBaseConfig) -> MLP:
    torch.manual_seed(0)
    m = MLP().eval()
    quantize_(m, config)
    # FPXWeightOnlyConfig skips head (out_features 64 is not a multiple of 256, as the seed).
    for lin in (m.up, m.mid) if isinstance(config, FPXWeightOnlyConfig) else (m.up, m.mid, m.head):
        assert isinstance(lin.weight, (AffineQuantizedTensor, LinearActivationQuantizedTensor)), lin
    return m


def _run_concurrently(fn: Callable[[torch.Tensor], torch.Tensor], inputs: List[torch.Tensor], n_threads: int,
                      iterations: int, intra_op: int = INTRA_OP_THREADS) -> List[List[Tuple[int, torch.Tensor]]]:
    """Runs fn over `inputs` `iterations` times in each of n_threads threads started together,
    each with `intra_op` torch threads.

    Returns each thread's (input index, output) pairs; re-raises the first exception of any thread.
    """
    barrier = threading.Barrier(n_threads)
    results: List[List[Tuple[int, torch.Tensor]]] = [[] for _ in range(n_threads)]
    errors: List[Optional[BaseException]] = [None] * n_threads

    def worker(t: int) -> None:
        try:
            torch.set_num_threads(intra_op)
            barrier.wait(timeout=60)
            with torch.no_grad():
                for it in range(iterations):
                    # Threads walk the inputs in different orders, so different shapes run at once.
                    for k in range(len(inputs)):
                        i = (k + t + it) % len(inputs)
                        results[t].append((i, fn(inputs[i])))
        except BaseException as e:  # noqa: B902 (reported in the main thread)
            barrier.abort()
            errors[t] = e

    threads = [threading.Thread(target=worker, args=(t,), name=f"worker-{t}") for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
        assert not th.is_alive(), f"{th.name} did not finish within 120 s (deadlock?)"
    for t, e in enumerate(errors):
        if e is not None:
            raise AssertionError(f"worker-{t} raised {type(e).__name__}: {e}") from e
    return results


def _check(results: List[List[Tuple[int, torch.Tensor]]], ref: List[torch.Tensor], iterations: int) -> None:
    mismatches: List[str] = []
    for t, outs in enumerate(results):
        assert len(outs) == iterations * len(ref), f"worker-{t} produced {len(outs)} outputs"
        for n, (i, y) in enumerate(outs):
            if not torch.equal(y, ref[i]):
                diff = (y.double() - ref[i].double()).abs()
                mismatches.append(f"worker-{t} call {n} input {i} {tuple(ref[i].shape)}: max |diff| "
                                  f"{diff.max().item():.3g}, {int((diff != 0).sum())} of {diff.numel()} elements differ")
    assert not mismatches, f"{len(mismatches)} outputs differ from the single-thread output:\n" + "\n".join(mismatches[:10])


@pytest.fixture(autouse=True)
def _intra_op_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(INTRA_OP_THREADS)
    yield
    torch.set_num_threads(before)


def _reference(config: AOBaseConfig, inputs: List[torch.Tensor]) -> Tuple[MLP, List[torch.Tensor]]:
    ref_model = _quantized(config)
    with torch.no_grad():
        ref = [ref_model(x) for x in inputs]
        # The single-thread output is itself deterministic, and the same on a second call (warm caches).
        assert all(torch.equal(ref_model(x), y) for x, y in zip(inputs, ref))
    return ref_model, ref


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_eager_threads_match_single_thread(config):
    inputs = _inputs()
    _, ref = _reference(config, inputs)
    for n in THREAD_COUNTS:
        cold = _quantized(config)  # first use of its weights happens under the threads
        _check(_run_concurrently(cold, inputs, n, ITERATIONS), ref, ITERATIONS)


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_scripted_threads_match_single_thread(config):
    inputs = _inputs()
    _, ref = _reference(config, inputs)
    for n in THREAD_COUNTS:
        ts = torchao_cpp.script(_quantized(config))  # a scripted copy: cold weight objects
        _check(_run_concurrently(ts, inputs, n, ITERATIONS), ref, ITERATIONS)


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_concurrent_callers_with_their_own_openmp_teams(config):
    """Two threads, each running the ops with two intra-op (OpenMP) threads; reference with two as well."""
    torch.set_num_threads(2)
    inputs = _inputs()
    _, ref = _reference(config, inputs)
    _check(_run_concurrently(_quantized(config), inputs, 2, ITERATIONS, intra_op=2), ref, ITERATIONS)


def test_eager_and_scripted_models_of_several_configs_at_once():
    """Eight threads, each running a different config's model (eager or scripted), all at the same time."""
    inputs = _inputs()
    picked = [CONFIGS[i][1] for i in (0, 3, 4, 7, 11, 12, 14, 15)]
    refs = [_reference(c, inputs)[1] for c in picked]
    fns: List[Callable[[torch.Tensor], torch.Tensor]] = []
    for k, c in enumerate(picked):
        m = _quantized(c)
        fns.append(torchao_cpp.script(m) if k % 2 else m)
    barrier = threading.Barrier(len(fns))
    outs: Dict[int, List[Tuple[int, torch.Tensor]]] = {k: [] for k in range(len(fns))}
    errors: List[BaseException] = []

    def worker(k: int) -> None:
        try:
            torch.set_num_threads(INTRA_OP_THREADS)
            barrier.wait(timeout=60)
            with torch.no_grad():
                for it in range(ITERATIONS):
                    for i, x in enumerate(inputs):
                        outs[k].append((i, fns[k](x)))
        except BaseException as e:  # noqa: B902
            barrier.abort()
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(fns))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
        assert not th.is_alive()
    assert not errors, errors
    for k in range(len(fns)):
        _check([outs[k]], refs[k], ITERATIONS)
