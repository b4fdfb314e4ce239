"""Embeddings group: train/fine-tune the dual encoder, encode the catalog, index it."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetExecutionContext, MetadataValue, Output, asset, asset_check

from assets.partitions import catalog_partitions
from ml.attributes.assign import fused_vectors
from ml.catalog.store import item_pixels, read_table, write_table
from ml.compute import ComputeSettings
from ml.embedding.ann import build_index, recall_against_exact, save_index
from ml.embedding.encode import encode_catalog, item_text, read_embeddings
from ml.embedding.factory import create_dual_encoder, save_dual_encoder
from ml.embedding.train import TrainConfig, build_training_data, train_dual_encoder
from ml.tracking.plots import plot_history
from ml.tracking.registry import register_folder
from orchestration.io_managers import AssetManifest
from orchestration.resources import AttributesResource, ComputeResource, EmbeddingResource, MLflowResource, StorageResource


@asset(group_name="embeddings", partitions_def=catalog_partitions, kinds={"pytorch", "mlflow"})
def dual_encoder(
    context: AssetExecutionContext, catalog_items: AssetManifest, teacher_attributes: AssetManifest,
    storage: StorageResource, mlflow: MLflowResource, embedding: EmbeddingResource, attributes: AttributesResource,
) -> Output[AssetManifest]:
    """open_clip model trained (or fine-tuned) contrastively on the catalog; registered in MLflow."""
    key = context.partition_key
    items = read_table(catalog_items.uris["items"], ["item_id", "title", "description", "image_hash"])
    data = build_training_data(
        items["item_id"].tolist(), item_pixels(items["image_hash"], catalog_items.uris["images"]),
        [item_text(t, d) for t, d in zip(items["title"], items["description"])],
        read_table(teacher_attributes.uris["labels"]), attributes.min_items_for(len(items)),
    )
    config = TrainConfig(epochs=embedding.epochs, batch_size=embedding.batch_size, lr=embedding.lr,
                         max_minutes=embedding.max_minutes, grounded_types=tuple(attributes.grounded_types))
    encoder = create_dual_encoder(embedding.model, embedding.pretrained)
    model_dir = Path(storage.home) / "models" / key / "dual_encoder"
    checkpoints = Path(storage.home) / "checkpoints" / key / "dual_encoder"
    with mlflow.run(f"dual-encoder-{key}", tags={"stage": "embeddings", "snapshot": key, "dagster_run_id": context.run_id}) as run:
        run.log_params({"model": embedding.model, "pretrained": embedding.pretrained, "phrases": len(data.phrases),
                        "items": len(data.item_ids), **config.model_dump()})
        result = train_dual_encoder(encoder, data, config, checkpoints, log=run.log_metrics)
        context.log.info(f"trained {result.steps} steps ({result.stopped}); best held-out loss {result.best_val_loss:.4f} at step {result.best_step}")
        save_dual_encoder(encoder, model_dir)
        curve = plot_history(result.history, model_dir.parent / "dual_encoder_curves.png", title=f"dual encoder {key}")
        run.client.log_artifact(run.run_id, str(curve), "plots")
        best = next((h for h in result.history if h["step"] == result.best_step), {})
        run.log_metrics({"train_seconds": result.seconds, "best_step": result.best_step, **{f"best_{k}": v for k, v in best.items() if k != "step"}})
        version = register_folder(run, model_dir, "dual_encoder", embedding.registered_name, alias="candidate",
                                  tags={"snapshot": key, "best_val_loss": round(result.best_val_loss, 4)},
                                  description="shopwindow product/attribute dual encoder (open_clip format, safetensors)")
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: a rerun trains afresh
    model_uri = f"models:/{embedding.registered_name}/{version}"
    figures = {"steps": result.steps, "best_step": result.best_step, "stopped": result.stopped, "train_seconds": round(result.seconds, 1),
               "best_val_loss": result.best_val_loss, "resumed_from": result.resumed_from, "model_uri": model_uri,
               "registered_name": embedding.registered_name, "version": version, "run_id": run.run_id,
               "logit_scale": float(encoder.model.logit_scale.detach().exp())}
    return Output(
        AssetManifest(uris={"model": str(model_dir), "curves": str(curve)}, figures=figures),
        metadata={**{k: v for k, v in figures.items() if k not in ("run_id",)}, "mlflow_run": MetadataValue.url(run.url),
                  "val_image_to_text_recall_at_10": best.get("val_image_to_text_recall_at_10", float("nan")),
                  "loss_curves": MetadataValue.path(str(curve)), "phrases": len(data.phrases)},
    )


@asset(group_name="embeddings", partitions_def=catalog_partitions, kinds={"parquet"})
def item_embeddings(
    context: AssetExecutionContext, catalog_items: AssetManifest, dual_encoder: AssetManifest,
    storage: StorageResource, compute: ComputeResource,
) -> Output[AssetManifest]:
    """Image and text vectors per item, written in chunks through the compute backend."""
    out_uri = storage.uri("embeddings", context.partition_key, "item_embeddings.parquet")
    settings = ComputeSettings(backend=compute.backend, workers=compute.workers, ray_address=compute.ray_address)
    stats = encode_catalog(dual_encoder.uris["model"], catalog_items.uris["items"], catalog_items.uris["images"], out_uri, settings)
    storage.update_summary({"embeddings": {"items_per_s": round(stats.items_per_s, 1), "items": stats.items, "backend": stats.backend}})
    figures = {"items": stats.items, "images": stats.images, "seconds": round(stats.seconds, 2),
               "items_per_s": round(stats.items_per_s, 1), "backend": stats.backend}
    return Output(AssetManifest(uris={"embeddings": out_uri, "model": dual_encoder.uris["model"]}, figures=figures),
                  metadata={**figures, "path": out_uri})


@asset(group_name="embeddings", partitions_def=catalog_partitions, kinds={"faiss"})
def ann_index(context: AssetExecutionContext, item_embeddings: AssetManifest, storage: StorageResource) -> Output[AssetManifest]:
    """faiss index over product vectors (exact when small, IVF when large), recall measured."""
    item_ids, image, text = read_embeddings(item_embeddings.uris["embeddings"])
    vectors = fused_vectors(image, text)
    index, info = build_index(vectors)
    queries = vectors[np.random.default_rng(0).choice(len(vectors), size=min(1000, len(vectors)), replace=False)]
    recall = recall_against_exact(index, vectors, queries)
    folder = Path(storage.home) / "indexes" / context.partition_key
    save_index(index, info, folder, {"recall_at_10_vs_exact": recall, "vectors": "product (image + text)"})
    write_table(pd.DataFrame({"item_id": item_ids}), str(folder / "ids.parquet"))
    figures = {**info.__dict__, "recall_at_10_vs_exact": round(recall, 4)}
    return Output(AssetManifest(uris={"index": str(folder)}, figures=figures), metadata={**figures, "path": str(folder)})


@asset_check(asset=ann_index, partitions_def=catalog_partitions, description="the index finds at least 90% of the exact top-10")
def ann_recall(ann_index: AssetManifest) -> AssetCheckResult:
    recall = ann_index.figures["recall_at_10_vs_exact"]
    return AssetCheckResult(passed=recall >= 0.9, metadata={"recall_at_10_vs_exact": recall, "kind": ann_index.figures["kind"]})
