"""The search-log baseline, done fairly: every query searched at least `min_query_count` times
becomes a topic (queries naming the same attributes are one topic, its demand summed), and its
feed is BM25 (bm25s, English stop words, Snowball stemming) over titles and descriptions. The
page's attributes are what the query names; the same feed ranking rules and quality bar apply."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.collections.config import CollectionConfig
from ml.collections.feeds import spread_near_duplicates
from ml.collections.space import AttributeSpace, QueryParser


class LexicalIndex:
    """BM25 over the catalog's text, built once and searched in batches."""

    def __init__(self, texts: list[str]):
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.stemmer = Stemmer.Stemmer("english")
        self.n_docs = len(texts)
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.vocab: dict[str, int] = tokens.vocab
        lengths = [len(ids) for ids in tokens.ids]
        self.terms = sp.csr_matrix((np.ones(sum(lengths), np.float32), (np.repeat(np.arange(len(lengths)), lengths),
                                    np.concatenate([np.asarray(i, np.int64) for i in tokens.ids]) if lengths else [])),
                                   shape=(len(texts), len(self.vocab)))

    def query_terms(self, queries: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(queries, stopwords="en", stemmer=self.stemmer, show_progress=False, return_ids=False)

    def contains_all(self, docs: np.ndarray, terms: list[str]) -> np.ndarray:
        """Per doc, whether its text has every (stemmed) query term: the lexical approach's own
        evidence that a result matches the query."""
        ids = [self.vocab.get(t) for t in terms]
        if not ids or any(i is None for i in ids):
            return np.zeros(len(docs), bool)
        return (self.terms[docs][:, ids] > 0).toarray().all(axis=1)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(doc indices, scores), each len(queries) x k; a score of 0 means no term matched."""
        tokens = [t if t else [""] for t in self.query_terms(queries)]
        docs, scores = self.retriever.retrieve(tokens, k=min(k, self.n_docs), show_progress=False, n_threads=1)
        return docs, scores


def baseline_topics(log: pd.DataFrame, parser: QueryParser, config: CollectionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(topics, dropped queries). A topic: key, query (the most searched phrasing), demand,
    queries (how many phrasings). Frequent queries that name nothing known are dropped with why."""
    frequent = log[log["count"] >= config.min_query_count]
    rows, dropped = {}, []
    for query, count in zip(frequent["query"], frequent["count"]):
        known, unknown = parser.parse(query)
        if unknown or not known:
            dropped.append({"query": query, "count": int(count),
                            "reason": f"names attributes outside the vocabulary: {', '.join(unknown)}" if unknown else "names no known attribute"})
            continue
        row = rows.setdefault(known, {"key": known, "query": query, "demand": 0, "queries": 0})
        row["demand"] += int(count)
        row["queries"] += 1  # the log is sorted by count, so `query` is the most searched phrasing
    topics = pd.DataFrame(list(rows.values()), columns=["key", "query", "demand", "queries"])
    return topics, pd.DataFrame(dropped, columns=["query", "count", "reason"])


def baseline_feeds(topics: pd.DataFrame, index: LexicalIndex, space: AttributeSpace, hashes: np.ndarray | None,
                   config: CollectionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feeds in the same shape as content-first ones: (topic, rank, item, score, match) and per
    topic feed_size and predicted_precision. The lexical approach predicts its precision from its
    own evidence, the share of the first top_k results whose text has every query term; the
    content-first estimator (attribute-match confidence) is kept beside it as
    `predicted_precision_attributes`, and `config.baseline_precision` picks which one the bar uses."""
    if topics.empty:
        return (pd.DataFrame(columns=["topic", "rank", "item", "score", "match"]),
                pd.DataFrame(columns=["topic", "candidates", "feed_size", "predicted_precision", "distinct_top_k"]))
    docs, scores = index.search(list(topics["query"]), config.max_feed_items + 4 * config.top_k)
    terms = index.query_terms(list(topics["query"]))
    parts, stats = [], []
    for t, key in enumerate(topics["key"]):
        hit = scores[t] > 0
        order = np.arange(int(hit.sum()))
        distinct = min(config.top_k, len(order))
        if hashes is not None:
            order, distinct = spread_near_duplicates(order, hashes[docs[t][hit]], config.top_k, config.near_duplicate_bits)
        order = order[: config.max_feed_items]
        items = docs[t][hit][order].astype(np.int64)
        match = space.match_confidence(items, key)
        parts.append(pd.DataFrame({"topic": t, "rank": np.arange(len(items)), "item": items, "score": scores[t][hit][order], "match": match}))
        lexical = float(index.contains_all(items[: config.top_k], terms[t]).mean()) if len(items) else 0.0
        attribute = float(match[: config.top_k].mean()) if len(items) else 0.0
        stats.append((t, int(hit.sum()), len(items), lexical if config.baseline_precision == "lexical" else attribute, lexical, attribute, distinct))
    figures = pd.DataFrame(stats, columns=["topic", "candidates", "feed_size", "predicted_precision", "predicted_precision_lexical",
                                           "predicted_precision_attributes", "distinct_top_k"])
    return pd.concat(parts, ignore_index=True), figures
