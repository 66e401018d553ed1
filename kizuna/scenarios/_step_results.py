"""`kizuna results` per step: who clicked and converted, revenue per recipient, cost (docs/measures.md#step-results).

A step's **recipients** are the treated customers its message was delivered to; each is followed
for the scenario's goal window from the moment their message went. The step's **control** is the
scenario's control customers (holdout and global control) whose row of that step was due by now,
each followed from the moment theirs would have gone. Converted, the conversion rate and revenue
per customer (the completed orders' amounts in the windows, each order once) come from
`goal_conversions`, a customer counted once per step whatever their occasions.

This is a description of each message, not its effect: recipients are those with an address and
consent, the control is everyone, and a later step's recipients are those an earlier step did not
convert. The effect of the scenario, every treated customer against the control with its
interval, is its total row (docs/measures.md#uplift).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kizuna.operations import Clicks, Ledger
from kizuna.scenarios._context import RunSettings, canonical_tables
from kizuna.scenarios._costs import unit_cost
from kizuna.scenarios._effect import goal_conversions
from kizuna.scenarios._model import Scenario

if TYPE_CHECKING:
    from kizuna.store import Store

__all__ = ["STEP_COLUMNS", "step_costs", "step_effects"]

# What a step row adds to `kizuna results` (and the total row, summed or for the whole scenario).
STEP_COLUMNS = ("clicked", "converted", "revenue_per_recipient", "control_revenue_per_customer", "cost",
                "incremental_profit", "profit_low", "profit_high")


def step_costs(rows: list[dict[str, Any]], ledger: Ledger, settings: RunSettings,
               scenario: str | None = None) -> None:
    """Fill in `clicked` (messages a person clicked a link of) and `cost` ([costs] × messages delivered
    or unconfirmed) of the step rows of `kizuna results`, in place."""
    clicked = Clicks(ledger.ops).clickers(scenario)
    for row in rows:
        row["clicked"] = clicked.get((row["scenario"], row["step"]), 0)
        row["cost"] = (row["delivered"] + row["unconfirmed"]) * unit_cost(settings.costs, row["channel"])


def step_effects(store: Store, settings: RunSettings, ledger: Ledger, scenario: Scenario, *,
                 as_of: dt.date | None, now: int) -> dict[int, dict[str, Any]]:
    """step -> its recipients and control: customers, converted, rates, revenue per customer; the
    control's rows due by `now` (unix seconds), or by the end of `as_of` when that is earlier."""
    zone = zoneinfo.ZoneInfo(settings.business.timezone)
    if as_of is not None:
        now = min(now, int(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), zone).timestamp()))
    rows = [r for r in ledger.step_windows(scenario.name, now) if r["at_ts"] is not None]
    if not rows:
        return {}
    table = pa.table({
        "scenario": [scenario.name] * len(rows),
        "step": pa.array([r["step"] for r in rows], pa.int64()),
        "customer_id": [r["customer_id"] for r in rows],
        "occasion_at": pa.array([dt.datetime.fromtimestamp(r["at_ts"], zone).replace(tzinfo=None) for r in rows],
                                pa.timestamp("us")),
        "group": ["treated" if r["grp"] == "treated" else "control" for r in rows],
    })
    found = goal_conversions(table, canonical_tables(store), scenario.goal.kind, scenario.goal.days, as_of=as_of,
                             timezone=settings.business.timezone).to_pyarrow().to_pylist()
    result: dict[int, dict[str, Any]] = {}
    for r in found:
        step = result.setdefault(int(r["step"]), {})
        n = r["customers"]
        if r["group"] == "treated":
            step.update(treated_customers=n, converted=r["converted"], treated_rate=r["converted"] / n if n else None,
                        revenue_per_recipient=r["revenue"] / n if n else None)
        else:
            step.update(control_customers=n, control_rate=r["converted"] / n if n else None,
                        control_revenue_per_customer=r["revenue"] / n if n else None)
    return result
