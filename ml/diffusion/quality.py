"""How well a generator follows "a {colour} {category}" prompts, judged independently: the
category classifier trained on real catalog images and the analytic colour reader."""

from __future__ import annotations

import pandas as pd
import torch

from ml.diffusion.sampling import SamplingConfig, generate, images_to_uint8


def prompt(color: str | None, category: str) -> str:
    return f"a {color} {category}" if color else f"a {category}"


def base_captions(items: pd.DataFrame) -> tuple:
    """The base generator's training rows: (index of the items with a colour, "a {colour} {category}"
    captions, the same without the colour), as the demo's base and `benchmarks.base_recipes` train it."""
    coloured = items.dropna(subset=["color"])
    return (coloured.index.to_numpy(), [prompt(c, k) for c, k in zip(coloured["color"], coloured["category"])],
            [prompt(None, k) for k in coloured["category"]])


def color_category_pairs(items: pd.DataFrame) -> list[tuple[str, str]]:
    """Every (colour, category) the catalog holds an item of, sorted: the base generator is judged on each."""
    pairs = items.dropna(subset=["color", "category"])[["color", "category"]].drop_duplicates()
    return sorted(map(tuple, pairs.to_numpy()))


def prompt_accuracy(pipe, pairs: list[tuple[str, str]], judge, reader, per_prompt: int = 4, sampling: SamplingConfig | None = None,
                    seed: int = 0) -> tuple[dict, pd.DataFrame, torch.Tensor]:
    """(figures, per-sample table, images) for (colour, category) pairs, `per_prompt` images each.
    The table's boolean `category_accuracy` and `color_accuracy` columns average to the accuracies
    over any grouping of its rows (per category, per colour, per pair)."""
    sampling = sampling or SamplingConfig()
    rows = [(c, k) for c, k in pairs for _ in range(per_prompt)]
    images = generate(pipe, [prompt(c, k) for c, k in rows], sampling, seed)
    categories = judge.predict(images * 2 - 1)
    colors = reader.read(images_to_uint8(images))
    table = pd.DataFrame({"color": [c for c, _ in rows], "category": [k for _, k in rows], "judged_category": categories, "read_color": colors})
    table = table.assign(category_accuracy=table["category"] == table["judged_category"], color_accuracy=table["color"] == table["read_color"])
    figures = {"category_accuracy": float(table["category_accuracy"].mean()), "color_accuracy": float(table["color_accuracy"].mean()),
               "samples": len(table)}
    return figures, table, images
