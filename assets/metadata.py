"""Shared helpers for what assets show in the Dagster UI."""

import pandas as pd
from dagster import MetadataValue


def markdown_table(frame: pd.DataFrame, rows: int = 40) -> MetadataValue:
    """The first `rows` rows as a Markdown table ("_none_" when empty)."""
    return MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_none_")
