"""Simulated search demand: a documented, parameterised model of what shoppers type.

A query is a category plus 0-2 modifiers (colour, material, style, season, fit). Within each
attribute type, values are Zipf-popular in the order of their catalog frequency, so demand
is head-heavy: a log of n queries sees the popular combinations many times and the long tail
rarely or never. Phrasing varies (synonyms, word order, filler words), as real logs do.
The model is not tuned to any result; its size and shape are parameters.
"""

from __future__ import annotations

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


FILLERS = ("for women", "for men", "sale", "cheap", "new", "online", "best")


def _pick(u: np.ndarray, sizes) -> np.ndarray:
    """Uniform choices among `sizes` options from uniforms u in [0, 1)."""
    return np.minimum((u * sizes).astype(np.int64), np.asarray(sizes) - 1)


def simulate_search_demand(labels: pd.DataFrame, model: DemandModel) -> pd.DataFrame:
    """Return an aggregated query log: columns query, count (sorted by count, descending).
    Every random choice is drawn for all queries at once (a million queries in seconds; drawn
    one query at a time they took 75 s, most of the demo report's time); only the phrasing is
    assembled per query."""
    rng = np.random.default_rng(model.seed)
    categories, category_p = _zipf_by_frequency(labels["category"], model.zipf_exponent)
    values = {t: _zipf_by_frequency(labels[t], model.zipf_exponent) for t in MODIFIER_TYPES}
    n, types = model.n_queries, len(MODIFIER_TYPES)
    category_idx = rng.choice(len(categories), size=n, p=category_p)
    n_modifiers = rng.choice(3, size=n, p=np.asarray(model.modifier_count_probs) / sum(model.modifier_count_probs))

    # which modifier types: weighted, without replacement (Gumbel top-k draws the same way as one type at a
    # time in proportion to the weights left); "fit" only for garments, and no type without values
    garment = np.array([c in GARMENTS for c in categories])[category_idx]
    weight = np.array([model.modifier_type_weights[t] * bool(values[t][0]) for t in MODIFIER_TYPES])
    allowed = np.tile(weight, (n, 1))
    allowed[~garment, MODIFIER_TYPES.index("fit")] = 0
    k = np.minimum(n_modifiers, (allowed > 0).sum(axis=1))
    keys = np.where(allowed > 0, np.log(np.where(allowed > 0, allowed, 1)) + rng.gumbel(size=(n, types)), -np.inf)
    ranked = np.argsort(-keys, axis=1)
    chosen = np.zeros((n, types), bool)
    for j in range(int(k.max(initial=0))):
        rows = np.flatnonzero(k > j)
        chosen[rows, ranked[rows, j]] = True

    # each type's value (Zipf by catalog frequency) and its synonym, drawn for every query, used where chosen
    value_idx = np.zeros((n, types), np.int64)
    for t_i, t in enumerate(MODIFIER_TYPES):
        names, p = values[t]
        if names:
            value_idx[:, t_i] = np.minimum(np.searchsorted(np.cumsum(p) / p.sum(), rng.random(n), side="right"), len(names) - 1)
    synonyms = [[SYNONYMS.get(v, (v,)) for v in values[t][0]] for t in MODIFIER_TYPES]
    synonym_u = rng.random((n, types))
    synonym_idx = np.zeros((n, types), np.int64)
    for t_i, options in enumerate(synonyms):
        if options:
            synonym_idx[:, t_i] = _pick(synonym_u[:, t_i], np.array([len(o) for o in options])[value_idx[:, t_i]])
    nouns = [SYNONYMS[c] for c in categories]
    noun = _pick(rng.random(n), np.array([len(x) for x in nouns])[category_idx])
    reverse, plural, noun_first, filler = (rng.random((4, n)) < np.array([[0.3], [0.5], [0.15], [model.filler_rate]]))
    filler_word = _pick(rng.random(n), len(FILLERS))

    queries = []
    for i in range(n):
        words = [synonyms[t_i][value_idx[i, t_i]][synonym_idx[i, t_i]] for t_i in np.flatnonzero(chosen[i])]
        if len(words) > 1 and reverse[i]:
            words.reverse()
        name = nouns[category_idx[i]][noun[i]]
        if not name.endswith("s") and plural[i]:
            name += "es" if name.endswith(("sh", "ch", "x")) else "s"
        parts = [name, *words] if words and noun_first[i] else [*words, name]  # "dress red", "sneakers leather"
        if filler[i]:
            parts.append(FILLERS[filler_word[i]])
        queries.append(" ".join(parts).lower())
    frame = pd.Series(queries).value_counts().rename_axis("query").reset_index(name="count")
    return frame.sort_values(["count", "query"], ascending=[False, True], ignore_index=True)
