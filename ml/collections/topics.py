"""Content-first topics: every combination of 1-3 attributes of different types that enough
items carry (enumerated for all items at once with numpy), plus topics named from faiss k-means
clusters of the product vectors; the two sources are merged on equal keys."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ml.collections.config import CollectionConfig
from ml.collections.space import AttributeSpace, Key


@dataclass
class TopicCandidates:
    """Supported topics and, for each, the items that carry all its attributes."""

    topics: pd.DataFrame  # topic (row id), key (frozenset of entries), support, sources
    item: np.ndarray  # candidate rows, sorted by topic: item index, match confidence
    match: np.ndarray
    offsets: np.ndarray  # topic t's rows are item[offsets[t]:offsets[t+1]]

    def rows(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.item[self.offsets[t]:self.offsets[t + 1]], self.match[self.offsets[t]:self.offsets[t + 1]]


def _encode(entries: np.ndarray, base: int) -> np.ndarray:
    """Sorted entry ids (k columns, -1 absent) -> one int64 code; base = n_entries + 1."""
    code = np.zeros(len(entries), np.int64)
    for c in range(entries.shape[1]):
        code = code * base + (entries[:, c] + 1)
    return code


def decode(code: int, base: int, width: int = 3) -> Key:
    out = []
    for _ in range(width):
        code, digit = divmod(int(code), base)
        if digit:
            out.append(digit - 1)
    return frozenset(out)


def _item_attribute_table(space: AttributeSpace, config: CollectionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, entries K-wide padded with -1 and sorted ascending per row, confidences)."""
    ok = space.confidence >= config.min_confidence
    item, entry, conf = space.item[ok], space.entry[ok], space.confidence[ok]
    order = np.lexsort((-conf, item))  # per item, most confident first
    item, entry, conf = item[order], entry[order], conf[order]
    starts = np.r_[0, np.flatnonzero(np.diff(item)) + 1]
    rank = np.arange(len(item)) - np.repeat(starts, np.diff(np.r_[starts, len(item)]))
    keep = rank < config.max_attributes_per_item
    item, entry, conf, rank = item[keep], entry[keep], conf[keep], rank[keep]
    items = np.unique(item)
    row = np.searchsorted(items, item)
    width = int(rank.max()) + 1 if len(rank) else 1
    entries = np.full((len(items), width), -1, np.int64)
    confs = np.zeros((len(items), width), np.float32)
    entries[row, rank], confs[row, rank] = entry, conf
    order = np.argsort(np.where(entries < 0, np.iinfo(np.int64).max, entries), axis=1)  # ascending, padding last
    return items, np.take_along_axis(entries, order, 1), np.take_along_axis(confs, order, 1)


def enumerate_topics(space: AttributeSpace, config: CollectionConfig) -> TopicCandidates:
    """All supported combinations of up to `max_attributes` entries of different types."""
    items, entries, confs = _item_attribute_table(space, config)
    types = pd.factorize(space.entry_type)[0]
    anchor = np.flatnonzero(space.entry_type == config.anchor_type)
    base = space.n_entries + 1
    codes, rows, matches = [], [], []
    width = entries.shape[1]
    for r in range(1, config.max_attributes + 1):
        for cols in combinations(range(width), r):
            cols = list(cols)
            e = entries[:, cols]
            valid = (e >= 0).all(axis=1)
            t = np.where(e >= 0, types[np.maximum(e, 0)], -1)
            for a, b in combinations(range(r), 2):
                valid &= t[:, a] != t[:, b]
            if config.require_category:
                valid &= np.isin(e, anchor).any(axis=1)
            if not valid.any():
                continue
            padded = np.full((int(valid.sum()), 3), -1, np.int64)
            padded[:, 3 - r:] = e[valid]  # leading -1s keep codes of different widths distinct and decodable
            codes.append(_encode(padded, base))
            rows.append(items[valid])
            matches.append(np.prod(confs[valid][:, cols], axis=1))
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    item = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    match = np.concatenate(matches).astype(np.float32) if matches else np.zeros(0, np.float32)
    unique, inverse, counts = np.unique(code, return_inverse=True, return_counts=True)
    supported = counts >= config.min_support
    keep = supported[inverse]
    topic_of = np.cumsum(supported) - 1
    t = topic_of[inverse[keep]]
    order = np.argsort(t, kind="stable")
    offsets = np.r_[0, np.cumsum(counts[supported])]
    topics = pd.DataFrame({"key": [decode(c, base) for c in unique[supported]], "support": counts[supported]})
    topics["sources"] = [["attributes"] for _ in range(len(topics))]
    return TopicCandidates(topics, item[keep][order], match[keep][order], offsets)


def cluster_topics(space: AttributeSpace, vectors: np.ndarray, config: CollectionConfig, seed: int = 0) -> pd.DataFrame:
    """faiss k-means over the product vectors; each cluster is named by its dominant attributes
    (carried by >= `cluster_dominance` of its items; the category first, then the most dominant
    others). Returns cluster, size, key, dominance, items (indices of members carrying the key)."""
    import faiss

    n = len(vectors)
    k = int(np.clip(n // config.cluster_items_per_centroid, 1, config.max_clusters))
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.train(x)
    _, assignment = kmeans.index.search(x, 1)
    assignment = assignment.ravel()
    ok = space.confidence >= config.min_confidence
    counts = np.zeros((k, space.n_entries), np.int64)
    np.add.at(counts, (assignment[space.item[ok]], space.entry[ok]), 1)
    sizes = np.bincount(assignment, minlength=k)
    share = counts / np.maximum(sizes, 1)[:, None]
    rows = []
    for c in range(k):
        dominant = [e for e in np.argsort(-share[c]) if share[c, e] >= config.cluster_dominance]
        key, seen = [], set()
        for e in sorted(dominant, key=lambda e: (space.entry_type[e] != config.anchor_type, -share[c, e])):
            if space.entry_type[e] not in seen and len(key) < config.max_attributes:
                key.append(e)
                seen.add(space.entry_type[e])
        if not key or (config.require_category and space.entry_type[key[0]] != config.anchor_type):
            continue
        members = np.flatnonzero(assignment == c)
        carried = np.intersect1d(members, space.items_with(frozenset(key)), assume_unique=True)
        rows.append({"cluster": c, "size": int(sizes[c]), "key": frozenset(int(e) for e in key),
                     "dominance": float(min(share[c, e] for e in key)), "items": carried})
    return pd.DataFrame(rows, columns=["cluster", "size", "key", "dominance", "items"])


def merge_cluster_topics(candidates: TopicCandidates, clusters: pd.DataFrame) -> pd.DataFrame:
    """Mark the attribute topics that a cluster also names (equal keys); a cluster whose name is
    not a supported combination adds nothing (its members are a subset of the combination's
    items). Returns one row per cluster with what happened to it."""
    where = {key: i for i, key in enumerate(candidates.topics["key"])}
    outcome = []
    for row in clusters.itertuples():
        t = where.get(row.key)
        if t is None:
            outcome.append("unsupported combination")
            continue
        if "clusters" not in candidates.topics.at[t, "sources"]:
            candidates.topics.at[t, "sources"] = [*candidates.topics.at[t, "sources"], "clusters"]
        items, _ = candidates.rows(t)
        jaccard = len(row.items) / max(len(items), 1)  # cluster members carrying the key are a subset
        outcome.append(f"merged (item overlap {jaccard:.2f})")
    return clusters.assign(outcome=outcome)
