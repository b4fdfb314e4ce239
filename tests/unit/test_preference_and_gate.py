"""Paired win-rate (ties half, interval over prompts) and the registry gate's decisions."""

import numpy as np
import pandas as pd
import pytest

from ml.judge.gate import GateThresholds, gate_results
from ml.judge.preference import judge_resolution, paired_wins, win_rate_report


def test_paired_wins_count_ties_half():
    assert paired_wins(np.array([1.0, 0.5, 0.2]), np.array([0.5, 0.5, 0.3])).tolist() == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="no judge score"):
        paired_wins(np.array([1.0, np.nan]), np.array([0.5, 0.5]))


def test_win_rate_report_per_prompt_and_interval():
    rng = np.random.default_rng(0)
    prompts = pd.DataFrame({"prompt": np.repeat([f"p{i}" for i in range(20)], 10), "suite": "titles"})
    baseline = rng.random(200)
    better = baseline + 0.1 * (rng.random(200) < 0.9) - 0.1 * (rng.random(200) < 0.05)
    figures, per_prompt = win_rate_report(prompts, better, baseline)
    assert len(per_prompt) == 20 and per_prompt["images"].eq(10).all()
    assert figures["win_rate"] == pytest.approx(per_prompt["win_rate"].mean())
    assert 0.5 < figures["win_rate_ci_low"] <= figures["win_rate"] <= figures["win_rate_ci_high"] <= 1
    same, _ = win_rate_report(prompts, baseline, baseline)
    assert same["win_rate"] == 0.5 and same["tie_share"] == 1.0
    # by hand: a wins 1 and ties 1 of 2 (0.75), b wins 1 of 3 (1/3); each prompt counts once, not each pair (2.5 / 5)
    two = pd.DataFrame({"prompt": ["a", "a", "b", "b", "b"], "suite": "titles"})
    figures, per_prompt = win_rate_report(two, np.array([1.0, 0.5, 0.0, 0.0, 1.0]), np.array([0.0, 0.5, 1.0, 1.0, 0.0]))
    assert per_prompt.set_index("prompt")["win_rate"].to_dict() == pytest.approx({"a": 0.75, "b": 1 / 3})
    assert figures["win_rate"] == pytest.approx((0.75 + 1 / 3) / 2) and figures["tie_share"] == pytest.approx(0.2)


class _PixelJudge:
    """Scores an image by one pixel inside it: a one-pixel shift in any direction gives it a neighbour's value."""

    name = "one-pixel"

    def score(self, images, prompts):
        return images[:, 0, 3, 3].numpy()


def test_judge_resolution_is_what_a_one_pixel_shift_moves_the_score():
    import torch

    rows, columns = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ramp = ((rows + columns) / 14).expand(2, 3, 8, 8)  # each neighbour is 1/14 away
    prompts = pd.DataFrame({"prompt": ["a", "b"]})
    assert judge_resolution(_PixelJudge(), ramp, prompts) == pytest.approx(1 / 14)
    assert judge_resolution(_PixelJudge(), ramp, prompts, scores=_PixelJudge().score(ramp, prompts)) == pytest.approx(1 / 14)  # scores at hand
    assert judge_resolution(_PixelJudge(), ramp / 2, prompts) == pytest.approx(1 / 28)  # a flatter image, a finer resolution
    assert judge_resolution(_PixelJudge(), torch.full((2, 3, 8, 8), 0.5), prompts) == 0.0


def test_differences_within_the_judges_resolution_count_as_ties():
    prompts = pd.DataFrame({"prompt": np.repeat(["small", "large"], 4), "suite": "titles"})
    baseline = np.zeros(8)
    candidate = np.array([0.01, 0.02, -0.01, 0.03, 0.5, 0.6, 0.4, -0.5])
    strict, _ = win_rate_report(prompts, candidate, baseline)
    tolerant, per_prompt = win_rate_report(prompts, candidate, baseline, tie_tolerance=0.05)
    assert strict["win_rate"] == pytest.approx((0.75 + 0.75) / 2) and strict["tie_share"] == 0
    assert per_prompt.set_index("prompt")["win_rate"].to_dict() == {"small": 0.5, "large": 0.75}
    assert tolerant["tie_share"] == 0.5


def test_gate_passes_only_when_every_criterion_does():
    good = {"win_rate": 0.85, "win_rate_ci_low": 0.7, "parity_base": 0.6, "parity_rl": 0.2, "no_read_base": 0.01, "no_read_rl": 0.02}
    results = gate_results(good, GateThresholds())
    assert all(r["passed"] for r in results.values())
    assert results["parity"]["bar"] == pytest.approx(0.3)
    for key, value in (("win_rate", 0.7), ("win_rate_ci_low", 0.45), ("parity_rl", 0.35), ("no_read_rl", 0.2)):
        failing = gate_results({**good, key: value}, GateThresholds())
        assert [k for k, r in failing.items() if not r["passed"]] == [{"parity_rl": "parity", "no_read_rl": "no_collapse"}.get(key, key)]
    assert gate_results({**good, "win_rate": 0.7}, GateThresholds(min_win_rate=0.6))["win_rate"]["passed"]
