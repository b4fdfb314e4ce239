"""RL recipes side by side on one demo state (a `make demo` home): each recipe fine-tunes the
same base generator for the same number of iterations, then is measured the way the
evaluation assets measure it: total reward on held-out prompts, paired win-rate under the
catalog judge, and colour parity on the fairness suite. Runs on CPU (slow) or a GPU.
A recipe with both rewards weighted 0 is the control: what the pretraining term alone does.
A recipe's `leave_out` ({"category": [...], "color": [...]}) drops the training titles with any of
those categories or colours: which trained titles move a held-out prompt.

    python -m benchmarks.rl_recipes --home .shopwindow --iterations 300 \
        --recipe '{"name": "default"}' --recipe '{"name": "lr3e-3", "lr": 3e-3}' \
        --recipe '{"name": "control", "fidelity_weight": 0, "parity_weight": 0}'
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.demo_state import manifest


def resolve_recipe(settings: dict):
    """GenerationResource fields (the demo's defaults for the rest) -> (RLConfig, the fairness
    suite's share of prompt draws, the reward settings); needs Dagster installed, so `--resolve`
    writes recipes out for a machine without it (a lent GPU)."""
    from orchestration.resources import GenerationResource

    unknown = sorted(set(settings) - set(GenerationResource.model_fields))
    if unknown:
        raise SystemExit(f"recipe fields {unknown} are not GenerationResource fields (a typo would silently run the default)")
    resource = GenerationResource(**settings)
    return resource.rl_config(), resource.fairness_share, resource.reward_settings()


def run_recipe(home: Path, recipe: dict, iterations: int, eval_seeds: int, bias_seeds: int, device: str, minutes: float | None = None,
               reward_seeds: int = 32, save_dir: Path | None = None, measure_at: list[int] | None = None, averages: list[float] | None = None):
    """Train the recipe and yield its figures at each of `measure_at` (default: only the end), one
    run giving a curve of the figures against RL iterations. `averages`: decays of exponential
    moving averages of the trained weights (one update per iteration), each measured beside the
    weights themselves at every stop: what averaging would give, from the same run."""
    from ml.catalog.store import read_table
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.prompts import fairness_prompts, prompt_metadata, suite_draw_weights
    from ml.diffusion.sampling import generate, images_to_uint8
    from ml.diffusion.trainer import RLTrainer, evaluate_rewards
    from ml.fairness.color_reader import demo_color_reader
    from ml.fairness.parity import bootstrap_gain, per_prompt_parity
    from ml.judge.classifier import CategoryJudge
    from ml.judge.preference import CatalogJudge, judge_scores, win_rate_beyond_resolution, win_rate_report
    from ml.rewards import make_multi_reward
    from ml.rewards.demo import demo_reward_spec
    from ml.diffusion.trainer import RLConfig

    recipe = dict(recipe)
    name = recipe.pop("name", "recipe")
    leave_out = recipe.pop("leave_out", {})
    if set(leave_out) - {"category", "color"}:
        raise SystemExit(f"recipe {name!r}: leave_out takes 'category' and 'color' lists, not {sorted(set(leave_out) - {'category', 'color'})}")
    torch.manual_seed(0)
    if "rl" in recipe:  # written by --resolve, with the draw share beside it (none: each suite equally)
        if "rewards" not in recipe:
            raise SystemExit(f"recipe {name!r} has 'rl' but no 'rewards': write it again with --resolve")
        config, fairness_share, reward_settings = RLConfig(**recipe.pop("rl")), recipe.pop("fairness_share", None), recipe.pop("rewards")
    else:
        config, fairness_share, reward_settings = resolve_recipe(recipe)
    stops = sorted({i for i in (measure_at or []) if 0 < i < iterations} | {iterations})
    config = config.model_copy(update={"iterations": stops[0], "max_minutes": minutes or 1e9})
    pipe_folder = manifest(home, "base_generator")["uris"]["pipeline"]
    pipe = load_pipeline(pipe_folder).to(device)
    base = load_pipeline(pipe_folder).to(device)
    uri = manifest(home, "rl_prompts")["uris"]["prompts"]
    prompts = pd.read_json(uri, orient="records") if uri.endswith(".json") else read_table(uri)  # JSON: machines without pyarrow
    prompts = prompts[prompts["suite"].isin(["titles", "fairness"])]
    train = prompts[prompts["split"].isin(["train", "both"])]
    left_out = (train["suite"] == "titles") & (train["category"].isin(leave_out.get("category", [])) | train["color"].isin(leave_out.get("color", [])))
    if leave_out and not left_out.any():
        raise SystemExit(f"recipe {name!r}: leave_out {leave_out} matches no training title")
    train = train[~left_out]
    held_titles = prompts[(prompts["split"] == "eval") & (prompts["suite"] == "titles")]
    if held_titles.empty:
        raise SystemExit(f"{home}: rl_prompts has no held-out title prompts; use a full demo state")
    fairness = fairness_prompts(prompts)
    reward = make_multi_reward(demo_reward_spec(manifest(home, "dual_encoder")["uris"]["model"], prompts, **reward_settings))
    pretrain = None
    if config.pretrain_weight > 0:  # as rl_generator does: real catalog images with their captions
        from ml.catalog.store import labelled_images
        from ml.diffusion.trainer import PretrainData

        catalog, attributes = manifest(home, "catalog_items")["uris"], manifest(home, "item_attributes")["uris"]
        pretrain = PretrainData.from_catalog(pipe.vae, *labelled_images(catalog["items"], catalog["images"], attributes["item_attributes"]),
                                            balanced=config.pretrain_balanced)
    weights = suite_draw_weights(train["suite"], None if fairness_share is None else {"fairness": fairness_share})
    trainer = RLTrainer(pipe, reward, list(train["prompt"]), prompt_metadata(train), config, prompt_weights=weights, pretrain=pretrain)
    held = prompts[prompts["split"].isin(["eval", "both"])]
    eval_prompts = [p for p in held["prompt"] for _ in range(reward_seeds)]
    eval_meta = [m for m in prompt_metadata(held) for _ in range(reward_seeds)]
    before, before_parts, _ = evaluate_rewards(base, reward, eval_prompts, eval_meta, config.sampling, 1234)
    reader = demo_color_reader()
    judge = CatalogJudge(CategoryJudge.load(manifest(home, "catalog_judge")["uris"]["judge"]), reader)  # held-out titles all name a colour
    rows = held_titles.loc[held_titles.index.repeat(eval_seeds)].reset_index(drop=True)
    bias_rows = [p for p in fairness for _ in range(bias_seeds)]

    bias_meta = dict(zip(prompts["prompt"], prompt_metadata(prompts)))

    def judged(model, diversity=None, routed=False) -> tuple[np.ndarray, dict, torch.Tensor]:
        names = trainer.adapter_names(prompt_metadata(rows)) if routed else None  # open_adapter: each prompt's LoRA
        images = generate(pipe, list(rows["prompt"]), config.sampling, 20_000, unet=model, diversity=diversity, adapter_names=names).cpu()
        return (*judge_scores(judge, images, rows), images)

    def parity_of(model, diversity=None, routed=False) -> tuple[float, float, dict]:
        names = trainer.adapter_names([bias_meta[p] for p in bias_rows]) if routed else None
        images = images_to_uint8(generate(pipe, bias_rows, config.sampling, 20_000, unet=model, diversity=diversity, adapter_names=names))
        table = per_prompt_parity(pd.DataFrame({"prompt": bias_rows, "group": reader.read(images)}), reader.names)
        shares = table.set_index("prompt")[[f"share.{n}" for n in reader.names]].round(3)
        per_prompt = {p: {"parity": round(float(d), 3), "largest": f"{shares.loc[p].idxmax()[6:]} {shares.loc[p].max():.2f}"}
                      for p, d in zip(table["prompt"], table["parity_distance"])}
        return float(table["parity_distance"].mean()), float(table["no_read"].mean()), per_prompt

    base_scores, base_parts, base_images = judged(base.unet)
    base_parity = parity_of(base.unet)
    def measured(label: str, history: list[dict], seconds: float) -> dict:
        """The recipe's figures with the trained tensors as they are now."""
        after, after_parts, _ = trainer.evaluate(eval_prompts, eval_meta, 1234, averaged=False)
        gain_ci = bootstrap_gain(before, after, eval_prompts)
        rl_scores, rl_parts, rl_images = judged(trainer.unet, trainer.diversity, routed=True)
        preference, per_prompt = win_rate_report(rows, rl_scores, base_scores, parts={k: (rl_parts[k], base_parts[k]) for k in rl_parts})
        resolution, coarse, _ = win_rate_beyond_resolution(judge, rows, rl_images, base_images, rl_scores, base_scores)
        rl_parity = parity_of(trainer.unet, trainer.diversity, routed=True)
        return {"name": label, "iterations": trainer.iteration, "seconds": round(seconds, 1),
               "s_per_iteration": round(seconds / max(trainer.iteration, 1), 3),
               "reward_before": round(float(before.mean()), 4), "reward_after": round(float(after.mean()), 4),
               "gain_ci": [round(gain_ci[0], 4), round(gain_ci[1], 4)],
               "win_rate": round(preference["win_rate"], 3), "win_ci": [round(preference["win_rate_ci_low"], 3), round(preference["win_rate_ci_high"], 3)],
               "win_rate_beyond_resolution": round(coarse["win_rate"], 3), "judge_resolution": round(resolution, 4),
               "judge_base": round(preference["baseline_score"], 4), "judge_rl": round(preference["candidate_score"], 4),
               "judge_colour_base": round(float(base_parts["colour"].mean()), 3), "judge_colour_rl": round(float(rl_parts["colour"].mean()), 3),
               **{f"{k}_before": round(float(v.mean()), 4) for k, v in before_parts.items()},
               **{f"{k}_after": round(float(v.mean()), 4) for k, v in after_parts.items()},
               "parity_base": round(base_parity[0], 3), "parity_rl": round(rl_parity[0], 3),
               "no_read_base": round(base_parity[1], 3), "no_read_rl": round(rl_parity[1], 3),
               "parity_per_prompt": {p: {"base": base_parity[2][p], "rl": rl_parity[2][p]} for p in rl_parity[2]},
               "win_per_prompt": {p: round(float(w), 3) for p, w in zip(per_prompt["prompt"], per_prompt["win_rate"])},
               # where a prompt was lost: its colour (read 1 or 0 per image) or a little category probability
               "judge_per_prompt": {r["prompt"]: {part: [round(float(r[f"{part}_baseline"]), 3), round(float(r[f"{part}_candidate"]), 3)] for part in rl_parts}
                                    for _, r in per_prompt.iterrows()},
               "clipfrac": round(float(np.mean([h.get("clipfrac", 0) for h in history])), 3), "recipe": recipe,
               "left_out": sorted(prompts.loc[left_out[left_out].index, "prompt"])}

    averaged = {decay: {name: p.detach().clone() for name, p in trainer.trainable_params().items()} for decay in averages or []}

    def average(trainer, record) -> None:
        for decay, copies in averaged.items():
            trainer.update_average(copies, decay)

    seconds = 0.0
    for stop in stops:
        trainer.config = trainer.config.model_copy(update={"iterations": stop})
        started = time.perf_counter()
        history = trainer.train(callback=average)
        seconds += time.perf_counter() - started
        if save_dir:  # the trained weights (LoRA or full), to look at its images afterwards
            from safetensors.torch import save_file

            save_dir.mkdir(parents=True, exist_ok=True)
            save_file(trainer.trainable_state(), str(save_dir / f"{name}-{trainer.iteration}.safetensors"))
        with trainer.averaged():  # the policy the trainer would save (the average with ema_decay > 0)
            figures = [measured(name, history, seconds)]
        for decay, copies in averaged.items():
            with trainer.holding(copies):
                figures.append(measured(f"{name}-ema{decay:g}", history, seconds))
        yield from figures
    if save_dir:  # the final policy as a pipeline too (fusing ends training), for benchmarks that load one (colour_lean)
        trainer.save_pipeline(save_dir / f"{name}-{trainer.iteration}-pipeline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=".shopwindow")
    parser.add_argument("--recipe", action="append", default=[], help="JSON: GenerationResource fields (the demo's defaults for the rest), plus name")
    parser.add_argument("--iterations", type=int, default=300, help="the demo's step budget (GenerationResource.iterations); --minutes caps it as rl_minutes does")
    parser.add_argument("--minutes", type=float, default=None, help="a time cap on each recipe's RL (the demo's rl_minutes: 6)")
    parser.add_argument("--eval-seeds", type=int, default=16)
    parser.add_argument("--bias-seeds", type=int, default=128)
    parser.add_argument("--reward-seeds", type=int, default=32, help="seeds per held-out prompt for the total reward before and after")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--save-dir", type=Path, default=None, help="write each recipe's trained weights here as NAME-ITERATIONS.safetensors, "
                        "and its final policy as the pipeline folder NAME-ITERATIONS-pipeline")
    parser.add_argument("--measure-at", type=lambda text: [int(i) for i in text.split(",")], default=None,
                        help="comma-separated iteration counts at which to measure too (besides the end): a curve from one run")
    parser.add_argument("--averages", type=lambda text: [float(d) for d in text.split(",")], default=None,
                        help="comma-separated decays of moving averages of the trained weights, each measured beside them")
    parser.add_argument("--resolve", action="store_true", help="print each recipe with its full RLConfig under 'rl', and stop")
    args = parser.parse_args()
    if args.resolve:
        for recipe in args.recipe:
            recipe = json.loads(recipe)
            name = {"name": recipe.pop("name")} if "name" in recipe else {}
            config, fairness_share, reward_settings = resolve_recipe(recipe)
            print(json.dumps({**name, "fairness_share": fairness_share, "rewards": reward_settings, "rl": config.model_dump()}))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for recipe in args.recipe or ['{"name": "default"}']:
        for figures in run_recipe(Path(args.home), json.loads(recipe), args.iterations, args.eval_seeds, args.bias_seeds, device, args.minutes,
                                  args.reward_seeds, args.save_dir, args.measure_at, args.averages):
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
