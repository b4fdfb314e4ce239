"""The MLflow model registry for folders saved in their library's own format (safetensors):
log the folder as run artifacts, register a version pointing at it, move aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.tracking.runs import TrackedRun


def register_folder(run: TrackedRun, folder: str | Path, artifact_path: str, model_name: str,
                    alias: str | None = None, tags: dict[str, Any] | None = None, description: str = "") -> str:
    """Log `folder` under the run and register it as a new version of `model_name`; returns the version."""
    from mlflow.exceptions import MlflowException

    client = run.client
    client.log_artifacts(run.run_id, str(folder), artifact_path)
    try:
        client.create_registered_model(model_name, description=description or None)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    version = client.create_model_version(model_name, source=f"runs:/{run.run_id}/{artifact_path}", run_id=run.run_id,
                                          tags={k: str(v) for k, v in (tags or {}).items()})
    if alias:
        client.set_registered_model_alias(model_name, alias, version.version)
    return str(version.version)


def registry_client(tracking_uri: str):
    """An MlflowClient whose registry is the tracking store (SQLite by default); mlflow's default
    registry URI is process-wide and may point elsewhere."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def download_model(model_uri: str, tracking_uri: str, dst: str | Path) -> Path:
    """`models:/name@alias` or `models:/name/version` -> a local folder, resolved with an explicit
    client (mlflow's fluent download reads the process-wide registry URI instead)."""
    if not model_uri.startswith("models:/"):
        raise ValueError(f"{model_uri!r}: expected models:/name@alias or models:/name/version")
    name, _, ref = model_uri.removeprefix("models:/").partition("@")
    client = registry_client(tracking_uri)
    if ref:
        version = client.get_model_version_by_alias(name, ref)
    else:
        name, _, number = name.partition("/")
        version = client.get_model_version(name, number)
    run_id, _, path = version.source.removeprefix("runs:/").partition("/")
    Path(dst).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def record_verdict(client, model_name: str, version: str, passed: bool, tags: dict[str, Any]) -> str:
    """Tag the version with its evaluation figures and point `champion` (all checks passed) or
    `challenger` (any failed) at it; returns the alias set. A failing version never moves
    `champion` off another version, so whatever served before keeps serving; but a version that
    fails a re-evaluation (new bars, a new judge) stops being champion itself, and one that passes
    stops being the challenger: an alias only ever names a version whose last verdict it is."""
    alias, other = ("champion", "challenger") if passed else ("challenger", "champion")
    for key, value in {**tags, "evaluated": "true", "verdict": alias}.items():
        client.set_model_version_tag(model_name, str(version), key, str(value))
    client.set_registered_model_alias(model_name, alias, str(version))
    if alias_version(client, model_name, other) == str(version):
        client.delete_registered_model_alias(model_name, other)
    return alias


def alias_version(client, model_name: str, alias: str) -> str | None:
    """The version `alias` names, or None where it names none (any other registry error raises)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def unevaluated_versions(client, model_name: str, kind: str = "rl") -> list[dict]:
    """Registered versions of `kind` with no verdict yet, oldest first: what the registry sensor
    hands to the evaluation job."""
    versions = client.search_model_versions(f"name = '{model_name}'")  # none yet: [], a store error raises
    out = [{"version": str(v.version), "snapshot": v.tags.get("snapshot"), "run_id": v.run_id} for v in versions
           if v.tags.get("kind") == kind and v.tags.get("evaluated") != "true"]
    return sorted(out, key=lambda v: int(v["version"]))
