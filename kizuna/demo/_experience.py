"""What customers said and lived through: NPS answers, support contacts and profile events.

All three follow the hidden satisfaction `z` of `_simulate`: unhappy customers score low,
contact support more often, wait longer for a resolution and complain more; churned
subscribers often had a life event (moved, married, household change) shortly before
they cancelled, which is what the spec's lost-reason rules look for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kizuna.analytics import DETRACTOR_MAX, PASSIVE_MAX
from kizuna.demo._arrow import join, numbered, pick, stamps, text
from kizuna.demo._catalog import (
    CANCEL_REASONS,
    COMMENTS,
    PLACES,
    PRODUCTS,
    SUPPORT_CATEGORIES,
    TOUCHPOINTS,
)
from kizuna.demo._profiles import ids_of
from kizuna.demo._simulate import DAY, YEAR, Business, at_hour, first_per_customer, sort_by, spread, within

__all__ = ["events_table", "nps_table", "support_table"]

SUPPORT_CHANNELS = ("phone", "chat", "email", "chatbot", "faq")
SUPPORT_HOURS = np.array([0, 0, 0, 0, 0, 0, .2, .5, 2, 6, 7, 7, 5, 6, 6, 6, 5, 5, 4, 3, 2, 1, .5, .2])
# median hours to resolve, per channel: a call ends with an answer, an e-mail waits in a queue
MEDIAN_HOURS = np.array([0.3, 1.0, 18.0, 0.05, 0.02])


def nps_table(b: Business, rng: np.random.Generator) -> pa.Table:
    """Answers to a survey that reaches customers at random times over their relationship.

    Each customer answers at a steady rate from a week after their first order to the end of the
    relationship, and at least for the three months after the first order, when a one-time
    buyer gets the post-purchase survey (a Poisson process: half the customers answer within
    any year, 70 % of the captive ones), so that how many recent answers there are does not
    depend on the demo's as-of date: a model trained at an earlier date meets the same mix of
    answers later, as in a real shop. Unhappy customers score lower, and lower again in the 120
    days before they cancel.
    """
    p = b.people
    start = b.active_start + 7 * DAY
    stop = np.minimum(np.maximum(b.active_end, b.active_start + 90 * DAY), b.end)
    span = np.where(b.has_order, np.maximum(stop - start, 0), 0)
    rate = -np.log1p(-np.where(p.captive, 0.7, 0.5)) / YEAR  # P(at least one answer in a year)
    counts = np.minimum(rng.poisson(rate * span), _MOST_ANSWERS)
    owner, _ = spread(counts)
    # people answer by day
    at = at_hour(rng, within(rng, start[owner], np.maximum(start[owner] + span[owner], start[owner] + 1)))
    keep = at < stop[owner]
    owner, at = owner[keep], at[keep]
    order = sort_by(at, owner)
    customer, at = owner[order], at[order]
    m = len(customer)
    z = p.z[customer]
    # whether or not the cancellation falls before the as-of date: the answer does not know the date
    near_churn = p.is_sub[customer] & (p.churn[customer] - at < 120 * DAY)
    score = np.rint(7.8 + 1.7 * z + rng.normal(0, 1.1, m) - 1.5 * near_churn)
    score = np.clip(score, 0, 10).astype(np.int64)
    klass = np.where(score <= DETRACTOR_MAX, 0, np.where(score <= PASSIVE_MAX, 1, 2))  # the comment fits the class
    comments = [c for k in ("detractor", "passive", "promoter") for c in COMMENTS[k]]
    sizes = np.array([len(COMMENTS[k]) for k in ("detractor", "passive", "promoter")])
    offsets = np.cumsum(sizes) - sizes
    comment = offsets[klass] + (rng.random(m) * sizes[klass]).astype(np.int64)
    return pa.table({
        "customer_id": ids_of(customer),
        "answered_at": stamps(at),
        "score": pa.array(score),
        "comment": pick(comments, comment, rng.random(m) < 0.35),
        "touchpoint": pick(TOUCHPOINTS, rng.choice(len(TOUCHPOINTS), m, p=[.35, .25, .15, .15, .10])),
    })


# enough for a long-lived customer; a cap keeps the table small
_MOST_ANSWERS = 8


def support_table(b: Business, rng: np.random.Generator) -> pa.Table:
    """Contacts at a rate that rises as satisfaction falls; some still open at the as-of date."""
    p = b.people
    rate = (0.6 * np.exp(-0.6 * p.z) + 0.8 * p.captive) / YEAR
    start, stop = b.active_start, np.minimum(b.active_end + 30 * DAY, b.end)
    counts = np.minimum(rng.poisson(rate * np.maximum(stop - start, 0)), 40)
    owner, _ = spread(np.where(stop > start, counts, 0))
    opened = at_hour(rng, within(rng, start[owner], stop[owner]), SUPPORT_HOURS)
    keep = opened < stop[owner]
    owner, opened = owner[keep], opened[keep]
    order = sort_by(opened, owner)
    owner, opened = owner[order], opened[order]
    m = len(owner)
    z = p.z[owner]
    channel = rng.choice(len(SUPPORT_CHANNELS), m, p=[.35, .25, .25, .10, .05])
    hours = MEDIAN_HOURS[channel] * np.exp(-0.5 * z) * rng.lognormal(0.0, 1.0, m)
    resolved = opened + np.maximum((hours * 3600).astype(np.int64), 60)
    stuck = rng.random(m) < 0.015 + 0.05 * (z < -1)
    is_open = stuck | (resolved >= b.end)
    category = rng.choice(len(SUPPORT_CATEGORIES), m, p=[.25, .18, .15, .12, .08, .15, .07])
    complaint = rng.random(m) < np.clip(0.06 * np.exp(-0.9 * z), 0, 0.7)
    return pa.table({
        "contact_id": numbered("S", np.arange(1, m + 1), 8),
        "customer_id": ids_of(owner),
        "opened_at": stamps(opened),
        "channel": pick(SUPPORT_CHANNELS, channel),
        "resolved_at": stamps(resolved, ~is_open),
        "status": pick(("resolved", "open"), is_open.astype(np.int64)),
        "category": pick(SUPPORT_CATEGORIES, category),
        "is_complaint": pa.array(complaint),
    })


def events_table(b: Business, rng: np.random.Generator) -> pa.Table:
    """At most one event of each kind per customer, so (customer, time, kind) is a key."""
    p, o = b.people, b.orders
    n = len(p.z)
    parts: list[tuple[np.ndarray, np.ndarray, pa.Array, pa.Array]] = []  # who, when, kind, detail

    def add(mask: np.ndarray, at: np.ndarray, kind: str, detail: pa.Array | str) -> None:
        who = np.flatnonzero(mask)
        detail = pa.repeat(pa.scalar(detail), len(who)) if isinstance(detail, str) else detail.filter(pa.array(mask))
        parts.append((who, at[mask], pa.repeat(pa.scalar(kind), len(who)), detail))

    names = [row[1] for row in PRODUCTS]
    plan = join(pick(names, p.water), " ", text(p.bottles), "本/", text(p.cycle // DAY), "日")
    add(p.is_sub, p.signup, "subscription_start", plan)
    shipped = o.shipped >= 0
    first_ship = first_per_customer(n, o.customer[shipped], o.shipped[shipped])
    arrived = first_ship + DAY
    add(p.is_sub & (first_ship >= 0) & (arrived < b.end), arrived, "first_delivery", "初回お届け")
    add(b.churned, p.churn, "cancellation", pick(CANCEL_REASONS, rng.integers(0, len(CANCEL_REASONS), n)))
    before = p.bottles
    after = before + p.change_by
    add(p.change_at < p.sub_end, p.change_at, "plan_change",
        join(text(before), "本→", text(after), "本"))

    span_lo, span_hi = b.active_start + 7 * DAY, b.active_end
    some_time = within(rng, span_lo, np.maximum(span_hi, span_lo + 1))
    stars = np.clip(np.rint(3.6 + 0.9 * p.z + rng.normal(0, 0.6, n)), 1, 5).astype(np.int64)
    add(b.has_order & (span_lo < span_hi) & (rng.random(n) < 0.18), some_time, "review",
        join("★", text(stars)))
    referral_at = within(rng, span_lo, np.maximum(span_hi, span_lo + 1))
    add(b.has_order & (span_lo < span_hi) & (rng.random(n) < 0.03 + 0.12 * (p.z > 0.8)), referral_at,
        "referral", "友人紹介 (紹介コード利用)")

    # Life events: each kind at a steady yearly rate over the relationship, and more in the 90 days before
    # a subscriber cancels. Neither depends on the as-of date (a cancellation after it has its life event
    # before it all the same), so the same mix of events meets a model trained at an earlier date.
    places = [place for place, _, _ in PLACES]
    life = (
        ("moved", 0.05, 0.12, join("転居先: ", pick(places, rng.integers(0, len(places), n)))),
        ("married", 0.02, 0.04, "結婚"),
        ("household_change", 0.03, 0.08,
         pick(("出産", "子どもの独立", "親との同居"), rng.integers(0, 3, n))),
    )
    span = np.maximum(b.active_end - b.active_start, 0)
    for kind, per_year, near, detail in life:
        u = rng.random(n)
        near_churn = p.is_sub & (u < near)
        # at most one event of a kind per customer: a Poisson process's chance of one or more
        anytime = ~near_churn & (rng.random(n) < -np.expm1(-per_year * span / YEAR)) & (span > 0)
        when = np.where(
            near_churn,
            within(rng, p.churn - 90 * DAY, p.churn),
            within(rng, b.active_start, np.maximum(b.active_end, b.active_start + 1)),
        )
        seen = (when >= b.active_start) & (when < b.active_end)
        add((near_churn | anytime) & seen, when, kind, detail)

    who = np.concatenate([w for w, _, _, _ in parts])
    at = np.concatenate([t for _, t, _, _ in parts])
    kind = pa.concat_arrays([k for _, _, k, _ in parts])
    detail = pa.concat_arrays([d for _, _, _, d in parts])
    order = sort_by(at, who)
    take = pa.array(order)
    return pa.table({
        "customer_id": ids_of(who[order]),
        "occurred_at": stamps(at[order]),
        "kind": kind.take(take),
        "detail": detail.take(take),
    })
