"""The demo catalog: Fashion-MNIST products dressed up as a shop's catalog file.

Writes, under one folder: `catalog.csv` (what a merchant would upload, with a few defective
rows so the quarantine has work), `images/` (PNG per product), `labels.parquet` (ground truth,
read only by evaluation) and `search_demand.csv` (a simulated query log). Seeded: the same
seed gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from ml.catalog import demo_world as world
from ml.catalog.demand import DemandModel, simulate_search_demand
from ml.catalog.fashion_mnist import CLASS_NAMES, find_fashion_mnist, load_split

CATALOG_FILE, LABELS_FILE, DEMAND_FILE, MANIFEST_FILE = "catalog.csv", "labels.parquet", "search_demand.csv", "demo_manifest.json"
ALIASES_FILE = "label_aliases.json"  # surface form -> true value, so evaluation can read any vocabulary
DEFECT_KINDS = (
    "empty_title", "bad_price", "missing_id", "duplicate_id", "image_not_found", "not_an_image",
    "path_escape", "unsupported_scheme",
)


class DemoCatalogConfig(BaseModel):
    seed: int = 0
    limit: int | None = Field(None, ge=1, description="use only the first N images of each split (tests)")
    val_fraction: float = Field(0.08, ge=0, lt=1, description="share of the train split held for calibration")
    defect_rate: float = Field(0.001, ge=0, le=0.5, description="extra defective rows, as a share of items")
    color_jitter: int = Field(10, ge=0, le=60)
    cross_reference_rate: float = Field(0.1, ge=0, le=1, description="share of descriptions that also name another product "
                                        "(\"Also available in navy and olive.\", \"Pairs well with our black leather boots.\")")
    demand: DemandModel = DemandModel()
    fashion_mnist_dir: str | None = None


@dataclass(frozen=True)
class DemoCatalog:
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def labels(self) -> Path:
        return self.root / LABELS_FILE

    @property
    def demand(self) -> Path:
        return self.root / DEMAND_FILE


def _pick(rng: np.random.Generator, weights: dict[str, float], extra_uniform: tuple[str, ...] = ()) -> str:
    names = list(dict.fromkeys([*extra_uniform, *weights]))
    w = np.array([weights.get(n, 1.0 if extra_uniform else 0.0) for n in names], dtype=float)
    return names[rng.choice(len(names), p=w / w.sum())]


def tint(gray: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """White background, the garment's brightness as the amount of colour (product-photo look)."""
    v = gray.astype(np.float32)[..., None] / 255.0
    out = 255.0 * (1.0 - v) + np.asarray(color, np.float32) * v
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_BRAND_P = np.arange(1, len(world.BRANDS) + 1, dtype=float) ** -0.8
_BRAND_P /= _BRAND_P.sum()


def _sample_truth(rng: np.random.Generator, category: str) -> dict:
    return {
        "category": category,
        "color": _pick(rng, world.COLOR_SKEW[category], tuple(world.PALETTE)),
        "material": _pick(rng, world.MATERIALS[category]),
        "style": _pick(rng, world.STYLES[category]),
        "season": _pick(rng, world.SEASONS[category]),
        "fit": _pick(rng, world.FITS) if category in world.GARMENTS else None,
        "brand": world.BRANDS[rng.choice(len(world.BRANDS), p=_BRAND_P)],
    }


def _say(rng: np.random.Generator, value: str) -> str:
    return str(rng.choice(world.SYNONYMS.get(value, (value,))))


def compose_text(rng: np.random.Generator, truth: dict) -> tuple[str, str, dict[str, bool]]:
    """(title, description, which attribute types the text names)."""
    named = {}
    title_mods: list[str] = []
    sentences: list[str] = []
    for kind in ("brand", "fit", "color", "material", "style", "season"):
        value = truth.get(kind)
        in_title_p, in_desc_p = world.MENTION_RATE[kind]
        in_title = value is not None and rng.random() < in_title_p
        in_desc = value is not None and rng.random() < in_desc_p
        named[kind] = bool(in_title or in_desc)
        if in_title:
            title_mods.append(value if kind == "brand" else _say(rng, value))
        if in_desc:
            word = _say(rng, value)
            templates = {
                "fit": (f"{word.capitalize()} fit.", f"Cut for a {word} fit."),
                "color": (f"Shown in {word}.", f"Colour: {word}."),
                "material": (f"Made from {word}.", f"{word.capitalize()} construction."),
                "style": (f"A {word} look for any day.", f"{word.capitalize()} styling."),
                "season": (f"Perfect for {word}.", f"Part of our {word} collection."),
            }[kind]
            sentences.append(str(rng.choice(templates)))
    if len(title_mods) > 2 and rng.random() < 0.3:  # "Cotton Red Tee" as often as "Red Cotton Tee"
        i = int(rng.integers(1, len(title_mods)))
        title_mods[i - 1], title_mods[i] = title_mods[i], title_mods[i - 1]
    title = " ".join([*title_mods, _say(rng, truth["category"])])
    if rng.random() < 0.7:
        title = " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in title.split())
    sentences += list(rng.choice(world.FILLER, size=int(rng.integers(1, 3)), replace=False))
    rng.shuffle(sentences)
    named["category"] = True
    return title, " ".join(sentences), named


