"""The catalog's Great Expectations suite, grouped into named checks with a severity each.

Validated in an ephemeral GX context (nothing written to disk), one context per call since a
shared context is not thread-safe. Results are mapped back to checks by expectation `meta`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

Severity = Literal["ERROR", "WARN"]
ITEM_COLUMNS = ["item_id", "title", "image_uri", "image_hash", "price"]


@dataclass(frozen=True)
class CatalogCheck:
    name: str
    severity: Severity
    description: str
    frame: Literal["items", "images"]


CATALOG_CHECKS = (
    CatalogCheck("catalog_schema", "ERROR", "the contract's columns are present", "items"),
    CatalogCheck("catalog_not_empty", "ERROR", "at least one item survived ingestion (a file whose every row was quarantined has none)", "items"),
    CatalogCheck("item_ids_unique", "ERROR", "item_id is present and unique", "items"),
    CatalogCheck("titles_non_empty", "ERROR", "every title has at least one character", "items"),
    CatalogCheck("price_in_range", "WARN", "prices are within [0, max_price]", "items"),
    CatalogCheck("readable_image_share", "WARN", "at least `min_readable_share` of attempted images decode", "images"),
)


@dataclass
class CheckOutcome:
    check: CatalogCheck
    passed: bool
    expectations: list[dict[str, Any]] = field(default_factory=list)


def _expectations(max_price: float, min_readable_share: float) -> dict[str, list]:
    import great_expectations.expectations as gxe

    return {
        "catalog_schema": [gxe.ExpectTableColumnsToMatchSet(column_set=ITEM_COLUMNS, exact_match=False)],
        "catalog_not_empty": [gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=None)],
        "item_ids_unique": [gxe.ExpectColumnValuesToNotBeNull(column="item_id"), gxe.ExpectColumnValuesToBeUnique(column="item_id")],
        "titles_non_empty": [gxe.ExpectColumnValueLengthsToBeBetween(column="title", min_value=1, max_value=None)],
        "price_in_range": [gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=max_price)],
        "readable_image_share": [gxe.ExpectColumnValuesToBeInSet(column="image_readable", value_set=[True], mostly=min_readable_share)],
    }


def _summarise(result: Any) -> dict[str, Any]:
    details = result.result or {}
    summary = {"expectation": result.expectation_config.type, "success": bool(result.success)}
    for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "partial_unexpected_list"):
        if key in details:
            value = details[key]
            summary[key] = value[:10] if isinstance(value, list) else value
    info = result.exception_info or {}
    errors = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("exception_message")]
    if info.get("raised_exception") and info.get("exception_message"):
        errors.append(info["exception_message"])
    if errors:
        summary["errors"] = [str(e)[:300] for e in errors]
    return summary


def validate_catalog(items: pd.DataFrame, image_readable: pd.Series, max_price: float, min_readable_share: float = 0.95) -> list[CheckOutcome]:
    """Run the suite on the items table and the per-row image outcomes; one outcome per check."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("catalog")
    frames = {"items": items, "images": pd.DataFrame({"image_readable": image_readable.astype(bool)})}
    by_check: dict[str, list[dict]] = {c.name: [] for c in CATALOG_CHECKS}
    expectations = _expectations(max_price, min_readable_share)
    for frame_name, frame in frames.items():
        suite = gx.ExpectationSuite(name=f"catalog_{frame_name}")
        for check in (c for c in CATALOG_CHECKS if c.frame == frame_name):
            for expectation in expectations[check.name]:
                suite.add_expectation(expectation.copy(update={"meta": {"check": check.name}, "id": None}))
        batch = source.add_dataframe_asset(frame_name).add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame}
        )
        for result in batch.validate(suite).results:
            by_check[result.expectation_config.meta["check"]].append(_summarise(result))
    return [
        CheckOutcome(check, passed=bool(by_check[check.name]) and all(r["success"] for r in by_check[check.name]),
                     expectations=by_check[check.name])
        for check in CATALOG_CHECKS
    ]
