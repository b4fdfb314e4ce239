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


def test_an_overlay_state_replaces_one_assets_uris_and_reads_the_rest_from_the_original(tmp_path):
    from benchmarks.demo_state import overlay_state

    home, out = tmp_path / "home", tmp_path / "out"
    for asset, uris in (("base_generator", {"pipeline": "home/base", "samples": "home/grid.png"}), ("rl_prompts", {"prompts": "home/p.json"})):
        (home / "data" / "manifests" / asset).mkdir(parents=True)
        (home / "data" / "manifests" / asset / "catalog-aaa.json").write_text(json.dumps({"uris": uris, "figures": {"x": 1}}))
    overlay_state(home, out, "base_generator", {"pipeline": "out/base"})
    assert manifest(out, "base_generator") == {"uris": {"pipeline": "out/base", "samples": "home/grid.png"}, "figures": {"x": 1}}
    assert manifest(out, "rl_prompts")["uris"]["prompts"] == "home/p.json"
    assert manifest(home, "base_generator")["uris"]["pipeline"] == "home/base"  # the original is untouched
    with pytest.raises(SystemExit, match="no catalog_judge manifest"):
        overlay_state(home, tmp_path / "other", "catalog_judge", {})
