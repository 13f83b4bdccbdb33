"""Quantized models through state_dict, torch.save, deepcopy and .to()."""
import copy
import io

import pytest
import torch
import torch.nn as nn

from torchao_cpp.dtypes import AffineQuantizedTensor, float8_e4m3fn, int4, uint3
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8DynamicActivationIntxWeightConfig,
    Int8WeightOnlyConfig,
    IntxWeightOnlyConfig,
    PerGroup,
    UIntXWeightOnlyConfig,
    quantize_,
)

CONFIGS = [
    Int8WeightOnlyConfig(),
    Int8WeightOnlyConfig(group_size=32),
    Int4WeightOnlyConfig(group_size=32),
    Int8DynamicActivationInt8WeightConfig(),
    Int8DynamicActivationInt4WeightConfig(group_size=32),
    IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(32)),
    Int8DynamicActivationIntxWeightConfig(weight_dtype=int4),
    UIntXWeightOnlyConfig(dtype=uint3, group_size=32),
    Float8WeightOnlyConfig(weight_dtype=float8_e4m3fn),
    Float8DynamicActivationFloat8WeightConfig(),
    Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.01)),
]


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32)).to(dtype).eval()


def _round_trip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    # Quantized weights hold C++ objects, which torch >= 2.6's default weights_only loader refuses.
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c)[:60])
def test_round_trips_are_bit_identical(config):
    m = _model()
    quantize_(m, config)
    x = torch.randn(2, 5, 128)
    y = m(x)
    # state_dict into a freshly quantized model of the same architecture
    fresh = _model(seed=1)
    quantize_(fresh, config)
    assert not torch.equal(fresh(x), y)
    fresh.load_state_dict(_round_trip(m.state_dict()))
    assert torch.equal(fresh(x), y)
    # whole model, deepcopy, .to(device)
    assert torch.equal(_round_trip(m)(x), y)
    assert "weight=" in repr(_round_trip(m)[0])
    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight and isinstance(c[0].weight, nn.Parameter)
    assert torch.equal(c(x), y)
    assert torch.equal(m.to("cpu")(x), y) and torch.equal(m.float()(x), y)


def test_loading_another_config_names_the_parameter():
    a, b = _model(), _model()
    quantize_(a, Int4WeightOnlyConfig(group_size=32))
    quantize_(b, Int4WeightOnlyConfig(group_size=64))
    with pytest.raises(RuntimeError, match=r'parameter named "0.weight".*quantized with another config'):
        b.load_state_dict(a.state_dict())
    plain = _model()
    with pytest.raises(RuntimeError, match=r'parameter named "0.weight".*quantize the model the checkpoint came from'):
        b.load_state_dict(plain.state_dict())


def test_dtype_and_device_changes_are_refused():
    m = _model()
    quantize_(m, Int8WeightOnlyConfig())
    with pytest.raises(NotImplementedError, match="cannot be converted to torch.float16"):
        m.half()
    with pytest.raises(NotImplementedError, match="kernels exist for cpu and cuda, not meta"):
        m[0].weight.to("meta")
    # A CPU-only torch cannot make CUDA copies: torch's own error, nothing changed.
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError), match="CUDA"):
            m[0].weight.to("cuda")
    assert m[0].weight.to("cpu") is m[0].weight and m[0].weight.cpu() is m[0].weight
    assert isinstance(m[0].weight, AffineQuantizedTensor) and m[0].weight.dtype == torch.float32


def test_quantize_with_device_argument():
    m = _model()
    quantize_(m, Int8WeightOnlyConfig(), device="cpu")
    assert isinstance(m[2].weight, AffineQuantizedTensor)
