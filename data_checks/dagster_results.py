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
    """`unexpected_count` sums the check's expectations (item_ids_unique: missing ids and
    duplicated ones); each expectation's own evidence is under `expectations`."""
    metadata = {
        "expectations": MetadataValue.json(outcome.expectations),
        "validator": "great_expectations",
    }
    counted = [e for e in outcome.expectations if e.get("unexpected_count") is not None]
    if counted:
        metadata["unexpected_count"] = sum(int(e["unexpected_count"]) for e in counted)
    elements = [int(e["element_count"]) for e in outcome.expectations if e.get("element_count") is not None]
    if elements:
        metadata["element_count"] = max(elements)
    if len(counted) == 1 and counted[0].get("unexpected_percent") is not None:  # GX's own share (of non-null values)
        metadata["unexpected_percent"] = float(counted[0]["unexpected_percent"])
    return AssetCheckResult(
        check_name=outcome.check.name,
        asset_key=AssetKey(asset),
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.check.severity == "ERROR" else AssetCheckSeverity.WARN,
        description=outcome.check.description,
        metadata=metadata,
    )
