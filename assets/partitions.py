import warnings

from dagster import DynamicPartitionsDefinition, PreviewWarning

# Partitioned asset checks are "preview" in dagster 1.13 (pinned); they work and are tested here.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

# one partition per registered catalog file (snapshot id = file stem + content digest)
catalog_partitions = DynamicPartitionsDefinition(name="catalog_snapshots")
