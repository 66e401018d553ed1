"""The operational records on both their engines, SQLite (the default) and PostgreSQL
([operations] url): the same answers, the ledger's exactly-once across processes and SIGKILL,
and several processes writing at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna._errors import KizunaError
from kizuna.operations import Enrolment, Ledger, Operations, rename_customers
from kizuna.workspace import Settings, Workspace


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the records are: a SQLite file, or a new PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database")
    return str(tmp_path / "kizuna-ops.sqlite3")


@pytest.fixture
def ops(location: str) -> Iterator[Operations]:
    ops = Operations(location)
    yield ops
    ops.close()


def enrolments(n: int, scenario: str = "s") -> list[Enrolment]:
    return [Enrolment(key=f"{scenario}/1/C{i:04d}/o", ref=f"{scenario}-{i:04d}-" + "0" * 16, scenario=scenario, step=1,
                      customer_id=f"C{i:04d}", occasion="o", occasion_ts=1, detail=None, channel="email",
                      transactional=False, due_ts=0) for i in range(n)]


def test_the_implementation_follows_the_location(ops: Operations, location: str, tmp_path: Path):
    assert ops.kind == ("postgres" if location.startswith("postgres") else "sqlite")
    (tmp_path / "other").mkdir()
    assert Operations.open("", tmp_path / "other").kind == "sqlite"
    assert "***" in ops.name if ops.kind == "postgres" else ops.name == "kizuna-ops.sqlite3"
    with pytest.raises(KizunaError, match=r"operations\] url"):
        Operations.check_url("mysql://u:p@h/db")


def test_records_read_back_the_same_on_both_engines(ops: Operations):
    assert ops.secret() == ops.secret()
    ops.set_consent("email", "C1", False, source="unsubscribe", at=10)
    ops.set_consent("email", "C1", True, source="import", at=5)  # older: the latest change wins
    assert ops.consent("email", "C1") is False and ops.consents("email") == {"C1": False}
    ref = ops.survey_link("C1", "email")
    assert ops.answer_survey(ref, 7, "届くのが早い") is True
    assert ops.answer_survey(ref, 2, None) is False  # once per link
    assert dict(ops.survey(ref)) | {"answered_ts": 0} == {"ref": ref, "customer_id": "C1", "touchpoint": "email",
                                                          "scenario": None, "score": 7, "answered_ts": 0}
    assert ops.first_delivery_of("ev1", "follow") is True and ops.first_delivery_of("ev1", "follow") is False
    assert ops.user_count() == 0
    ops.add_user("aiko", "viewer", "h1")
    session = ops.start_session("aiko", 60)
    assert dict(ops.session_user(session)) == {"name": "aiko", "role": "viewer", "generation": 0}
    assert ops.set_password("aiko", "h2") is True and ops.session_user(session) is None  # sessions end
    assert ops.user_count() == 1 and ops.user("aiko")["generation"] == 1
    assert ops.query("SELECT count(*) AS n FROM users WHERE name LIKE 'ai%'")[0]["n"] == 1
    assert ops.keep_meta("k", "first") == "first" and ops.keep_meta("k", "second") == "first"
    assert ops.meta_starting("k") == [("k", "first")]


def test_the_ledger_states_counts_and_renames_agree_on_both_engines(ops: Operations):
    ledger = Ledger(ops)
    assert ledger.enrol(enrolments(3), [("s", ["C0000"], [], "2026-11-30")]) == 3
    assert ledger.enrol(enrolments(3)) == 0  # the key is unique: enrolled once however often evaluated
    due = ledger.due(10)
    assert [r.status for r in due] == ["scheduled"] * 3
    ledger.sending(due[0].key)
    ledger.committing(due[0].key)
    ledger.sent([due[0].key], at=5)
    ledger.settle(due[1].key, "deferred", "quiet hours", due_ts=99)
    counts = {(r["status"], r["future"], r["attempted"]): (r["n"], r["ever_deferred"])
              for r in ledger.result_counts(10)}
    assert counts == {("sent", 0, 1): (1, 0), ("deferred", 1, 0): (1, 1), ("scheduled", 0, 0): (1, 0)}
    assert ledger.members("s") == {"C0000"}
    assert ledger.recent_sends(["C0000"], 0) == {"C0000": [5]}
    ops.set_consent("email", "C0001", False, source="unsubscribe")
    moved = rename_customers(ops, {"C0001": "P1"})
    assert moved == {"deliveries": 1, "consents": 1}
    assert ledger.states(["s/1/P1/o"]) == {"s/1/P1/o": ("deferred", 99, None)}


# -- several processes at once ------------------------------------------------------------------

WRITER = """
import sys, time
from kizuna.operations import Enrolment, Ledger, Operations, now_ts
location, name, count, links = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
ops = Operations(location)
ledger = Ledger(ops)
shared = [Enrolment(key=f"both/1/C{i:04d}/o", ref=f"both-{i:04d}", scenario="both", step=1, customer_id=f"C{i:04d}",
                    occasion="o", occasion_ts=1, detail=None, channel="email", transactional=False, due_ts=0)
          for i in range(200)]
