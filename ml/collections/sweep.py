"""The report's figures: the headline comparison on the log the pipeline was given, and the
same comparison for logs of other sizes (simulated by the demo's demand model when the catalog
came with one, else thinned from the given log), so a reader sees how the baseline grows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ml.collections.baseline import LexicalIndex
from ml.collections.build import CatalogView, search_log
from ml.collections.config import CollectionConfig
from ml.collections.demand import aggregate_log, demand_by_key, thin_log
from ml.collections.metrics import coverage_ratio, item_coverage, long_tail_share, page_precision
from ml.collections.space import QueryParser
from ml.collections.titles import Titler

Simulator = Callable[[int], pd.DataFrame]


def find_simulator(catalog_dir: str) -> Simulator | None:
    """The demo's demand model, when the catalog folder holds demo_manifest.json and labels."""
    folder = Path(catalog_dir)
    manifest, labels = folder / "demo_manifest.json", folder / "labels.parquet"
    if "://" in catalog_dir or not manifest.exists() or not labels.exists():
        return None
    demand = json.loads(manifest.read_text()).get("config", {}).get("demand")
    if not demand:
        return None
    from ml.catalog.demand import DemandModel, simulate_search_demand

    truth = pd.read_parquet(labels)
    return lambda n: aggregate_log(simulate_search_demand(truth, DemandModel(**{**demand, "n_queries": n})))


def _published(pages: pd.DataFrame) -> pd.DataFrame:
    return pages[pages["status"] == "published"]


def headline_figures(view: CatalogView, pages: pd.DataFrame, feeds: pd.DataFrame, baseline: pd.DataFrame, baseline_feeds: pd.DataFrame,
                     log: pd.DataFrame, parser: QueryParser, truth: tuple[pd.DataFrame, dict] | None, config: CollectionConfig) -> dict:
    ours, theirs = _published(pages), _published(baseline)
    n_items = len(view.space.item_ids)
    demand = demand_by_key(log, parser.key)
    figures = {
        "log_searches": int(log["count"].sum()), "log_distinct_queries": len(log),
        "pages": len(ours), "baseline_pages": len(theirs), "topic_coverage_ratio": coverage_ratio(len(ours), len(theirs)),
        "item_coverage": item_coverage(feeds, ours.index, n_items), "baseline_item_coverage": item_coverage(baseline_feeds, theirs.index, n_items),
        "long_tail_share": long_tail_share(list(ours["key"]), demand, config.min_query_count),
        "pages_never_searched": int(sum(demand.get(k, 0) == 0 for k in ours["key"])),
    }
    if truth is not None:
        labels, aliases = truth
        figures["precision_at_10"] = float(page_precision(ours, feeds, view.space, labels, aliases, config.top_k).mean())
        figures["baseline_precision_at_10"] = float(page_precision(theirs, baseline_feeds, view.space, labels, aliases, config.top_k).mean())
        figures["precision_margin"] = figures["precision_at_10"] - figures["baseline_precision_at_10"]
        # sensitivity of the baseline to its bar: no precision bar, or the content-first estimator
        full = baseline[baseline["feed_size"] >= config.min_feed_size]
        figures["baseline_precision_at_10_no_precision_bar"] = float(page_precision(full, baseline_feeds, view.space, labels, aliases, config.top_k).mean())
        if "predicted_precision_attributes" in baseline:
            borrowed = full[full["predicted_precision_attributes"] >= config.min_predicted_precision]
            figures["baseline_pages_attribute_bar"] = len(borrowed)
            figures["baseline_precision_at_10_attribute_bar"] = float(page_precision(borrowed, baseline_feeds, view.space, labels, aliases, config.top_k).mean())
    return figures


def sweep_log_sizes(view: CatalogView, pages: pd.DataFrame, feeds: pd.DataFrame, log: pd.DataFrame, parser: QueryParser,
                    truth: tuple[pd.DataFrame, dict], config: CollectionConfig, sizes: list[int], simulator: Simulator | None,
                    titler: Titler) -> pd.DataFrame:
    """One row per log size: both approaches' pages, P@10, item coverage, the ratio and the long tail."""
    labels, aliases = truth
    ours = _published(pages)
    ours_precision = float(page_precision(ours, feeds, view.space, labels, aliases, config.top_k).mean())
    index = LexicalIndex(view.texts(config.title_weight))
    headline = int(log["count"].sum())
    rows = []
    for size in sorted(set(sizes) | {headline}):
        if size == headline:
            sized, how = log, "given"
        elif simulator is not None:
            sized, how = simulator(size), "simulated"
        elif size < headline:
            sized, how = thin_log(log, size), "thinned"
        else:
            continue
        result = search_log(sized, view.space, parser, index, view.hashes, titler, config)
        theirs = result.published
        rows.append({
            "log_queries": int(sized["count"].sum()), "log_source": how, "pages": len(ours), "baseline_pages": len(theirs),
            "topic_coverage_ratio": coverage_ratio(len(ours), len(theirs)), "precision_at_10": ours_precision,
            "baseline_precision_at_10": float(page_precision(theirs, result.feeds, view.space, labels, aliases, config.top_k).mean()),
            "baseline_item_coverage": item_coverage(result.feeds, theirs.index, len(view.space.item_ids)),
            "long_tail_share": long_tail_share(list(ours["key"]), demand_by_key(sized, parser.key), config.min_query_count),
            "headline": size == headline,
        })
    return pd.DataFrame(rows)
