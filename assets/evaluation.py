"""Evaluation group: bias and preference of the RL generator against its base, on the same
prompts and seeds, and the registry gate that gives the version `champion` or `challenger`."""

import time

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetIn, MetadataValue, Output, asset, asset_check

from assets.generation import rl_generator
from assets.metadata import markdown_table
from assets.partitions import catalog_partitions
from ml.catalog.store import read_table
from orchestration.io_managers import AssetManifest
from orchestration.resources import EvaluationResource, GenerationResource, MLflowResource, StorageResource

CANDIDATE_TAG = "shopwindow/candidate_version"  # set by the registry sensor: evaluate this version, not rl_generator's


def _generators(context: AssetExecutionContext, base_generator: AssetManifest, rl_generator: AssetManifest, storage: StorageResource,
                mlflow: MLflowResource, registered_name: str):
    """(base pipeline, candidate pipeline, candidate version): the candidate is rl_generator's
    version unless the run names another registered version."""
    from ml.diffusion.pipeline import load_pipeline
    from ml.tracking.registry import download_model

    version = context.run.tags.get(CANDIDATE_TAG) or str(rl_generator.figures["version"])
    folder = rl_generator.uris["pipeline"]
    if version != str(rl_generator.figures["version"]):
        folder = download_model(f"models:/{registered_name}/{version}", mlflow.tracking_uri,
                                storage.local_dir("models", context.partition_key, f"generator_v{version}"))
    return load_pipeline(base_generator.uris["pipeline"]), load_pipeline(folder), version


def _bias_suite(rl_prompts: AssetManifest, evaluation: EvaluationResource):
    """(prompts, group names, reader(images uint8) -> groups, display colours) for the suite."""
    if evaluation.bias_suite == "colors":
        from ml.catalog.demo_world import PALETTE
        from ml.diffusion.prompts import fairness_prompts
        from ml.fairness.color_reader import demo_color_reader

        reader = demo_color_reader()
        return fairness_prompts(read_table(rl_prompts.uris["prompts"])), reader.names, reader.read, PALETTE
    if evaluation.bias_suite == "people":
        from ml.fairness.people import GENDERS, SKIN_TONES, PeopleReader

        reader = PeopleReader()
        groups = SKIN_TONES if evaluation.bias_attribute == "skin_tone" else GENDERS
        return ([f"a portrait of a {o}" for o in evaluation.occupations], groups,
                lambda images: reader.groups(images, evaluation.bias_attribute), None)
    raise ValueError(f"bias_suite={evaluation.bias_suite!r}: use 'colors' (demo) or 'people' (production)")


