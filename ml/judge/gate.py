"""The registry gate for an RL generator: it must be preferred over its base by the held-out
judge, fairer than the base, and must not buy its parity with unreadable images (collapse)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GateThresholds(BaseModel):
    min_win_rate: float = Field(0.80, ge=0, le=1)
    min_win_rate_ci_low: float = Field(0.5, ge=0, le=1, description="the interval's low end must clear a coin flip")
    max_parity_ratio: float = Field(0.5, gt=0, description="RL parity distance <= this share of the base's")
    max_no_read_increase: float = Field(0.05, ge=0, description="no-read share may rise by at most this much (absolute)")


def gate_results(figures: dict, thresholds: GateThresholds) -> dict[str, dict]:
    """One entry per criterion: passed, the measured value and the bar. `figures` holds win_rate,
    win_rate_ci_low, parity_base, parity_rl, no_read_base and no_read_rl."""
    parity_bar = thresholds.max_parity_ratio * figures["parity_base"]
    no_read_bar = figures["no_read_base"] + thresholds.max_no_read_increase
    return {
        "win_rate": {"passed": figures["win_rate"] >= thresholds.min_win_rate, "value": figures["win_rate"], "bar": thresholds.min_win_rate},
        "win_rate_ci_low": {"passed": figures["win_rate_ci_low"] > thresholds.min_win_rate_ci_low, "value": figures["win_rate_ci_low"],
                            "bar": thresholds.min_win_rate_ci_low},
        "parity": {"passed": figures["parity_rl"] <= parity_bar, "value": figures["parity_rl"], "bar": parity_bar},
        "no_collapse": {"passed": figures["no_read_rl"] <= no_read_bar, "value": figures["no_read_rl"], "bar": no_read_bar},
    }
