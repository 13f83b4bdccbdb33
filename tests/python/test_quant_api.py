"""quantize_ and the configs that run so far."""
import copy
import logging
import weakref

import pytest
import torch
import torch.nn as nn

from conftest import sqnr
from torchao_cpp.dtypes import (
    AffineQuantizedTensor,
    LinearActivationQuantizedTensor,
    PlainLayout,
    QDQLayout,
    float8_e4m3fn,
    float8_e5m2,
    int3,
    uint1,
    uint3,
    uint4,
    uint5,
    uint7,
)
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
    MappingType,
    PerAxis,
    PerRow,
    UIntXWeightOnlyConfig,
    ZeroPointDomain,
    int4_weight_only,
    int8_weight_only,
    quantize_,
)
from torchao_cpp.quantization import quant_api

CONFIGS = [
    (Int8WeightOnlyConfig(), AffineQuantizedTensor, 38),
    (Int4WeightOnlyConfig(group_size=32), AffineQuantizedTensor, 18),
    (Int8DynamicActivationInt8WeightConfig(), LinearActivationQuantizedTensor, 30),
    (Int8DynamicActivationInt4WeightConfig(group_size=32), LinearActivationQuantizedTensor, 14),
    (IntxWeightOnlyConfig(weight_dtype=int3, granularity=PerAxis(0)), AffineQuantizedTensor, 8),
    (Int8DynamicActivationIntxWeightConfig(weight_dtype=int3), LinearActivationQuantizedTensor, 8),
    (UIntXWeightOnlyConfig(dtype=uint4, group_size=32), AffineQuantizedTensor, 18),
    (Float8WeightOnlyConfig(weight_dtype=float8_e4m3fn), AffineQuantizedTensor, 25),
    (Float8DynamicActivationFloat8WeightConfig(), LinearActivationQuantizedTensor, 20),
    (Float8StaticActivationFloat8WeightConfig(scale=torch.tensor(0.01)), LinearActivationQuantizedTensor, 20),
]


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    # No ReLU: torch 1.13 has no float16 clamp on CPU.
    return nn.Sequential(nn.Linear(128, 64), nn.Identity(), nn.Linear(64, 32)).to(dtype).eval()


@pytest.mark.parametrize("config,cls,min_sqnr", CONFIGS, ids=lambda c: type(c).__name__ if not isinstance(c, (type, int)) else "")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_runs_and_keeps_metadata(config, cls, min_sqnr, dtype):
    m = _model(dtype)
    x = torch.randn(2, 3, 128).to(dtype)
    ref = copy.deepcopy(m).float()(x.float())  # torch 1.13 has no float16 matmul on CPU
    quantize_(m, config)
    for lin in (m[0], m[2]):
        assert isinstance(lin.weight, cls) and isinstance(lin.weight, nn.Parameter)
        assert lin.weight.dtype == dtype and lin.weight.device.type == "cpu"
        assert "weight=" in repr(lin) and "Quantized" in repr(lin)
    assert m[0].weight.shape == (64, 128)
    y = m(x)
    assert y.shape == (2, 3, 32) and y.dtype == dtype
    assert sqnr(ref.float(), y.float()) > min_sqnr


def test_group_size_that_does_not_divide_is_skipped_and_logged(caplog):
    m = nn.Sequential(nn.Linear(96, 8), nn.Linear(8, 128), nn.Linear(128, 4))
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, Int4WeightOnlyConfig(group_size=64))
    assert not isinstance(m[0].weight, AffineQuantizedTensor)  # 96 % 64 != 0
    assert not isinstance(m[1].weight, AffineQuantizedTensor)
    assert isinstance(m[2].weight, AffineQuantizedTensor)
    assert "Skipping Int4WeightOnlyConfig for 0" in caplog.text and "group_size 64" in caplog.text


def test_int8_dynamic_skips_small_in_features(caplog):
    m = nn.Sequential(nn.Linear(16, 32), nn.Linear(32, 8))
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, Int8DynamicActivationInt8WeightConfig())
    assert not isinstance(m[0].weight, LinearActivationQuantizedTensor)
    assert isinstance(m[1].weight, LinearActivationQuantizedTensor)
    assert "in_features 16 <= 16" in caplog.text


def test_filter_fn_and_already_quantized_layers():
    m = _model()
    quantize_(m, Int8WeightOnlyConfig(), filter_fn=lambda mod, fqn: isinstance(mod, nn.Linear) and fqn == "2")
    assert not isinstance(m[0].weight, AffineQuantizedTensor) and isinstance(m[2].weight, AffineQuantizedTensor)
    first = m[2].weight
    quantize_(m, Int4WeightOnlyConfig(group_size=32))  # the default filter leaves quantized weights alone
    assert m[2].weight is first and isinstance(m[0].weight, AffineQuantizedTensor)


