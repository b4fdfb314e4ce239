"""Charts people would rather look at than read; PNG files logged to MLflow and linked in Dagster."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write as PNG (creating the folder) and close."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(history: list[dict], path: str | Path, title: str) -> Path:
    """Held-out losses and retrieval recall against training step."""
    fig, (losses, recall) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [h["step"] for h in history]
    for key in sorted(k for k in (history[0] if history else {}) if k.startswith("val_") and k.endswith("_loss")):
        losses.plot(steps, [h[key] for h in history], marker="o", label=key.removeprefix("val_").removesuffix("_loss"))
    losses.set(title="held-out loss", xlabel="step")
    losses.legend(fontsize=8)
    for key in sorted(k for k in (history[0] if history else {}) if "recall" in k):
        recall.plot(steps, [h[key] for h in history], marker="o", label=key.removeprefix("val_"))
    recall.set(title="held-out retrieval", xlabel="step", ylim=(0, 1))
    recall.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_image_grid(images, labels: list[str], path: str | Path, title: str, columns: int = 8) -> Path:
    """uint8 N x H x W x 3 images in a grid, each with its label (prompt) underneath."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, label in zip(axes.ravel(), images, labels):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label, fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


AUXILIARY_LOSSES = ("pretrain_loss", "mixture_loss", "pathwise_fidelity_loss", "pathwise_loss", "kl_to_base")


def plot_rl_history(history: list[dict], path: str | Path, title: str) -> Path:
    """Per-reward curves, the PPO ratio / clip-fraction statistics and the auxiliary terms' losses
    (pretraining, distillation, pathwise) against iteration."""
    fig, (rewards, ppo, terms) = plt.subplots(1, 3, figsize=(15, 3.6))
    steps = [h["iteration"] for h in history]
    for key in ["reward"] + sorted(k for k in (history[0] if history else {}) if k.startswith("reward.")):
        rewards.plot(steps, [h.get(key, float("nan")) for h in history], marker=".", label=key)
    rewards.set(title="mean reward per iteration (training samples)", xlabel="iteration")
    rewards.legend(fontsize=7)
    for key in ("clipfrac", "approx_kl"):
        ppo.plot(steps, [h.get(key, float("nan")) for h in history], marker=".", label=key)
    ppo.plot(steps, [abs(h.get("ratio", 1.0) - 1) for h in history], marker=".", label="|mean ratio - 1|")
    ppo.set(title="PPO statistics", xlabel="iteration", yscale="symlog")
    ppo.legend(fontsize=7)
    # a loss that is NaN throughout (a diverged run) has no first value to scale by: left out, not a crash
    auxiliary = [k for k in AUXILIARY_LOSSES if any(np.isfinite(v) and v != 0 for h in history if (v := h.get(k)) is not None)]
    for key in auxiliary:  # scales differ by 100x (distillation ~0.005, pretraining ~0.3): each relative to its first value
        values = np.array([h.get(key, np.nan) for h in history], np.float64)
        first = values[np.flatnonzero(np.isfinite(values) & (values != 0))[0]]
        terms.plot(steps, values / first, marker=".", label=f"{key} (first {first:.3g})")
    terms.set(title="auxiliary losses / their first value" if auxiliary else "no auxiliary loss in this recipe", xlabel="iteration")
    if auxiliary:
        terms.legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_group_shares(base, rl, groups: list[str], path: str | Path, title: str, colors: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """Per prompt, each group's share of the images for base and RL (stacked bars side by side),
    with the parity distance above each bar. `base`, `rl`: per-prompt tables from
    ml.fairness.parity.per_prompt_parity, same prompts in the same order."""
    import numpy as np

    prompts = list(base["prompt"])
    x = np.arange(len(prompts))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(prompts)), 4))
    cmap = plt.get_cmap("tab10")
    for offset, table, label in ((-0.2, base, "base"), (0.2, rl, "RL")):
        bottom = np.zeros(len(prompts))
        for i, g in enumerate(groups):
            share = table[f"share.{g}"].fillna(0).to_numpy()
            color = np.array(colors[g]) / 255 if colors and g in colors else cmap(i % 10)
            ax.bar(x + offset, share, 0.36, bottom=bottom, color=color, edgecolor="0.3", linewidth=0.3, label=g if offset < 0 else None)
            bottom += share
        for xi, d in zip(x + offset, table["parity_distance"]):
            ax.text(xi, 1.02, f"{label}\n{d:.2f}", ha="center", fontsize=6)
    ax.set_xticks(x, [p.removeprefix("a ") for p in prompts], rotation=30, ha="right", fontsize=7)
    ax.set(ylim=(0, 1.15), ylabel="share of readable images", title=title)
    ax.legend(fontsize=6, ncol=min(len(groups), 9), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save_figure(fig, path)


def plot_paired_grid(base_images, rl_images, labels: list[str], path: str | Path, title: str) -> Path:
    """Base (top row of each pair) and RL (bottom row) images from the same prompt and seed."""
    columns = len(labels)
    fig, axes = plt.subplots(2, columns, figsize=(1.3 * columns, 3.0), squeeze=False)
    for col, (b, r, label) in enumerate(zip(base_images, rl_images, labels)):
        for row, image in ((0, b), (1, r)):
            axes[row, col].imshow(image, interpolation="nearest")
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[0, col].set_title(label, fontsize=6)
    axes[0, 0].set_ylabel("base", fontsize=8)
    axes[1, 0].set_ylabel("RL", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_win_rates(per_prompt, bar: float, path: str | Path, title: str) -> Path:
    """Win-rate per prompt, sorted (green above a coin flip, red below), with 0.5 and the gate's bar."""
    ordered = per_prompt.sort_values("win_rate")
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(ordered)), 3.6))
    ax.bar(range(len(ordered)), ordered["win_rate"], color=["tab:green" if w > 0.5 else "tab:red" for w in ordered["win_rate"]])
    for level, style in ((0.5, ":"), (bar, "--")):
        ax.axhline(level, color="0.3", linestyle=style, linewidth=1)
    ax.set_xticks(range(len(ordered)), [p.removeprefix("a ") for p in ordered["prompt"]], rotation=60, ha="right", fontsize=6)
    ax.set(ylim=(0, 1), ylabel="RL win-rate over base", title=title)
    return save_figure(fig, path)