added = answered = 0
for n in range(count):  # like `kizuna run` from cron and `kizuna serve`, at once
    now = now_ts()
    with ops.write() as db:
        db.execute(
            "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, channel, grp, "
            "status, due_ts, created_ts, updated_ts, sent_ts) VALUES (?, ?, ?, 1, ?, 'o', ?, 'email', "
            "'treated', 'sent', ?, ?, ?, ?)", (f"{name}/1/W{n}", f"{name}-{n}", name, f"W{n}", now, now, now, now, now))
    ops.set_consent("email", f"{name}-W{n}", False, source="unsubscribe")
    if n % 10 == 0:  # the same 200 messages enrolled by both, in pieces
        added += ledger.enrol(shared[n // 10 * 20:(n // 10 + 1) * 20])
    if n < len(links):  # the same survey links answered by both: once each
        answered += ops.answer_survey(links[n], n % 11, None)
print(added, answered)
"""


@pytest.mark.slow
def test_two_processes_write_opt_outs_and_ledger_rows_at_once(ops: Operations, location: str):
    links = [ops.survey_link(f"C{n}", "email") for n in range(40)]
    ops.close()
    count = 100
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, location, name, str(count), ",".join(links)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("cron", "web")]
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err
        results.append([int(x) for x in out.split()])
    assert sum(added for added, _ in results) == 200  # every shared message enrolled exactly once
    assert sum(answered for _, answered in results) == 40  # every link answered exactly once
    for name in ("cron", "web"):
        assert ops.query("SELECT count(*) AS n FROM deliveries WHERE scenario = ?", (name,))[0]["n"] == count
        assert len([s for s in ops.consents("email") if s.startswith(name + "-")]) == count
    assert ops.query("SELECT count(*) AS n FROM deliveries WHERE scenario = 'both'")[0]["n"] == 200
    assert ops.query("SELECT count(*) AS n FROM survey_answers")[0]["n"] == 40


# The exactly-once test across SIGKILL runs on both engines in tests/test_run.py.


@pytest.mark.slow
def test_a_workspace_keeps_its_records_where_operations_url_says(tmp_path, location):
    operations_url = location if location.startswith("postgres") else ""
    settings = Settings().replace(operations={"url": operations_url})
    with Workspace.init(tmp_path / "ws", settings=settings) as ws:
        ws.operations.set_consent("email", "C1", False, source="unsubscribe")
        secret = ws.operations.secret()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.operations.consent("email", "C1") is False and ws.operations.secret() == secret
    assert (tmp_path / "ws" / "kizuna-ops.sqlite3").exists() is not bool(operations_url)


def test_a_span_of_occasions_is_read_by_index(tmp_path: Path):
    # `kizuna run` reads the ledger's keys of a scenario's occasions from a span of days (scenarios/_run.py):
    # on a ledger of years of rows, a scan of the scenario's rows would cost more than the run's own work
    ops = Operations(str(tmp_path / "kizuna-ops.sqlite3"))
    try:
        plan = " ".join(str(row[3]) for row in ops.query(
            "EXPLAIN QUERY PLAN SELECT step, customer_id, occasion FROM deliveries WHERE scenario = ? "
            "AND occasion_ts BETWEEN ? AND ?", ("s", 0, 86_400)))
    finally:
        ops.close()
    assert "USING INDEX deliveries_occasion (scenario=? AND occasion_ts>? AND occasion_ts<?)" in plan, plan
