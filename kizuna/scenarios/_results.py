"""`kizuna results`: per scenario and step, what was sent, and whether it worked (docs/measures.md §5).

Counts come from the send ledger: `sent` is every message handed to its channel, `delivered`
those it accepted, `failed` those it refused for good, `unconfirmed` those it may have (no answer
came, even to the one resend); `waiting` is what a later run will send or try again (deferred,
scheduled again after a temporary refusal, to be resent). The effect compares the scenario's treated customers with
its control: the scenario's own holdout and the workspace's global control group, both
evaluated on the same occasions and never contacted. Conversion is the scenario's goal within
its window after the occasion (`goal_conversions`), the uplift's 95 % interval Newcombe's hybrid
score interval for a difference of two proportions (`newcombe_interval`).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kizuna.operations import Ledger
from kizuna.scenarios._context import RunSettings, canonical_tables
from kizuna.scenarios._effect import Counts, goal_conversions, measure
from kizuna.scenarios._model import Scenario

if TYPE_CHECKING:
    from kizuna.store import Store

__all__ = ["RESULT_COLUMNS", "scenario_results"]

RESULT_COLUMNS = (
    "scenario", "title", "step", "channel", "due", "sent", "delivered", "failed", "deferred", "suppressed",
    "holdout", "cancelled", "waiting", "unconfirmed", "treated_customers", "control_customers", "treated_rate",
    "control_rate",
    "uplift", "low", "high", "enough_data", "needed_per_group", "incremental_orders", "incremental_revenue",
)


def scenario_results(scenarios: Sequence[Scenario], *, ledger: Ledger, store: Store, settings: RunSettings,
                     name: str | None = None, as_of: dt.date | None = None, now: dt.datetime | None = None,
                     lang: str = "ja") -> list[dict[str, Any]]:
    """One row per scenario step, then the scenario's total row (step None) with its effect.

    `scenarios`: the scenarios defined now (their titles and goals); the ledger may hold others.
    The effect is computed from `store`'s tables with `settings`' timezone and min_effect.
    """
    defined = {s.name: s for s in scenarios}
    counts = ledger.result_counts(int((now or dt.datetime.now(dt.UTC)).timestamp()), name)
    steps: dict[tuple[str, int], dict[str, Any]] = {}
    for row in counts:
        key = (row["scenario"], row["step"])
        tally = steps.setdefault(key, _empty(row["scenario"], row["step"], row["channel"], defined, lang))
        status, n = row["status"], row["n"]
        tally["deferred"] += row["ever_deferred"] or 0
        if status == "holdout":
            tally["holdout"] += n
            continue
        if status in ("scheduled", "resend") and row["future"] and not row["attempted"]:
            tally["waiting"] += n  # not due yet
            continue
        tally["due"] += n
        if status == "sent":
            tally["sent"] += n
            tally["delivered"] += n
        elif status in ("failed", "unconfirmed"):
            tally["sent"] += n
            tally[status] += n
        elif status in ("suppressed", "cancelled"):
            tally[status] += n
        elif status in ("scheduled", "deferred", "resend", "sending", "committing"):
            tally["waiting"] += n
    results: list[dict[str, Any]] = []
    zone = zoneinfo.ZoneInfo(settings.business.timezone)
    for scenario_name in sorted({s for s, _ in steps}):
        rows = [steps[k] for k in sorted(steps) if k[0] == scenario_name]
        total = _empty(scenario_name, None, "", defined, lang)
        for row in rows:
            for column in ("due", "sent", "delivered", "failed", "deferred", "suppressed", "holdout", "cancelled",
                           "waiting", "unconfirmed"):
                total[column] += row[column]
        scenario = defined.get(scenario_name)
        if scenario is not None:
            total.update(_effect(store, settings, ledger, scenario, as_of, zone))
        results.extend(rows)
        results.append(total)
    return results


def _empty(scenario: str, step: int | None, channel: str, defined: dict[str, Scenario], lang: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(scenario=scenario, step=step, channel=channel,
               title=defined[scenario].label(lang) if scenario in defined else scenario)
    for column in ("due", "sent", "delivered", "failed", "deferred", "suppressed", "holdout", "cancelled", "waiting",
                   "unconfirmed"):
        row[column] = 0
    return row


def _effect(store: Store, settings: RunSettings, ledger: Ledger, scenario: Scenario, as_of: dt.date | None,
            zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    enrolled = ledger.enrolments(scenario.name)
    if not enrolled:
        return {}
    table = pa.table({
        "scenario": [r["scenario"] for r in enrolled],
        "customer_id": [r["customer_id"] for r in enrolled],
        "occasion_at": pa.array([dt.datetime.fromtimestamp(r["occasion_ts"], zone).replace(tzinfo=None)
                                 for r in enrolled], pa.timestamp("us")),
        "group": ["treated" if r["grp"] == "treated" else "control" for r in enrolled],
    })
    rows = goal_conversions(table, canonical_tables(store), scenario.goal.kind, scenario.goal.days, as_of=as_of,
                            timezone=settings.business.timezone).to_pyarrow().to_pylist()
    groups = {r["group"]: Counts.from_row(r) for r in rows}
    treated, control = groups.get("treated", Counts(0, 0)), groups.get("control", Counts(0, 0))
    effect = measure(treated, control, settings.delivery.min_effect)
    return {
        "treated_customers": treated.customers, "control_customers": control.customers,
        "treated_rate": effect.treated_rate, "control_rate": effect.control_rate,
        "uplift": effect.uplift, "low": effect.low, "high": effect.high, "enough_data": effect.enough_data,
        "needed_per_group": effect.needed_per_group, "incremental_orders": effect.incremental_orders,
        "incremental_revenue": effect.incremental_revenue,
    }
