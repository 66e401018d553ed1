"""RFM rank thresholds that fit the business (docs/measures.md#rank-suggestion).

The rank table's defaults are the seed's (¥500,000 and 15 orders in three years for the loyal
rank): right for a shop of heavy buyers, empty for most others. `suggest_ranks` proposes each
rank's minimum revenue and orders from the store's own customers, so that the ranks hold about
the top 1 / 5 / 15 % of the customers who ordered in the RFM window: the minimum revenue is the
monetary of the customer at that share from the top, rounded down to an amount a person would
write (1, 2 or 5 × 10^k yen), and the minimum orders the frequency that three in four of those
top customers reach (whole orders), so that the two conditions pick the same heavy
buyers instead of cutting each other down. It counts the customers and lifetime revenue each rank
would then hold, beside what the current table gives. Ibis expressions over the tables passed
in, on any engine; only a few rows come back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

import ibis
import pyarrow as pa
from ibis import _

from kizuna._errors import KizunaError, NoDataError, Phrase
from kizuna.analytics._base import AsOf
from kizuna.analytics._scores import _top_values, order_summary
from kizuna.analytics._settings import AnalysisSettings
from kizuna.settings import FALLBACK_RANK, RankRule
from kizuna.store import to_arrow

__all__ = ["KEPT_BY_ORDERS", "RANK_SHARES", "RANK_SUGGESTION_COLUMNS", "RankSuggestion", "nice_yen",
           "nice_yen_below", "rank_expression", "suggest_ranks"]

# The share of ordering customers each rank's thresholds are taken at, best rank first.
RANK_SHARES = (0.01, 0.05, 0.15)
RANK_SUGGESTION_COLUMNS = (
    "rank", "max_recency_days", "min_orders", "min_revenue", "top_share", "customers", "customer_share", "revenue",
    "revenue_share", "current_customers", "current_revenue_share",
)
_MANTISSAS = (1, 2, 5)
KEPT_BY_ORDERS = 0.75  # the share of a rank's big spenders its minimum orders keeps


@dataclasses.dataclass(frozen=True)
class RankSuggestion:
    """What `suggest_ranks` proposes.

    `rules` are the ranks to write (`[analysis] rfm_ranks`); `table` has one row per rank, best
    first, then `other` (`RANK_SUGGESTION_COLUMNS`): the thresholds, the share they were taken
    at, the customers and lifetime revenue the rank would hold (with their shares of all
    customers and of all revenue), and what the current table gives. `ordering_customers`
    is the number of customers who ordered in the window, the population of the shares.
    """

    as_of: dt.date
    window_days: int
    ordering_customers: int
    rules: tuple[RankRule, ...]
    table: pa.Table


def nice_yen(value: float) -> int:
    """The nearest amount a person would write, 1, 2 or 5 × 10^k (on a log scale; ties go to the lower).

    >>> [nice_yen(v) for v in (733_000, 140_000, 3_600, 7, 0)]
    [1000000, 100000, 5000, 5, 0]
    """
    if value < 1:
        return 0
    power = math.floor(math.log10(value))
    candidates = [m * 10**p for p in (power - 1, power, power + 1) for m in _MANTISSAS if m * 10**p >= 1]
    return min(candidates, key=lambda c: (abs(math.log(value / c)), c))


def nice_yen_below(value: float) -> int:
    """The largest 1, 2 or 5 × 10^k amount not above `value` (0 below 1).

    >>> [nice_yen_below(v) for v in (349_839, 167_159, 89_863, 1_000, 0.5)]
    [200000, 100000, 50000, 1000, 0]
    """
    amount = nice_yen(value)
    return amount if amount <= value else _below(amount)


def _below(amount: int) -> int:
    """The 1-2-5 amount below `amount` (one itself): 100,000 → 50,000 → 20,000 → 10,000; 1 → 0.

    >>> [_below(a) for a in (100_000, 50_000, 20_000, 1)]
    [50000, 20000, 10000, 0]
    """
    if amount <= 1:
        return 0
    power = 10 ** math.floor(math.log10(amount))
    mantissa = amount // power
    return 2 * power if mantissa >= 5 else power if mantissa >= 2 else 5 * power // 10


def rank_expression(rules: Sequence[RankRule], recency_days: ibis.Value, frequency: ibis.Value,
                    monetary: ibis.Value) -> ibis.Value:
    """The rank label of the first rule whose three conditions hold, else "other" (docs/measures.md#rfm-rank)."""
    def meets(rule: RankRule) -> ibis.Value:
        return ((recency_days <= rule.max_recency_days) & (frequency >= rule.min_orders)
                & (monetary >= rule.min_revenue)).fill_null(False)

    return ibis.cases(*[(meets(r), r.label) for r in rules], else_=FALLBACK_RANK)


def suggest_ranks(tables: dict[str, ibis.Table], settings: AnalysisSettings, as_of: dt.date,
                  shares: Sequence[float] = RANK_SHARES) -> RankSuggestion:
    """Rank thresholds from the store's distribution as of the end of `as_of` (see the module docstring).

    One share per rank of `settings.rfm_ranks`, best first and increasing (0 < share < 1), read
    as "this rank and the ones above it hold about this share". Each rank keeps its label and
    recency limit; its minimum revenue is the monetary of the customer at its share from the top
    (ties counted), rounded down by `nice_yen_below` and kept strictly below the rank above's
    (the next lower 1-2-5 amount when they meet); its minimum orders the frequency that
    `KEPT_BY_ORDERS` of the customers at its share (by monetary, before rounding) reach, never
    above the rank above's.

    Examples
    --------
    >>> s = suggest_ranks(ws.tables(), ws.settings.analysis, dt.date(2026, 11, 1))  # doctest: +SKIP
    >>> [(r.label, r.min_orders, r.min_revenue) for r in s.rules]  # doctest: +SKIP
    [('loyal', 45, 200000), ('a', 34, 100000), ('b', 24, 50000)]
    """
    current = settings.rfm_ranks
    shares = tuple(float(s) for s in shares)
    if len(shares) != len(current):
        raise KizunaError.keyed("error.rank_shares_count", n=len(current), ranks=", ".join(r.label for r in current),
                                given=len(shares))
    if not all(0 < s < 1 for s in shares) or list(shares) != sorted(set(shares)):
        raise KizunaError.keyed("error.rank_shares_order", given=", ".join(f"{100 * s:g} %" for s in shares))
    summary = order_summary(tables["orders"], AsOf(as_of), settings.rfm_window_days)
    ordering = summary.filter(summary.frequency > 0)
    positions = {str(i): (lambda n, s=s: (n * s).ceil()) for i, s in enumerate(shares)}
    spend = _top_values(ordering, ordering.monetary, "m", positions).cross_join(ordering.aggregate(n=_.count()))
    found = to_arrow(spend).to_pylist()[0]
    if not found["n"]:
        raise NoDataError(Phrase.of("error.orders_in_window", days=f"{settings.rfm_window_days:,}", day=str(as_of)),
                          Phrase.of("error.ranks_need_orders"))
    amounts: list[int] = []
    for i in range(len(shares)):
        amount = nice_yen_below(found[f"m{i}"])
        amounts.append(_below(amounts[-1]) if amounts and amount >= amounts[-1] else amount)
    frequencies = None
    for i in range(len(shares)):  # the orders three in four of the customers at each share reach
        big = ordering.filter(ordering.monetary >= found[f"m{i}"])
        one = _top_values(big, big.frequency, f"f{i}", {"": lambda n: (n * KEPT_BY_ORDERS).ceil()})
        frequencies = one if frequencies is None else frequencies.cross_join(one)
    orders_at = to_arrow(frequencies).to_pylist()[0] if frequencies is not None else {}
    rules: list[RankRule] = []
    for i, (rule, amount) in enumerate(zip(current, amounts, strict=True)):
        orders = max(1, int(orders_at.get(f"f{i}") or 1))
        if rules:
            orders = min(orders, rules[-1].min_orders)
        rules.append(RankRule(rule.label, rule.max_recency_days, orders, amount))
    table = _rank_table(tables["customers"], summary, as_of, tuple(rules), current, shares)
    return RankSuggestion(as_of, settings.rfm_window_days, int(found["n"]), tuple(rules), table)


def _rank_table(customers: ibis.Table, summary: ibis.Table, as_of: dt.date, rules: tuple[RankRule, ...],
                current: tuple[RankRule, ...], shares: tuple[float, ...]) -> pa.Table:
    """Customers and lifetime revenue per rank under `rules` and under `current` (every customer)."""
    c = customers.select("customer_id")
    t = c.left_join(summary, "customer_id")
    recency = ibis.literal(as_of).epoch_days() - t.last_order_at.date().epoch_days()
    ranked = t.select(
        new=rank_expression(rules, recency, t.frequency, t.monetary),
        old=rank_expression(current, recency, t.frequency, t.monetary),
        revenue=t.revenue.fill_null(0),
    )
    groups = ranked.group_by(["new", "old"]).aggregate(customers=_.count(), revenue=_.revenue.sum())
    counts = to_arrow(groups).to_pylist()
    everyone = sum(r["customers"] for r in counts) or 1
    total = sum(int(r["revenue"] or 0) for r in counts) or 1
    rows = []
    for i, rule in enumerate((*rules, None)):
        label = rule.label if rule is not None else FALLBACK_RANK
        mine = [r for r in counts if r["new"] == label]
        before = [r for r in counts if r["old"] == (current[i].label if rule is not None else FALLBACK_RANK)]
        customers_in, revenue_in = sum(r["customers"] for r in mine), sum(int(r["revenue"] or 0) for r in mine)
        rows.append({
            "rank": label,
            "max_recency_days": rule.max_recency_days if rule else None,
            "min_orders": rule.min_orders if rule else None,
            "min_revenue": rule.min_revenue if rule else None,
            "top_share": shares[i] if rule else None,
            "customers": customers_in, "customer_share": customers_in / everyone,
            "revenue": revenue_in, "revenue_share": revenue_in / total,
            "current_customers": sum(r["customers"] for r in before),
            "current_revenue_share": sum(int(r["revenue"] or 0) for r in before) / total,
        })
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("rank", pa.string()), ("max_recency_days", pa.int64()), ("min_orders", pa.int64()),
        ("min_revenue", pa.int64()), ("top_share", pa.float64()), ("customers", pa.int64()),
        ("customer_share", pa.float64()), ("revenue", pa.int64()), ("revenue_share", pa.float64()),
        ("current_customers", pa.int64()), ("current_revenue_share", pa.float64()),
    ]))
