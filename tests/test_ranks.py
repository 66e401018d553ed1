"""Thresholds and prices that fit the business (issue #22 item 6, docs/measures.md#rank-suggestion).

`kizuna ranks suggest` on a hand-built store whose figures are worked out below; `--write` keeps
the rest of kizuna.toml; `kizuna analyze` then ranks as the suggestion counted; `kizuna init` on a
store with orders and the demo use it. The demo's water saves money against its comparison
price for every customer who kept some: every saving its anniversary e-mail says is above ¥0.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kizuna.analytics import nice_yen, nice_yen_below, suggest_ranks
from kizuna.demo import build_demo
from kizuna.demo._catalog import PRODUCTS
from kizuna.demo._generate import ALTERNATIVE
from kizuna.scenarios import load_scenario, render, scenario_fields
from kizuna.settings import DEFAULT_RANKS, RankRule
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import workspace_with

AS_OF = dt.date(2026, 6, 30)


def _orders() -> list[dict]:
    """Customer i (1 … 100) ordered i // 2 + 1 times in the days before AS_OF, ¥1,000 × i each time:
    frequency i // 2 + 1, monetary 1,000 × i × (i // 2 + 1). Customer 50 also ordered ¥10,000,000
    four years ago (lifetime revenue, outside the three-year window) and customer 100 ¥9,000,000
    that was cancelled (never counted). C000 never ordered."""
    rows = []
    for i in range(1, 101):
        for n in range(i // 2 + 1):
            rows.append({"order_id": f"O{i:03d}-{n:02d}", "customer_id": f"C{i:03d}",
                         "ordered_at": dt.datetime(2026, 6, 29, 12) - dt.timedelta(days=n), "amount": 1_000 * i})
    rows.append({"order_id": "OLD", "customer_id": "C050", "ordered_at": dt.datetime(2022, 6, 1, 12),
                 "amount": 10_000_000})
    rows.append({"order_id": "GONE", "customer_id": "C100", "ordered_at": dt.datetime(2026, 6, 1, 12),
                 "amount": 9_000_000, "status": "cancelled"})
    return rows


def frequency(i: int) -> int:
    return i // 2 + 1


def monetary(i: int) -> int:
    return 1_000 * i * frequency(i)


# The top 1 / 5 / 15 % of the 100 ordering customers by monetary are the 1st, 5th and 15th largest:
# customers 100 (¥5,100,000), 96 (¥4,704,000) and 86 (¥3,784,000). Rounded down to 1-2-5 amounts:
# ¥5,000,000; ¥2,000,000 (¥5,000,000 is above ¥4,704,000); ¥2,000,000 again, which meets the rank
# above, so the next lower amount, ¥1,000,000.
# Minimum orders: what three in four of the customers at each share reach, ceil(0.75 k)-th largest:
#   top 1: {100: 51} → 51;  top 5: customers 96 … 100, 49 49 50 50 51 → the 4th largest, 49;
#   top 15: customers 86 … 100, 44 44 45 45 46 46 47 47 48 48 49 49 50 50 51 → the 12th largest, 45.
EXPECTED_RULES = (RankRule("loyal", 30, 51, 5_000_000), RankRule("a", 60, 49, 2_000_000),
                  RankRule("b", 90, 45, 1_000_000))
# All ordered the day before: loyal = customer 100; a = 96 … 99 (orders ≥ 49); b = 88 … 95 (orders 45 … 48,
# at least ¥3,872,000); the other 87, and C000.
RANK_MEMBERS = {"loyal": [100], "a": [96, 97, 98, 99], "b": list(range(88, 96))}


@pytest.fixture
def shop(tmp_path: Path) -> Workspace:
    customers = [{"customer_id": f"C{i:03d}", "name": f"顧客{i}"} for i in range(101)]
    ws = workspace_with(tmp_path / "shop", customers=customers, orders=_orders())
    ws.save_settings(ws.settings.replace(analysis={"as_of": AS_OF.isoformat()}))
    yield ws
    ws.close()


def test_nice_amounts_are_the_ones_a_person_writes():
    assert [nice_yen(v) for v in (1, 1.4, 1.6, 3.1, 3.2, 7.1, 7.0, 140_000, 733_000)] == \
        [1, 1, 2, 2, 5, 10, 5, 100_000, 1_000_000]
    assert [nice_yen_below(v) for v in (1_000, 999, 4_704_000, 3_784_000, 0)] == [1_000, 500, 2_000_000, 2_000_000, 0]


def test_the_suggestion_by_hand(shop: Workspace):
    found = suggest_ranks(shop.tables(), shop.settings.analysis, AS_OF)
    assert found.ordering_customers == 100 and found.window_days == 3 * 365
    assert found.rules == EXPECTED_RULES
    rows = {r["rank"]: r for r in found.table.to_pylist()}
    assert list(rows) == ["loyal", "a", "b", "other"]
    lifetime = {i: monetary(i) + (10_000_000 if i == 50 else 0) for i in range(1, 101)}
    total = sum(lifetime.values())
    for rank, members in RANK_MEMBERS.items():
        revenue = sum(lifetime[i] for i in members)
        assert (rows[rank]["customers"], rows[rank]["revenue"]) == (len(members), revenue), rank
        assert rows[rank]["customer_share"] == pytest.approx(len(members) / 101)
        assert rows[rank]["revenue_share"] == pytest.approx(revenue / total)
    assert rows["other"]["customers"] == 101 - 13
    assert [rows[r]["top_share"] for r in ("loyal", "a", "b")] == [0.01, 0.05, 0.15]
    # the seed's loyal rank (15 orders and ¥500,000) holds 69 of this shop's 101: customers 32 … 100
    # (31 has 16 orders but ¥496,000)
    assert rows["loyal"]["current_customers"] == 69 == sum(
        1 for i in range(1, 101) if frequency(i) >= 15 and monetary(i) >= 500_000)


def test_the_shares_must_fit_the_ranks(shop: Workspace):
    with pytest.raises(Exception, match=r"one share per rank: \[analysis\] rfm_ranks has 3 \(loyal, a, b\), not 2"):
        suggest_ranks(shop.tables(), shop.settings.analysis, AS_OF, (0.01, 0.05))
    with pytest.raises(Exception, match="must grow from the best rank"):
        suggest_ranks(shop.tables(), shop.settings.analysis, AS_OF, (0.05, 0.01, 0.15))


@pytest.mark.slow
def test_write_keeps_the_rest_of_kizuna_toml_and_analyze_ranks_as_counted(shop: Workspace):
    path = shop.path / "kizuna.toml"
    text = path.read_text(encoding="utf-8")
    mine = "# our own thresholds were argued over in the March meeting\ndormant_days = 120  # three months is too short"
    text = text.replace("dormant_days = 90  # dormant: no order for this many days", mine)
    path.write_text(text, encoding="utf-8")
    shop.settings = Workspace.open(shop.path).settings
    found = shop.suggest_ranks()
    shop.write_rank_rules(found.rules)
    written = path.read_text(encoding="utf-8")
    assert mine in written
    assert written.replace(_ranks_block(written), "") == text.replace(_ranks_block(text), "")  # only the ranks changed
    assert '  { label = "loyal", max_recency_days = 30, min_orders = 51, min_revenue = 5000000 },\n' in written
    with Workspace.open(shop.path) as again:
        assert again.settings.analysis.rfm_ranks == EXPECTED_RULES
        assert again.settings.analysis.dormant_days == 120
        again.analyze()
        table = {r["segment"]: r["customers"] for r in again.segments()["ranks"].to_pylist()}
    assert table == {f"rank_{r['rank']}": r["customers"] for r in found.table.to_pylist()}


def _ranks_block(text: str) -> str:
    return re.search(r"rfm_ranks = \[\n(.*\n)*?\]\n", text).group(0)


def kizuna(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kizuna", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=False)


@pytest.mark.slow
def test_the_command_shows_labels_and_writes_only_when_asked(shop: Workspace):
    cwd = shop.path.parent
    shop.close()
    shown = kizuna("ranks", "suggest", "-d", "shop", "-f", "json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert (result["as_of"], result["ordering_customers"], result["written"]) == ("2026-06-30", 100, False)
    assert [r["rank"] for r in result["ranks"]] == ["ロイヤルカスタマー", "Aランク", "Bランク", "その他"]
    assert [r["min_revenue"] for r in result["ranks"]] == [5_000_000, 2_000_000, 1_000_000, None]
    with Workspace.open(shop.path) as ws:
        assert ws.settings.analysis.rfm_ranks == DEFAULT_RANKS
    table = kizuna("ranks", "suggest", "-d", "shop", "--write", "--top", "2,10,30", cwd=cwd)
    assert table.returncode == 0, table.stderr
    assert "RFMランク基準の提案 (2026-06-30 時点、直近1,095日に購入した100人の分布から)" in table.stdout
    assert "書き込みました" in table.stdout
    with Workspace.open(shop.path) as ws:
        # the 2nd, 10th and 30th largest: customers 99 (¥4,950,000 → ¥2,000,000), 91 (¥4,186,000 →
        # ¥2,000,000, the rank above's: ¥1,000,000), 71 (¥2,556,000 → ¥2,000,000: ¥500,000)
        assert [r.min_revenue for r in ws.settings.analysis.rfm_ranks] == [2_000_000, 1_000_000, 500_000]
    wrong = kizuna("ranks", "suggest", "-d", "shop", "--top", "1,5", cwd=cwd)
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1  # in the workspace's language (Japanese)
    assert wrong.stderr.startswith("エラー: ランクごとに 1 つの割合を指定してください。"), wrong.stderr
    wrong = kizuna("ranks", "suggest", "-d", "shop", "--top", "1,five,15", cwd=cwd)
    assert wrong.returncode == 2 and "--top" in wrong.stderr


@pytest.mark.slow
def test_no_order_in_the_window_is_one_line(tmp_path: Path):
    assert kizuna("init", "empty", cwd=tmp_path).returncode == 0
    done = kizuna("ranks", "suggest", "-d", "empty", "--as-of", "2026-06-30", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr == (
        "エラー: このワークスペースには2026-06-30 までの 1,095 日間の注文がありません。"
        "ランクの基準はその注文から求めます。`kizuna import orders FILE` で最近の注文を取り込むか、"
        "--as-of に注文のある日付を指定してください。\n")
    done = kizuna("ranks", "suggest", "-d", "empty", "--as-of", "2026-06-30", "--lang", "en", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr == (
        "error: No orders in the 1,095 days up to 2026-06-30 in this workspace. Rank thresholds are taken from "
        "them: import recent orders with `kizuna import orders FILE`, or give --as-of a day within their dates.\n")


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow])])
def other_store(request):
    """An empty store on PostgreSQL, then on Spark."""
    if request.param == "spark":
        yield request.getfixturevalue("spark_store")
        return
    store = Store.connect(request.getfixturevalue("postgres_database"))
    yield store
    store.close()


def test_the_same_suggestion_on_other_engines(shop: Workspace, other_store):
    copy_store(shop.store, other_store)
    other = Workspace(shop.path, shop.settings, other_store)
    here, there = shop.suggest_ranks(), other.suggest_ranks()
    assert there.rules == here.rules == EXPECTED_RULES
    assert there.table.to_pylist() == here.table.to_pylist()


@pytest.mark.slow
def test_init_on_a_store_with_orders_sets_ranks_that_fit_it(shop: Workspace, tmp_path: Path):
    store = shop.store.files()[0] if shop.store.files() else shop.path / "kizuna.duckdb"
    shop.close()
    done = kizuna("init", "second", "--db", store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RFMランクの基準を設定しました" in done.stdout
    # without [analysis] as_of the suggestion is as of today: the orders of June 2026 are in its window
    # until June 2029, and their ranks need an order within 30 … 90 days; the amounts do not depend on the day
    with Workspace.open(tmp_path / "second", create=False) as ws:
        assert [r.min_revenue for r in ws.settings.analysis.rfm_ranks] == [5_000_000, 2_000_000, 1_000_000]


# -- the demo ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    result = build_demo(tmp_path_factory.mktemp("demo") / "ws", customers=400, as_of=dt.date(2026, 11, 1))
    yield result.workspace
    result.workspace.close()


@pytest.mark.slow
def test_the_demo_ranks_fit_its_customers(demo: Workspace):
    rules = demo.settings.analysis.rfm_ranks
    assert rules == demo.suggest_ranks().rules
    assert [r.label for r in rules] == [r.label for r in DEFAULT_RANKS]
    demo.analyze()
    ranks = {r["segment"]: r["customers"] for r in demo.segments()["ranks"].to_pylist()}
    assert all(ranks[f"rank_{r.label}"] > 0 for r in rules), ranks


def test_every_water_product_costs_less_a_litre_than_the_demo_compares_it_with():
    per_litre = {p[0]: p[3] / p[5] for p in PRODUCTS if p[5]}
    assert per_litre and max(per_litre.values()) < ALTERNATIVE["alternative_yen_per_l"], per_litre


def test_every_saving_the_anniversary_mail_says_is_above_zero(demo: Workspace):
    scenario = load_scenario(demo.path / "scenarios" / "churn-candidate-to-loyal.yaml")
    events = demo.store.table("events")
    subscribers = sorted(set(events.filter(events.kind == "subscription_start").customer_id.to_pyarrow()
                             .to_pylist()))
    assert len(subscribers) > 100
    people = scenario_fields(demo.run_context(), subscribers, demo.as_of())
    step = scenario.steps[0]
    savings, with_water = [], 0
    for customer in subscribers:
        fields = {k: ("" if v is None else v) for k, v in people[customer].items()}
        fields.update(detail="", occasion="test", occasion_at="", unsubscribe_url="u", survey_url="s")
        text = render(step.body["ja"], fields, scenario=scenario.name, step=1)
        with_water += people[customer]["litres_so_far"] > 0
        savings += [int(n.replace(",", "")) for n in re.findall(r"約¥([\d,]+)おトク", text)]
    assert len(savings) == with_water > 100  # every customer who kept some water is told a saving
    assert min(savings) > 0
