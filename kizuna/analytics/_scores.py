"""`customer_scores`: one row per customer with every measure and segment of docs/measures.md §1-§2.

Built as one Ibis expression: one pass over orders gives first/last order, lifetime and
window counts and revenue (so R, F, M, LTV, tenure and the customer's own mean interval
all come from the same aggregate); small tables (NPS, support, events) are joined on, and the
lifecycle state (`lifecycle_states`, given the same aggregate).
Quintile scores and the top-20 % LTV flag follow the integer rank definition (`quintile`),
ties included, so that every engine gives the same answer; they are computed by comparing
each customer with a few cut values taken from the distinct values, not by ranking (sorting)
all customers.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import ibis
from ibis import _

from kizuna.analytics._base import DETRACTOR_MAX, AsOf, counted_orders, latest_nps, ratio
from kizuna.analytics._lifecycle import LIFECYCLE_STATES, lifecycle_states

if TYPE_CHECKING:
    from kizuna.analytics._settings import AnalysisSettings, LostReasonSettings
    from kizuna.settings import RankRule

__all__ = [
    "MATRIX_CELLS", "RFM_SEGMENTS", "customer_scores", "order_summary", "quintile", "score_categories",
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
# The reasons in the order they are tried (docs/measures.md#lost-reasons): a field of LostReasonSettings each.
LOST_REASONS = ("unresolved", "situation_changed", "drifted")

# The stored columns, in order.
SCORE_COLUMNS = (
    "customer_id", "as_of", "first_order_at", "last_order_at", "recency_days", "frequency", "monetary", "orders",
    "aov", "ltv_revenue", "ltv_profit", "tenure_days", "nps_score", "nps_class", "nps_answered_at",
    "r_score", "f_score", "m_score", "fm_score", "rfm_segment", "rfm_rank", "high_ltv", "matrix_cell", "loyalty",
    "near_loyal", "near_loyal_missing", "mean_interval_days", "dormant", "lapsing", "lost", "lost_reason",
    "lost_reason_matched", "lifecycle_state", "lost_since",
)

# What a near-loyal customer lacks, in the order `near_loyal_missing` lists it.
NEAR_LOYAL_DIMENSIONS = ("recency", "frequency", "monetary", "nps")


def score_categories(settings: AnalysisSettings) -> dict[str, tuple[str, ...]]:
    """Every value each text column of `customer_scores` can hold (NULL aside).

    The store keeps these columns as categories where the engine has them (DuckDB ENUMs),
    which makes `kizuna analyze` write them several times faster.
    """
    return {
        "nps_class": ("detractor", "passive", "promoter"),
        "rfm_segment": RFM_SEGMENTS,
        "rfm_rank": (*(r.label for r in settings.rfm_ranks), "other"),
        "matrix_cell": MATRIX_CELLS,
        "loyalty": ("loyal", "good_customer"),
        "near_loyal_missing": tuple(
            ",".join(names) for k in range(1, len(NEAR_LOYAL_DIMENSIONS) + 1)
            for names in itertools.combinations(NEAR_LOYAL_DIMENSIONS, k)
        ),
        "lost_reason": ("unresolved", "situation_changed", "drifted"),
        "lifecycle_state": LIFECYCLE_STATES,
    }


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
        frequency=counted.count(where=in_window),  # COUNT(*) FILTER: cheaper than summing a cast
        monetary=counted.revenue.sum(where=in_window),
    )
    return summary.mutate(monetary=summary.monetary.fill_null(0))


def quintile(value: ibis.Value, n: ibis.Value) -> ibis.Value:
    """1-5 by rank: a customer with fewer than 20 % of customers better scores 5, and so on.

    `value` is ordered so that larger is better. Ties share a score; integer arithmetic
    only, so every engine agrees.
    """
    better = ibis.rank().over(order_by=ibis.desc(value))  # customers strictly better
    return (5 - (better * 5) // n).cast("int64")


# Quintile score s (2..5) needs a value at least as good as the one at this position from the top
# (1-based, ties counted), n being the number of ordering customers: ceil((6 - s) * n / 5).
_QUINTILE_CUTS: dict[str, Callable[[ibis.Value], ibis.Value]] = {
    str(s): (lambda n, s=s: ((6 - s) * n + 4) // 5) for s in (2, 3, 4, 5)
}


def _top_values(
    table: ibis.Table, value: ibis.Value, prefix: str, positions: dict[str, Callable[[ibis.Value], ibis.Value]]
) -> ibis.Table:
    """One row: for each `positions` item, `value`'s k-th largest over the rows of `table`.

    k = position(n) with n the number of rows, 1-based with ties counted (the 3rd largest of
    9, 7, 7, 5 is 7); NULL when k < 1. "v >= the k-th largest" is the same as "fewer than k
    rows are strictly larger than v", i.e. `rank() < k`, without sorting the rows: one
    aggregate by distinct value, and a running count over the (few) distinct values.
    """
    counts = table.group_by(_v=value).aggregate(_c=_.count())
    counts = counts.mutate(
        _at_least=counts._c.sum().over(order_by=ibis.desc(counts._v), rows=(None, 0)),
        _n=counts._c.sum().over(),
    )
    return counts.aggregate(**{
        prefix + name: counts._v.max(where=(counts._at_least >= k) & (k >= 1))
        for name, k in ((name, position(counts._n)) for name, position in positions.items())
    })


def _score(value: ibis.Value, cuts: ibis.Table, prefix: str) -> ibis.Value:
    """1-5: one plus the number of quintile cuts (from `_top_values`) that `value` reaches.

    The same as `quintile`: 5 - floor(5 * better / n) >= s exactly when better < (6 - s) * n / 5.
    """
    return (1 + sum(ibis.cases((value >= cuts[prefix + name], 1), else_=0) for name in _QUINTILE_CUTS)).cast("int64")


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
    tables: dict[str, ibis.Table], settings: AnalysisSettings, as_of: dt.date, *, gross_margin_rate: float,
    summary: ibis.Table | None = None, lost_reasons: LostReasonSettings | None = None,
) -> ibis.Table:
    """The `customer_scores` table as an expression (`kizuna analyze` stores it).

    `settings` is the [analysis] section; `gross_margin_rate` ([business]) turns revenue LTV into
    `ltv_profit`; `lost_reasons` ([lost_reasons], its defaults when None) the words that decide a
    lost customer's reason from what they said.

    `summary` is `order_summary(...)` for the same as-of date and window, when the caller
    has already materialised it (so the orders are read exactly once).

    Built flat, so that it compiles fast and the engine runs few operators: the ordering
    customers' figures in one select, then one chain of joins (customers ← figures, NPS,
    lost signals) selecting the stored figures and the flags the segments need, then one
    select naming the segments.
    """
    cut = AsOf(as_of)
    today = ibis.literal(as_of).epoch_days()
    if summary is None:
        summary = order_summary(tables["orders"], cut, settings.rfm_window_days)
    scored = _ordering_customers(summary, settings, today)

    # -- the small tables -----------------------------------------------------------------
    nps = latest_nps(tables["nps_answers"], cut, settings.nps_validity_days)
    anchor = summary.select("customer_id", "last_order_at")
    cancelled, unresolved, situation = _lost_signals(anchor, tables, cut, settings)
    said = _lost_words(anchor, tables, cut, settings, lost_reasons)
    # the one definition of the lifecycle state (docs/measures.md#lifecycle-state), from the same summary
    life = lifecycle_states(tables, as_of, settings, summary=summary)

    # -- one row per customer: every customer, with or without orders ----------------------
    # The join selects the stored figures and every flag the segments need, straight from the
    # joined tables; the final select only names the segments. Two levels, each expression
    # written once: this compiles fast and the engine evaluates each flag once.
    c = tables["customers"]
    top = settings.rfm_ranks[0]
    ordered = scored.orders.notnull()
    high_ltv = scored.high_ltv.fill_null(False)
    promoter = (nps.nps_class == "promoter").fill_null(False)

    def meets(rank: RankRule) -> ibis.Value:
        return (
            (scored.recency_days <= rank.max_recency_days) & (scored.frequency >= rank.min_orders)
            & (scored.monetary >= rank.min_revenue)
        ).fill_null(False)

    hits = {  # the loyal rank's three conditions, one by one
        "recency": (scored.recency_days <= top.max_recency_days).fill_null(False),
        "frequency": (scored.frequency >= top.min_orders).fill_null(False),
        "monetary": (scored.monetary >= top.min_revenue).fill_null(False),
    }
    # one step from loyal: all but one condition of the loyal rank, or of the loyal cell
    # (high LTV and promoter); the missing dimensions are listed in NEAR_LOYAL_DIMENSIONS' order
    near_rank = sum(ibis.cases((hit, 1), else_=0) for hit in hits.values()) == len(hits) - 1
    already_loyal = (high_ltv & promoter) | meets(top)
    missing = {name: near_rank & ~hit for name, hit in hits.items()}
    missing["monetary"] = missing["monetary"] | (~high_ltv & promoter & ordered)
    missing["nps"] = high_ltv & ~promoter
    dormant = ordered & (scored.recency_days > settings.dormant_days)
    t = (
        c.left_join(scored, c.customer_id == scored.customer_id)
        .left_join(nps, c.customer_id == nps.customer_id)
        .left_join(cancelled, c.customer_id == cancelled.customer_id)
        .left_join(unresolved, c.customer_id == unresolved.customer_id)
        .left_join(situation, c.customer_id == situation.customer_id)
        .left_join(said, c.customer_id == said.customer_id)
        .left_join(life, c.customer_id == life.customer_id)
        .select(
            customer_id=c.customer_id,
            first_order_at=scored.first_order_at,
            last_order_at=scored.last_order_at,
            recency_days=scored.recency_days,
            frequency=scored.frequency.fill_null(0),
            monetary=scored.monetary.fill_null(0),
            orders=scored.orders.fill_null(0),
            aov=scored.aov,
            ltv_revenue=scored.revenue.fill_null(0),
            ltv_profit=scored.revenue.fill_null(0) * gross_margin_rate,
            tenure_days=(today - ibis.least(
                scored.first_order_at.date().epoch_days(), c.signed_up_at.date().epoch_days()
            )).cast("int64"),
            nps_score=nps.score,
            nps_class=nps.nps_class,
            nps_answered_at=nps.answered_at,
            r_score=scored.r_score,
            f_score=scored.f_score,
            m_score=scored.m_score,
            fm_score=((scored.f_score + scored.m_score + 1) // 2).cast("int64"),
            rfm_rank=ibis.cases(*[(meets(r), r.label) for r in settings.rfm_ranks], else_="other"),
            high_ltv=high_ltv,
            mean_interval_days=scored.mean_interval_days,
            dormant=dormant.fill_null(False),
            lapsing=(
                ordered & (scored.orders >= 2)
                & (scored.recency_days > settings.lapse_factor * scored.mean_interval_days)
            ).fill_null(False),
            lost=(dormant.fill_null(False) | cancelled.cancelled.fill_null(False)),
            lifecycle_state=life.lifecycle_state,
            lost_since=life.lost_since,
            # helpers for the final select, not stored
            _ordered=ordered,
            _promoter=promoter,
            _unresolved=unresolved.unresolved_signal.fill_null(False) | said.word_unresolved.notnull(),
            _situation=situation.situation_signal.fill_null(False) | said.word_situation_changed.notnull(),
            _said_reason=said.said_reason,
            _said_word=said.said_word,
            _word_unresolved=said.word_unresolved,
            _word_situation=said.word_situation_changed,
            _word_drifted=said.word_drifted,
            **{"_miss_" + name: ~already_loyal & flag.fill_null(False) for name, flag in missing.items()},
        )
    )

    # -- segments (docs/measures.md §2) -----------------------------------------------------------------
    misses = [t["_miss_" + name] for name in NEAR_LOYAL_DIMENSIONS]
    near_loyal = ibis.or_(*misses)
    listed = ibis.literal("")
    for name, miss in zip(NEAR_LOYAL_DIMENSIONS, misses, strict=True):
        listed = listed + ibis.cases((miss, name + ","), else_="")
    behavioural = t.high_ltv | t.rfm_rank.isin([r.label for r in settings.rfm_ranks[:2]])
    segments = {
        "rfm_segment": ibis.cases((t._ordered, _rfm_segment(t.r_score, t.fm_score)), else_=None),
        "matrix_cell": ibis.cases(
            (t.nps_class.isnull() & t.high_ltv, "unanswered_high"),
            (t.nps_class.isnull(), "unanswered_low"),
            (t.high_ltv & (t.nps_class == "detractor"), "churn_candidate"),
            (t.high_ltv & (t.nps_class == "passive"), "loyal_candidate"),
            (t.high_ltv, "loyal"),
            (t.nps_class == "detractor", "non_cooperative"),
            (t.nps_class == "passive", "indifferent"),
            else_="advocate",
        ),
        "loyalty": ibis.cases((behavioural & t._promoter, "loyal"), (behavioural, "good_customer"), else_=None),
        "near_loyal": near_loyal,
        # the list is only built for the few customers it names
        "near_loyal_missing": ibis.cases((near_loyal, listed.substr(0, listed.length() - 1)), else_=None),
        "lost_reason": ibis.cases(
            (~t.lost, None),
            (t._said_reason.notnull(), t._said_reason),
            (t._unresolved, "unresolved"),
            (t._situation, "situation_changed"),
            else_="drifted",
        ),
        "lost_reason_matched": ibis.cases(
            (~t.lost, None),
            (t._said_reason.notnull(), t._said_word),
            (t._unresolved, t._word_unresolved),
            (t._situation, t._word_situation),
            else_=t._word_drifted,
        ),
    }
    segments["as_of"] = ibis.literal(as_of)
    return t.select(*[segments[name].name(name) if name in segments else t[name] for name in SCORE_COLUMNS])


def _ordering_customers(summary: ibis.Table, settings: AnalysisSettings, today: ibis.Value) -> ibis.Table:
    """Per ordering customer: R, F, M, LTV, AOV, own mean interval, quintile scores, high LTV.

    The scores compare each customer with a few cut values (one row, from the distinct
    values): no sort of the customers and no join back, unlike rank() over all of them.
    """
    first_day = summary.first_order_at.date().epoch_days()
    last_day = summary.last_order_at.date().epoch_days()
    cuts = _top_values(summary, last_day, "_r", _QUINTILE_CUTS)
    cuts = cuts.cross_join(_top_values(summary, summary.frequency, "_f", _QUINTILE_CUTS))
    cuts = cuts.cross_join(_top_values(summary, summary.monetary, "_m", _QUINTILE_CUTS))
    if settings.high_ltv_min_yen <= 0:  # else an absolute threshold replaces the 2:8 rule
        share = settings.high_ltv_top_share
        cuts = cuts.cross_join(_top_values(summary, summary.revenue, "_ltv", {"": lambda n: (n * share).ceil()}))
    s = summary.cross_join(cuts)
    high_cut = ibis.literal(settings.high_ltv_min_yen, type="int64") if settings.high_ltv_min_yen > 0 else s._ltv
    return s.select(
        "customer_id", "first_order_at", "last_order_at", "orders", "revenue", "frequency", "monetary",
        recency_days=(today - last_day).cast("int64"),
        aov=ratio(s.revenue, s.orders),
        mean_interval_days=ibis.cases(
            (s.orders >= 2, ratio(last_day - first_day, s.orders - 1)), else_=ibis.null("float64")
        ),
        r_score=_score(last_day, s, "_r"),
        f_score=_score(s.frequency, s, "_f"),
        m_score=_score(s.monetary, s, "_m"),
        high_ltv=(s.revenue >= high_cut).fill_null(False),
    )


def _lost_signals(
    anchor: ibis.Table, tables: dict[str, ibis.Table], cut: AsOf, settings: AnalysisSettings
) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    """Cancelled subscriptions and the signals behind the lost reasons (docs/measures.md §2, 004).

    Each reason looks from `lost_lookback_days` before the last order up to the as-of date.
    Returns (customer_id, cancelled), (customer_id, unresolved_signal) and
    (customer_id, situation_signal), one row per customer concerned.
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
    detractor_answers = detractor_answers.filter(detractor_answers.score <= DETRACTOR_MAX).select("customer_id")
    unresolved = unresolved_contacts.union(detractor_answers).distinct().mutate(unresolved_signal=True)
    situation = since_anchor(events.filter(events.kind.isin(SITUATION_EVENTS)), "occurred_at")
    situation = situation.select("customer_id").distinct().mutate(situation_signal=True)
    return cancelled, unresolved, situation


