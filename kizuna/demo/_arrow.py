"""Small vectorised builders of Arrow columns from numpy arrays (no Python row loops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["join", "numbered", "pick", "stamps", "text"]


def numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """"C0000042"-style identifiers."""
    return join(prefix, pc.utf8_lpad(text(numbers), width, "0"))


def text(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def pick(words: Sequence[str], index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """words[index] per row; null where `mask` is False."""
    chosen = pa.array(list(words), pa.string()).take(pa.array(index))
    if mask is None:
        return chosen
    return pc.if_else(pa.array(mask), chosen, pa.scalar(None, pa.string()))


def join(*parts: str | pa.Array) -> pa.Array:
    """Element-wise concatenation of columns and constant strings."""
    return pc.binary_join_element_wise(*parts, "")


def stamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Local wall-clock timestamps from int64 seconds; null where `valid` is False."""
    mask = None if valid is None else ~np.asarray(valid)
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, pa.timestamp("us"), mask=mask)
