"""The customers of a call list left uncalled, to measure what a call does (docs/measures.md#calls).

`[calls] holdout_share` of the customers a call list would call are kept off it, chosen by a
hash of the customer id with the workspace secret — as the scenarios' holdout is
(`kizuna.scenarios.group_of`) — so a customer is held out on every list and every day alike,
without any record, and nobody can pick who is held out. Their later orders and cancellations,
against those of the customers called, are the effect of a call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["call_holdout", "in_call_holdout"]


def _share(customer_id: str, secret: str) -> float:
    digest = hashlib.sha256(f"calls\0{secret}\0{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_call_holdout(customer_id: str, secret: str, share: float) -> bool:
    """Whether the customer is kept uncalled: the hash of their id read as a number in [0, 1) is below `share`."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must lie between 0 and 1, not {share}.")
    return _share(customer_id, secret) < share


def call_holdout(customer_ids: Iterable[str], secret: str, share: float) -> set[str]:
    """The customers among `customer_ids` kept uncalled (`in_call_holdout`): the same ones on every run.

    >>> sorted(call_holdout(["C1", "C2", "C3"], "secret", 0.0)), sorted(call_holdout(["C1"], "secret", 1.0))
    ([], ['C1'])
    """
    return {c for c in customer_ids if in_call_holdout(c, secret, share)}
