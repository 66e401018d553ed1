"""Numbers that may not be numbers: a figure a model could not compute is None, never NaN."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_or_none"]


def finite_or_none(value: Any) -> Any:
    """`value` with every float that is not finite (NaN, ±inf) replaced by None, at any depth of
    dicts, lists and tuples (JSON has no NaN: `json.dumps(..., allow_nan=False)` then holds).

    >>> finite_or_none({"clv": float("nan"), "orders": [1.5, float("inf")]})
    {'clv': None, 'orders': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
