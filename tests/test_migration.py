"""Segment migration (docs/measures.md §2, §5) on a hand-built shop: each cell and rank at both dates is known."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kizuna._errors import KizunaError, NoDataError
from kizuna.analytics._migration import NEW, migration_headline, migration_label, segment_migration
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, orders_for, workspace_with

D1, D2 = dt.date(2026, 1, 31), dt.date(2026, 6, 30)
HIGH_LTV_YEN = 100_000  # an absolute threshold: high LTV does not shift as customers join


def _nps(customer: str, when: str, score: int) -> dict:
    return {"customer_id": customer, "answered_at": day(when), "score": score}


def _shop(path: Path) -> Workspace:
    """Each customer's cell (and rank) at D1 and D2, by hand:

    C1   churn_candidate → loyal            ¥150,000; answers 3, then 10
    C2   churn_candidate → churn_candidate  ¥200,000; answer 5 still valid at D2
    C3   churn_candidate → unanswered_high  its answer 2 (2025-06-01) expires before D2
    C4   advocate → loyal                   ¥50,000 + ¥60,000 between the dates; answer 9
    C5   indifferent → loyal_candidate      ¥80,000 + ¥30,000 between the dates; answer 7
    C14  loyal → churn_candidate            ¥300,000; answers 10, then 4
    C11  unanswered_high, both              ¥150,000 ordered on D1 at 23:00: counts at D1
    R1   unanswered_high, both; rank b → loyal   5 × ¥40,000 in January, 10 more in June
    R2   unanswered_high, both; rank a → other   10 × ¥30,000 in early December
    C8   unanswered_low, both               signed up 2025, never ordered
    C12  unanswered_low, both               signed up on D1
    C6   new → non_cooperative              signed up and ordered in March; answer 0
    C7   new → unanswered_high              no sign-up date; first order ¥150,000 in February
    C13  new → unanswered_low               signed up at 00:00 the day after D1
    left out: C9 (signs up after D2), C10 (neither sign-up nor order), C15 (cancelled order only)
    Every customer without a rank above is rank "other" at both dates, or "new" → "other".
    """
    orders = [
        *orders_for("C1", ["2025-06-01"], 150_000),
        *orders_for("C2", ["2025-05-01"], 200_000),
        *orders_for("C3", ["2025-03-01"], 120_000),
        *orders_for("C4", ["2025-12-01", "2026-03-01"], [50_000, 60_000]),
        *orders_for("C5", ["2025-10-01", "2026-04-01"], [80_000, 30_000]),
        *orders_for("C14", ["2025-09-01"], 300_000),
        {"order_id": "C11-0", "customer_id": "C11", "ordered_at": day("2026-01-31", 23), "amount": 150_000},
        *orders_for("R1", [f"2026-01-0{d}" for d in range(1, 6)] + [f"2026-06-{d:02}" for d in range(1, 11)],
                    40_000),
        *orders_for("R2", [f"2025-12-{d:02}" for d in range(1, 11)], 30_000),
        *orders_for("C6", ["2026-03-05"], 20_000),
        *orders_for("C7", ["2026-02-10"], 150_000),
        *orders_for("C15", ["2025-06-01"], 500_000, status="cancelled"),
    ]
    answers = [
        _nps("C1", "2026-01-10", 3), _nps("C1", "2026-05-01", 10),
        _nps("C2", "2026-01-05", 5),
        _nps("C3", "2025-06-01", 2),
        _nps("C4", "2026-01-20", 9),
        _nps("C5", "2026-01-15", 7),
        _nps("C14", "2025-12-01", 10), _nps("C14", "2026-05-01", 4),
        _nps("C6", "2026-04-01", 0),
    ]
    customers = [
        {"customer_id": "C8", "signed_up_at": day("2025-01-01")},
        {"customer_id": "C12", "signed_up_at": day("2026-01-31", 20)},
        {"customer_id": "C13", "signed_up_at": day("2026-02-01", 0)},
        {"customer_id": "C6", "signed_up_at": day("2026-03-01")},
        {"customer_id": "C9", "signed_up_at": day("2026-08-01")},
        {"customer_id": "C10"},
    ]
    ws = workspace_with(path, customers=customers, orders=orders, nps_answers=answers)
    ws.save_settings(ws.settings.replace(analysis={"high_ltv_min_yen": HIGH_LTV_YEN}))
    return ws


CELL_TRANSITIONS = [
    ("churn_candidate", "churn_candidate", 1),  # C2
    ("churn_candidate", "loyal", 1),  # C1
    ("churn_candidate", "unanswered_high", 1),  # C3
    ("loyal", "churn_candidate", 1),  # C14
    ("indifferent", "loyal_candidate", 1),  # C5
    ("advocate", "loyal", 1),  # C4
    ("unanswered_high", "unanswered_high", 3),  # C11, R1, R2
    ("unanswered_low", "unanswered_low", 2),  # C8, C12
    (NEW, "non_cooperative", 1),  # C6
    (NEW, "unanswered_high", 1),  # C7
    (NEW, "unanswered_low", 1),  # C13
]
RANK_TRANSITIONS = [
    ("rank_a", "rank_other", 1),  # R2
    ("rank_b", "rank_loyal", 1),  # R1
    ("rank_other", "rank_other", 9),
    (NEW, "rank_other", 3),
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migration") / "ws"
    _shop(path).close()
    return path


def _triples(table) -> list[tuple[str, str, int]]:
    return [(r["from_segment"], r["to_segment"], r["customers"]) for r in table.to_pylist()]


@pytest.mark.slow
def test_cell_transitions_and_the_headline(shop: Path):
    with Workspace.open(shop) as ws:
        table = ws.migration(D1, D2)
    assert table.column_names == ["from_segment", "to_segment", "customers"]
    assert _triples(table) == CELL_TRANSITIONS
    assert migration_headline(table) == {
        "customers": 14, "customers_before": 11, "new": 3, "stayed": 6, "moved": 5,
        "churn_candidates_before": 3, "churn_candidates_after": 2, "loyal_before": 1, "loyal_after": 2,
        "churn_candidate_to_loyal": 1, "churn_candidate_to_loyal_share": pytest.approx(1 / 3),
    }


@pytest.mark.slow
def test_rank_transitions_and_the_headline(shop: Path):
    with Workspace.open(shop) as ws:
        table = ws.migration(D1, D2, by="rank")
    assert _triples(table) == RANK_TRANSITIONS
    assert migration_headline(table) == {
        "customers": 14, "customers_before": 11, "new": 3, "stayed": 9, "moved": 2,
        "moved_up": 1, "moved_down": 1, "reached_top": 1,
    }


@pytest.mark.slow
def test_each_side_matches_the_scores_of_that_day(shop: Path):
    # the "to" side is the matrix of customer_scores as of D2, less those not yet customers then
    from kizuna.analytics import customer_scores

    with Workspace.open(shop) as ws:
        table = ws.migration(D1, D2)
        scores = customer_scores(ws.tables(), ws.settings.analysis, D2, gross_margin_rate=0.4).to_pyarrow().to_pylist()
    cells: dict[str, int] = {}
    for row in scores:
        if row["customer_id"] not in ("C9", "C10", "C15"):
            cells[row["matrix_cell"]] = cells.get(row["matrix_cell"], 0) + 1
    after: dict[str, int] = {}
    for _, b, n in _triples(table):
        after[b] = after.get(b, 0) + n
    assert after == cells


@pytest.mark.slow
def test_a_day_later_the_new_customer_of_d1_plus_one_is_no_longer_new(shop: Path):
    # C13 signed up at 00:00 on 1 February: a customer as of that day
    with Workspace.open(shop) as ws:
        table = ws.migration(dt.date(2026, 2, 1), D2)
    assert ("unanswered_low", "unanswered_low", 3) in _triples(table)
    assert migration_headline(table)["new"] == 2


def test_wrong_dates_and_breakdown_are_one_line_errors(shop: Path, tmp_path: Path):
    with Workspace.open(shop) as ws:
        with pytest.raises(KizunaError, match="start date 2026-06-30 is not before the end date 2026-06-30"):
            ws.migration(D2, D2)
        with pytest.raises(KizunaError, match="start date 2026-06-30 is not before"):
            ws.migration(D2, D1)
        with pytest.raises(KizunaError, match="outside 1900-01-01"):
            ws.migration(dt.date(1800, 1, 1), D2)
        with pytest.raises(KizunaError, match="choose cell or rank"):
            ws.migration(D1, D2, by="segment")
    with Workspace.init(tmp_path / "empty") as empty, pytest.raises(NoDataError, match="No orders"):
        empty.migration(D1, D2)


def test_labels(shop: Path):
    assert migration_label(NEW, "ja") == "新規 (開始日に未登録)"
    assert migration_label("churn_candidate", "ja") == "離脱候補者"
    assert migration_label("rank_a", "en") == "rank A"


# -- the command line -------------------------------------------------------------------------


def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kizuna", *args], capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_cli_csv_lists_every_transition(shop: Path):
    done = kizuna("migration", "--from", "2026-01-31", "--to", "2026-06-30", "--dir", str(shop), "-f", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["from_segment"], r["to_segment"], int(r["customers"])) for r in rows] == CELL_TRANSITIONS
    assert (rows[1]["from_label"], rows[1]["to_label"]) == ("離脱候補者", "ロイヤルカスタマー")
    assert rows[-1]["from_label"] == "新規 (開始日に未登録)"


@pytest.mark.slow
def test_cli_json_in_english_by_rank(shop: Path):
    done = kizuna("migration", "--from", "2026-01-31", "--to", "2026-06-30", "--by", "rank", "--dir", str(shop),
                  "--format", "json", "--lang", "en")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["by"], report["from"], report["to"]) == ("rank", "2026-01-31", "2026-06-30")
    assert [(t["from_segment"], t["to_segment"], t["customers"]) for t in report["transitions"]] == RANK_TRANSITIONS
    assert report["transitions"][1]["from_label"] == "rank B"
    assert report["headline"]["moved_up"] == 1


@pytest.mark.slow
def test_cli_table_shows_the_cross_table_and_the_share(shop: Path):
    done = kizuna("migration", "--from", "2026-01-31", "--to", "2026-06-30", "--dir", str(shop), "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert "Segment migration (NPS x LTV matrix): 2026-01-31 -> 2026-06-30" in done.stdout
    line = next(x for x in done.stdout.splitlines() if "share of churn candidates who became loyal" in x)
    assert "33.3" in line
    total = next(x for x in done.stdout.splitlines() if x.strip("│ ").startswith("total"))
    assert total.split("│")[-2].strip() == "14"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-06-30", "--to", "2026-01-31"),
         "--from 2026-06-30 は --to 2026-01-31 より前の日にしてください"),
        (("--from", "2026-13-01", "--to", "2026-06-30"), "--from '2026-13-01' は日付ではありません"),
        (("--from", "2026-01-31", "--by", "segment"), "--by は cell、rank のいずれかにしてください"),
    ],
)
@pytest.mark.slow
def test_cli_mistakes_are_one_line(shop: Path, args: tuple[str, ...], message: str):
    done = kizuna("migration", *args, "--dir", str(shop))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_same_on_postgres(shop: Path, postgres_database: str):
    with Workspace.open(shop) as ws:
        expected = {by: _triples(ws.migration(D1, D2, by=by)) for by in ("cell", "rank")}
        store = Store.connect(postgres_database)
        try:
            copy_store(ws.store, store)
            on_postgres = Workspace(ws.path, ws.settings, store)
            for by, triples in expected.items():
                table = segment_migration(on_postgres.tables(), ws.settings.analysis, D1, D2, by=by)
                assert _triples(table) == triples
                assert _triples(on_postgres.migration(D1, D2, by=by)) == triples
        finally:
            store.close()
    assert expected["cell"] == CELL_TRANSITIONS and expected["rank"] == RANK_TRANSITIONS


# -- the flow chart ----------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.slow
def test_the_sankey_chart_has_one_band_per_transition_in_proportion(shop: Path):
    import xml.etree.ElementTree as ET

    from kizuna.analytics._migration import migration_sankey_svg

    with Workspace.open(shop) as ws:
        table = ws.migration(D1, D2)
    root = ET.fromstring(migration_sankey_svg(table, "ja"))
    bands = [p for p in root.iter(SVG + "path") if p.find(SVG + "title") is not None]
    assert [b.find(SVG + "title").text for b in bands] == [
        f"{migration_label(a, 'ja')} → {migration_label(b, 'ja')}: {n}" for a, b, n in CELL_TRANSITIONS
    ]
    nodes = {r.find(SVG + "title").text: float(r.get("height")) for r in root.iter(SVG + "rect")}
    # 7 start segments (6 cells and new) and 6 end segments with customers, each as tall as its customers
    assert len(nodes) == 13
    unit = nodes["未回答 (低LTV) 2"] / 2
    for name, customers in (("離脱候補者 3", 3), ("新規 (開始日に未登録) 3", 3), ("ロイヤルカスタマー 2", 2),
                            ("未回答 (高LTV) 5", 5), ("ロイヤルカスタマー候補者 1", 1)):
        assert nodes[name] == pytest.approx(customers * unit, abs=0.02), name  # drawn to 0.01 px
    # a band is as thick as its customers at both ends: C1's from churn candidate to loyal
    c1 = next(b for b in bands if b.find(SVG + "title").text.endswith("ロイヤルカスタマー: 1")).get("d").split()
    ys = [float(point.split(",")[1]) for point in c1 if "," in point]
    assert ys[4] - ys[3] == pytest.approx(unit, abs=0.02) and ys[-1] - ys[0] == pytest.approx(unit, abs=0.02)


@pytest.mark.slow
def test_cli_writes_the_chart(shop: Path, tmp_path: Path):
    chart = tmp_path / "flow.svg"
    done = kizuna("migration", "--from", "2026-01-31", "--to", "2026-06-30", "--dir", str(shop), "--chart", str(chart),
                  "--lang", "en", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert "churn candidate → loyal customer: 1" in chart.read_text(encoding="utf-8")
    done = kizuna("migration", "--from", "2026-01-31", "--dir", str(shop), "--chart", str(tmp_path / "no" / "x.svg"))
    assert done.returncode == 2 and "--chart" in done.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_the_same_on_spark(shop: Path, spark_store):
    with Workspace.open(shop) as ws:
        copy_store(ws.store, spark_store)
        tables = Workspace(ws.path, ws.settings, spark_store).tables()
        for by, expected in (("cell", CELL_TRANSITIONS), ("rank", RANK_TRANSITIONS)):
            assert _triples(segment_migration(tables, ws.settings.analysis, D1, D2, by=by)) == expected
