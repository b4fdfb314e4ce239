import json

import pytest

from ml.tracking.summary import read_summary, update_summary
from orchestration.profiles import load_profile, prepare_home


def test_summary_merges_stages(tmp_path):
    path = tmp_path / "reports" / "summary.json"
    update_summary(path, {"catalog": {"items": 3, "quarantined": 1}})
    update_summary(path, {"catalog": {"items": 4}, "attributes": {"recall_at_10": 0.9}})
    assert read_summary(path) == {"catalog": {"items": 4, "quarantined": 1}, "attributes": {"recall_at_10": 0.9}}
    assert json.loads(path.read_text())["catalog"]["items"] == 4


def test_profiles_resolve_from_one_setting(tmp_path):
    demo = load_profile(env={"SHOPWINDOW_HOME": str(tmp_path)})
    assert demo.name == "demo" and demo.ingest.image_size == 32 and demo.compute.backend == "local"
    assert demo.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    prod = load_profile(env={"SHOPWINDOW_HOME": str(tmp_path), "SHOPWINDOW_PROFILE": "production", "RAY_ADDRESS": "ray://head:10001"})
    assert prod.ingest.image_size == 224 and prod.compute.backend == "ray" and prod.compute.ray_address == "ray://head:10001"
    quick = load_profile(env={"SHOPWINDOW_HOME": str(tmp_path), "SHOPWINDOW_BIAS_SAMPLES": "32", "SHOPWINDOW_RL_MINUTES": "0.5"})
    assert quick.evaluation["bias_samples_per_prompt"] == 32 and quick.generation["rl_minutes"] == 0.5
    assert "bias_samples_per_prompt" not in demo.evaluation and "rl_minutes" not in demo.generation  # the resources' defaults hold
    with pytest.raises(ValueError, match="SHOPWINDOW_PROFILE='staging'"):
        load_profile(env={"SHOPWINDOW_PROFILE": "staging"})


def test_the_demo_deadline_extends_the_rl_cap_but_never_shrinks_it(tmp_path):
    """`shopwindow demo` passes a deadline so a middling hour's RL runs all its iterations; a slow hour keeps rl_minutes."""
    from orchestration.resources import GenerationResource

    generation = GenerationResource(rl_minutes=6.0, rl_minutes_max=7.0, rl_deadline=10_000.0)
    assert generation.rl_cap_minutes(10_000 - 60 * 6.5) == pytest.approx(6.5)
    assert generation.rl_cap_minutes(10_000 - 60 * 9) == 7.0 and generation.rl_cap_minutes(10_000 - 60 * 2) == 6.0
    assert GenerationResource(rl_minutes=6.0).rl_cap_minutes(0.0) == 6.0  # no deadline: the cap as set
    quick = load_profile(env={"SHOPWINDOW_HOME": str(tmp_path), "SHOPWINDOW_RL_DEADLINE": "10000", "SHOPWINDOW_RL_MINUTES": "0.5"})
    assert quick.generation["rl_deadline"] == 10_000.0
    assert GenerationResource(**quick.generation).rl_cap_minutes(0.0) == 0.5  # a cap set by hand is not extended


def test_dagster_yaml_turns_telemetry_off(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = prepare_home(load_profile(env={"SHOPWINDOW_HOME": str(tmp_path)}))
    assert "enabled: false" in (home / "dagster.yaml").read_text()


def test_production_profile_asks_for_model_folders_clearly(tmp_path):
    from ml.attributes.curation import CurationConfig, RuleJudge
    from orchestration.resources import AttributesResource

    prod = load_profile(env={"SHOPWINDOW_HOME": str(tmp_path), "SHOPWINDOW_PROFILE": "production"})
    assert prod.attributes["teacher"] == "vlm" and prod.attributes["judge"] == "llm"
    resource = AttributesResource(**prod.attributes)
    with pytest.raises(ValueError, match="judge_model"):
        resource.make_judge(CurationConfig())
    assert isinstance(AttributesResource().make_judge(CurationConfig()), RuleJudge)
    assert AttributesResource().min_items_for(70_000) == 50 and AttributesResource().min_items_for(600) == 3


def test_files_written_with_plain_file_apis_stay_local_when_the_data_root_is_a_url(tmp_path):
    """Model folders, plots and the gallery go through StorageResource.local_dir: under a local data
    root as before, but never into a local folder named 's3:' when the data root is a URL."""
    from orchestration.resources import StorageResource

    local = StorageResource(home=str(tmp_path / "home"), data_root=str(tmp_path / "data"))
    assert local.local_dir("models", "k", "generator_rl") == tmp_path / "data" / "models" / "k" / "generator_rl"
    remote = StorageResource(home=str(tmp_path / "home"), data_root="s3://bucket/shop")
    assert remote.uri("catalog", "k") == "s3://bucket/shop/catalog/k"
    assert remote.local_dir("models", "k") == tmp_path / "home" / "local-data" / "models" / "k"
    with pytest.raises(ValueError, match="would leave"):
        remote.local_dir("models", "../../etc")
