from dagster import AssetSelection, define_asset_job

from assets.partitions import catalog_partitions

catalog_job = define_asset_job(
    "catalog_job",
    selection=AssetSelection.groups("catalog"),
    partitions_def=catalog_partitions,
    description="Ingest one catalog snapshot: raw rows -> items + quarantine, with the catalog data checks.",
)

pipeline_job = define_asset_job(
    "pipeline_job",
    selection=AssetSelection.groups("catalog", "embeddings", "attributes"),
    partitions_def=catalog_partitions,
    description="The main job: one catalog snapshot through ingestion, embeddings and attributes.",
)
