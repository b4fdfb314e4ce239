"""summary.json: one nested JSON object that each stage merges its headline figures into."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _merge(into: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def read_summary(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def update_summary(path: str | Path, figures: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `figures` into the file, written atomically so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = _merge(read_summary(path), figures)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(merged, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return merged
