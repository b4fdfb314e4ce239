"""Production code paths run with tiny local models saved in the same formats (DESIGN.md)."""

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from assets import attributes, catalog
from orchestration.definitions import build_definitions
from orchestration.profiles import load_profile, prepare_home
from orchestration.resources import AttributesResource, resources_for
from orchestration.runner import ingest_file
from tests.tiny_models import build_tiny_vlm

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_vlm_teacher_runs_through_the_teacher_asset(state_home, bad_catalog, tmp_path):
    """A randomly initialised LLaVA answers garbage: every item ends up labelled or in the
    problems table with its raw answer, and the run succeeds."""
    profile = load_profile()
    prepare_home(profile)
    defs = build_definitions(profile)
    model = build_tiny_vlm(tmp_path / "vlm")
    with DagsterInstance.local_temp(str(profile.dagster_home)) as instance:
        ingested = ingest_file(defs, instance, str(bad_catalog))
        assert ingested.success
        resources = {**resources_for(profile), "attributes": AttributesResource(teacher="vlm", vlm_model=str(model))}
        result = materialize([*catalog.catalog_snapshot.to_source_assets(), catalog.catalog_ingestion, attributes.teacher_attributes],
                             selection=[AssetKey("teacher_attributes")], partition_key=ingested.snapshot,
                             instance=instance, resources=resources)
    assert result.success
    manifest = result.output_for_node("teacher_attributes")
    assert manifest.figures["teacher"] == "vlm"
    labels = pd.read_parquet(manifest.uris["labels"])
    problems = pd.read_parquet(manifest.uris["problems"])
    accounted = set(labels["item_id"]) | set(problems["item_id"])
    assert accounted == {"ok-1", "ok-2", "ok-3", "shares-image"}  # nothing lost
    assert problems["raw_output"].notna().all()
