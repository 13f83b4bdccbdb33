"""Numerics against torchao 0.11's own outputs (../shared/golden)."""
import pytest
import torch

from conftest import load_golden, sqnr
from golden_cases import NOT_COVERED, compute, quantized_weight

CASES = load_golden()
ERROR_CASES = [c["name"] for c in CASES if c.get("error")]
# Layers torchao left in float (weight_type Parameter): this project must skip them too.
SKIPPED = [c["name"] for c in CASES if c.get("weight_type") == "Parameter" and not c.get("error")]
CHECKED = [c["name"] for c in CASES if c["name"] not in NOT_COVERED and not c.get("error") and c["name"] not in SKIPPED]


def _first_k(ref: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
    # tinygemm pads K up to a multiple of 1024: compare the first K columns.
    return ref[..., : mine.shape[-1]] if mine.dim() == ref.dim() and mine.shape != ref.shape else ref


def _exact(mine: torch.Tensor, ref: torch.Tensor, name: str, what: str) -> None:
    """Bit-exact match (stricter than the golden README's one-code / one-ulp allowance)."""
    ref = _first_k(ref, mine).reshape(mine.shape)
    if mine.is_floating_point():
        mine = mine.to(ref.dtype)
    else:
        mine, ref = mine.to(torch.int64), ref.to(torch.int64)
    bad = (mine != ref).sum().item()
    assert bad == 0, f"{name}: {bad} of {mine.numel()} {what} values differ from torchao's"


def test_every_case_is_checked_or_listed():
    names = [c["name"] for c in CASES]
    unknown = set(NOT_COVERED) - set(names)
    assert not unknown, f"NOT_COVERED names cases that do not exist: {unknown}"
    report = [f"  {n}: {NOT_COVERED[n]}" for n in names if n in NOT_COVERED]
    print(f"\ngolden: {len(CHECKED)} cases checked, {len(SKIPPED)} skipped as by torchao, {len(ERROR_CASES)} error "
          f"cases, {len(report)} not covered yet:")
    print("\n".join(report))
    assert not set(SKIPPED) & set(NOT_COVERED)
    assert len(CHECKED) + len(SKIPPED) + len(ERROR_CASES) + len(report) == len(CASES) == 61
    assert sorted(SKIPPED) == ["fp5_e2m2_fp16", "fp6_e3m2_fp16"]


@pytest.mark.parametrize("name", CHECKED)
def test_golden_codes_scales_zero_points(golden_cases, name):
    case = golden_cases[name]
    codes, scale, zp = compute(case)
    _exact(codes, case["int_data"], name, "code")
    _exact(scale, case["scale"], name, "scale")
    if case.get("zero_point") is None:
        assert zp is None, f"{name}: torchao has no zero point here"
    else:
        assert zp is not None, f"{name}: missing zero point"
        _exact(zp, case["zero_point"], name, "zero point")


@pytest.mark.parametrize("name", [n for n in CHECKED if not n.startswith("act_")])
def test_golden_dequantized_and_output(golden_cases, name):
    case = golden_cases[name]
    _, w = quantized_weight(case)
    deq = w.dequantize()
    assert deq.dtype == case["dequantized"].dtype
    ref = case["dequantized"]
    assert sqnr(ref, deq) > 60, f"{name}: dequantized weight differs from torchao's (SQNR {sqnr(ref, deq):.1f} dB)"
    out = torch.nn.functional.linear(case["input"], w, case["bias"])
    assert out.dtype == case["output"].dtype and out.shape == case["output"].shape
    assert sqnr(case["output"], out) >= 40, f"{name}: output SQNR {sqnr(case['output'], out):.1f} dB < 40"


@pytest.mark.parametrize("name", [n for n in CHECKED if n.startswith("act_")])
def test_golden_activation_dequantized(golden_cases, name):
    case = golden_cases[name]
    codes, scale, zp = compute(case)
    assert codes.dtype == torch.int8 and scale.dtype == case["scale"].dtype and zp.dtype == case["zero_point"].dtype
    qmin = -128 if "asymm" in name else -127
    deq = torch.ops.torchao_cpp.dequantize_affine(
        codes, [1, codes.shape[-1]], scale, zp, qmin, 127, "INT", case["dtype"] and case["dequantized"].dtype)
    assert torch.equal(deq, case["dequantized"]), f"{name}: dequantized activations differ"


def test_uint8_is_refused_like_the_seed(golden_cases):
    from torchao_cpp.quantization import UIntXWeightOnlyConfig

    assert "uintxwo_uint8_g32_fp16" in ERROR_CASES
    with pytest.raises(ValueError, match="uint1..uint7"):
        UIntXWeightOnlyConfig(dtype=torch.uint8, group_size=32)


@pytest.mark.parametrize("name", ["fp8dq_tensor_bf16", "fp8dq_row_bf16"])
def test_float8_dynamic_weight_codes(golden_cases, name):
    """Float8DynamicActivationFloat8WeightConfig's weight: float32 scales computed in the weight's dtype."""
    from torchao_cpp.quantization import quant_primitives as qp

    case = golden_cases[name]
    w = case["weight"]
    block = list(w.shape) if "tensor" in name else [1, w.shape[1]]
    scale = qp.choose_qparams_affine_float8(w, block_size=block, scale_dtype=torch.float32)
    codes = qp.quantize_affine_float8(w, scale, block_size=block)
    assert torch.equal(scale.reshape(case["scale"].shape), case["scale"])
    assert torch.equal(codes, case["int_data"])


@pytest.mark.parametrize("name", SKIPPED)
def test_golden_layers_torchao_skipped_are_skipped_here(golden_cases, name, caplog):
    """torchao 0.11 skipped these (FPXWeightOnlyConfig on a 64 x 256 weight: out_features % 256 != 0)."""
    import logging

    from torchao_cpp.quantization import quantize_

    case = golden_cases[name]
    cfg, w = quantized_weight(case)
    assert w is None, f"{name}: this project quantized a layer torchao skipped"
    lin = torch.nn.Linear(case["weight"].shape[1], case["weight"].shape[0]).to(case["weight"].dtype)
    with torch.no_grad():
        lin.weight.copy_(case["weight"])
        lin.bias.copy_(case["bias"])
    m = torch.nn.Sequential(lin)
    with caplog.at_level(logging.INFO, logger="torchao_cpp.quantization.quant_api"):
        quantize_(m, cfg)
    assert type(m[0].weight) is torch.nn.Parameter and torch.equal(m[0].weight, case["weight"])
    assert torch.equal(case["dequantized"], case["weight"])  # torchao's "dequantized" weight is the float one
    e, mb = cfg.ebits, cfg.mbits
    assert (f"Skipping floatx quantization float{1 + e + mb}_{e}_{mb} because the shape is not compatible with the "
            "kernel: in_dim=256, out_dim=64 expected in_dim % 64 == 0 and out_dim % 256 == 0") in caplog.text
    # The float layer's output is torchao's (computed in float32 here: torch 1.13 has no float16 CPU matmul).
    out = torch.nn.functional.linear(case["input"].float(), m[0].weight.float(), m[0].bias.float())
    assert sqnr(case["output"], out) >= 40
