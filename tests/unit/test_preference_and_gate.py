"""Paired win-rate (ties half, interval over prompts) and the registry gate's decisions."""

import numpy as np
import pandas as pd
import pytest

from ml.judge.gate import GateThresholds, gate_results
from ml.judge.preference import paired_wins, win_rate_report


def test_paired_wins_count_ties_half():
    assert paired_wins(np.array([1.0, 0.5, 0.2]), np.array([0.5, 0.5, 0.3])).tolist() == [1.0, 0.5, 0.0]


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


def test_gate_passes_only_when_every_criterion_does():
    good = {"win_rate": 0.85, "win_rate_ci_low": 0.7, "parity_base": 0.6, "parity_rl": 0.2, "no_read_base": 0.01, "no_read_rl": 0.02}
    results = gate_results(good, GateThresholds())
    assert all(r["passed"] for r in results.values())
    assert results["parity"]["bar"] == pytest.approx(0.3)
    for key, value in (("win_rate", 0.7), ("win_rate_ci_low", 0.45), ("parity_rl", 0.35), ("no_read_rl", 0.2)):
        failing = gate_results({**good, key: value}, GateThresholds())
        assert [k for k, r in failing.items() if not r["passed"]] == [{"parity_rl": "parity", "no_read_rl": "no_collapse"}.get(key, key)]
    assert gate_results({**good, "win_rate": 0.7}, GateThresholds(min_win_rate=0.6))["win_rate"]["passed"]
