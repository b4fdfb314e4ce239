"""The independent judge: the colour reader on real Fashion-MNIST garments tinted like the demo
catalog, and the category classifier's training and safetensors round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.catalog.demo import tint
from ml.catalog.demo_world import CATEGORIES, PALETTE
from ml.catalog.fashion_mnist import find_fashion_mnist, load_split
from ml.fairness.color_reader import NO_READ, demo_color_reader
from ml.judge.classifier import CategoryJudge, ClassifierConfig, to_tensor, train_category_judge

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def garments():
    images, labels = load_split(find_fashion_mnist(), "train")
    images, labels = images[:3000], labels[:3000]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 32 px like the catalog (0 = no garment = white after tinting)
    rng = np.random.default_rng(0)
    names = list(PALETTE)
    colors = [names[i] for i in rng.integers(0, len(names), len(padded))]
    jitter = rng.integers(-10, 11, (len(padded), 3))
    tinted = np.stack([tint(g, tuple(int(v) for v in np.clip(np.asarray(PALETTE[c]) + j, 0, 255))) for g, c, j in zip(padded, colors, jitter)])
    return tinted, colors, [CATEGORIES[i] for i in labels]


def test_color_reader_names_the_garments_colour(garments):
    images, colors, _ = garments
    read = demo_color_reader().read(images)
    accuracy = np.mean([r == c for r, c in zip(read, colors)])
    assert accuracy >= 0.97, accuracy


def test_color_reader_says_no_read_without_a_garment():
    blank = np.full((2, 32, 32, 3), 255, np.uint8)
    blank[1, 15, 15] = (200, 30, 40)  # one red pixel is not a garment
    assert demo_color_reader().read(blank) == [NO_READ, NO_READ]


def test_category_judge_learns_and_round_trips(garments, tmp_path):
    images, _, categories = garments
    ids = [f"p{i:05d}" for i in range(len(images))]
    judge, figures = train_category_judge(ids, images, categories, ClassifierConfig(epochs=8, width=8, batch_size=64))
    assert figures["test_accuracy"] > 0.6 and figures["classes"] == 10  # chance is 0.1
    loaded = CategoryJudge.load(judge.save(tmp_path / "judge"))
    x = to_tensor(images[:64])
    assert torch.allclose(judge.probabilities(x), loaded.probabilities(x)) and loaded.classes == judge.classes
    assert sorted((tmp_path / "judge").iterdir())[0].name == "classifier.json" and (tmp_path / "judge" / "classifier.safetensors").exists()


def test_catalog_judge_terms_sum_to_its_score_and_the_report_breaks_them_out(garments):
    """judge_scores: the category probability plus 1 for the prompted colour read; a candidate
    drawn in the wrong colour loses a whole point, and the report's colour term says so."""
    import pandas as pd

    from ml.catalog.demo_world import CATEGORIES as NAMES
    from ml.judge.classifier import CategoryNet
    from ml.judge.preference import CatalogJudge, judge_scores, win_rate_report

    images, colors, categories = garments
    torch.manual_seed(0)
    judge = CatalogJudge(CategoryJudge(CategoryNet(len(NAMES), 8), sorted(NAMES)), demo_color_reader())
    rows = pd.DataFrame({"prompt": [f"a {c} {k}" for c, k in zip(colors[:32], categories[:32])], "category": categories[:32],
                         "color": colors[:32], "suite": "titles"})
    pixels = torch.from_numpy(images[:32]).permute(0, 3, 1, 2).float() / 255
    score, parts = judge_scores(judge, pixels, rows)
    assert set(parts) == {"category", "colour"} and np.allclose(score, parts["category"] + parts["colour"])
    assert np.allclose(score, judge.score(pixels, rows)) and parts["colour"].mean() >= 0.9
    recoloured = rows.assign(color=[next(c for c in PALETTE if c != own) for own in rows["color"]])  # every image now shows the wrong colour
    wrong, wrong_parts = judge_scores(judge, pixels, recoloured)
    assert (wrong_parts["colour"] == 0).all() and np.allclose(wrong_parts["category"], parts["category"])
    figures, per_prompt = win_rate_report(rows, wrong, score, parts={k: (wrong_parts[k], parts[k]) for k in parts})
    assert figures["colour_candidate_score"] == 0 and figures["colour_baseline_score"] == pytest.approx(parts["colour"].mean())
    # the same category term, the colour lost: a loss where the base showed its colour, a tie where it did not, never a win
    assert figures["tie_share"] == pytest.approx(1 - parts["colour"].mean()) and (per_prompt["win_rate"] <= 0.5).all()
    assert {"category_candidate", "colour_baseline"} <= set(per_prompt.columns)
