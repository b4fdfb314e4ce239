"""The quality bar both approaches face: a page needs a feed of `min_feed_size` items, a
predicted precision of `min_predicted_precision` and no near-duplicate images among its first
`top_k` items; a page whose items are (Jaccard >=
`merge_overlap`) those of a page with one attribute fewer is a near-duplicate and merges into
it. Every dropped page keeps its reason."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.collections.config import CollectionConfig
from ml.collections.space import AttributeSpace


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / max(len(a) + len(b) - inter, 1)


def apply_quality_bar(topics: pd.DataFrame, figures: pd.DataFrame, item_set: Callable[[int], np.ndarray],
                      space: AttributeSpace, titles: list[str], config: CollectionConfig) -> pd.DataFrame:
    """topics (key, ...) + figures (topic, feed_size, predicted_precision) -> the same rows with
    status (published | dropped) and reason."""
    pages = topics.reset_index(drop=True).join(figures.set_index("topic"), how="left")
    pages["title"] = titles
    reasons = np.full(len(pages), "", dtype=object)
    small = pages["feed_size"].to_numpy() < config.min_feed_size
    weak = pages["predicted_precision"].to_numpy() < config.min_predicted_precision
    reasons[small] = [f"feed of {n} items < {config.min_feed_size}" for n in pages.loc[small, "feed_size"]]
    reasons[weak & ~small] = [f"predicted precision {p:.3f} < {config.min_predicted_precision}" for p in pages.loc[weak & ~small, "predicted_precision"]]
    crowded = (pages["distinct_top_k"].to_numpy() < np.minimum(config.top_k, pages["feed_size"].to_numpy())) & ~small & ~weak
    reasons[crowded] = [f"near-duplicate images among the first {config.top_k} (only {d} distinct)" for d in pages.loc[crowded, "distinct_top_k"]]
    alive = {key: i for i, key in enumerate(pages["key"]) if not reasons[i]}
    anchor = set(np.flatnonzero(space.entry_type == config.anchor_type))
    for i, key in sorted(((i, k) for k, i in alive.items()), key=lambda x: -len(x[1])):
        for e in sorted(key):
            parent = key - {e}
            j = alive.get(parent)
            if not parent or j is None or reasons[j] or (config.require_category and not parent & anchor):
                continue
            overlap = jaccard(item_set(i), item_set(j))
            if overlap >= config.merge_overlap:
                reasons[i] = f"near-duplicate of '{pages.at[j, 'title']}' (item overlap {overlap:.2f})"
                break
    pages["status"] = np.where(reasons == "", "published", "dropped")
    pages["reason"] = reasons
    return pages
