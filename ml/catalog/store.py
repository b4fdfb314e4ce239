"""Reading ingested catalogs back: items, quarantine and the content-addressed image store."""

from __future__ import annotations

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def read_table(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle, columns=columns).to_pandas()


def read_images(uri: str) -> tuple[list[str], np.ndarray]:
    """Return (image hashes, uint8 array N x S x S x 3) from an images.parquet."""
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    size = int(table.schema.metadata[b"image_size"])
    pixels = table.column("pixels").combine_chunks()
    buffer = np.frombuffer(pixels.buffers()[1], dtype=np.uint8, count=len(pixels) * size * size * 3, offset=pixels.offset * size * size * 3)
    return table.column("image_hash").to_pylist(), buffer.reshape(len(pixels), size, size, 3)


def item_pixels(image_hashes, images_uri: str) -> np.ndarray:
    """Pixels for each item (rows follow `image_hashes`), from the content-addressed store."""
    hashes, pixels = read_images(images_uri)
    position = {h: i for i, h in enumerate(hashes)}
    return pixels[[position[h] for h in image_hashes]]


def write_table(frame: pd.DataFrame, uri: str) -> str:
    """Parquet to a local path or fsspec URL, creating the folder."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        frame.to_parquet(handle, index=False)
    return uri
