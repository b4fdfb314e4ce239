"""Run the graph from Python (the CLI, tests): register a file, add its partition, run the job
in-process against the real instance so it shows in the Dagster UI like any other run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, Definitions

from assets.partitions import catalog_partitions
from ml.catalog.snapshots import register_snapshot
from orchestration.io_managers import AssetManifest


@dataclass
class IngestOutcome:
    snapshot: str
    success: bool
    dagster_run_id: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        f = self.figures
        return {"snapshot": self.snapshot, "success": self.success, "items": f.get("items"),
                "quarantined": f.get("quarantined"), "reasons": f.get("reasons", {}), "rows": f.get("rows"),
                "items_per_s": f.get("items_per_s"), "checks": self.checks, "dagster_run_id": self.dagster_run_id,
                "error": self.error}


QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def ingest_file(defs: Definitions, instance: DagsterInstance, path: str, job: str = "catalog_job") -> IngestOutcome:
    """Register `path` as a snapshot and run `job` (catalog_job, or pipeline_job for everything) on it."""
    storage = defs.resources["storage"]
    record = register_snapshot(path, storage.snapshot_registry)
    key = record.snapshot_id
    if not instance.has_dynamic_partition(catalog_partitions.name, key):
        instance.add_dynamic_partitions(catalog_partitions.name, [key])
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET, tags={"shopwindow/source": record.source_uri}
    )
    outcome = IngestOutcome(snapshot=key, success=result.success, dagster_run_id=result.run_id)
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks[evaluation.check_name] = evaluation.passed
    if result.success or result.is_node_success("catalog_ingestion"):
        items: AssetManifest = result.output_for_node("catalog_ingestion", "catalog_items")
        outcome.figures = items.figures
    failures = [e for e in result.all_events if e.is_step_failure]
    if failures:
        error = failures[0].step_failure_data.error
        while error.cause is not None:  # the user's error, not Dagster's wrapper
            error = error.cause
        outcome.error = error.message.strip()
    return outcome
