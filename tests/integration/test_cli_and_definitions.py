"""The console script and `dagster definitions validate`, as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import all_cores_env

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _run(args, home, timeout=300, extra_env=None):
    env = {**os.environ, **(extra_env or {}), "SHOPWINDOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "SHOPWINDOW_WORKERS": "2",
           "SHOPWINDOW_BASE_MINUTES": "0.3", "SHOPWINDOW_RL_MINUTES": "0.15",  # the generator's budgets, shortened for a test
           "SHOPWINDOW_BIAS_SAMPLES": "32"}  # ...and the bias report's images per prompt (128: 72 s of the demo test's 231 on a slow day)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def test_definitions_validate(tmp_path):
    home = tmp_path / "home"
    assert _run([str(BIN / "shopwindow"), "init"], home).returncode == 0  # creates DAGSTER_HOME + dagster.yaml
    proc = _run([str(BIN / "dagster"), "definitions", "validate", "-m", "orchestration.definitions"], home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "passed validation" in proc.stderr + proc.stdout


def test_ingest_json_reports_counts_and_reasons(tmp_path, bad_catalog):
    proc = _run([str(BIN / "shopwindow"), "ingest", str(bad_catalog), "--json"], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["items"] == 4 and report["quarantined"] == 16
    assert report["reasons"]["image_too_large"] == 2 and report["reasons"]["duplicate_id"] == 1
    assert "4 items" in proc.stdout


def test_ingest_of_a_bad_file_exits_nonzero_naming_it(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = _run([str(BIN / "shopwindow"), "ingest", str(bad), "--json"], tmp_path / "home")
    assert proc.returncode == 2
    assert "notes.txt" in proc.stderr and "unsupported catalog format" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["success"] is False


@pytest.mark.end_to_end
@pytest.mark.timeout(1200)  # the whole demo on a slice plus a sensor-driven evaluation: past 300 s on a machine half as fast as usual
def test_demo_end_to_end_on_a_slice_of_fashion_mnist(tmp_path):
    """One demo run on 600 items through every stage, then what a user would look at: the summary,
    the gallery, the schedule, and the registry (models load back by alias)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml.diffusion.pipeline import load_pipeline
    from ml.embedding.factory import create_dual_encoder
    from ml.tracking.registry import download_model

    home = tmp_path / "home"
    # 210 s alone on the slow machine (357 s on 2026-12-05); 600 s ran out with another job on the machine
    proc = _run([str(BIN / "shopwindow"), "demo", "--limit", "300"], home, timeout=900, extra_env=all_cores_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((home / "reports" / "summary.json").read_text())
    assert summary["catalog"]["items"] == 600  # 300 per split
    assert summary["catalog"]["quarantined"] >= 8  # at least one defect of each kind
    assert summary["catalog"]["items_per_s"] > 0
    assert summary["embeddings"]["items"] == 600 and summary["embeddings"]["items_per_s"] > 0
    for key in ("recall_at_10", "category_accuracy", "color_accuracy_text_silent"):
        assert 0 <= summary["attributes"][key] <= 1  # measured; 600 items are too few to meet the targets
    assert summary["attributes"]["category_accuracy"] > 0.9  # the teacher reads the category in every title
    assert "make ui" in proc.stdout and "summary.json" in proc.stdout
    collections = summary["collections"]
    for key in ("pages", "baseline_pages", "topic_coverage_ratio", "precision_at_10", "baseline_precision_at_10", "item_coverage"):
        assert key in collections, key
    assert collections["pages"] > 0 and 0 < collections["precision_at_10"] <= 1 and 0 < collections["item_coverage"] <= 1
    gallery = Path(collections["gallery"])
    assert f"file://{gallery}" in proc.stdout
    index = gallery.read_text()
    assert "baseline.html" in index and index.count('href="pages/') == collections["pages"]
    first_page = gallery.parent / "pages" / index.split('href="pages/')[1].split('"')[0]
    assert first_page.exists() and first_page.resolve().is_relative_to(gallery.parent.resolve())
    thumbnails = [src.split('"')[0] for src in first_page.read_text().split('src="')[1:]]
    assert thumbnails and all((first_page.parent / t).exists() for t in thumbnails)

    # the nightly schedule asks for the newest snapshot's collections
    # the sensor-started evaluation below only has to reach a verdict: 8 bias images per prompt (the default 128 made
    # that one subprocess pass 300 s on a slow machine with one thread per test worker)
    env = {"SHOPWINDOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "SHOPWINDOW_BIAS_SAMPLES": "8"}
    code = ("import datetime\nfrom dagster import DagsterInstance, build_schedule_context\n"
            "from orchestration.definitions import defs\n"
            "schedule = defs.resolve_schedule_def('nightly_collections_schedule')\n"
            "with DagsterInstance.get() as instance:\n"
            "    request = schedule.evaluate_tick(build_schedule_context(instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=datetime.datetime(2026, 11, 26, 3, tzinfo=datetime.timezone.utc))).run_requests[0]\n"
            "    print(schedule.job_name, request.partition_key)")
    tick = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert tick.returncode == 0, tick.stderr[-2000:]
    assert tick.stdout.split() == ["collections_job", summary["catalog"]["snapshot"]]

    # the registry: the dual encoder loads back by alias; on 600 items its targets are missed, so no champion
    tracking = f"sqlite:///{home}/mlflow.db"
    client = MlflowClient(tracking)
    version = client.get_model_version_by_alias("shopwindow-dual-encoder", "candidate")
    assert version.tags["snapshot"].startswith("catalog-")
    encoder = create_dual_encoder(f"local-dir:{download_model('models:/shopwindow-dual-encoder@candidate', tracking, tmp_path / 'download')}")
    assert encoder.encode_texts(["red tee"]).shape == (1, 64)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("shopwindow-dual-encoder", "champion")
    # ...it is the challenger, by the same rule as the generator's gate, with its measured figures as tags
    challenger = client.get_model_version_by_alias("shopwindow-dual-encoder", "challenger")
    assert challenger.version == version.version and challenger.tags["verdict"] == "challenger"
    assert float(challenger.tags["eval.recall_at_10"]) >= 0

    # the generator: base (alias "base") and its RL version, both loadable StableDiffusionPipelines
    generation = summary["generation"]
    for key in ("base_category_accuracy", "base_color_accuracy", "reward_start", "reward_end", "rl_minutes"):
        assert key in generation, key
    versions = {v.version: v for v in client.search_model_versions("name='shopwindow-generator'")}
    assert sorted(v.tags["kind"] for v in versions.values()) == ["base", "rl"]
    # the demo's budgets are steps, the minutes only caps: the base run records its step budget and stays within it
    from orchestration.resources import GenerationResource

    base_run, budget = client.get_run(next(v for v in versions.values() if v.tags["kind"] == "base").run_id).data, GenerationResource().unet_steps
    assert int(base_run.params["unet_steps"]) == budget and 0 < base_run.metrics["unet_steps"] <= budget
    # this test's caps (0.3 and 0.15 minutes) end both budgets early: the summary, the WARN checks and the CLI say so
    assert generation["unet_steps_budget"] == budget and generation["unet_steps"] == base_run.metrics["unet_steps"] < budget
    assert generation["unet_cut_by_time"] is True
    assert generation["rl_cut_by_time"] is True and 0 < generation["iterations"] < generation["iterations_budget"] == GenerationResource().iterations
    assert "base_generator_ran_its_steps FAILED" in proc.stdout and "rl_ran_its_iterations FAILED" in proc.stdout
    assert f"RL iterations {generation['iterations']} of {generation['iterations_budget']}" in proc.stdout
    assert client.get_model_version_by_alias("shopwindow-generator", "base").tags["kind"] == "base"
    rl_version = next(v for v in versions.values() if v.tags["kind"] == "rl")
    rl_run = client.get_run(rl_version.run_id).data
    assert rl_run.metrics["iterations"] == generation["iterations"] and int(rl_run.params["iterations"]) == generation["iterations_budget"]
    pipe = load_pipeline(str(download_model(f"models:/shopwindow-generator/{rl_version.version}", tracking, tmp_path / "generator")))
    assert len(pipe.tokenizer) == 49408
    # the demo's open_adapter: both LoRAs travel beside the base UNet, and a prompt's words pick its adapter
    lora = [n for n, _ in pipe.unet.named_parameters() if "lora" in n]
    assert GenerationResource().open_adapter and any(".open." in n for n in lora) and any(".default." in n for n in lora)
    assert pipe.adapter_router(["a dress", "a red dress"]) == ["open", "default"]
    # its diversity codes travel beside the pipeline through the registry, trained away from their zero start
    assert pipe.diversity_codes is not None and pipe.diversity_codes.count == GenerationResource().diversity_codes
    assert pipe.diversity_codes.embedding.abs().sum() > 0
    assert pipe.diversity_codes.adapter == ("open" if GenerationResource().codes_open_only else None)  # whose rows draw a code

    # evaluation: both reports, and a verdict alias on the RL version that matches its gates
    evaluation = summary["evaluation"]
    for key in ("win_rate", "win_rate_ci_low", "parity_base", "parity_rl", "no_read_base", "no_read_rl", "champion_version"):
        assert key in evaluation, key
    assert 0 <= evaluation["win_rate_ci_low"] <= evaluation["win_rate"] <= 1 and 0 <= evaluation["parity_rl"] <= 1
    rl_version = client.get_model_version("shopwindow-generator", rl_version.version)
    verdict = rl_version.tags["verdict"]
    assert verdict in {"champion", "challenger"} and rl_version.tags["evaluated"] == "true"
    assert client.get_model_version_by_alias("shopwindow-generator", verdict).version == rl_version.version
    assert float(rl_version.tags["eval.win_rate"]) == pytest.approx(evaluation["win_rate"], abs=1e-4)
    assert evaluation["champion_version"] == (rl_version.version if verdict == "champion" else None)
    assert (home / "data" / "evaluation").exists() and list((home / "data" / "evaluation").rglob("bias_groups.png"))
    experiment = client.get_experiment_by_name("shopwindow-demo").experiment_id
    preference_run = client.search_runs([experiment], "attributes.run_name LIKE 'evaluation-preference-%'")[0].data.metrics
    # beside the gated win-rate: pairs closer than a one-pixel shift moves the judge count as ties
    assert preference_run["judge_resolution"] > 0 and 0 <= preference_run["win_rate_beyond_resolution"] <= 1
    assert preference_run["tie_share_beyond_resolution"] >= preference_run["tie_share"]
    assert evaluation["win_rate_beyond_resolution"] == pytest.approx(preference_run["win_rate_beyond_resolution"], abs=1e-4)
    for side in ("candidate", "baseline"):  # the catalog judge's two terms, which the score is the sum of
        assert 0 <= preference_run[f"colour_{side}_score"] <= 1
        assert preference_run[f"category_{side}_score"] + preference_run[f"colour_{side}_score"] == pytest.approx(preference_run[f"{side}_score"])
    bias_run = client.search_runs([experiment], "attributes.run_name LIKE 'evaluation-bias-%'")[0].data.metrics
    assert bias_run["parity_floor"] == pytest.approx((7 / 8 / 32) ** 0.5)  # SHOPWINDOW_BIAS_SAMPLES reached the asset: 32 images of 8 colours
    for side in ("base", "rl"):  # taking the sampling bias out can only lower a distance
        assert 0 <= bias_run[f"parity_debiased_{side}"] <= bias_run[f"parity_{side}"]
    assert "eval.parity_reduction_debiased" in rl_version.tags

    # a version registered outside Dagster (e.g. by `accelerate launch`): the registry sensor asks
    # for one evaluation run of it, and that run gives it a verdict
    code = ("import json\nfrom dagster import DagsterInstance, build_sensor_context\nfrom mlflow import MlflowClient\n"
            "from orchestration.definitions import defs\nfrom ml.tracking.registry import register_folder\nfrom ml.tracking.runs import tracked_run\n"
            "from orchestration.resources import resources_for\nfrom orchestration.profiles import load_profile\n"
            f"tracking = {tracking!r}\nclient = MlflowClient(tracking, registry_uri=tracking)\n"
            f"source = client.get_model_version('shopwindow-generator', '{rl_version.version}')\n"
            "folder = client.download_artifacts(source.run_id, 'generator', 'copy')\n"
            "with tracked_run(resources_for(load_profile())['mlflow'].tracking(), 'outside-dagster') as run:\n"
            "    new = register_folder(run, folder, 'generator', 'shopwindow-generator', tags={'kind': 'rl', 'snapshot': source.tags['snapshot']})\n"
            "sensor = defs.resolve_sensor_def('generator_registry_sensor')\n"
            "with DagsterInstance.get() as instance:\n"
            "    context = build_sensor_context(instance=instance, repository_def=defs.get_repository_def(), resources={'mlflow': resources_for(load_profile())['mlflow'], 'generation': resources_for(load_profile())['generation']})\n"
            "    result = sensor(context)\n"
            "    requests = result.run_requests\n"
            "    assert [r.tags['shopwindow/candidate_version'] for r in requests] == [new], (new, requests)\n"
            "    again = sensor(build_sensor_context(instance=instance, repository_def=defs.get_repository_def(), cursor=result.cursor, resources={'mlflow': resources_for(load_profile())['mlflow'], 'generation': resources_for(load_profile())['generation']}))\n"
            "    assert not again.run_requests\n"
            "    run = defs.resolve_job_def('evaluation_job').execute_in_process(instance=instance, partition_key=requests[0].partition_key, tags=requests[0].tags)\n"
            "    assert run.success\n"
            "print(new, client.get_model_version('shopwindow-generator', new).tags['verdict'])")
    evaluated = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env, **all_cores_env()},
                               timeout=300, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    new_version, new_verdict = evaluated.stdout.split()[-2:]
    assert int(new_version) > int(rl_version.version) and new_verdict in {"champion", "challenger"}
