"""Collections group: search demand, content-first topics and landing pages, the search-log
baseline, and the report that compares them (PinLanding phase 2)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, MetadataValue, Output, asset, asset_check

from assets.partitions import catalog_partitions
from ml.attributes.evaluate import find_ground_truth
from ml.attributes.taxonomy import Taxonomy
from ml.catalog.store import item_pixels, read_table, write_table
from ml.collections.build import CatalogView, load_catalog_view, search_log
from ml.collections.demand import demand_by_key, read_query_log
from ml.collections.report import plot_report
from ml.collections.site import Gallery
from ml.collections.space import QueryParser
from ml.collections.sweep import find_simulator, headline_figures, sweep_log_sizes
from ml.collections.tables import read_feeds, read_pages, read_topic_candidates, write_collections, write_topic_candidates
from ml.collections.titles import make_titler
from ml.collections.topics import enumerate_topics
from assets.metadata import markdown_table
from orchestration.io_managers import AssetManifest
from orchestration.resources import AttributesResource, CollectionsResource, MLflowResource, StorageResource

DEMAND_FILES = ("search_demand.parquet", "search_demand.csv")


def _view(catalog_items: AssetManifest, item_attributes: AssetManifest, attribute_vocabulary: AssetManifest,
          item_embeddings: AssetManifest) -> CatalogView:
    return load_catalog_view(item_attributes.uris["item_attributes"], attribute_vocabulary.uris["vocabulary"],
                             item_embeddings.uris["embeddings"], catalog_items.uris["items"], catalog_items.uris["images"])


def _synonyms(taxonomy: Taxonomy) -> dict[tuple[str, str], list[str]]:
    return {(t, m): [e, *syns] for t, entries in taxonomy.types.items() for e, syns in entries.items() for m in (e, *syns)}


def _titler(view: CatalogView, log: pd.DataFrame, attributes: AttributesResource, collections: CollectionsResource):
    return make_titler(collections.titler, view.space, _synonyms(Taxonomy.load(attributes.taxonomy)), log, collections.titler_model)


@asset(group_name="collections", partitions_def=catalog_partitions, kinds={"parquet"})
def search_demand(context: AssetExecutionContext, catalog_snapshot: AssetManifest, storage: StorageResource,
                  collections: CollectionsResource) -> Output[AssetManifest]:
    """The query log: a user file (`collections.search_log`) or search_demand.* beside the catalog
    (the demo's simulated log). Bad rows are quarantined with a reason."""
    catalog_dir = Path(catalog_snapshot.uris["catalog_dir"])
    source = collections.search_log or next((str(catalog_dir / f) for f in DEMAND_FILES if (catalog_dir / f).exists()), None)
    base = storage.uri("collections", context.partition_key)
    if source is None:
        context.log.warning("no query log: set collections.search_log or put search_demand.csv beside the catalog; the baseline will be empty")
        log, bad = pd.DataFrame({"query": pd.Series(dtype=str), "count": pd.Series(dtype=np.int64)}), pd.DataFrame(columns=["row", "raw_query", "raw_count", "reason"])
    else:
        log, bad = read_query_log(source)
    write_table(log, f"{base}/search_demand.parquet")
    write_table(bad, f"{base}/search_demand_quarantine.parquet")
    simulator = find_simulator(str(catalog_dir))
    figures = {"searches": int(log["count"].sum()), "distinct_queries": len(log), "quarantined_rows": len(bad),
               "source": source or "none", "simulated": simulator is not None}
    return Output(AssetManifest(uris={"log": f"{base}/search_demand.parquet", "quarantine": f"{base}/search_demand_quarantine.parquet",
                                      "catalog_dir": str(catalog_dir)}, figures=figures),
                  metadata={**figures, "top_queries": markdown_table(log, 25), "quarantine_sample": markdown_table(bad, 10)})


@asset(group_name="collections", partitions_def=catalog_partitions, kinds={"parquet", "faiss"})
def collection_topics(context: AssetExecutionContext, catalog_items: AssetManifest, item_attributes: AssetManifest,
                      attribute_vocabulary: AssetManifest, item_embeddings: AssetManifest, storage: StorageResource,
                      collections: CollectionsResource) -> Output[AssetManifest]:
    """Content-first topics: supported combinations of 1-3 attributes, merged with the topics
    that name faiss k-means clusters of the product vectors."""
    from ml.collections.topics import cluster_topics, merge_cluster_topics

    config = collections.config()
    view = _view(catalog_items, item_attributes, attribute_vocabulary, item_embeddings)
    candidates = enumerate_topics(view.space, config)
    clusters = merge_cluster_topics(candidates, cluster_topics(view.space, view.vectors, config)) if collections.clusters else pd.DataFrame()
    base = storage.uri("collections", context.partition_key)
    topics = write_topic_candidates(view.space, candidates, f"{base}/topics.parquet", f"{base}/topic_candidates.parquet")
    both = int(topics["sources"].map(lambda s: "clusters" in s).sum())
    figures = {"topics": len(topics), "candidate_rows": len(candidates.item), "clusters": len(clusters),
               "topics_from_attributes_only": len(topics) - both, "topics_named_by_both": both,
               "clusters_unsupported": int((clusters.get("outcome", pd.Series(dtype=str)) == "unsupported combination").sum()),
               "by_size": topics["attributes"].map(len).value_counts().sort_index().to_dict()}
    shown = clusters.drop(columns=["items"]).assign(key=lambda f: f["key"].map(view.space.key_labels)) if len(clusters) else clusters
    return Output(AssetManifest(uris={"topics": f"{base}/topics.parquet", "candidates": f"{base}/topic_candidates.parquet"}, figures=figures),
                  metadata={**{k: v for k, v in figures.items() if k != "by_size"}, "attributes_per_topic": MetadataValue.json(figures["by_size"]),
                            "topics_sample": markdown_table(topics.sample(min(25, len(topics)), random_state=0) if len(topics) else topics),
                            "clusters": markdown_table(shown, 30)})


@asset(group_name="collections", partitions_def=catalog_partitions, kinds={"parquet", "html"})
def landing_pages(context: AssetExecutionContext, collection_topics: AssetManifest, catalog_items: AssetManifest,
                  item_attributes: AssetManifest, attribute_vocabulary: AssetManifest, item_embeddings: AssetManifest,
                  dual_encoder: AssetManifest, search_demand: AssetManifest, storage: StorageResource,
                  attributes: AttributesResource, collections: CollectionsResource) -> Output[AssetManifest]:
    """Titles, ranked feeds and the quality bar for every content-first topic; Parquet plus a
    static HTML gallery (link in the metadata)."""
    from ml.collections.build import feeds_and_pages, title_text_vectors
    from ml.embedding.factory import create_dual_encoder

    config = collections.config()
    view = _view(catalog_items, item_attributes, attribute_vocabulary, item_embeddings)
    log = read_table(search_demand.uris["log"])
    candidates = read_topic_candidates(view.space, collection_topics.uris["topics"], collection_topics.uris["candidates"])
    encoder = create_dual_encoder(f"local-dir:{dual_encoder.uris['model']}")

    result = feeds_and_pages(candidates, view.space, view.vectors, view.hashes, _titler(view, log, attributes, collections),
                             title_text_vectors(encoder.encode_texts, view.vectors.shape[1]), config)
    parser = QueryParser(view.space, Taxonomy.load(attributes.taxonomy))
    demand = demand_by_key(log, parser.key)
    result.pages["demand"] = [demand.get(k, 0) for k in result.pages["key"]]
    base = storage.uri("collections", context.partition_key)
    write_collections(view.space, result, f"{base}/pages.parquet", f"{base}/feeds.parquet")
    published = result.published
    gallery = Gallery(storage.local_dir("collections", context.partition_key, "site"), view.space, view.items)
    hrefs = gallery.pages(published, result.feeds)
    dropped = result.pages[result.pages["status"] == "dropped"]
    gallery.table("dropped.html", "Dropped content-first pages", dropped, ["title", "feed_size", "predicted_precision", "reason"])
    index = gallery.index("shopwindow collections", f"{len(published)} content-first pages from {len(view.space.item_ids):,} items; "
                          f"snapshot {context.partition_key}", published, hrefs, len(dropped))
    written = gallery.finish(lambda hashes: item_pixels(hashes, catalog_items.uris["images"]))
    figures = {"pages": len(published), "topics": len(result.pages), "dropped": len(dropped), "thumbnails_written": written,
               "seconds": result.seconds,
               "drop_reasons": dropped["reason"].str.extract(r"^(feed of|predicted precision|near-duplicate images|near-duplicate of)")[0].value_counts().to_dict()}
    context.log.info(f"gallery: file://{index}")
    storage.update_summary({"collections": {"gallery": str(index)}})
    uris = {"pages": f"{base}/pages.parquet", "feeds": f"{base}/feeds.parquet", "site": str(index),
            "items": catalog_items.uris["items"], "images": catalog_items.uris["images"]}
    return Output(AssetManifest(uris=uris, figures=figures),
                  metadata={**{k: v for k, v in figures.items() if k not in ("seconds", "drop_reasons")},
                            "gallery": MetadataValue.url(f"file://{index}"), "drop_reasons": MetadataValue.json(figures["drop_reasons"]),
                            "seconds": MetadataValue.json(result.seconds),
                            "pages_sample": markdown_table(published.sort_values("demand").head(15)[["title", "feed_size", "predicted_precision", "demand"]]),
                            "dropped_sample": markdown_table(dropped[["title", "reason"]], 20)})


@asset_check(asset=landing_pages, partitions_def=catalog_partitions, blocking=False,
             description="published pages have the minimum feed size, unique titles and no near-duplicate images in their first k items")
def landing_pages_quality(landing_pages: AssetManifest, collections: CollectionsResource) -> AssetCheckResult:
    from ml.collections.feeds import dhash, feeds_with_near_duplicates

    config = collections.config()
    pages = read_table(landing_pages.uris["pages"])
    published = pages[pages["status"] == "published"]
    feeds = read_table(landing_pages.uris["feeds"])
    top = feeds[feeds["topic"].isin(published["topic"]) & (feeds["rank"] < config.top_k)]
    items = read_table(landing_pages.uris["items"], ["item_id", "image_hash"]).set_index("item_id")
    hashes = dhash(item_pixels(items.loc[top["item_id"], "image_hash"], landing_pages.uris["images"]))
    pages_with_duplicates = feeds_with_near_duplicates(top["topic"].to_numpy(), hashes, config.near_duplicate_bits)
    small = int((published["feed_size"] < config.min_feed_size).sum())
    repeated_titles = int(published["title"].duplicated().sum())
    return AssetCheckResult(passed=not (pages_with_duplicates or small or repeated_titles), severity=AssetCheckSeverity.ERROR,
                            metadata={"pages": len(published), "pages_with_near_duplicates_in_top_k": pages_with_duplicates,
                                      "pages_below_min_feed": small, "repeated_titles": repeated_titles})


@asset(group_name="collections", partitions_def=catalog_partitions, kinds={"parquet", "html"})
def search_log_baseline(context: AssetExecutionContext, search_demand: AssetManifest, catalog_items: AssetManifest,
                        item_attributes: AssetManifest, attribute_vocabulary: AssetManifest, item_embeddings: AssetManifest,
                        landing_pages: AssetManifest, storage: StorageResource, attributes: AttributesResource,
                        collections: CollectionsResource) -> Output[AssetManifest]:
    """The traditional approach: frequent queries as topics, BM25 feeds, the same quality bar."""
    from ml.collections.baseline import LexicalIndex

    config = collections.config()
    view = _view(catalog_items, item_attributes, attribute_vocabulary, item_embeddings)
    log = read_table(search_demand.uris["log"])
    parser = QueryParser(view.space, Taxonomy.load(attributes.taxonomy))
    index = LexicalIndex(view.texts(config.title_weight))
    result = search_log(log, view.space, parser, index, view.hashes, _titler(view, log, attributes, collections), config)
    base = storage.uri("collections", context.partition_key)
    write_collections(view.space, result, f"{base}/baseline_pages.parquet", f"{base}/baseline_feeds.parquet")
    dropped_queries = result.extra["dropped_queries"]
    write_table(dropped_queries, f"{base}/baseline_dropped_queries.parquet")
    published = result.published
    gallery = Gallery(Path(landing_pages.uris["site"]).parent, view.space, view.items)
    hrefs = gallery.pages(published, result.feeds, prefix="baseline-")
    dropped = result.pages[result.pages["status"] == "dropped"]
    gallery.table("baseline.html", "Search-log baseline pages", published.assign(href=hrefs), ["title", "query", "demand", "feed_size", "predicted_precision"])
    gallery.table("baseline_dropped.html", "Dropped baseline pages and queries",
                  pd.concat([dropped[["query", "demand", "reason"]].rename(columns={"demand": "count"}), dropped_queries]), ["query", "count", "reason"])
    gallery.finish(lambda hashes: item_pixels(hashes, catalog_items.uris["images"]))
    figures = {"pages": len(published), "topics": len(result.pages), "dropped": len(dropped), "queries_dropped": len(dropped_queries),
               "frequent_queries": int((log["count"] >= config.min_query_count).sum()), "min_query_count": config.min_query_count,
               "precision_estimate": config.baseline_precision}
    return Output(AssetManifest(uris={"pages": f"{base}/baseline_pages.parquet", "feeds": f"{base}/baseline_feeds.parquet"}, figures=figures),
                  metadata={**figures, "baseline_pages": MetadataValue.url(f"file://{gallery.root / 'baseline.html'}"),
                            "pages_sample": markdown_table(published[["title", "query", "demand", "feed_size", "predicted_precision"]], 20),
                            "dropped_sample": markdown_table(dropped[["query", "reason"]], 20)})


@asset(group_name="collections", partitions_def=catalog_partitions, kinds={"mlflow", "matplotlib"})
def collection_report(context: AssetExecutionContext, landing_pages: AssetManifest, search_log_baseline: AssetManifest,
                      search_demand: AssetManifest, catalog_snapshot: AssetManifest, catalog_items: AssetManifest,
                      item_attributes: AssetManifest, attribute_vocabulary: AssetManifest, item_embeddings: AssetManifest,
                      storage: StorageResource, mlflow: MLflowResource, attributes: AttributesResource,
                      collections: CollectionsResource) -> Output[AssetManifest]:
    """Topic coverage, P@10, item coverage and long-tail share for both approaches, and the same
    figures for query logs of several sizes; MLflow run, chart and summary.json."""
    config = collections.config()
    view = _view(catalog_items, item_attributes, attribute_vocabulary, item_embeddings)
    log = read_table(search_demand.uris["log"])
    parser = QueryParser(view.space, Taxonomy.load(attributes.taxonomy))
    pages = read_pages(view.space, landing_pages.uris["pages"])
    feeds = read_feeds(view.space, landing_pages.uris["feeds"])
    baseline = read_pages(view.space, search_log_baseline.uris["pages"])
    baseline_feeds = read_feeds(view.space, search_log_baseline.uris["feeds"])
    truth = find_ground_truth(catalog_snapshot.uris["catalog_dir"])
    headline = headline_figures(view, pages, feeds, baseline, baseline_feeds, log, parser, truth, config)
    base = storage.uri("collections", context.partition_key)
    metadata: dict = {}
    sweep = pd.DataFrame()
    if truth is not None:
        sweep = sweep_log_sizes(view, pages, feeds, log, parser, truth, config, collections.log_sizes,
                                find_simulator(search_demand.uris["catalog_dir"]), _titler(view, log, attributes, collections))
        write_table(sweep, f"{base}/report_sweep.parquet")
        chart = plot_report(sweep, int(log["count"].sum()), storage.local_dir("collections", context.partition_key) / "collection_report.png")
        metadata["chart"] = MetadataValue.path(str(chart))
        metadata["sweep"] = markdown_table(sweep.round(4))
    else:
        context.log.info("no labels.parquet beside the catalog: precision and the log-size sweep are skipped")
    with mlflow.run(f"collections-{context.partition_key}", tags={"stage": "collections", "snapshot": context.partition_key,
                                                                  "dagster_run_id": context.run_id}) as run:
        run.log_params({k: v for k, v in config.model_dump().items()} | {"log_searches": int(log["count"].sum())})
        run.log_metrics({k: v for k, v in headline.items() if isinstance(v, (int, float)) and np.isfinite(v)})
        if len(sweep):
            for row in sweep.itertuples():
                run.log_metrics({"sweep.baseline_pages": row.baseline_pages, "sweep.topic_coverage_ratio": row.topic_coverage_ratio,
                                 "sweep.baseline_precision_at_10": row.baseline_precision_at_10}, step=int(row.log_queries))
            run.log_dict(sweep.to_dict("records"), "sweep.json")
            run.client.log_artifact(run.run_id, str(chart), "plots")
    metadata["mlflow_run"] = MetadataValue.url(run.url)
    summary = {k: headline[k] for k in ("pages", "baseline_pages", "topic_coverage_ratio", "precision_at_10", "baseline_precision_at_10",
                                        "item_coverage", "baseline_item_coverage", "long_tail_share", "log_searches") if k in headline}
    storage.update_summary({"collections": {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v) for k, v in summary.items()}})
    figures = {**headline, "sweep": sweep.to_dict("records")}
    return Output(AssetManifest(uris={"sweep": f"{base}/report_sweep.parquet" if len(sweep) else ""}, figures=json.loads(json.dumps(figures, default=float))),
                  metadata={**{k: v for k, v in headline.items() if isinstance(v, (int, float, str))}, **metadata})


