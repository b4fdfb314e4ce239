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
