"""`kizuna run`: evaluate every scenario and deliver what is due, exactly once.

A pipeline of four stages, each a function of what it is given, composed in `run_scenarios`:

1. **Evaluate occasions** (`evaluate_occasions`; store, read-only): each scenario's occasions
   and audience, as enrolments (a message is enrolled once: its key is scenario / step /
   customer / occasion) and the memberships of entering triggers.
2. **Enrol in the ledger** (`enrol`): the enrolments not known yet, in one transaction.
3. **Pick what is due** (`pick_due`): the rows due now, one per customer and scenario step —
   several occasions of one step due at once (orders placed while cron was off) give one
   message, for the latest, and the others are `merged` (`merge_occasions`) — as Arrow columns.
4. **Dispatch** (`kizuna.scenarios._dispatch.Dispatcher`; operational records only), in slices of
   `SLICE_ROWS` rows in the order they go: for each slice, what the rules and templates need about
   its customers (contacts, consents, goals reached, and the personalisation fields as of each row's
   occasion, not of the run's day) is read from the store, then its rows go. One slice reads it in
   one query (`due_slice`); several have the engine work it out once for all of them and read their
   part each (`_DueReader`). A first run that enrols a whole customer base (millions of messages due
   at once) so holds one slice's customers at a time. After the last slice's read the store may be released, so that the
   analytics store is held only while reading it.

Stage 1 leaves the occasions in the engine: trigger, audience, the ledger's known keys and the control
groups are one Ibis expression per scenario, so that a store on Spark keeps the customers in its
executors; stage 2 reads what goes on (a real run every new enrolment, which it records; a dry run the
counts per step and the treated rows due) as Arrow columns (`kizuna.scenarios._enrolments`), and
Python objects are made only for those.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import zoneinfo
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kizuna._errors import KizunaError
from kizuna.analytics import LOST_STATES
from kizuna.delivery import Transport
from kizuna.operations import Delivery, DueRow, Enrolment, Ledger, Operations, take_baselines
from kizuna.prediction import last_calls
from kizuna.scenarios._context import RunContext, RunSettings
from kizuna.scenarios._dispatch import Dispatcher, RunReport, step_key
from kizuna.scenarios._enrolments import (
    DUE_SCHEMA,
    ENROLMENT_SCHEMA,
    due_rows,
    due_table,
    enrolment_rows,
    enrolments,
    group_column,
    group_of,
    local_to_unix,
    new_due,
    unix_to_local_day,
)
from kizuna.scenarios._evaluate import audience_filter, entering_members, occasions
from kizuna.scenarios._fields import OCCASION_FIELD_COLUMNS, day_end, moment_fields, related_products
from kizuna.scenarios._model import Scenario, load_scenarios
from kizuna.scenarios._switches import running_scenarios
from kizuna.store import scratch_table

if TYPE_CHECKING:
    from kizuna.store import Store

__all__ = ["MERGEABLE", "NEW_COLUMNS", "SLICE_ROWS", "Due", "Enrolled", "Occasions", "Picked", "audience_tables",
           "due_slice", "enabled_scenarios", "enrol", "evaluate_occasions", "group_of", "merge_occasions", "pick_due",
           "run_scenarios", "scenario_fields"]

_CONTACT_COLUMNS = ("customer_id", "name", "name_kana", "email", "phone", "line_user_id", "postal_code", "address",
                    "email_opt_in", "line_opt_in", "dm_opt_in")
_SCORE_FIELDS = ("matrix_cell", "rfm_rank", "ltv_revenue", "nps_score", "nps_class", "recency_days", "lost_reason")
_PREDICTION_FIELDS = ("churn_risk", "value_at_risk", "p_alive", "clv", "expected_next_order_on", "uplift", "value_kept",
                      "call_outcomes")
# A row that never went may give way to a later occasion of its step; one in flight may have gone.
MERGEABLE = ("scheduled", "deferred")
_ORDER_OCCASION = "order:"  # after_order's occasions: "order:" + order_id (kizuna.scenarios._evaluate)
# Rows dispatched at a time, with their customers' data: what a run holds beyond the Arrow columns of
# every row due (bench/README.md, "the dispatcher in slices", for the memory it takes)
SLICE_ROWS = 200_000


def run_scenarios(
    context: RunContext,
    *,
    as_of: dt.date,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    only: str | None = None,
    transports: Mapping[str, Callable[[], Transport]] | None = None,
    release_store: bool = False,
    lang: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    as_if_on: bool = False,
    campaigns: Callable[..., tuple[Due, dict[str, Scenario]]] | None = None,
) -> RunReport:
    """Evaluate the scenarios in `context.scenarios_dir` as of `as_of` and deliver what is due at `now`.

    Only the scenarios switched on run (`kizuna.scenarios.running_scenarios`; `as_if_on`, for a dry
    run: the paused and off ones too, as if switched on on `as_of`).
    evaluate occasions → enrol in the ledger → pick what is due → dispatch. `transports`:
    channel -> factory of its transport (default: from the settings). A channel without one
    keeps its rows waiting, with a line in the report's problems. `release_store` closes the
    store after picking what is due, so that other processes may write it while messages go.
    A run that delivers holds the workspace's run lock; a dry run records nothing and needs none.
    `campaigns` (`kizuna.scenarios.with_campaigns`) adds the one-off campaigns due to the same dispatch,
    after the scenarios' rows.
    """
    with contextlib.nullcontext() if dry_run else _one_run_at_a_time(context.run_lock, context.operations):
        now = (now or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(context.settings.business.timezone))
        scenarios, baseline = running_scenarios(context.operations, enabled_scenarios(context.scenarios_dir, only),
                                                as_of=as_of, only=only, as_if_on=as_if_on and dry_run,
                                                timezone=context.settings.business.timezone)
        ledger = Ledger(context.operations)
        tables = context.tables()
        audience = audience_tables(context.store)
        found = evaluate_occasions(context, scenarios, ledger, tables=tables, audience=audience, as_of=as_of,
                                   baseline=baseline)
        enrolled = enrol(ledger, found, dry_run=dry_run, due_by=now)
        if baseline and not dry_run:
            take_baselines(context.operations, sorted(baseline))
        report = _count_enrolled(RunReport(as_of, now, dry_run), enrolled.counts, scenarios)
        picked = pick_due(scenarios, ledger, enrolled.rows, now=now, dry_run=dry_run)
        # a first run's enrolments are millions of rows at ten million customers: the ledger has them (a dry run's
        # due are among the picked rows), and what the engine works out next needs the memory
        del enrolled, found
        extra = None
        if campaigns is not None and only is None:  # one-off campaigns due now (`with_campaigns`)
            extra, scenarios = campaigns(context, scenarios, ledger, report, tables=tables, audience=audience,
                                         as_of=as_of, now=now, dry_run=dry_run, lang=lang)
        if picked.merged:
            if not dry_run:
                ledger.merge(list(picked.merged.values()), at=int(now.timestamp()))
            for key in picked.merged:
                row = picked.merged[key][0]
                report.count(scenarios[row.scenario], row.step, "merged")
        dispatcher = Dispatcher(context, ledger=ledger, scenarios=scenarios, report=report, now=now, dry_run=dry_run,
                                transports=transports, lang=lang, progress=progress)
        rows, size = picked.rows, SLICE_ROWS
        slices: Iterator[Due] = iter(())
        if rows.num_rows > size:  # the store's rows for every slice worked out once, read a slice at a time
            reader = _DueReader(context, rows, scenarios, size, tables=tables, audience=audience, as_of=as_of,
                                lang=lang)
            calls = reader.call_people()
            slices = reader.slices(release=release_store)
        else:
            due = due_slice(context, due_rows(rows), scenarios, tables=tables, audience=audience, as_of=as_of,
                            lang=lang) if rows.num_rows else None
            if release_store:
                context.store.close()  # the last read of the store: other processes may write it now
            calls = {r.customer_id: due.people.get(r.customer_id) for r in due.rows if r.channel == "call"} \
                if due is not None else {}
            slices = iter([due] if due is not None else [])
        if extra is not None:
            slices = itertools.chain(slices, [extra])
            for r in extra.rows:
                if r.channel == "call" and r.customer_id not in calls:
                    calls[r.customer_id] = extra.people.get(r.customer_id)
        if rows.num_rows > size or (rows.num_rows and extra is not None):
            _carried(dispatcher, rows, extra, size)
            # the day's call capacity goes to the best-ranked of the whole run, whichever slice they are in
            dispatcher.calls_taken = dispatcher.calls_within_capacity(calls.values())
        for due in slices:
            dispatcher.take(due.rows, due.people, due.reached, due.fields)
        return report


@dataclass(frozen=True)
class Occasions:
    """What stage 1 found, as expressions the engine works out when stage 2 reads them: per scenario, the
    enrolments the ledger does not know yet (`NEW_COLUMNS`: an occasion's step with the customer's group;
    None when the trigger found nothing), and the entering triggers' memberships (scenario, customers
    entered, customers left — None when there were no members before —, day)."""

    new: list[tuple[Scenario, ibis.Table | None]]
    memberships: list[tuple[str, ibis.Table, ibis.Table | None, str]]
    zone: zoneinfo.ZoneInfo  # the business's: the occasions' local times are its wall-clock times


@dataclass(frozen=True)
class Enrolled:
    """What stage 2 read: the new enrolments (`ENROLMENT_SCHEMA`; all of them on a real run, which records
    them; on a dry run only those it will act on, treated and due) and their counts per scenario step
    (scenario, step, held_count: enrolled, held_sum: of them in a control group)."""

    rows: pa.Table
    counts: pa.Table


@dataclass(frozen=True)
class Picked:
    """What stage 3 picked: the rows to act on (`DUE_SCHEMA`, in the order they go: the ledger's by due
    time and key, then a dry run's new ones) and the rows merged into a later occasion (key -> (row, the
    ledger's note))."""

    rows: pa.Table
    merged: dict[str, tuple[DueRow, str]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Due:
    """Rows to dispatch with what the rules and templates need about their customers: the customers'
    data, the keys of the rows whose customer has reached the scenario's goal, and each row's personal
    fields as of its occasion (by key)."""

    rows: list[DueRow]
    people: dict[str, dict]
    reached: set[str]
    fields: dict[str, dict] = dataclasses.field(default_factory=dict)


def enabled_scenarios(folder: Path, only: str | None = None) -> dict[str, Scenario]:
    """name -> scenario: the enabled scenarios in `folder` (`only`: just that one, which must exist)."""
    scenarios = [s for s in load_scenarios(folder) if s.enabled and (only in (None, s.name))]
    if only is not None and not scenarios:
        raise KizunaError.keyed("error.no_enabled_scenario", name=repr(only), folder=str(folder))
    return {s.name: s for s in scenarios}


@contextlib.contextmanager
def _one_run_at_a_time(path: Path, operations: Operations) -> Iterator[None]:
    """Two runs of one workspace at once (cron started the next before the last ended) would both
    find the same rows due: the second stops. The lock is the OS's, so a killed run leaves none."""
    import fcntl

    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            raise KizunaError.keyed("error.run_running", pid=pid) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            with operations.run_lock() as held:  # records shared by several hosts: one run on any of them
                if not held:
                    raise KizunaError.keyed("error.run_running_elsewhere")
                yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def evaluate_occasions(context: RunContext, scenarios: dict[str, Scenario], ledger: Ledger, *,
                       tables: dict[str, ibis.Table], audience: dict[str, ibis.Table], as_of: dt.date,
                       baseline: Collection[str] = ()) -> Occasions:
    """Stage 1: each scenario's occasions as of `as_of`, narrowed by its audience, less what the ledger
    knows, each step with the customer's group: expressions over the store, so that the trigger, the
    audience, the control groups and the comparison with the ledger run where the rows are (the
    ledger's keys of the occasions' span go there), and only what stage 2 reads comes back.

    `baseline`: scenarios whose entering trigger takes today's members as they are (switched on
    again: those who entered meanwhile are not occasions); their memberships are recorded all the same."""
    settings = context.settings
    zone = zoneinfo.ZoneInfo(settings.business.timezone)
    secret = context.operations.secret()
    survey = _survey_answers(context.operations, zone)
    consents: dict[str, dict[str, bool]] | None = None  # read once, if an audience asks about them
    new: list[tuple[Scenario, ibis.Table | None]] = []
    memberships: list[tuple[str, ibis.Table, ibis.Table | None, str]] = []
    for scenario in scenarios.values():
        def members(kind: str, current: ibis.Table, scenario: Scenario = scenario) -> ibis.Table:
            entered, left = entering_members(ledger.members(scenario.name), current)
            memberships.append((scenario.name, entered, left, as_of.isoformat()))
            return entered.filter(ibis.literal(False)) if scenario.name in baseline else entered

        found = occasions(scenario, tables, as_of, members=members, scores=audience.get("scores"),
                          predictions=audience.get("predictions"), survey_answers=survey)
        if scenario.segments or scenario.conditions or scenario.segment is not None:
            if audience.get("table") is None:
                if _scalar(found.count()):
                    raise KizunaError.keyed("error.audience_needs_scores", name=scenario.name)
                new.append((scenario, None))
                continue
            consents = consents or {c: context.operations.consents(c) for c in ("email", "line", "dm")}
            chosen = audience_filter(scenario, audience["table"], tables, consents)
            found = found.semi_join(chosen.select(customer_id=chosen.customer_id.cast("string")), "customer_id")
        holdout = scenario.holdout if scenario.holdout is not None else settings.delivery.holdout_share
        new.append((scenario, _unknown(scenario, found, ledger, zone, secret=secret, holdout=holdout,
                                       global_control=settings.delivery.global_control_share)))
    return Occasions(new, memberships, zone)


NEW_COLUMNS = ("customer_id", "occasion", "occasion_at", "detail", "step", "grp")


def _scalar(expr: ibis.Scalar):
    return expr.to_pyarrow().as_py()


def _unknown(scenario: Scenario, found: ibis.Table, ledger: Ledger, zone: zoneinfo.ZoneInfo, *, secret: str,
             holdout: float, global_control: float) -> ibis.Table | None:
    """`found`'s occasions × `scenario`'s steps the ledger does not know (`NEW_COLUMNS`), or None when there
    is no occasion. The ledger's keys of the scenario from the first occasion's day to the last one's go to
    the engine (what an occasion evaluated again, or caught up on, meets); the rest stays there."""
    span = found.aggregate(low=found.occasion_at.min(), high=found.occasion_at.max()).to_pyarrow()
    low, high = span.column("low")[0].as_py(), span.column("high")[0].as_py()
    if low is None:
        return None
    first, last = local_to_unix(pa.array([low.replace(tzinfo=None), high.replace(tzinfo=None)],
                                         pa.timestamp("us")), zone).to_pylist()
    known = ledger.ops.query("SELECT step, customer_id, occasion FROM deliveries WHERE scenario = ? "
                             "AND occasion_ts BETWEEN ? AND ?", (scenario.name, first - 86_400, last + 86_400))
    steps = ibis.memtable(pa.table({"step": pa.array([s.number for s in scenario.steps], pa.int64())}))
    rows = found.cross_join(steps)
    if known:
        keys = ibis.memtable(pa.table({"step": pa.array([r[0] for r in known], pa.int64()),
                                       "customer_id": pa.array([r[1] for r in known], pa.string()),
                                       "occasion": pa.array([r[2] for r in known], pa.string())}))
        rows = rows.anti_join(keys, ["step", "customer_id", "occasion"])
    return rows.mutate(grp=group_column(rows.customer_id, scenario.name, secret=secret, holdout=holdout,
                                        global_control=global_control)).select(*NEW_COLUMNS)


def enrol(ledger: Ledger, found: Occasions, *, dry_run: bool = False, due_by: dt.datetime | None = None) -> Enrolled:
    """Stage 2: the enrolments the ledger does not know yet, read from the engine and recorded with the
    memberships in one transaction; returns them with their counts. A dry run records nothing and reads
    only the counts and the treated enrolments due by `due_by` (a time with its zone)."""
    zone = found.zone
    tables: list[pa.Table] = []
    counts: list[pa.Table] = []
    for scenario, rows in found.new:
        if rows is None:
            continue
        if dry_run:
            counts.append(_step_counts(scenario, rows))
            if due_by is not None:
                read = enrolment_rows(scenario, _read(_due_by(scenario, rows, due_by.astimezone(zone))), zone)
                tables.append(read.filter(pc.less_equal(read.column("due_ts"), int(due_by.timestamp()))))
        else:
            read = enrolment_rows(scenario, _read(rows), zone)
            tables.append(read)
            counts.append(_arrow_counts(read))
    new = pa.concat_tables(tables) if tables else ENROLMENT_SCHEMA.empty_table()
    if not dry_run:
        members = [(name, _ids(entered), _ids(left) if left is not None else [], day)
                   for name, entered, left, day in found.memberships]
        ledger.enrol(enrolments(new), members)
    return Enrolled(new, pa.concat_tables(counts) if counts else _COUNTS.empty_table())


_COUNTS = pa.schema([("scenario", pa.string()), ("step", pa.int64()), ("held_count", pa.int64()),
                     ("held_sum", pa.int64())])


def _read(rows: ibis.Table) -> pa.Table:
    """The rows of an enrolment expression, an occasion's steps together (timestamps as wall-clock times)."""
    table = rows.order_by(["customer_id", "occasion", "step"]).to_pyarrow()
    at = table.column("occasion_at")
    if at.type != pa.timestamp("us"):
        table = table.set_column(table.column_names.index("occasion_at"), "occasion_at",
                                 pc.cast(at, pa.timestamp("us")))
    return table


def _due_by(scenario: Scenario, rows: ibis.Table, due_by: dt.datetime) -> ibis.Table:
    """The treated rows whose step is due by `due_by`, as the engine can tell from local wall-clock times: a
    superset where the zone's offset changes (the exact cut is made on the Unix times of what is read)."""
    zone = due_by.tzinfo
    local = due_by.replace(tzinfo=None)
    offsets = [local.replace(tzinfo=zone).utcoffset()]
    offsets += [(local + dt.timedelta(days=30 * k)).replace(tzinfo=zone).utcoffset() for k in range(-40, 13)]
    latest = local + (max(o for o in offsets if o is not None) - offsets[0])
    wait = dt.timedelta()
    due = None
    for step in scenario.steps:
        wait += dt.timedelta(days=step.wait_days)
        this = (rows.step == step.number) & (rows.occasion_at <= ibis.literal(latest - wait, type="timestamp"))
        due = this if due is None else (due | this)
    return rows.filter(rows.grp == "treated", due)


def _step_counts(scenario: Scenario, rows: ibis.Table) -> pa.Table:
    """The new enrolments per step and those of them in a control group, counted by the engine."""
    held = ibis.cases((rows.grp != "treated", 1), else_=0)
    counts = rows.group_by("step").aggregate(held_count=rows.count(), held_sum=held.sum()).to_pyarrow()
    return pa.table({"scenario": pa.array([scenario.name] * counts.num_rows, pa.string()),
                     "step": counts.column("step").cast(pa.int64()),
                     "held_count": counts.column("held_count").cast(pa.int64()),
                     "held_sum": counts.column("held_sum").cast(pa.int64())}, schema=_COUNTS).sort_by("step")


def _arrow_counts(new: pa.Table) -> pa.Table:
    held = pc.not_equal(new.column("grp"), "treated").cast(pa.int64())
    counts = (new.select(["scenario", "step"]).append_column("held", held)
              .group_by(["scenario", "step"], use_threads=False).aggregate([("held", "count"), ("held", "sum")]))
    return counts.select(_COUNTS.names).cast(_COUNTS).sort_by("step")


def _ids(rows: ibis.Table) -> list[str]:
    return rows.select("customer_id").to_pyarrow().column("customer_id").to_pylist()


def _count_enrolled(report: RunReport, counts: pa.Table, scenarios: dict[str, Scenario]) -> RunReport:
    """`report`, with the new enrolments counted (and those of the control groups as holdout), per
    scenario step in turn."""
    for name, step, n, n_held in zip(*(counts.column(c).to_pylist() for c in
                                       ("scenario", "step", "held_count", "held_sum")), strict=True):
        if n:
            report.count(scenarios[name], step, "enrolled", n)
        if n_held:
            report.count(scenarios[name], step, "holdout", n_held)
    return report


def _enrolled(report: RunReport, new: list[Enrolment], scenarios: dict[str, Scenario]) -> RunReport:
    """`report`, with the new enrolments counted (and those of the control groups as holdout)."""
    for e in new:
        report.count(scenarios[e.scenario], e.step, "enrolled")
        if e.grp != "treated":
            report.count(scenarios[e.scenario], e.step, "holdout")
    return report


def pick_due(scenarios: dict[str, Scenario], ledger: Ledger, new: pa.Table, *, now: dt.datetime,
             dry_run: bool = False) -> Picked:
    """Stage 3: the ledger's rows due at `now` (and those a killed run left in flight; a dry run adds its
    new enrolments due by then), one per customer and scenario step (`merge_occasions`)."""
    now_unix = int(now.timestamp())
    tables: list[pa.Table] = []
    after = None
    while True:  # the ledger's rows a page at a time: as columns, not one object each
        page = ledger.due(now_unix, limit=SLICE_ROWS, after=after)
        if not page:
            break
        tables.append(due_table([r for r in page if r.scenario in scenarios]))
        after = (page[-1].due_ts, page[-1].key)
    if dry_run and new.num_rows:
        tables.append(new_due(new.filter(pc.and_(pc.equal(new.column("grp"), "treated"),
                                                 pc.less_equal(new.column("due_ts"), now_unix)))))
    rows = pa.concat_tables(tables) if tables else DUE_SCHEMA.empty_table()
    return Picked(*_merged_away(rows))


def _merged_away(rows: pa.Table) -> tuple[pa.Table, dict[str, tuple[DueRow, str]]]:
    """`merge_occasions` of `rows` (`DUE_SCHEMA`), on the rows of the customers with several occasions
    of one scenario step only: (the rows to act on, in their order; the rows merged away)."""
    if not rows.num_rows:
        return rows, {}
    steps = rows.group_by(["scenario", "step", "customer_id"], use_threads=False).aggregate([("key", "count")])
    several = steps.filter(pc.greater(steps.column("key_count"), 1))
    if not several.num_rows:
        return rows, {}
    pairs = several.group_by(["scenario", "customer_id"], use_threads=False).aggregate([])
    _, merged = merge_occasions(due_rows(rows.join(pairs, ["scenario", "customer_id"], join_type="left semi")))
    if not merged:
        return rows, {}
    gone = pc.is_in(rows.column("key"), value_set=pa.array(list(merged), pa.string()))
    return rows.filter(pc.invert(gone)), merged


def due_slice(context: RunContext, rows: list[DueRow], scenarios: dict[str, Scenario], *,
              tables: dict[str, ibis.Table], audience: dict[str, ibis.Table], as_of: dt.date,
              lang: str | None = None) -> Due:
    """`rows` with what the rules and templates need about their customers, read from the store."""
    zone = zoneinfo.ZoneInfo(context.settings.business.timezone)
    people, fields = _due_people(tables, context.settings, rows, as_of, audience, lang or "ja", zone)
    reached = _goals_reached(tables, [r for r in rows if r.step > 1], scenarios, zone)
    return Due(rows, people, reached, fields)


def _carried(dispatcher: Dispatcher, rows: pa.Table, extra: Due | None, size: int) -> None:
    """What `dispatcher` carries from one slice of `rows` (then `extra`, a slice of its own) to the next: the
    states of the steps that later rows wait for, and the customers with rows in more than one slice."""
    later = rows.filter(pc.greater(rows.column("step"), 1))
    keys = pc.binary_join_element_wise(later.column("scenario"), pc.cast(pc.subtract(later.column("step"), 1),
                                                                         pa.string()),
                                       later.column("customer_id"), later.column("occasion"), "/")
    carry_keys = set(keys.to_pylist())
    extra_rows = extra.rows if extra is not None else []
    carry_keys.update(step_key(r, r.step - 1) for r in extra_rows if r.step > 1)
    part = pa.array(np.arange(rows.num_rows, dtype=np.int64) // size)
    spans = (pa.table({"customer_id": rows.column("customer_id"), "part": part})
             .group_by("customer_id", use_threads=False).aggregate([("part", "min"), ("part", "max")]))
    again = spans.filter(pc.not_equal(spans.column("part_min"), spans.column("part_max")))
    carry_customers = set(again.column("customer_id").to_pylist())
    if extra_rows:  # the campaigns' customers met in the scenarios' slices before
        theirs = pa.array(list({r.customer_id for r in extra_rows}), pa.string())
        carry_customers.update(theirs.filter(pc.is_in(theirs, value_set=spans.column("customer_id"))).to_pylist())
    dispatcher.carry_keys, dispatcher.carry_customers = carry_keys, carry_customers


class _DueReader:
    """What the rules and templates need about the customers of a run's rows (`DUE_SCHEMA`) in slices of
    `size`: worked out by the engine once for all of them, into scratch tables (`kizuna.store.scratch_table`),
    then read a slice at a time — so that each slice does not scan the orders again. The same values as
    `due_slice` reads for one slice."""

    def __init__(self, context: RunContext, rows: pa.Table, scenarios: dict[str, Scenario], size: int, *,
                 tables: dict[str, ibis.Table], audience: dict[str, ibis.Table], as_of: dt.date,
                 lang: str | None) -> None:
        self.context, self.rows, self.scenarios, self.size = context, rows, scenarios, size
        self.tables, self.as_of, self.settings = tables, as_of, context.settings
        self.zone = zoneinfo.ZoneInfo(context.settings.business.timezone)
        moments, self.moment_of_row, self.bounds = _moments(rows, self.zone, size)
        self.moments = ibis.memtable(moments)
        order, cut = moments.column("order_id"), moments.column("day_end")
        self.calling = pc.unique(moments.filter(moments.column("_call")).column("customer_id")).to_pylist()
        last = max(pc.max(cut).as_py().date(), as_of)
        query, self.sides = _due_query(tables, self.settings, self.moments.drop("_part", "_call"), as_of, last,
                                       audience, lang or "ja", of_orders=order.null_count < len(order))
        customers = self.moments.select("customer_id").distinct()
        self.stack = contextlib.ExitStack()
        self.found = self.stack.enter_context(scratch_table(query, "_kizuna_due_people"))
        self.related = self.stack.enter_context(scratch_table(
            related_products(tables, as_of, customers=customers), "_kizuna_due_related"))

    def call_people(self) -> dict[str, dict | None]:
        """customer -> their data (None: not in the store), for the customers of the call rows."""
        m = self.moments
        calls = m.filter(m._call).select("_n")
        found = self.found.semi_join(calls, "_n").to_pyarrow()
        no_related = pa.table({"customer_id": pa.array([], pa.string()), "rank": pa.array([], pa.int64()),
                               "name": pa.array([], pa.string())})  # not what ranks the calls
        people, _ = _assemble(found, no_related, self.sides, self.settings, int(self.bounds[-1]))
        return {c: people.get(c) for c in self.calling}

    def slices(self, *, release: bool = False) -> Iterator[Due]:
        """Each slice's rows with their customers' data; the scratch tables dropped (and the store closed, with
        `release`) after the last one's read."""
        count = -(-self.rows.num_rows // self.size)
        with self.stack:
            for k in range(count):
                first, end = int(self.bounds[k]), int(self.bounds[k + 1])
                found = self.found.filter((self.found._n >= first) & (self.found._n < end)).to_pyarrow()
                m = self.moments
                related = self.related.semi_join(m.filter(m._part == k).select("customer_id"), "customer_id")
                people, at = _assemble(found, related.to_pyarrow(), self.sides, self.settings, end - first, first)
                rows = due_rows(self.rows.slice(k * self.size, self.size))
                moment = self.moment_of_row[k * self.size:k * self.size + len(rows)].tolist()
                fields = {r.key: at[n - first] for r, n in zip(rows, moment, strict=True) if at[n - first] is not None}
                reached = _goals_reached(self.tables, [r for r in rows if r.step > 1], self.scenarios, self.zone)
                if k == count - 1:
                    self.stack.close()
                    if release:
                        self.context.store.close()  # the last read of the store: other processes may write it now
                yield Due(rows, people, reached, fields)


def merge_occasions(rows: list[DueRow]) -> tuple[list[DueRow], dict[str, tuple[DueRow, str]]]:
    """One message per customer and scenario step: (the rows to act on, the rows merged away).

    Of the rows of one scenario, step and customer, the latest occasion's goes (ties: the higher
    key); the others that never went (`MERGEABLE`) are merged into it, noted "merged into
    OCCASION". A row in flight (a killed run's `sending`, a `resend`) may have reached the
    customer and keeps its own course. The later steps of a merged occasion due now go with it.

    >>> from kizuna.operations import DueRow
    >>> def row(occasion, ts, step=1):
    ...     return DueRow(key=f"s/{step}/C1/{occasion}", ref="r", scenario="s", step=step, customer_id="C1",
    ...                   occasion=occasion, occasion_ts=ts, detail=None, channel="email", transactional=False,
    ...                   due_ts=ts)
    >>> kept, merged = merge_occasions([row("order:O1", 100), row("order:O2", 300)])
    >>> [r.occasion for r in kept], [(k, note) for k, (_, note) in merged.items()]
    (['order:O2'], [('s/1/C1/order:O1', 'merged into order:O2')])
    """
    latest: dict[tuple[str, int, str], DueRow] = {}
    for r in rows:
        group = (r.scenario, r.step, r.customer_id)
        best = latest.get(group)
        if best is None or (r.occasion_ts, r.key) > (best.occasion_ts, best.key):
            latest[group] = r
    merged: dict[str, tuple[DueRow, str]] = {}
    absorbed: dict[tuple[str, str, str], tuple[int, str]] = {}  # occasion merged -> (its step, where it went)
    for r in sorted(rows, key=lambda r: r.step):
        into = absorbed.get((r.scenario, r.customer_id, r.occasion))
        if into is None:
            keeper = latest[(r.scenario, r.step, r.customer_id)]
            if keeper is r or r.status not in MERGEABLE:
                continue
            into = (r.step, keeper.occasion)
            absorbed[(r.scenario, r.customer_id, r.occasion)] = into
        elif r.status not in MERGEABLE or r.step <= into[0]:
            continue
        merged[r.key] = (r, f"merged into {into[1]}")
    return [r for r in rows if r.key not in merged], merged


def audience_tables(store: Store) -> dict[str, ibis.Table]:
    """customer_scores, with the prediction columns when `kizuna predict` has run."""
    result: dict[str, ibis.Table] = {}
    if store.has_table("customer_scores"):
        scores = store.table("customer_scores")
        result["scores"] = result["table"] = scores
        if store.has_table("customer_predictions"):
            predictions = store.table("customer_predictions")
            result["predictions"] = predictions
            extra = [c for c in predictions.columns if c not in scores.columns or c == "customer_id"]
            result["table"] = scores.left_join(predictions.select(extra), "customer_id").drop("customer_id_right")
    elif store.has_table("customer_predictions"):
        result["predictions"] = store.table("customer_predictions")
    return result


def _survey_answers(operations: Operations, zone: zoneinfo.ZoneInfo) -> pa.Table:
    """Web survey answers not yet merged into nps_answers, as local wall-clock times."""
    rows = operations.unmerged_answers()
    return pa.table({
        "customer_id": pa.array([r["customer_id"] for r in rows], pa.string()),
        "answered_at": pa.array([dt.datetime.fromtimestamp(r["answered_ts"], zone).replace(tzinfo=None)
                                 for r in rows], pa.timestamp("us")),
        "score": pa.array([r["score"] for r in rows], pa.int64()),
    })


def _as_due(e: Enrolment) -> DueRow:
    common = {f.name: getattr(e, f.name) for f in dataclasses.fields(Delivery)}
    return DueRow(**common)


def scenario_fields(context: RunContext, customer_ids: list[str], as_of: dt.date,
                    lang: str = "ja") -> dict[str, dict]:
    """customer -> the fields a template may use as of the end of `as_of` (without the per-message
    ones); for preview."""
    ids = pa.array(customer_ids, pa.string())
    moments = pa.table({"customer_id": ids, "order_id": pa.nulls(len(ids), pa.string()),
                        "day_end": pa.array([day_end(as_of)] * len(ids), pa.timestamp("us"))})
    people, at = _due_data(context.tables(), context.settings, moments, as_of, audience_tables(context.store), lang)
    for customer, fields in zip(customer_ids, at, strict=True):
        if fields is not None:
            people[customer].update({"customer_id": customer, **fields})
    return people


def _due_people(tables: dict[str, ibis.Table], settings: RunSettings, rows: list[DueRow], as_of: dt.date,
                audience: dict[str, ibis.Table], lang: str, zone: zoneinfo.ZoneInfo
                ) -> tuple[dict[str, dict], dict[str, dict]]:
    """What the rules and templates need about the customers of `rows`: (customer -> their data, row key ->
    the personal fields as of its occasion: an order's own moment for after_order, so that its thank-you
    counts the orders up to it, else the end of the occasion's day). Rows of one customer and moment share
    one dict (read only)."""
    if not rows:
        return {}, {}
    moments, moment_of_row, _ = _moments(due_table(rows), zone, len(rows))
    people, at = _due_data(tables, settings, moments.select(["customer_id", "order_id", "day_end"]), as_of, audience,
                           lang)
    return people, {r.key: at[n] for r, n in zip(rows, moment_of_row.tolist(), strict=True) if at[n] is not None}


def _moments(rows: pa.Table, zone: zoneinfo.ZoneInfo, size: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The moments the personal fields of `rows` (`DUE_SCHEMA`, in slices of `size`) are as of: one per slice,
    customer, order and day — an after_order occasion's order (its time is read in the store), else the end of
    the occasion's local day. Returns (customer_id, order_id or null, day_end, _n: their number in the order of
    their first rows, _part: the slice, _call: a call row's), each row's moment number, and where each slice's
    moments start (slice k's are numbered from bounds[k] to bounds[k + 1])."""
    occasion = rows.column("occasion")
    order_id = pc.if_else(pc.starts_with(occasion, _ORDER_OCCASION),
                          pc.utf8_slice_codeunits(occasion, len(_ORDER_OCCASION)), None)
    n = rows.num_rows
    keys = pa.table({"part": pa.array(np.arange(n, dtype=np.int64) // size),
                     "customer_id": rows.column("customer_id"), "order_key": pc.fill_null(order_id, "\0"),
                     "day": unix_to_local_day(rows.column("occasion_ts"), zone).cast(pa.int32()),
                     "row": pa.array(np.arange(n, dtype=np.int64)),
                     "call": pc.equal(rows.column("channel"), "call")})
    names = ["part", "customer_id", "order_key", "day"]
    found = keys.group_by(names, use_threads=False).aggregate([("row", "min"), ("call", "any")]).sort_by("row_min")
    bounds = np.searchsorted(found.column("row_min").to_numpy(), np.arange(0, n + size, size, dtype=np.int64))
    number = pa.array(np.arange(found.num_rows, dtype=np.int64))
    joined = keys.select([*names, "row"]).join(found.select(names).append_column("_n", number), names)
    of_row = joined.sort_by("row").column("_n").to_numpy()
    order = pc.if_else(pc.equal(found.column("order_key"), "\0"), pa.nulls(found.num_rows, pa.string()),
                       found.column("order_key"))
    cut = pc.add(found.column("day").cast(pa.date32()).cast(pa.timestamp("us")),
                 pa.scalar(day_end(dt.date(1970, 1, 1)) - dt.datetime(1970, 1, 1)))
    return (pa.table({"customer_id": found.column("customer_id"), "order_id": order, "day_end": cut, "_n": number,
                      "_part": found.column("part"), "_call": found.column("call_any")}), of_row, bounds)


_FIELD_NAMES = OCCASION_FIELD_COLUMNS[3:]  # a row's personal fields (the customer's name is among their data)


def _due_data(tables: dict[str, ibis.Table], settings: RunSettings, moments: pa.Table, as_of: dt.date,
              audience: dict[str, ibis.Table], lang: str) -> tuple[dict[str, dict], list[dict | None]]:
    """One read of the store for the distinct `moments` (customer_id, order_id or null, day_end): each
    moment's personal fields (as of its order's time in the store, else of day_end) beside its customer's
    contacts, scores, predictions, last call and pending order; then a second for their related products.
    Returns (customer -> their data, each moment's fields or None for a customer not in the store)."""
    if not moments.num_rows:
        return {}, []
    m = ibis.memtable(moments.append_column("_n", pa.array(range(moments.num_rows), pa.int64())))
    last = max(pc.max(moments.column("day_end")).as_py().date(), as_of)
    found, sides = _due_query(tables, settings, m, as_of, last, audience, lang,
                              of_orders=moments.column("order_id").null_count < moments.num_rows)
    customers = m.select("customer_id").distinct()
    related = related_products(tables, as_of, customers=customers).to_pyarrow()
    return _assemble(found.to_pyarrow(), related, sides, settings, moments.num_rows)


def _due_query(tables: dict[str, ibis.Table], settings: RunSettings, m: ibis.Table, as_of: dt.date, last: dt.date,
               audience: dict[str, ibis.Table], lang: str, *, of_orders: bool = True
               ) -> tuple[ibis.Table, list[tuple[list[str], str]]]:
    """The store's rows for the moments `m` (customer_id, order_id or null, day_end, _n: the moment's number;
    none after the end of `last`; `of_orders`: some name an order), and the columns each side joined by
    customer brings with its key's name."""
    customers = m.select("customer_id").distinct()  # from the moments as given: no read of the orders
    orders = tables["orders"]
    if of_orders:
        wanted = m.filter(m.order_id.notnull()).select(_id=m.order_id).distinct()
        placed = orders.select(_id=orders.order_id.cast("string"), _at=orders.ordered_at).semi_join(wanted, "_id")
        placed = placed.group_by("_id").aggregate(_at=placed._at.max())
        m = m.left_join(placed, m.order_id == placed._id)
        m = m.select("_n", "customer_id", seen_until=ibis.coalesce(m._at, m.day_end))
    else:
        m = m.select("_n", "customer_id", seen_until=m.day_end)
    # the orders' cut: an order's moment is on its occasion's day, the others end theirs
    carry = tuple(c for c in _CONTACT_COLUMNS if c not in ("customer_id", "name"))
    fields = moment_fields(tables, m, last, alternative_yen_per_l=settings.delivery.alternative_yen_per_l,
                           carry=carry)
    t = m.view().inner_join(fields, ["customer_id", "seen_until"])  # a view: `fields` reads `m` too
    sides = []  # (the columns a customer's row brings, the table) joined by customer, each present or not
    if "scores" in audience:
        cols = [c for c in _SCORE_FIELDS if c in audience["scores"].columns]
        sides.append((cols, audience["scores"].select("customer_id", *cols)))
    if "predictions" in audience:
        p = audience["predictions"]
        reasons = "churn_reasons_en" if lang == "en" else "churn_reasons_ja"
        cols = [c for c in _PREDICTION_FIELDS if c in p.columns]
        # empty for a customer who has left: their reasons were not looked for (the lost reason says why)
        said = p[reasons] if reasons in p.columns else ibis.null("string")
        if "lifecycle_state" in p.columns:
            said = ibis.cases((p.lifecycle_state.isin(LOST_STATES), ibis.null("string")), else_=said)
        sides.append(([*cols, "churn_reasons"], p.select("customer_id", *cols, churn_reasons=said)))
    if "calls" in tables:  # the call lists' cooldown and callbacks (kizuna.prediction.call_blocker)
        sides.append((["last_called_at", "callback_due"], last_calls(tables["calls"], as_of)))
    # the parcel-insert list names the order whose parcel takes the insert: the latest not yet shipped
    pending = orders.filter(orders.shipped_at.isnull() & (orders.status.isnull() | (orders.status == "completed")))
    pending = pending.semi_join(customers, "customer_id").group_by("customer_id").aggregate(
        next_order_id=pending.order_id.cast("string").max(), next_order_at=pending.ordered_at.max())
    sides.append((["next_order_id", "next_order_at"], pending))
    for n, (cols, side) in enumerate(sides):
        side = side.semi_join(customers, "customer_id").select(**{f"_k{n}": "customer_id"}, **{c: c for c in cols})
        t = t.left_join(side, t.customer_id == side[f"_k{n}"])
    return t, [(cols, f"_k{n}") for n, (cols, _) in enumerate(sides)]


def _assemble(found: pa.Table, related: pa.Table, sides: list[tuple[list[str], str]], settings: RunSettings,
              count: int, first: int = 0) -> tuple[dict[str, dict], list[dict | None]]:
    """(customer -> their data, each moment's fields or None) of the `count` moments numbered from `first`
    on, from the store's rows `found` (`_due_query`) and the customers' `related` products."""
    # suggestions of what to buy next are today's, whatever the occasion
    related = related.sort_by([("customer_id", "ascending"), ("rank", "ascending")])
    related = related.group_by("customer_id", use_threads=False).aggregate([("name", "list")])
    suggested = dict(zip(related.column("customer_id").to_pylist(), related.column("name_list").to_pylist(),
                         strict=True))
    column = {n: found.column(n).to_pylist() for n in found.column_names}
    people: dict[str, dict] = {}
    at: list[dict | None] = [None] * count
    shared: dict[tuple, dict] = {}
    for i, (n, customer, until) in enumerate(zip(column["_n"], column["customer_id"], column["seen_until"],
                                                 strict=True)):
        if customer not in people:
            person = {c: column[c][i] for c in _CONTACT_COLUMNS}
            if customer in suggested:
                person["related_products"] = suggested[customer]
            for cols, key in sides[:-1]:  # the pending order comes last, as it always has
                if column[key][i] is not None:
                    person.update((c, column[c][i]) for c in cols)
            person.setdefault("related_products", [])
            person["alternative_name"] = settings.delivery.alternative_name
            if column[sides[-1][1]][i] is not None:
                person.update((c, column[c][i]) for c in sides[-1][0])
            people[customer] = person
        if (customer, until) not in shared:
            shared[customer, until] = {c: column[c][i] for c in _FIELD_NAMES}
        at[n - first] = shared[customer, until]
    return people, at


def _goals_reached(tables: dict[str, ibis.Table], rows: list[DueRow], scenarios: dict[str, Scenario],
                   zone: zoneinfo.ZoneInfo) -> set[str]:
    """Keys of later-step rows whose customer reached the scenario's goal after the occasion."""
    rows = [r for r in rows if scenarios[r.scenario].goal.kind in ("order", "referral", "nps_answer")]
    if not rows:
        return set()
    ids = ibis.memtable(pa.table({"customer_id": pa.array(sorted({r.customer_id for r in rows}), pa.string())}))
    orders = tables["orders"]
    completed = orders.filter(orders.status.isnull() | (orders.status == "completed"))
    latest = {
        "order": completed.semi_join(ids, "customer_id").group_by("customer_id")
        .aggregate(at=completed.ordered_at.max()),
        "referral": (lambda e: e.filter(e.kind == "referral").semi_join(ids, "customer_id").group_by("customer_id")
                     .aggregate(at=e.occurred_at.max()))(tables["events"]),
        "nps_answer": (lambda n: n.semi_join(ids, "customer_id").group_by("customer_id")
                       .aggregate(at=n.answered_at.max()))(tables["nps_answers"]),
    }
    kinds = {scenarios[r.scenario].goal.kind for r in rows}
    last: dict[str, dict[str, dt.datetime]] = {
        kind: {row["customer_id"]: row["at"] for row in latest[kind].to_pyarrow().to_pylist()} for kind in kinds
    }
    reached: set[str] = set()
    for r in rows:
        at = last[scenarios[r.scenario].goal.kind].get(r.customer_id)
        # the store keeps local wall-clock times: compare with the occasion's local time
        if at is not None and at > dt.datetime.fromtimestamp(r.occasion_ts, zone).replace(tzinfo=None):
            reached.add(r.key)
    return reached
