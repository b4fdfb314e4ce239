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


def overlay_state(home: Path, out: Path, asset: str, uris: dict) -> Path:
    """A state at `out` that reads as `home` except for `asset`, whose manifests' uris are updated
    with `uris`: the other manifests are copied and still name `home`'s files, so a retrained
    model is measured on the same catalog, prompts and judge without copying them."""
    manifest(home, asset)  # a state without it exits here, saying what to run
    for folder in (Path(home) / "data" / "manifests").iterdir():
        for file in folder.glob("*"):
            document = json.loads(file.read_text())
            if folder.name == asset:
                document["uris"] = {**document.get("uris", {}), **uris}
            target = Path(out) / "data" / "manifests" / folder.name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2))
    return Path(out)
