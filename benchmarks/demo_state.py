"""Reading a finished demo's state (`SHOPWINDOW_HOME` after `make demo`) from the benchmarks that
study its models: each asset's manifest names the files it wrote."""

import json
from pathlib import Path


def manifest(home: Path, asset: str) -> dict:
    """The asset's manifest (its `uris` and `figures`), one per partition, the last by name where a
    state holds several; a clear exit when it holds none."""
    files = sorted((Path(home) / "data" / "manifests" / asset).glob("*"))
    if not files:
        raise SystemExit(f"{home} has no {asset} manifest: run `make demo` (or point --home at a demo state)")
    return json.loads(files[-1].read_text())
