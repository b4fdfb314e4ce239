"""Batch encoding: chunked local encoding and the Ray Data actor-pool path give the same vectors."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.compute import ComputeSettings
from ml.embedding.encode import encode_catalog, item_text, read_embeddings
from ml.embedding.factory import create_dual_encoder, save_dual_encoder


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    rng = np.random.default_rng(0)
    n_images = 40
    pixels = rng.integers(0, 255, (n_images, 32, 32, 3), dtype=np.uint8)
    hashes = [f"h{i:03d}" for i in range(n_images)]
    images = pa.table({"image_hash": hashes, "pixels": pa.array([p.tobytes() for p in pixels], pa.binary(32 * 32 * 3))},
                      schema=pa.schema([("image_hash", pa.string()), ("pixels", pa.binary(3072))], metadata={"image_size": "32"}))
    pq.write_table(images, root / "images.parquet")
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(60)], "title": [f"item {i} red tee" for i in range(60)],
                          "description": [None if i % 3 else "cotton" for i in range(60)], "image_hash": [hashes[i % n_images] for i in range(60)]})
    items.to_parquet(root / "items.parquet", index=False)
    model = save_dual_encoder(create_dual_encoder("shopwindow-tiny-32"), root / "model")
    return root, model, items, pixels


def test_local_encoding_streams_in_chunks_and_matches_direct_calls(small_catalog, tmp_path):
    root, model, items, pixels = small_catalog
    stats = encode_catalog(str(model), str(root / "items.parquet"), str(root / "images.parquet"), str(tmp_path / "e.parquet"),
                           ComputeSettings(), batch_rows=7, progress=False)
    assert (stats.items, stats.images) == (60, 40)
    ids, image, text = read_embeddings(str(tmp_path / "e.parquet"))
    encoder = create_dual_encoder(f"local-dir:{model}")
    np.testing.assert_allclose(image[:40], encoder.encode_images(pixels), atol=1e-5)
    np.testing.assert_allclose(image[40:], image[:20], atol=1e-6)  # shared images, one vector
    expected = encoder.encode_texts([item_text(t, d) for t, d in zip(items["title"], items["description"])])
    np.testing.assert_allclose(text, expected, atol=1e-5)
    assert ids == items["item_id"].tolist()


def test_a_one_cpu_local_ray_is_refused_before_it_starts(small_catalog, tmp_path):
    root, model, _, _ = small_catalog
    with pytest.raises(ValueError, match="workers >= 2"):
        encode_catalog(str(model), str(root / "items.parquet"), str(root / "images.parquet"), str(tmp_path / "e.parquet"),
                       ComputeSettings(backend="ray", workers=1), batch_rows=16, progress=False)
    assert not (tmp_path / "e.parquet").exists()


@pytest.mark.slow
def test_ray_actor_pool_gives_the_same_vectors(small_catalog, tmp_path):
    ray = pytest.importorskip("ray")
    root, model, _, _ = small_catalog
    outputs = {}
    for backend in ("local", "ray"):
        encode_catalog(str(model), str(root / "items.parquet"), str(root / "images.parquet"), str(tmp_path / f"{backend}.parquet"),
                       ComputeSettings(backend=backend, workers=2), batch_rows=16, progress=False)
        outputs[backend] = read_embeddings(str(tmp_path / f"{backend}.parquet"))
    ray.shutdown()
    local_ids, local_image, local_text = outputs["local"]
    ray_ids, ray_image, ray_text = outputs["ray"]
    order = [ray_ids.index(i) for i in local_ids]
    np.testing.assert_allclose(ray_image[order], local_image, atol=1e-5)
    np.testing.assert_allclose(ray_text[order], local_text, atol=1e-5)
