"""Catalog group: snapshot a catalog file, validate it into items and a quarantine, check it."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    MetadataValue,
    Output,
    asset,
    multi_asset,
    multi_asset_check,
)

from assets.partitions import catalog_partitions
from data_checks.catalog_suite import validate_catalog
from data_checks.dagster_results import catalog_check_specs, to_check_result
from ml.catalog.contract import IMAGE_REASONS
from ml.catalog.ingest import IMAGES_FILE, ITEMS_FILE, QUARANTINE_FILE, RAW_FILE, ingest_snapshot, snapshot_catalog
from ml.catalog.snapshots import load_snapshot_record
from ml.catalog.store import read_table
from assets.metadata import markdown_table
from orchestration.io_managers import AssetManifest
from orchestration.resources import CatalogSettingsResource, ComputeResource, MLflowResource, StorageResource


@asset(group_name="catalog", partitions_def=catalog_partitions, kinds={"parquet"})
def catalog_snapshot(
    context: AssetExecutionContext, storage: StorageResource, catalog_settings: CatalogSettingsResource
) -> Output[AssetManifest]:
    """Raw rows of one catalog file, as strings: an immutable copy of what was uploaded."""
    record = load_snapshot_record(storage.snapshot_registry, context.partition_key)
    raw_uri = storage.uri("catalog", context.partition_key, RAW_FILE)
    stats = snapshot_catalog(record.source_uri, raw_uri, catalog_settings.chunk_rows)
    context.log.info(f"snapshot {context.partition_key}: {stats.rows} rows from {record.source_uri}")
    manifest = AssetManifest(
        uris={"raw": raw_uri, "source": record.source_uri, "catalog_dir": record.catalog_dir},
        figures={"rows": stats.rows, "seconds": stats.seconds, "sha256": record.sha256},
    )
    return Output(manifest, metadata={
        "rows": stats.rows, "columns": ", ".join(stats.columns), "source": record.source_uri,
        "sha256": record.sha256, "seconds": round(stats.seconds, 3), "raw_path": raw_uri,
    })


@multi_asset(
    group_name="catalog",
    partitions_def=catalog_partitions,
    outs={
        "catalog_items": AssetOut(description="validated items, images decoded and content-addressed", kinds={"parquet"}),
        "catalog_quarantine": AssetOut(description="rejected rows, one reason each; never silently dropped", kinds={"parquet"}),
    },
)
def catalog_ingestion(
    context: AssetExecutionContext,
    catalog_snapshot: AssetManifest,
    storage: StorageResource,
    compute: ComputeResource,
    mlflow: MLflowResource,
    catalog_settings: CatalogSettingsResource,
):
    key = context.partition_key
    out_uri = storage.uri("catalog", key)
    settings = catalog_settings.settings()
    mapper = compute.mapper(preload=("ml.catalog.images",))
    try:
        stats = ingest_snapshot(catalog_snapshot.uris["raw"], catalog_snapshot.uris["catalog_dir"], out_uri, settings, mapper)
    finally:
        mapper.close()
    seconds = catalog_snapshot.figures["seconds"] + stats.seconds
    items_per_s = round(stats.rows / seconds, 1) if seconds > 0 else None  # None: too fast for the clock to tell
    figures = {**stats.as_dict(), "items_per_s": items_per_s, "total_seconds": round(seconds, 3)}
    with mlflow.run(f"ingest-{key}", tags={"stage": "catalog", "snapshot": key, "dagster_run_id": context.run_id}) as run:
        run.log_params({"source": catalog_snapshot.uris["source"], "image_size": settings.image_size,
                        "compute_backend": mapper.name, "workers": getattr(mapper, "workers", 1)})
        run.log_metrics({"rows": stats.rows, "items": stats.items, "quarantined": stats.quarantined,
                         "unique_images": stats.unique_images, "ingest_seconds": seconds, "items_per_s": items_per_s,
                         **{f"quarantine.{reason}": n for reason, n in stats.reasons.items()}})
        run.log_dict(figures, "ingest_stats.json")
    storage.update_summary({"catalog": {"snapshot": key, "items": stats.items, "quarantined": stats.quarantined,
                                        "rows": stats.rows, "items_per_s": items_per_s}})
    context.log.info(f"{stats.items} items, {stats.quarantined} quarantined, {items_per_s} rows/s")
    items_uri, quarantine_uri = f"{out_uri}/{ITEMS_FILE}", f"{out_uri}/{QUARANTINE_FILE}"
    link = MetadataValue.url(run.url)
    yield Output(
        AssetManifest(uris={"items": items_uri, "images": f"{out_uri}/{IMAGES_FILE}"}, figures=figures),
        output_name="catalog_items",
        metadata={"items": stats.items, "unique_images": stats.unique_images, "items_sharing_an_image": stats.shared_image_items,
                  "items_per_s": items_per_s if items_per_s is not None else float("nan"), "image_size": settings.image_size, "mlflow_run": link,
                  "path": items_uri, "preview": markdown_table(read_table(items_uri, ["item_id", "title", "price", "category", "image_hash"]), 10)},
    )
    quarantine = read_table(quarantine_uri, ["source_row", "item_id", "reason", "detail"])
    yield Output(
        AssetManifest(uris={"quarantine": quarantine_uri}, figures={"quarantined": stats.quarantined, "reasons": dict(stats.reasons)}),
        output_name="catalog_quarantine",
        metadata={"quarantined": stats.quarantined, "reasons": MetadataValue.json(dict(sorted(stats.reasons.items()))),
                  "mlflow_run": link, "path": quarantine_uri, "sample": markdown_table(quarantine.groupby("reason").head(2), 30)},
    )


@multi_asset_check(
    specs=catalog_check_specs("catalog_items", catalog_partitions, additional_deps=("catalog_quarantine",)),
    ins={"catalog_items": AssetIn(), "catalog_quarantine": AssetIn()},
)
def catalog_items_checks(catalog_items: AssetManifest, catalog_quarantine: AssetManifest, catalog_settings: CatalogSettingsResource):
    """The Great Expectations catalog suite, one Dagster check per group of expectations."""
    items = read_table(catalog_items.uris["items"], ["item_id", "title", "image_uri", "image_hash", "price"])
    reasons = read_table(catalog_quarantine.uris["quarantine"], ["reason"])["reason"]
    failed_images = int(reasons.isin([r.value for r in IMAGE_REASONS]).sum())
    readable = pd.Series([True] * len(items) + [False] * failed_images, dtype=bool)
    for outcome in validate_catalog(items, readable, catalog_settings.max_price):
        yield to_check_result(outcome, "catalog_items")
