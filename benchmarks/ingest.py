"""Ingestion benchmark: the full 70k demo catalog (inline vs a 2-process pool, side by side)
and a 1M-row catalog pointing at repeated images (bounded memory: peak RSS < 2 GB)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure import run_case
from ml.catalog.demo import DemoCatalogConfig, build_demo_catalog

RSS_LIMIT_MB = 2048
TARGET_ROWS_PER_S = 3000


def _demo(work: Path) -> Path:
    root = work / "demo"
    if not (root / "catalog.csv").exists():
        build_demo_catalog(root, DemoCatalogConfig())
    return root / "catalog.csv"


def _million(demo_catalog: Path, rows: int) -> Path:
    path = demo_catalog.parent / f"catalog_{rows}.csv"
    if path.exists():
        return path
    base = pd.read_csv(demo_catalog, dtype=str, keep_default_na=False)
    base = base[base["item_id"].str.startswith("p")]
    reps = int(np.ceil(rows / len(base)))
    with open(path, "w") as handle:
        for k in range(reps):
            part = base.assign(item_id=base["item_id"] + f"-v{k}", title=base["title"] + f" (edition {k})")
            part.iloc[: rows - k * len(base)].to_csv(handle, index=False, header=k == 0)
    return path


def main(work: Path | None = None) -> list[dict]:
    work = Path(work or os.environ.get("SHOPWINDOW_BENCH_DIR", ".shopwindow/bench"))
    work.mkdir(parents=True, exist_ok=True)
    demo = _demo(work)
    results = []
    for label, workers in (("demo 70k, inline", 1), ("demo 70k, 2-process pool", 2)):
        out = work / "out-demo"
        shutil.rmtree(out, ignore_errors=True)
        results.append({"case": label, **run_case("benchmarks.ingest_case", str(demo), str(out), "--workers", str(workers))})
    big = _million(demo, 1_000_000)
    out = work / "out-1m"
    shutil.rmtree(out, ignore_errors=True)
    results.append({"case": "1M rows -> 70k images, 2-process pool", **run_case("benchmarks.ingest_case", str(big), str(out), "--workers", "2")})
    shutil.rmtree(out, ignore_errors=True)
    print("\ningestion (this machine: %d cores)" % os.cpu_count())
    print(f"{'case':42} {'rows':>9} {'items':>9} {'rows/s':>9} {'wall s':>8} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['case']:42} {r['rows']:>9} {r['items']:>9} {r['rows_per_s']:>9.0f} {r['wall_s']:>8.1f} {r['peak_rss_mb']:>12.0f}")
    pool, inline = results[1], results[0]
    print(f"pool / inline speed-up: {pool['rows_per_s'] / inline['rows_per_s']:.2f}x (same run)")
    print(f"demo target {TARGET_ROWS_PER_S} rows/s: {'met' if pool['rows_per_s'] >= TARGET_ROWS_PER_S else 'MISSED'}; "
          f"1M peak RSS under {RSS_LIMIT_MB} MB: {'met' if results[2]['peak_rss_mb'] < RSS_LIMIT_MB else 'MISSED'}")
    return results


if __name__ == "__main__":
    main()
