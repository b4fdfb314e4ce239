"""One ingestion case (run in a child process by benchmarks.ingest): snapshot + ingest."""

from __future__ import annotations

import argparse
import json
import time

from ml.catalog.contract import IngestSettings
from ml.catalog.ingest import ingest_snapshot, snapshot_catalog
from ml.compute import ComputeSettings, make_mapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog")
    parser.add_argument("out")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    start = time.perf_counter()
    snap = snapshot_catalog(args.catalog, f"{args.out}/raw.parquet", args.chunk_rows)
    mapper = make_mapper(ComputeSettings(backend=args.backend, workers=args.workers), preload=("ml.catalog.images",))
    try:
        stats = ingest_snapshot(f"{args.out}/raw.parquet", args.catalog.rsplit("/", 1)[0], args.out,
                                IngestSettings(chunk_rows=args.chunk_rows), mapper, progress=False)
    finally:
        mapper.close()
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": stats.rows, "items": stats.items, "quarantined": stats.quarantined,
                      "unique_images": stats.unique_images, "reasons": dict(stats.reasons), "snapshot_s": round(snap.seconds, 2),
                      "ingest_s": round(stats.seconds, 2), "rows_per_s": round(stats.rows / seconds, 1)}))


if __name__ == "__main__":
    main()
