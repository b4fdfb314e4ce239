"""TrackedRun's batched writes against a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

from ml.tracking.runs import TrackingConfig, tracked_run


def test_batched_metrics_params_and_tags_reach_the_store(tmp_path: Path):
    from mlflow import MlflowClient

    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"), experiment="t")
    tags = {f"tag.{i:03d}": i for i in range(130)}  # more than one batch of 100
    with tracked_run(config, "batched", tags={"stage": "test"}) as run:
        run.log_metrics({"loss": 0.5, "skipped": None}, step=3)
        run.log_params({"lr": 1e-3, "long": "x" * 7000})
        run.set_tags(tags)
    stored = MlflowClient(config.tracking_uri).get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics == {"loss": 0.5}
    history = MlflowClient(config.tracking_uri).get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == [3]
    assert stored.data.params["lr"] == "0.001" and len(stored.data.params["long"]) == 6000
    assert all(stored.data.tags[k] == str(v) for k, v in tags.items())
    assert stored.data.tags["stage"] == "test"


def test_rl_curves_plot_leaves_out_a_loss_that_is_nan_throughout(tmp_path: Path, monkeypatch):
    """The auxiliary-loss panel scales each loss by its first finite value; a diverged (all-NaN)
    loss has none and is left out instead of failing the whole chart."""
    from ml.tracking import plots

    labels = []
    save = plots.save_figure

    def record_labels(fig, path):
        labels.extend(line.get_label() for ax in fig.axes for line in ax.get_lines())
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", record_labels)
    history = [{"iteration": i, "reward": 0.1 * i, "ratio": 1.0, "clipfrac": 0.0, "mixture_loss": 0.01 / i, "pretrain_loss": float("nan")}
               for i in range(1, 6)]
    path = plots.plot_rl_history(history, tmp_path / "curves.png", "run")
    assert path.exists() and path.stat().st_size > 0
    assert any(label.startswith("mixture_loss (first 0.01)") for label in labels)
    assert not any(label.startswith("pretrain_loss") for label in labels)
