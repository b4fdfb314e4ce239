"""Assets hand each other small JSON manifests (where the data is, what it measured);
the data itself is Parquet/model folders under the data root. Nothing is pickled."""

from __future__ import annotations

from typing import Any

import fsspec
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import BaseModel

from ml.catalog.ingest import join_uri


class AssetManifest(BaseModel):
    uris: dict[str, str] = {}
    figures: dict[str, Any] = {}


class ManifestIOManager(ConfigurableIOManager):
    base_uri: str

    def _uri(self, context: InputContext | OutputContext) -> str:
        key = "/".join(context.asset_key.path)
        partition = context.asset_partition_key if context.has_asset_partitions else "__unpartitioned__"
        return join_uri(self.base_uri, key, f"{partition}.json")

    def handle_output(self, context: OutputContext, obj: AssetManifest) -> None:
        if not isinstance(obj, AssetManifest):
            raise TypeError(f"{context.asset_key.to_user_string()}: assets return an AssetManifest, got {type(obj).__name__}")
        uri = self._uri(context)
        fs, path = fsspec.core.url_to_fs(uri)
        fs.makedirs(fs._parent(path), exist_ok=True)
        with fs.open(path, "w") as handle:
            handle.write(obj.model_dump_json(indent=2))

    def load_input(self, context: InputContext) -> AssetManifest:
        uri = self._uri(context)
        try:
            with fsspec.open(uri, "r") as handle:
                return AssetManifest.model_validate_json(handle.read())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{context.asset_key.to_user_string()} has not been materialised yet ({uri} is missing)") from exc
