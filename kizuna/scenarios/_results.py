"""`kizuna results`: per scenario and step, what was sent, and whether it worked (docs/measures.md §5).

Counts come from the send ledger: `sent` is every message handed to its channel, `delivered`
those it accepted, `failed` those it refused for good, `unconfirmed` those it may have (no answer
came, even to the one resend); `waiting` is what a later run will send or try again (deferred,
scheduled again after a temporary refusal, to be resent). The effect compares the scenario's treated customers with
its control: the scenario's own holdout and the workspace's global control group, both
evaluated on the same occasions and never contacted. Conversion is the scenario's goal within
its window after the occasion (`goal_conversions`), the uplift's 95 % interval Newcombe's hybrid
score interval for a difference of two proportions (`newcombe_interval`). Per step: the messages a
person clicked, what they cost, and the recipients' conversion and revenue beside the step's control
(`kizuna.scenarios._step_results`); per scenario also the incremental profit (`incremental_profit`).

`kizuna results --calls` and `kizuna calls results` (`call_results`): what the contact centre's calls
teach — the kept rate per talk script (`script_results`) and the kept rate of the customers the keep
list may call against the call holdout's (`holdout_effect`, docs/measures.md#call-effect).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from kizuna.analytics import KEEP_STATES, LOST_STATES, AsOf, lifecycle_states
from kizuna.operations import Ledger
from kizuna.prediction import in_call_holdout
from kizuna.scenarios._calls import script_results
from kizuna.scenarios._context import RunSettings, canonical_tables
from kizuna.scenarios._costs import incremental_profit
from kizuna.scenarios._effect import Counts, goal_conversions, measure, newcombe_interval, wilson_interval
from kizuna.scenarios._model import Scenario
from kizuna.scenarios._step_results import STEP_COLUMNS, step_costs, step_effects

if TYPE_CHECKING:
    from kizuna.analytics import AnalysisSettings
    from kizuna.store import Store

__all__ = ["CALL_GROUPS", "RESULT_COLUMNS", "call_results", "holdout_effect", "scenario_results"]

RESULT_COLUMNS = (
    "scenario", "title", "step", "channel", "due", "sent", "delivered", "failed", "deferred", "suppressed",
    "holdout", "cancelled", "waiting", "unconfirmed", "treated_customers", "control_customers", "treated_rate",
    "control_rate",
    "uplift", "low", "high", "enough_data", "needed_per_group", "incremental_orders", "incremental_revenue",
    *STEP_COLUMNS,
)


def scenario_results(scenarios: Sequence[Scenario], *, ledger: Ledger, store: Store, settings: RunSettings,
                     name: str | None = None, as_of: dt.date | None = None, now: dt.datetime | None = None,
                     lang: str = "ja") -> list[dict[str, Any]]:
    """One row per scenario step, then the scenario's total row (step None) with its effect.

    `scenarios`: the scenarios defined now (their titles and goals); the ledger may hold others.
    The effect is computed from `store`'s tables with `settings`' timezone and min_effect.
    """
    defined = {s.name: s for s in scenarios}
    now_ts = int((now or dt.datetime.now(dt.UTC)).timestamp())
    counts = ledger.result_counts(now_ts, name)
    steps: dict[tuple[str, int], dict[str, Any]] = {}
    for row in counts:
        key = (row["scenario"], row["step"])
        tally = steps.setdefault(key, _empty(row["scenario"], row["step"], row["channel"], defined, lang))
        status, n = row["status"], row["n"]
        tally["deferred"] += row["ever_deferred"] or 0
        if status == "holdout":
            tally["holdout"] += n
            continue
        if status == "merged":  # its message is the later occasion's, counted there
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
    step_costs(list(steps.values()), ledger, settings, name)
    results: list[dict[str, Any]] = []
    zone = zoneinfo.ZoneInfo(settings.business.timezone)
    for scenario_name in sorted({s for s, _ in steps}):
        rows = [steps[k] for k in sorted(steps) if k[0] == scenario_name]
        total = _empty(scenario_name, None, "", defined, lang)
        for row in rows:
            for column in ("due", "sent", "delivered", "failed", "deferred", "suppressed", "holdout", "cancelled",
                           "waiting", "unconfirmed", "clicked", "cost"):
                total[column] += row[column]
        scenario = defined.get(scenario_name)
        if scenario is not None:
            total.update(_effect(store, settings, ledger, scenario, as_of, zone, cost=total["cost"]))
            per_step = step_effects(store, settings, ledger, scenario, as_of=as_of, now=now_ts)
            for row in rows:
                row.update(per_step.get(row["step"], {}))
        results.extend(rows)
        results.append(total)
    return results


def _empty(scenario: str, step: int | None, channel: str, defined: dict[str, Scenario], lang: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(scenario=scenario, step=step, channel=channel,
               title=defined[scenario].label(lang) if scenario in defined else scenario)
    for column in ("due", "sent", "delivered", "failed", "deferred", "suppressed", "holdout", "cancelled", "waiting",
                   "unconfirmed", "clicked", "cost"):
        row[column] = 0
    return row


def _effect(store: Store, settings: RunSettings, ledger: Ledger, scenario: Scenario, as_of: dt.date | None,
            zone: zoneinfo.ZoneInfo, *, cost: float = 0) -> dict[str, Any]:
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
                            timezone=settings.business.timezone, spread=True).to_pyarrow().to_pylist()
    groups = {r["group"]: Counts.from_row(r) for r in rows}
    raw = {r["group"]: r for r in rows}
    treated, control = groups.get("treated", Counts(0, 0)), groups.get("control", Counts(0, 0))
    effect = measure(treated, control, settings.delivery.min_effect)
    return {
        "treated_customers": treated.customers, "control_customers": control.customers,
        "treated_rate": effect.treated_rate, "control_rate": effect.control_rate,
        "uplift": effect.uplift, "low": effect.low, "high": effect.high, "enough_data": effect.enough_data,
        "needed_per_group": effect.needed_per_group, "incremental_orders": effect.incremental_orders,
        "incremental_revenue": effect.incremental_revenue,
        # per treated customer, whether the messages reached them or not (intention to treat)
        "converted": treated.converted,
        "revenue_per_recipient": treated.revenue / treated.customers if treated.customers else None,
        "control_revenue_per_customer": control.revenue / control.customers if control.customers else None,
        **incremental_profit(raw.get("treated", _NONE), raw.get("control", _NONE),
                             margin=settings.business.gross_margin_rate, cost=cost),
    }


_NONE = {"customers": 0, "revenue": 0, "revenue_squares": 0.0}


# The groups of the call holdout's comparison, in the order they are shown.
CALL_GROUPS = ("called", "not_called", "held_out")


def call_results(tables: dict[str, ibis.Table], *, secret: str, share: float, as_of: dt.date,
                 since: dt.date | None = None, analysis: AnalysisSettings | None = None,
                 confidence: float = 0.95) -> dict[str, Any]:
    """What the calls teach, as of the end of `as_of`: ``scripts``, the kept rate per talk script with
    Wilson's and Newcombe's intervals (`script_results`), and ``holdout``, the called against the held
    out (`holdout_effect`; None before the first call). `since` narrows both to the calls from that day.

    `secret` and `share` are the workspace secret and `[calls] holdout_share`, which say who is held out.
    """
    return {
        "as_of": as_of, "since": since,
        "scripts": script_results(tables["calls"], as_of=as_of, since=since, confidence=confidence),
        "holdout": holdout_effect(tables, secret=secret, share=share, as_of=as_of, since=since, analysis=analysis,
                                  confidence=confidence),
    }


def holdout_effect(tables: dict[str, ibis.Table], *, secret: str, share: float, as_of: dt.date,
                   since: dt.date | None = None, analysis: AnalysisSettings | None = None,
                   confidence: float = 0.95) -> dict[str, Any] | None:
    """The kept rate of the customers called against that of the call holdout (docs/measures.md#call-effect).

    The customers compared are those the keep list could call over the period `since` … `as_of`
    (`since`: the day of the first call when None): `active` or `at_risk` at the end of the day before
    it, with a telephone number. A customer is kept when they are not `lost` or
    `subscription_cancelled` at the end of `as_of`. The hash of the call holdout (`in_call_holdout`)
    splits them at random into the held out, whom no list calls, and the others, of whom the list
    called some (a call in the period, answered or not: `called`) and not the rest (`not_called`).

    The difference of the kept rates of the others (called and not called together) and the held out
    compares two random groups, with Newcombe's interval; divided by the share of the others who were
    called it is the effect of a call on the customers called (Bloom 1984: no one held out is called,
    so the whole difference comes from the calls). None when there are no calls in the period.
    """
    cut = AsOf(as_of)
    calls = tables["calls"].filter(cut.before_end(tables["calls"].called_at))
    if since is None:
        first = calls.called_at.min().to_pyarrow().as_py()
        if first is None:
            return None
        since = first.date()
    calls = calls.filter(calls.called_at >= ibis.literal(dt.datetime.combine(since, dt.time())))
    if calls.count().to_pyarrow().as_py() == 0:
        return None
    before = lifecycle_states(tables, since - dt.timedelta(days=1), analysis)
    after = lifecycle_states(tables, as_of, analysis)
    customers = tables["customers"]
    reachable = customers.filter(customers.phone.notnull() & (customers.phone.strip() != ""))  # as the lists do
    eligible = before.filter(before.lifecycle_state.isin(KEEP_STATES)).select("customer_id")
    eligible = eligible.semi_join(reachable, "customer_id")
    called = calls.select("customer_id").distinct().mutate(_called=ibis.literal(True))
    joined = eligible.left_join(after.select("customer_id", "lifecycle_state"), "customer_id").left_join(
        called, "customer_id")
    rows = joined.select(
        customer_id=eligible.customer_id,
        kept=~joined.lifecycle_state.isin(LOST_STATES).fill_null(False),
        called=joined._called.fill_null(False),
    ).to_pyarrow()
    tally = {group: [0, 0] for group in CALL_GROUPS}  # customers, kept
    held_out_called = 0
    for customer_id, kept, was_called in zip(rows["customer_id"].to_pylist(), rows["kept"].to_pylist(),
                                             rows["called"].to_pylist(), strict=True):
        held = in_call_holdout(customer_id, secret, share)
        group = "held_out" if held else "called" if was_called else "not_called"
        held_out_called += held and was_called
        tally[group][0] += 1
        tally[group][1] += bool(kept)
    groups = []
    for group in CALL_GROUPS:
        n, kept = tally[group]
        interval = wilson_interval(kept, n, confidence)
        groups.append({"group": group, "customers": n, "kept": kept, "kept_rate": kept / n if n else None,
                       "low": interval[0] if interval else None, "high": interval[1] if interval else None})
    others_n = tally["called"][0] + tally["not_called"][0]
    others_kept = tally["called"][1] + tally["not_called"][1]
    difference = newcombe_interval(others_kept, others_n, tally["held_out"][1], tally["held_out"][0], confidence)
    called_share = tally["called"][0] / others_n if others_n else None
    result: dict[str, Any] = {
        "since": since, "as_of": as_of, "share": share, "groups": groups, "held_out_called": held_out_called,
        "called_share": called_share, "difference": None, "difference_low": None, "difference_high": None,
        "enough_data": None, "per_call": None, "per_call_low": None, "per_call_high": None,
    }
    if difference is not None:
        result.update(difference=difference[0], difference_low=difference[1], difference_high=difference[2],
                      enough_data=not difference[1] <= 0 <= difference[2])
        if called_share:  # a share of customers kept moves by 100 points at most, whatever the scaling
            result.update(per_call=difference[0] / called_share, per_call_low=max(-1.0, difference[1] / called_share),
                          per_call_high=min(1.0, difference[2] / called_share))
    return result
