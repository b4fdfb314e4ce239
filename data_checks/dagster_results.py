"""Turn suite outcomes into Dagster AssetCheckResults, with the evidence as metadata."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from data_checks.catalog_suite import CATALOG_CHECKS, CheckOutcome


def catalog_check_specs(asset: str, partitions_def=None, additional_deps: tuple[str, ...] = ()) -> list[AssetCheckSpec]:
    """Blocking for ERROR checks, so a broken catalog stops the run before anything reads it."""
    return [
        AssetCheckSpec(c.name, asset=asset, description=f"{c.description} ({c.severity})",
                       blocking=c.severity == "ERROR", partitions_def=partitions_def, additional_deps=list(additional_deps))
        for c in CATALOG_CHECKS
    ]


def to_check_result(outcome: CheckOutcome, asset: str) -> AssetCheckResult:
    first = outcome.expectations[0] if outcome.expectations else {}
    metadata = {
        "expectations": MetadataValue.json(outcome.expectations),
        "validator": "great_expectations",
    }
    for key in ("unexpected_count", "unexpected_percent", "element_count"):
        if key in first and first[key] is not None:
            metadata[key] = float(first[key]) if key == "unexpected_percent" else int(first[key])
    return AssetCheckResult(
        check_name=outcome.check.name,
        asset_key=AssetKey(asset),
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.check.severity == "ERROR" else AssetCheckSeverity.WARN,
        description=outcome.check.description,
        metadata=metadata,
    )
