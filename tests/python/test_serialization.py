"""Quantized models through state_dict, torch.save, deepcopy and .to()."""
import copy
import io

import pytest
import torch
import torch.nn as nn

from torchao_cpp.dtypes import AffineQuantizedTensor, MarlinSparseLayout, SemiSparseLayout, float8_e4m3fn, int4, uint3
from torchao_cpp.quantization import (
    Float8DynamicActivationFloat8SemiSparseWeightConfig,
    Float8DynamicActivationFloat8WeightConfig,
    Float8StaticActivationFloat8WeightConfig,
    Float8WeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int4DynamicActivationInt4WeightConfig,
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
    Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout()),
    Int8DynamicActivationInt4WeightConfig(group_size=32),
    Int4DynamicActivationInt4WeightConfig(),
    IntxWeightOnlyConfig(weight_dtype=int4, granularity=PerGroup(32)),
    Int8DynamicActivationIntxWeightConfig(weight_dtype=int4),
    UIntXWeightOnlyConfig(dtype=uint3, group_size=32),
    Int4WeightOnlyConfig(group_size=32, use_hqq=True),
    UIntXWeightOnlyConfig(dtype=uint3, group_size=32, use_hqq=True),
    Float8WeightOnlyConfig(weight_dtype=float8_e4m3fn),
    Float8DynamicActivationFloat8WeightConfig(),
    Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.01)),
    Float8DynamicActivationFloat8SemiSparseWeightConfig(),
    Int4WeightOnlyConfig(group_size=128, layout=MarlinSparseLayout()),
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


# --- FPXWeightOnlyConfig: its layers need in_features % 64 == 0 and out_features % 256 == 0 ---------------

from torchao_cpp.quantization import FPXWeightOnlyConfig  # noqa: E402


def _fpx_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 512)).to(dtype).eval()


@pytest.mark.parametrize("ebits,mbits", [(3, 2), (2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fpx_round_trips_are_bit_identical(ebits, mbits, dtype):
    m = _fpx_model(dtype=dtype)
    quantize_(m, FPXWeightOnlyConfig(ebits, mbits))
    assert all(isinstance(m[i].weight, AffineQuantizedTensor) for i in (0, 2))
    x = torch.randn(2, 5, 128).to(dtype)
    y = m(x)
    fresh = _fpx_model(seed=1, dtype=dtype)
    quantize_(fresh, FPXWeightOnlyConfig(ebits, mbits))
    assert not torch.equal(fresh(x), y)
    sd = _round_trip(m.state_dict())
    fresh.load_state_dict(sd)
    assert torch.equal(fresh(x), y)
    for i in (0, 2):
        for a, b in zip(fresh[i].weight.get_plain()[:2], m[i].weight.get_plain()[:2]):
            assert torch.equal(a, b)
    assert torch.equal(_round_trip(m)(x), y)
    assert "FloatxTensorCoreLayout(ebits=" in repr(_round_trip(m)[0])
    c = copy.deepcopy(m)
    assert c[0].weight is not m[0].weight and torch.equal(c(x), y)
    assert torch.equal(m.to("cpu")(x), y)
    # A checkpoint of another float-x format is another config.
    other = _fpx_model(dtype=dtype)
    quantize_(other, FPXWeightOnlyConfig(2, 3) if (ebits, mbits) != (2, 3) else FPXWeightOnlyConfig(3, 2))
    with pytest.raises(RuntimeError, match=r'parameter named "0.weight".*quantized with another config'):
        other.load_state_dict(sd)


def test_fpx_state_is_checked_on_load():
    m = _fpx_model()
    quantize_(m, FPXWeightOnlyConfig(3, 2))
    st = list(m[0].weight.impl.__getstate__()[0])
    assert st[0] == 1 and st[10] == "FloatxTensorCoreLayout" and st[11] == "fp6_e3m2"  # format version unchanged

    def load(i, v, **more):
        s = list(st)
        s[i] = v
        for j, w in more.items():
            s[int(j[1:])] = w
        obj = torch.ScriptObject.__new__(torch.ScriptObject)
        obj.__setstate__((tuple(s), "__torch__.torch.classes.torchao_cpp.AffineQuantizedTensor"))
        return obj

    assert torch.equal(load(0, 1).dequantize(), m[0].weight.dequantize())
    with pytest.raises(ValueError, match="float-x code_dtype fp6_e3m2 needs FloatxTensorCoreLayout, got UintxLayout"):
        load(10, "UintxLayout")
    with pytest.raises(ValueError, match="FloatxTensorCoreLayout needs a float-x code_dtype"):
        load(11, "uint6")
    with pytest.raises(ValueError, match="unknown code dtype 'fp6_e4m2'"):
        load(11, "fp6_e4m2")  # 1 + 4 + 2 != 6
    with pytest.raises(ValueError, match="\\[0, 63\\] exceeds the range of fp5_e2m2"):
        load(11, "fp5_e2m2")
    with pytest.raises(ValueError, match="codes must have shape \\[256, 80\\]"):
        load(11, "fp5_e2m2", i8=31)  # 5-bit rows are shorter
    with pytest.raises(ValueError, match="fp6_e3m2 codes span \\[0, 63\\], got \\[quant_min, quant_max\\] = \\[0, 31\\]"):
        load(8, 31)
    with pytest.raises(ValueError, match="one scale per row"):
        load(4, [1, 64])
    with pytest.raises(ValueError, match="scale must be finite and >= 0"):
        load(2, -st[2])
    with pytest.raises(ValueError, match="float-x codes have no zero point"):
        load(9, "INT")
