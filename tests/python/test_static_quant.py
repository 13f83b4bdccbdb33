"""Static quantization: observers, insert_observers_, calibrate-then-convert, and
to_weight_tensor_with_linear_activation_quantization_metadata.

References: the observers' statistics against torch's amin/amax of all the
calibration data at once; their parameters against choose_qparams_affine on
that data (the seed's choose_qparams_affine_with_min_max promises the same);
the float8 scale against the formula amax / 448 in the input's precision.
"""
import copy
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torchao_cpp  # noqa: F401
from reference import choose_qparams
from torchao_cpp.dtypes import LinearActivationQuantizedTensor, float8_e4m3fn
from torchao_cpp.quantization import (
    AffineQuantizedMinMaxObserver,
    AffineQuantizedObserverBase,
    Float8StaticActivationFloat8WeightConfig,
    Int8WeightOnlyConfig,
    LinearActivationWeightObservedTensor,
    MappingType,
    PerAxis,
    PerGroup,
    PerRow,
    PerTensor,
    PerToken,
    ZeroPointDomain,
    get_block_size,
    insert_observers_,
    quantize_,
    to_weight_tensor_with_linear_activation_quantization_metadata,
)
from torchao_cpp.quantization import quant_api
from torchao_cpp.quantization.weight_tensor_linear_activation_quantization import fake_quantize_affine

FP32_EPS = torch.finfo(torch.float32).eps


def _batches(dtype=torch.float32, n=3, shape=(5, 64)):
    torch.manual_seed(7)
    return [(torch.randn(*shape) * (i + 1) + i).to(dtype) for i in range(n)]


@pytest.mark.parametrize("granularity,block", [
    (PerTensor(), (5, 64)), (PerAxis(0), (1, 64)), (PerAxis(1), (5, 1)), (PerRow(), (1, 64)), (PerToken(), (1, 64)),
    (PerGroup(16), (1, 16)),
])
def test_get_block_size(granularity, block):
    assert get_block_size((5, 64), granularity) == block


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mapping,target,domain", [
    (MappingType.ASYMMETRIC, torch.uint8, ZeroPointDomain.INT),
    (MappingType.SYMMETRIC, torch.int8, ZeroPointDomain.INT),
    (MappingType.SYMMETRIC, torch.int8, ZeroPointDomain.NONE),
])
@pytest.mark.parametrize("granularity", [PerTensor(), PerAxis(1), PerGroup(16)])
def test_min_max_observer_equals_qparams_of_all_the_data(dtype, mapping, target, domain, granularity):
    # The batches stacked along a new dim that every block spans: the observer's running min/max.
    batches = _batches(dtype)
    obs = AffineQuantizedMinMaxObserver(mapping, target, granularity, zero_point_domain=domain)
    for b in batches:
        assert obs(b) is b
    everything = torch.stack(batches)
    block = [len(batches)] + list(get_block_size(batches[0].shape, granularity))
    if isinstance(granularity, PerTensor):
        assert obs.min_val.item() == everything.float().min().item() and obs.max_val.item() == everything.float().max().item()
    qmin, qmax = (0, 255) if target == torch.uint8 else (-128, 127)
    ref_s, ref_z = choose_qparams(everything, mapping.name, block, qmin, qmax, zp_dtype=None, domain=domain.name)
    scale, zp = obs.calculate_qparams()
    assert scale.dtype == dtype
    assert torch.equal(scale.reshape(-1), ref_s.reshape(-1))
    if domain == ZeroPointDomain.NONE:
        assert zp is None
    else:
        assert torch.equal(zp.reshape(-1).float(), ref_z.reshape(-1).float())


def test_per_row_observer_keeps_one_entry_per_row():
    obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerRow())
    x1, x2 = torch.randn(4, 32), torch.randn(4, 32)
    obs(x1)
    obs(x2)
    assert torch.equal(obs.max_val, torch.max(x1.amax(1), x2.amax(1)))
    with pytest.raises(ValueError, match="do not match the \\(4,\\) observed before"):
        obs(torch.randn(6, 32))


