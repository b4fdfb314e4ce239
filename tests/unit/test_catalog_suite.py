import pandas as pd

from data_checks.catalog_suite import validate_catalog
from data_checks.dagster_results import to_check_result


def _outcomes(items, readable):
    return {o.check.name: o for o in validate_catalog(items, pd.Series(readable), max_price=1000)}


def test_clean_items_pass_every_check():
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["x", "y"], "image_uri": ["a.png", "b.png"],
                          "image_hash": ["h1", "h2"], "price": [1.0, None]})
    assert all(o.passed for o in _outcomes(items, [True] * 20).values())


def test_each_defect_fails_its_own_check_with_evidence():
    items = pd.DataFrame({"item_id": ["a", "a", None], "title": ["x", "", "z"], "image_uri": ["a", "b", "c"],
                          "image_hash": ["h", "h", "h"], "price": [1.0, -3.0, 5000.0]})
    outcomes = _outcomes(items, [True] * 9 + [False] * 2)
    assert outcomes["catalog_schema"].passed
    assert not outcomes["item_ids_unique"].passed
    assert not outcomes["titles_non_empty"].passed
    assert not outcomes["price_in_range"].passed
    assert not outcomes["readable_image_share"].passed  # 9/11 < 0.95
    result = to_check_result(outcomes["price_in_range"], "catalog_items")
    assert result.severity.value == "WARN" and result.metadata["unexpected_count"].value == 2
    ids = to_check_result(outcomes["item_ids_unique"], "catalog_items")
    assert ids.severity.value == "ERROR" and ids.metadata["unexpected_count"].value == 3  # one missing id, two rows sharing "a"
    assert outcomes["catalog_not_empty"].passed


def test_an_empty_catalog_fails_a_blocking_check():
    """Every row quarantined leaves no items: every per-row expectation passes vacuously, so the
    row count is what stops the run."""
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ("item_id", "title", "image_uri", "image_hash")}).assign(price=pd.Series([], dtype=float))
    outcomes = _outcomes(empty, [False] * 3)
    assert not outcomes["catalog_not_empty"].passed
    assert outcomes["catalog_schema"].passed and outcomes["item_ids_unique"].passed
    assert to_check_result(outcomes["catalog_not_empty"], "catalog_items").severity.value == "ERROR"


def test_missing_column_fails_the_schema_check():
    items = pd.DataFrame({"item_id": ["a"], "title": ["x"], "image_uri": ["a"], "image_hash": ["h"]})
    assert not _outcomes(items.assign(price=1.0).drop(columns=["image_hash"]), [True])["catalog_schema"].passed
