"""Which talk script keeps subscribers: per script, the kept rate of the calls table (docs/measures.md#calls).

A customer counts once per script: their latest call with that script that reached them (any
outcome but `no_answer`) says whether the script kept them (`kept`) or not (`reached`,
`callback`, `cancelled`). The kept rate is kept / reached customers, with Wilson's score
interval; each script is compared with the reference script (the one that reached most
customers) by the difference of the two rates with Newcombe's hybrid score interval
(`newcombe_interval`, method 10 of Newcombe 1998), so that a difference is called only when its
interval leaves out zero.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from kizuna.analytics import AsOf
from kizuna.scenarios._effect import newcombe_interval, wilson_interval

__all__ = ["CALL_RESULT_COLUMNS", "last_calls", "script_results"]

CALL_RESULT_COLUMNS = ("script", "calls", "customers", "reached", "kept", "kept_rate", "low", "high", "reference",
                       "difference", "difference_low", "difference_high", "enough_data")


def script_results(calls: ibis.Table, *, as_of: dt.date | None = None, since: dt.date | None = None,
                   confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per script (a call without one under script None), most customers reached first.

    `calls`: the `calls` table; `since` / `as_of`: only calls on those days and between.
    """
    if as_of is not None:
        calls = calls.filter(AsOf(as_of).before_end(calls.called_at))
    if since is not None:
        calls = calls.filter(calls.called_at >= ibis.literal(dt.datetime.combine(since, dt.time())))
    made = calls.group_by("script").aggregate(calls=calls.count(), customers=calls.customer_id.nunique())
    reached = calls.filter(calls.outcome != "no_answer")
    ranked = reached.mutate(_n=ibis.row_number().over(group_by=[reached.script, reached.customer_id],
                                                       order_by=ibis.desc(reached.called_at)))
    latest = ranked.filter(ranked._n == 0)
    decided = latest.group_by("script").aggregate(
        reached=latest.count(), kept=latest.count(where=latest.outcome == "kept"))
    rows = made.left_join(decided, made.script.identical_to(decided.script)).select(
        made.script, made.calls, made.customers, decided.reached, decided.kept).to_pyarrow().to_pylist()
    for row in rows:
        row["reached"], row["kept"] = int(row["reached"] or 0), int(row["kept"] or 0)
    rows.sort(key=lambda r: (-r["reached"], -r["calls"], r["script"] is None, r["script"] or ""))
    reference = rows[0] if rows and rows[0]["reached"] else None
    for row in rows:
        interval = wilson_interval(row["kept"], row["reached"], confidence)
        row["kept_rate"] = row["kept"] / row["reached"] if row["reached"] else None
        row["low"], row["high"] = interval if interval else (None, None)
        row["reference"] = row is reference
        difference = None if reference is None or row is reference else newcombe_interval(
            row["kept"], row["reached"], reference["kept"], reference["reached"], confidence)
        row["difference"], row["difference_low"], row["difference_high"] = difference or (None, None, None)
        row["enough_data"] = None if difference is None else not difference[1] <= 0 <= difference[2]
    return [{c: row[c] for c in CALL_RESULT_COLUMNS} for row in rows]


def last_calls(calls: ibis.Table, customer_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """A customer's latest calls, newest first."""
    mine = calls.filter(calls.customer_id == customer_id).order_by(ibis.desc(calls.called_at)).limit(limit)
    return mine.to_pyarrow().to_pylist()
