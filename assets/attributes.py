"""Attributes group: teacher labels, a curated vocabulary, and every item's attributes."""

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, MetadataValue, Output, asset, asset_check

from assets.partitions import catalog_partitions
from ml.attributes.assign import (
    AssignmentConfig,
    calibrate_thresholds,
    entry_vectors,
    fused_vectors,
    merge_assignments,
    ranking_scores,
    teacher_entry_matrix,
    typed_softmax,
)
from ml.attributes.curation import CurationConfig, curate_vocabulary, label_image_centroids
from ml.attributes.evaluate import evaluate_attributes, find_ground_truth
from ml.attributes.taxonomy import Taxonomy
from ml.attributes.teachers import make_teacher
from ml.catalog.splits import assign_splits
from ml.catalog.store import item_pixels, read_table, write_table
from ml.embedding.encode import read_embeddings
from ml.embedding.factory import create_dual_encoder
from ml.tracking.registry import record_verdict
from assets.metadata import markdown_table
from orchestration.io_managers import AssetManifest
from orchestration.resources import AttributesResource, EmbeddingResource, MLflowResource, StorageResource


@asset(group_name="attributes", partitions_def=catalog_partitions, kinds={"parquet"})
def teacher_attributes(context: AssetExecutionContext, catalog_items: AssetManifest, storage: StorageResource,
                       attributes: AttributesResource) -> Output[AssetManifest]:
    """Teacher labels: the lexicon over titles and descriptions (demo) or a VLM over image + text."""
    taxonomy = Taxonomy.load(attributes.taxonomy)
    teacher = make_teacher(attributes.teacher, taxonomy, attributes.vlm_model)
    items = read_table(catalog_items.uris["items"], ["item_id", "title", "description", "image_hash"])
    pixels = item_pixels(items["image_hash"], catalog_items.uris["images"]) if teacher.needs_images else None
    labels, problems = teacher.label_items(items, pixels)
    out = storage.uri("attributes", context.partition_key, "teacher_labels.parquet")
    write_table(labels, out)
    problems_uri = storage.uri("attributes", context.partition_key, "teacher_problems.parquet")  # unparsed answers, kept
    problem_frame = pd.DataFrame(problems, columns=["item_id", "problem", "raw_output"])
    write_table(problem_frame, problems_uri)
    per_type = labels.groupby("type")["item_id"].nunique().rename("items").reset_index()
    per_type["share_of_items"] = (per_type["items"] / max(1, len(items))).round(3)
    figures = {"labels": len(labels), "items_labelled": int(labels["item_id"].nunique()), "problems": len(problems), "teacher": teacher.name}
    return Output(AssetManifest(uris={"labels": out, "problems": problems_uri}, figures=figures),
                  metadata={**figures, "coverage_by_type": markdown_table(per_type, 60), "sample": markdown_table(labels.head(20), 60),
                            "problem_sample": markdown_table(problem_frame.head(10), 60), "path": out})


@asset(group_name="attributes", partitions_def=catalog_partitions, kinds={"parquet"})
def attribute_vocabulary(context: AssetExecutionContext, teacher_attributes: AssetManifest, dual_encoder: AssetManifest,
                         item_embeddings: AssetManifest, storage: StorageResource, attributes: AttributesResource) -> Output[AssetManifest]:
    """Curated phrases per attribute type; every drop and merge listed with its reason."""
    taxonomy = Taxonomy.load(attributes.taxonomy)
    teacher = read_table(teacher_attributes.uris["labels"])
    encoder = create_dual_encoder(f"local-dir:{dual_encoder.uris['model']}")
    keys = sorted(set(zip(teacher["type"], teacher["value"])))
    phrase_vectors = dict(zip(keys, encoder.encode_texts([v for _, v in keys])))
    item_ids, image, _ = read_embeddings(item_embeddings.uris["embeddings"])
    centroids = label_image_centroids(teacher, item_ids, image)
    config = CurationConfig(min_items=attributes.min_items_for(len(item_ids)), grounded_types=tuple(attributes.grounded_types))
    vocabulary, decisions = curate_vocabulary(teacher, phrase_vectors, centroids, {t: list(e) for t, e in taxonomy.types.items()},
                                              config, attributes.make_judge(config))
    # each entry's vector (mean of its members' text vectors) travels with it: scoring needs no model
    vocabulary["vector"] = list(entry_vectors(vocabulary, lambda t, m: phrase_vectors[(t, m)]))
    base = storage.uri("attributes", context.partition_key)
    write_table(vocabulary, f"{base}/vocabulary.parquet")
    write_table(decisions, f"{base}/curation_decisions.parquet")
    counts = decisions["action"].value_counts().to_dict()
    figures = {"phrases": len(vocabulary), "raw_phrases": len(keys), "merged": int(counts.get("merge", 0)),
               "kept_apart": int(counts.get("keep apart", 0)), "dropped": int(counts.get("drop", 0)),
               "per_type": vocabulary.groupby("type").size().to_dict()}
    shown = vocabulary.drop(columns="vector").assign(members=vocabulary["members"].map(", ".join))
    return Output(AssetManifest(uris={"vocabulary": f"{base}/vocabulary.parquet", "decisions": f"{base}/curation_decisions.parquet"}, figures=figures),
                  metadata={**{k: v for k, v in figures.items() if k != "per_type"}, "per_type": MetadataValue.json(figures["per_type"]),
                            "vocabulary": markdown_table(shown, 60), "decisions": markdown_table(decisions, 80)})


def attribute_targets(attributes: AttributesResource) -> dict[str, float]:
    return {"recall_at_10": attributes.min_recall_at_10, "category_accuracy": attributes.min_category_accuracy,
            "color_accuracy_text_silent": attributes.min_color_accuracy}


