"""Ranked feeds: attribute-match confidence blended with similarity to the topic's text
embedding, no near-duplicate images among the first k, and the page's predicted precision."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ml.collections.config import CollectionConfig


def dhash(pixels: np.ndarray) -> np.ndarray:
    """64-bit difference hashes (uint64) of N x H x W x 3 images: grey, 9x8 box-resampled,
    one bit per horizontal gradient. Near-duplicate images differ in few bits."""
    grey = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    n, h, w = grey.shape
    rows = np.linspace(0, h, 9).astype(int)
    cols = np.linspace(0, w, 10).astype(int)
    small = np.add.reduceat(np.add.reduceat(grey, rows[:-1], axis=1), cols[:-1], axis=2)
    small /= np.outer(np.diff(rows), np.diff(cols))[None]
    bits = (small[:, :, 1:] > small[:, :, :-1]).reshape(n, 64)
    return np.packbits(bits, axis=1, bitorder="little").view(np.uint64).ravel()


def spread_near_duplicates(order: np.ndarray, hashes: np.ndarray, k: int, max_bits: int) -> tuple[np.ndarray, int]:
    """Reorder so that no two of the first k items are near-duplicates (dHash distance <= max_bits);
    items pushed back keep their relative order. Returns (order, how many of the first k are
    distinct); fewer than min(k, len) distinct means the feed cannot avoid near-duplicates."""
    first, pushed, i = [], [], 0
    while len(first) < k and i < len(order):
        h = hashes[order[i]]
        if first and np.bitwise_count(hashes[order[first]] ^ h).min() <= max_bits:
            pushed.append(i)
        else:
            first.append(i)
        i += 1
    head = np.asarray(first + pushed, dtype=np.int64)
    return np.r_[order[head], order[i:]], len(first)


def feeds_with_near_duplicates(feed: np.ndarray, hashes: np.ndarray, max_bits: int) -> int:
    """How many feeds hold two near-duplicate images (dHash distance <= max_bits); `feed[i]` names
    the feed of the image hashed `hashes[i]`. The landing pages' check reads its top k with this."""
    count = 0
    for _, rows in pd.Series(np.asarray(hashes, np.uint64)).groupby(np.asarray(feed)):
        h = rows.to_numpy(np.uint64)
        distance = np.bitwise_count(h[:, None] ^ h[None, :])
        count += bool((distance[np.triu_indices(len(h), 1)] <= max_bits).any())
    return count


def rank_feed(items: np.ndarray, match: np.ndarray, similarity: np.ndarray, hashes: np.ndarray | None,
              config: CollectionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(items, scores, matches) ranked and cut to max_feed_items, and how many of the first
    top_k are distinct images (all of them when hashes are not given)."""
    score = config.match_weight * match + (1 - config.match_weight) * (1 + similarity) / 2
    cut = min(len(items), config.max_feed_items + 4 * config.top_k)  # room to push near-duplicates back
    order = np.argpartition(-score, cut - 1)[:cut] if cut < len(items) else np.arange(len(items))
    order = order[np.lexsort((items[order], -score[order]))]  # score, then item for stable ties
    distinct = min(config.top_k, len(order))
    if hashes is not None:
        order, distinct = spread_near_duplicates(order, hashes[items], config.top_k, config.near_duplicate_bits)
    order = order[: config.max_feed_items]
    return items[order], score[order], match[order], distinct


def build_feeds(n_topics: int, rows: Callable[[int], tuple[np.ndarray, np.ndarray]], item_vectors: np.ndarray,
                topic_vectors: np.ndarray, hashes: np.ndarray | None, config: CollectionConfig,
                desc: str = "feeds") -> tuple[pd.DataFrame, pd.DataFrame]:
    """For every topic: its ranked feed (topic, rank, item, score, match) and its figures
    (feed_size, candidates, predicted_precision, distinct_top_k)."""
    parts, stats = [], []
    for t in tqdm(range(n_topics), desc=desc, mininterval=2, disable=n_topics < 50):
        items, match = rows(t)
        similarity = item_vectors[items] @ topic_vectors[t] if len(items) else np.zeros(0, np.float32)
        ranked, score, ranked_match, distinct = rank_feed(items, match, similarity, hashes, config)
        parts.append((np.full(len(ranked), t, np.int32), np.arange(len(ranked), dtype=np.int32), ranked, score, ranked_match))
        stats.append((t, len(items), len(ranked), float(ranked_match[: config.top_k].mean()) if len(ranked) else 0.0, distinct))
    columns = ["topic", "rank", "item", "score", "match"]
    feeds = pd.DataFrame({c: np.concatenate([p[i] for p in parts]) if parts else [] for i, c in enumerate(columns)})
    figures = pd.DataFrame(stats, columns=["topic", "candidates", "feed_size", "predicted_precision", "distinct_top_k"])
    return feeds, figures
