"""A small CNN that names an image's category, trained on real catalog images; saved as
safetensors + a JSON config (never pickled)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from tqdm.auto import tqdm

from ml.catalog.splits import assign_splits


class ClassifierConfig(BaseModel):
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 32
    max_minutes: float = 3.0
    seed: int = 0


class CategoryNet(nn.Module):
    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())
        self.features = nn.Sequential(block(3, width), nn.MaxPool2d(2), block(width, 2 * width), nn.MaxPool2d(2), block(2 * width, 2 * width),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1] (the generator's range too)."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class CategoryJudge:
    def __init__(self, model: CategoryNet, classes: list[str]):
        self.model, self.classes = model.eval(), classes
        self.index = {c: i for i, c in enumerate(classes)}

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """images: N x 3 x H x W in [-1, 1] -> N x classes."""
        out = [self.model(images[i:i + 512]).softmax(-1) for i in range(0, len(images), 512)]
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))

    def predict(self, images: torch.Tensor) -> list[str]:
        return [self.classes[i] for i in self.probabilities(images).argmax(-1).tolist()]

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.model.state_dict(), str(folder / "classifier.safetensors"))
        (folder / "classifier.json").write_text(json.dumps({"classes": self.classes, "width": self.model.head.in_features // 2}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "CategoryJudge":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / "classifier.json").read_text())
        model = CategoryNet(len(meta["classes"]), meta["width"])
        model.load_state_dict(load_file(str(folder / "classifier.safetensors")))
        return cls(model, meta["classes"])


def train_category_judge(item_ids: list[str], pixels: np.ndarray, categories: list[str], config: ClassifierConfig | None = None) -> tuple[CategoryJudge, dict]:
    """Train on the train split (item-id hash), report accuracy on the test split."""
    config = config or ClassifierConfig()
    torch.manual_seed(config.seed)
    classes = sorted(set(categories))
    y = torch.tensor([classes.index(c) for c in categories])
    split = assign_splits(item_ids)
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    model = CategoryNet(len(classes), config.width)
    steps = config.epochs * max(1, len(train) // config.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=steps)
    rng = np.random.default_rng(config.seed)
    start, step = time.perf_counter(), 0
    model.train()
    with tqdm(total=steps, desc="train category judge", mininterval=2) as bar:
        while step < steps and time.perf_counter() - start < 60 * config.max_minutes:
            batch = rng.choice(train, config.batch_size, replace=False)
            x = to_tensor(pixels[batch])
            if rng.random() < 0.5:
                x = x.flip(3)  # products photographed facing either way
            loss = nn.functional.cross_entropy(model(x), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            bar.update()
    judge = CategoryJudge(model, classes)
    predicted = judge.probabilities(to_tensor(pixels[test])).argmax(-1)
    accuracy = float((predicted == y[test]).float().mean()) if len(test) else float("nan")
    return judge, {"test_accuracy": accuracy, "steps": step, "seconds": round(time.perf_counter() - start, 1), "classes": len(classes)}