def test_error_leaves_the_model_unchanged():
    m = _model()
    with torch.no_grad():
        m[2].weight[3, 4] = float("nan")
    before = [p.clone() for p in m.parameters()]
    with pytest.raises(ValueError, match=r"quantize_: failed to quantize '2' with Int8WeightOnlyConfig.*NaN or Inf"):
        quantize_(m, Int8WeightOnlyConfig())
    assert not any(isinstance(p, AffineQuantizedTensor) for p in m.parameters())
    assert all(torch.equal(a, b, ) or (a.isnan() == b.isnan()).all() for a, b in zip(before, m.parameters()))


def test_each_float_weight_is_freed_before_the_next_layer_is_quantized(monkeypatch):
    # What keeps quantize_'s extra memory to one layer (benchmarks/python/quantize_memory.py measures it).
    m = nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)]).eval()
    floats = [weakref.ref(layer.weight) for layer in m]
    alive_at_call = []
    real = quant_api._cpp_handler

    def spy(weight, config, fqn):
        alive_at_call.append(sum(r() is not None for r in floats[:int(fqn)]))
        return real(weight, config, fqn)

    monkeypatch.setattr(quant_api, "_cpp_handler", spy)
    quantize_(m, Int8WeightOnlyConfig())
    assert alive_at_call == [0, 0, 0, 0]
    assert all(isinstance(layer.weight, AffineQuantizedTensor) for layer in m)


def test_a_bad_weight_anywhere_is_refused_before_any_layer_is_replaced():
    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)).eval()
    with torch.no_grad():
        m[2].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"failed to quantize '2' .*the weight of '2' contains NaN or Inf"):
        quantize_(m, Int8WeightOnlyConfig())
    assert not any(isinstance(layer.weight, AffineQuantizedTensor) for layer in m)


def test_values_of_a_layer_the_config_skips_are_not_checked():
    # As the seed: Int8DynamicActivationInt8WeightConfig skips in_features <= 16 without looking at the weight.
    m = nn.Sequential(nn.Linear(8, 64), nn.Linear(64, 32)).eval()
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    quantize_(m, Int8DynamicActivationInt8WeightConfig())
    assert type(m[0].weight) is nn.Parameter and isinstance(m[1].weight, LinearActivationQuantizedTensor)


def test_a_handler_refusal_on_a_later_layer_leaves_every_layer_float():
    # PerRow float8 needs bfloat16 weights: layer 1 is refused in the first pass, before layer 0 is replaced.
    m = nn.Sequential(nn.Linear(64, 64).bfloat16(), nn.Linear(64, 32)).eval()
    with pytest.raises(TypeError, match=r"failed to quantize '1' .*PerRow"):
        quantize_(m, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    assert type(m[0].weight) is nn.Parameter and type(m[1].weight) is nn.Parameter


def test_callable_config_is_refused():
    with pytest.raises(AssertionError, match="generic callable"):
        quantize_(_model(), lambda m: m)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        quantize_("model", Int8WeightOnlyConfig())


@pytest.mark.parametrize("make,exc,fragment", [
    (lambda: Int4WeightOnlyConfig(group_size=48), ValueError, "Int4WeightOnlyConfig.group_size must be one of [32, 64, 128, 256]"),
    (lambda: Int4WeightOnlyConfig(group_size="64"), TypeError, "Int4WeightOnlyConfig.group_size must be int"),
    (lambda: Int4WeightOnlyConfig(use_hqq=True), NotImplementedError, "use_hqq=True"),
    (lambda: Int8WeightOnlyConfig(group_size=0), ValueError, "Int8WeightOnlyConfig.group_size must be >= 1"),
    (lambda: Int8DynamicActivationInt8WeightConfig(act_mapping_type="SYMMETRIC"), ValueError, "act_mapping_type must be"),
    (lambda: IntxWeightOnlyConfig(weight_dtype=torch.uint8), ValueError, "IntxWeightOnlyConfig.weight_dtype must be one of int1..int8"),
    (lambda: IntxWeightOnlyConfig(granularity=PerRow()), ValueError, "IntxWeightOnlyConfig.granularity must be one of PerGroup, PerAxis, got PerRow"),
    (lambda: Int8DynamicActivationIntxWeightConfig(weight_granularity=PerAxis(1)), ValueError, "weight_granularity must be"),
    (lambda: UIntXWeightOnlyConfig(dtype=torch.int8), ValueError, "UIntXWeightOnlyConfig.dtype must be one of uint1..uint7"),
    (lambda: Float8WeightOnlyConfig(weight_dtype=torch.int8), ValueError, "Float8WeightOnlyConfig.weight_dtype must be"),
])
def test_invalid_configs_raise_at_construction(make, exc, fragment):
    with pytest.raises(exc) as e:
        make()
    assert fragment in str(e.value)


def test_bc_aliases():
    assert int8_weight_only is Int8WeightOnlyConfig and int4_weight_only is Int4WeightOnlyConfig
    assert isinstance(int4_weight_only(group_size=64), Int4WeightOnlyConfig)


def test_wrong_input_to_quantized_linear():
    m = _model()
    quantize_(m, Int8WeightOnlyConfig())
    with pytest.raises(ValueError, match="weight expects in_features=128"):
        m(torch.randn(2, 100))
    with pytest.raises(TypeError, match="does not match the weight's dtype"):
        m(torch.randn(2, 128).bfloat16())


def test_float8_e5m2_scale_underflow_in_float16_is_an_error():
    # max|w| / 57344 is far below float16's normal range, so 1/scale overflows
    # float16: torchao would silently produce garbage codes.
    m = _model(torch.float16)
    with pytest.raises(ValueError, match="its reciprocal overflows"):
        quantize_(m, Float8WeightOnlyConfig(weight_dtype=float8_e5m2))
    assert not isinstance(m[0].weight, AffineQuantizedTensor)
    m = _model(torch.bfloat16)
    quantize_(m, Float8WeightOnlyConfig(weight_dtype=float8_e5m2))  # bfloat16 has float32's range
    assert isinstance(m[0].weight, AffineQuantizedTensor)


def test_per_module_config_with_default_and_skip():
    from torchao_cpp.quantization import AOPerModuleConfig

    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 8))
    quantize_(m, AOPerModuleConfig({
        "0": Int4WeightOnlyConfig(group_size=32),
        "1": None,
        "_default": Int8DynamicActivationInt8WeightConfig(),
    }))
    assert isinstance(m[0].weight, AffineQuantizedTensor) and m[0].weight.layout == "TensorCoreTiledLayout"
    assert type(m[1].weight) is nn.Parameter
    assert isinstance(m[2].weight, LinearActivationQuantizedTensor)
    m2 = nn.Sequential(nn.Linear(64, 8))
    quantize_(m2, AOPerModuleConfig({"other": Int8WeightOnlyConfig()}))  # no entry, no default: unchanged
    assert type(m2[0].weight) is nn.Parameter


