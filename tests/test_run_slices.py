"""A run in slices decides what a run in one piece decides (kizuna.scenarios._run.SLICE_ROWS).

A first run over a whole customer base finds millions of messages due at once; the dispatcher takes
them a slice of rows at a time, each slice with its own customers' data. What crosses slices — the
monthly budgets given oldest first, the day's call capacity ranked over the whole run, a step that
waits for the one before it, the frequency cap of a customer met again, a channel stopped by its
troubles — must come out as in one piece. The demo business with the ten example scenarios, one of
them on a budget that binds and a call capacity that binds, is run in one slice and in slices of
a few dozen rows: dry (the same counts and samples) and for real, over a real SMTP server (the
same ledger, the same e-mails, the same rows in the lists).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import zoneinfo
from collections import Counter
from pathlib import Path

import pytest

from kizuna.delivery._smtp import SmtpTransport
from kizuna.demo import build_demo
from kizuna.scenarios._dispatch import Dispatcher
from kizuna.workspace import Workspace

from smtp_server import SmtpServer

AS_OF = dt.date(2026, 11, 1)
NOW = dt.datetime.combine(AS_OF, dt.time(10), zoneinfo.ZoneInfo("Asia/Tokyo"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 customers, analysed and predicted; the win-back DM on a budget of 20 pieces a month and
    calls limited to 40 a day, so that both bind."""
    result = build_demo(tmp_path_factory.mktemp("slices") / "ws", customers=1500, as_of=AS_OF)
    with result.workspace as ws:
        ws.analyze(AS_OF)
        ws.predict(AS_OF)
        scenario = ws.path / "scenarios" / "win-back-situation-changed.yaml"
        scenario.write_text(scenario.read_text(encoding="utf-8") + "budget: 2400\n", encoding="utf-8")
        ws.save_settings(ws.settings.replace(
            prediction={"call_capacity": 40},
            email={"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                   "sender_contact": "0120-000-000"}))
        return ws.path


def _dry_run(path: Path) -> tuple[dict, list]:
    with Workspace.open(path) as ws:
        report = ws.run(AS_OF, now=NOW, dry_run=True, transports={}, as_if_on=True)
    samples = [(s["scenario"], s["step"], s["customer_id"], s["subject"]) for s in report.samples]
    return {key: dict(t.counts) for key, t in report.tallies.items()}, samples


@pytest.fixture(scope="module")
def one_piece(demo: Path) -> tuple[dict, list, int]:
    """The dry run in one slice, and a slice size that parts a step from the step before it (the state
    of the earlier one must cross to the next slice) in dozens of slices."""
    order: list = []
    with pytest.MonkeyPatch.context() as patch:
        def take(self: Dispatcher, due: list, *args) -> None:
            order.extend(due)
            return Dispatcher.take.__wrapped__(self, due, *args)

        take.__wrapped__ = Dispatcher.take
        patch.setattr(Dispatcher, "take", take)
        tallies, samples = _dry_run(demo)
    place = {row.key: n for n, row in enumerate(order)}
    follows = [(place[before], n) for n, row in enumerate(order)
               if (before := f"{row.scenario}/{row.step - 1}/{row.customer_id}/{row.occasion}") in place]
    size = next(size for size in range(30, 100) if any(a // size != b // size for a, b in follows))
    assert len(order) > 20 * size
    return tallies, samples, size


def test_a_dry_run_in_slices_counts_what_one_piece_counts(demo: Path, one_piece, monkeypatch: pytest.MonkeyPatch):
    whole, samples, size = one_piece
    # what crosses slices is at work: the budget, the call capacity, steps merged, cancelled and deferred
    assert whole[("win-back-situation-changed", 1)]["over_budget"] > 0
    assert whole[("win-back-unresolved", 1)]["deferred"] > 0  # beyond the day's 40 calls
    assert whole[("replenishment", 2)]["merged"] > 0 and whole[("replenishment", 2)]["cancelled"] > 0
    monkeypatch.setattr("kizuna.scenarios._run.SLICE_ROWS", size)
    assert _dry_run(demo) == (whole, samples)


def _real_run(path: Path, server: SmtpServer) -> tuple[dict, list, Counter, dict]:
    with Workspace.open(path) as ws:
        ws.save_settings(ws.settings.replace(email={"smtp_url": server.url}))
        transports = {"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)}
        report = ws.run(AS_OF, now=NOW, transports=transports)
        ledger = [(r["key"], r["status"], r["due_ts"], r["attempts"], r["grp"],
                   # a list's batch names its file: the same rows, in one file or several
                   r["channel"] if r["batch"] and r["note"] == r["batch"] else r["note"])
                  for r in ws.operations.query("SELECT * FROM deliveries ORDER BY key")]
        lists = {channel: sorted(row for batch in sorted((ws.path / "outbox" / channel).glob("*.csv"))
                                 for row in list(csv.reader(batch.read_text(encoding="utf-8-sig").splitlines()))[1:])
                 for channel in ("call", "dm", "insert")}
    emailed = sum(t.counts["sent"] for t in report.tallies.values() if t.channel == "email")
    mails = Counter((tuple(m.rcpt_tos), str(m.message()["Subject"])) for m in server.wait_for(emailed))
    return {key: dict(t.counts) for key, t in report.tallies.items()}, ledger, mails, lists


def test_a_run_in_slices_sends_and_records_what_one_piece_does(demo: Path, one_piece, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    whole_ws, sliced_ws = tmp_path / "whole", tmp_path / "sliced"
    shutil.copytree(demo, whole_ws)  # the same secret: the same control groups
    shutil.copytree(demo, sliced_ws)
    with SmtpServer() as server:
        whole = _real_run(whole_ws, server)
    with SmtpServer() as server:
        monkeypatch.setattr("kizuna.scenarios._run.SLICE_ROWS", one_piece[2])
        sliced = _real_run(sliced_ws, server)
    tallies, ledger, mails, lists = whole
    assert sum(mails.values()) > 20 * one_piece[2] and lists["call"] and lists["dm"]
    assert tallies[("win-back-situation-changed", 1)]["over_budget"] > 0
    assert sliced[0] == tallies and sliced[1] == ledger and sliced[2] == mails
    assert sliced[3] == lists


def test_a_channel_stopped_by_its_troubles_stays_stopped_in_the_slices_after(demo: Path, one_piece, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    """The mail server answers every recipient "try again later": the first connection stops after
    MAX_TROUBLES of them, and no later slice connects again; the other e-mails wait, untried."""
    from kizuna.scenarios._dispatch import MAX_TROUBLES

    shutil.copytree(demo, tmp_path / "ws")
    monkeypatch.setattr("kizuna.scenarios._run.SLICE_ROWS", one_piece[2])
    with SmtpServer(refuse={"*": "451 4.3.0 try again later"}) as server:
        with Workspace.open(tmp_path / "ws") as ws:
            ws.save_settings(ws.settings.replace(email={"smtp_url": server.url}))
            report = ws.run(AS_OF, now=NOW, transports={
                "email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)})
            tried = ws.operations.query("SELECT COUNT(*) AS n FROM deliveries WHERE channel = 'email' "
                                        "AND attempts > 0")[0]["n"]
            waiting = ws.operations.query("SELECT COUNT(*) AS n FROM deliveries WHERE channel = 'email' "
                                          "AND status = 'scheduled' AND attempts = 0 AND due_ts <= ?",
                                          (int(NOW.timestamp()),))[0]["n"]
        connections = server.connections
    assert server.count == 0 and connections == 1
    assert tried == MAX_TROUBLES and waiting > 20 * one_piece[2]
    emailed = sum(t.counts["waiting"] for t in report.tallies.values() if t.channel == "email")
    assert emailed == tried + waiting
