"""TorchScript deployment: script, save, load in Python and in C++ (torchao_cpp_run)."""
import subprocess

import pytest
import torch
import torch.nn as nn

import torchao_cpp
from conftest import scripted_matches_eager
from test_serialization import CONFIGS
from torchao_cpp.quantization import Int8WeightOnlyConfig, quantize_


class Block(nn.Module):
    """A model with more than nn.Sequential: residual, 3-d input, bias-free layer."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(128, 256)
        self.down = nn.Linear(256, 128, bias=False)
        self.head = nn.Linear(128, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.down(torch.relu(self.up(x)))
        return self.head(h)


def _quantized(config):
    torch.manual_seed(0)
    m = Block().eval()
    quantize_(m, config)
    return m


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c)[:60])
def test_scripted_model_matches_eager_in_python_and_cpp(config, tmp_path):
    ts = scripted_matches_eager(_quantized(config), torch.randn(2, 3, 128), tmp_path)
    graph = str(ts.up.graph)
    assert "torchao_cpp::affine_quantized_linear" in graph or "torchao_cpp::activation_quantized_linear" in graph


def test_script_leaves_the_model_alone_and_checks_its_argument():
    m = _quantized(Int8WeightOnlyConfig())
    torchao_cpp.script(m)
    assert isinstance(m.up, nn.Linear)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        torchao_cpp.script("model")


def test_cpp_runner_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"not a model")
    run = subprocess.run([torchao_cpp.runner_path(), str(bad), str(bad), str(tmp_path / "y.pt")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "torchao_cpp_run:" in run.stderr
    run = subprocess.run([torchao_cpp.runner_path()], capture_output=True, text=True)
    assert run.returncode == 2 and "usage:" in run.stderr


def test_tampered_weight_in_a_scripted_file_is_rejected(tmp_path):
    # The class's __setstate__ validates what a downloaded file holds.
    m = _quantized(Int8WeightOnlyConfig())
    ts = torchao_cpp.script(m)
    path = tmp_path / "m.ts"
    torch.jit.save(ts, str(path))
    import zipfile

    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    pkl = [n for n in files if n.endswith("data.pkl")][0]
    assert b"PlainLayout" in files[pkl]
    files[pkl] = files[pkl].replace(b"PlainLayout", b"PlainLayoux")
    bad = tmp_path / "bad.ts"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(Exception, match="unknown layout 'PlainLayoux'"):
        torch.jit.load(str(bad))
    run = subprocess.run([torchao_cpp.runner_path(), str(bad), str(bad), str(tmp_path / "y.pt")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "unknown layout 'PlainLayoux'" in run.stderr


# --- FPXWeightOnlyConfig: Block.up (128 -> 256) fits the seed's rule; down (out 128) and head (out 16) are
# skipped, so the scripted model mixes float-x and float linears.

from torchao_cpp.dtypes import AffineQuantizedTensor  # noqa: E402
from torchao_cpp.quantization import FPXWeightOnlyConfig  # noqa: E402


@pytest.mark.parametrize("ebits,mbits", [(3, 2), (2, 2)])
def test_fpx_scripted_model_matches_eager_in_python_and_cpp(ebits, mbits, tmp_path):
    m = _quantized(FPXWeightOnlyConfig(ebits, mbits))
    assert isinstance(m.up.weight, AffineQuantizedTensor) and type(m.down.weight) is nn.Parameter
    x = torch.randn(2, 3, 128)
    y = m(x)
    ts = torchao_cpp.script(m)
    assert "torchao_cpp::affine_quantized_linear" in str(ts.up.graph)
    assert torch.equal(ts(x), y)
    path, xin, yout = tmp_path / "m.ts", tmp_path / "x.pt", tmp_path / "y.pt"
    torch.jit.save(ts, str(path))
    loaded = torch.jit.load(str(path))
    assert torch.equal(loaded(x), y)
    torch.save(x, str(xin))
    run = subprocess.run([torchao_cpp.runner_path(), str(path), str(xin), str(yout)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert torch.equal(torch.load(str(yout)), y)  # C++ reproduces Python bit for bit
