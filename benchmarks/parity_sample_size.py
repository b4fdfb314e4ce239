"""How the number of images per prompt moves a demo's parity figures: an L2 distance measured on
n images is biased up (its square by (1 - sum of squared shares) / n), more in proportion for
RL's near-even colour mix than for the base's skewed one, so few images understate RL's cut.
Draws n images per fairness prompt from the base and the RL generator of a demo state (the
evaluation's sampler and seed), then reports parity at n and on each disjoint slice of `--slice`
images: the slices' spread is what one draw of that size moves the figure by. The same with the
sampling bias taken out (`parity_distance_debiased`): its slices should agree with the full draw.

    python -m benchmarks.parity_sample_size --home .shopwindow --images 512 --slice 128
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.demo_state import manifest


def parity_by_sample_size(home: Path, images: int, slice_size: int) -> dict:
    from ml.catalog.store import read_table
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.prompts import fairness_prompts
    from ml.diffusion.sampling import generate, images_to_uint8
    from ml.fairness.color_reader import demo_color_reader
    from ml.fairness.parity import per_prompt_parity
    from orchestration.resources import EvaluationResource, GenerationResource

    if images % slice_size:
        raise SystemExit(f"--images {images} is not a whole number of --slice {slice_size} slices")
    fairness = fairness_prompts(read_table(manifest(home, "rl_prompts")["uris"]["prompts"]))
    reader = demo_color_reader()
    sampling, seed = GenerationResource().rl_config().sampling, EvaluationResource().seed
    rows = [p for p in fairness for _ in range(images)]
    slice_of = np.tile(np.arange(images) // slice_size, len(fairness))
    pipelines = {"base": manifest(home, "base_generator")["uris"]["pipeline"], "rl": manifest(home, "rl_generator")["uris"]["pipeline"]}
    out = {"images_per_prompt": images, "slice": slice_size, "prompts": len(fairness)}
    for name, folder in pipelines.items():
        started = time.perf_counter()
        groups = reader.read(images_to_uint8(generate(load_pipeline(folder), rows, sampling, seed)))
        reads = pd.DataFrame({"prompt": rows, "group": groups, "slice": slice_of})
        whole, slices = per_prompt_parity(reads, reader.names), [per_prompt_parity(part, reader.names) for _, part in reads.groupby("slice")]
        for column, label in (("parity_distance", "parity"), ("parity_distance_debiased", "debiased")):
            out[f"{label}_{name}"] = round(float(whole[column].mean()), 4)
            out[f"{label}_{name}_slices"] = [round(float(table[column].mean()), 4) for table in slices]
        out[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
    for label, prefix in (("parity", ""), ("debiased", "debiased_")):
        out[f"{prefix}reduction"] = round(1 - out[f"{label}_rl"] / out[f"{label}_base"], 3)
        out[f"{prefix}reduction_slices"] = [round(1 - r / b, 3) for b, r in zip(out[f"{label}_base_slices"], out[f"{label}_rl_slices"])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", action="append", required=True, help="a demo state; repeat to measure several")
    parser.add_argument("--images", type=int, default=512, help="images per fairness prompt")
    parser.add_argument("--slice", type=int, default=128, help="the demo's bias_samples_per_prompt")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for home in args.home:
        print(json.dumps({"home": home, **parity_by_sample_size(Path(home), args.images, args.slice)}), flush=True)


if __name__ == "__main__":
    main()
