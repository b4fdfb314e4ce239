"""Catalog ingestion in two passes, each streaming in chunks so memory stays bounded.

1. snapshot: the source file (CSV/Parquet/JSONL, local or fsspec) -> raw rows as Parquet
   strings, an immutable copy of what the user gave us.
2. ingest: raw rows -> validated items, a content-addressed image store (each distinct image
   once, as fixed-size RGB bytes) and a quarantine with one reason per rejected row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ml.catalog.contract import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ROW_NUMBER_COLUMN,
    IngestSettings,
    QuarantineReason,
)
from ml.catalog.images import ImageContext, load_images
from ml.catalog.readers import PARSE_ERROR_COLUMN, iter_catalog_chunks
from ml.catalog.store import iter_parquet, parquet_file_info
from ml.compute import BatchMapper, LocalBatchMapper

EXTRA_COLUMN = "extra_json"  # columns that first appear after the first chunk, as one JSON object
ITEMS_FILE, IMAGES_FILE, QUARANTINE_FILE, RAW_FILE = "items.parquet", "images.parquet", "quarantine.parquet", "raw.parquet"
IMAGE_BATCH = 256

QUARANTINE_SCHEMA = pa.schema(
    [
        (ROW_NUMBER_COLUMN, pa.int64()),
        ("item_id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw_json", pa.string()),
    ]
)


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(uri)


def join_uri(base: str, *parts: str) -> str:
    """`base`/part/...; a part from data (a partition key, a snapshot id) may not climb out of
    `base` or replace it: no '..' segment, no absolute path, no backslash, no URL scheme."""
    for part in parts:
        if part.startswith("/") or "\\" in part or "://" in part or ".." in part.split("/"):
            raise ValueError(f"path part {part!r} would leave {base!r}: partition keys and ids are plain names")
    return "/".join([base.rstrip("/"), *parts])


def file_digest(uri: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- pass 1: snapshot


@dataclass
class SnapshotStats:
    rows: int
    columns: list[str]
    seconds: float


def snapshot_catalog(source_uri: str, raw_uri: str, chunk_rows: int = 50_000) -> SnapshotStats:
    """Copy the source's rows, as strings, into one Parquet file; columns fixed by the first chunk."""
    start = time.perf_counter()
    fs, path = _fs(raw_uri)
    fs.makedirs(fs._parent(path), exist_ok=True)
    writer: pq.ParquetWriter | None = None
    columns: list[str] = []
    rows = 0
    try:
        for chunk in iter_catalog_chunks(source_uri, chunk_rows):
            if writer is None:
                columns = [c for c in chunk.columns if c != ROW_NUMBER_COLUMN]
                for column in (*REQUIRED_COLUMNS, PARSE_ERROR_COLUMN):
                    if column not in columns:
                        columns.append(column)
                schema = pa.schema([(c, pa.string()) for c in columns] + [(EXTRA_COLUMN, pa.string()), (ROW_NUMBER_COLUMN, pa.int64())])
                writer = pq.ParquetWriter(path, schema, filesystem=fs, compression="zstd")
            writer.write_table(pa.Table.from_pandas(_conform(chunk, columns), schema=writer.schema, preserve_index=False))
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return SnapshotStats(rows=rows, columns=columns, seconds=time.perf_counter() - start)


