"""What a demo base's autoencoder gives back, per category: the share of catalog images whose
colour reads the same after an encode-decode round trip, and the catalog judge's category
accuracy on originals and round trips. A category or colour the autoencoder loses is one the
generator cannot draw, whatever the RL does; several homes side by side compare autoencoders.

    python -m benchmarks.autoencoder_round_trip --home /tmp/demo-a --home /tmp/demo-b
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.demo_state import manifest


def round_trip_table(home: Path, per_category: int, seed: int = 0) -> pd.DataFrame:
    """One row per category: colour kept through the round trip (overall and per colour), and the
    judge's accuracy on the originals and on the round trips."""
    from ml.catalog.store import labelled_images
    from ml.diffusion.pipeline import load_pipeline
    from ml.diffusion.train_base import color_kept, round_trip
    from ml.fairness.color_reader import demo_color_reader
    from ml.judge.classifier import CategoryJudge, to_tensor

    catalog, attributes = manifest(home, "catalog_items")["uris"], manifest(home, "item_attributes")["uris"]
    items, pixels = labelled_images(catalog["items"], catalog["images"], attributes["item_attributes"])
    items = items.reset_index(drop=True)
    vae = load_pipeline(manifest(home, "base_generator")["uris"]["pipeline"]).vae.eval()
    judge = CategoryJudge.load(manifest(home, "catalog_judge")["uris"]["judge"])
    reader = demo_color_reader()
    rng = np.random.default_rng(seed)
    rows = []
    for category, group in items.dropna(subset=["color"]).groupby("category"):
        index = rng.choice(group.index.to_numpy(), min(per_category, len(group)), replace=False)
        recon = round_trip(vae, pixels[index])
        kept, by_color, _ = color_kept(reader.read(recon), group.loc[index, "color"].to_numpy(dtype=object))
        truth = judge.index[category]
        accuracy = {name: float((judge.probabilities(to_tensor(images)).argmax(-1).numpy() == truth).mean())
                    for name, images in (("judge_original", pixels[index]), ("judge_round_trip", recon))}
        rows.append({"category": category, "images": len(index), "colour_kept": kept, **accuracy,
                     "worst_colour": min(by_color, key=by_color.get), "worst_colour_kept": min(by_color.values())})
    return pd.DataFrame(rows).set_index("category")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, action="append", required=True, help="a `make demo` home (repeat to compare)")
    parser.add_argument("--per-category", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for home in args.home:
        started = time.perf_counter()
        table = round_trip_table(home, args.per_category)
        print(f"\n{home} ({time.perf_counter() - started:.0f} s)")
        print(table.round(3).to_string())
        print("mean over categories:", table[["colour_kept", "judge_original", "judge_round_trip"]].mean().round(3).to_dict(), flush=True)


if __name__ == "__main__":
    main()
