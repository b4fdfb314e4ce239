"""Attribute taxonomies: attribute types, their entries, and each entry's synonyms."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, field_validator

BUILTIN = {"fashion": "fashion.yaml"}


class Taxonomy(BaseModel):
    name: str
    types: dict[str, dict[str, list[str]]]  # type -> entry -> synonyms

    @field_validator("types")
    @classmethod
    def _clean(cls, types: dict[str, dict[str, list[str] | None]]) -> dict[str, dict[str, list[str]]]:
        if not types:
            raise ValueError("a taxonomy needs at least one attribute type")
        return {t: {e.strip().lower(): [s.strip().lower() for s in (syn or [])] for e, syn in entries.items()} for t, entries in types.items()}

    @classmethod
    def load(cls, source: str | Path) -> "Taxonomy":
        """A built-in name ("fashion") or a YAML file with `name` and `types`."""
        if str(source) in BUILTIN:
            text = resources.files("ml.attributes").joinpath("taxonomies", BUILTIN[str(source)]).read_text()
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"taxonomy {source!r}: not a built-in ({', '.join(BUILTIN)}) and no such file")
            text = path.read_text()
        return cls.model_validate(yaml.safe_load(text))

    def surfaces(self) -> list[tuple[str, str, str]]:
        """(type, entry, surface form) for every entry and synonym."""
        return [(t, entry, s) for t, entries in self.types.items() for entry, syns in entries.items() for s in (entry, *syns)]
