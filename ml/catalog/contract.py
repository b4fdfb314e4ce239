"""The catalog contract: which columns a user's file must have and why a row is rejected."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

REQUIRED_COLUMNS = ("item_id", "title", "image_uri")
OPTIONAL_COLUMNS = ("description", "price", "brand", "category")
ROW_NUMBER_COLUMN = "source_row"  # 0-based row in the source file, kept on every output row

SUPPORTED_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_URL_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "http", "https", "memory")


class CatalogFormatError(ValueError):
    """The file as a whole cannot be read as a catalog; names the file and the problem."""


class QuarantineReason(StrEnum):
    """Why a row did not become an item. One row, one reason: the first that applies, in
    this order. Duplicates: the first *valid* row of an id wins (a corrected row later in the
    file still lands); a later item with the same image content and the same title as an
    earlier one is the same listing twice. Items that only share an image are kept and point
    at the first holder (`duplicate_image_of`); the pixels are stored once."""

    MALFORMED_ROW = "malformed_row"
    MISSING_ID = "missing_id"
    DUPLICATE_ID = "duplicate_id"
    EMPTY_TITLE = "empty_title"
    BAD_PRICE = "bad_price"
    MISSING_IMAGE_URI = "missing_image_uri"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    PATH_ESCAPE = "path_escape"
    IMAGE_NOT_FOUND = "image_not_found"
    NOT_AN_IMAGE = "not_an_image"
    UNREADABLE_IMAGE = "unreadable_image"
    IMAGE_TOO_LARGE = "image_too_large"
    DUPLICATE_LISTING = "duplicate_listing"


IMAGE_REASONS = frozenset(
    {
        QuarantineReason.IMAGE_NOT_FOUND,
        QuarantineReason.NOT_AN_IMAGE,
        QuarantineReason.UNREADABLE_IMAGE,
        QuarantineReason.IMAGE_TOO_LARGE,
    }
)


class IngestSettings(BaseModel):
    """How strict ingestion is and what shape images are stored in; set per profile."""

    image_size: int = Field(32, ge=8, le=2048, description="stored images are square RGB of this side")
    upscale_small: bool = Field(False, description="scale images smaller than image_size up instead of padding")
    max_image_pixels: int = Field(40_000_000, gt=0, description="width*height above this is a decompression bomb")
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_price: float = Field(1_000_000.0, gt=0)
    chunk_rows: int = Field(50_000, ge=1, description="rows read and validated at a time: bounds memory")
    url_schemes: tuple[str, ...] = DEFAULT_URL_SCHEMES
    allowed_image_roots: tuple[str, ...] = Field(
        (), description="absolute folders besides the catalog's own that image paths may point into"
    )
