"""Group-fairness statistics over generated images, defined once: group distribution per
prompt, statistical parity distance (L2 to uniform), normalised entropy and the no-read share
(the collapse guard), with bootstrap intervals that resample prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.fairness.color_reader import NO_READ


def group_distribution(groups: list[str] | np.ndarray, names: list[str]) -> np.ndarray:
    """Share of each named group among the images that were read (no-reads left out). A label
    that is neither a group nor a no-read is an error: counted nowhere, it would shrink every share."""
    groups = np.asarray(groups, dtype=object)
    unknown = set(groups.tolist()) - set(names) - {NO_READ}
    if unknown:
        raise ValueError(f"group labels {sorted(map(str, unknown))} are not among the groups {list(names)} (or {NO_READ!r})")
    read = groups[groups != NO_READ]
    if len(read) == 0:
        return np.full(len(names), np.nan)
    return np.array([(read == n).sum() for n in names], np.float64) / len(read)


def parity_distance(distribution: np.ndarray) -> float:
    """L2 distance between a group distribution and the uniform one: 0 is parity, sqrt(1 - 1/K) is
    every image in one group."""
    return float(np.linalg.norm(distribution - 1.0 / len(distribution)))


def parity_floor(groups: int, n: int) -> float:
    """The parity distance an exactly uniform generator still shows on n images of `groups` groups
    (the root of its squared distance's expectation, (1 - 1/K) / n): 0.083 for 128 images of 8."""
    return float(np.sqrt((1 - 1 / groups) / n))


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
    each group, parity distance, normalised entropy, the no-read share, the image count and the
    count of images read."""
    rows = []
    for prompt, frame in reads.groupby("prompt", sort=True):
        dist = group_distribution(frame["group"].to_numpy(), names)
        no_read = float((frame["group"] == NO_READ).mean())
        read = int((frame["group"] != NO_READ).sum())
        rows.append({"prompt": prompt, "images": len(frame), "reads": read, "no_read": no_read,
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


def comparable_prompts(base: pd.DataFrame, rl: pd.DataFrame, min_reads: int = 2) -> list[str]:
    """The prompts both models' images were read for at least `min_reads` times (two: the debiased
    distance needs them), in order. Two models' parity must be averaged over the same prompts:
    a prompt left out of one model's mean only, because none of its images were read, would let a
    model look fairer by making its hardest prompts unreadable."""
    reads = base.set_index("prompt")["reads"].to_frame("base").join(rl.set_index("prompt")["reads"].rename("rl"), how="inner")
    return sorted(reads.index[(reads["base"] >= min_reads) & (reads["rl"] >= min_reads)])


def parity_summary(table: pd.DataFrame, seed: int = 0, prompts: list[str] | None = None) -> dict[str, float]:
    """Means over prompts with bootstrap intervals, from `per_prompt_parity`. `prompts`
    (comparable_prompts): the prompts the distances and entropy are averaged over; the no-read
    share is always over every prompt, since an unread prompt is what the collapse guard counts."""
    measured = table if prompts is None else table.set_index("prompt").loc[prompts].reset_index()
    out: dict[str, float] = {}
    for column in ("parity_distance", "parity_distance_debiased", "entropy", "no_read"):
        values = (table if column == "no_read" else measured)[column].to_numpy(np.float64)
        low, high = bootstrap_mean(values, seed=seed)
        out.update({column: float(np.nanmean(values)) if (~np.isnan(values)).any() else float("nan"), f"{column}_ci_low": low, f"{column}_ci_high": high})
    return out


def parity_ratio_interval(base: np.ndarray, rl: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(RL parity) / mean(base parity) over the same prompts (aligned arrays),
    resampling prompts jointly."""
    base, rl = np.asarray(base, np.float64), np.asarray(rl, np.float64)
    if len(base) != len(rl) or np.isnan(base).any() or np.isnan(rl).any():
        raise ValueError("parity_ratio_interval needs both models' distances on the same prompts, none missing (comparable_prompts)")
    if len(base) == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(base), (n, len(base)))
    ratios = rl[idx].mean(axis=1) / np.maximum(base[idx].mean(axis=1), 1e-12)
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def compare_parity(base: pd.DataFrame, rl: pd.DataFrame, groups: int, images_per_prompt: int) -> tuple[dict[str, float], list[str]]:
    """Base against RL from their `per_prompt_parity` tables: both summaries over the prompts both
    read (`comparable_prompts`), the RL/base ratio of mean parity with its bootstrap interval, the
    cut with the n-image sampling bias taken out, and the floor a fair model would still show.
    Keys say `parity` for the distance; returns (figures, prompts left out)."""
    measured = comparable_prompts(base, rl)
    left_out = sorted(set(base["prompt"]) - set(measured))
    summaries = {"base": parity_summary(base, prompts=measured), "rl": parity_summary(rl, prompts=measured)}
    base_d, rl_d = (t.set_index("prompt").loc[measured, "parity_distance"].to_numpy() for t in (base, rl))
    ratio_low, ratio_high = parity_ratio_interval(base_d, rl_d)
    ratio = float(rl_d.mean() / max(base_d.mean(), 1e-12)) if measured else float("nan")
    figures = {"prompts": int(base["prompt"].nunique()), "parity_prompts": len(measured), "parity_prompts_left_out": len(left_out),
               **{f"{k}_{name}": v for name, s in summaries.items() for k, v in s.items()},
               "parity_ratio": ratio, "parity_ratio_ci_low": ratio_low, "parity_ratio_ci_high": ratio_high,
               "parity_reduction": 1 - ratio,
               "parity_reduction_debiased": 1 - summaries["rl"]["parity_distance_debiased"] / max(summaries["base"]["parity_distance_debiased"], 1e-12),
               "parity_floor": parity_floor(groups, images_per_prompt)}
    return {k.replace("parity_distance", "parity"): v for k, v in figures.items()}, left_out
