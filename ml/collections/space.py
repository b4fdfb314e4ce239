"""The attribute space both approaches share: vocabulary entries, every item's confident
assignments as a sparse item x entry matrix, and parsing of free text (queries) into entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.attributes.lexicon import LexiconTeacher
from ml.attributes.taxonomy import Taxonomy

Key = frozenset  # a topic: a frozenset of entry ids


@dataclass
class AttributeSpace:
    item_ids: np.ndarray  # N, object
    entry_type: np.ndarray  # E, str
    entry_phrase: np.ndarray  # E, str
    entry_members: list[list[str]]
    item: np.ndarray  # assignment rows: item index, entry index, confidence
    entry: np.ndarray
    confidence: np.ndarray
    matrix: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.matrix = sp.csr_matrix((self.confidence.astype(np.float32), (self.item, self.entry)),
                                    shape=(len(self.item_ids), len(self.entry_type)))
        self.matrix.sum_duplicates()

    @classmethod
    def from_tables(cls, item_ids, assignments: pd.DataFrame, vocabulary: pd.DataFrame, min_confidence: float = 0.0) -> "AttributeSpace":
        """`assignments`: item_id, type, phrase, confidence (item_attributes); `vocabulary`: type, phrase, members."""
        item_ids = np.asarray(item_ids, dtype=object)
        entry_index = {(t, p): i for i, (t, p) in enumerate(zip(vocabulary["type"], vocabulary["phrase"]))}
        item_index = pd.Index(item_ids)
        a = assignments[assignments["confidence"] >= min_confidence]
        entry = np.array([entry_index.get(k, -1) for k in zip(a["type"], a["phrase"])], dtype=np.int64)
        item = item_index.get_indexer(a["item_id"])
        keep = (entry >= 0) & (item >= 0)
        # one row per (item, entry): the highest confidence
        frame = pd.DataFrame({"item": item[keep], "entry": entry[keep], "confidence": a["confidence"].to_numpy(np.float32)[keep]})
        frame = frame.groupby(["item", "entry"], as_index=False)["confidence"].max()
        return cls(item_ids, vocabulary["type"].to_numpy(str), vocabulary["phrase"].to_numpy(str),
                   [list(m) for m in vocabulary.get("members", vocabulary["phrase"].map(lambda p: [p]))],
                   frame["item"].to_numpy(np.int64), frame["entry"].to_numpy(np.int64), frame["confidence"].to_numpy(np.float32))

    @property
    def n_entries(self) -> int:
        return len(self.entry_type)

    def label(self, entry: int) -> str:
        return f"{self.entry_type[entry]}:{self.entry_phrase[entry]}"

    def key_labels(self, key: Key) -> list[str]:
        return sorted(self.label(e) for e in key)

    def key_of(self, labels: list[str]) -> Key:
        index = {self.label(e): e for e in range(self.n_entries)}
        return frozenset(index[x] for x in labels)

    def match_confidence(self, items: np.ndarray, key: Key) -> np.ndarray:
        """Per item, the product of its confidences for the key's entries (0 where one is missing)."""
        out = np.ones(len(items), np.float32)
        for e in key:
            out *= self.matrix[items, e].toarray().ravel() if len(items) else 0
        return out

    @cached_property
    def _by_entry(self) -> sp.csc_matrix:
        return self.matrix.tocsc()

    def items_with(self, key: Key) -> np.ndarray:
        """Indices of items that carry every entry of the key."""
        csc = self._by_entry
        sets = [csc.indices[csc.indptr[e]:csc.indptr[e + 1]] for e in key]
        out = sets[0]
        for s in sets[1:]:
            out = np.intersect1d(out, s, assume_unique=True)
        return np.sort(out)


class QueryParser:
    """Free text -> the vocabulary entries it names, through the taxonomy's surface forms (the
    lexicon teacher's matcher) and the vocabulary's merged members. Names outside the vocabulary
    are returned separately: a page cannot be built for an attribute the catalog lacks."""

    def __init__(self, space: AttributeSpace, taxonomy: Taxonomy):
        self.lexicon = LexiconTeacher(taxonomy, other_product_cues=())  # a query is about what it names: "matching red dress"
        self.member_entry = {(space.entry_type[e], m): e for e in range(space.n_entries) for m in space.entry_members[e]}

    def parse(self, text: str) -> tuple[Key, list[str]]:
        known, unknown = set(), []
        for attr_type, entry, _surface in self.lexicon.extract(text):
            e = self.member_entry.get((attr_type, entry))
            if e is None:
                unknown.append(f"{attr_type}:{entry}")
            else:
                known.add(e)
        return frozenset(known), unknown

    def key(self, text: str) -> Key | None:
        known, unknown = self.parse(text)
        return known if known and not unknown else None