def test_float8_observer_scale_is_amax_over_448():
    obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, float8_e4m3fn, PerTensor(), eps=FP32_EPS,
                                        scale_dtype=torch.float32, zero_point_domain=ZeroPointDomain.NONE)
    batches = _batches(torch.bfloat16)
    for b in batches:
        obs(b)
    amax = max(b.float().abs().max().item() for b in batches)
    scale, zp = obs.calculate_qparams()
    # In the input's precision (bfloat16), then stored as float32.
    assert zp is None and scale.dtype == torch.float32
    assert scale.item() == torch.tensor(amax / 448.0).to(torch.bfloat16).float().item()


def test_observer_errors_name_the_problem():
    with pytest.raises(ValueError, match="granularity must be a Granularity"):
        AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, None)
    with pytest.raises(ValueError, match="use ZeroPointDomain.NONE instead of None"):
        AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerTensor(), zero_point_domain=None)
    with pytest.raises(ValueError, match="quant range \\[0, 300\\]"):
        AffineQuantizedMinMaxObserver(MappingType.ASYMMETRIC, torch.uint8, PerTensor(), quant_min=0, quant_max=300)
    with pytest.raises(TypeError, match="unsupported integer code dtype"):
        AffineQuantizedMinMaxObserver(MappingType.ASYMMETRIC, torch.float64, PerTensor())
    obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerTensor())
    with pytest.raises(RuntimeError, match="nothing observed yet"):
        obs.calculate_qparams()
    with pytest.raises(TypeError, match="observes float tensors"):
        obs(torch.ones(3, dtype=torch.int32))
    with pytest.raises(ValueError, match="PerGroup\\(24\\) does not divide"):
        AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerGroup(24))(torch.randn(2, 64))
    f = AffineQuantizedMinMaxObserver.with_args(MappingType.SYMMETRIC, torch.int8, PerTensor())
    a, b = f(), f()
    assert a is not b and isinstance(a, AffineQuantizedObserverBase) and a.granularity == PerTensor()


def _fp8_input_observer():
    return AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, float8_e4m3fn, PerTensor(), eps=FP32_EPS,
                                         scale_dtype=torch.float32, zero_point_domain=ZeroPointDomain.NONE)


def test_insert_observers_keeps_outputs_and_records_each_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)).eval()
    ref = copy.deepcopy(model)
    w_obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerAxis(0))
    insert_observers_(model, _fp8_input_observer(), w_obs)
    assert all(isinstance(model[i].weight, LinearActivationWeightObservedTensor) for i in (0, 2))
    assert isinstance(model[0].weight, nn.Parameter) and model[0].weight.requires_grad
    assert model[0].weight.input_observer is not model[2].weight.input_observer  # one observer per layer
    xs = [torch.randn(8, 64) * (i + 1) for i in range(3)]
    with torch.no_grad():
        for x in xs:
            assert torch.equal(model(x), ref(x))
    assert model[0].weight.input_observer.max_val.item() == max(x.max().item() for x in xs)
    hidden = [F.relu(ref[0](x)) for x in xs]
    assert model[2].weight.input_observer.max_val.item() == max(h.max().item() for h in hidden)
    # Weight observer: per output channel max of the weight.
    assert torch.equal(model[0].weight.weight_observer.max_val, ref[0].weight.detach().amax(1))
    assert "LinearActivationWeightObservedTensor(shape=(32, 64)" in repr(model[0].weight)


def test_calibrate_then_convert_to_float8_static():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16)).to(torch.bfloat16).eval()
    float_model = copy.deepcopy(model)
    insert_observers_(model, _fp8_input_observer(), None)
    xs = [torch.randn(8, 64, dtype=torch.bfloat16) for _ in range(4)]
    with torch.no_grad():
        for x in xs:
            model(x)
    scales = {fqn: m.weight.input_observer.calculate_qparams()[0] for fqn, m in model.named_modules()
              if isinstance(m, nn.Linear)}
    for fqn, scale in scales.items():
        quantize_(model, Float8StaticActivationFloat8WeightConfig(scale=scale), filter_fn=lambda m, f, n=fqn: f == n)
    # The same as quantizing the float model directly with those scales.
    direct = copy.deepcopy(float_model)
    for fqn, scale in scales.items():
        quantize_(direct, Float8StaticActivationFloat8WeightConfig(scale=scale), filter_fn=lambda m, f, n=fqn: f == n)
    assert all(isinstance(model[i].weight, LinearActivationQuantizedTensor) for i in (0, 2))
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(model(x), direct(x))
        ref = float_model(x).float()
        got = model(x).float()
    snr = 10 * torch.log10(ref.pow(2).sum() / (ref - got).pow(2).sum())
    assert snr > 20  # float8 e4m3 activations and weights: measured 27-29 dB


