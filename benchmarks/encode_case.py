"""One encoding case (child process of benchmarks.embeddings): the demo catalog through a backend."""

import argparse
import json
import time

from ml.compute import ComputeSettings
from ml.embedding.encode import encode_catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("catalog_dir")
    parser.add_argument("out")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = ComputeSettings(backend=args.backend, workers=args.workers)
    cluster_start = 0.0
    if args.backend == "local":
        import torch

        torch.set_num_threads(args.workers)  # the same cores as Ray's actors
    else:  # start the local Ray first: a production run joins a running cluster (ray.address)
        from ml.compute.batch_map import ensure_ray

        began = time.perf_counter()
        ensure_ray(settings)
        cluster_start = time.perf_counter() - began
    stats = encode_catalog(args.model, f"{args.catalog_dir}/items.parquet", f"{args.catalog_dir}/images.parquet", args.out,
                           settings, progress=False)
    print(json.dumps({"items": stats.items, "images": stats.images, "seconds": round(stats.seconds, 2),
                      "cluster_start_s": round(cluster_start, 2),
                      "items_per_s": round(stats.items_per_s, 1)}))


if __name__ == "__main__":
    main()