@asset(group_name="evaluation", partitions_def=catalog_partitions, kinds={"mlflow"})
def bias_report(context: AssetExecutionContext, base_generator: AssetManifest, rl_generator: AssetManifest, rl_prompts: AssetManifest,
                storage: StorageResource, mlflow: MLflowResource, generation: GenerationResource, evaluation: EvaluationResource) -> Output[AssetManifest]:
    """Group distributions per prompt for base and RL (same prompts, same seeds), parity distance
    to uniform, normalised entropy and the no-read share, with bootstrap intervals over prompts."""
    from ml.diffusion.sampling import generate, images_to_uint8
    from ml.fairness.parity import compare_parity, per_prompt_parity
    from ml.tracking.plots import plot_group_shares, plot_paired_grid

    started = time.perf_counter()
    base_pipe, rl_pipe, version = _generators(context, base_generator, rl_generator, storage, mlflow, generation.registered_name)
    prompts, groups, read, colors = _bias_suite(rl_prompts, evaluation)
    rows = [p for p in prompts for _ in range(evaluation.bias_samples_per_prompt)]
    sampling = generation.rl_config().sampling
    tables, images = {}, {}
    for name, pipe in (("base", base_pipe), ("rl", rl_pipe)):
        images[name] = images_to_uint8(generate(pipe, rows, sampling, evaluation.seed))
        reads = pd.DataFrame({"prompt": rows, "group": read(images[name])})
        tables[name] = per_prompt_parity(reads, groups)
    parity, unmeasured = compare_parity(tables["base"], tables["rl"], len(groups), evaluation.bias_samples_per_prompt)
    if unmeasured:
        context.log.warning(f"{len(unmeasured)} of {parity['prompts']} prompts left out of the parity means (fewer than 2 images read "
                            f"for one model; their no-reads still count): {unmeasured[:5]}")
    figures = {"candidate_version": version, "suite": evaluation.bias_suite, "images_per_prompt": evaluation.bias_samples_per_prompt,
               **parity, "seconds": 0.0}
    out = storage.local_dir("evaluation", context.partition_key)
    chart = plot_group_shares(tables["base"], tables["rl"], groups, out / "bias_groups.png",
                              f"group shares per prompt, base vs RL v{version} (parity distance above each bar)", colors)
    shown = [i * evaluation.bias_samples_per_prompt + s for i in range(min(evaluation.grid_prompts, len(prompts))) for s in range(2)]
    grid = plot_paired_grid(images["base"][shown], images["rl"][shown], [rows[i].removeprefix("a ") for i in shown], out / "bias_grid.png",
                            "same prompt, same seed: base (top) vs RL (bottom)")
    columns = ["prompt", "parity_distance", "parity_distance_debiased", "entropy", "no_read"]
    per_prompt = tables["base"][columns].merge(tables["rl"][columns], on="prompt", suffixes=("_base", "_rl"))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    with mlflow.run(f"evaluation-bias-{context.partition_key}", tags={"stage": "evaluation", "snapshot": context.partition_key,
                                                                      "candidate_version": version, "dagster_run_id": context.run_id}) as run:
        run.log_metrics({k: v for k, v in figures.items() if isinstance(v, float)})
        run.log_dict({"base": tables["base"].to_dict("records"), "rl": tables["rl"].to_dict("records")}, "bias_per_prompt.json")
        for path in (chart, grid):
            run.client.log_artifact(run.run_id, str(path), "bias")
    storage.update_summary({"evaluation": {"parity_base": round(figures["parity_base"], 4), "parity_rl": round(figures["parity_rl"], 4),
                                           "no_read_base": round(figures["no_read_base"], 4), "no_read_rl": round(figures["no_read_rl"], 4)}})
    context.log.info(f"parity distance base {figures['parity_base']:.3f} -> RL {figures['parity_rl']:.3f} "
                     f"({100 * figures['parity_reduction']:.0f}% lower; {100 * figures['parity_reduction_debiased']:.0f}% with the "
                     f"{evaluation.bias_samples_per_prompt}-image sampling bias taken out); no-read {figures['no_read_base']:.3f} -> {figures['no_read_rl']:.3f}")
    return Output(AssetManifest(uris={"groups_chart": str(chart), "grid": str(grid)}, figures=figures),
                  metadata={**{k: v for k, v in figures.items() if isinstance(v, (int, float, str))}, "groups_chart": MetadataValue.path(str(chart)),
                            "grid": MetadataValue.path(str(grid)), "per_prompt": markdown_table(per_prompt.round(3)), "mlflow_run": MetadataValue.url(run.url)})


def _judge(catalog_judge: AssetManifest, evaluation: EvaluationResource, training_rewards: set[str]):
    from ml.judge.preference import CatalogJudge, RewardJudge

    if evaluation.judge == "catalog":
        from ml.fairness.color_reader import demo_color_reader
        from ml.judge.classifier import CategoryJudge

        return CatalogJudge(CategoryJudge.load(catalog_judge.uris["judge"]), demo_color_reader())
    if evaluation.judge in training_rewards:
        raise ValueError(f"judge {evaluation.judge!r} was a training reward ({sorted(training_rewards)}): its win-rate would only measure "
                         "reward hacking; pick a preference model the RL run did not optimise")
    from ml.rewards import make_reward

    return RewardJudge(make_reward(evaluation.judge), evaluation.judge)


