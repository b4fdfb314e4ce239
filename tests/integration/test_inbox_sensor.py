"""The drop-folder sensor: a new file -> a partition and a run, exactly once; bad files reported."""

import json
import os
import time

import pytest
from dagster import DagsterInstance, build_sensor_context

from orchestration.definitions import build_definitions
from orchestration.profiles import load_profile, prepare_home
from orchestration.sensors import SETTLE_SECONDS, catalog_inbox_sensor

pytestmark = pytest.mark.integration


def _drop(inbox, name, content):
    path = inbox / name
    path.write_bytes(content)
    past = time.time() - SETTLE_SECONDS - 1
    os.utime(path, (past, past))
    return path


def test_dropped_file_runs_once_and_bad_files_do_not_stop_the_sensor(state_home, bad_catalog):
    profile = load_profile()
    prepare_home(profile)
    defs = build_definitions(profile)
    storage = defs.resources["storage"]
    inbox = profile.inbox
    # the good file sits beside its images, so relative image paths still resolve
    good = bad_catalog.parent / "drop.csv"
    good.write_bytes(bad_catalog.read_bytes())
    past = time.time() - SETTLE_SECONDS - 1
    os.utime(good, (past, past))
    os.symlink(good, inbox / "drop.csv")  # a link in the inbox: the catalog's real folder holds its images
    _drop(inbox, "prices.xlsx", b"PK\x03\x04")
    _drop(inbox, "fresh.csv", b"item_id,title,image_uri\n")
    os.utime(inbox / "fresh.csv", None)  # still being written: left for a later tick

    with DagsterInstance.local_temp(str(profile.dagster_home)) as instance:
        first = catalog_inbox_sensor(build_sensor_context(instance=instance, resources={"storage": storage}))
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert first.dynamic_partitions_requests[0].partition_keys == [request.partition_key]
        assert request.run_key == request.partition_key and request.partition_key.startswith("drop-")
        rejected = json.loads((profile.home / "reports" / "inbox_rejected.json").read_text())
        assert "prices.xlsx" in rejected and "unsupported format" in rejected["prices.xlsx"]["error"]

        second = catalog_inbox_sensor(build_sensor_context(instance=instance, cursor=first.cursor, resources={"storage": storage}))
        assert second.run_requests == [] and "no new catalog files" in second.skip_reason.skip_message

        # the request really runs: partition added, job executed for it
        instance.add_dynamic_partitions("catalog_snapshots", [request.partition_key])
        result = defs.resolve_job_def("catalog_job").execute_in_process(instance=instance, partition_key=request.partition_key)
        assert result.success
        assert result.output_for_node("catalog_ingestion", "catalog_items").figures["items"] == 4


def test_a_dropped_catalog_flows_through_to_landing_pages(state_home):
    """The sensor's job runs the whole chain, collections included (the demo runs the same job)."""
    defs = build_definitions(load_profile())
    job = defs.resolve_job_def(catalog_inbox_sensor.job_name)
    selected = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"catalog_items", "item_attributes", "landing_pages", "search_log_baseline", "collection_report"} <= selected