@pytest.mark.parametrize("bad,exc,fragment", [
    ([("0", Int8WeightOnlyConfig())], TypeError, "module_fqn_to_config must be a dict"),
    ({0: Int8WeightOnlyConfig()}, TypeError, "keys must be module FQNs"),
    ({"0": "int8"}, TypeError, "must be a config or None"),
])
def test_per_module_config_validation(bad, exc, fragment):
    from torchao_cpp.quantization import AOPerModuleConfig

    with pytest.raises(exc, match=fragment):
        AOPerModuleConfig(bad)


def test_weight_only_decode_skips_activation_quantization_for_decode_steps():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(128, 64))
    quantize_(m, Int8DynamicActivationInt8WeightConfig(weight_only_decode=True))
    w = m[0].weight
    assert "noop_decode" in repr(w)
    decode = torch.randn(4, 1, 128)  # x.shape[1] == 1: the weight-only int8 path
    ref = torch.nn.functional.linear(decode.double(), w.dequantize().double(), m[0].bias.double())
    assert sqnr(ref, m(decode)) > 100  # float activations: only float rounding differs
    prefill = torch.randn(4, 3, 128)  # quantized activations
    y = m(prefill)
    assert 20 < sqnr(torch.nn.functional.linear(prefill, w.dequantize(), m[0].bias), y) < 100


def test_swap_conv2d_1x1_to_linear_then_quantize():
    from torchao_cpp.quantization import swap_conv2d_1x1_to_linear

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 32, 1, bias=False), nn.Conv2d(32, 32, 3),
                      nn.Conv2d(32, 32, 1, stride=2))
    x = torch.randn(2, 32, 9, 9)
    ref = m(x)
    swap_conv2d_1x1_to_linear(m)
    assert isinstance(m[0].mod, nn.Linear) and isinstance(m[2].mod, nn.Linear) and m[2].mod.bias is None
    assert isinstance(m[3], nn.Conv2d) and isinstance(m[4], nn.Conv2d)  # 3x3 and strided 1x1 are not linears
    assert torch.allclose(m(x), ref, atol=1e-5)
    quantize_(m, Int8WeightOnlyConfig())
    assert isinstance(m[0].mod.weight, AffineQuantizedTensor)
    assert sqnr(ref, m(x)) > 30
    with pytest.raises(ValueError, match="is not a pointwise 1x1 convolution"):
        swap_conv2d_1x1_to_linear(nn.Sequential(nn.Conv2d(4, 4, 3)), filter_fn=lambda mod, fqn: isinstance(mod, nn.Conv2d))


