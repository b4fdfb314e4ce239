"""Attribute assignment: the dual encoder scores items against the curated vocabulary,
per-type thresholds are calibrated on held-out items to a target precision, and teacher and
student labels are merged with provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel


class AssignmentConfig(BaseModel):
    target_precision: float = 0.95
    min_calibration_items: int = 30
    # The student assigns only what it can observe without the text: calibration runs on items
    # whose text names the type, so for unobservable types it would overstate precision.
    student_types: tuple[str, ...] = ("category", "color")


def fused_vectors(image_vectors: np.ndarray, text_vectors: np.ndarray) -> np.ndarray:
    """The product tower's vector: image and text embeddings summed, renormalised."""
    fused = image_vectors + text_vectors
    return fused / np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)


def entry_vectors(vocabulary: pd.DataFrame, phrase_vector) -> np.ndarray:
    """One vector per vocabulary entry: the normalised mean of its members' text vectors."""
    rows = []
    for attr_type, members in zip(vocabulary["type"], vocabulary["members"]):
        v = np.mean([phrase_vector(attr_type, m) for m in members], axis=0)
        rows.append(v / max(np.linalg.norm(v), 1e-12))
    return np.stack(rows).astype(np.float32)


def typed_softmax(item_vectors: np.ndarray, entries: np.ndarray, entry_types: np.ndarray, scale: float) -> np.ndarray:
    """N x E probabilities, a softmax over each attribute type's entries (one value per type)."""
    logits = scale * (item_vectors @ entries.T)
    probs = np.empty_like(logits)
    for attr_type in np.unique(entry_types):
        cols = entry_types == attr_type
        block = logits[:, cols] - logits[:, cols].max(axis=1, keepdims=True)
        e = np.exp(block)
        probs[:, cols] = e / e.sum(axis=1, keepdims=True)
    return probs


def teacher_entry_matrix(teacher: pd.DataFrame, vocabulary: pd.DataFrame, item_ids: list[str]) -> np.ndarray:
    """N x E teacher confidence (0 where the teacher did not name that entry)."""
    member_to_entry = {(t, m): i for i, (t, members) in enumerate(zip(vocabulary["type"], vocabulary["members"])) for m in members}
    row = {item: i for i, item in enumerate(item_ids)}
    out = np.zeros((len(item_ids), len(vocabulary)), np.float32)
    for item, attr_type, value, conf in zip(teacher["item_id"], teacher["type"], teacher["value"], teacher["confidence"]):
        col = member_to_entry.get((attr_type, value))
        if col is not None and item in row:
            out[row[item], col] = max(out[row[item], col], conf)
    return out


def calibrate_thresholds(probs: np.ndarray, teacher: np.ndarray, entry_types: np.ndarray, config: AssignmentConfig) -> pd.DataFrame:
    """Per type: the lowest student confidence whose top-1 agrees with the teacher at
    `target_precision` on held-out items the teacher labelled (ground truth stays unread)."""
    rows = []
    for attr_type in np.unique(entry_types):
        cols = np.flatnonzero(entry_types == attr_type)
        known = teacher[:, cols].max(axis=1) > 0
        n = int(known.sum())
        if n < config.min_calibration_items:
            rows.append({"type": attr_type, "threshold": 1.01, "precision": None, "coverage": 0.0, "calibration_items": n})
            continue
        p = probs[known][:, cols]
        top, conf = p.argmax(axis=1), p.max(axis=1)
        correct = teacher[known][:, cols][np.arange(n), top] > 0
        order = np.argsort(-conf)
        precision_at = np.cumsum(correct[order]) / np.arange(1, n + 1)
        ok = np.flatnonzero(precision_at >= config.target_precision)
        if len(ok) == 0:
            rows.append({"type": attr_type, "threshold": 1.01, "precision": float(precision_at.max()), "coverage": 0.0, "calibration_items": n})
            continue
        cut = ok.max()
        rows.append({"type": attr_type, "threshold": float(conf[order][cut]), "precision": float(precision_at[cut]),
                     "coverage": float((cut + 1) / n), "calibration_items": n})
    return pd.DataFrame(rows)


def merge_assignments(item_ids: list[str], probs: np.ndarray, teacher: np.ndarray, vocabulary: pd.DataFrame,
                      thresholds: pd.DataFrame, student_types: tuple[str, ...]) -> pd.DataFrame:
    """Long table item_id, type, phrase, confidence, provenance (teacher / student / both)."""
    entry_types = vocabulary["type"].to_numpy()
    phrases = vocabulary["phrase"].to_numpy()
    limit = dict(zip(thresholds["type"], thresholds["threshold"]))
    frames = []
    for attr_type in np.unique(entry_types):
        cols = np.flatnonzero(entry_types == attr_type)
        p = probs[:, cols]
        top = p.argmax(axis=1)
        student = np.zeros_like(p, dtype=bool)
        confident = (p.max(axis=1) >= limit.get(attr_type, 1.01)) & (attr_type in student_types)
        student[np.flatnonzero(confident), top[confident]] = True
        taught = teacher[:, cols] > 0
        rows, cols_hit = np.nonzero(student | taught)
        both = student[rows, cols_hit] & taught[rows, cols_hit]
        only_teacher = taught[rows, cols_hit] & ~student[rows, cols_hit]
        frames.append(pd.DataFrame({
            "item_id": np.asarray(item_ids, dtype=object)[rows], "type": attr_type, "phrase": phrases[cols[cols_hit]],
            "confidence": np.where(taught[rows, cols_hit], np.maximum(teacher[:, cols][rows, cols_hit], p[rows, cols_hit]), p[rows, cols_hit]),
            "provenance": np.where(both, "both", np.where(only_teacher, "teacher", "student")),
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["item_id", "type", "confidence"], ascending=[True, True, False], ignore_index=True)


def ranking_scores(probs: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """One score per item and entry for ranking: the teacher's phrases first (1 + confidence),
    then the student's probabilities. A guess never outranks what the text says."""
    return np.where(teacher > 0, 1.0 + teacher, probs)
