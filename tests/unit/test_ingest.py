"""Ingestion as a library: every reason, the duplicate rules, chunk boundaries, nothing lost."""

import json

import numpy as np
import pandas as pd
import pytest

from ml.catalog.contract import IngestSettings
from ml.catalog.ingest import ingest_snapshot, snapshot_catalog
from ml.catalog.store import read_images, read_table


def _ingest(catalog, tmp_path, **settings):
    out = tmp_path / "out"
    snapshot_catalog(str(catalog), str(out / "raw.parquet"), chunk_rows=settings.get("chunk_rows", 50_000))
    stats = ingest_snapshot(str(out / "raw.parquet"), str(catalog.parent), str(out), IngestSettings(**settings), progress=False)
    return stats, read_table(str(out / "items.parquet")), read_table(str(out / "quarantine.parquet")), out


def test_every_row_is_an_item_or_quarantined_with_its_reason(bad_catalog, tmp_path):
    source = pd.read_csv(bad_catalog, dtype=str, keep_default_na=False)
    stats, items, quarantine, _ = _ingest(bad_catalog, tmp_path)
    assert stats.rows == len(source) == stats.items + stats.quarantined
    assert sorted(items["source_row"].tolist() + quarantine["source_row"].tolist()) == list(range(len(source)))
    got = dict(zip(quarantine["source_row"], quarantine["reason"]))
    for row, expected in enumerate(source["expected_reason"]):
        assert got.get(row) == (expected or None), (row, source.iloc[row].to_dict())
    assert all(quarantine["detail"].str.len() > 0)
    raw = [json.loads(r) for r in quarantine["raw_json"]]
    assert all(r["expected_reason"] for r in raw)  # the whole original row is kept


def test_duplicates_follow_the_documented_rules(bad_catalog, tmp_path):
    _, items, quarantine, out = _ingest(bad_catalog, tmp_path)
    first = items.set_index("item_id")
    assert first.loc["ok-1", "title"] == "Red Cotton Dress"  # first valid row of an id wins
    assert first.loc["shares-image", "duplicate_image_of"] == "ok-1"  # shared image: kept, linked
    assert first.loc["shares-image", "image_hash"] == first.loc["ok-1", "image_hash"]
    hashes, pixels = read_images(str(out / "images.parquet"))
    assert sorted(hashes) == sorted(items["image_hash"].unique())  # each image stored once
    assert pixels.shape == (len(hashes), 32, 32, 3) and pixels.dtype == np.uint8
    red = pixels[hashes.index(first.loc["ok-1", "image_hash"])]
    assert tuple(red[16, 16]) == (200, 30, 40)


def test_chunk_boundaries_do_not_change_the_result(bad_catalog, tmp_path):
    _, items_big, q_big, _ = _ingest(bad_catalog, tmp_path / "a")
    _, items_small, q_small, _ = _ingest(bad_catalog, tmp_path / "b", chunk_rows=3)
    pd.testing.assert_frame_equal(items_big, items_small)
    pd.testing.assert_frame_equal(q_big.reset_index(drop=True), q_small.reset_index(drop=True))


def test_process_pool_gives_the_same_items(bad_catalog, tmp_path):
    from ml.compute import LocalBatchMapper

    out = tmp_path / "pool"
    snapshot_catalog(str(bad_catalog), str(out / "raw.parquet"))
    mapper = LocalBatchMapper(workers=2)
    try:
        ingest_snapshot(str(out / "raw.parquet"), str(bad_catalog.parent), str(out), IngestSettings(), mapper, progress=False)
    finally:
        mapper.close()
    _, inline_items, _, _ = _ingest(bad_catalog, tmp_path / "inline")
    pd.testing.assert_frame_equal(read_table(str(out / "items.parquet")), inline_items)


@pytest.mark.parametrize("price", ["nan", "inf", "1e309", "2000000"])
def test_prices_that_are_not_finite_or_too_high(tmp_path, price):
    from tests.conftest import solid_png

    solid_png(tmp_path / "a.png", (1, 2, 3))
    path = tmp_path / "c.csv"
    pd.DataFrame([{"item_id": "1", "title": "t", "image_uri": "a.png", "price": price}]).to_csv(path, index=False)
    stats, _, quarantine, _ = _ingest(path, tmp_path)
    assert stats.reasons == {"bad_price": 1}


def test_data_root_can_be_an_fsspec_url(bad_catalog):
    """The same code path writes to any fsspec filesystem (here the in-memory one)."""
    root = "memory://shopwindow-test/snap"
    snapshot_catalog(str(bad_catalog), f"{root}/raw.parquet")
    stats = ingest_snapshot(f"{root}/raw.parquet", str(bad_catalog.parent), root, IngestSettings(), progress=False)
    assert stats.items == 4
    assert len(read_table(f"{root}/items.parquet")) == 4
    assert read_images(f"{root}/images.parquet")[1].shape[0] == stats.unique_images


def test_a_partition_key_or_id_cannot_climb_out_of_the_data_root():
    """Dagster accepts '..' and '/' in a dynamic partition key added by hand; every state path is
    built by join_uri, which refuses them."""
    from ml.catalog.ingest import join_uri

    assert join_uri("/data/", "models", "shop-0123456789", "generator_v2") == "/data/models/shop-0123456789/generator_v2"
    for bad in ("..", "a/../../etc", "/etc/passwd", "a\\..\\b", "file:///etc"):
        with pytest.raises(ValueError, match="would leave"):
            join_uri("/data", "models", bad)
