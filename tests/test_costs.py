"""Costs and budgets: `kizuna run` shows what the messages cost per channel ([costs]), a scenario's
monthly budget defers exactly the messages beyond it to the next month, which sends them once, and
`kizuna results` shows the incremental profit with its interval — all worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
import math
import textwrap
import zoneinfo
from pathlib import Path
from statistics import NormalDist

import pytest
from typer.testing import CliRunner

from kizuna._errors import WorkspaceError
from kizuna.cli import app
from kizuna.delivery import SmtpTransport
from kizuna.operations import Ledger
from kizuna.scenarios import CostSettings, ScenarioError, budget_left, group_of, load_scenario, month_spend
from kizuna.workspace import Settings, Workspace

from factories import arrow_rows, day, workspace_with
from smtp_server import SmtpServer

JST = zoneinfo.ZoneInfo("Asia/Tokyo")

CATALOGUE = """\
title: {ja: カタログ送付, en: Catalogue}
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
holdout: 0
budget: 300
steps:
  - channel: dm
    body: "{{ name }}様 秋のカタログ"
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST)


def shop(tmp_path: Path, n: int | list[str], scenarios: dict[str, str], **sections) -> Workspace:
    """`n` customers C0001 … (or these ids) with a postal address, an e-mail address and consent, each
    with an order on 28 November 2026."""
    ids = [f"C{i:04d}" for i in range(1, n + 1)] if isinstance(n, int) else n
    ws = workspace_with(
        tmp_path / "shop",
        customers=[{"customer_id": c, "name": f"客{c}", "address": f"東京都港区{i}", "postal_code": "1050001",
                    "email": f"{c.lower()}@example.jp", "email_opt_in": True} for i, c in enumerate(ids, 1)],
        orders=[{"order_id": f"O-{c}", "customer_id": c, "ordered_at": day("2026-11-28", 15), "amount": 1000}
                for c in ids],
    )
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    for name, text in scenarios.items():
        (ws.path / "scenarios" / f"{name}.yaml").write_text(text, encoding="utf-8")
    values = {"delivery": {"global_control_share": 0.0, "holdout_share": 0.0},
              "web": {"public_url": "https://shop.example.jp/k"},
              "email": {"sender": "水の森 <info@mizunomori.example.jp>", "sender_address": "東京都港区1-2-3",
                        "sender_contact": "0120-000-000"},
              "analysis": {"as_of": "2026-11-30"}}
    for name, changes in sections.items():
        values[name] = {**values.get(name, {}), **changes}
    ws.save_settings(Settings().replace(**values))
    return ws


def listed(report) -> list[str]:
    """The customers of the DM lists a run wrote (the csv files), in order."""
    found = []
    for path in sorted(p for p in report.files if p.suffix == ".csv"):
        lines = path.read_text(encoding="utf-8-sig").splitlines()[1:]
        found += [next(cell for cell in line.split(",") if cell.startswith("C0")) for line in lines]
    return found


# -- what a run costs ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_dry_run_shows_each_channels_cost_before_anything_is_sent(tmp_path):
    letters = CATALOGUE.replace("budget: 300\n", "") + '  - channel: insert\n    body: "チラシ"\n'
    ws = shop(tmp_path, 1535, {"catalogue": letters})
    ws.close()
    shown = CliRunner().invoke(app, ["run", "--dry-run", "--dir", str(ws.path)])
    assert shown.exit_code == 0, shown.output
    assert "費用:\n  同梱物 1,535件 × ¥10 = ¥15,350\n  DM 1,535件 × ¥120 = ¥184,200\n  合計 ¥199,550\n" in shown.output
    english = CliRunner().invoke(app, ["run", "--dry-run", "--dir", str(ws.path), "--lang", "en"])
    assert ("Costs:\n  parcel insert: 1,535 × ¥10 = ¥15,350\n  direct mail: 1,535 × ¥120 = ¥184,200\n"
            "  Total ¥199,550\n") in english.output
    with Workspace.open(ws.path) as again:
        assert again.operations.query("SELECT COUNT(*) AS n FROM deliveries")[0]["n"] == 0


