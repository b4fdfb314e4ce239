"""Group-fairness statistics over generated images, defined once: group distribution per
prompt, statistical parity distance (L2 to uniform), normalised entropy and the no-read share
(the collapse guard), with bootstrap intervals that resample prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.fairness.color_reader import NO_READ


def group_distribution(groups: list[str] | np.ndarray, names: list[str]) -> np.ndarray:
    """Share of each named group among the images that were read (no-reads left out)."""
    groups = np.asarray(groups, dtype=object)
    read = groups[groups != NO_READ]
    if len(read) == 0:
        return np.full(len(names), np.nan)
    return np.array([(read == n).sum() for n in names], np.float64) / len(read)


def parity_distance(distribution: np.ndarray) -> float:
    """L2 distance between a group distribution and the uniform one: 0 is parity, sqrt(1 - 1/K) is
    every image in one group."""
    return float(np.linalg.norm(distribution - 1.0 / len(distribution)))


def parity_distance_debiased(distribution: np.ndarray, n: int) -> float:
    """The parity distance with the sampling bias of its square taken out: measured on n images,
    the squared distance overstates the model's by (1 - sum of squared shares) / n, which weighs
    most on a near-even mix (n = 128, 8 groups: an exactly even model still reads ~0.08). Unbiased
    for the square ((n * sum p^2 - 1) / (n - 1) - 1/K), then its root, floored at 0."""
    if n < 2:
        return float("nan")
    square = (n * float(np.sum(distribution**2)) - 1) / (n - 1) - 1.0 / len(distribution)
    return float(np.sqrt(max(square, 0.0)))


def normalised_entropy(distribution: np.ndarray) -> float:
    """Shannon entropy over log K: 1 is uniform, 0 is one group."""
    p = distribution[distribution > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(distribution))) if len(distribution) > 1 else 0.0


def per_prompt_parity(reads: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """`reads`: one row per image with columns prompt and group. One row per prompt: the share of
    each group, parity distance, normalised entropy, the no-read share and the image count."""
    rows = []
    for prompt, frame in reads.groupby("prompt", sort=True):
        dist = group_distribution(frame["group"].to_numpy(), names)
        no_read = float((frame["group"] == NO_READ).mean())
        read = int((frame["group"] != NO_READ).sum())
        rows.append({"prompt": prompt, "images": len(frame), "no_read": no_read,
                     "parity_distance": parity_distance(dist) if not np.isnan(dist).any() else np.nan,
                     "parity_distance_debiased": parity_distance_debiased(dist, read) if not np.isnan(dist).any() else np.nan,
                     "entropy": normalised_entropy(dist) if not np.isnan(dist).any() else np.nan,
                     **{f"share.{n}": float(s) for n, s in zip(names, dist)}})
    return pd.DataFrame(rows)


def bootstrap_mean(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling the values (prompts) with replacement."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    draws = values[np.random.default_rng(seed).integers(0, len(values), (n, len(values)))].mean(axis=1)
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def bootstrap_gain(before: np.ndarray, after: np.ndarray, prompts) -> tuple[float, float]:
    """95% interval of mean(after - before) over paired samples, resampling prompts (a prompt's
    samples stay together: the parity reward is defined over a prompt's group)."""
    before, after, prompts = np.asarray(before, np.float64), np.asarray(after, np.float64), np.asarray(prompts, dtype=object)
    return bootstrap_mean(np.array([(after[prompts == p] - before[prompts == p]).mean() for p in np.unique(prompts)]))


def parity_summary(table: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Means over prompts with bootstrap intervals, from `per_prompt_parity`."""
    out: dict[str, float] = {}
    for column in ("parity_distance", "parity_distance_debiased", "entropy", "no_read"):
        low, high = bootstrap_mean(table[column].to_numpy(), seed=seed)
        out.update({column: float(table[column].mean()), f"{column}_ci_low": low, f"{column}_ci_high": high})
    return out
