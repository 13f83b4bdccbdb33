"""quantize_ and the configs that run so far."""
import copy
import logging
import os
import weakref

import pytest
import torch
import torch.nn as nn
import torchao_cpp

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
    Int4DynamicActivationInt4WeightConfig,
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
    (Int4DynamicActivationInt4WeightConfig(), LinearActivationQuantizedTensor, 10),
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
    (lambda: Int4WeightOnlyConfig(use_hqq="yes"), TypeError, "Int4WeightOnlyConfig.use_hqq must be bool"),
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


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int8DynamicActivationInt8WeightConfig()],
                         ids=["int8_weight_only", "int8_dynamic"])
def test_float16_weights_with_a_zero_row(config):
    # Row 3's scale is eps, whose reciprocal overflows float16: its codes are 0, the row's outputs the bias.
    m = _model(torch.float16)
    with torch.no_grad():
        m[0].weight[3].zero_()
    quantize_(m, config)
    w = m[0].weight
    codes, scale, _ = (w.original_weight_tensor if hasattr(w, "original_weight_tensor") else w).get_plain()
    assert (codes[3] == 0).all() and scale.reshape(-1)[3].item() == torch.finfo(torch.float32).eps
    y = m[0](torch.randn(2, 128).half())
    assert torch.isfinite(y).all() and torch.equal(y[:, 3], m[0].bias[3].expand(2))


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


# --- FPXWeightOnlyConfig (float-x weights, FloatxTensorCoreLayout) --------------------------------------

import reference as ref_impl  # noqa: E402
from torchao_cpp.dtypes import FloatxTensorCoreLayout  # noqa: E402
from torchao_cpp.quantization import FPXWeightOnlyConfig, fpx_weight_only  # noqa: E402

# (ebits, mbits, minimum SQNR in dB of the dequantized weights, of the two-layer model's output). Measured on
# randn-initialised nn.Linear weights: 26.0 / 23.1 dB for fp6 e3m2, 25.9 / 23.1 for fp5 e2m2, the same in
# every dtype (the error is the format's rounding; two mantissa bits round to a relative error of at most
# 1/8). The thresholds leave 2 dB of margin; a wrong code or scale costs far more.
FPX_FORMATS = [(3, 2, 24, 21), (2, 2, 24, 21)]


def _fpx_model(dtype, seed=0):
    torch.manual_seed(seed)
    # Both layers fit the seed's kernel rule (in_features % 64 == 0, out_features % 256 == 0).
    return nn.Sequential(nn.Linear(128, 256), nn.Linear(256, 512)).to(dtype).eval()


def _fpx_edge_rows(w, ebits, mbits):
    """Row 0 gets scale 1 (its max is the format's largest value) and values on ties between neighbouring
    codes, at the subnormal boundary and halfway to the smallest subnormal; row 1 is negated; row 2 is all
    zeros with one -0.0."""
    vals = ref_impl.floatx_values(ebits, mbits)
    mx = float(vals[-1])
    mids = ((vals[:-1] + vals[1:]) / 2).tolist()  # every tie (exact in float16 for these formats)
    row = [mx] + mids + [float(vals[1]) / 2, float(vals[1]) / 4, float(vals[1 << mbits]), -0.0]
    row = torch.tensor(row + [0.0] * (w.shape[1] - len(row)), dtype=torch.float32)
    w[0] = row.to(w.dtype)
    w[1] = (-row).to(w.dtype)
    w[2] = 0.0
    w[2, 5] = -0.0
    return w


