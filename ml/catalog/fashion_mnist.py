"""Fashion-MNIST from its idx files (Debian's dataset-fashion-mnist, or FASHION_MNIST_DIR)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist",)
SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
CLASS_NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandals", "shirt", "sneakers", "bag", "ankle boots")


class FashionMnistMissing(FileNotFoundError):
    pass


def find_fashion_mnist(explicit: str | None = None) -> Path:
    candidates = [explicit, os.environ.get("FASHION_MNIST_DIR"), *DEFAULT_DIRS]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if all((path / name).exists() for pair in SPLITS.values() for name in pair):
            return path
    raise FashionMnistMissing(
        "Fashion-MNIST not found. Install it with `apt-get install -y dataset-fashion-mnist` "
        "(it lands in /usr/share/datasets/fashion-mnist) or set FASHION_MNIST_DIR to a folder "
        "holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        "and t10k-labels-idx1-ubyte.gz."
    )


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def load_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x 28 x 28, white-on-black as published; labels uint8 N)."""
    images_file, labels_file = SPLITS[split]
    images = _read_idx(root / images_file, 16).reshape(-1, 28, 28)
    labels = _read_idx(root / labels_file, 8)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {split} has {len(images)} images but {len(labels)} labels")
    return images, labels
