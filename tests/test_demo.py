"""The demo business: deterministic files, a clean import, and the story the analyses must find."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kizuna.demo import IMPORT_ORDER, DemoResult, build_demo, demo_tables, generate_demo_files
from kizuna.importing import detect_encoding
from kizuna.store import KINDS
from kizuna.workspace import Workspace

CUSTOMERS = 2_000
AS_OF = dt.date(2026, 11, 1)
MIDNIGHT = dt.datetime(2026, 11, 1)  # every timestamp falls before the as-of day begins


@pytest.fixture(scope="session")
def progress() -> list[str]:
    """The steps `build_demo` reported, in order."""
    return []


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, progress: list[str]):
    result = build_demo(tmp_path_factory.mktemp("demo") / "ws", customers=CUSTOMERS, as_of=AS_OF,
                        on_progress=progress.append)
    yield result
    result.workspace.close()


def rows(ws: Workspace, table: str) -> pa.Table:
    return ws.store.table(table).to_pyarrow()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_records(path: Path, encoding: str) -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


# -- the files ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(demo: DemoResult, tmp_path: Path):
    again = generate_demo_files(tmp_path / "again", customers=CUSTOMERS, as_of=AS_OF)
    other = generate_demo_files(tmp_path / "other", customers=CUSTOMERS, seed=8, as_of=AS_OF)
    assert set(again) == set(demo.files) == {*IMPORT_ORDER, "customers-mapping"}
    for kind, path in demo.files.items():
        assert digest(again[kind]) == digest(path), kind
    # The catalogue and the mapping are fixed; everything customers do depends on the seed.
    for kind in ("customers", "orders", "order-items", "nps", "support", "events"):
        assert digest(other[kind]) != digest(demo.files[kind]), kind


def test_orders_file_is_shift_jis_with_japanese_headers_and_values(demo: DemoResult):
    path = demo.files["orders"]
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.startswith('"受注番号","顧客ID","購入日","金額"'.encode("cp932"))
    assert raw.count(b"\r\n") == raw.count(b"\n")  # saved the Windows way
    assert detect_encoding(path) == "cp932"
    records = csv_records(path, "cp932")
    assert records[0] == ["受注番号", "顧客ID", "購入日", "金額", "ステータス", "返金額", "販売チャネル",
                          "発送日"]
    assert {r[4] for r in records[1:]} == {"完了", "キャンセル", "返品"}
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}", r[2]) for r in records[1:])
    assert all(re.fullmatch(r"￥\d{1,3}(,\d{3})*", r[3]) for r in records[1:])


def test_customers_file_is_utf8_with_bom_and_everything_would_fit_shift_jis(demo: DemoResult):
    assert demo.files["customers"].read_bytes().startswith(b"\xef\xbb\xbf")
    for kind in ("customers", "products", "order-items", "support", "events"):
        demo.files[kind].read_text(encoding="utf-8-sig").encode("cp932")  # raises if a name cannot
    for value in pq.read_table(demo.files["nps"]).column("コメント").drop_null().to_pylist():
        value.encode("cp932")


def test_file_rows_are_the_stored_rows(demo: DemoResult):
    ws = demo.workspace
    for kind in IMPORT_ORDER:
        path = demo.files[kind]
        if path.suffix == ".parquet":
            in_file = pq.ParquetFile(path).metadata.num_rows
        else:
            in_file = len(csv_records(path, "cp932" if kind == "orders" else "utf-8-sig")) - 1
        assert ws.store.count(KINDS[kind].name) == in_file, kind
    assert ws.store.count("customers") == CUSTOMERS
    assert ws.store.count("products") == 15


# -- the import ----------------------------------------------------------------------------------
def test_import_runs_in_dependency_order_with_no_rejects(demo: DemoResult, progress: list[str]):
    assert [s.kind for s in demo.summaries] == list(IMPORT_ORDER)
    assert progress == [f"generating {CUSTOMERS:,} customers", *(f"importing {k}" for k in IMPORT_ORDER)]
    for summary in demo.summaries:
        assert (summary.rejected, summary.duplicates, summary.ignored_columns) == (0, 0, []), summary.kind
        assert summary.added == summary.rows_read, summary.kind
    assert demo.rejected == 0
    encodings = {s.kind: s.encoding for s in demo.summaries}
    assert encodings["orders"] == "cp932" and encodings["customers"] == "utf-8"


def test_the_import_kept_every_value_of_the_canonical_tables(demo: DemoResult):
    tables = demo_tables(CUSTOMERS, as_of=AS_OF)
    ws = demo.workspace
    stored = rows(ws, "order_items").sort_by([("order_id", "ascending"), ("product_id", "ascending")])
    items = tables["order-items"].sort_by([("order_id", "ascending"), ("product_id", "ascending")])
    assert stored.equals(items)
    # Times in the CSV files stop at the minute: the stored values are the drawn ones, cut there.
    orders = rows(ws, "orders").sort_by("order_id")
    drawn = tables["orders"]
    assert orders["amount"].equals(drawn["amount"]) and orders["status"].equals(drawn["status"])
    assert orders["ordered_at"].equals(pc.floor_temporal(drawn["ordered_at"], unit="minute"))
    # NPS went through Parquet with a time zone and came back as local time, to the second.
    nps = rows(ws, "nps_answers").sort_by([("answered_at", "ascending"), ("customer_id", "ascending")])
    assert nps["answered_at"].equals(tables["nps"]["answered_at"])
    assert nps["score"].equals(tables["nps"]["score"])


# -- referential and arithmetic sanity -----------------------------------------------------------------
def test_every_row_belongs_to_a_known_customer_order_and_product(demo: DemoResult):
    ws = demo.workspace
    customers = set(rows(ws, "customers")["customer_id"].to_pylist())
    for table in ("orders", "nps_answers", "support_contacts", "events"):
        assert set(rows(ws, table)["customer_id"].to_pylist()) <= customers, table
    orders = set(rows(ws, "orders")["order_id"].to_pylist())
    items = rows(ws, "order_items")
    assert set(items["order_id"].to_pylist()) == orders  # every order has at least one line
    assert set(items["product_id"].to_pylist()) <= set(rows(ws, "products")["product_id"].to_pylist())


def test_order_amounts_are_the_sum_of_their_lines(demo: DemoResult):
    items = rows(demo.workspace, "order_items")
    lines = items.append_column("line", pc.multiply(items["quantity"], items["unit_price"]))
    totals = dict(zip(*lines.group_by("order_id").aggregate([("line", "sum")]).to_pydict().values(),
                      strict=True))
    orders = rows(demo.workspace, "orders").to_pylist()
    assert all(o["amount"] == totals[o["order_id"]] for o in orders)
    # Spot-check by hand: a 12 L bottle costs ¥1,404 and the standard server ¥550 a month.
    products = {p["product_id"]: p["price"] for p in rows(demo.workspace, "products").to_pylist()}
    assert products["W12-NAT"] == 1404 and products["SRV-STD"] == 550


def test_order_statuses_refunds_and_shipping_make_sense(demo: DemoResult):
    orders = rows(demo.workspace, "orders").to_pylist()
    status = Counter(o["status"] for o in orders)
    assert 0.015 < status["cancelled"] / len(orders) < 0.04
    assert 0.008 < status["returned"] / len(orders) < 0.02
    for o in orders:
        if o["status"] == "returned":
            assert 0 < o["refund_amount"] <= o["amount"] and o["shipped_at"] is not None
        else:
            assert o["refund_amount"] is None
        if o["status"] == "cancelled":
            assert o["shipped_at"] is None
        elif o["shipped_at"] is not None:
            assert o["shipped_at"] > o["ordered_at"]
    assert {o["channel"] for o in orders} == {"web", "app", "phone"}


def test_nothing_happens_after_the_as_of_date(demo: DemoResult):
    ws = demo.workspace
    for table, columns in {
        "customers": ["signed_up_at"], "orders": ["ordered_at", "shipped_at"], "nps_answers": ["answered_at"],
        "support_contacts": ["opened_at", "resolved_at"], "events": ["occurred_at"],
    }.items():
        for column in columns:
            latest = pc.max(rows(ws, table)[column]).as_py()
            assert latest < MIDNIGHT, (table, column, latest)
    assert pc.max(rows(ws, "customers")["birthday"]).as_py() < AS_OF


def test_customers_sign_up_no_later_than_their_first_order(demo: DemoResult):
    ws = demo.workspace
    orders = rows(ws, "orders").group_by("customer_id").aggregate([("ordered_at", "min")]).to_pydict()
    first = dict(zip(orders["customer_id"], orders["ordered_at_min"], strict=True))
    for c in rows(ws, "customers").to_pylist():
        if c["customer_id"] in first:
            assert c["signed_up_at"] <= first[c["customer_id"]]


# -- the business story --------------------------------------------------------------------------
def test_customers_look_japanese_with_line_ids_and_opt_ins(demo: DemoResult):
    customers = rows(demo.workspace, "customers").to_pylist()
    # The file writes 佐藤　花子 with an ideographic space; names are stored as written.
    assert all(re.fullmatch(r"\S+\u3000\S+", c["name"]) for c in customers)
    assert all(re.fullmatch(r"[ァ-ヶー]+[ \u3000][ァ-ヶー]+", c["name_kana"]) for c in customers)
    assert all(re.fullmatch(r"\d{3}-\d{4}", c["postal_code"]) for c in customers)
    line = [c for c in customers if c["line_user_id"] is not None]
    assert 0.35 < len(line) / len(customers) < 0.45
    assert all(re.fullmatch(r"U[0-9a-f]{32}", c["line_user_id"]) for c in line)
    assert all(c["line_opt_in"] is not None for c in line)  # read through the shipped mapping
    email_opt_in = [c["email_opt_in"] for c in customers if c["email"] is not None]
    assert 0.75 < sum(email_opt_in) / len(email_opt_in) < 0.95


def test_buyers_range_from_one_time_to_heavy_subscribers(demo: DemoResult):
    counts = Counter(rows(demo.workspace, "orders")["customer_id"].to_pylist())
    per_customer = sum(counts.values()) / CUSTOMERS
    assert 8 < per_customer < 16
    assert sum(1 for n in counts.values() if n == 1) / len(counts) > 0.1  # one-time buyers
    assert sum(1 for n in counts.values() if n >= 36) / len(counts) > 0.05  # three years of monthly bottles


def latest_nps_class(ws: Workspace, validity_days: int = 365) -> dict[str, str]:
    since = MIDNIGHT - dt.timedelta(days=validity_days)
    latest: dict[str, tuple[dt.datetime, int]] = {}
    for a in rows(ws, "nps_answers").to_pylist():
        if a["answered_at"] >= since and a["answered_at"] > latest.get(a["customer_id"], (since, 0))[0]:
            latest[a["customer_id"]] = (a["answered_at"], a["score"])
    return {c: "detractor" if s <= 6 else "passive" if s <= 8 else "promoter" for c, (_, s) in latest.items()}


def test_some_heavy_buyers_are_detractors_the_churn_candidates(demo: DemoResult):
    ws = demo.workspace
    revenue: Counter = Counter()
    for o in rows(ws, "orders").to_pylist():
        if o["status"] != "cancelled":
            revenue[o["customer_id"]] += o["amount"] - (o["refund_amount"] or 0)
    top = {c for c, _ in revenue.most_common(len(revenue) // 5)}
    classes = latest_nps_class(ws)
    answered = Counter(k for c, k in classes.items() if c in top)
    assert sum(answered.values()) > 50
    # 離脱候補者 (high LTV, detractor) beside ロイヤルカスタマー (high LTV, promoter): both well present
    assert answered["detractor"] / sum(answered.values()) > 0.15
    assert answered["promoter"] / sum(answered.values()) > 0.15
    answering = set(rows(ws, "nps_answers")["customer_id"].to_pylist())
    assert 0.35 < len(answering) / CUSTOMERS < 0.5


def test_churned_customers_are_more_often_detractors_and_call_more(demo: DemoResult):
    ws = demo.workspace
    events = rows(ws, "events").to_pylist()
    subscribers = {e["customer_id"] for e in events if e["kind"] == "subscription_start"}
    churned = {e["customer_id"] for e in events if e["kind"] == "cancellation"}
    assert churned <= subscribers and 0.2 < len(churned) / len(subscribers) < 0.7
    classes = latest_nps_class(ws, validity_days=10 * 365)

    def share_detractors(group: set[str]) -> float:
        answered = [classes[c] for c in group if c in classes]
        return answered.count("detractor") / len(answered)

    assert share_detractors(churned) > share_detractors(subscribers - churned) + 0.1
    contacts = Counter(rows(ws, "support_contacts")["customer_id"].to_pylist())
    detractors = [c for c, k in classes.items() if k == "detractor"]
    promoters = [c for c, k in classes.items() if k == "promoter"]

    def mean_contacts(group: list[str]) -> float:
        return sum(contacts[c] for c in group) / len(group)

    assert mean_contacts(detractors) > 1.5 * mean_contacts(promoters)


def test_cancellations_come_after_the_last_delivery(demo: DemoResult):
    ws = demo.workspace
    last = rows(ws, "orders").group_by("customer_id").aggregate([("ordered_at", "max")]).to_pydict()
    last_order = dict(zip(last["customer_id"], last["ordered_at_max"], strict=True))
    for e in rows(ws, "events").to_pylist():
        if e["kind"] == "cancellation" and e["customer_id"] in last_order:
            assert e["occurred_at"] >= last_order[e["customer_id"]]
    kinds = Counter(rows(ws, "events")["kind"].to_pylist())
    assert set(kinds) == {"subscription_start", "first_delivery", "review", "plan_change", "cancellation",
                          "moved", "married", "household_change", "referral"}


def test_support_resolution_depends_on_the_channel_and_some_stay_open(demo: DemoResult):
    contacts = rows(demo.workspace, "support_contacts").to_pylist()
    assert {c["channel"] for c in contacts} == {"phone", "chat", "email", "chatbot", "faq"}
    hours: dict[str, list[float]] = {}
    for c in contacts:
        if c["status"] == "open":
            assert c["resolved_at"] is None
        else:
            assert c["resolved_at"] > c["opened_at"]
            took = c["resolved_at"] - c["opened_at"]
            hours.setdefault(c["channel"], []).append(took.total_seconds() / 3600)
    median = {k: sorted(v)[len(v) // 2] for k, v in hours.items()}
    assert median["chatbot"] < median["phone"] < median["chat"] < median["email"]
    still_open = sum(c["status"] == "open" for c in contacts) / len(contacts)
    assert 0.01 < still_open < 0.1
    assert 0.05 < sum(c["is_complaint"] for c in contacts) / len(contacts) < 0.4


# -- options -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_rows_are_optional_and_rejected_with_their_reasons(tmp_path: Path):
    result = build_demo(tmp_path / "ws", customers=50, with_bad_rows=True)
    result.workspace.close()
    orders = next(s for s in result.summaries if s.kind == "orders")
    assert result.rejected == orders.rejected == 3
    # the demo's workspace is Japanese: so are the reasons (kizuna.i18n reject.*), which name the columns as
    # the file does (金額, 顧客ID), not as kizuna does (amount, customer_id)
    assert set(orders.reasons) == {"日付として読めません", "金額 が負の値です", "顧客ID が顧客にありません"}
    # Building again over the same workspace changes nothing and rejects the same rows.
    again = build_demo(tmp_path / "ws", customers=50, with_bad_rows=True)
    again.workspace.close()
    assert all(s.added == s.updated == 0 for s in again.summaries)
    assert again.rejected == 3


def test_demo_tables_refuses_an_empty_business():
    with pytest.raises(ValueError, match="at least one customer"):
        demo_tables(0)


# -- the vectorised builders ------------------------------------------------------------------------
def test_clock_and_numbered_write_what_formatting_each_value_would():
    import numpy as np

    from kizuna.demo._arrow import clock, numbered

    rng = np.random.default_rng(3)
    seconds = np.concatenate([rng.integers(-2_000_000_000, 2_000_000_000, 2_000), [0, -1, 86_399]])
    valid = rng.random(len(seconds)) < 0.9
    epoch = dt.datetime(1970, 1, 1)
    shown = [(epoch + dt.timedelta(seconds=int(s))) for s in seconds]
    assert clock(seconds, valid, upto="seconds").to_pylist() == [
        t.strftime("%Y/%m/%d %H:%M:%S") if ok else None for t, ok in zip(shown, valid, strict=True)]
    assert clock(seconds, upto="minutes", sep="-").to_pylist() == [t.strftime("%Y-%m-%d %H:%M") for t in shown]
    assert clock(seconds, upto="date").to_pylist() == [t.strftime("%Y/%m/%d") for t in shown]
    assert numbered("O", np.array([1, 42, 99_999_999]), 8).to_pylist() == ["O00000001", "O00000042", "O99999999"]
    assert numbered("C", np.array([7, 12_345_678]), 7).to_pylist() == ["C0000007", "C12345678"]  # wider: as is


def test_sort_by_is_lexsort_ties_included():
    import numpy as np

    from kizuna.demo._simulate import sort_by

    rng = np.random.default_rng(5)
    major, minor = rng.integers(0, 50, 5_000), rng.integers(-3, 4, 5_000)  # many equal pairs
    assert (sort_by(major, minor) == np.lexsort((minor, major))).all()
    huge = np.array([2**62, 0, 2**62]), np.array([2**62, 1, 0])  # the folded key would overflow
    assert (sort_by(*huge) == np.lexsort((huge[1], huge[0]))).all()


def test_a_failing_writer_stops_the_demo_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import kizuna.demo._generate as generate

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(generate, "_write_export", broken)
    with pytest.raises(OSError, match="disk full"):
        build_demo(tmp_path / "ws", customers=20)
