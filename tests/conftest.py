"""Shared fixtures: a small catalog with one row per quarantine reason, and an isolated state root."""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per test worker, set before numpy or torch start their pools, and inherited by the
    # subprocesses tests start: two workers of two OpenMP threads each on two cores stall on each
    # other's barriers (a 10-step dual-encoder fit took 50 s beside a second process, 1.5 s alone)
    for _var in THREAD_VARS:
        os.environ.setdefault(_var, "1")
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0", "GX_ANALYTICS_ENABLED": "false",
                   "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(key, value)


def pytest_collection_modifyitems(items):
    """Files holding an end-to-end test go last (stable otherwise). Under `make test` the other
    worker has run the short files by then, so the long test has the machine to itself and its
    subprocess takes every core (`all_cores_env`) instead of waiting on one thread."""
    last = {item.path for item in items if item.get_closest_marker("end_to_end")}
    items.sort(key=lambda item: item.path in last)


def all_cores_env() -> dict[str, str]:
    """Thread settings for a subprocess of an end-to-end test: every core this process may use."""
    cores = str(len(os.sched_getaffinity(0)))
    return dict.fromkeys(THREAD_VARS, cores)


def png_with_declared_size(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height: a decompression bomb in miniature."""
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path)
    data = bytearray(path.read_bytes())
    start = 8 + 8  # signature, then IHDR length + type
    data[start : start + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : start + 13]))
    data[start + 13 : start + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def solid_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (28, 28)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path)


@pytest.fixture
def bad_catalog(tmp_path: Path) -> Path:
    """A CSV with four good items and one row for every quarantine reason a CSV can carry."""
    root = tmp_path / "catalog"
    images = root / "images"
    solid_png(images / "red.png", (200, 30, 40))
    solid_png(images / "blue.png", (35, 75, 200), size=(20, 40))
    solid_png(images / "green.png", (40, 145, 60))
    (images / "notes.png").write_text("not an image")
    full = (images / "red.png").read_bytes()
    solid_png(images / "big-source.png", (1, 2, 3), size=(64, 64))
    (images / "truncated.png").write_bytes((images / "big-source.png").read_bytes()[:60])
    png_with_declared_size(images / "bomb.png", 30_000, 30_000)
    png_with_declared_size(images / "big.png", 9_000, 9_000)
    outside = tmp_path / "outside.png"
    outside.write_bytes(full)
    rows = [  # item_id, title, image_uri, price, expected quarantine reason (None: becomes an item)
        ("ok-1", "Red Cotton Dress", "images/red.png", "19.99", None),
        ("ok-2", "Blue Denim Trousers", "images/blue.png", "49", None),
        ("ok-3", "Green Wool Coat", str(images / "green.png"), "", None),  # absolute, inside the catalog folder
        ("shares-image", "Scarlet Midi Dress", "images/red.png", "29.99", None),
        ("bad-price-text", "Tee", "images/red.png", "twelve", "bad_price"),
        ("bad-price-negative", "Tee", "images/red.png", "-1", "bad_price"),
        ("no-title", "   ", "images/red.png", "5", "empty_title"),
        ("", "Anonymous Tee", "images/red.png", "5", "missing_id"),
        ("not-image", "Tee", "images/notes.png", "5", "not_an_image"),
        ("truncated", "Tee", "images/truncated.png", "5", "unreadable_image"),
        ("bomb", "Tee", "images/bomb.png", "5", "image_too_large"),  # Pillow itself refuses this one
        ("big", "Tee", "images/big.png", "5", "image_too_large"),  # only our pixel limit catches it
        ("missing-file", "Tee", "images/nope.png", "5", "image_not_found"),
        ("escape", "Tee", "../outside.png", "5", "path_escape"),
        ("abs-escape", "Tee", str(outside), "5", "path_escape"),
        ("ftp", "Tee", "ftp://example.org/a.png", "5", "unsupported_scheme"),
        ("data-uri", "Tee", "data:image/png;base64,AAAA", "5", "unsupported_scheme"),
        ("no-image", "Tee", "", "5", "missing_image_uri"),
        ("relisted", "red cotton  dress", "images/red.png", "18", "duplicate_listing"),  # same image + title as ok-1
        ("ok-1", "Red Cotton Dress v2", "images/green.png", "5", "duplicate_id"),
    ]
    frame = pd.DataFrame(rows, columns=["item_id", "title", "image_uri", "price", "expected_reason"])
    frame["colour_note"] = "kept as an extra column"
    path = root / "catalog.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("SHOPWINDOW_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for key in ("SHOPWINDOW_PROFILE", "SHOPWINDOW_DATA_ROOT", "MLFLOW_TRACKING_URI", "SHOPWINDOW_COMPUTE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHOPWINDOW_WORKERS", "1")
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are all overhead: one thread avoids spin-waiting on a shared 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
