"""Where RL's held-out titles lose their colour, on a demo state (a `make demo` home).

1. The reward's lean: the base's held-out titles blended toward their own grey by `--alphas`,
   each scored by the judge (category probability, colour read) and by the training reward's
   dual encoder (category probability, prompted colour's probability). A category term that
   rises as the images grey pays the policy to pale its titles.
2. The codes: the RL generator's held-out titles drawn with no diversity code and with each code
   fixed (the same seeds), the judge's colour reads per code and what the lost colours read as.
   A code that pales the titles is one the code-invariance term did not reach.

    python -m benchmarks.colour_lean --home .shopwindow [--pipeline RL_PIPELINE_FOLDER]

`--pipeline`: another RL generator than the state's (rl_recipes --save-dir writes one per recipe).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.demo_state import manifest


class _FixedCode:
    """A DiversityCodes stand-in that gives every row code `k`."""

    def __init__(self, codes, k: int):
        self.codes, self.k = codes, k

    def __call__(self, embeds: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.codes(embeds, torch.full_like(codes, self.k))

    def draw(self, n: int, generator=None) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.long)


def colour_lean(home: Path, seeds: int, alphas: list[float], pipeline: Path | None = None) -> dict:
    from ml.catalog.store import read_table
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.prompts import prompt_metadata
    from ml.diffusion.sampling import generate, images_to_uint8
    from ml.fairness.color_reader import demo_color_reader
    from ml.judge.classifier import CategoryJudge
    from ml.judge.preference import CatalogJudge
    from ml.rewards import make_reward
    from orchestration.resources import EvaluationResource, GenerationResource

    prompts = read_table(manifest(home, "rl_prompts")["uris"]["prompts"])
    titles = prompts[(prompts["suite"] == "titles") & prompts["split"].isin(["eval", "both"])]
    rows = titles.loc[titles.index.repeat(seeds)].reset_index(drop=True)
    meta = prompt_metadata(rows)
    reader = demo_color_reader()
    judge = CatalogJudge(CategoryJudge.load(manifest(home, "catalog_judge")["uris"]["judge"]), reader)
    generation = GenerationResource()
    spec = generation.reward_spec(manifest(home, "dual_encoder")["uris"]["model"], prompts)["prompt_fidelity"]
    fidelity = make_reward("prompt_fidelity", **{k: v for k, v in spec.items() if k != "weight"})
    sampling, seed = generation.rl_config().sampling, EvaluationResource().seed
    base = load_pipeline(manifest(home, "base_generator")["uris"]["pipeline"])
    with torch.no_grad():
        images = generate(base, list(rows["prompt"]), sampling, seed)
    greyed = []
    for alpha in alphas:
        blended = (1 - alpha) * images + alpha * images.mean(dim=1, keepdim=True)
        category, colour = judge.parts(blended, rows)
        reward_category = fidelity(blended, list(rows["prompt"]), [{**m, "names_color": False} for m in meta])
        reward_colour = fidelity(blended, list(rows["prompt"]), meta) - reward_category
        greyed.append({"alpha": alpha, "judge_category": round(float(category.mean()), 4), "judge_colour": round(float(colour.mean()), 4),
                       "reward_category": round(float(reward_category.mean()), 4), "reward_colour": round(float(reward_colour.mean()), 4)})
    out = {"titles": len(titles), "seeds": seeds, "greyed_base": greyed}
    rl = load_pipeline(pipeline or manifest(home, "rl_generator")["uris"]["pipeline"])
    codes = getattr(rl, "diversity_codes", None)
    if codes is None:
        return {**out, "codes": "the RL generator has no diversity codes"}
    per_code = {}
    for name, diversity in [("none", None)] + [(f"code {k}", _FixedCode(codes, k)) for k in range(codes.count)]:
        with torch.no_grad():
            drawn = generate(rl, list(rows["prompt"]), sampling, seed, unet=rl.unet, diversity=diversity)
        read = np.asarray(reader.read(images_to_uint8(drawn)), dtype=object)
        hit = read == rows["color"].to_numpy(dtype=object)
        lost = pd.Series(list(zip(rows["color"][~hit], read[~hit]))).value_counts()
        worst = pd.Series(hit, index=rows["prompt"]).groupby(level=0).mean().nsmallest(3)
        per_code[name] = {"colour": round(float(hit.mean()), 4), "worst": {p: round(float(v), 3) for p, v in worst.items()},
                          "lost_read_as": {f"{want} -> {got}": int(n) for (want, got), n in lost.items()}}
    return {**out, "codes": per_code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".shopwindow"))
    parser.add_argument("--seeds", type=int, default=16, help="images per held-out title (the evaluation's default)")
    parser.add_argument("--alphas", type=lambda text: [float(a) for a in text.split(",")], default=[0.0, 0.15, 0.3, 0.45, 0.6])
    parser.add_argument("--pipeline", type=Path, default=None, help="an RL generator's pipeline folder (default: the state's rl_generator)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result = colour_lean(args.home, args.seeds, args.alphas, args.pipeline)
    print(json.dumps({**result, "seconds": round(time.perf_counter() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()
