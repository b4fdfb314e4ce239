"""The collection report across query-log sizes: for each size the baseline is rebuilt from a
log of that size and compared with the same content-first pages; plus the chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.tracking.plots import plt, save_figure


def plot_report(sweep: pd.DataFrame, headline_size: int, path: str | Path) -> Path:
    """Pages and P@10 for both approaches against the log size (log scale)."""
    fig, (pages, precision) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = sweep["log_queries"]
    pages.plot(x, sweep["pages"], marker="o", label="content-first")
    pages.plot(x, sweep["baseline_pages"], marker="o", label="search-log baseline")
    pages.set(xscale="log", xlabel="queries in the log", ylabel="published pages", title="topic coverage")
    for xi, r in zip(x, sweep["topic_coverage_ratio"]):
        pages.annotate(f"{r:.1f}x", (xi, sweep.loc[x == xi, "baseline_pages"].iloc[0]), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    pages.axvline(headline_size, color="grey", linestyle=":", label=f"headline ({headline_size:,})")
    pages.legend(fontsize=8)
    precision.plot(x, sweep["precision_at_10"], marker="o", label="content-first")
    precision.plot(x, sweep["baseline_precision_at_10"], marker="o", label="search-log baseline")
    precision.set(xscale="log", xlabel="queries in the log", ylabel="P@10", title="collection precision", ylim=(0.5, 1.01))
    precision.legend(fontsize=8)
    return save_figure(fig, path)