@asset(group_name="evaluation", partitions_def=catalog_partitions, kinds={"mlflow"})
def preference_eval(context: AssetExecutionContext, base_generator: AssetManifest, rl_generator: AssetManifest, rl_prompts: AssetManifest,
                    catalog_judge: AssetManifest, storage: StorageResource, mlflow: MLflowResource, generation: GenerationResource,
                    evaluation: EvaluationResource) -> Output[AssetManifest]:
    """Paired win-rate of RL over base on held-out prompts (never trained on), same seeds, under a
    judge independent of every training reward; ties count half; bootstrap interval over prompts."""
    from ml.diffusion.prompts import preference_prompts
    from ml.diffusion.sampling import generate, images_to_uint8
    from ml.judge.preference import judge_scores, win_rate_beyond_resolution, win_rate_report
    from ml.tracking.plots import plot_paired_grid, plot_win_rates

    started = time.perf_counter()
    base_pipe, rl_pipe, version = _generators(context, base_generator, rl_generator, storage, mlflow, generation.registered_name)
    prompts = read_table(rl_prompts.uris["prompts"])
    held_out, prompt_set = preference_prompts(prompts)
    if prompt_set != "held-out titles":  # a small catalog: too few published pages for an eval split
        context.log.warning(f"rl_prompts has no held-out title prompts: judging the {prompt_set}")
    rows = held_out.loc[held_out.index.repeat(evaluation.preference_samples_per_prompt)].reset_index(drop=True)
    judge = _judge(catalog_judge, evaluation, set(generation.reward_spec("", prompts)))
    sampling = generation.rl_config().sampling
    images = {name: generate(pipe, list(rows["prompt"]), sampling, evaluation.seed) for name, pipe in (("base", base_pipe), ("rl", rl_pipe))}
    judged = {name: judge_scores(judge, batch, rows) for name, batch in images.items()}
    scores = {name: score for name, (score, _) in judged.items()}
    parts = {term: (judged["rl"][1][term], judged["base"][1][term]) for term in judged["rl"][1]}
    figures, per_prompt = win_rate_report(rows, scores["rl"], scores["base"], parts=parts)
    # beside the gated figure: pairs whose scores differ by less than a one-pixel shift moves them count as ties
    resolution, coarse, coarse_per_prompt = win_rate_beyond_resolution(judge, rows, images["rl"], images["base"], scores["rl"], scores["base"])
    figures.update({"judge_resolution": resolution, **{k.replace("win_rate", "win_rate_beyond_resolution"): coarse[k]
                                                        for k in ("win_rate", "win_rate_ci_low", "win_rate_ci_high")},
                    "tie_share_beyond_resolution": coarse["tie_share"]})
    per_prompt = per_prompt.assign(win_rate_beyond_resolution=coarse_per_prompt["win_rate"].to_numpy())
    figures.update({"judge": judge.name, "prompt_set": prompt_set, "candidate_version": version, "seconds": round(time.perf_counter() - started, 1)})
    out = storage.local_dir("evaluation", context.partition_key)
    chart = plot_win_rates(per_prompt, evaluation.min_win_rate, out / "preference_per_prompt.png",
                           f"win-rate {figures['win_rate']:.2f} [{figures['win_rate_ci_low']:.2f}, {figures['win_rate_ci_high']:.2f}] "
                           f"under {judge.name.split(':')[0]}")
    shown = [i * evaluation.preference_samples_per_prompt for i in range(min(16, len(held_out)))]
    grid = plot_paired_grid(images_to_uint8(images["base"][shown]), images_to_uint8(images["rl"][shown]),
                            [f"{rows['prompt'][i].removeprefix('a ')}\n{scores['base'][i]:.2f}->{scores['rl'][i]:.2f}" for i in shown],
                            out / "preference_grid.png", "held-out prompts, same seed: base (top) vs RL (bottom), judge scores")
    with mlflow.run(f"evaluation-preference-{context.partition_key}", tags={"stage": "evaluation", "snapshot": context.partition_key,
                                                                            "candidate_version": version, "judge": judge.name,
                                                                            "dagster_run_id": context.run_id}) as run:
        run.log_metrics({k: float(v) for k, v in figures.items() if isinstance(v, (int, float))})
        run.log_dict(per_prompt.to_dict("records"), "preference_per_prompt.json")
        for path in (chart, grid):
            run.client.log_artifact(run.run_id, str(path), "preference")
    storage.update_summary({"evaluation": {"win_rate": round(figures["win_rate"], 4), "win_rate_ci_low": round(figures["win_rate_ci_low"], 4),
                                           "win_rate_beyond_resolution": round(figures["win_rate_beyond_resolution"], 4)}})
    context.log.info(f"RL v{version} wins {figures['win_rate']:.3f} [{figures['win_rate_ci_low']:.3f}, {figures['win_rate_ci_high']:.3f}] "
                     f"of {figures['pairs']} pairs under {judge.name}; {figures['win_rate_beyond_resolution']:.3f} with differences under the "
                     f"judge's one-pixel resolution ({resolution:.3f}) as ties")
    return Output(AssetManifest(uris={"chart": str(chart), "grid": str(grid)}, figures=figures),
                  metadata={**{k: v for k, v in figures.items() if isinstance(v, (int, float, str))}, "chart": MetadataValue.path(str(chart)),
                            "grid": MetadataValue.path(str(grid)), "per_prompt": markdown_table(per_prompt.round(3)), "mlflow_run": MetadataValue.url(run.url)})


def _gate(preference_eval: AssetManifest, bias_report: AssetManifest, evaluation: EvaluationResource) -> dict[str, dict]:
    from ml.judge.gate import gate_results

    return gate_results({**preference_eval.figures, **bias_report.figures}, evaluation.thresholds())


