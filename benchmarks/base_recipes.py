"""A demo base generator's UNet and text encoder retrained with other `BaseTrainConfig` settings
on a demo state (its autoencoder kept, so only the UNet's recipe differs), judged beside the
state's own base on every (colour, category) prompt, and written as an overlay state that
`benchmarks.rl_recipes --home OUT` fine-tunes: what a base recipe does to the RL's targets.

    python -m benchmarks.base_recipes --home .shopwindow --out /tmp/base-balanced \
        --recipe '{"unet_cell_balance": 1.0}'
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from benchmarks.demo_state import manifest, overlay_state


def judged_cells(pipe, pairs, judge, reader, per_prompt: int) -> dict:
    """Category and colour accuracy overall and per "colour category" cell, on the evaluation seed."""
    from ml.diffusion.quality import prompt_accuracy

    figures, table, _ = prompt_accuracy(pipe, pairs, judge, reader, per_prompt=per_prompt, seed=1234)
    cells = table.groupby(["color", "category"])[["category_accuracy", "color_accuracy"]].mean()
    return {"category_accuracy": round(figures["category_accuracy"], 3), "colour_accuracy": round(figures["color_accuracy"], 3),
            "cells": {f"{c} {k}": [round(float(r.category_accuracy), 3), round(float(r.color_accuracy), 3)] for (c, k), r in cells.iterrows()}}


def main() -> None:
    from ml.catalog.store import labelled_images
    from ml.diffusion.pipeline import TinyPipelineConfig, build_tiny_pipeline, load_pipeline
    from ml.diffusion.quality import base_captions, color_category_pairs
    from ml.diffusion.train_base import BaseTrainConfig, encode_latents, train_unet
    from ml.fairness.color_reader import demo_color_reader
    from ml.judge.classifier import CategoryJudge
    from orchestration.resources import GenerationResource

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".shopwindow"))
    parser.add_argument("--out", type=Path, required=True, help="the overlay state to write (its base_generator is the retrained one)")
    parser.add_argument("--recipe", default="{}", help="JSON: BaseTrainConfig fields; the rest as the demo's GenerationResource sets them")
    parser.add_argument("--per-prompt", type=int, default=8, help="images per (colour, category) prompt when judging both bases")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = json.loads(args.recipe)
    unknown = sorted(set(recipe) - set(BaseTrainConfig.model_fields))
    if unknown:
        raise SystemExit(f"recipe fields {unknown} are not BaseTrainConfig fields (a typo would silently train the default)")
    demo = GenerationResource()
    config = BaseTrainConfig(**{"base_minutes": 1e6, "unet_steps": demo.unet_steps, "seed": demo.seed, **recipe})
    catalog, attributes = manifest(args.home, "catalog_items")["uris"], manifest(args.home, "item_attributes")["uris"]
    items, pixels = labelled_images(catalog["items"], catalog["images"], attributes["item_attributes"])
    coloured, captions, short = base_captions(items)
    state_folder = Path(manifest(args.home, "base_generator")["uris"]["pipeline"])
    state_base = load_pipeline(str(state_folder))
    torch.manual_seed(config.seed)
    pipe = build_tiny_pipeline(TinyPipelineConfig(), state_folder.parent / "clip_tokenizer", seed=config.seed)
    pipe.vae.load_state_dict(state_base.vae.state_dict())
    pipe.vae.register_to_config(scaling_factor=state_base.vae.config.scaling_factor)
    latents = encode_latents(pipe.vae, pixels[coloured])
    started = time.perf_counter()
    history = train_unet(pipe, latents, captions, config, short_captions=short, minutes=config.base_minutes)
    folder = args.out / "generator_base"
    pipe.save_pretrained(folder)
    shutil.copytree(state_folder.parent / "clip_tokenizer", args.out / "clip_tokenizer", dirs_exist_ok=True)
    overlay_state(args.home, args.out, "base_generator", {"pipeline": str(folder)})
    print(json.dumps({"recipe": recipe, "unet_steps": history[-1]["step"] if history else 0, "unet_seconds": round(time.perf_counter() - started, 1),
                      "unet_loss": round(history[-1]["loss"], 4) if history else None, "out": str(args.out)}), flush=True)
    judge = CategoryJudge.load(manifest(args.home, "catalog_judge")["uris"]["judge"])
    pairs, reader = color_category_pairs(items), demo_color_reader()
    for name, model in (("retrained", load_pipeline(str(folder))), ("state's base", state_base)):
        print(json.dumps({"base": name, **judged_cells(model, pairs, judge, reader, args.per_prompt)}), flush=True)


if __name__ == "__main__":
    main()
