"""Stable train/val/test assignment from a hash of the item id.

No label table is read: the same item lands in the same split on every run, every resume
and every stage, so evaluation items are never trained on and never used for calibration.
"""

from __future__ import annotations

import hashlib

import numpy as np

DEFAULT_VAL, DEFAULT_TEST = 0.05, 0.10


def _unit(item_id: str) -> float:
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "big") / 2**64


def assign_splits(item_ids, val_fraction: float = DEFAULT_VAL, test_fraction: float = DEFAULT_TEST) -> np.ndarray:
    """Array of "train" / "val" / "test" per id."""
    u = np.fromiter((_unit(i) for i in item_ids), dtype=np.float64)
    return np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train"))
