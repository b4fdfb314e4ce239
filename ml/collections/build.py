"""Both approaches end to end, as plain functions over arrays and tables (no Dagster): the
assets and the benchmark call these."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ml.collections.baseline import LexicalIndex, baseline_feeds, baseline_topics
from ml.collections.config import CollectionConfig
from ml.collections.feeds import build_feeds
from ml.collections.pages import apply_quality_bar
from ml.collections.space import AttributeSpace, Key, QueryParser
from ml.collections.titles import Titler
from ml.collections.topics import TopicCandidates, cluster_topics, enumerate_topics, merge_cluster_topics

TopicVectors = Callable[[Sequence[Key], list[str]], np.ndarray]


def entry_mean_vectors(entry_vectors: np.ndarray) -> TopicVectors:
    """Topic vector = normalised sum of its entries' text vectors (no model needed)."""
    def vectors(keys: Sequence[Key], _titles: list[str]) -> np.ndarray:
        out = np.stack([entry_vectors[sorted(k)].sum(axis=0) for k in keys]) if keys else np.zeros((0, entry_vectors.shape[1]), np.float32)
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return vectors


def title_text_vectors(encode_texts: Callable[[list[str]], np.ndarray], dim: int) -> TopicVectors:
    """Topic vector = the text tower's normalised vector of the page's title (the landing pages)."""
    def vectors(_keys: Sequence[Key], titles: list[str]) -> np.ndarray:
        out = np.asarray(encode_texts(titles), np.float32) if titles else np.zeros((0, dim), np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return vectors


@dataclass
class Collections:
    pages: pd.DataFrame  # key, title, title_source, support/demand, feed figures, status, reason, sources
    feeds: pd.DataFrame  # topic, rank, item, score, match (topic = row of pages)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def published(self) -> pd.DataFrame:
        return self.pages[self.pages["status"] == "published"]


def content_first(space: AttributeSpace, item_vectors: np.ndarray, hashes: np.ndarray | None, titler: Titler,
                  topic_vectors: TopicVectors, config: CollectionConfig, clusters: bool = True) -> Collections:
    """Topics (and cluster names), titles, feeds and the bar in one call (benchmark, tests)."""
    start = time.perf_counter()
    candidates = enumerate_topics(space, config)
    seconds = {"topics": round(time.perf_counter() - start, 2)}
    extra = {}
    if clusters:
        start = time.perf_counter()
        extra["clusters"] = merge_cluster_topics(candidates, cluster_topics(space, item_vectors, config))
        seconds["clusters"] = round(time.perf_counter() - start, 2)
    result = feeds_and_pages(candidates, space, item_vectors, hashes, titler, topic_vectors, config)
    result.extra, result.seconds = extra, seconds | result.seconds
    return result


def feeds_and_pages(candidates: TopicCandidates, space: AttributeSpace, item_vectors: np.ndarray, hashes: np.ndarray | None,
                    titler: Titler, topic_vectors: TopicVectors, config: CollectionConfig) -> Collections:
    clock, seconds = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    keys = list(candidates.topics["key"])
    titles, sources = titler.titles(keys)
    lap("titles")
    feeds, figures = build_feeds(len(keys), candidates.rows, item_vectors, topic_vectors(keys, titles), hashes, config, "content-first feeds")
    lap("feeds")
    pages = apply_quality_bar(candidates.topics, figures, lambda t: candidates.rows(t)[0], space, titles, config)
    pages["title_source"] = sources
    lap("quality bar")
    return Collections(pages, feeds, {}, seconds)


def search_log(log: pd.DataFrame, space: AttributeSpace, parser: QueryParser, index: LexicalIndex, hashes: np.ndarray | None,
               titler: Titler, config: CollectionConfig) -> Collections:
    start = time.perf_counter()
    topics, dropped_queries = baseline_topics(log, parser, config)
    feeds, figures = baseline_feeds(topics, index, space, hashes, config)
    sets = {t: np.sort(g["item"].to_numpy()) for t, g in feeds.groupby("topic")}
    titles, sources = titler.titles(list(topics["key"]))
    pages = apply_quality_bar(topics, figures, lambda t: sets.get(t, np.zeros(0, np.int64)), space, titles, config)
    pages["title_source"] = sources
    return Collections(pages, feeds, {"dropped_queries": dropped_queries}, {"baseline": round(time.perf_counter() - start, 2)})


@dataclass
class CatalogView:
    """What both approaches read: the attribute space, product vectors and item text; image
    hashes are computed on first use (topic enumeration does not need them)."""

    space: AttributeSpace
    vectors: np.ndarray  # fused product vectors, item-index order
    items: pd.DataFrame  # title, description, image_hash, item-index order
    images_uri: str

    def texts(self, title_weight: int = 1) -> list[str]:
        """Per item, the title `title_weight` times and the description: what lexical search indexes."""
        return [" ".join([t] * title_weight + [d]) for t, d in zip(self.items["title"].fillna(""), self.items["description"].fillna(""))]

    @cached_property
    def hashes(self) -> np.ndarray:
        """64-bit dHash per item."""
        from ml.catalog.store import item_pixels
        from ml.collections.feeds import dhash

        return dhash(item_pixels(self.items["image_hash"], self.images_uri))


def load_catalog_view(assignments_uri: str, vocabulary_uri: str, embeddings_uri: str, items_uri: str, images_uri: str) -> CatalogView:
    from ml.attributes.assign import fused_vectors
    from ml.catalog.store import read_table
    from ml.embedding.encode import read_embeddings

    item_ids, image, text = read_embeddings(embeddings_uri)
    space = AttributeSpace.from_tables(item_ids, read_table(assignments_uri), read_table(vocabulary_uri))
    items = read_table(items_uri, ["item_id", "title", "description", "image_hash"]).set_index("item_id").loc[list(item_ids)].reset_index(drop=True)
    return CatalogView(space, fused_vectors(image, text), items, images_uri)
