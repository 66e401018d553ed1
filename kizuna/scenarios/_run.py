"""`kizuna run`: evaluate every scenario and deliver what is due, exactly once.

Two phases, so that the analytics store is held only while reading it:

1. **Evaluate** (store, read-only): each scenario's occasions and audience give new
   enrolments, written to the ledger in one transaction (a message is enrolled once: its key
   is scenario / step / customer / occasion); then the rows due now, and what rendering and the
   rules need about their customers (contacts, consents, personalisation fields, goals reached).
2. **Deliver** (operational records only): `kizuna.scenarios._dispatch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from kizuna._errors import KizunaError
from kizuna.delivery._base import Transport
from kizuna.operations._ledger import Delivery, DueRow, Enrolment, Ledger
from kizuna.scenarios._dispatch import OUTBOX, Dispatcher, RunReport, StepTally
from kizuna.scenarios._evaluate import audience_filter, entering_members, occasions
from kizuna.scenarios._fields import personal_fields, related_products
from kizuna.scenarios._model import Scenario, load_scenarios

if TYPE_CHECKING:
    from kizuna.workspace import Workspace

__all__ = ["OUTBOX", "SCENARIO_FOLDER", "RunReport", "StepTally", "group_of", "run_scenarios", "scenario_fields"]

SCENARIO_FOLDER = "scenarios"
RUN_LOCK = ".kizuna-run.lock"
_CONTACT_COLUMNS = ("customer_id", "name", "email", "phone", "line_user_id", "postal_code", "address",
                    "email_opt_in", "line_opt_in", "dm_opt_in")
_SCORE_FIELDS = ("matrix_cell", "rfm_rank", "ltv_revenue", "nps_score", "nps_class", "recency_days", "lost_reason")
_PREDICTION_FIELDS = ("churn_risk", "value_at_risk", "p_alive", "clv", "expected_next_order_on")


def group_of(customer_id: str, scenario: str, *, secret: str, holdout: float, global_control: float) -> str:
    """treated, holdout or global_control: stable for a customer whatever the day or the run.

    A hash of the customer id (with the workspace secret, for the global group; with the
    scenario's name, for its holdout) read as a number in [0, 1).
    """
    def share(salt: str) -> float:
        digest = hashlib.sha256(f"{salt}\0{customer_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    if share(f"global\0{secret}") < global_control:
        return "global_control"
    if share(f"scenario\0{scenario}") < holdout:
        return "holdout"
    return "treated"


def _ts(local: dt.datetime, zone: zoneinfo.ZoneInfo) -> int:
    return int(local.replace(tzinfo=zone).timestamp())


def run_scenarios(
    ws: Workspace,
    *,
    as_of: dt.date,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    only: str | None = None,
    transports: Mapping[str, Callable[[], Transport]] | None = None,
    release_store: bool = False,
    lang: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunReport:
    """Evaluate the workspace's scenarios as of `as_of` and deliver what is due at `now`.

    `transports`: channel -> factory of its transport (default: from kizuna.toml). A channel
    without one keeps its rows waiting, with a line in the report's problems. `release_store`
    closes the store after the evaluation, so that other processes may write it while messages go.
    """
    if dry_run:
        return _run(ws, as_of, now, dry_run, only, transports, release_store, lang, progress)
    with _one_run_at_a_time(ws.path):
        return _run(ws, as_of, now, dry_run, only, transports, release_store, lang, progress)


@contextlib.contextmanager
def _one_run_at_a_time(folder: Path) -> Iterator[None]:
    """Two runs of one workspace at once (cron started the next before the last ended) would both
    find the same rows due: the second stops. The lock is the OS's, so a killed run leaves none."""
    import fcntl

    path = folder / RUN_LOCK
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            raise KizunaError(f"another `kizuna run` (PID {pid}) is delivering for this workspace; "
                              "this one stops. Let it finish, or run again later.") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(ws: Workspace, as_of: dt.date, now: dt.datetime | None, dry_run: bool, only: str | None,
         transports: Mapping[str, Callable[[], Transport]] | None, release_store: bool, lang: str | None,
         progress: Callable[[str, int, int], None] | None) -> RunReport:
    settings = ws.settings
    zone = zoneinfo.ZoneInfo(settings.timezone)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    report = RunReport(as_of, now, dry_run)
    scenarios = [s for s in load_scenarios(ws.path / SCENARIO_FOLDER) if s.enabled and (only in (None, s.name))]
    if only is not None and not scenarios:
        raise KizunaError(f"no enabled scenario named {only!r} in {ws.path / SCENARIO_FOLDER}.")
    ledger = Ledger(ws.operations)
    secret = ws.operations.secret()
    tables = ws.tables()
    audience = _audience(ws)
    survey = _survey_answers(ws, zone)
    by_name = {s.name: s for s in scenarios}

    # 1. evaluate: new enrolments, and the memberships of entering triggers
    planned: list[Enrolment] = []
    memberships: list[tuple[str, list[str], list[str], str]] = []
    for scenario in scenarios:
        def members(kind: str, ids: pa.Array, scenario: Scenario = scenario) -> pa.Table:
            entered, left = entering_members(ledger.members(scenario.name), ids, as_of)
            memberships.append((scenario.name, entered.column("customer_id").to_pylist(), left, as_of.isoformat()))
            return entered

        found = occasions(scenario, tables, as_of, members=members, scores=audience.get("scores"),
                          predictions=audience.get("predictions"), survey_answers=survey)
        if (scenario.segments or scenario.conditions) and found.num_rows:
            if audience.get("table") is None:
                raise KizunaError(f"scenario {scenario.name} has an audience, which needs customer scores; "
                                  "run `kizuna analyze` first.")
            wanted = ibis.memtable(pa.table({"customer_id": found.column("customer_id").unique()}))
            chosen = audience_filter(scenario, audience["table"]).select("customer_id").semi_join(wanted, "customer_id")
            keep = set(chosen.to_pyarrow().column("customer_id").to_pylist())
            found = found.filter(pa.array([c in keep for c in found.column("customer_id").to_pylist()]))
        planned.extend(_enrolments(scenario, found, zone, secret, settings))
    known = ledger.known_keys([e.key for e in planned])
    new = [e for e in planned if e.key not in known]
    for e in new:
        report.count(by_name[e.scenario], e.step, "enrolled")
        if e.grp != "treated":
            report.count(by_name[e.scenario], e.step, "holdout")
    if not dry_run:
        ledger.enrol(new, memberships)

    # 2. what is due now, and what the rules and templates need about those customers
    now_unix = int(now.timestamp())
    due = [r for r in ledger.due(now_unix) if r.scenario in by_name]
    if dry_run:
        due += [_as_due(e) for e in new if e.grp == "treated" and e.due_ts <= now_unix]
    ids = sorted({r.customer_id for r in due})
    people = _customer_data(ws, ids, as_of, audience, lang or "ja") if ids else {}
    reached = _goals_reached(tables, [r for r in due if r.step > 1], by_name, zone)
    if release_store:
        ws.store.close()

    Dispatcher(ws, report, ledger, by_name, people, reached, now, dry_run, transports, lang, progress).run(due)
    return report


def _audience(ws: Workspace) -> dict[str, ibis.Table]:
    """customer_scores, with the prediction columns when `kizuna predict` has run."""
    result: dict[str, ibis.Table] = {}
    if ws.store.has_table("customer_scores"):
        scores = ws.store.table("customer_scores")
        result["scores"] = result["table"] = scores
        if ws.store.has_table("customer_predictions"):
            predictions = ws.store.table("customer_predictions")
            result["predictions"] = predictions
            extra = [c for c in predictions.columns if c not in scores.columns or c == "customer_id"]
            result["table"] = scores.left_join(predictions.select(extra), "customer_id").drop("customer_id_right")
    elif ws.store.has_table("customer_predictions"):
        result["predictions"] = ws.store.table("customer_predictions")
    return result


def _survey_answers(ws: Workspace, zone: zoneinfo.ZoneInfo) -> pa.Table:
    """Web survey answers not yet merged into nps_answers, as local wall-clock times."""
    rows = ws.operations.unmerged_answers()
    return pa.table({
        "customer_id": pa.array([r["customer_id"] for r in rows], pa.string()),
        "answered_at": pa.array([dt.datetime.fromtimestamp(r["answered_ts"], zone).replace(tzinfo=None)
                                 for r in rows], pa.timestamp("us")),
        "score": pa.array([r["score"] for r in rows], pa.int64()),
    })


def _enrolments(scenario: Scenario, found: pa.Table, zone: zoneinfo.ZoneInfo, secret: str,
                settings) -> list[Enrolment]:
    holdout = scenario.holdout if scenario.holdout is not None else settings.holdout_share
    rows: list[Enrolment] = []
    for customer_id, occasion, occasion_at, detail in zip(found.column("customer_id").to_pylist(),
                                                          found.column("occasion").to_pylist(),
                                                          found.column("occasion_at").to_pylist(),
                                                          found.column("detail").to_pylist(), strict=True):
        grp = group_of(customer_id, scenario.name, secret=secret, holdout=holdout,
                       global_control=settings.global_control_share)
        at = _ts(occasion_at, zone)
        wait = 0
        for step in scenario.steps:
            wait += step.wait_days
            rows.append(Enrolment(
                key=f"{scenario.name}/{step.number}/{customer_id}/{occasion}", ref=secrets.token_hex(16),
                scenario=scenario.name, step=step.number, customer_id=customer_id, occasion=occasion,
                occasion_ts=at, detail=detail, channel=step.channel, grp=grp, transactional=step.transactional,
                due_ts=at + wait * 86_400,
            ))
    return rows


def _as_due(e: Enrolment) -> DueRow:
    common = {f.name: getattr(e, f.name) for f in dataclasses.fields(Delivery)}
    return DueRow(**common)


def scenario_fields(ws: Workspace, customer_ids: list[str], as_of: dt.date, lang: str = "ja") -> dict[str, dict]:
    """customer -> the fields a template may use (without the per-message ones); for preview too."""
    return _customer_data(ws, customer_ids, as_of, _audience(ws), lang)


def _customer_data(ws: Workspace, ids: list[str], as_of: dt.date, audience: dict[str, ibis.Table],
                   lang: str) -> dict[str, dict]:
    tables = ws.tables()
    wanted = ibis.memtable(pa.table({"customer_id": pa.array(ids, pa.string())}))
    customers = tables["customers"]
    contacts = customers.select(*_CONTACT_COLUMNS).semi_join(wanted, "customer_id").to_pyarrow().to_pylist()
    people: dict[str, dict] = {row["customer_id"]: dict(row) for row in contacts}
    fields = personal_fields(tables, as_of, alternative_yen_per_l=ws.settings.alternative_yen_per_l)
    for row in fields.semi_join(wanted, "customer_id").drop("name").to_pyarrow().to_pylist():
        people.setdefault(row["customer_id"], {"customer_id": row["customer_id"]}).update(row)
    related = related_products(tables, as_of).semi_join(wanted, "customer_id").to_pyarrow().to_pylist()
    for row in sorted(related, key=lambda r: (r["customer_id"], r["rank"])):
        if row["customer_id"] in people:
            people[row["customer_id"]].setdefault("related_products", []).append(row["name"])
    if "scores" in audience:
        cols = [c for c in _SCORE_FIELDS if c in audience["scores"].columns]
        scores = audience["scores"].select("customer_id", *cols).semi_join(wanted, "customer_id")
        for row in scores.to_pyarrow().to_pylist():
            if row["customer_id"] in people:
                people[row["customer_id"]].update(row)
    if "predictions" in audience:
        p = audience["predictions"]
        reasons = "churn_reasons_en" if lang == "en" else "churn_reasons_ja"
        cols = [c for c in (*_PREDICTION_FIELDS, reasons) if c in p.columns]
        for row in p.select("customer_id", *cols).semi_join(wanted, "customer_id").to_pyarrow().to_pylist():
            if row["customer_id"] in people:
                row["churn_reasons"] = row.pop(reasons, None)
                people[row["customer_id"]].update(row)
    for person in people.values():
        person.setdefault("related_products", [])
        person["alternative_name"] = ws.settings.alternative_name
    # the parcel-insert list names the order whose parcel takes the insert: the latest not yet shipped
    orders = tables["orders"]
    pending = orders.filter(orders.shipped_at.isnull() & (orders.status.isnull() | (orders.status == "completed")))
    pending = pending.semi_join(wanted, "customer_id").group_by("customer_id").aggregate(
        next_order_id=pending.order_id.cast("string").max())
    for row in pending.to_pyarrow().to_pylist():
        if row["customer_id"] in people:
            people[row["customer_id"]]["next_order_id"] = row["next_order_id"]
    return people


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


