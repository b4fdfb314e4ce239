from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, SkipReason, define_asset_job, schedule

from assets.evaluation import rl_no_collapse, rl_parity_improved, rl_preferred_over_base
from assets.partitions import catalog_partitions

catalog_job = define_asset_job(
    "catalog_job",
    selection=AssetSelection.groups("catalog"),
    partitions_def=catalog_partitions,
    description="Ingest one catalog snapshot: raw rows -> items + quarantine, with the catalog data checks.",
)

pipeline_job = define_asset_job(
    "pipeline_job",
    selection=AssetSelection.groups("catalog", "embeddings", "attributes", "collections", "generation", "evaluation"),
    partitions_def=catalog_partitions,
    description="The main job: one catalog snapshot through ingestion, embeddings, attributes, collections, the RL generator and its evaluation.",
)

generation_job = define_asset_job(
    "generation_job",
    selection=AssetSelection.groups("generation"),
    partitions_def=catalog_partitions,
    description="Retrain the judge and the base generator, rebuild the RL prompts and fine-tune with RL, for one snapshot.",
)

evaluation_job = define_asset_job(
    "evaluation_job",
    selection=AssetSelection.groups("evaluation") | AssetSelection.checks(rl_preferred_over_base, rl_parity_improved, rl_no_collapse),
    partitions_def=catalog_partitions,
    description="Bias report, preference win-rate and the registry gate (champion / challenger) for a generator version; "
                "the registry sensor starts it for each new version.",
)

collections_job = define_asset_job(
    "collections_job",
    selection=AssetSelection.groups("collections"),
    partitions_def=catalog_partitions,
    description="Refresh search demand, topics, landing pages, the baseline and the report for one snapshot.",
)


@schedule(job=collections_job, cron_schedule="0 3 * * *", execution_timezone="UTC",
          description="Nightly: rebuild the collections of the newest catalog snapshot (the query log may have grown).")
def nightly_collections_schedule(context: ScheduleEvaluationContext):
    keys = catalog_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    if not keys:
        return SkipReason("no catalog snapshot yet: drop a catalog into the inbox or run `shopwindow demo`")
    newest = keys[-1]  # dynamic partitions keep the order they were added in
    return RunRequest(run_key=f"{newest}-{context.scheduled_execution_time:%Y-%m-%d}", partition_key=newest)