@pytest.mark.parametrize("ebits,mbits,min_w,min_out", FPX_FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fpx_codes_scales_and_outputs_match_the_reference(ebits, mbits, min_w, min_out, dtype):
    m = _fpx_model(dtype)
    with torch.no_grad():
        _fpx_edge_rows(m[0].weight, ebits, mbits)
    weights = [lin.weight.detach().clone() for lin in (m[0], m[1])]
    quantize_(m, FPXWeightOnlyConfig(ebits=ebits, mbits=mbits))
    n = 1 + ebits + mbits
    for lin, w in zip((m[0], m[1]), weights):
        q = lin.weight
        assert isinstance(q, AffineQuantizedTensor) and isinstance(q, nn.Parameter)
        assert q.dtype == dtype and q.shape == w.shape and q.layout == "FloatxTensorCoreLayout"
        assert q.block_size == (1, w.shape[1])
        codes, scale, zp = q.get_plain()
        want_scale = ref_impl.choose_qparams_floatx(w, ebits, mbits)
        want_codes = ref_impl.quantize_floatx(w, want_scale, ebits, mbits)
        assert zp is None and codes.dtype == torch.uint8 and scale.dtype == dtype and scale.shape == (w.shape[0],)
        assert torch.equal(scale, want_scale)
        # A row whose scale underflows to 0 (the all-zero row in float16) divides 0 by 0: its NaN codes are
        # checked by test_fpx_float16_zero_row_scale_underflows_to_zero_as_the_seed.
        ok = scale != 0
        assert int((~ok).sum()) == (1 if dtype == torch.float16 and lin is m[0] else 0)
        assert torch.equal(codes[ok], want_codes[ok]), f"{int((codes[ok] != want_codes[ok]).sum())} codes differ"
        assert int(codes.max()) < 2 ** n
        deq = q.dequantize()
        assert deq.dtype == dtype and torch.equal(deq, ref_impl.dequantize_floatx(codes, want_scale, ebits, mbits, dtype))
        assert torch.equal(deq[ok], ref_impl.dequantize_floatx(want_codes, want_scale, ebits, mbits, dtype)[ok])
        if lin is m[1]:
            assert sqnr(w.float(), deq.float()) > min_w
        # The kernel on the packed codes against input @ dequantized^T + bias.
        xin = torch.randn(3, w.shape[1]).to(dtype)
        y = lin(xin)
        y_ref = torch.nn.functional.linear(xin.double(), deq.double(), lin.bias.double())
        assert y.dtype == dtype and sqnr(y_ref, y.float()) > (60 if dtype == torch.float32 else 40)
    # The edge rows: row 0 has scale 1, so its codes are the values' own codes (ties to the even code).
    codes0, scale0, _ = m[0].weight.get_plain()
    vals = ref_impl.floatx_values(ebits, mbits)
    npos = vals.numel()
    assert float(scale0[0]) == 1.0
    assert int(codes0[0, 0]) == npos - 1  # the max
    for c in range(npos - 1):  # the tie between codes c and c + 1 goes to the even one
        assert int(codes0[0, 1 + c]) == (c if c % 2 == 0 else c + 1)
    assert int(codes0[0, npos]) == 0 and int(codes0[0, npos + 1]) == 0  # half and a quarter of the smallest subnormal
    assert int(codes0[0, npos + 2]) == 1 << mbits  # the smallest normal
    assert int(codes0[0, npos + 3]) == npos  # -0.0 keeps its sign
    assert torch.equal(codes0[1, : npos + 3], codes0[0, : npos + 3] | npos)  # the negated row: same codes, sign set
    # The all-zero row: scale 1e-12 / max (0 in float16); it dequantizes to zeros.
    assert torch.equal(m[0].weight.dequantize()[2].abs(), torch.zeros(128, dtype=dtype))
    # The model's output against the float model (without the edge rows).
    m = _fpx_model(dtype)
    x = torch.randn(5, 128).to(dtype)
    y_float = copy.deepcopy(m).float()(x.float())
    quantize_(m, FPXWeightOnlyConfig(ebits=ebits, mbits=mbits))
    y = m(x)
    assert y.shape == (5, 512) and y.dtype == dtype
    assert sqnr(y_float.float(), y.float()) > min_out


def test_fpx_float16_zero_row_scale_underflows_to_zero_as_the_seed():
    # max|row| = 0: 1e-12 / 28 underflows to 0 in float16. The seed then divides 0 by 0 (NaN, which its bit
    # conversion turns into a code) and multiplies that code's value by the zero scale: the row is 0.
    m = nn.Sequential(nn.Linear(64, 256)).half()
    with torch.no_grad():
        m[0].weight[7] = 0.0
    quantize_(m, FPXWeightOnlyConfig(3, 2))
    codes, scale, _ = m[0].weight.get_plain()
    assert float(scale[7]) == 0.0 and float(scale[6]) > 0
    nan = torch.zeros(1) / torch.zeros(1)  # this machine's 0/0 (x86: the default NaN has its sign bit set)
    assert torch.equal(codes[7], torch.full((64,), 46 if bool(torch.signbit(nan)) else 14, dtype=torch.uint8))
    assert torch.equal(m[0].weight.dequantize()[7].abs(), torch.zeros(64, dtype=torch.float16))
    x = torch.randn(2, 64).half()
    assert torch.equal(m(x)[:, 7], m[0].bias.detach().expand(2, 256)[:, 7])


def test_fpx_skips_shapes_the_seed_kernel_cannot_take(caplog):
    m = nn.Sequential(nn.Linear(128, 64), nn.Linear(96, 256), nn.Linear(128, 256))
    before = [m[0].weight.detach().clone(), m[1].weight.detach().clone()]
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, FPXWeightOnlyConfig(ebits=3, mbits=2))
    for i in (0, 1):
        assert type(m[i].weight) is nn.Parameter and torch.equal(m[i].weight, before[i])
    assert isinstance(m[2].weight, AffineQuantizedTensor)
    assert ("Skipping floatx quantization float6_3_2 because the shape is not compatible with the kernel: "
            "in_dim=128, out_dim=64 expected in_dim % 64 == 0 and out_dim % 256 == 0 (layer '0' stays in float)"
            in caplog.text)
    assert "in_dim=96, out_dim=256" in caplog.text and "(layer '1' stays in float)" in caplog.text
    caplog.clear()
    m = nn.Sequential(nn.Linear(64, 128))
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, FPXWeightOnlyConfig(ebits=2, mbits=2))
    assert "Skipping floatx quantization float5_2_2" in caplog.text and type(m[0].weight) is nn.Parameter


