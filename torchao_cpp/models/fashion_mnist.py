"""The default model of the demo: an MLP trained on Fashion-MNIST.

The data comes from Debian's `dataset-fashion-mnist` package; the model trains
on first use (about a minute on two cores) and is cached.
"""
import gzip
import os
import time
from typing import Optional, Tuple

import torch
import torch.nn as nn

DATA_DIR = os.environ.get("TORCHAO_CPP_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torchao_cpp")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: str) -> torch.Tensor:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(data) - offset != count:
        raise ValueError(f"{path}: expected {count} bytes of data, found {len(data) - offset}")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(dims)


def load_split(split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 1, 28, 28] normalised, labels int64 [N]) for 'train' or 't10k'.

    Example:
        >>> x, y = load_split("t10k")
        >>> x.shape, y.shape
        (torch.Size([10000, 1, 28, 28]), torch.Size([10000]))
    """
    img = os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz")
    lbl = os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz")
    for p in (img, lbl):
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p} not found: install Debian's dataset-fashion-mnist (scripts/bootstrap.sh does)")
    x = _read_idx(img).float().div_(255.0).sub_(0.2860).div_(0.3530).unsqueeze(1)
    return x, _read_idx(lbl).long()


class FashionMLP(nn.Module):
    """Pads 28x28 images to 32x32 so that in_features (1024) suits every group size.

    Example:
        >>> FashionMLP()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, hidden: int = 512):
        super().__init__()
        self.pad = nn.ZeroPad2d(2)
        self.fc1 = nn.Linear(32 * 32, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x).flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def train(epochs: int = 4, seed: int = 0, log=print) -> FashionMLP:
    """Trains FashionMLP with Adam; about a minute on two cores.

    Example (takes a few seconds per epoch)::

        model = train(epochs=1)
    """
    torch.manual_seed(seed)
    x, y = load_split("train")
    model = FashionMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        model.train()
        total = 0.0
        for i in range(0, x.shape[0], 128):
            idx = perm[i: i + 128]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / x.shape[0]:.4f} ({time.time() - t0:.0f} s)")
    return model.eval()


def pretrained(cache_dir: Optional[str] = None, log=print) -> FashionMLP:
    """The cached trained model, training it on first use.

    Example (trains on the first call, then loads the cache)::

        model = pretrained()
    """
    cache_dir = cache_dir or CACHE_DIR
    path = os.path.join(cache_dir, "fashion_mlp.pt")
    model = FashionMLP()
    if os.path.exists(path):
        try:
            model.load_state_dict(torch.load(path))
            return model.eval()
        except Exception as e:  # a stale or damaged cache is retrained, not trusted
            log(f"ignoring cached model {path}: {e}")
    log(f"training the default model on Fashion-MNIST (cached at {path}) ...")
    model = train(log=log)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + ".tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model
