"""MLflow runs through an explicit client: no process-global tracking URI is changed."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class TrackingConfig(BaseModel):
    tracking_uri: str
    artifact_root: str | None = None  # where new experiments keep artifacts; None: MLflow's default
    experiment: str = "shopwindow-demo"
    ui_url: str = "http://127.0.0.1:5000"


def model_version_url(ui_url: str, model_name: str, version: str) -> str:
    """The registry page of one model version in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/models/{model_name}/versions/{version}"


@dataclass
class TrackedRun:
    client: Any  # mlflow.MlflowClient
    run_id: str
    experiment_id: str
    ui_url: str

    @property
    def url(self) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit of params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """One batched write: per-key writes cost the RL loop ~0.1 s an iteration on SQLite."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step or 0) for key, value in metrics.items() if value is not None]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, str(value)) for key, value in tags.items()]
        for start in range(0, len(items), 100):  # MLflow's limit of tags per batch
            self.client.log_batch(self.run_id, tags=items[start:start + 100])

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)


def experiment_id(client: Any, config: TrackingConfig) -> str:
    found = client.get_experiment_by_name(config.experiment)
    if found is not None:
        return found.experiment_id
    location = None
    if config.artifact_root:
        location = config.artifact_root.rstrip("/") + "/" + config.experiment
    return client.create_experiment(config.experiment, artifact_location=location)


@contextmanager
def tracked_run(config: TrackingConfig, run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, or FAILED if the body raises."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)  # the registry the gate and sensor read
    exp_id = experiment_id(client, config)
    run = client.create_run(exp_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()})
    tracked = TrackedRun(client, run.info.run_id, exp_id, config.ui_url)
    try:
        yield tracked
    except BaseException:
        client.set_terminated(tracked.run_id, status="FAILED")
        raise
    client.set_terminated(tracked.run_id, status="FINISHED")