def test_fpx_storage_repr_alias_and_layout():
    m = nn.Sequential(nn.Linear(192, 256))
    quantize_(m, fpx_weight_only(3, 2))
    assert fpx_weight_only is FPXWeightOnlyConfig
    w = m[0].weight
    # 6 bits per weight (192 * 6 / 8 = 144 bytes per row) plus one float32 scale per row.
    assert w.impl.packed_data().shape == (256, 144) and w.impl.packed_data().dtype == torch.uint8
    assert w.nbytes_quantized() == 256 * 144 + 256 * 4
    assert repr(w) == ("AffineQuantizedTensor(shape=[256, 192], block_size=[1, 192], code_dtype=fp6_e3m2, "
                       "quant_min=0, quant_max=63, zero_point_domain=NONE, "
                       "layout=FloatxTensorCoreLayout(ebits=3, mbits=2), dtype=float32)")
    assert "weight=AffineQuantizedTensor(" in repr(m[0]) and "FloatxTensorCoreLayout(ebits=3, mbits=2)" in repr(m)
    assert w.to("cpu") is w and torch.equal(copy.deepcopy(w).dequantize(), w.dequantize())
    moved = AffineQuantizedTensor(w.impl.to("cpu"))
    assert torch.equal(moved.dequantize(), w.dequantize())
    assert repr(FloatxTensorCoreLayout(2, 3)) == "FloatxTensorCoreLayout(ebits=2, mbits=3)"
    with pytest.raises(ValueError, match="1 \\+ ebits \\+ mbits <= 8, got ebits=4, mbits=4"):
        FloatxTensorCoreLayout(4, 4)
    with pytest.raises(TypeError, match="FloatxTensorCoreLayout.mbits must be int, got float"):
        FloatxTensorCoreLayout(3, 2.0)
    # fp4 e2m1 packs two codes per byte; fp8 e4m3 (no Inf/NaN codes) one.
    for (e, mb), nbytes in (((2, 1), 96), ((4, 3), 192)):
        m = nn.Sequential(nn.Linear(192, 256))
        quantize_(m, FPXWeightOnlyConfig(e, mb))
        assert m[0].weight.impl.packed_data().shape == (256, nbytes)
        assert m[0].weight.impl.code_dtype() == f"fp{1 + e + mb}_e{e}m{mb}"