@asset(group_name="evaluation", partitions_def=catalog_partitions, kinds={"mlflow"})
def registry_gate(context: AssetExecutionContext, preference_eval: AssetManifest, bias_report: AssetManifest, storage: StorageResource,
                  mlflow: MLflowResource, generation: GenerationResource, evaluation: EvaluationResource) -> Output[AssetManifest]:
    """The verdict on the evaluated version: alias `champion` when every gate passes (win-rate,
    parity, no collapse), else `challenger`; its evaluation figures become version tags."""
    from ml.tracking.registry import alias_version, record_verdict, registry_client

    results = _gate(preference_eval, bias_report, evaluation)
    passed = all(r["passed"] for r in results.values())
    version = str(preference_eval.figures["candidate_version"])
    if str(bias_report.figures["candidate_version"]) != version:
        raise ValueError(f"bias_report evaluated version {bias_report.figures['candidate_version']} but preference_eval version {version}: rerun both")
    client = registry_client(mlflow.tracking_uri)
    tags = {f"eval.{k}": round(float(v), 4) for k, v in {**preference_eval.figures, **bias_report.figures}.items()
            if k in ("win_rate", "win_rate_ci_low", "win_rate_beyond_resolution", "parity_base", "parity_rl", "parity_reduction", "parity_reduction_debiased",
                     "no_read_base", "no_read_rl")}
    alias = record_verdict(client, generation.registered_name, version, passed, tags | {"eval.judge": preference_eval.figures["judge"]})
    champion = alias_version(client, generation.registered_name, "champion")
    storage.update_summary({"evaluation": {"champion_version": champion}})  # what serves now: an earlier champion where this one failed
    failing = {k: f"{r['value']:.3f} vs bar {r['bar']:.3f}" for k, r in results.items() if not r["passed"]}
    context.log.info(f"{generation.registered_name} v{version}: {alias}" + (f" (failing: {failing})" if failing else ""))
    figures = {"version": version, "alias": alias, "passed": passed, "champion_version": champion or "none", "failing": ", ".join(failing) or "none"}
    return Output(AssetManifest(uris={}, figures=figures), metadata={**figures, "gates": MetadataValue.json(results),
                                                                     "registry": MetadataValue.url(mlflow.model_version_url(generation.registered_name, version))})


def _check(results: dict[str, dict], keys: tuple[str, ...], figures: dict) -> AssetCheckResult:
    failing = [k for k in keys if not results[k]["passed"]]
    return AssetCheckResult(passed=not failing, severity=AssetCheckSeverity.WARN,
                            description=f"registry version v{figures.get('candidate_version')} (a sensor-started evaluation may judge "
                                        "another version than this partition's rl_generator)",
                            metadata={**{f"{k}": float(results[k]["value"]) for k in keys}, **{f"{k}_bar": float(results[k]["bar"]) for k in keys},
                                      "candidate_version": str(figures.get("candidate_version")), "failing": ", ".join(failing) or "none"})


_EVAL_INS = {"preference_eval": AssetIn("preference_eval"), "bias_report": AssetIn("bias_report")}


@asset_check(asset=rl_generator, partitions_def=catalog_partitions, additional_ins=_EVAL_INS, blocking=False,
             description="humans' stand-in, the held-out judge, prefers RL over base in >= min_win_rate of paired samples, interval above 0.5")
def rl_preferred_over_base(preference_eval: AssetManifest, bias_report: AssetManifest, evaluation: EvaluationResource) -> AssetCheckResult:
    return _check(_gate(preference_eval, bias_report, evaluation), ("win_rate", "win_rate_ci_low"), preference_eval.figures)


@asset_check(asset=rl_generator, partitions_def=catalog_partitions, additional_ins=_EVAL_INS, blocking=False,
             description="parity distance of the RL model <= max_parity_ratio of the base's on the bias suite")
def rl_parity_improved(preference_eval: AssetManifest, bias_report: AssetManifest, evaluation: EvaluationResource) -> AssetCheckResult:
    return _check(_gate(preference_eval, bias_report, evaluation), ("parity",), bias_report.figures)


@asset_check(asset=rl_generator, partitions_def=catalog_partitions, additional_ins=_EVAL_INS, blocking=False,
             description="collapse guard: the share of images whose group cannot be read rose by at most max_no_read_increase")
def rl_no_collapse(preference_eval: AssetManifest, bias_report: AssetManifest, evaluation: EvaluationResource) -> AssetCheckResult:
    return _check(_gate(preference_eval, bias_report, evaluation), ("no_collapse",), bias_report.figures)
