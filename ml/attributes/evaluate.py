"""Attribute evaluation on held-out items against a ground-truth table (labels.parquet beside
the catalog file; optional label_aliases.json maps surface forms to true values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ml.attributes.metrics import entry_truth, per_type_precision_recall, recall_at_k, top1_accuracy

LABELS_FILE, ALIASES_FILE = "labels.parquet", "label_aliases.json"


def find_ground_truth(catalog_dir: str) -> tuple[pd.DataFrame, dict[str, str]] | None:
    folder = Path(catalog_dir)
    if "://" in catalog_dir or not (folder / LABELS_FILE).exists():
        return None
    aliases = json.loads((folder / ALIASES_FILE).read_text()) if (folder / ALIASES_FILE).exists() else {}
    return pd.read_parquet(folder / LABELS_FILE), aliases


def observable_truth(labels: pd.DataFrame, types: list[str], grounded: tuple[str, ...]) -> list[set[tuple[str, str]]]:
    """Per item, the true (type, value) pairs one could know: grounded types always (they are
    in the image), others when the text names them (`text_names_<type>` columns)."""
    out = []
    for _, row in labels.iterrows():
        pairs = set()
        for t in types:
            value = row.get(t)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if t in grounded or bool(row.get(f"text_names_{t}", False)):
                pairs.add((t, value))
        out.append(pairs)
    return out


def evaluate_attributes(item_ids: list[str], merged_scores: np.ndarray, student_scores: np.ndarray, vocabulary: pd.DataFrame,
                        assigned: pd.DataFrame, labels: pd.DataFrame, aliases: dict[str, str],
                        grounded: tuple[str, ...] = ("category", "color")) -> tuple[dict, pd.DataFrame]:
    """Figures on the given (held-out) items: Recall@10 (merged and student-only), category
    accuracy, colour accuracy where the text is silent, and per-type precision/recall."""
    truth = labels.set_index("item_id").loc[item_ids].reset_index()
    values = entry_truth(vocabulary, aliases)
    types = sorted(vocabulary["type"].unique())
    observable = observable_truth(truth, types, grounded)
    silent = ~truth["text_names_color"].to_numpy(bool) if "text_names_color" in truth else np.ones(len(truth), bool)
    figures = {
        "recall_at_10": recall_at_k(merged_scores, vocabulary, values, observable),
        "student_recall_at_10": recall_at_k(student_scores, vocabulary, values, observable),
        "category_accuracy": top1_accuracy(merged_scores, vocabulary, values, "category", truth["category"]),
        "color_accuracy_text_silent": top1_accuracy(merged_scores[silent], vocabulary, values, "color", truth["color"][silent]),
        "student_category_accuracy": top1_accuracy(student_scores, vocabulary, values, "category", truth["category"]),
        "eval_items": len(item_ids),
        "text_silent_items": int(silent.sum()),
    }
    table = per_type_precision_recall(assigned[assigned["item_id"].isin(set(item_ids))], vocabulary, values, truth, types)
    return figures, table
