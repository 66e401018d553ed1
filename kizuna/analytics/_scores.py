"""`customer_scores`: one row per customer with every measure and segment of SPEC §1-§2.

Built as one Ibis expression: one pass over orders gives first/last order, lifetime and
window counts and revenue (so R, F, M, LTV, tenure and the customer's own mean interval
all come from the same aggregate); small tables (NPS, support, events) are joined on.
Quantile scores use integer rank arithmetic, so that every engine gives the same
answer, ties included.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import ibis
from ibis import _

from kizuna.analytics._base import AsOf, counted_orders, latest_nps, ratio

if TYPE_CHECKING:  # the workspace imports analytics, not the other way round
    from kizuna.workspace import Settings

__all__ = [
    "MATRIX_CELLS", "RFM_SEGMENTS", "customer_scores", "order_summary", "quintile",
]

MATRIX_CELLS = (
    "churn_candidate", "loyal_candidate", "loyal", "non_cooperative", "indifferent", "advocate",
    "unanswered_high", "unanswered_low",
)

# Named segments on the R score and the mean of F and M (the usual RF grid), best first.
RFM_SEGMENTS = (
    "champions", "loyal_customers", "potential_loyalist", "new_customers", "promising",
    "need_attention", "about_to_sleep", "cant_lose_them", "at_risk", "hibernating", "lost",
)

SITUATION_EVENTS = ("moved", "married", "plan_change", "household_change")


def order_summary(orders: ibis.Table, as_of: AsOf, window_days: int) -> ibis.Table:
    """The single pass over orders: per customer, lifetime and RFM-window figures."""
    counted = counted_orders(orders, as_of)
    window_start = ibis.literal(as_of.end - dt.timedelta(days=window_days), type="timestamp")
    in_window = counted.ordered_at >= window_start
    summary = counted.group_by("customer_id").aggregate(
        first_order_at=counted.ordered_at.min(),
        last_order_at=counted.ordered_at.max(),
        orders=counted.count(),
        revenue=counted.revenue.sum(),
        frequency=in_window.sum(),
        monetary=counted.revenue.sum(where=in_window),
    )
    return summary.mutate(monetary=summary.monetary.fill_null(0), frequency=summary.frequency.cast("int64"))


def quintile(value: ibis.Value, n: ibis.Value) -> ibis.Value:
    """1-5 by rank: a customer with fewer than 20 % of customers better scores 5, and so on.

    `value` is ordered so that larger is better. Ties share a score; integer arithmetic
    only, so every engine agrees.
    """
    better = ibis.rank().over(order_by=ibis.desc(value))  # customers strictly better
    return (5 - (better * 5) // n).cast("int64")


def _rfm_segment(r: ibis.Value, fm: ibis.Value) -> ibis.Value:
    return ibis.cases(
        ((r == 5) & (fm >= 4), "champions"),
        ((r >= 3) & (fm >= 4), "loyal_customers"),
        ((r >= 4) & (fm >= 2), "potential_loyalist"),
        ((r == 5) & (fm == 1), "new_customers"),
        ((r == 4) & (fm == 1), "promising"),
        ((r == 3) & (fm == 3), "need_attention"),
        (r == 3, "about_to_sleep"),
        (fm == 5, "cant_lose_them"),
        (fm >= 3, "at_risk"),
        ((r == 1) & (fm == 1), "lost"),
        else_="hibernating",
    )


def customer_scores(
    tables: dict[str, ibis.Table], settings: Settings, as_of: dt.date, summary: ibis.Table | None = None
) -> ibis.Table:
    """The `customer_scores` table as an expression (`kizuna analyze` stores it).

    `summary` is `order_summary(...)` for the same as-of date and window, when the caller
    has already materialised it (so the orders are read exactly once).
    """
    cut = AsOf(as_of)
    today = ibis.literal(as_of).epoch_days()
    customers = tables["customers"]
    if summary is None:
        summary = order_summary(tables["orders"], cut, settings.rfm_window_days)
    first_day = summary.first_order_at.date().epoch_days()
    last_day = summary.last_order_at.date().epoch_days()
    n = summary.count().over()

    # -- per ordering customer: R, F, M, LTV, quintiles, rank ---------------------------
    scored = summary.mutate(
        recency_days=(today - last_day).cast("int64"),
        aov=ratio(summary.revenue, summary.orders),
        mean_interval_days=ibis.cases(
            (summary.orders >= 2, ratio(last_day - first_day, summary.orders - 1)), else_=ibis.null("float64")
        ),
        r_score=quintile(last_day, n),
        f_score=quintile(summary.frequency, n),
        m_score=quintile(summary.monetary, n),
        ltv_rank=ibis.rank().over(order_by=ibis.desc(summary.revenue)),
        ordering_customers=n,
    )
    if settings.high_ltv_min_yen > 0:
        high = scored.revenue >= settings.high_ltv_min_yen
    else:
        high = scored.ltv_rank < (scored.ordering_customers * settings.high_ltv_top_share).ceil()
    scored = scored.mutate(high_ltv=high)

    # -- the small tables -----------------------------------------------------------------
    nps = latest_nps(tables["nps_answers"], cut, settings.nps_validity_days).rename(
        nps_score="score", nps_answered_at="answered_at"
    )
    base = customers.select("customer_id", "signed_up_at").left_join(scored, "customer_id")
    base = base.drop(*[c for c in base.columns if c.endswith("_right")])
    base = base.left_join(nps, "customer_id")
    base = base.drop(*[c for c in base.columns if c.endswith("_right")])
    base = _with_lost_signals(base, summary.select("customer_id", "last_order_at"), tables, cut, settings)

    t = base
    ordered = t.orders.notnull()
    promoter = t.nps_class == "promoter"
    high_ltv = t.high_ltv.fill_null(False)
    rank_expr = ibis.cases(
        *[
            (
                ordered & (t.recency_days <= r.max_recency_days) & (t.frequency >= r.min_orders)
                & (t.monetary >= r.min_revenue),
                r.label,
            )
            for r in settings.rfm_ranks
        ],
        else_="other",
    )
    top = settings.rfm_ranks[0]
    rank_hits = [
        ("recency", ordered & (t.recency_days <= top.max_recency_days)),
        ("frequency", ordered & (t.frequency >= top.min_orders)),
        ("monetary", ordered & (t.monetary >= top.min_revenue)),
    ]
    cell = ibis.cases(
        (t.nps_class.isnull() & high_ltv, "unanswered_high"),
        (t.nps_class.isnull(), "unanswered_low"),
        (high_ltv & (t.nps_class == "detractor"), "churn_candidate"),
        (high_ltv & (t.nps_class == "passive"), "loyal_candidate"),
        (high_ltv, "loyal"),
        (t.nps_class == "detractor", "non_cooperative"),
        (t.nps_class == "passive", "indifferent"),
        else_="advocate",
    )
    t = t.mutate(rfm_rank=rank_expr, matrix_cell=cell)
    behavioural = high_ltv | t.rfm_rank.isin([r.label for r in settings.rfm_ranks[:2]])
    # one step from loyal: all but one condition of the loyal rank, or of the loyal cell
    # (high LTV and promoter); the missing dimensions are listed in a fixed order
    rank_met = sum(ibis.cases((hit, 1), else_=0) for _, hit in rank_hits)
    near_rank = rank_met == len(rank_hits) - 1
    cell_missing_nps = high_ltv & ~promoter.fill_null(False)
    cell_missing_monetary = ~high_ltv & promoter.fill_null(False) & ordered
    already_loyal = (t.matrix_cell == "loyal") | (t.rfm_rank == top.label)
    missing_flags = {name: near_rank & ~hit for name, hit in rank_hits}
    missing_flags["monetary"] = missing_flags["monetary"] | cell_missing_monetary
    missing_flags["nps"] = cell_missing_nps
    t = t.mutate(
        **{f"_miss_{name}": ~already_loyal & flag.fill_null(False) for name, flag in missing_flags.items()}
    )
    listed = ibis.literal("")
    for name in missing_flags:
        listed = listed + ibis.cases((t[f"_miss_{name}"], name + ","), else_="")
    t = t.mutate(_missing=listed)
    missing = ibis.cases((t._missing == "", ""), else_=t._missing.substr(0, t._missing.length() - 1))
    dormant = ordered & (t.recency_days > settings.dormant_days)
    lapsing = (
        ordered & (t.orders >= 2) & (t.recency_days > settings.lapse_factor * t.mean_interval_days)
    )
    lost = dormant | t.cancelled
    t = t.mutate(
        as_of=ibis.literal(as_of),
        ltv_revenue=t.revenue.fill_null(0),
        ltv_profit=(t.revenue.fill_null(0) * settings.gross_margin_rate),
        tenure_days=(today - ibis.least(
            t.first_order_at.date().epoch_days(), t.signed_up_at.date().epoch_days()
        )).cast("int64"),
        fm_score=((t.f_score + t.m_score + 1) // 2).cast("int64"),
        loyalty=ibis.cases(
            (behavioural & promoter.fill_null(False), "loyal"), (behavioural, "good_customer"), else_=None
        ),
        near_loyal=missing != "",
        near_loyal_missing=ibis.cases((missing != "", missing), else_=None),
        dormant=dormant.fill_null(False),
        lapsing=lapsing.fill_null(False),
        lost=lost.fill_null(False),
        lost_reason=ibis.cases(
            (~lost.fill_null(False), None),
            (t.unresolved_signal, "unresolved"),
            (t.situation_signal, "situation_changed"),
            else_="drifted",
        ),
    )
    t = t.mutate(rfm_segment=ibis.cases((ordered, _rfm_segment(t.r_score, t.fm_score)), else_=None))
    return t.select(
        "customer_id", "as_of", "first_order_at", "last_order_at", "recency_days", "frequency",
        "monetary", "orders", "aov", "ltv_revenue", "ltv_profit", "tenure_days",
        "nps_score", "nps_class", "nps_answered_at", "r_score", "f_score", "m_score", "fm_score",
        "rfm_segment", "rfm_rank", "high_ltv", "matrix_cell", "loyalty", "near_loyal",
        "near_loyal_missing", "mean_interval_days", "dormant", "lapsing", "lost", "lost_reason",
    ).mutate(
        orders=_.orders.fill_null(0), frequency=_.frequency.fill_null(0), monetary=_.monetary.fill_null(0),
        high_ltv=_.high_ltv.fill_null(False),
    )


def _with_lost_signals(
    base: ibis.Table, anchor: ibis.Table, tables: dict[str, ibis.Table], cut: AsOf, settings: Settings
) -> ibis.Table:
    """Cancelled subscriptions and the signals behind the lost reasons (SPEC §2, 004).

    Each reason looks from `lost_lookback_days` before the last order up to the as-of date.
    """
    lookback = ibis.interval(days=settings.lost_lookback_days)
    events = tables["events"].filter(cut.before_end(tables["events"].occurred_at))
    contacts = tables["support_contacts"].filter(cut.before_end(tables["support_contacts"].opened_at))
    answers = tables["nps_answers"].filter(cut.before_end(tables["nps_answers"].answered_at))

    def since_anchor(table: ibis.Table, when: str) -> ibis.Table:
        # customers without orders have no anchor: all their history counts
        joined = table.left_join(anchor, "customer_id")
        start = joined.last_order_at - lookback
        return joined.filter(joined.last_order_at.isnull() | (joined[when] >= start))

    # a cancellation counts unless the customer started a subscription again afterwards
    starts = events.filter(events.kind == "subscription_start").group_by("customer_id").aggregate(
        last_start=_.occurred_at.max()
    )
    cancels = events.filter(events.kind == "cancellation").group_by("customer_id").aggregate(
        last_cancel=_.occurred_at.max()
    )
    cancelled = cancels.left_join(starts, "customer_id").select(
        "customer_id",
        cancelled=_.last_start.isnull() | (_.last_cancel >= _.last_start),
    )
    unresolved_contacts = since_anchor(contacts, "opened_at")
    unresolved_contacts = unresolved_contacts.filter(
        (unresolved_contacts.status == "open")
        | (unresolved_contacts.status.isnull() & unresolved_contacts.resolved_at.isnull())
        | unresolved_contacts.is_complaint.fill_null(False)
    ).select("customer_id")
    detractor_answers = since_anchor(answers, "answered_at")
    detractor_answers = detractor_answers.filter(detractor_answers.score <= 6).select("customer_id")
    unresolved = unresolved_contacts.union(detractor_answers).distinct().mutate(unresolved_signal=True)
    situation = since_anchor(events.filter(events.kind.isin(SITUATION_EVENTS)), "occurred_at")
    situation = situation.select("customer_id").distinct().mutate(situation_signal=True)

    out = base
    for extra in (cancelled, unresolved, situation):
        out = out.left_join(extra, "customer_id")
        out = out.drop(*[c for c in out.columns if c.endswith("_right")])
    return out.mutate(
        cancelled=out.cancelled.fill_null(False),
        unresolved_signal=out.unresolved_signal.fill_null(False),
        situation_signal=out.situation_signal.fill_null(False),
    )
