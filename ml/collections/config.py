"""Settings for topics, feeds, the quality bar and the baseline; one model so both approaches
are held to the same bar."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CollectionConfig(BaseModel):
    # topics
    min_confidence: float = Field(0.5, description="an assignment counts towards a topic at this confidence or above")
    max_attributes: int = Field(3, ge=1, le=3, description="a topic combines 1 to this many attributes of different types")
    require_category: bool = Field(True, description="every topic names a category (it is the noun of the title)")
    anchor_type: str = "category"
    min_support: int = Field(12, ge=1, description="items a combination needs before it is a topic")
    max_attributes_per_item: int = Field(8, ge=1, description="an item's most confident attributes used for topic enumeration")
    # clustering
    cluster_items_per_centroid: int = Field(300, ge=10)
    max_clusters: int = Field(1024, ge=1)
    cluster_dominance: float = Field(0.6, gt=0, le=1, description="share of a cluster's items that must carry an attribute to name it")
    # feeds
    match_weight: float = Field(0.6, ge=0, le=1, description="feed score = w * attribute match + (1 - w) * similarity to the topic")
    max_feed_items: int = Field(200, ge=10)
    top_k: int = Field(10, ge=1, description="the first k items are checked for near-duplicates and precision")
    near_duplicate_bits: int = Field(4, ge=0, description="images whose 64-bit dHashes differ in at most this many bits are near-duplicates")
    # quality bar (both approaches)
    min_feed_size: int = Field(12, ge=1)
    min_predicted_precision: float = Field(0.8, ge=0, le=1, description="mean attribute-match confidence over the first top_k items")
    merge_overlap: float = Field(0.9, gt=0, le=1, description="pages whose item sets overlap (Jaccard) this much are one page")
    # baseline
    min_query_count: int = Field(5, ge=1, description="a query needs this many searches in the log to become a baseline topic")
    title_weight: int = Field(2, ge=1, description="the baseline indexes the title this many times: BM25 has no fields, and shop "
                                                   "search weights titles above descriptions (1: plain concatenation)")
    baseline_precision: Literal["lexical", "attributes"] = Field(
        "lexical", description="how the bar predicts a baseline page's precision: from its own evidence (results containing every "
                               "query term) or borrowing the content-first attribute confidences (a sensitivity check)")
