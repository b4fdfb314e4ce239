"""Teachers behind one interface: `label(items, images) -> long table` of item_id, type,
value, confidence, source. The lexicon teacher reads text; the VLM teacher reads both."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from ml.attributes.lexicon import LexiconTeacher
from ml.attributes.taxonomy import Taxonomy

TEACHER_COLUMNS = ["item_id", "type", "value", "confidence", "source"]


class Teacher(Protocol):
    name: str

    def label_items(self, items: pd.DataFrame, pixels: np.ndarray | None) -> tuple[pd.DataFrame, list[dict]]: ...


class LexiconItemsTeacher:
    name = "lexicon"
    needs_images = False

    def __init__(self, taxonomy: Taxonomy):
        self.lexicon = LexiconTeacher(taxonomy)

    def label_items(self, items: pd.DataFrame, pixels: np.ndarray | None = None) -> tuple[pd.DataFrame, list[dict]]:
        found = self.lexicon.label(items)
        found["source"] = "lexicon"
        return found[TEACHER_COLUMNS + ["surface", "field"]], []


class VLMItemsTeacher:
    name = "vlm"
    needs_images = True

    def __init__(self, model_path: str, taxonomy: Taxonomy, batch_size: int = 8):
        from ml.attributes.vlm import VLMTeacher

        self.vlm = VLMTeacher(model_path, {t: sorted(entries) for t, entries in taxonomy.types.items()}, batch_size=batch_size)

    def label_items(self, items: pd.DataFrame, pixels: np.ndarray | None) -> tuple[pd.DataFrame, list[dict]]:
        labels, problems = self.vlm.label(items["item_id"].tolist(), pixels, items["title"].tolist(), items["description"].tolist())
        frame = pd.DataFrame([{"item_id": l.item_id, "type": l.type, "value": l.value, "confidence": l.confidence, "source": "vlm"}
                              for l in labels], columns=TEACHER_COLUMNS)
        return frame, problems


def make_teacher(kind: str, taxonomy: Taxonomy, vlm_model: str | None = None) -> LexiconItemsTeacher | VLMItemsTeacher:
    if kind == "lexicon":
        return LexiconItemsTeacher(taxonomy)
    if kind == "vlm":
        if not vlm_model:
            raise ValueError("teacher 'vlm' needs vlm_model: a local folder with a transformers image-text-to-text model")
        return VLMItemsTeacher(vlm_model, taxonomy)
    raise ValueError(f"teacher {kind!r}: use 'lexicon' or 'vlm'")
