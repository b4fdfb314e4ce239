"""The lexicon teacher: attribute mentions in titles and descriptions, found with one regex.

Matching is on normalised text (case folded, hyphens and slashes as spaces, punctuation
dropped), longest phrase first, with singular and plural forms of every surface term.
Sentences that point at other products ("Also available in navy.", "Pairs well with our
leather boots.") are skipped: their attribute words describe something else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from ml.attributes.taxonomy import Taxonomy

FIELD_CONFIDENCE = {"title": 0.95, "description": 0.9}
_PUNCT = re.compile(r"[^a-z0-9' ]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
OTHER_PRODUCT_CUES = (
    "also available", "available in", "also comes in", "comes in other", "pairs well with", "pair it with", "wear it with",
    "style it with", "team it with", "goes well with", "complete the look", "shop the look", "matching",
)


def normalise(text: str | None) -> str:
    if not text:
        return ""
    return " ".join(_PUNCT.sub(" ", text.lower().replace("-", " ").replace("/", " ")).split())


def _inflections(phrase: str) -> set[str]:
    words = phrase.split()
    *head, last = words
    forms = {last}
    if last.endswith("ies"):
        forms.add(last[:-3] + "y")
    elif last.endswith(("ses", "shes", "ches", "xes")):
        forms.add(last[:-2])
    elif last.endswith("s") and not last.endswith("ss"):
        forms.add(last[:-1])
    else:
        forms.add(last + ("es" if last.endswith(("s", "sh", "ch", "x")) else "s"))
    return {" ".join([*head, f]) for f in forms}


class LexiconTeacher:
    name = "lexicon"

    def __init__(self, taxonomy: Taxonomy, other_product_cues: Iterable[str] = OTHER_PRODUCT_CUES):
        self.taxonomy = taxonomy
        cues = sorted({normalise(c) for c in other_product_cues} - {""})
        self.other_product = re.compile(r"\b(?:" + "|".join(map(re.escape, cues)) + r")\b") if cues else None
        self.lookup: dict[str, tuple[str, str]] = {}
        for attr_type, entry, surface in taxonomy.surfaces():
            for form in _inflections(normalise(surface)):
                self.lookup.setdefault(form, (attr_type, entry))  # first declared wins on a clash
        alternatives = sorted(self.lookup, key=lambda s: (-len(s), s))
        self.pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, alternatives)) + r")\b")

    def extract(self, text: str | None) -> list[tuple[str, str, str]]:
        """(type, entry, surface) for every mention, left to right, longest match first, outside
        sentences about other products."""
        out = []
        for sentence in _SENTENCE_END.split(text or ""):
            words = normalise(sentence)
            if self.other_product is not None and self.other_product.search(words):
                continue
            out += [(*self.lookup[m.group(0)], m.group(0)) for m in self.pattern.finditer(words)]
        return out

    def label(self, items: pd.DataFrame, fields: Iterable[str] = ("title", "description")) -> pd.DataFrame:
        """Long table item_id, type, value, surface, field, confidence; one row per (item, type, value)."""
        rows = []
        for field in fields:
            if field not in items:
                continue
            confidence = FIELD_CONFIDENCE.get(field, 0.8)
            for item_id, text in zip(items["item_id"], items[field]):
                for attr_type, entry, surface in self.extract(text):
                    rows.append((item_id, attr_type, entry, surface, field, confidence))
        frame = pd.DataFrame(rows, columns=["item_id", "type", "value", "surface", "field", "confidence"])
        frame = frame.sort_values("confidence", ascending=False, kind="stable")
        return frame.drop_duplicates(["item_id", "type", "value"]).sort_values(["item_id", "type", "value"], ignore_index=True)