def _first_word(text: ibis.Value, words: tuple[str, ...]) -> ibis.Value:
    """The first of `words` that `text` (lower-cased) holds, else NULL (a column, even for no words)."""
    if not words:
        return ibis.cases((text.isnull() & text.notnull(), text), else_=ibis.null("string"))
    lowered = text.lower()
    return ibis.cases(*[(lowered.contains(word), word) for word in words], else_=ibis.null("string"))


def _lost_words(
    anchor: ibis.Table, tables: dict[str, ibis.Table], cut: AsOf, settings: AnalysisSettings,
    lost_reasons: LostReasonSettings | None,
) -> ibis.Table:
    """What the customer said, read through the [lost_reasons] words (docs/measures.md#lost-reasons).

    In the same window as `_lost_signals`. One row per customer concerned: `said_reason` and
    `said_word` from the reason or note of their latest cancellation (the first list, in
    `LOST_REASONS` order, with a word in it); `word_<reason>`, the first word of each list found in
    the categories of their support contacts or the details of their other events (the smallest
    when several rows hold one).
    """
    if lost_reasons is None:
        from kizuna.analytics._settings import LostReasonSettings

        lost_reasons = LostReasonSettings()
    lists = {reason: getattr(lost_reasons, reason) for reason in LOST_REASONS}
    lookback = ibis.interval(days=settings.lost_lookback_days)
    events = tables["events"].filter(cut.before_end(tables["events"].occurred_at) & tables["events"].detail.notnull())
    contacts = tables["support_contacts"]
    contacts = contacts.filter(cut.before_end(contacts.opened_at) & contacts.category.notnull())

    def in_window(table: ibis.Table, when: str) -> ibis.Table:
        joined = table.left_join(anchor, "customer_id")
        return joined.filter(joined.last_order_at.isnull() | (joined[when] >= joined.last_order_at - lookback))

    # the reason or note of the latest cancellation in the window
    notes = in_window(events.filter(events.kind == "cancellation"), "occurred_at").select(
        "customer_id", "occurred_at", "detail")
    latest = notes.group_by("customer_id").aggregate(_latest=notes.occurred_at.max())
    note = notes.join(latest, (notes.customer_id == latest.customer_id) & (notes.occurred_at == latest._latest))
    note = note.select(customer_id=notes.customer_id, **{
        f"_said_{reason}": _first_word(notes.detail, words) for reason, words in lists.items()})
    said = note.select(
        "customer_id",
        said_reason=ibis.cases(*[(note[f"_said_{r}"].notnull(), r) for r in LOST_REASONS], else_=ibis.null("string")),
        said_word=ibis.coalesce(*[note[f"_said_{r}"] for r in LOST_REASONS]),
    )
    # support categories and the details of the other events
    texts = in_window(contacts, "opened_at").select("customer_id", text=_.category.cast("string")).union(
        in_window(events.filter(events.kind != "cancellation"), "occurred_at").select("customer_id", text=_.detail))
    words = texts.group_by("customer_id").aggregate(**{
        f"word_{reason}": _first_word(texts.text, words).min() for reason, words in lists.items()})
    both = words.outer_join(said, words.customer_id == said.customer_id)
    return both.select(customer_id=ibis.coalesce(words.customer_id, said.customer_id),
                       said_reason=said.said_reason, said_word=said.said_word,
                       **{f"word_{reason}": words[f"word_{reason}"] for reason in LOST_REASONS})
