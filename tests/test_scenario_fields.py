"""Personalisation fields and related products (docs/measures.md §4) on hand-built stores, on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from kizuna.scenarios._fields import FIELD_COLUMNS, personal_fields, related_products
from kizuna.store import Store, copy_store
from kizuna.workspace import Workspace

from factories import day, workspace_with

AS_OF = dt.date(2026, 6, 30)
YEN_PER_L = 100

PRODUCTS = [
    {"product_id": "P1", "name": "天然水 12L", "volume_l": 12.0},
    {"product_id": "P2", "name": "天然水 7L", "volume_l": 7.0},
    {"product_id": "P3", "name": "フィルター"},  # no volume data
    {"product_id": "P4", "name": "カップ", "volume_l": 0.0},
]


def _order(order_id, customer, when, amount, items, **extra):
    order = {"order_id": order_id, "customer_id": customer, "ordered_at": when, "amount": amount, **extra}
    lines = [{"order_id": order_id, "product_id": p, "quantity": q, "unit_price": u} for p, q, u in items]
    return order, lines


def _store(rows):
    orders = [o for o, _ in rows]
    return orders, [line for _, lines in rows for line in lines]


FIELD_ORDERS, FIELD_ITEMS = _store([
    # A: three counted orders; a cancelled one and one just after the as-of date do not count
    _order("A-0", "A", day("2024-03-20"), 2_300, [("P1", 2, 1_000), ("P3", 1, 300)]),
    _order("A-1", "A", day("2025-06-30"), 3_000, [("P1", 3, 1_000)]),
    _order("A-2", "A", day("2026-01-10"), 5_000, [("P1", 5, 1_000)], status="cancelled"),
    _order("A-3", "A", day("2026-06-30", 23), 1_200, [("P4", 1, 200), ("P1", 1, 1_000)]),
    _order("A-4", "A", day("2026-07-01", 0), 1_000, [("P2", 1, 1_000)]),
    # C: products without volume data (none, and 0 L)
    _order("C-0", "C", day("2025-06-30"), 5_000, [("P3", 2, 2_500)]),
    _order("C-1", "C", day("2026-02-01"), 200, [("P4", 1, 200)]),
    # D: a returned order counts (amount less the refund) but its litres went back
    _order("D-0", "D", day("2026-05-01"), 3_000, [("P1", 3, 1_000)], status="returned", refund_amount=1_000),
    _order("D-1", "D", day("2026-05-20"), 1_000, [("P2", 2, 500)]),
    # E: only orders after the as-of date
    _order("E-0", "E", day("2026-07-02"), 9_000, [("P1", 9, 1_000)]),
])

FIELD_CUSTOMERS = [
    {"customer_id": "A", "name": "青木", "signed_up_at": day("2024-03-15")},
    {"customer_id": "B", "name": "馬場", "signed_up_at": day("2026-01-01")},  # no orders
    {"customer_id": "C", "name": "千葉"},
    {"customer_id": "D", "name": "土井", "signed_up_at": day("2026-06-30", 9)},
    {"customer_id": "E", "name": "遠藤", "signed_up_at": day("2026-08-01")},  # after the as-of date: unseen
]

FIELD_EVENTS = [
    {"customer_id": "A", "occurred_at": day("2024-03-10", 10), "kind": "subscription_start"},  # before sign-up
    {"customer_id": "A", "occurred_at": day("2025-03-10", 10), "kind": "subscription_start"},
    {"customer_id": "D", "occurred_at": day("2026-07-05"), "kind": "subscription_start"},  # after the as-of date
    {"customer_id": "C", "occurred_at": day("2025-01-01"), "kind": "review"},
]

EXPECTED_FIELDS = {
    # since 2024-03-10 (the subscription start): 2026-06-30 is 842 days and 2 whole years later.
    # 12 + 24 + 36 + 12 L = 72 L of P1 (the cancelled A-2 and the later A-4 are not seen);
    # 72 L × ¥100 = ¥7,200 against ¥1,000 × 6 paid for them: ¥1,200 saved
    "A": {"name": "青木", "tenure_days": 842, "tenure_years": 2, "orders_so_far": 3, "spent_so_far": 6_500,
          "litres_so_far": 72.0, "money_saved": 1_200, "first_order_at": day("2024-03-20"),
          "last_order_at": day("2026-06-30", 23), "last_product": "天然水 12L",  # P1 < P4 in A-3
          "subscription_started_at": day("2024-03-10", 10)},
    # signed up 2026-01-01: 31 + 28 + 31 + 30 + 31 + 29 = 180 days
    "B": {"name": "馬場", "tenure_days": 180, "tenure_years": 0, "orders_so_far": 0, "spent_so_far": 0,
          "litres_so_far": 0.0, "money_saved": 0, "first_order_at": None, "last_order_at": None,
          "last_product": None, "subscription_started_at": None},
    # first order 2025-06-30: exactly one year (365 days) on 2026-06-30
    "C": {"name": "千葉", "tenure_days": 365, "tenure_years": 1, "orders_so_far": 2, "spent_so_far": 5_200,
          "litres_so_far": 0.0, "money_saved": 0, "first_order_at": day("2025-06-30"),
          "last_order_at": day("2026-02-01"), "last_product": "カップ", "subscription_started_at": None},
    # first order 2026-05-01 (before the sign-up on the as-of day): 60 days; D-0 (3,000 − 1,000) + D-1 1,000;
    # 14 L of P2 only (D-0 was returned): ¥1,400 − ¥1,000 = ¥400
    "D": {"name": "土井", "tenure_days": 60, "tenure_years": 0, "orders_so_far": 2, "spent_so_far": 3_000,
          "litres_so_far": 14.0, "money_saved": 400, "first_order_at": day("2026-05-01"),
          "last_order_at": day("2026-05-20"), "last_product": "天然水 7L", "subscription_started_at": None},
    "E": {"name": "遠藤", "tenure_days": None, "tenure_years": None, "orders_so_far": 0, "spent_so_far": 0,
          "litres_so_far": 0.0, "money_saved": 0, "first_order_at": None, "last_order_at": None,
          "last_product": None, "subscription_started_at": None},
}

# Co-purchases. Completed orders up to the as-of date:
#   o1 (X): P1 P2      o2 (Y): P1 P2 P3    o3 (Y): P1 P4    o4 (Z): P2 P3
#   o7 (T): P5 P6 P7   o8 (S): P6
# o5 (Z: P1 P5) is cancelled, o6 (W: P1 P5) is after the as-of date, o9 (V: P1 P2) was returned.
# Orders holding both: P1-P2 2 (o1 o2), P1-P3 1, P2-P3 2 (o2 o4), P1-P4 1, P5-P6 1, P5-P7 1, P6-P7 1.
#   X {P1 P2}: P3 = 1 + 2 = 3, P4 = 1 + 0 = 1
#   Y {P1 P2 P3 P4}: nothing left;  T {P5 P6 P7}: nothing left
#   Z {P2 P3} (not P1, P5: o5 was cancelled): P1 = 2 + 1 = 3
#   S {P6}: P5 = 1, P7 = 1, a tie: the lower product_id first
#   V bought nothing counted: absent
RELATED_ORDERS, RELATED_ITEMS = _store([
    _order("o1", "X", day("2026-01-01"), 1, [("P1", 1, 1), ("P2", 1, 1)]),
    _order("o2", "Y", day("2026-01-02"), 1, [("P1", 1, 1), ("P2", 2, 1), ("P3", 1, 1)]),
    _order("o3", "Y", day("2026-01-03"), 1, [("P1", 1, 1), ("P4", 1, 1)]),
    _order("o4", "Z", day("2026-01-04"), 1, [("P2", 1, 1), ("P3", 1, 1)]),
    _order("o5", "Z", day("2026-01-05"), 1, [("P1", 1, 1), ("P5", 1, 1)], status="cancelled"),
    _order("o6", "W", day("2026-07-01", 0), 1, [("P1", 1, 1), ("P5", 1, 1)]),
    _order("o7", "T", day("2026-01-07"), 1, [("P5", 1, 1), ("P6", 1, 1), ("P7", 1, 1)]),
    _order("o8", "S", day("2026-01-08"), 1, [("P6", 1, 1)]),
    _order("o9", "V", day("2026-01-09"), 1, [("P1", 1, 1), ("P2", 1, 1)], status="returned"),
])
RELATED_PRODUCTS = [{"product_id": f"P{i}", "name": f"商品{i}"} for i in range(1, 8)]

EXPECTED_RELATED = [
    ("S", 1, "P5"), ("S", 2, "P7"),
    ("X", 1, "P3"), ("X", 2, "P4"),
    ("Z", 1, "P1"),
]


@pytest.fixture
def fields_ws(tmp_path):
    ws = workspace_with(tmp_path / "fields", customers=FIELD_CUSTOMERS, products=PRODUCTS, orders=FIELD_ORDERS,
                        order_items=FIELD_ITEMS, events=FIELD_EVENTS)
    yield ws
    ws.close()


@pytest.fixture
def related_ws(tmp_path):
    ws = workspace_with(tmp_path / "related", products=RELATED_PRODUCTS, orders=RELATED_ORDERS,
                        order_items=RELATED_ITEMS)
    yield ws
    ws.close()


def _fields(tables, as_of=AS_OF) -> dict[str, dict]:
    rows = personal_fields(tables, as_of, alternative_yen_per_l=YEN_PER_L).to_pyarrow().to_pylist()
    return {r["customer_id"]: r for r in rows}


def _related(tables, top=3) -> list[dict]:
    table = related_products(tables, AS_OF, top=top).order_by("customer_id", "rank").to_pyarrow()
    return table.to_pylist()


def test_every_personal_field_by_hand(fields_ws):
    fields = personal_fields(fields_ws.tables(), AS_OF, alternative_yen_per_l=YEN_PER_L)
    assert tuple(fields.columns) == FIELD_COLUMNS
    rows = _fields(fields_ws.tables())
    assert set(rows) == set(EXPECTED_FIELDS)
    for customer, expected in EXPECTED_FIELDS.items():
        assert {k: v for k, v in rows[customer].items() if k != "customer_id"} == expected, customer


def test_fields_on_the_next_day_see_the_later_orders(fields_ws):
    rows = _fields(fields_ws.tables(), AS_OF + dt.timedelta(days=1))
    # A-4 (P2 × 1 at ¥1,000) is seen now: 79 L, ¥7,900 − ¥7,000
    assert (rows["A"]["orders_so_far"], rows["A"]["litres_so_far"], rows["A"]["money_saved"]) == (4, 79.0, 900)
    assert rows["A"]["last_product"] == "天然水 7L"
    assert rows["E"]["tenure_days"] is None  # E's first order is on 2026-07-02


def test_a_dearer_alternative_saves_more(fields_ws):
    rows = personal_fields(fields_ws.tables(), AS_OF, alternative_yen_per_l=150).to_pyarrow().to_pylist()
    saved = {r["customer_id"]: r["money_saved"] for r in rows}
    # A: 72 L × 150 = 10,800 − 6,000; D: 14 L × 150 = 2,100 − 1,000
    assert saved == {"A": 4_800, "B": 0, "C": 0, "D": 1_100, "E": 0}


@pytest.mark.slow
def test_a_leap_day_start_has_its_anniversary_on_the_first_of_march(tmp_path):
    customers = [{"customer_id": "L", "name": "閏", "signed_up_at": day("2024-02-29")}]
    with workspace_with(tmp_path / "ws", customers=customers) as ws:
        years = [_fields(ws.tables(), dt.date(2025, m, d))["L"]["tenure_years"] for m, d in ((2, 28), (3, 1))]
    assert years == [0, 1]


@pytest.mark.slow
def test_related_products_by_hand(related_ws):
    got = [(r["customer_id"], r["rank"], r["product_id"]) for r in _related(related_ws.tables())]
    assert got == EXPECTED_RELATED
    names = {r["product_id"]: r["name"] for r in _related(related_ws.tables())}
    assert names == {"P1": "商品1", "P3": "商品3", "P4": "商品4", "P5": "商品5", "P7": "商品7"}


def test_related_products_keep_the_top(related_ws):
    got = [(r["customer_id"], r["rank"], r["product_id"]) for r in _related(related_ws.tables(), top=1)]
    assert got == [("S", 1, "P5"), ("X", 1, "P3"), ("Z", 1, "P1")]
    with pytest.raises(ValueError, match="top"):
        related_products(related_ws.tables(), AS_OF, top=0)


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


def _copied(ws: Workspace, store: Store) -> Workspace:
    copy_store(ws.store, store)
    return Workspace(ws.path, ws.settings, store)


def test_the_same_fields_on_other_engines(fields_ws, other_store):
    other = _copied(fields_ws, other_store)
    for as_of in (AS_OF, AS_OF + dt.timedelta(days=1)):
        assert _fields(other.tables(), as_of) == _fields(fields_ws.tables(), as_of)


def test_the_same_related_products_on_other_engines(related_ws, other_store):
    other = _copied(related_ws, other_store)
    for top in (1, 3):
        assert _related(other.tables(), top) == _related(related_ws.tables(), top)
