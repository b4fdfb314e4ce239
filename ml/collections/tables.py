"""Topics, pages and feeds as stored tables. In memory they are keyed by positions in one
AttributeSpace (entry and item indices); on disk by attribute labels and item ids, so a table
reads back against any space built from the same catalog, and a person can read it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.catalog.store import read_table, write_table
from ml.collections.build import Collections
from ml.collections.space import AttributeSpace
from ml.collections.topics import TopicCandidates


def write_topic_candidates(space: AttributeSpace, candidates: TopicCandidates, topics_uri: str, candidates_uri: str) -> pd.DataFrame:
    """Write the topics (attributes as labels) and their candidate rows; returns the topics table."""
    topics = candidates.topics.assign(attributes=[space.key_labels(k) for k in candidates.topics["key"]]).drop(columns=["key"])
    write_table(topics.rename_axis("topic").reset_index(), topics_uri)
    topic_of = np.repeat(np.arange(len(topics)), np.diff(candidates.offsets))
    write_table(pd.DataFrame({"topic": topic_of, "item_id": space.item_ids[candidates.item], "match": candidates.match}), candidates_uri)
    return topics


def read_topic_candidates(space: AttributeSpace, topics_uri: str, candidates_uri: str) -> TopicCandidates:
    """The inverse of `write_topic_candidates`. An item id the space does not know is an error,
    not a silent -1 index (that would point at the last item)."""
    topics = read_table(topics_uri).set_index("topic").sort_index()
    rows = read_table(candidates_uri)
    topics["key"] = [space.key_of(list(a)) for a in topics["attributes"]]
    counts = np.bincount(rows["topic"].to_numpy(), minlength=len(topics))
    order = np.argsort(rows["topic"].to_numpy(), kind="stable")
    item = _item_positions(space, rows["item_id"].to_numpy()[order], candidates_uri)
    return TopicCandidates(topics[["key", "support", "sources"]].reset_index(drop=True), item,
                           rows["match"].to_numpy(np.float32)[order], np.r_[0, np.cumsum(counts)])


def pages_table(space: AttributeSpace, result: Collections) -> pd.DataFrame:
    pages = result.pages.copy()
    pages["attributes"] = [space.key_labels(k) for k in pages["key"]]
    return pages.drop(columns=["key"]).rename_axis("topic").reset_index()


def feeds_table(space: AttributeSpace, feeds: pd.DataFrame) -> pd.DataFrame:
    return feeds.assign(item_id=space.item_ids[feeds["item"].to_numpy(np.int64)]).drop(columns=["item"])


def write_collections(space: AttributeSpace, result: Collections, pages_uri: str, feeds_uri: str) -> None:
    write_table(pages_table(space, result), pages_uri)
    write_table(feeds_table(space, result.feeds), feeds_uri)


def read_pages(space: AttributeSpace, uri: str) -> pd.DataFrame:
    pages = read_table(uri).set_index("topic")
    pages["key"] = [space.key_of(list(a)) for a in pages["attributes"]]
    return pages


def read_feeds(space: AttributeSpace, uri: str) -> pd.DataFrame:
    feeds = read_table(uri)
    return feeds.assign(item=_item_positions(space, feeds["item_id"].to_numpy(), uri)).drop(columns=["item_id"])


def _item_positions(space: AttributeSpace, item_ids: np.ndarray, uri: str) -> np.ndarray:
    positions = pd.Index(space.item_ids).get_indexer(item_ids)
    if (positions < 0).any():
        unknown = pd.unique(item_ids[positions < 0])
        raise ValueError(f"{uri}: {len(unknown)} item ids are not in this catalog's attribute space (e.g. {list(unknown[:3])}); "
                         "the table was written for another snapshot")
    return positions.astype(np.int64)