@pytest.mark.parametrize("make,exc,fragment", [
    (lambda: FPXWeightOnlyConfig(0, 2), ValueError, "FPXWeightOnlyConfig.ebits must be >= 1, got 0"),
    (lambda: FPXWeightOnlyConfig(3, -1), ValueError, "FPXWeightOnlyConfig.mbits must be >= 0, got -1"),
    (lambda: FPXWeightOnlyConfig(5, 3), ValueError,
     "FPXWeightOnlyConfig.ebits + FPXWeightOnlyConfig.mbits + 1 (the sign) must be <= 8 bits, got ebits=5, mbits=3"),
    (lambda: FPXWeightOnlyConfig(2 ** 62, 2), ValueError, "must be <= 8 bits, got ebits=4611686018427387904"),
    (lambda: FPXWeightOnlyConfig(3.0, 2), TypeError, "FPXWeightOnlyConfig.ebits must be int, got float"),
    (lambda: FPXWeightOnlyConfig(3, True), TypeError, "FPXWeightOnlyConfig.mbits must be int, got bool True"),
    (lambda: FPXWeightOnlyConfig(None, 2), TypeError, "FPXWeightOnlyConfig.ebits must be int, got None"),
    (lambda: FPXWeightOnlyConfig(3, 2, set_inductor_config="yes"), TypeError,
     "FPXWeightOnlyConfig.set_inductor_config must be bool"),
    (lambda: FPXWeightOnlyConfig(3), TypeError, "mbits"),
])
def test_fpx_invalid_configs(make, exc, fragment):
    with pytest.raises(exc) as e:
        make()
    assert fragment in str(e.value)


def test_fpx_bad_weights_are_refused():
    ops = torch.ops.torchao_cpp
    with pytest.raises(ValueError, match="FPXWeightOnlyConfig: 'w' has a 3-d weight; linear weights are 2-d"):
        ops.quantize_weight(torch.randn(2, 256, 64), "FPXWeightOnlyConfig", {"ebits": 3, "mbits": 2}, "w")
    with pytest.raises(ValueError, match="FPXWeightOnlyConfig: 'w' has a 1-d weight"):
        ops.check_weight(torch.randn(256), "FPXWeightOnlyConfig", {"ebits": 3, "mbits": 2}, "w")
    with pytest.raises(TypeError, match="must be float32, bfloat16 or float16, got Double"):
        quantize_(nn.Sequential(nn.Linear(64, 256)).double(), FPXWeightOnlyConfig(3, 2))
    for bad in (float("nan"), float("inf")):
        m = nn.Sequential(nn.Linear(64, 256), nn.Linear(256, 256))
        with torch.no_grad():
            m[1].weight[3, 4] = bad
        with pytest.raises(ValueError, match="failed to quantize '1' with FPXWeightOnlyConfig: .*contains NaN or Inf"):
            quantize_(m, FPXWeightOnlyConfig(3, 2))
        assert type(m[0].weight) is nn.Parameter and type(m[1].weight) is nn.Parameter  # nothing was replaced
    # The quantize_weight op alone (no up-front check): the floatx scale refuses the row by number.
    w = torch.randn(256, 64)
    w[9, 1] = float("nan")
    with pytest.raises(ValueError, match="choose_qparams_affine_floatx: row 9 of the weight holds NaN or Inf"):
        ops.quantize_weight(w, "FPXWeightOnlyConfig", {"ebits": 3, "mbits": 2}, "w")
    # A skipped layer's values are not looked at (as the seed).
    m = nn.Sequential(nn.Linear(64, 8))
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    quantize_(m, FPXWeightOnlyConfig(3, 2))
    assert type(m[0].weight) is nn.Parameter
    # Values whose largest code overflows float16 (the scale rounds up): refused instead of Inf weights.
    h = torch.full((256, 64), 65504.0, dtype=torch.float16)
    with pytest.raises(ValueError, match="overflows Half"):
        ops.quantize_weight(h, "FPXWeightOnlyConfig", {"ebits": 3, "mbits": 2}, "w")


def test_fpx_linear_checks_its_input():
    m = nn.Sequential(nn.Linear(64, 256)).to(torch.bfloat16)
    quantize_(m, FPXWeightOnlyConfig(2, 2))
    with pytest.raises(TypeError, match="input dtype Float does not match the weight's dtype bfloat16"):
        m(torch.randn(1, 64))
    with pytest.raises(ValueError, match="expects in_features=64"):
        m(torch.randn(1, 63, dtype=torch.bfloat16))
    # 3-d inputs and an empty batch.
    x = torch.randn(2, 3, 64, dtype=torch.bfloat16)
    assert torch.equal(m(x)[1], m(x[1]))
    assert m(torch.randn(0, 64, dtype=torch.bfloat16)).shape == (0, 256)


