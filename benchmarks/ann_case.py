"""faiss at 1M: build and 10k top-10 queries over clustered synthetic 64-d vectors, recall vs exact."""

import argparse
import json
import time

import numpy as np

from ml.embedding.ann import build_index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--kind", default="auto")
    args = parser.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 64)).astype(np.float32)  # product embeddings cluster; uniform noise would not
    vectors = centres[rng.integers(0, len(centres), args.items)] + 0.5 * rng.standard_normal((args.items, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(args.items, args.queries, replace=False)] + 0.05 * rng.standard_normal((args.queries, 64)).astype(np.float32)
    index, info = build_index(vectors, kind=args.kind)
    start = time.perf_counter()
    _, found = index.search(queries, 10)
    query_s = time.perf_counter() - start
    exact = faiss.IndexFlatIP(64)
    exact.add(vectors)
    start = time.perf_counter()
    _, truth = exact.search(queries, 10)
    exact_s = time.perf_counter() - start
    recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)]))
    print(json.dumps({"kind": info.kind, "nlist": info.nlist, "nprobe": info.nprobe, "build_s": round(info.build_seconds, 1),
                      "query_s": round(query_s, 2), "exact_query_s": round(exact_s, 2), "recall_at_10": round(recall, 4)}))


if __name__ == "__main__":
    main()
