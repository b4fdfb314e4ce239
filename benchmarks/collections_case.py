"""Topics + feeds for a synthetic catalog: N items with attribute assignments over a 200-phrase
vocabulary (6 types), 64-d product vectors built from their attributes plus noise, random image
hashes. Runs enumeration, clustering, titles, feeds and the quality bar; prints figures."""

import argparse
import json
import time

import numpy as np
import pandas as pd

from ml.collections.build import content_first, entry_mean_vectors
from ml.collections.config import CollectionConfig
from ml.collections.space import AttributeSpace
from ml.collections.titles import RuleTitler

TYPES = {"category": 20, "color": 30, "material": 40, "style": 50, "season": 20, "fit": 40}  # 200 phrases
MENTION = {"color": 0.8, "material": 0.6, "style": 0.5, "season": 0.5, "fit": 0.4}


def synthetic(n: int, seed: int = 0) -> tuple[AttributeSpace, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vocabulary = pd.DataFrame([(t, f"{t}-{i}") for t, k in TYPES.items() for i in range(k)], columns=["type", "phrase"])
    vocabulary["members"] = vocabulary["phrase"].map(lambda p: [p])
    offset = dict(zip(TYPES, np.cumsum([0, *TYPES.values()])[:-1]))
    items, entries = [np.arange(n)], [offset["category"] + rng.zipf(1.6, n) % TYPES["category"]]
    for attr_type, rate in MENTION.items():
        has = np.flatnonzero(rng.random(n) < rate)
        items.append(has)
        entries.append(offset[attr_type] + rng.zipf(1.4, len(has)) % TYPES[attr_type])  # head-heavy values
    item, entry = np.concatenate(items), np.concatenate(entries)
    space = AttributeSpace(np.array([f"i{i}" for i in range(n)], dtype=object), vocabulary["type"].to_numpy(str),
                           vocabulary["phrase"].to_numpy(str), list(vocabulary["members"]), item, entry,
                           rng.uniform(0.5, 1.0, len(item)).astype(np.float32))
    entry_vectors = rng.standard_normal((len(vocabulary), 64)).astype(np.float32)
    entry_vectors /= np.linalg.norm(entry_vectors, axis=1, keepdims=True)
    vectors = 0.5 * rng.standard_normal((n, 64)).astype(np.float32)
    np.add.at(vectors, item, entry_vectors[entry])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return space, vectors, entry_vectors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    start = time.perf_counter()
    space, vectors, entry_vectors = synthetic(args.items)
    hashes = np.random.default_rng(1).integers(0, 2**63, args.items, dtype=np.int64).view(np.uint64)
    data_s = time.perf_counter() - start
    config = CollectionConfig(min_support=50, min_feed_size=50)
    start = time.perf_counter()
    result = content_first(space, vectors, hashes, RuleTitler(space, {}, None), entry_mean_vectors(entry_vectors), config)
    total = time.perf_counter() - start
    published = result.published
    print(json.dumps({"items": args.items, "phrases": space.n_entries, "assignments": len(space.item), "synthetic_data_s": round(data_s, 1),
                      "topics": len(result.pages), "published": len(published), "feed_rows": len(result.feeds),
                      "item_coverage": round(result.feeds.loc[result.feeds["topic"].isin(published.index), "item"].nunique() / args.items, 4),
                      "topics_and_feeds_s": round(total, 1), "stages_s": result.seconds}))


if __name__ == "__main__":
    main()