def test_costs_follow_the_settings_and_a_bad_price_names_the_setting(tmp_path):
    ws = shop(tmp_path, 3, {"catalogue": CATALOGUE.replace("budget: 300\n", "")}, costs={"dm": 85})
    ws.close()
    shown = CliRunner().invoke(app, ["run", "--dry-run", "--dir", str(ws.path), "--format", "json"])
    assert json.loads(shown.output)["costs"] == [{"channel": "dm", "n": 3, "price": 85, "total": 255}]
    with pytest.raises(WorkspaceError, match=r"costs\.dm"):
        Settings.from_dict({"costs": {"dm": -1}})
    assert CostSettings().dm == 120 and CostSettings().email == 0


# -- the monthly budget --------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_budget_defers_exactly_the_messages_beyond_it_and_next_month_sends_them_once(tmp_path):
    # ¥300 a month, ¥120 a DM: two DMs (¥240) fit in November; the third would make ¥360
    ws = shop(tmp_path, 5, {"catalogue": CATALOGUE})
    dry = ws.run(now=at("2026-11-30 10:00"), dry_run=True)
    assert (dry.total("would_send"), dry.total("over_budget")) == (2, 3)
    november = ws.run(now=at("2026-11-30 10:00"))
    assert (november.total("sent"), november.total("deferred"), november.total("over_budget")) == (2, 3, 3)
    assert listed(november) == ["C0001", "C0002"]  # due at the same moment: in the ledger's order
    rows = {r["customer_id"]: r
            for r in ws.operations.query("SELECT customer_id, status, due_ts, note FROM deliveries")}
    december_first = int(at("2026-12-01 00:00").timestamp())
    assert {c: (r["status"], r["due_ts"]) for c, r in rows.items() if r["status"] == "deferred"} == {
        c: ("deferred", december_first) for c in ("C0003", "C0004", "C0005")}
    assert rows["C0003"]["note"] == "over the monthly budget: goes next month"
    ledger, costs = Ledger(ws.operations), ws.settings.costs
    assert month_spend(ledger, "catalogue", dt.date(2026, 11, 1), costs, "Asia/Tokyo") == 240
    assert budget_left(ledger, "catalogue", dt.date(2026, 11, 30), costs, 300) == 60

    again = ws.run(now=at("2026-11-30 18:00"))  # later the same month: nothing more fits, nothing is due
    assert again.total("sent") == 0 and again.files == []

    ws.save_settings(ws.settings.replace(analysis={"as_of": "2026-12-01"}))
    december = ws.run(now=at("2026-12-01 10:00"))
    assert (december.total("sent"), december.total("over_budget")) == (2, 1)
    assert listed(december) == ["C0003", "C0004"]
    ws.save_settings(ws.settings.replace(analysis={"as_of": "2027-01-04"}))
    january = ws.run(now=at("2027-01-04 10:00"))
    assert listed(january) == ["C0005"]
    sent = ws.operations.query("SELECT customer_id, COUNT(*) AS n FROM deliveries WHERE status = 'sent' "
                               "GROUP BY customer_id")
    assert {r["customer_id"]: r["n"] for r in sent} == {f"C000{i}": 1 for i in range(1, 6)}
    assert budget_left(ledger, "catalogue", dt.date(2026, 12, 1), costs, 300) == 60
    assert budget_left(ledger, "catalogue", dt.date(2027, 1, 1), costs, 300) == 180
    assert budget_left(ledger, "catalogue", dt.date(2027, 1, 1), costs, None) is None


