"""Reading ingested catalogs back: items, quarantine and the content-addressed image store."""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_table(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle, columns=columns).to_pandas()


def parquet_file_info(uri: str) -> tuple[int, pa.Schema]:
    """(row count, Arrow schema with its key-value metadata) without reading the data."""
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        return parquet.metadata.num_rows, parquet.schema_arrow


def iter_parquet(uri: str, batch_rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=columns)


def image_size(images_uri: str) -> int:
    return int(parquet_file_info(images_uri)[1].metadata[b"image_size"])


def pixels_from_column(column: pa.Array | pa.ChunkedArray, size: int) -> np.ndarray:
    """A fixed-size binary column of HWC RGB bytes -> uint8 N x S x S x 3, without copying."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    per_image = size * size * 3
    flat = np.frombuffer(column.buffers()[1], np.uint8, count=len(column) * per_image, offset=column.offset * per_image)
    return flat.reshape(len(column), size, size, 3)


def read_images(uri: str) -> tuple[list[str], np.ndarray]:
    """Return (image hashes, uint8 array N x S x S x 3) from an images.parquet."""
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    pixels = pixels_from_column(table.column("pixels"), int(table.schema.metadata[b"image_size"]))
    return table.column("image_hash").to_pylist(), pixels


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


def labelled_images(items_uri: str, images_uri: str, attributes_uri: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Items with their most confident category and colour (from the item_attributes table), and
    their pixels: the captions and images the generator and its judge learn from."""
    items = read_table(items_uri, ["item_id", "image_hash"])
    assigned = read_table(attributes_uri)
    top = (assigned[assigned["type"].isin(["category", "color"])].sort_values("confidence")
           .drop_duplicates(["item_id", "type"], keep="last").pivot(index="item_id", columns="type", values="phrase"))
    top = top.reindex(columns=["category", "color"])
    items = items.join(top, on="item_id").dropna(subset=["category"]).reset_index(drop=True)
    return items, item_pixels(items["image_hash"], images_uri)
