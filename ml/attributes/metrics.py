"""Attribute metrics against ground truth (evaluation only; DESIGN.md "Metrics")."""

from __future__ import annotations

import numpy as np
import pandas as pd


def entry_truth(vocabulary: pd.DataFrame, alias: dict[str, str]) -> list[str | None]:
    """The true attribute value each vocabulary entry stands for: its members mapped through
    `alias` (surface -> canonical), majority vote; None when no member maps."""
    out = []
    for members in vocabulary["members"]:
        mapped = [alias.get(m, m) for m in members]
        out.append(max(set(mapped), key=mapped.count) if mapped else None)
    return out


def recall_at_k(scores: np.ndarray, vocabulary: pd.DataFrame, truth_values: list[str | None], observable: list[set[tuple[str, str]]], k: int = 10) -> float:
    """Share of each item's observable true (type, value) pairs among its k best-scored entries, averaged."""
    top = np.argsort(-scores, axis=1)[:, :k]
    types = vocabulary["type"].to_numpy()
    recalls = []
    for row, wanted in zip(top, observable):
        if not wanted:
            continue
        found = {(types[j], truth_values[j]) for j in row}
        recalls.append(len(wanted & found) / len(wanted))
    return float(np.mean(recalls)) if recalls else float("nan")


def top1_accuracy(scores: np.ndarray, vocabulary: pd.DataFrame, truth_values: list[str | None], attr_type: str, truth: pd.Series) -> float:
    cols = np.flatnonzero(vocabulary["type"].to_numpy() == attr_type)
    if len(cols) == 0 or len(truth) == 0:
        return float("nan")  # no phrase of this type survived curation: nothing to be right with
    predicted = np.asarray(truth_values, dtype=object)[cols[scores[:, cols].argmax(axis=1)]]
    return float(np.mean(predicted == truth.to_numpy(dtype=object))) if len(truth) else float("nan")


def per_type_precision_recall(assigned: pd.DataFrame, vocabulary: pd.DataFrame, truth_values: list[str | None],
                              labels: pd.DataFrame, types: list[str]) -> pd.DataFrame:
    """Precision and recall of the assigned (type, value) pairs against every true value."""
    value_of = {(t, p): v for t, p, v in zip(vocabulary["type"], vocabulary["phrase"], truth_values)}
    truth = labels.set_index("item_id")
    rows = []
    for attr_type in types:
        got = assigned[assigned["type"] == attr_type]
        got = got[got["item_id"].isin(truth.index)]
        values = [value_of[(attr_type, p)] for p in got["phrase"]]
        correct = np.array([truth.at[i, attr_type] == v for i, v in zip(got["item_id"], values)], dtype=bool)
        relevant = truth[attr_type].notna().sum()
        hit_items = got.loc[correct, "item_id"].nunique() if len(got) else 0
        rows.append({"type": attr_type, "assigned": len(got), "precision": float(correct.mean()) if len(got) else float("nan"),
                     "recall": float(hit_items / relevant) if relevant else float("nan")})
    return pd.DataFrame(rows)
