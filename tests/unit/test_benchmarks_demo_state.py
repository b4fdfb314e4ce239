"""The benchmarks' reader of a demo state: the last partition's manifest by name, and a missing one says what to run."""

import json

import pytest

from benchmarks.demo_state import manifest


def test_the_last_partitions_manifest_is_read_and_a_missing_one_says_to_run_the_demo(tmp_path):
    folder = tmp_path / "data" / "manifests" / "rl_generator"
    folder.mkdir(parents=True)
    (folder / "catalog-aaa.json").write_text(json.dumps({"uris": {"pipeline": "old"}}))
    (folder / "catalog-bbb.json").write_text(json.dumps({"uris": {"pipeline": "new"}}))
    assert manifest(tmp_path, "rl_generator")["uris"]["pipeline"] == "new"
    with pytest.raises(SystemExit, match="no base_generator manifest: run `make demo`"):
        manifest(tmp_path, "base_generator")
