"""Vocabulary curation, PinLanding-style, that shows its work: every drop and every merge
(approved or not) is a row with its reason.

1. frequency: phrases seen on fewer than `min_items` items are dropped;
2. merge candidates: same-type phrase pairs whose text embeddings are close, whose items look
   alike (image-centroid similarity, for visually grounded types), or that share words;
3. a judge approves or rejects each candidate (rules in the demo, an LLM in production);
4. approved pairs are merged transitively; a group is named by its most frequent member.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel


class CurationConfig(BaseModel):
    min_items: int = 50
    text_similarity: float = 0.8  # candidate when phrase embeddings are at least this close
    # Image evidence, relative to the type: margin = (cos - median cos of the type's pairs) / (1 - median).
    # 1.0 means the two phrases' items look as alike as an item set looks like itself.
    grounded_margin: float = 0.95
    min_spread: float = 0.05  # 1 - median cos below this: the images do not tell this type's values apart
    grounded_types: tuple[str, ...] = ("category", "color")


@dataclass(frozen=True)
class MergeCandidate:
    type: str
    a: str
    b: str
    text_similarity: float
    grounded_margin: float | None  # None: no usable image evidence for this type


@dataclass(frozen=True)
class Verdict:
    approve: bool
    reason: str


class Judge(Protocol):
    name: str

    def decide(self, candidate: MergeCandidate) -> Verdict: ...


def label_image_centroids(labels: pd.DataFrame, item_ids, image_vectors: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Per (type, value) of the teacher's labels, the unit mean of its items' image vectors: the
    image evidence for merges. A label none of whose items has a vector gets no centroid (no
    evidence), never a NaN one."""
    row = pd.Index(item_ids).get_indexer(labels["item_id"])
    known = labels.assign(row=row)[row >= 0]
    centroids = {}
    for key, group in known.groupby(["type", "value"]):
        c = image_vectors[group["row"].to_numpy()].mean(axis=0)
        centroids[key] = c / max(float(np.linalg.norm(c)), 1e-12)
    return centroids


def lexical_evidence(a: str, b: str) -> str | None:
    """Why two phrases are spelled as the same thing, or None."""
    wa, wb = a.split(), b.split()
    short, long_ = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    if len(short) < len(long_) and any(long_[i : i + len(short)] == short for i in range(len(long_) - len(short) + 1)):
        return f"{' '.join(long_)!r} is a kind of {' '.join(short)!r}"
    if min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)):
        return f"{a!r} and {b!r} share a prefix (abbreviation)"
    if difflib.SequenceMatcher(None, a, b).ratio() >= 0.75 and len(a) == len(b):
        return f"{a!r} and {b!r} are spelling variants"
    return None


class RuleJudge:
    """The demo's judge: merge on lexical evidence, or on visual evidence for grounded types."""

    name = "rules"

    def __init__(self, config: CurationConfig):
        self.config = config

    def decide(self, c: MergeCandidate) -> Verdict:
        if why := lexical_evidence(c.a, c.b):
            return Verdict(True, why)
        if c.type in self.config.grounded_types and c.grounded_margin is not None:
            if c.grounded_margin >= self.config.grounded_margin:
                return Verdict(True, f"their items look alike (image margin {c.grounded_margin:.3f})")
            return Verdict(False, f"items differ visually (image margin {c.grounded_margin:.3f} < {self.config.grounded_margin})")
        return Verdict(False, f"no lexical or visual evidence that {c.a!r} and {c.b!r} are the same {c.type}")


def _groups(pairs: list[tuple[str, str]], members: list[str]) -> dict[str, str]:
    parent = {m: m for m in members}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    return {m: find(m) for m in members}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _image_margins(attr_type: str, phrases: list[str], centroids: dict, config: CurationConfig, decisions: list[dict]) -> dict:
    """Pairwise image margins within a type, or {} when the images cannot tell its values apart."""
    have = [p for p in phrases if (attr_type, p) in centroids]
    pairs = {(a, b): _cos(centroids[(attr_type, a)], centroids[(attr_type, b)]) for i, a in enumerate(have) for b in have[i + 1 :]}
    if len(pairs) < 3:
        return {}
    median = float(np.median(list(pairs.values())))
    if 1 - median < config.min_spread:
        decisions.append({"action": "note", "type": attr_type, "phrase": None, "other": None,
                          "reason": f"image evidence unused: items of different {attr_type} values look alike (median centroid cosine {median:.4f})"})
        return {}
    return {k: (v - median) / (1 - median) for k, v in pairs.items()}


def curate_vocabulary(
    teacher: pd.DataFrame,
    phrase_vectors: dict[tuple[str, str], np.ndarray],
    image_centroids: dict[tuple[str, str], np.ndarray],
    taxonomy_entries: dict[str, list[str]],
    config: CurationConfig,
    judge: Judge,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(vocabulary: type, phrase, members, items; decisions: action, type, phrase, other, reason)."""
    counts = teacher.groupby(["type", "value"])["item_id"].nunique()
    decisions: list[dict] = []
    for attr_type, entries in taxonomy_entries.items():
        for entry in entries:
            if (attr_type, entry) not in counts.index:
                decisions.append({"action": "drop", "type": attr_type, "phrase": entry, "other": None, "reason": "never observed in this catalog"})
    kept: dict[str, list[str]] = {}
    for (attr_type, value), n in counts.items():
        if n < config.min_items:
            decisions.append({"action": "drop", "type": attr_type, "phrase": value, "other": None, "reason": f"rare: {n} items < {config.min_items}"})
        else:
            kept.setdefault(attr_type, []).append(value)
    vocabulary = []
    for attr_type, phrases in kept.items():
        approved = []
        margin = _image_margins(attr_type, phrases, image_centroids, config, decisions)
        for i, a in enumerate(phrases):
            for b in phrases[i + 1 :]:
                text_sim = _cos(phrase_vectors[(attr_type, a)], phrase_vectors[(attr_type, b)]) if phrase_vectors else 0.0
                grounded = margin.get((a, b))
                near = text_sim >= config.text_similarity or (grounded or 0) >= config.grounded_margin
                if not near and lexical_evidence(a, b) is None:
                    continue
                verdict = judge.decide(MergeCandidate(attr_type, a, b, text_sim, grounded))
                decisions.append({"action": "merge" if verdict.approve else "keep apart", "type": attr_type, "phrase": a, "other": b,
                                  "reason": f"{judge.name}: {verdict.reason}; text cosine {text_sim:.3f}"})
                if verdict.approve:
                    approved.append((a, b))
        root = _groups(approved, phrases)
        for group in sorted(set(root.values())):
            members = sorted((p for p in phrases if root[p] == group), key=lambda p: (-counts[(attr_type, p)], p))
            vocabulary.append({"type": attr_type, "phrase": members[0], "members": members,
                               "items": int(teacher[(teacher["type"] == attr_type) & teacher["value"].isin(members)]["item_id"].nunique())})
    vocab = pd.DataFrame(vocabulary).sort_values(["type", "items"], ascending=[True, False], ignore_index=True)
    return vocab, pd.DataFrame(decisions, columns=["action", "type", "phrase", "other", "reason"])