def test_cpu_features_report_amx_as_the_kernel_does():
    """amx_int8 / amx_bf16 (the AMX GEMMs) are on exactly where Linux lists the CPU flags."""
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    feats = torchao_cpp._C.cpu_features()
    assert feats["amx_int8"] == ("amx_int8" in flags and "amx_tile" in flags and "avx512_vnni" in flags)
    assert feats["amx_bf16"] == ("amx_bf16" in flags and "amx_tile" in flags and "avx512_bf16" in flags)


def test_amx_off_by_environment_gives_the_same_int8_outputs():
    """TORCHAO_CPP_AMX=0 turns the tiles off; the int8 GEMM's outputs are bit-identical either way."""
    import subprocess
    import sys

    script = (
        "import torch, torch.nn as nn, torchao_cpp\n"
        "from torchao_cpp.quantization import quantize_, Int8DynamicActivationInt8WeightConfig\n"
        "torch.manual_seed(0)\n"
        "m = nn.Sequential(nn.Linear(256, 96)).eval()\n"
        "quantize_(m, Int8DynamicActivationInt8WeightConfig())\n"
        "x = torch.randn(64, 256)\n"
        "with torch.no_grad():\n"
        "    y = m(x)\n"
        "f = torchao_cpp._C.cpu_features()\n"
        "print(int(f['amx_int8']), int(f['amx_bf16']))\n"
        "print(' '.join(v.hex() for v in y.flatten().tolist()))\n"
    )
    runs = {}
    for amx in ("1", "0"):
        env = dict(os.environ, TORCHAO_CPP_AMX=amx)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        flags, values = out.stdout.splitlines()[-2:]
        runs[amx] = (flags, values)
    assert runs["0"][0] == "0 0"
    feats = torchao_cpp._C.cpu_features()
    assert runs["1"][0] == f"{int(feats['amx_int8'])} {int(feats['amx_bf16'])}"
    assert runs["1"][1] == runs["0"][1]


def test_float32_matmul_precision_gates_bf16x3_products():
    """torch.set_float32_matmul_precision("high") lets float32 weight-only linears take bfloat16x3 products
    on AMX tiles (about 16 bits a product); torch's default ("highest") keeps float32 products."""
    from torchao_cpp.quantization import Int8WeightOnlyConfig

    torch.manual_seed(0)
    lin = nn.Linear(256, 64)
    quantize_(lin, Int8WeightOnlyConfig())
    x = torch.randn(64, 256)
    with torch.no_grad():
        ref = torch.nn.functional.linear(x.double(), lin.weight.dequantize().double(), lin.bias.double())
        mag = (x.double().abs() @ lin.weight.dequantize().double().abs().t()).max().item()
        prev = torch.get_float32_matmul_precision()
        try:
            y_highest = lin(x)
            torch.set_float32_matmul_precision("high")
            y_high = lin(x)
        finally:
            torch.set_float32_matmul_precision(prev)
    assert (y_highest.double() - ref).abs().max().item() < 1e-6 * mag
    assert (y_high.double() - ref).abs().max().item() < 2.0 ** -14 * mag
    # Other roundings exactly where the tiles exist.
    assert (not torch.equal(y_high, y_highest)) == torchao_cpp._C.cpu_features()["amx_bf16"]


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int8DynamicActivationInt8WeightConfig()],
                         ids=["int8_weight_only", "int8_dynamic"])
def test_weights_on_huge_pages_give_the_same_model(monkeypatch, tmp_path, config):
    # 2048 x 2048 int8 codes (4 MB) reach the huge-page storage; TORCHAO_CPP_HUGE_PAGES=0 keeps 4 KB pages.
    torch.manual_seed(0)
    lin = nn.Linear(2048, 2048)
    x = torch.randn(3, 2048)
    outs = []
    for setting in ("0", "1"):
        monkeypatch.setenv("TORCHAO_CPP_HUGE_PAGES", setting)
        m = nn.Sequential(copy.deepcopy(lin))
        quantize_(m, config)
        outs.append(m(x))
    assert torch.equal(outs[0], outs[1])
    # Such a weight pickles, deep-copies and loads back (its storage has its own deleter).
    torch.save(m.state_dict(), tmp_path / "m.pt")
    m2 = nn.Sequential(copy.deepcopy(lin))
    quantize_(m2, config)
    m2.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(m2(x), outs[1])
    assert torch.equal(copy.deepcopy(m)(x), outs[1])