def _conform(chunk: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    extra = [c for c in chunk.columns if c not in columns and c != ROW_NUMBER_COLUMN]
    out = chunk.reindex(columns=columns)
    out = out.astype(object).where(out.notna(), None)
    if extra:
        records = chunk[extra].to_dict("records")
        out[EXTRA_COLUMN] = [json.dumps({k: v for k, v in r.items() if v is not None}) or None for r in records]
    else:
        out[EXTRA_COLUMN] = None
    out[ROW_NUMBER_COLUMN] = chunk[ROW_NUMBER_COLUMN].astype("int64")
    return out


# ---------------------------------------------------------------- pass 2: validate + images


@dataclass
class IngestStats:
    rows: int = 0
    items: int = 0
    quarantined: int = 0
    unique_images: int = 0
    shared_image_items: int = 0
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "items": self.items,
            "quarantined": self.quarantined,
            "unique_images": self.unique_images,
            "shared_image_items": self.shared_image_items,
            "reasons": dict(sorted(self.reasons.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds else None,
        }


def _normalised_title(titles: pd.Series) -> pd.Series:
    return titles.str.casefold().str.split().str.join(" ")


class _Ingestor:
    def __init__(self, out_uri: str, ctx: ImageContext, mapper: BatchMapper, columns: list[str]):
        self.ctx = ctx
        self.mapper = mapper
        self.stats = IngestStats()
        self.seen_ids: set[str] = set()
        self.image_cache: dict[str, tuple[str | None, str, str | None, int, int]] = {}
        self.image_owner: dict[str, str] = {}  # image hash -> first item holding it (stored images only)
        self.listings: set[tuple[str, str]] = set()
        size = ctx.settings.image_size
        self.pixel_bytes = size * size * 3
        self.extra_columns = [c for c in columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, PARSE_ERROR_COLUMN, ROW_NUMBER_COLUMN)]
        fs, base = _fs(out_uri)
        fs.makedirs(base, exist_ok=True)
        item_schema = pa.schema(
            [("item_id", pa.string()), ("title", pa.string()), ("description", pa.string()), ("price", pa.float64()),
             ("brand", pa.string()), ("category", pa.string()), ("image_uri", pa.string()), ("image_hash", pa.string()),
             ("image_width", pa.int32()), ("image_height", pa.int32()), ("duplicate_image_of", pa.string()),
             (ROW_NUMBER_COLUMN, pa.int64())]
            + [(c, pa.string()) for c in self.extra_columns]
        )
        image_schema = pa.schema([("image_hash", pa.string()), ("pixels", pa.binary(self.pixel_bytes))],
                                 metadata={"image_size": str(size), "layout": "HWC uint8 RGB"})
        open_writer = lambda name, schema: pq.ParquetWriter(f"{base}/{name}", schema, filesystem=fs, compression="zstd")
        self.items_writer = open_writer(ITEMS_FILE, item_schema)
        self.images_writer = open_writer(IMAGES_FILE, image_schema)
        self.quarantine_writer = open_writer(QUARANTINE_FILE, QUARANTINE_SCHEMA)

    def close(self) -> None:
        for writer in (self.items_writer, self.images_writer, self.quarantine_writer):
            writer.close()

    def _images(self, uris: list[str]) -> dict[str, tuple[bytes, list[str]]]:
        """Load images not seen before; return pixels of content not yet in the store."""
        todo = [u for u in dict.fromkeys(uris) if u not in self.image_cache]
        batches = [todo[i : i + IMAGE_BATCH] for i in range(0, len(todo), IMAGE_BATCH)]
        fresh: dict[str, tuple[bytes, list[str]]] = {}
        for batch, results in zip(batches, self.mapper.map(partial(load_images, ctx=self.ctx), batches)):
            for uri, r in zip(batch, results):
                self.image_cache[uri] = (r.reason, r.detail, r.image_hash, r.width, r.height)
                if r.image_hash is not None and r.image_hash not in self.image_owner:
                    fresh.setdefault(r.image_hash, (r.pixels, []))[1].append(uri)
        return fresh

    def _store(self, fresh: dict[str, tuple[bytes, list[str]]]) -> None:
        """Write pixels an item claimed; forget the rest so a later row loads them again."""
        claimed = [h for h in fresh if h in self.image_owner]
        if claimed:
            pixels = pa.array([fresh[h][0] for h in claimed], pa.binary(self.pixel_bytes))
            self.images_writer.write_table(pa.table({"image_hash": claimed, "pixels": pixels}, schema=self.images_writer.schema))
            self.stats.unique_images += len(claimed)
        for image_hash, (_, uris) in fresh.items():
            if image_hash not in self.image_owner:
                for uri in uris:
                    del self.image_cache[uri]

    def add(self, chunk: pd.DataFrame) -> None:
        n = len(chunk)
        reason = np.full(n, None, dtype=object)
        detail = np.full(n, "", dtype=object)

        def flag(mask: np.ndarray, code: QuarantineReason, text) -> None:
            hit = mask & pd.isna(reason)
            reason[hit] = code.value
            detail[hit] = text[hit] if isinstance(text, np.ndarray) else text

        item_id = chunk["item_id"].astype(object).where(chunk["item_id"].notna(), None).str.strip()
        title = chunk["title"].str.strip()
        price_text = chunk["price"] if "price" in chunk else pd.Series(None, index=chunk.index, dtype=object)
        price = pd.to_numeric(price_text.str.strip(), errors="coerce")

        flag(chunk[PARSE_ERROR_COLUMN].notna().to_numpy(), QuarantineReason.MALFORMED_ROW, chunk[PARSE_ERROR_COLUMN].to_numpy(dtype=object))
        flag((item_id.isna() | (item_id == "")).to_numpy(), QuarantineReason.MISSING_ID, "item_id is empty")
        flag((title.isna() | (title == "")).to_numpy(), QuarantineReason.EMPTY_TITLE, "title is empty")
        bad_price = price_text.notna() & (price.isna() | (price < 0) | (price > self.ctx.settings.max_price) | ~np.isfinite(price))
        flag(bad_price.to_numpy(), QuarantineReason.BAD_PRICE,
             ("price " + price_text.astype(str) + f" is not a number in [0, {self.ctx.settings.max_price:g}]").to_numpy(dtype=object))

        uris = chunk["image_uri"].to_numpy(dtype=object)
        pending = pd.isna(reason)
        fresh = self._images([u for u in uris[pending] if u is not None])
        hashes = np.full(n, None, dtype=object)
        widths = np.zeros(n, dtype=np.int32)
        heights = np.zeros(n, dtype=np.int32)
        for i in np.flatnonzero(pending):
            uri = uris[i]
            if uri is None:
                reason[i], detail[i] = QuarantineReason.MISSING_IMAGE_URI.value, "image_uri is empty"
                continue
            code, text, image_hash, width, height = self.image_cache[uri]
            if code is not None:
                reason[i], detail[i] = str(code), text
            else:
                hashes[i], widths[i], heights[i] = image_hash, width, height

        ids = item_id.to_numpy(dtype=object)
        keys = _normalised_title(title).to_numpy(dtype=object)
        shared_with = np.full(n, None, dtype=object)
        for i in np.flatnonzero(pd.isna(reason)):
            if ids[i] in self.seen_ids:
                reason[i], detail[i] = QuarantineReason.DUPLICATE_ID.value, f"item_id {ids[i]!r} already ingested from an earlier row"
                continue
            listing = (hashes[i], keys[i])
            if listing in self.listings:
                reason[i] = QuarantineReason.DUPLICATE_LISTING.value
                detail[i] = f"same image and title as item {self.image_owner[hashes[i]]!r}"
                continue
            self.seen_ids.add(ids[i])
            self.listings.add(listing)
            owner = self.image_owner.setdefault(hashes[i], ids[i])
            if owner != ids[i]:
                shared_with[i] = owner
        self._store(fresh)

        ok = pd.isna(reason)
        self._write_items(chunk[ok], ids[ok], title[ok], price[ok], hashes[ok], widths[ok], heights[ok], shared_with[ok])
        self._write_quarantine(chunk[~ok], ids[~ok], reason[~ok], detail[~ok])
        self.stats.rows += n
        self.stats.items += int(ok.sum())
        self.stats.quarantined += int((~ok).sum())
        self.stats.shared_image_items += int(pd.notna(shared_with[ok]).sum())
        self.stats.reasons.update(reason[~ok].tolist())

    def _write_items(self, rows, ids, title, price, hashes, widths, heights, shared_with) -> None:
        if not len(rows):
            return
        column = lambda name: rows[name].to_numpy(dtype=object) if name in rows else np.full(len(rows), None, dtype=object)
        data = {
            "item_id": ids, "title": title.to_numpy(dtype=object), "description": column("description"),
            "price": price.to_numpy(dtype=np.float64), "brand": column("brand"), "category": column("category"),
            "image_uri": column("image_uri"), "image_hash": hashes, "image_width": widths, "image_height": heights,
            "duplicate_image_of": shared_with, ROW_NUMBER_COLUMN: rows[ROW_NUMBER_COLUMN].to_numpy(dtype=np.int64),
        }
        data.update({c: column(c) for c in self.extra_columns})
        self.items_writer.write_table(pa.table(data, schema=self.items_writer.schema))

    def _write_quarantine(self, rows, ids, reasons, details) -> None:
        if not len(rows):
            return
        originals = rows.drop(columns=[ROW_NUMBER_COLUMN, PARSE_ERROR_COLUMN]).to_dict("records")
        raw_json = [json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) for r in originals]
        self.quarantine_writer.write_table(
            pa.table(
                {ROW_NUMBER_COLUMN: rows[ROW_NUMBER_COLUMN].to_numpy(dtype=np.int64), "item_id": ids,
                 "reason": reasons, "detail": details, "raw_json": raw_json},
                schema=QUARANTINE_SCHEMA,
            )
        )


def iter_raw_chunks(raw_uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for batch in iter_parquet(raw_uri, chunk_rows):
        frame = batch.to_pandas()
        yield frame.astype({c: object for c in frame.columns if c != ROW_NUMBER_COLUMN})


def ingest_snapshot(
    raw_uri: str,
    catalog_dir: str,
    out_uri: str,
    settings: IngestSettings,
    mapper: BatchMapper | None = None,
    progress: bool = True,
) -> IngestStats:
    """Validate raw rows into `out_uri`/{items,images,quarantine}.parquet; never raises on a bad row."""
    start = time.perf_counter()
    mapper = mapper or LocalBatchMapper(workers=1)
    rows, schema = parquet_file_info(raw_uri)
    ingestor = _Ingestor(out_uri, ImageContext(catalog_dir=catalog_dir, settings=settings), mapper, schema.names)
    try:
        with tqdm(total=rows, unit="row", desc="ingest", disable=not progress, mininterval=2) as bar:
            for chunk in iter_raw_chunks(raw_uri, settings.chunk_rows):
                ingestor.add(chunk)
                bar.update(len(chunk))
    finally:
        ingestor.close()
    ingestor.stats.seconds = time.perf_counter() - start
    return ingestor.stats
