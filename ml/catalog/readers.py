"""Chunked readers for CSV, Parquet and JSONL catalogs, local or behind any fsspec URL.

Every chunk comes back with all values as strings (or None), so a bad value in one row is a
validation matter for that row, not a parse failure for the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO

import fsspec
import pandas as pd
import pyarrow.parquet as pq

from ml.catalog.contract import REQUIRED_COLUMNS, ROW_NUMBER_COLUMN, SUPPORTED_FORMATS, CatalogFormatError

PARSE_ERROR_COLUMN = "_parse_error"  # set on JSONL lines that are not a JSON object


def catalog_format(uri: str) -> str:
    suffix = PurePosixPath(uri.split("?", 1)[0]).suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise CatalogFormatError(
            f"{uri}: unsupported catalog format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(sorted(SUPPORTED_FORMATS))}"
        )
    return SUPPORTED_FORMATS[suffix]


@contextmanager
def _open(uri: str) -> Iterator[IO[bytes]]:
    try:
        with fsspec.open(uri, "rb") as handle:
            yield handle
    except FileNotFoundError as exc:
        raise CatalogFormatError(f"{uri}: file not found") from exc


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    def to_text(value: object) -> str | None:
        if value is None or (isinstance(value, float) and value != value):
            return None
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, float) and value.is_integer():
            return str(int(value)) if abs(value) < 1e15 else str(value)
        return str(value)

    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.astype(object).map(to_text) if len(frame) else frame.astype(object)


def _csv_chunks(handle: IO[bytes], uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(
            handle, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows, encoding_errors="replace"
        )
        for chunk in reader:
            yield chunk
    except pd.errors.EmptyDataError as exc:
        raise CatalogFormatError(f"{uri}: the file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise CatalogFormatError(f"{uri}: not a well-formed CSV file: {exc}") from exc


def _parquet_chunks(handle: IO[bytes], uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for non-Parquet bytes
        raise CatalogFormatError(f"{uri}: not a readable Parquet file: {exc}") from exc
    if parquet.metadata.num_rows == 0:
        yield pd.DataFrame(columns=parquet.schema_arrow.names)
        return
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def _jsonl_chunks(handle: IO[bytes], uri: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    rows: list[dict] = []
    for line_number, raw in enumerate(handle):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            rows.append({PARSE_ERROR_COLUMN: "blank line"})
        else:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                record = {PARSE_ERROR_COLUMN: f"line {line_number + 1}: invalid JSON ({exc.msg})", "_raw": line[:2000]}
            if not isinstance(record, dict):
                record = {PARSE_ERROR_COLUMN: f"line {line_number + 1}: a JSON {type(record).__name__}, not an object"}
            rows.append(record)
        if len(rows) >= chunk_rows:
            yield pd.DataFrame.from_records(rows)
            rows = []
    if rows:
        yield pd.DataFrame.from_records(rows)


_READERS = {"csv": _csv_chunks, "parquet": _parquet_chunks, "jsonl": _jsonl_chunks}


def iter_catalog_chunks(uri: str, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield the catalog in chunks of at most `chunk_rows` rows, all values as str or None.

    Each chunk carries `source_row`, the 0-based row number in the file. Raises
    CatalogFormatError when the file cannot be read as a catalog at all (unknown format,
    unparseable, or a required column missing).
    """
    fmt = catalog_format(uri)
    next_row = 0
    seen_any = False
    with _open(uri) as handle:
        for chunk in _READERS[fmt](handle, uri, chunk_rows):
            chunk = _as_strings(chunk)
            if not seen_any:
                _check_columns(uri, chunk)
                seen_any = True
            for column in REQUIRED_COLUMNS:
                if column not in chunk.columns:  # a JSONL chunk of only bad lines
                    chunk[column] = None
            chunk[ROW_NUMBER_COLUMN] = range(next_row, next_row + len(chunk))
            next_row += len(chunk)
            yield chunk.reset_index(drop=True)
    if not seen_any:
        raise CatalogFormatError(f"{uri}: the file has no rows")


def _check_columns(uri: str, chunk: pd.DataFrame) -> None:
    present = set(chunk.columns) - {PARSE_ERROR_COLUMN, "_raw"}
    if PARSE_ERROR_COLUMN in chunk.columns and not present:
        return  # JSONL whose first lines are all malformed: rows are quarantined one by one
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise CatalogFormatError(
            f"{uri}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(sorted(present)) or 'none'}. A catalog needs {', '.join(REQUIRED_COLUMNS)}."
        )
