"""Gradients through quantized linears: the input and the bias get what a float linear over
the dequantized weight gives them (straight through activation quantization); the quantized
weight is frozen. Without anything to differentiate, the call records no graph. Also
torch.jit.trace, refused with a pointer to torchao_cpp.scripting.script."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torchao_cpp.quantization import (
    Float8WeightOnlyConfig,
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt4WeightConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)

CONFIGS = [
    ("int8 weight-only", lambda: Int8WeightOnlyConfig()),
    ("int4 weight-only g32", lambda: Int4WeightOnlyConfig(group_size=32)),
    ("float8 weight-only", lambda: Float8WeightOnlyConfig()),
    ("int8 dynamic x int8", lambda: Int8DynamicActivationInt8WeightConfig()),
    ("int8 dynamic x int4 g32", lambda: Int8DynamicActivationInt4WeightConfig(group_size=32)),
]


def _layer(make_config, dtype=torch.float32, bias=True, seed=0):
    torch.manual_seed(seed)
    m = nn.Linear(96, 40, bias=bias).to(dtype)
    quantize_(m, make_config())
    return m


@pytest.mark.parametrize("name,make_config", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_input_and_bias_gradients_match_the_dequantized_linear(name, make_config):
    m = _layer(make_config)
    x = torch.randn(3, 5, 96, requires_grad=True)
    y = m(x)
    assert y.requires_grad and y.grad_fn is not None
    g = torch.randn_like(y)
    y.backward(g)
    w = m.weight.dequantize()
    torch.testing.assert_close(x.grad, g.matmul(w), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m.bias.grad, g.reshape(-1, 40).sum(0), rtol=1e-6, atol=1e-5)
    assert m.weight.grad is None
    # The forward is the kernel's, unchanged by recording the graph.
    with torch.no_grad():
        assert torch.equal(y.detach(), m(x.detach()))


@pytest.mark.parametrize("name,make_config", CONFIGS[:2], ids=[c[0] for c in CONFIGS[:2]])
def test_bfloat16_gradients(name, make_config):
    m = _layer(make_config, dtype=torch.bfloat16)
    x = torch.randn(4, 96, dtype=torch.bfloat16, requires_grad=True)
    y = m(x)
    g = torch.randn_like(y)
    y.backward(g)
    assert x.grad.dtype == torch.bfloat16 and x.grad.shape == x.shape
    torch.testing.assert_close(x.grad, g.matmul(m.weight.dequantize()), rtol=0, atol=0)
    assert m.bias.grad.dtype == torch.bfloat16


def test_bias_gradient_alone():
    # A trainable bias on a quantized layer (the default: quantize_ leaves bias.requires_grad as it was)
    # gets its gradient even when the input needs none.
    m = _layer(CONFIGS[0][1])
    assert m.bias.requires_grad
    x = torch.randn(6, 96)
    y = m(x)
    assert y.grad_fn is not None
    y.sum().backward()
    torch.testing.assert_close(m.bias.grad, torch.full((40,), 6.0))


def test_gradient_reaches_layers_before_a_quantized_one():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(32, 96), nn.ReLU(), nn.Linear(96, 40))
    ref = nn.Sequential(nn.Linear(32, 96), nn.ReLU(), nn.Linear(96, 40))
    ref.load_state_dict(model.state_dict())
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda mod, fqn: fqn == "2")
    ref[2].weight.data = model[2].weight.dequantize()
    x = torch.randn(8, 32)
    model(x).square().sum().backward()
    ref(x).square().sum().backward()
    assert model[0].weight.grad is not None
    torch.testing.assert_close(model[0].weight.grad, ref[0].weight.grad, rtol=1e-4, atol=1e-5)


def test_no_graph_without_gradients():
    m = _layer(CONFIGS[0][1], bias=False)
    y = m(torch.randn(2, 96))
    assert y.grad_fn is None and not y.requires_grad
    m = _layer(CONFIGS[0][1])
    with torch.no_grad():
        y = m(torch.randn(2, 96, requires_grad=True))
    assert y.grad_fn is None
    with torch.inference_mode():
        assert m(torch.randn(2, 96)).grad_fn is None


def test_functional_linear_records_the_graph_too():
    m = _layer(CONFIGS[1][1])
    x = torch.randn(2, 96, requires_grad=True)
    y = F.linear(x, m.weight)
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, g.matmul(m.weight.dequantize()), rtol=1e-6, atol=1e-6)


def test_jit_trace_says_what_to_use_instead():
    m = nn.Sequential(nn.Linear(96, 40), nn.ReLU())
    quantize_(m, Int8WeightOnlyConfig())
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace cannot record.*AffineQuantizedTensor.*scripting\.script"):
        torch.jit.trace(m, torch.randn(2, 96))
    # The model still runs eagerly afterwards.
    assert m(torch.randn(2, 96)).shape == (2, 40)