def cross_reference(rng: np.random.Generator, truth: dict) -> str:
    """A sentence about other products: a colour variant or a cross-sell. It never names the
    item's own colour or category, so its colour and category words are false leads."""
    template = str(rng.choice(world.CROSS_REFERENCES[str(rng.choice(list(world.CROSS_REFERENCES)))]))
    other = str(rng.choice([c for c in world.CATEGORIES if c != truth["category"]]))
    colors = rng.choice([c for c in world.PALETTE if c != truth["color"]], size=2, replace=False)
    return template.format(color=_say(rng, str(colors[0])), color2=_say(rng, str(colors[1])), category=_say(rng, other),
                           material=_say(rng, _pick(rng, world.MATERIALS[other])), style=_say(rng, _pick(rng, world.STYLES[other])))


def _price(rng: np.random.Generator, truth: dict) -> float:
    base = world.BASE_PRICE[truth["category"]] * world.MATERIAL_PRICE.get(truth["material"], 1.0)
    return round(float(np.floor(base * rng.lognormal(0.0, 0.3))) + 0.99, 2)


def _defect_rows(rng: np.random.Generator, rows: list[dict], n: int, root: Path) -> list[dict]:
    (root / "images" / "broken").mkdir(parents=True, exist_ok=True)
    (root / "images" / "broken" / "notes.png").write_text("this is a text file with a .png name\n")
    defects = []
    for k in range(n):
        kind = DEFECT_KINDS[k % len(DEFECT_KINDS)]
        donor = rows[int(rng.integers(len(rows)))]
        row = {**donor, "item_id": f"defect-{k:05d}", "title": donor["title"] + " (relisted)"}
        if kind == "empty_title":
            row["title"] = "  "
        elif kind == "bad_price":
            row["price"] = str(rng.choice(["-5.00", "free", "1e309"]))
        elif kind == "missing_id":
            row["item_id"] = ""
        elif kind == "duplicate_id":
            row["item_id"] = donor["item_id"]
        elif kind == "image_not_found":
            row["image_uri"] = f"images/missing/{k}.png"
        elif kind == "not_an_image":
            row["image_uri"] = "images/broken/notes.png"
        elif kind == "path_escape":
            row["image_uri"] = "../../../etc/hostname"
        elif kind == "unsupported_scheme":
            row["image_uri"] = f"ftp://images.example/{k}.png"
        defects.append(row)
    return defects


def build_demo_catalog(out_dir: str | Path, config: DemoCatalogConfig | None = None, progress: bool = True) -> DemoCatalog:
    """Write the demo catalog under `out_dir`; deterministic in `config`."""
    config = config or DemoCatalogConfig()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    source = find_fashion_mnist(config.fashion_mnist_dir)
    rng = np.random.default_rng(config.seed)
    xref_rng = np.random.default_rng([config.seed, 1])  # its own stream: the rate leaves every other draw as it was
    rows: list[dict] = []
    truths: list[dict] = []
    index = 0
    for split in ("train", "test"):
        images, labels = load_split(source, split)
        if config.limit:
            images, labels = images[: config.limit], labels[: config.limit]
        is_val = rng.random(len(images)) < config.val_fraction if split == "train" else np.zeros(len(images), bool)
        stream = tqdm(zip(images, labels, is_val), total=len(images), desc=f"demo {split}", disable=not progress, mininterval=2)
        for position, (gray, label, val) in enumerate(stream):
            item_id = f"p{index:06d}"
            truth = _sample_truth(rng, CLASS_NAMES[label])
            title, description, named = compose_text(rng, truth)
            cross_referenced = bool(xref_rng.random() < config.cross_reference_rate)
            if cross_referenced:
                description = f"{description} {cross_reference(xref_rng, truth)}"
            color = np.clip(np.asarray(world.PALETTE[truth["color"]]) + rng.integers(-config.color_jitter, config.color_jitter + 1, 3), 0, 255)
            rel = f"images/{index // 1000:03d}/{item_id}.png"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(tint(gray, tuple(int(c) for c in color))).save(path, compress_level=1)
            rows.append({
                "item_id": item_id, "title": title, "description": description, "image_uri": rel,
                "price": f"{_price(rng, truth):.2f}",
                "brand": truth["brand"] if rng.random() < 0.9 else "",
                "category": world.DEPARTMENT[truth["category"]] if rng.random() < 0.8 else "",
            })
            truths.append({
                "item_id": item_id, **truth, "split": "test" if split == "test" else ("val" if val else "train"),
                "fashion_mnist_split": split, "fashion_mnist_index": position,
                **{f"text_names_{k}": v for k, v in named.items()}, "text_cross_reference": cross_referenced,
            })
            index += 1
    defects = _defect_rows(rng, rows, max(len(DEFECT_KINDS), round(config.defect_rate * len(rows))), root)
    order = rng.permutation(len(rows) + len(defects))  # defects scattered through the file, not at its end
    catalog = pd.DataFrame(rows + defects).iloc[order]
    catalog.to_csv(root / CATALOG_FILE, index=False)
    labels = pd.DataFrame(truths)
    labels.to_parquet(root / LABELS_FILE, index=False)
    aliases = {form: value for value, forms in world.SYNONYMS.items() for form in forms if form != value}
    (root / ALIASES_FILE).write_text(json.dumps(aliases, indent=1, sort_keys=True))
    demand = simulate_search_demand(labels, config.demand)
    demand.to_csv(root / DEMAND_FILE, index=False)
    manifest = {"config": config.model_dump(mode="json"), "items": len(rows), "defect_rows": len(defects), "queries": int(demand["count"].sum())}
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return DemoCatalog(root)
