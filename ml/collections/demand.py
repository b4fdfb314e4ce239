"""Search demand: a user's query log (CSV or Parquet: query, count, optional date) read into one
aggregated table, bad rows quarantined with a reason; and demand per attribute combination."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ml.attributes.lexicon import normalise

LOG_COLUMNS = ["query", "count"]


def read_query_log(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log, quarantine). The log is aggregated per normalised query, sorted by count; a missing
    `count` column means one search per row. Rows with an empty query or a count that is not a
    positive whole number go to the quarantine with the reason and the raw values."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        raw = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"query log {path}: use a .csv, .tsv or .parquet file with columns query[, count, date]")
    if "query" not in raw.columns:
        raise ValueError(f"query log {path}: no 'query' column (found {list(raw.columns)})")
    frame = pd.DataFrame({"row": np.arange(len(raw)), "raw_query": raw["query"].astype(str), "raw_count": raw["count"].astype(str) if "count" in raw else "1"})
    frame["query"] = frame["raw_query"].map(normalise)
    count = pd.to_numeric(frame["raw_count"], errors="coerce")
    whole = count.notna() & np.isfinite(count) & (count == np.floor(count.fillna(0)))
    reason = np.select([frame["query"] == "", ~whole, count <= 0], ["empty_query", "bad_count", "bad_count"], default="")
    frame["reason"] = reason
    if "date" in raw:
        frame["date"] = pd.to_datetime(raw["date"], errors="coerce")
    bad = frame[frame["reason"] != ""][["row", "raw_query", "raw_count", "reason"]].reset_index(drop=True)
    good = frame[frame["reason"] == ""].assign(count=count[frame["reason"] == ""].astype(np.int64))
    return aggregate_log(good), bad


def aggregate_log(log: pd.DataFrame) -> pd.DataFrame:
    """One row per normalised query with its total count (and first/last date when dated)."""
    log = log.assign(query=log["query"].map(normalise))
    log = log[log["query"] != ""]
    agg: dict = {"count": ("count", "sum")}
    if "date" in log:
        agg |= {"first_date": ("date", "min"), "last_date": ("date", "max")}
    out = log.groupby("query", as_index=False).agg(**agg)
    return out.sort_values(["count", "query"], ascending=[False, True], ignore_index=True)


def thin_log(log: pd.DataFrame, n_queries: int, seed: int = 0) -> pd.DataFrame:
    """A smaller log of about n_queries searches with the same demand shape: each search kept
    independently (binomial thinning)."""
    total = int(log["count"].sum())
    if n_queries >= total:
        return log.copy()
    rng = np.random.default_rng(seed)
    counts = rng.binomial(log["count"].to_numpy(np.int64), n_queries / total)
    return log.assign(count=counts)[counts > 0].reset_index(drop=True)


def demand_by_key(log: pd.DataFrame, parse: Callable[[str], frozenset | None]) -> dict[frozenset, int]:
    """Searches per attribute combination: each query parsed to its key, counts summed."""
    out: dict[frozenset, int] = {}
    for query, count in zip(log["query"], log["count"]):
        key = parse(query)
        if key:
            out[key] = out.get(key, 0) + int(count)
    return out