def test_observed_model_survives_save_load_and_deepcopy():
    model = nn.Sequential(nn.Linear(16, 8))
    insert_observers_(model, _fp8_input_observer(), None)
    model(torch.randn(2, 16))
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)  # a whole module (torch >= 2.6 defaults to weights_only)
    for m in (loaded, copy.deepcopy(model)):
        w = m[0].weight
        assert isinstance(w, LinearActivationWeightObservedTensor)
        assert torch.equal(w.original_weight_tensor, model[0].weight.original_weight_tensor)
        assert torch.equal(w.input_observer.max_val, model[0].weight.input_observer.max_val)


def test_insert_observers_filter_and_errors():
    model = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 4))
    insert_observers_(model, _fp8_input_observer(), None, filter_fn=lambda m, fqn: fqn == "1")
    assert type(model[0].weight) is nn.Parameter
    assert isinstance(model[1].weight, LinearActivationWeightObservedTensor)
    with pytest.raises(TypeError, match="input_observer must be an observer module or None, got str"):
        insert_observers_(model, "minmax", None)
    q = nn.Sequential(nn.Linear(16, 8))
    quantize_(q, Int8WeightOnlyConfig())
    with pytest.raises(TypeError, match="'0' is already quantized"):
        insert_observers_(q, _fp8_input_observer(), None, filter_fn=lambda m, fqn: isinstance(m, nn.Linear))


def test_seed_names_are_importable_from_quant_api():
    for name in ("insert_observers_", "to_weight_tensor_with_linear_activation_quantization_metadata",
                 "AffineQuantizedObserverBase", "get_block_size", "LinearActivationWeightObservedTensor"):
        assert hasattr(quant_api, name), name


@pytest.mark.parametrize("quantized_weight", [False, True])
def test_weight_with_linear_activation_quantization_metadata(quantized_weight):
    torch.manual_seed(2)
    lin = nn.Linear(64, 16)
    if quantized_weight:
        quantize_(nn.Sequential(lin), Int8WeightOnlyConfig())
    obs = AffineQuantizedMinMaxObserver(MappingType.ASYMMETRIC, torch.int8, PerTensor())
    calib = torch.randn(32, 64)
    obs(calib)
    scale, zp = obs.calculate_qparams()
    kw = {"block_size": [1, 64], "target_dtype": torch.int8}
    w = to_weight_tensor_with_linear_activation_quantization_metadata(lin.weight, fake_quantize_affine, scale, zp, kw)
    x = torch.randn(4, 64) * 3  # beyond the calibrated range: clamped
    xq = fake_quantize_affine(x, scale, zp, **kw)
    assert xq.unique().numel() <= 256 and xq.max() <= calib.max() + scale.item()
    assert torch.equal(F.linear(x, w, lin.bias), F.linear(xq, lin.weight, lin.bias))
    assert w.shape == lin.weight.shape and w.dtype == torch.float32
    assert "input_quant_func=fake_quantize_affine" in repr(w)
    m = nn.Sequential(nn.Linear(64, 16))
    m[0].weight = nn.Parameter(w, requires_grad=False)
    m[0].bias = lin.bias
    m2 = copy.deepcopy(m)
    assert torch.equal(m2(x), m(x)) and type(m2[0].weight) is type(w)
    with pytest.raises(TypeError, match="input_quant_func must be callable"):
        to_weight_tensor_with_linear_activation_quantization_metadata(lin.weight, None, scale, zp, kw)
