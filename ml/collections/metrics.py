"""Collection metrics (DESIGN.md "Metrics"): collection precision P@10 against the labels
table, item coverage, topic coverage ratio and the long-tail share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.attributes.metrics import entry_truth
from ml.collections.space import AttributeSpace, Key


def page_precision(pages: pd.DataFrame, feeds: pd.DataFrame, space: AttributeSpace, labels: pd.DataFrame,
                   aliases: dict[str, str], k: int = 10) -> pd.Series:
    """Per published page: the share of its first k items whose true attributes include all the
    page's attributes (entries mapped to true values through their members and the aliases)."""
    truth_value = entry_truth(pd.DataFrame({"members": space.entry_members}), aliases)
    position = pd.Index(labels["item_id"]).get_indexer(space.item_ids)  # item index -> labels row (-1 unknown)
    columns = {t: labels[t].to_numpy(dtype=object) for t in set(space.entry_type) if t in labels}
    out = {}
    for topic, group in feeds[feeds["rank"] < k].groupby("topic"):
        if topic not in pages.index:
            continue
        rows = position[group["item"].to_numpy()]
        rows = rows[rows >= 0]
        if not len(rows):
            continue
        correct = np.ones(len(rows), bool)
        for e in pages.at[topic, "key"]:
            column = columns.get(space.entry_type[e])
            correct &= (column[rows] == truth_value[e]) if column is not None else False
        out[topic] = correct.sum() / min(k, len(group))
    return pd.Series(out, dtype=float)


def item_coverage(feeds: pd.DataFrame, published: pd.Index, n_items: int) -> float:
    return float(feeds.loc[feeds["topic"].isin(published), "item"].nunique() / max(n_items, 1))


def long_tail_share(keys: list[Key], demand: dict[Key, int], min_query_count: int) -> float:
    """Share of pages whose topic the log never asks for, or asks for fewer than min_query_count times."""
    if not keys:
        return float("nan")
    return float(np.mean([demand.get(k, 0) < min_query_count for k in keys]))


def coverage_ratio(content_pages: int, baseline_pages: int) -> float:
    return content_pages / baseline_pages if baseline_pages else float("inf")
