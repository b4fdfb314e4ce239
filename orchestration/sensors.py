"""Sensors: each new catalog file in <home>/inbox becomes a partition and a run; each new RL
generator version in the MLflow registry becomes an evaluation run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dagster import DagsterRunStatus, DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, sensor

from assets.partitions import catalog_partitions
from ml.catalog.contract import SUPPORTED_FORMATS
from ml.catalog.snapshots import register_snapshot
from ml.tracking.summary import update_summary
from orchestration.jobs import evaluation_job, pipeline_job
from orchestration.resources import GenerationResource, MLflowResource, StorageResource

SETTLE_SECONDS = 5.0  # a file still being written is left for the next tick


def _fingerprint(stat) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


@sensor(job=pipeline_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Each new or changed catalog file in <home>/inbox becomes a catalog partition and a pipeline run; "
                    "unreadable files are listed in reports/inbox_rejected.json")
def catalog_inbox_sensor(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult:
    """Cursor: file name -> size:mtime already handled, so each version of a file runs once."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    inbox = Path(storage.inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    requests, new_keys, rejected = [], [], []
    now = time.time()
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away since the listing: nothing to register
            continue
        fingerprint = _fingerprint(stat)
        if seen.get(path.name) == fingerprint or now - stat.st_mtime < SETTLE_SECONDS:
            continue
        seen[path.name] = fingerprint
        if path.suffix.lower() not in SUPPORTED_FORMATS:
            rejected.append({"file": path.name, "error": f"unsupported format {path.suffix or '(none)'}; use {', '.join(sorted(SUPPORTED_FORMATS))}"})
            continue
        try:
            record = register_snapshot(str(path), storage.snapshot_registry)
        except Exception as exc:  # one bad file must not stop the sensor
            rejected.append({"file": path.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        new_keys.append(record.snapshot_id)
        requests.append(RunRequest(run_key=record.snapshot_id, partition_key=record.snapshot_id,
                                   tags={"shopwindow/source": str(path)}))
    for entry in rejected:
        context.log.warning(f"inbox: {entry['file']} rejected: {entry['error']}")
    if rejected:
        report = Path(storage.home) / "reports" / "inbox_rejected.json"
        update_summary(report, {e["file"]: {"error": e["error"], "at": int(now)} for e in rejected})
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[catalog_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(seen, sort_keys=True),
        skip_reason=None if requests else f"no new catalog files in {inbox}" + (f" ({len(rejected)} rejected)" if rejected else ""),
    )


@sensor(job=evaluation_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Each new RL generator version in the MLflow registry gets one evaluation run (bias report, preference, "
                    "registry gate); a failed one is named in the tick's skip reason, to re-execute from the UI")
def generator_registry_sensor(context: SensorEvaluationContext, mlflow: MLflowResource, generation: GenerationResource) -> SensorResult:
    """A new RL version of the generator in the MLflow registry (from the pipeline, a resumed run or
    `accelerate launch`) gets an evaluation run, once. Versions whose Dagster run is still going
    are left alone: that run evaluates them itself."""
    from assets.evaluation import CANDIDATE_TAG
    from ml.tracking.registry import registry_client, unevaluated_versions

    client = registry_client(mlflow.tracking_uri)
    requested = set(json.loads(context.cursor)) if context.cursor else set()
    partitions = set(catalog_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    requests, waiting, failed = [], [], []
    for version in unevaluated_versions(client, generation.registered_name):
        if version["version"] in requested:
            last = context.instance.get_runs(filters=RunsFilter(tags={CANDIDATE_TAG: version["version"]}), limit=1)
            if last and last[0].status == DagsterRunStatus.FAILURE:
                failed.append(f"v{version['version']} (run {last[0].run_id[:8]} failed; re-execute it)")
            continue
        if version["snapshot"] not in partitions:
            context.log.warning(f"{generation.registered_name} v{version['version']}: snapshot {version['snapshot']!r} is not a catalog partition; not evaluated")
            requested.add(version["version"])
            continue
        run_id = client.get_run(version["run_id"]).data.tags.get("dagster_run_id") if version["run_id"] else None
        dagster_run = context.instance.get_run_by_id(run_id) if run_id else None
        if dagster_run is not None and not dagster_run.is_finished:
            waiting.append(version["version"])
            continue
        requested.add(version["version"])
        requests.append(RunRequest(run_key=f"{generation.registered_name}-v{version['version']}", partition_key=version["snapshot"],
                                   tags={CANDIDATE_TAG: version["version"]}))
    return SensorResult(run_requests=requests, cursor=json.dumps(sorted(requested, key=int)),
                        skip_reason=None if requests else "no new generator version to evaluate" + (f" (v{', v'.join(waiting)} still in their run)" if waiting else "")
                        + (f"; evaluation failed for {', '.join(failed)}" if failed else ""))