@pytest.mark.slow
def test_a_free_message_is_never_held_and_a_step_waits_for_the_one_over_budget(tmp_path):
    # ¥120 DM first, then a free e-mail: the DMs beyond the budget hold their own e-mails back
    scenario = CATALOGUE.replace("budget: 300", "budget: 120") + (
        '  - channel: email\n    subject: "ご案内"\n    body: "カタログをお送りしました"\n')
    with SmtpServer() as server:
        ws = shop(tmp_path, 3, {"catalogue": scenario}, email={"smtp_url": server.url})
        report = ws.run(now=at("2026-11-30 10:00"),
                        transports={"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)})
        mails = server.wait_for(1)
    assert listed(report) == ["C0001"]
    assert [m.rcpt_tos for m in mails] == [("c0001@example.jp",)]
    assert report.tallies[("catalogue", 1)].counts["over_budget"] == 2
    assert report.tallies[("catalogue", 2)].counts["deferred"] == 2  # waiting for their DM
    assert report.tallies[("catalogue", 2)].counts["over_budget"] == 0


def test_a_budget_must_be_whole_yen(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CATALOGUE.replace("budget: 300", "budget: -5"), encoding="utf-8")
    with pytest.raises(ScenarioError, match="budget") as caught:
        load_scenario(path)
    assert caught.value.line == 5
    path.write_text(CATALOGUE, encoding="utf-8")
    assert load_scenario(path).budget == 300


# -- incremental profit ------------------------------------------------------------------------------
@pytest.mark.slow
def test_results_show_the_incremental_profit_with_its_interval(tmp_path):
    thanks = textwrap.dedent("""\
        trigger: {after_order: {days: 1}}
        goal: {kind: order, days: 30}
        holdout: 0.5
        steps:
          - channel: email
            subject: "ありがとうございます"
            body: "{{ name }}様 https://shop.example.jp/new"
        """)
    ids = [f"C{i:04d}" for i in range(1, 40)]
    treated = [c for c in ids if group_of(c, "thanks", secret="", holdout=0.5, global_control=0) == "treated"][:4]
    held = [c for c in ids if group_of(c, "thanks", secret="", holdout=0.5, global_control=0) == "holdout"][:2]
    with SmtpServer() as server:
        ws = shop(tmp_path, [*treated, *held], {"thanks": thanks}, email={"smtp_url": server.url}, costs={"email": 10})
        ws.run(now=at("2026-11-30 10:00"),
               transports={"email": lambda: SmtpTransport.from_settings(ws.settings.email, ws.path)})
        server.wait_for(4)
    # in the 30 days after the occasion: two treated customers ¥5,000 each, one held out ¥4,000
    ws.store.append("orders", arrow_rows("orders", [
        {"order_id": "A1", "customer_id": treated[0], "ordered_at": day("2026-12-05"), "amount": 5000},
        {"order_id": "A2", "customer_id": treated[1], "ordered_at": day("2026-12-06"), "amount": 5000},
        {"order_id": "B1", "customer_id": held[0], "ordered_at": day("2026-12-03"), "amount": 4000},
    ]))
    rows = ws.results(as_of=dt.date(2027, 1, 31))
    step = next(r for r in rows if r["step"] == 1)
    total = next(r for r in rows if r["step"] is None)
    assert step["cost"] == total["cost"] == 4 * 10
    # per customer: treated 5000, 5000, 0, 0 (mean 2500); control 4000, 0 (mean 2000)
    margin = 0.4  # [business] gross_margin_rate
    assert total["incremental_revenue"] == 4 * (2500 - 2000)
    assert total["incremental_profit"] == pytest.approx(4 * 500 * margin - 40)  # ¥760
    var_treated = (2 * 2500 ** 2 + 2 * 2500 ** 2) / 3
    var_control = (2000 ** 2 + 2000 ** 2) / 1
    spread = NormalDist().inv_cdf(0.975) * math.sqrt(var_treated / 4 + var_control / 2)
    assert total["profit_low"] == pytest.approx(4 * (500 - spread) * margin - 40)
    assert total["profit_high"] == pytest.approx(4 * (500 + spread) * margin - 40)
    assert round(total["profit_low"]) == -6975 and round(total["profit_high"]) == 8495
