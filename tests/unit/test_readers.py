import json

import pandas as pd
import pytest

from ml.catalog.contract import CatalogFormatError
from ml.catalog.readers import PARSE_ERROR_COLUMN, iter_catalog_chunks

ROWS = [{"item_id": f"i{k}", "title": f"Item {k}", "image_uri": f"img/{k}.png", "price": k * 1.5, "colour": "red"} for k in range(10)]


def _read_all(path, chunk_rows=4):
    chunks = list(iter_catalog_chunks(str(path), chunk_rows))
    return chunks, pd.concat(chunks, ignore_index=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_formats_read_alike_in_chunks(tmp_path, fmt):
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"catalog.{fmt}"
    {"csv": lambda: frame.to_csv(path, index=False), "parquet": lambda: frame.to_parquet(path),
     "jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[fmt]()
    chunks, table = _read_all(path)
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert table["source_row"].tolist() == list(range(10))
    assert table["item_id"].tolist() == [r["item_id"] for r in ROWS]
    prices = table["price"].tolist()
    assert all(isinstance(p, str) for p in prices)  # every value arrives as text
    assert [float(p) for p in prices[:3]] == [0, 1.5, 3]
    assert table["colour"].eq("red").all()  # other columns are kept


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "shop.csv"
    pd.DataFrame([{"item_id": "1", "image_uri": "a.png"}]).to_csv(path, index=False)
    with pytest.raises(CatalogFormatError, match=r"shop\.csv: missing required column\(s\) title"):
        list(iter_catalog_chunks(str(path)))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("shop.xlsx", b"PK", "unsupported catalog format"), ("empty.csv", b"", "empty"),
     ("bad.parquet", b"not parquet at all", "not a readable Parquet file"),
     ("ragged.csv", b'item_id,title,image_uri\n1,"unterminated,x\n', "not a well-formed CSV")],
)
def test_unreadable_files_fail_with_the_file_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CatalogFormatError, match=message) as info:
        list(iter_catalog_chunks(str(path)))
    assert name in str(info.value)


def test_jsonl_bad_lines_become_rows_with_a_parse_error(tmp_path):
    path = tmp_path / "catalog.jsonl"
    lines = [json.dumps(ROWS[0]), "{not json", "[1, 2]", "", json.dumps(ROWS[1])]
    path.write_text("\n".join(lines) + "\n")
    _, table = _read_all(path, chunk_rows=100)
    assert len(table) == 5
    errors = table[PARSE_ERROR_COLUMN].tolist()
    assert errors[0] is None and errors[4] is None
    assert "invalid JSON" in errors[1] and "not an object" in errors[2] and errors[3] == "blank line"


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(CatalogFormatError, match="file not found"):
        list(iter_catalog_chunks(str(tmp_path / "nope.csv")))