@pytest.mark.parametrize("make,exc,fragment", [
    (lambda: Int8WeightOnlyConfig(group_size=True), TypeError, "Int8WeightOnlyConfig.group_size must be int, got bool True"),
    (lambda: Int4WeightOnlyConfig(zero_point_domain=ZeroPointDomain.INT), NotImplementedError, "zero_point_domain=INT"),
    (lambda: Int8DynamicActivationInt4WeightConfig(mapping_type=MappingType.SYMMETRIC_NO_CLIPPING_ERR), ValueError,
     "Int8DynamicActivationInt4WeightConfig.mapping_type must be one of SYMMETRIC, ASYMMETRIC"),
    (lambda: IntxWeightOnlyConfig(scale_dtype=torch.int8), ValueError, "IntxWeightOnlyConfig.scale_dtype must be float32"),
    (lambda: UIntXWeightOnlyConfig(dtype=uint4, pack_dim=0), NotImplementedError, "pack_dim=0"),
    (lambda: Int8DynamicActivationIntxWeightConfig(layout=PlainLayout()), ValueError, "layout must be one of QDQLayout"),
])
def test_more_invalid_configs(make, exc, fragment):
    with pytest.raises(exc) as e:
        make()
    assert fragment in str(e.value)


def test_handlers_live_in_the_cpp_registry():
    names = torch.ops.torchao_cpp.registered_quant_configs()
    for cfg, _, _ in CONFIGS:
        assert type(cfg).__name__ in names
    impl, act, reason = torch.ops.torchao_cpp.quantize_weight(
        torch.randn(8, 64), "Int4WeightOnlyConfig", {"group_size": 32, "layout": "Int4CPULayout"}, "fc")
    assert impl.layout() == "Int4CPULayout" and act is None and reason == ""
    impl, act, reason = torch.ops.torchao_cpp.quantize_weight(
        torch.randn(8, 48), "Int4WeightOnlyConfig", {"group_size": 32}, "fc")
    assert impl is None and act is None and "Skipping Int4WeightOnlyConfig for fc" in reason
    impl, act, reason = torch.ops.torchao_cpp.quantize_weight(
        torch.randn(8, 64), "Int8DynamicActivationInt8WeightConfig", {}, "fc")
    assert impl is None and act.act_quant() == "int8_symm_per_token_reduced_range" and reason == ""
    with pytest.raises(NotImplementedError, match="no quantization handler is registered for config type 'Nope'"):
        torch.ops.torchao_cpp.quantize_weight(torch.randn(8, 64), "Nope", {}, "fc")


def test_subclass_of_a_builtin_config_uses_its_handler():
    from dataclasses import dataclass

    @dataclass
    class MyInt8(Int8WeightOnlyConfig):
        pass

    m = _model()
    quantize_(m, MyInt8())
    assert isinstance(m[0].weight, AffineQuantizedTensor)


def test_packed_intx_layout_stores_n_bits_and_matches_qdq():
    from torchao_cpp.dtypes import PackedLinearInt8DynamicActivationIntxWeightLayout

    x = torch.randn(3, 128)
    outs = {}
    for layout in (QDQLayout(), PackedLinearInt8DynamicActivationIntxWeightLayout(target="aten")):
        m = _model()
        quantize_(m, Int8DynamicActivationIntxWeightConfig(weight_dtype=int3, layout=layout))
        outs[layout.name] = m(x)
        w = m[0].weight.original_weight_tensor
        assert w.layout == layout.name
        if layout.name != "QDQLayout":
            assert w.impl.packed_data().shape == (64, 128 * 3 // 8)  # 3 bits per weight
    assert torch.equal(outs["QDQLayout"], outs["PackedLinearInt8DynamicActivationIntxWeightLayout"])
    with pytest.raises(ValueError, match="target must be one of"):
        PackedLinearInt8DynamicActivationIntxWeightLayout(target="gpu")


def test_uintx_storage_is_n_bits_per_weight():
    for bits, dt in ((1, uint1), (3, uint3), (5, uint5), (7, uint7)):
        m = nn.Sequential(nn.Linear(256, 64))
        quantize_(m, UIntXWeightOnlyConfig(dtype=dt, group_size=64))
        w = m[0].weight
        codes = w.impl.packed_data()
        assert codes.numel() * codes.element_size() == 64 * 256 * bits // 8
        scales = 64 * 4 * (w.impl.scale().element_size() + w.impl.zero_point().element_size())
        assert w.nbytes_quantized() == 64 * 256 * bits // 8 + scales


def test_quantized_model_rejects_other_devices_and_dtypes_of_input():
    m = _model()
    quantize_(m, Int8WeightOnlyConfig())
    with pytest.raises(ValueError, match="input is on meta but the quantized weight is on cpu"):
        m(torch.randn(2, 128, device="meta"))
