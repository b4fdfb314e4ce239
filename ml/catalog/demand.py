"""Simulated search demand: a documented, parameterised model of what shoppers type.

A query is a category plus 0-2 modifiers (colour, material, style, season, fit). Within each
attribute type, values are Zipf-popular in the order of their catalog frequency, so demand
is head-heavy: a log of n queries sees the popular combinations many times and the long tail
rarely or never. Phrasing varies (synonyms, word order, filler words), as real logs do.
The model is not tuned to any result; its size and shape are parameters.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ml.catalog.demo_world import GARMENTS, SYNONYMS

MODIFIER_TYPES = ("color", "material", "style", "season", "fit")


class DemandModel(BaseModel):
    n_queries: int = Field(100_000, ge=1)
    zipf_exponent: float = Field(1.1, gt=0, description="value popularity ~ rank^-s within each attribute type")
    modifier_count_probs: tuple[float, float, float] = (0.35, 0.45, 0.20)
    modifier_type_weights: dict[str, float] = {"color": 0.35, "material": 0.2, "style": 0.2, "season": 0.15, "fit": 0.1}
    filler_rate: float = 0.25
    seed: int = 0


def _zipf_by_frequency(values: pd.Series, s: float) -> tuple[list[str], np.ndarray]:
    counts = values.dropna().value_counts()
    counts = counts.iloc[np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))]  # ties by name
    ranks = np.arange(1, len(counts) + 1, dtype=float)
    weights = ranks**-s
    return list(counts.index), weights / weights.sum()


def _phrase(rng: np.random.Generator, category: str, modifiers: list[tuple[str, str]], filler_rate: float) -> str:
    words = [str(rng.choice(SYNONYMS.get(value, (value,)))) for _, value in modifiers]
    if len(words) > 1 and rng.random() < 0.3:
        words.reverse()
    noun = str(rng.choice(SYNONYMS[category]))
    if not noun.endswith("s") and rng.random() < 0.5:
        noun += "es" if noun.endswith(("sh", "ch", "x")) else "s"
    parts = [*words, noun]
    if modifiers and rng.random() < 0.15:  # "dress red", "sneakers leather"
        parts = [noun, *words]
    if rng.random() < filler_rate:
        parts.append(str(rng.choice(("for women", "for men", "sale", "cheap", "new", "online", "best"))))
    return " ".join(parts).lower()


def simulate_search_demand(labels: pd.DataFrame, model: DemandModel) -> pd.DataFrame:
    """Return an aggregated query log: columns query, count (sorted by count, descending)."""
    rng = np.random.default_rng(model.seed)
    categories, category_p = _zipf_by_frequency(labels["category"], model.zipf_exponent)
    values = {t: _zipf_by_frequency(labels[t], model.zipf_exponent) for t in MODIFIER_TYPES}
    n = model.n_queries
    category_idx = rng.choice(len(categories), size=n, p=category_p)
    n_modifiers = rng.choice(3, size=n, p=np.asarray(model.modifier_count_probs) / sum(model.modifier_count_probs))
    type_w = np.array([model.modifier_type_weights[t] for t in MODIFIER_TYPES])
    log: Counter = Counter()
    for category_i, k in zip(category_idx, n_modifiers):
        category = categories[category_i]
        allowed = type_w * np.array([(t != "fit" or category in GARMENTS) and bool(values[t][0]) for t in MODIFIER_TYPES])
        k = min(k, int((allowed > 0).sum()))
        chosen = rng.choice(len(MODIFIER_TYPES), size=k, replace=False, p=allowed / allowed.sum()) if k else []
        modifiers = []
        for t_i in sorted(chosen):
            names, p = values[MODIFIER_TYPES[t_i]]
            modifiers.append((MODIFIER_TYPES[t_i], names[rng.choice(len(names), p=p)]))
        log[_phrase(rng, category, modifiers, model.filler_rate)] += 1
    frame = pd.DataFrame(log.items(), columns=["query", "count"])
    return frame.sort_values(["count", "query"], ascending=[False, True], ignore_index=True)
