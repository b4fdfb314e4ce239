"""Embedding benchmarks: encoding throughput local vs Ray at the same core count (side by side,
interleaved), and faiss build + 10k queries over 1M vectors (seconds, peak RSS, recall vs exact)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.measure import run_case


def _latest_catalog(home: Path) -> Path:
    folders = sorted((home / "data" / "catalog").glob("*/images.parquet"), key=lambda p: p.stat().st_mtime)
    if not folders:
        sys.exit(f"no ingested catalog under {home}/data/catalog: run `make demo` first")
    return folders[-1].parent


def main(home: Path | None = None) -> list[dict]:
    home = Path(home or os.environ.get("SHOPWINDOW_HOME", ".shopwindow"))
    catalog = _latest_catalog(home)
    model = home / "models" / catalog.name / "dual_encoder"
    if not model.exists():
        sys.exit(f"no trained dual encoder at {model}: run `make demo` first")
    out = home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for round_ in (1, 2):  # interleaved: the machine is shared and drifts
        for backend in ("local", "ray"):
            r = run_case("benchmarks.encode_case", str(model), str(catalog), str(out / f"emb-{backend}.parquet"), "--backend", backend)
            results.append({"case": f"encode {backend} (2 workers), round {round_}", **r})
    ann = {"case": "faiss 1M x 64-d, 10k queries", **run_case("benchmarks.ann_case")}
    print(f"\nencoding the demo catalog ({results[0]['items']} items, {results[0]['images']} images)")
    print(f"{'case':36} {'items/s':>9} {'encode s':>9} {'Ray start s':>12} {'wall s':>8} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['case']:36} {r['items_per_s']:>9.0f} {r['seconds']:>9.1f} {r['cluster_start_s']:>12.1f} {r['wall_s']:>8.1f} {r['peak_rss_mb']:>12.0f}")
    local = sum(r["items_per_s"] for r in results if "local" in r["case"])
    ray = sum(r["items_per_s"] for r in results if "ray" in r["case"])
    print(f"ray throughput / local: {ray / local:.2f} (overhead {100 * (1 - ray / local):.0f}%; target under 30%), "
          "actors' start-up included, starting the local Ray cluster not")
    print(f"\n{ann['case']}: {ann['kind']} nlist {ann['nlist']} nprobe {ann['nprobe']}, build {ann['build_s']} s, "
          f"queries {ann['query_s']} s (exact {ann['exact_query_s']} s), recall@10 {ann['recall_at_10']}, peak RSS {ann['peak_rss_mb']:.0f} MB")
    return results + [ann]


if __name__ == "__main__":
    main()
