"""The dual-encoder factory, training (loss falls, exact resume, early stop) and the faiss index."""

import numpy as np
import pandas as pd
import pytest
import torch

from ml.embedding.ann import build_index, load_index, recall_against_exact, save_index
from ml.embedding.factory import ModelUnavailable, create_dual_encoder, save_dual_encoder
from ml.embedding.train import TrainConfig, build_training_data, train_dual_encoder

COLORS = {"red": (200, 30, 40), "blue": (35, 75, 200), "green": (40, 145, 60)}


def tiny_data(n=96, seed=0):
    """Squares of a colour; the text names the colour for half the items only."""
    rng = np.random.default_rng(seed)
    names = rng.choice(list(COLORS), n)
    pixels = np.full((n, 32, 32, 3), 255, np.uint8)
    for i, name in enumerate(names):
        pixels[i, 8:24, 8:24] = COLORS[name]
    ids = [f"i{i}" for i in range(n)]
    texts = [f"{name} tee" if i % 2 else "a tee" for i, name in enumerate(names)]
    teacher = pd.DataFrame([(ids[i], "color", names[i], 0.95) for i in range(1, n, 2)] + [(i, "category", "tee", 0.95) for i in ids],
                           columns=["item_id", "type", "value", "confidence"])
    return build_training_data(ids, pixels, texts, teacher, min_items=3), names


def test_factory_round_trips_open_clip_folders(tmp_path):
    encoder = create_dual_encoder("shopwindow-tiny-32")
    pixels = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    before = encoder.encode_images(pixels)
    folder = save_dual_encoder(encoder, tmp_path / "m")
    assert (folder / "open_clip_model.safetensors").exists() and (folder / "open_clip_config.json").exists()
    again = create_dual_encoder(f"local-dir:{folder}")
    np.testing.assert_allclose(again.encode_images(pixels), before, atol=1e-6)
    assert np.allclose(np.linalg.norm(again.encode_texts(["red tee", "blue coat"]), axis=1), 1)


@pytest.mark.parametrize(("name", "pretrained", "message"), [
    ("ViT-B-32", "laion2b_s34b_b79k", "Hugging Face Hub"), ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None, "Hugging Face Hub"),
    ("ViT-B-32", "no-such-tag", "unknown pretrained tag"), ("not-a-model", None, "not a custom config"),
    ("local-dir:/nonexistent/folder", None, "no such folder"),
])
def test_unavailable_models_fail_fast_and_say_what_to_do(monkeypatch, name, pretrained, message):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable, match=message):
        create_dual_encoder(name, pretrained)
    assert time.perf_counter() - start < 10  # a clear error, never a hang


def _colour_accuracy(encoder, data, names):
    phrases = encoder.encode_texts(list(COLORS))
    predicted = np.array(list(COLORS))[(encoder.encode_images(data.pixels) @ phrases.T).argmax(1)]
    return float((predicted == names).mean())


def test_training_learns_colour_from_the_image_and_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    data, names = tiny_data()
    config = TrainConfig(epochs=12, batch_size=16, lr=3e-3, eval_every_steps=20, patience=100, val_fraction=0.1, test_fraction=0.0)
    straight = create_dual_encoder("shopwindow-tiny-32")
    start_state = {k: v.clone() for k, v in straight.model.state_dict().items()}
    before = _colour_accuracy(straight, data, names)
    result = train_dual_encoder(straight, data, config, tmp_path / "a", progress=False)
    assert result.steps == result.history[-1]["step"] and result.history[0]["val_total_loss"] > result.best_val_loss
    assert _colour_accuracy(straight, data, names) > max(before, 0.8)  # text names the colour for half the items only

    interrupted = create_dual_encoder("shopwindow-tiny-32")
    interrupted.model.load_state_dict(start_state)
    part = train_dual_encoder(interrupted, data, config, tmp_path / "b", progress=False, stop_after_steps=25)
    assert part.stopped.startswith("interrupted") and part.steps == 25
    resumed = create_dual_encoder("shopwindow-tiny-32")  # a fresh process would start like this
    rest = train_dual_encoder(resumed, data, config, tmp_path / "b", progress=False)
    assert rest.resumed_from == 25 and rest.steps == result.steps
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-4, atol=1e-5)


def test_early_stopping_and_config_guard(tmp_path):
    data, _ = tiny_data(48)
    config = TrainConfig(epochs=40, batch_size=16, lr=0.5, eval_every_steps=2, patience=2, val_fraction=0.2, test_fraction=0.0)
    result = train_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), data, config, tmp_path / "c", progress=False)
    assert result.stopped.startswith("early stop") and result.steps < 40 * 2
    other = config.model_copy(update={"lr": 0.1})
    with pytest.raises(ValueError, match="another training config"):
        train_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), data, other, tmp_path / "c", progress=False)


def test_index_exact_and_ivf_recall(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 16)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.standard_normal((20_000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact, info = build_index(vectors)
    assert info.kind == "flat" and recall_against_exact(exact, vectors, vectors[:200]) == 1.0
    ivf, info = build_index(vectors, kind="ivf", target_recall=0.95)
    assert info.kind == "ivf" and info.nlist > 1 and recall_against_exact(ivf, vectors, vectors[:500]) >= 0.9
    save_index(ivf, info, tmp_path / "idx")
    loaded, meta = load_index(tmp_path / "idx")
    assert loaded.nprobe == info.nprobe and meta["kind"] == "ivf"
