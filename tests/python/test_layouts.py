"""The seed's hardware-named layouts: Int4XPULayout runs this project's int4 kernel with
the same codes as TensorCoreTiledLayout; the 2:4 sparse and Marlin layouts are refused by
name with NotImplementedError."""
import pytest
import torch
import torch.nn as nn

import torchao_cpp  # noqa: F401
from torchao_cpp.dtypes import (
    AffineQuantizedTensor,
    CutlassSemiSparseLayout,
    Int4XPULayout,
    MarlinQQQLayout,
    MarlinSparseLayout,
    SemiSparseLayout,
)
from torchao_cpp.quantization import (
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    ZeroPointDomain,
    int8_dynamic_activation_int8_semi_sparse_weight,
    quantize_,
)


def _pair(layout_a, layout_b, dtype=torch.bfloat16):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(256, 64)).to(dtype)
    a, b = nn.Sequential(nn.Linear(256, 64)).to(dtype), nn.Sequential(nn.Linear(256, 64)).to(dtype)
    a.load_state_dict(base.state_dict())
    b.load_state_dict(base.state_dict())
    quantize_(a, Int4WeightOnlyConfig(group_size=64, layout=layout_a))
    quantize_(b, Int4WeightOnlyConfig(group_size=64, **({"layout": layout_b} if layout_b else {})))
    return a, b


def test_int4_xpu_layout_has_tinygemm_codes_and_runs():
    xpu, tc = _pair(Int4XPULayout(), None)
    w = xpu[0].weight
    assert isinstance(w, AffineQuantizedTensor) and w.layout == "Int4XPULayout"
    for got, want in zip(w.impl.get_plain(), tc[0].weight.impl.get_plain()):
        assert torch.equal(got, want)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(xpu(x), tc(x))
    assert "layout=Int4XPULayout()" in repr(xpu[0])


def test_int4_xpu_layout_refuses_integer_zero_points():
    with pytest.raises(NotImplementedError, match="zero_point_domain=INT is not supported by Int4XPULayout"):
        Int4WeightOnlyConfig(layout=Int4XPULayout(), zero_point_domain=ZeroPointDomain.INT)


@pytest.mark.parametrize("make,fragment", [
    (lambda: Int8DynamicActivationInt4WeightConfig(layout=MarlinSparseLayout()),
     "layout MarlinSparseLayout: only PlainLayout and MarlinQQQLayout (2:4 sparse int4: MarlinSparseLayout with "
     "Int4WeightOnlyConfig)"),
    (lambda: Int8DynamicActivationInt8WeightConfig(layout=CutlassSemiSparseLayout()),
     "layout CutlassSemiSparseLayout: supported layouts are PlainLayout and SemiSparseLayout (2:4 sparse float8: "
     "CutlassSemiSparseLayout with Float8DynamicActivationFloat8SemiSparseWeightConfig)"),
    (lambda: Int4WeightOnlyConfig(layout=MarlinQQQLayout()),
     "Int4WeightOnlyConfig.layout MarlinQQQLayout: supported layouts are TensorCoreTiledLayout, Int4CPULayout, "
     "Int4XPULayout and MarlinSparseLayout (the Marlin QQQ format: MarlinQQQLayout with "
     "Int8DynamicActivationInt4WeightConfig)"),
])
def test_unsupported_hardware_layouts_are_refused_by_name(make, fragment):
    with pytest.raises(NotImplementedError) as e:
        make()
    assert fragment in str(e.value)


def test_semi_sparse_alias_warns():
    with pytest.warns(DeprecationWarning, match="deprecated"):
        cfg = int8_dynamic_activation_int8_semi_sparse_weight()
    assert cfg == Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout())


def test_a_weight_cannot_move_to_xpu():
    xpu, _ = _pair(Int4XPULayout(), None)
    with pytest.raises(NotImplementedError, match="kernels exist for cpu and cuda, not xpu"):
        xpu[0].weight.to("xpu")
