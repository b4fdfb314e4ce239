"""Snapshot registry: a catalog file, fingerprinted, becomes a named immutable snapshot.

The snapshot id (file stem + content digest) is the Dagster partition key; the record says
where the file is, so any run, from the CLI, a sensor or the UI, finds the same input.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone

import fsspec
from pydantic import BaseModel

from ml.catalog.images import url_scheme
from ml.catalog.ingest import file_digest, join_uri
from ml.catalog.readers import catalog_format

_UNSAFE = re.compile(r"[^a-z0-9_-]+")


class SnapshotRecord(BaseModel):
    snapshot_id: str
    source_uri: str
    catalog_dir: str  # relative image paths resolve here
    sha256: str
    size_bytes: int
    registered_at: str


def normalise_source(uri: str) -> str:
    return os.path.realpath(uri) if url_scheme(uri) in (None, "file") and "://" not in uri else uri


def snapshot_id_for(uri: str, digest: str) -> str:
    stem = os.path.splitext(os.path.basename(uri.rstrip("/")))[0].lower()
    return f"{_UNSAFE.sub('-', stem).strip('-')[:40] or 'catalog'}-{digest[:10]}"


def register_snapshot(source_uri: str, registry_uri: str) -> SnapshotRecord:
    """Fingerprint the file and record it; registering the same content again is a no-op."""
    source = normalise_source(source_uri)
    catalog_format(source)  # unsupported formats fail here, before any run is started
    fs, path = fsspec.core.url_to_fs(source)
    if not fs.exists(path):
        raise FileNotFoundError(f"{source_uri}: no such catalog file")
    digest = file_digest(source)
    record = SnapshotRecord(
        snapshot_id=snapshot_id_for(source, digest),
        source_uri=source,
        catalog_dir=os.path.dirname(source) if "://" not in source else source.rsplit("/", 1)[0],
        sha256=digest,
        size_bytes=fs.size(path),
        registered_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    reg_fs, reg_path = fsspec.core.url_to_fs(registry_uri)
    reg_fs.makedirs(reg_path, exist_ok=True)
    target = f"{reg_path}/{record.snapshot_id}.json"
    if not reg_fs.exists(target):
        with reg_fs.open(target, "w") as handle:
            handle.write(record.model_dump_json(indent=2))
    return load_snapshot_record(registry_uri, record.snapshot_id)


def load_snapshot_record(registry_uri: str, snapshot_id: str) -> SnapshotRecord:
    uri = join_uri(registry_uri, f"{snapshot_id}.json")
    try:
        with fsspec.open(uri, "r") as handle:
            return SnapshotRecord.model_validate(json.load(handle))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"snapshot {snapshot_id!r} is not registered (no {uri}); register the file with "
            "`shopwindow ingest PATH` or drop it into the inbox folder"
        ) from exc
