"""Paired preference evaluation of two generators: the same prompt and seed through both, one
judge score per image, win = the candidate's image scores higher, ties counted half. The judge
must be independent of every training reward, or the win-rate only measures reward hacking."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
import torch

from ml.fairness.parity import bootstrap_mean


class Judge(Protocol):
    name: str

    def score(self, images: torch.Tensor, prompts: pd.DataFrame) -> np.ndarray:
        """images B x 3 x H x W in [0, 1]; prompts: one row per image (columns category, color)."""
        ...


class CatalogJudge:
    """The demo's judge of prompt fidelity: the probability the category classifier (trained on
    real catalog photos) gives the prompted category, plus 1 when the analytic colour reader
    finds the prompted colour (prompts that name no colour get the category term alone)."""

    name = "catalog-judge: category CNN on real catalog images + analytic colour reader"
    part_names = ("category", "colour")

    def __init__(self, category_judge, color_reader):
        self.category_judge, self.color_reader = category_judge, color_reader

    def score(self, images: torch.Tensor, prompts: pd.DataFrame) -> np.ndarray:
        category, color = self.parts(images, prompts)
        return category + color

    def parts(self, images: torch.Tensor, prompts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The score's two terms: the prompted category's probability, and 1 where the prompted colour is read."""
        from ml.diffusion.sampling import images_to_uint8

        probabilities = self.category_judge.probabilities(images * 2 - 1).numpy()
        index = np.array([self.category_judge.index.get(c, -1) for c in prompts["category"]])
        if (index < 0).any():
            unknown = sorted(set(np.asarray(prompts["category"])[index < 0]))
            raise ValueError(f"the judge knows no category {unknown}; it was trained on {self.category_judge.classes}")
        category = probabilities[np.arange(len(index)), index]
        named = prompts["color"].notna().to_numpy()
        read = np.asarray(self.color_reader.read(images_to_uint8(images)), dtype=object)
        color = np.where(named, read == prompts["color"].to_numpy(dtype=object), 0).astype(np.float64)
        return category, color


class RewardJudge:
    """A production judge from a preference reward model (e.g. ImageReward, PickScore), which must
    not be among the rewards the candidate was trained on."""

    def __init__(self, reward, name: str):
        self.reward, self.name = reward, name

    def score(self, images: torch.Tensor, prompts: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.reward(images, list(prompts["prompt"]), [{}] * len(prompts)), np.float64)


def judge_scores(judge: Judge, images: torch.Tensor, prompts: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(score per image, each of the score's terms) where the judge is a sum of named terms
    (`part_names` and `parts`, as CatalogJudge), else (score, {}): a lost pair then says whether
    the candidate lost the prompt's colour (a whole point) or a little category probability."""
    if not hasattr(judge, "parts"):
        return np.asarray(judge.score(images, prompts), np.float64), {}
    parts = {name: np.asarray(term, np.float64) for name, term in zip(judge.part_names, judge.parts(images, prompts))}
    return sum(parts.values()), parts


EXACT_TIE = 1e-6  # score differences up to this are float noise: a tie in the strict count


def paired_wins(candidate: np.ndarray, baseline: np.ndarray, tie_tolerance: float = EXACT_TIE) -> np.ndarray:
    """1 where the candidate's image scores higher, 0 where lower, 0.5 for a tie. A missing score
    (NaN) is an error: it would otherwise count as a loss."""
    diff = np.asarray(candidate, np.float64) - np.asarray(baseline, np.float64)
    if np.isnan(diff).any():
        raise ValueError(f"{int(np.isnan(diff).sum())} of {len(diff)} pairs have no judge score (NaN): fix the judge before counting wins")
    return np.where(np.abs(diff) <= tie_tolerance, 0.5, (diff > 0).astype(np.float64))


def judge_resolution(judge: Judge, images: torch.Tensor, prompts: pd.DataFrame, scores: np.ndarray | None = None) -> float:
    """The median change of the judge's score when each image moves by one pixel (edges
    repeated), each of the four ways: a change no viewer would see. A pair of images whose
    scores differ by less is one the judge cannot tell apart from such a change. `scores`: the
    images' own scores, when the caller has them already."""
    scores = np.asarray(judge.score(images, prompts) if scores is None else scores, np.float64)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate")
    height, width = images.shape[-2:]
    changes = [np.abs(np.asarray(judge.score(padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width], prompts), np.float64) - scores)
               for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    return float(np.median(np.concatenate(changes)))


def win_rate_report(prompts: pd.DataFrame, candidate: np.ndarray, baseline: np.ndarray, seed: int = 0,
                    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, tie_tolerance: float = EXACT_TIE) -> tuple[dict, pd.DataFrame]:
    """Win-rate with a bootstrap 95% interval that resamples prompts (a prompt's seeds stay
    together), and the per-prompt breakdown. `parts`: the judge's terms as {name: (candidate,
    baseline)} (judge_scores), reported as means next to the scores. `tie_tolerance`: score
    differences up to it count as ties (judge_resolution)."""
    terms = {f"{name}_{side}": values[i] for name, values in (parts or {}).items() for i, side in enumerate(("candidate", "baseline"))}
    table = prompts.assign(candidate=candidate, baseline=baseline, win=paired_wins(candidate, baseline, tie_tolerance), **terms)
    per_prompt = (table.groupby("prompt", sort=True)
                  .agg(suite=("suite", "first"), images=("win", "size"), win_rate=("win", "mean"), ties=("win", lambda w: float((w == 0.5).mean())),
                       candidate_score=("candidate", "mean"), baseline_score=("baseline", "mean"), **{k: (k, "mean") for k in terms})
                  .reset_index())
    low, high = bootstrap_mean(per_prompt["win_rate"].to_numpy(), seed=seed)
    figures = {"win_rate": float(per_prompt["win_rate"].mean()), "win_rate_ci_low": low, "win_rate_ci_high": high,
               "tie_share": float((table["win"] == 0.5).mean()), "pairs": len(table), "prompts": len(per_prompt),
               "candidate_score": float(table["candidate"].mean()), "baseline_score": float(table["baseline"].mean()),
               **{f"{k}_score": float(table[k].mean()) for k in terms}}
    return figures, per_prompt


def win_rate_beyond_resolution(judge: Judge, prompts: pd.DataFrame, candidate_images: torch.Tensor, baseline_images: torch.Tensor,
                               candidate: np.ndarray, baseline: np.ndarray) -> tuple[float, dict, pd.DataFrame]:
    """(the judge's resolution over both models' images, win_rate_report with differences under
    it counted as ties): reported beside the strict count, which every difference decides."""
    resolution = judge_resolution(judge, torch.cat([baseline_images, candidate_images]), pd.concat([prompts, prompts], ignore_index=True),
                                  scores=np.concatenate([baseline, candidate]))
    return (resolution, *win_rate_report(prompts, candidate, baseline, tie_tolerance=resolution))