def collection_targets(collections: CollectionsResource) -> dict[str, float]:
    return {"precision_at_10": collections.min_precision_at_10, "item_coverage": collections.min_item_coverage,
            "topic_coverage_ratio": collections.min_coverage_ratio, "precision_margin": collections.min_precision_margin}


@asset_check(asset=collection_report, partitions_def=catalog_partitions, blocking=False,
             description="content-first P@10 and item coverage meet their targets")
def collection_quality(collection_report: AssetManifest, collections: CollectionsResource) -> AssetCheckResult:
    return _targets_check(collection_report.figures, collection_targets(collections), ("precision_at_10", "item_coverage"), AssetCheckSeverity.ERROR)


@asset_check(asset=collection_report, partitions_def=catalog_partitions, blocking=False,
             description="content-first beats the search-log baseline: topic coverage ratio and the P@10 margin")
def beats_search_log_baseline(collection_report: AssetManifest, collections: CollectionsResource) -> AssetCheckResult:
    return _targets_check(collection_report.figures, collection_targets(collections), ("topic_coverage_ratio", "precision_margin"), AssetCheckSeverity.WARN)


def _targets_check(figures: dict, targets: dict[str, float], names: tuple[str, ...], severity: AssetCheckSeverity) -> AssetCheckResult:
    """Each named figure the report could measure against its target. Unmeasured ones (P@10 and
    its margin need ground-truth labels; the coverage ratio needs a search log with pages: inf
    when the baseline made none) are listed, not passed; with none measured the check says so."""
    measured = {k: float(figures[k]) for k in names if figures.get(k) is not None and np.isfinite(figures[k])}
    unmeasured = [k for k in names if k not in measured]
    failing = {k: f"{v:.4f} < {targets[k]}" for k, v in measured.items() if not v >= targets[k]}
    return AssetCheckResult(passed=not failing, severity=severity if measured else AssetCheckSeverity.WARN,
                            description=None if measured else f"nothing to measure: {', '.join(unmeasured)} need ground truth or a search log",
                            metadata={**measured, "targets": MetadataValue.json({k: targets[k] for k in names}),
                                      "failing": MetadataValue.json(failing), "unmeasured": MetadataValue.json(unmeasured)})