"""Charts people would rather look at than read; PNG files logged to MLflow and linked in Dagster."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: list[dict], path: str | Path, title: str) -> Path:
    """Held-out losses and retrieval recall against training step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
