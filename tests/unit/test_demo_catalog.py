"""The demo catalog builder, on a synthetic Fashion-MNIST-shaped source (fast, hermetic)."""

import gzip
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from ml.catalog.demand import DemandModel, simulate_search_demand
from ml.catalog.demo import ALIASES_FILE, DemoCatalogConfig, build_demo_catalog, tint
from ml.catalog.demo_world import COLOR_SKEW, PALETTE


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 600), ("t10k", 100)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 6:22, 8:20] = rng.integers(120, 255, (n, 16, 12))
        labels = np.arange(n, dtype=np.uint8) % 10
        header = np.array([2051, n, 28, 28], ">i4").tobytes()
        with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(header + images.tobytes())
        with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(np.array([2049, n], ">i4").tobytes() + labels.tobytes())
    return root


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic_and_complete(fake_fmnist, tmp_path):
    config = DemoCatalogConfig(fashion_mnist_dir=str(fake_fmnist), demand=DemandModel(n_queries=2000))
    a = build_demo_catalog(tmp_path / "a", config, progress=False)
    b = build_demo_catalog(tmp_path / "b", config, progress=False)
    for name in ("catalog", "labels", "demand"):
        assert _digest(getattr(a, name)) == _digest(getattr(b, name)), name
    catalog = pd.read_csv(a.catalog, dtype=str, keep_default_na=False)
    labels = pd.read_parquet(a.labels)
    assert len(labels) == 700 and set(labels["split"]) == {"train", "val", "test"}
    assert catalog["item_id"].isin(labels["item_id"]).sum() >= 700  # every product is listed
    assert len(catalog) > 700  # plus defective rows for the quarantine
    assert (labels["fit"].isna() == ~labels["category"].isin(["t-shirt", "trousers", "pullover", "dress", "coat", "shirt"])).all()
    silent = 1 - labels["text_names_color"].mean()
    assert 0.4 < silent < 0.75  # colour is often absent from the text, so the image matters


def test_colours_follow_the_category_skew(fake_fmnist, tmp_path):
    labels = pd.read_parquet(build_demo_catalog(tmp_path, DemoCatalogConfig(fashion_mnist_dir=str(fake_fmnist)), progress=False).labels)
    trousers = labels[labels["category"] == "trousers"]["color"].value_counts(normalize=True)
    favoured = max(COLOR_SKEW["trousers"], key=COLOR_SKEW["trousers"].get)
    assert trousers.idxmax() == favoured and trousers.max() > 1.5 / len(PALETTE)


def test_cross_references_name_other_products_and_the_lexicon_skips_them(fake_fmnist, tmp_path):
    from ml.attributes.lexicon import LexiconTeacher
    from ml.attributes.taxonomy import Taxonomy

    config = DemoCatalogConfig(fashion_mnist_dir=str(fake_fmnist), cross_reference_rate=0.5)
    built = build_demo_catalog(tmp_path, config, progress=False)
    labels = pd.read_parquet(built.labels).set_index("item_id")
    catalog = pd.read_csv(built.catalog, dtype=str, keep_default_na=False)
    catalog = catalog[catalog["item_id"].isin(labels.index)].drop_duplicates("item_id").set_index("item_id")
    assert 0.4 < labels["text_cross_reference"].mean() < 0.6
    crossed = labels.index[labels["text_cross_reference"]]
    lexicon = LexiconTeacher(Taxonomy.load("fashion"))
    aliases = json.loads((built.root / ALIASES_FILE).read_text())  # the surface forms evaluation maps back to true values
    blind = LexiconTeacher(Taxonomy.load("fashion"), other_product_cues=())
    misled = 0
    for item in crossed:
        text = catalog.at[item, "description"]
        read = {(t, aliases.get(v, v)) for t, v, _ in lexicon.extract(text)}
        assert all(labels.at[item, t] == v for t, v in read if t in ("category", "color")), (text, read)
        colors = {aliases.get(v, v) for t, v, _ in blind.extract(text) if t == "color"}
        misled += bool(colors - {labels.at[item, "color"]})
    assert misled > len(crossed) / 3  # without the cues a word-matcher is led astray


def test_tint_puts_colour_where_the_garment_is():
    gray = np.zeros((2, 2), np.uint8)
    gray[0, 0] = 255
    out = tint(gray, (200, 30, 40))
    assert tuple(out[0, 0]) == (200, 30, 40) and tuple(out[1, 1]) == (255, 255, 255)


def test_demand_is_head_heavy_and_sized_by_parameter():
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({
        "category": rng.choice(["dress", "coat", "bag"], 500), "color": rng.choice(list(PALETTE), 500),
        "material": rng.choice(["cotton", "wool"], 500), "style": "casual", "season": "summer", "fit": None,
    })
    small = simulate_search_demand(labels, DemandModel(n_queries=1_000))
    large = simulate_search_demand(labels, DemandModel(n_queries=20_000))
    assert small["count"].sum() == 1_000 and large["count"].sum() == 20_000
    assert len(large) > len(small)  # a bigger log reaches further into the tail
    top = large["count"].iloc[: max(1, len(large) // 10)].sum() / large["count"].sum()
    assert top > 0.5  # the top tenth of distinct queries carries most of the traffic
