"""faiss indexes over item vectors: exact for small catalogs, IVF for large ones."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXACT_MAX_ITEMS = 100_000


@dataclass
class IndexInfo:
    kind: str
    items: int
    dim: int
    nlist: int = 0
    nprobe: int = 0
    build_seconds: float = 0.0


def build_index(vectors: np.ndarray, kind: str = "auto", target_recall: float = 0.95, seed: int = 0):
    """Inner-product index over L2-normalised vectors (cosine). `auto`: exact up to
    EXACT_MAX_ITEMS, IVF-Flat with ~4 sqrt(N) lists beyond, its nprobe raised until the
    recall@10 of held-in sample queries against exact search reaches `target_recall`."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind = ("flat" if n <= EXACT_MAX_ITEMS else "ivf") if kind == "auto" else kind
    start = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        info = IndexInfo("flat", n, dim)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)]
        index.train(sample)
        index.add(vectors)
        index.nprobe = _tune_nprobe(index, vectors, nlist, target_recall, seed)
        info = IndexInfo("ivf", n, dim, nlist, index.nprobe)
        info.build_seconds = time.perf_counter() - start
        return index, info
    else:
        raise ValueError(f"index kind {kind!r}: use auto, flat or ivf")
    index.add(vectors)
    info.build_seconds = time.perf_counter() - start
    return index, info


def _tune_nprobe(index, vectors: np.ndarray, nlist: int, target: float, seed: int, queries: int = 200) -> int:
    sample = vectors[np.random.default_rng(seed + 1).choice(len(vectors), size=min(queries, len(vectors)), replace=False)]
    nprobe = 4
    while True:
        index.nprobe = min(nprobe, nlist)
        if index.nprobe == nlist or recall_against_exact(index, vectors, sample) >= target:
            return index.nprobe
        nprobe *= 2


def recall_against_exact(index, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k that the index returns, averaged over queries."""
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, truth = exact.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    hits = [len(set(t) & set(f)) for t, f in zip(truth, found)]
    return float(np.mean(hits) / k)


def save_index(index, info: IndexInfo, folder: str | Path, extra: dict | None = None) -> Path:
    import faiss

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(folder / "index.faiss"))
    (folder / "index.json").write_text(json.dumps({**info.__dict__, **(extra or {})}, indent=2))
    return folder


def load_index(folder: str | Path):
    import faiss

    folder = Path(folder)
    index = faiss.read_index(str(folder / "index.faiss"))
    meta = json.loads((folder / "index.json").read_text())
    if meta.get("nprobe"):
        index.nprobe = meta["nprobe"]
    return index, meta
