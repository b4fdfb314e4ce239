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


def test_an_alias_names_only_a_version_whose_last_verdict_it_is(tmp_path: Path):
    """Against a real SQLite registry: a failing version never takes `champion` from another,
    but a champion that fails a re-evaluation loses it, and a challenger that passes stops being
    the challenger."""
    from ml.tracking.registry import alias_version, record_verdict, register_folder, registry_client, unevaluated_versions

    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "artifacts"), experiment="t")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("w")
    client = registry_client(config.tracking_uri)
    assert unevaluated_versions(client, "g") == [] and alias_version(client, "g", "champion") is None
    with tracked_run(config, "rl") as run:
        one, two = (register_folder(run, tmp_path / "model", f"generator{i}", "g", tags={"kind": "rl", "snapshot": "s"}) for i in (1, 2))
    assert [v["version"] for v in unevaluated_versions(client, "g")] == [one, two]
    assert record_verdict(client, "g", one, True, {"eval.win_rate": 0.9}) == "champion"
    assert record_verdict(client, "g", two, False, {}) == "challenger"
    assert (alias_version(client, "g", "champion"), alias_version(client, "g", "challenger")) == (one, two)
    assert unevaluated_versions(client, "g") == []
    assert client.get_model_version("g", one).tags["eval.win_rate"] == "0.9"
    record_verdict(client, "g", two, True, {})  # the challenger passes a re-evaluation
    assert (alias_version(client, "g", "champion"), alias_version(client, "g", "challenger")) == (two, None)
    record_verdict(client, "g", two, False, {})  # and then fails one: no version is champion
    assert (alias_version(client, "g", "champion"), alias_version(client, "g", "challenger")) == (None, two)
    assert client.get_model_version("g", two).tags["verdict"] == "challenger"