@asset(group_name="attributes", partitions_def=catalog_partitions, kinds={"parquet", "mlflow"})
def item_attributes(context: AssetExecutionContext, catalog_snapshot: AssetManifest, teacher_attributes: AssetManifest,
                    attribute_vocabulary: AssetManifest, item_embeddings: AssetManifest, dual_encoder: AssetManifest,
                    storage: StorageResource, mlflow: MLflowResource, attributes: AttributesResource,
                    embedding: EmbeddingResource) -> Output[AssetManifest]:
    """Every item's attributes: student scores, thresholds calibrated on held-out items, merged
    with the teacher's labels (provenance teacher / student / both). Evaluated if ground truth exists."""
    vocabulary = read_table(attribute_vocabulary.uris["vocabulary"])
    vocabulary["members"] = vocabulary["members"].map(list)
    teacher = read_table(teacher_attributes.uris["labels"])
    item_ids, image, text = read_embeddings(item_embeddings.uris["embeddings"])
    entries = np.stack(vocabulary["vector"].to_numpy()).astype(np.float32)
    types = vocabulary["type"].to_numpy()
    probs = typed_softmax(fused_vectors(image, text), entries, types, dual_encoder.figures["logit_scale"])
    taught = teacher_entry_matrix(teacher, vocabulary, item_ids)
    split = assign_splits(item_ids)
    config = AssignmentConfig(target_precision=attributes.target_precision, student_types=tuple(attributes.grounded_types))
    thresholds = calibrate_thresholds(probs[split == "val"], taught[split == "val"], types, config)
    assigned = merge_assignments(item_ids, probs, taught, vocabulary, thresholds, config.student_types)
    out = storage.uri("attributes", context.partition_key, "item_attributes.parquet")
    write_table(assigned, out)
    provenance = assigned["provenance"].value_counts().to_dict()
    figures: dict = {"assignments": len(assigned), "items": len(item_ids), "provenance": provenance,
                     "items_with_student_only_labels": int(assigned.loc[assigned["provenance"] == "student", "item_id"].nunique())}
    metadata: dict = {"thresholds": markdown_table(thresholds, 60)}
    truth = find_ground_truth(catalog_snapshot.uris["catalog_dir"])
    if truth is None:
        context.log.info("no labels.parquet beside the catalog: attribute evaluation skipped")
    else:
        labels, aliases = truth
        test = np.flatnonzero(split == "test")
        test = test[np.isin(np.asarray(item_ids, dtype=object)[test], labels["item_id"].to_numpy())]
        evaluation, per_type = evaluate_attributes([item_ids[i] for i in test], ranking_scores(probs, taught)[test], probs[test], vocabulary,
                                                   assigned, labels, aliases, tuple(attributes.grounded_types))
        figures["evaluation"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in evaluation.items()}
        metadata["per_type"] = markdown_table(per_type.round(4), 60)
        targets = attribute_targets(attributes)
        passed = all(evaluation[k] >= v for k, v in targets.items())  # NaN (not measurable) fails
        with mlflow.run(f"attributes-{context.partition_key}", tags={"stage": "attributes", "snapshot": context.partition_key,
                                                                     "dagster_run_id": context.run_id}) as run:
            run.log_metrics(evaluation)
            run.log_metrics({f"{r.type}.precision": r.precision for r in per_type.itertuples()} | {f"{r.type}.recall": r.recall for r in per_type.itertuples()})
            run.log_dict(per_type.to_dict("records"), "per_type.json")
            run.log_dict(thresholds.to_dict("records"), "thresholds.json")
            run.set_tags({"dual_encoder": dual_encoder.figures["model_uri"], "targets_met": passed})
            # the registry holds the versions that pass the checks, by the same alias rule as the generator's gate
            verdict = record_verdict(run.client, dual_encoder.figures["registered_name"], str(dual_encoder.figures["version"]), passed,
                                     {f"eval.{k}": round(float(evaluation[k]), 4) for k in targets})
        figures["champion"] = passed
        figures["verdict"] = verdict
        metadata["mlflow_run"] = MetadataValue.url(run.url)
        storage.update_summary({"attributes": {k: round(evaluation[k], 4) for k in ("recall_at_10", "category_accuracy",
                                                                                     "color_accuracy_text_silent", "student_recall_at_10")}})
    return Output(AssetManifest(uris={"item_attributes": out}, figures=figures),
                  metadata={**metadata, "assignments": len(assigned), "provenance": MetadataValue.json(provenance),
                            **({"registry_verdict": figures["verdict"]} if "verdict" in figures else {}),
                            **{k: v for k, v in figures.get("evaluation", {}).items()}, "path": out})


@asset_check(asset=item_attributes, partitions_def=catalog_partitions, blocking=False,
             description="attribute Recall@10, category accuracy and text-silent colour accuracy meet their targets")
def attribute_quality(item_attributes: AssetManifest, attributes: AttributesResource) -> AssetCheckResult:
    evaluation = item_attributes.figures.get("evaluation")
    if evaluation is None:
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN, description="nothing to measure: no ground-truth labels beside the catalog",
                                metadata={"unmeasured": MetadataValue.json(list(attribute_targets(attributes)))})
    targets = attribute_targets(attributes)
    failing = {k: f"{evaluation[k]:.4f} < {v}" for k, v in targets.items() if not evaluation[k] >= v}
    return AssetCheckResult(passed=not failing, severity=AssetCheckSeverity.ERROR,
                            metadata={**{k: float(evaluation[k]) for k in targets}, "targets": MetadataValue.json(targets),
                                      "failing": MetadataValue.json(failing)})
