"""Materialise the catalog group with a real Dagster instance and a real MLflow SQLite store."""

import json

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from orchestration.definitions import build_definitions
from orchestration.profiles import load_profile, prepare_home
from orchestration.runner import ingest_file

pytestmark = pytest.mark.integration


@pytest.fixture
def defs_and_instance(state_home):
    profile = load_profile()
    prepare_home(profile)
    with DagsterInstance.local_temp(str(profile.dagster_home)) as instance:
        yield profile, build_definitions(profile), instance


def test_catalog_group_quarantines_every_reason_and_tracks_the_run(defs_and_instance, bad_catalog):
    from mlflow import MlflowClient

    profile, defs, instance = defs_and_instance
    source = pd.read_csv(bad_catalog, dtype=str, keep_default_na=False)
    expected = source["expected_reason"].replace("", None).value_counts().to_dict()

    outcome = ingest_file(defs, instance, str(bad_catalog))

    assert outcome.success, outcome.error
    assert outcome.figures["items"] == 4 and outcome.figures["quarantined"] == len(source) - 4
    assert outcome.figures["reasons"] == expected
    # four of the nine image loads fail: the WARN check says so, the ERROR checks pass
    assert outcome.checks == {"catalog_schema": True, "catalog_not_empty": True, "item_ids_unique": True, "titles_non_empty": True,
                              "price_in_range": True, "readable_image_share": False}

    event = instance.get_latest_materialization_event(AssetKey("catalog_items"))
    metadata = event.asset_materialization.metadata
    assert metadata["items"].value == 4
    run_url = metadata["mlflow_run"].url
    client = MlflowClient(profile.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("shopwindow-demo").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id in run_url
    assert runs[0].data.metrics["items"] == 4 and runs[0].data.metrics["quarantine.path_escape"] == 2
    assert runs[0].data.tags["snapshot"] == outcome.snapshot

    quarantine = instance.get_latest_materialization_event(AssetKey("catalog_quarantine")).asset_materialization
    assert json.loads(json.dumps(quarantine.metadata["reasons"].value)) == dict(sorted(expected.items()))

    summary = json.loads(profile.summary_path.read_text())
    assert summary["catalog"]["items"] == 4 and summary["catalog"]["quarantined"] == len(source) - 4
    assert summary["catalog"]["items_per_s"] > 0

    again = ingest_file(defs, instance, str(bad_catalog))  # same content: same partition, rerun in place
    assert again.snapshot == outcome.snapshot and instance.get_dynamic_partitions("catalog_snapshots") == [outcome.snapshot]


def test_unparseable_file_fails_the_run_with_a_named_error(defs_and_instance, tmp_path):
    _, defs, instance = defs_and_instance
    path = tmp_path / "broken.csv"
    path.write_text("item_id,image_uri\n1,a.png\n")
    outcome = ingest_file(defs, instance, str(path))
    assert not outcome.success
    assert "broken.csv" in outcome.error and "title" in outcome.error
