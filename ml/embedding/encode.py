"""Batch encoding of a catalog: image vectors per distinct image, text vectors per item.

Streams Parquet in chunks, so a catalog larger than memory works; only the hash -> image
vector map (N_images x d floats) is held. Two backends give the same vectors:
- local: in this process, torch's intra-op threads over batches;
- ray: Ray Data, CPU preprocessing (uint8 -> normalised float) as its own stage, then an
  actor pool where each actor loads the model once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ml.catalog.store import image_size, iter_parquet, parquet_file_info, pixels_from_column
from ml.compute import ComputeSettings
from ml.embedding.factory import load_preprocess

TEXT_FIELDS = ("title", "description")


def item_text(title: str | None, description: str | None) -> str:
    return " ".join(t for t in (title, description) if t)


@dataclass
class EncodeStats:
    images: int
    items: int
    seconds: float
    backend: str

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


class _Encoder:
    """Ray actor: loads the model once, encodes mixed batches of image rows and text rows."""

    def __init__(self, model_dir: str):
        import torch

        from ml.embedding.factory import create_dual_encoder

        torch.set_num_threads(1)
        self.encoder = create_dual_encoder(f"local-dir:{model_dir}")
        self.encoder.model.eval()

    def __call__(self, batch: dict) -> dict:
        is_image = batch["kind"] == "image"
        vectors = np.zeros((len(is_image), self.encoder.embed_dim), np.float32)
        if is_image.any():
            vectors[is_image] = self.encoder.encode_images(np.stack(list(batch["pixels"][is_image])))  # ragged when mixed
        if (~is_image).any():
            vectors[~is_image] = self.encoder.encode_texts(batch["text"][~is_image].tolist())
        return {"kind": batch["kind"], "key": batch["key"], "image_hash": batch["image_hash"], "vector": vectors}


def _image_rows(batch: dict, model_dir: str, store_size: int) -> dict:
    """CPU stage: stored bytes -> uint8 arrays at the model's input size (uint8 is a quarter
    of float32 through the object store; actors normalise)."""
    pixels = np.stack([np.frombuffer(p, np.uint8).reshape(store_size, store_size, 3) for p in batch["pixels"]])
    n = len(pixels)
    return {"kind": np.full(n, "image"), "key": batch["image_hash"], "image_hash": batch["image_hash"],
            "text": np.full(n, ""), "pixels": load_preprocess(model_dir).resize_uint8(pixels)}


def _text_rows(batch: dict) -> dict:
    n = len(batch["item_id"])
    texts = [item_text(t, d) for t, d in zip(batch["title"], batch["description"])]
    return {"kind": np.full(n, "text"), "key": batch["item_id"], "image_hash": batch["image_hash"],
            "text": np.asarray(texts, dtype=object), "pixels": np.zeros((n, 1, 1, 3), np.uint8)}  # placeholder, 3 bytes


def encode_catalog(model_dir: str, items_uri: str, images_uri: str, out_uri: str, compute: ComputeSettings,
                   batch_rows: int = 4096, progress: bool = True) -> EncodeStats:
    """Write `out_uri` (Parquet): item_id, image_hash, image_vector, text_vector (float32, unit norm)."""
    start = time.perf_counter()
    if compute.backend == "ray":
        image_vectors, text_batches = _encode_ray(model_dir, items_uri, images_uri, compute, batch_rows)
    else:
        image_vectors, text_batches = _encode_local(model_dir, items_uri, images_uri, batch_rows, progress)
    fs, path = fsspec.core.url_to_fs(out_uri)
    fs.makedirs(fs._parent(path), exist_ok=True)
    writer = None
    items = 0
    try:
        for item_ids, hashes, text_vecs in text_batches:
            dim = text_vecs.shape[1]
            image_vecs = np.stack([image_vectors[h] for h in hashes])
            table = pa.table({
                "item_id": pa.array(item_ids, pa.string()), "image_hash": pa.array(hashes, pa.string()),
                "image_vector": pa.FixedSizeListArray.from_arrays(pa.array(image_vecs.reshape(-1), pa.float32()), dim),
                "text_vector": pa.FixedSizeListArray.from_arrays(pa.array(text_vecs.reshape(-1).astype(np.float32), pa.float32()), dim),
            })
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, filesystem=fs, compression="zstd")
            writer.write_table(table)
            items += len(item_ids)
    finally:
        if writer is not None:
            writer.close()
    return EncodeStats(images=len(image_vectors), items=items, seconds=time.perf_counter() - start, backend=compute.backend)


def _encode_local(model_dir: str, items_uri: str, images_uri: str, batch_rows: int, progress: bool):
    from ml.embedding.factory import create_dual_encoder

    encoder = create_dual_encoder(f"local-dir:{model_dir}")
    size = image_size(images_uri)
    image_vectors: dict[str, np.ndarray] = {}
    with tqdm(total=parquet_file_info(images_uri)[0], desc="encode images", unit="img", disable=not progress, mininterval=2) as bar:
        for batch in iter_parquet(images_uri, batch_rows, ["image_hash", "pixels"]):
            vectors = encoder.encode_images(pixels_from_column(batch.column("pixels"), size))
            image_vectors.update(zip(batch.column("image_hash").to_pylist(), vectors))
            bar.update(batch.num_rows)

    def texts() -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        with tqdm(total=parquet_file_info(items_uri)[0], desc="encode texts", unit="item", disable=not progress, mininterval=2) as bar:
            for batch in iter_parquet(items_uri, batch_rows, ["item_id", "image_hash", *TEXT_FIELDS]):
                cols = batch.to_pydict()
                vectors = encoder.encode_texts([item_text(t, d) for t, d in zip(cols["title"], cols["description"])])
                bar.update(batch.num_rows)
                yield cols["item_id"], cols["image_hash"], vectors

    return image_vectors, texts()


def _encode_ray(model_dir: str, items_uri: str, images_uri: str, compute: ComputeSettings, batch_rows: int):
    """Ray Data: image rows and text rows prepared by CPU tasks, then one actor pool (one model
    load per actor) encodes both, so the actors' start-up is paid once."""
    workers = compute.resolved_workers()
    if workers < 2 and not compute.ray_address:
        # on a 1-CPU local Ray the pipeline stalled with nothing scheduled (Ray Data's file listing held the whole CPU, the actor half)
        raise ValueError("the Ray encoding path needs workers >= 2 on a local Ray (a 1-CPU Ray deadlocks its own "
                         "scheduler); use backend='local' on one core, or join a cluster with ray_address")
    import ray

    from ml.compute.batch_map import ensure_ray

    ensure_ray(compute)
    size = image_size(images_uri)
    batch = min(batch_rows, 1024)
    blocks = 4 * workers  # enough blocks that every actor gets work
    # Actors run one torch thread and ask for half a CPU, so with workers >= 2 (checked above) the
    # read and preparation tasks find room (whole CPUs per actor deadlock a `workers`-CPU Ray).
    images = ray.data.read_parquet(images_uri, columns=["image_hash", "pixels"]).repartition(blocks).map_batches(
        _image_rows, fn_kwargs={"model_dir": model_dir, "store_size": size}, batch_size=batch, batch_format="numpy", num_cpus=0.5)
    texts = ray.data.read_parquet(items_uri, columns=["item_id", "image_hash", *TEXT_FIELDS]).repartition(blocks).map_batches(
        _text_rows, batch_size=batch, batch_format="numpy", num_cpus=0.5)
    encoded = images.union(texts).map_batches(_Encoder, fn_constructor_kwargs={"model_dir": model_dir}, batch_size=batch,
                                              compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.5, batch_format="numpy")
    image_vectors: dict[str, np.ndarray] = {}
    text_results: list[tuple[list[str], list[str], np.ndarray]] = []
    for out in encoded.iter_batches(batch_size=batch_rows, batch_format="numpy"):
        is_image = out["kind"] == "image"
        image_vectors.update(zip(out["key"][is_image].tolist(), np.asarray(out["vector"])[is_image]))
        if (~is_image).any():
            text_results.append((out["key"][~is_image].tolist(), out["image_hash"][~is_image].tolist(), np.asarray(out["vector"])[~is_image]))
    return image_vectors, iter(text_results)


def read_embeddings(uri: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(item ids, image vectors N x d, text vectors N x d) from an item_embeddings Parquet."""
    fs, path = fsspec.core.url_to_fs(uri)
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    def matrix(name: str) -> np.ndarray:
        column = table.column(name).combine_chunks()
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1).astype(np.float32)
    return table.column("item_id").to_pylist(), matrix("image_vector"), matrix("text_vector")
