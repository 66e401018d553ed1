"""Simulating the demo business: who signs up, who subscribes, what they buy, when they leave.

The story is the BG/NBD one, with a subscription on top. Every customer draws a hidden
satisfaction `z` (standard normal). Subscribers (about 60 %) receive 12 L bottles on a
fixed cycle until they cancel; their lifetime is exponential with a mean that grows with
satisfaction, so churned customers are on average the unhappy ones. About one subscriber
in fourteen is *captive*: a large household on a long contract that keeps buying a lot
while being unhappy - the spec's 離脱候補者 (churn candidates: high LTV, detractor). About
one in thirty is a small office taking 6-10 bottles a delivery, the top of the RFM ranks.
Spot buyers buy at a gamma-distributed Poisson rate and drop out after each purchase
with a beta-distributed probability, so some buy once and some for years.

Everything is vectorised with numpy; times are int64 seconds of local wall-clock time
(the workspace timezone) since 1970-01-01, and every one of them falls before midnight
at the start of the as-of day, so nothing happens after the as-of date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from kizuna.demo._catalog import ADDON_IDS, ADDON_WEIGHTS, PRODUCTS

__all__ = ["DAY", "YEAR", "Business", "Orders", "People", "at_hour", "first_per_customer",
           "simulate_business", "sort_by", "spread", "within"]

DAY = 86_400
YEAR = 365 * DAY
MONTH = YEAR // 12
HISTORY_YEARS = 5

# Share of orders per hour of the day (evening peak of home shopping)
ORDER_HOURS = np.array([1, .5, .3, .2, .2, .4, 1, 2, 3, 4, 4, 4, 5, 5, 4, 4, 4, 5, 6, 7, 8, 8, 6, 3])
PRODUCT_INDEX = {row[0]: i for i, row in enumerate(PRODUCTS)}
PRICES = np.array([row[3] for row in PRODUCTS], dtype=np.int64)
ADDONS = np.array([PRODUCT_INDEX[p] for p in ADDON_IDS])
ADDON_P = np.array(ADDON_WEIGHTS) / sum(ADDON_WEIGHTS)
CHANNELS = ("web", "app", "phone")
DELIVERY, ADDON_ORDER, SPOT = 0, 1, 2  # why an order was placed


@dataclass
class People:
    """Hidden traits and life dates of every customer (index = customer number - 1)."""

    signup: np.ndarray
    is_sub: np.ndarray
    captive: np.ndarray  # heavy, long-lived and unhappy: the churn candidates
    z: np.ndarray  # satisfaction
    cycle: np.ndarray  # subscribers: seconds between deliveries
    bottles: np.ndarray  # subscribers: bottles per delivery
    water: np.ndarray  # subscribers: product index of their bottle
    server: np.ndarray  # subscribers: product index of the rental fee, -1 when they own the server
    churn: np.ndarray  # subscribers: when they cancel (may lie beyond the as-of date)
    first_delivery: np.ndarray
    sub_end: np.ndarray  # subscribers: min(churn, end)
    change_at: np.ndarray  # plan change time, or a time after `end` when there is none
    change_by: np.ndarray  # bottles added (+1) or dropped (-1) at the plan change


@dataclass
class Orders:
    """Orders sorted by time, with their items (`item_order` indexes the orders)."""

    customer: np.ndarray
    at: np.ndarray
    amount: np.ndarray
    status: np.ndarray  # 0 completed, 1 cancelled, 2 returned
    refund: np.ndarray  # -1 = none
    channel: np.ndarray
    shipped: np.ndarray  # -1 = not shipped
    item_order: np.ndarray
    item_product: np.ndarray
    item_quantity: np.ndarray


@dataclass
class Business:
    """The whole simulated history; `active_start` / `active_end` bound each relationship."""

    end: int
    people: People
    orders: Orders
    first_order: np.ndarray  # -1 = never ordered
    active_start: np.ndarray
    active_end: np.ndarray

    @property
    def has_order(self) -> np.ndarray:
        return self.first_order >= 0

    @property
    def churned(self) -> np.ndarray:
        """Subscribers who cancelled before the as-of date."""
        return self.people.is_sub & (self.people.churn < self.end)


def epoch_seconds(day: dt.date) -> int:
    """Seconds from 1970-01-01 to midnight starting `day` (local wall-clock)."""
    return (day - dt.date(1970, 1, 1)).days * DAY


def first_per_customer(n: int, customer: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Each customer's earliest time in `at`, -1 for customers without one."""
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, customer, at)
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def spread(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-owner counts, the owner of each generated row and its rank within the owner."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def sort_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """The permutation of `np.lexsort((minor, major))` (ties keep their order).

    The two integer keys are folded into one int64 key, whose stable sort is several times
    faster than `lexsort` on two keys; `lexsort` remains where the folded key would overflow.
    """
    if len(major) == 0:
        return np.arange(0, dtype=np.intp)
    lo_major, lo_minor = major.min(), minor.min()
    span = int(minor.max()) - int(lo_minor) + 1
    if (int(major.max()) - int(lo_major) + 1) * span >= np.iinfo(np.int64).max:
        return np.lexsort((minor, major))
    key = (major.astype(np.int64) - lo_major) * span + (minor.astype(np.int64) - lo_minor)
    return np.argsort(key, kind="stable")


def within(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform whole second in [lo, hi); callers make sure that hi > lo."""
    return lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)


def at_hour(rng: np.random.Generator, t: np.ndarray, weights: np.ndarray = ORDER_HOURS) -> np.ndarray:
    """The same day as `t`, at a time of day drawn from hourly `weights`."""
    hours = rng.choice(24, len(t), p=weights / weights.sum())
    return t - t % DAY + hours * 3600 + rng.integers(0, 3600, len(t))


def simulate_business(n: int, rng: np.random.Generator, as_of: dt.date) -> Business:
    """Draw the customers' traits and their orders."""
    end = epoch_seconds(as_of)
    people = _people(n, rng, end)
    orders = _orders(people, rng, end)
    first = first_per_customer(n, orders.customer, orders.at)
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, orders.customer, orders.at)
    has = first >= 0
    active_start = np.where(has, first, people.signup)
    spot_end = np.minimum(np.where(has, last, people.signup) + 90 * DAY, end)
    active_end = np.where(people.is_sub, np.maximum(people.sub_end, active_start + DAY), spot_end)
    return Business(end, people, orders, first, active_start, np.minimum(active_end, end))


def _people(n: int, rng: np.random.Generator, end: int) -> People:
    span = HISTORY_YEARS * YEAR
    growth = 0.35 / YEAR  # sign-ups grow about 40 % a year
    offset = np.log1p(rng.random(n) * np.expm1(growth * span)) / growth
    # sorted, so customer numbers follow the order of sign-up as in a real shop
    signup = at_hour(rng, np.sort(end - span + offset.astype(np.int64)))
    is_sub = rng.random(n) < 0.6
    captive = is_sub & (rng.random(n) < 0.07)
    z = np.where(captive, rng.normal(-1.8, 0.4, n), rng.standard_normal(n))

    # Small offices, clinics and salons: many bottles every two weeks, the top of the RFM ranks.
    office = is_sub & ~captive & (rng.random(n) < 0.03)
    cycle = np.where(office, rng.choice([14, 30], n, p=[.7, .3]),
                     rng.choice([14, 30, 45, 60], n, p=[.15, .6, .15, .1])) * DAY
    household = rng.choice([1, 2, 3, 4], n, p=[.2, .45, .25, .1])
    bottles = np.where(office, rng.integers(6, 11, n), np.where(captive, rng.choice([3, 4, 5], n), household))
    water = rng.choice([PRODUCT_INDEX["W12-NAT"], PRODUCT_INDEX["W12-RO"]], n, p=[.65, .35])
    server = rng.choice([PRODUCT_INDEX["SRV-STD"], PRODUCT_INDEX["SRV-PRM"], -1], n, p=[.5, .3, .2])
    mean_life = np.where(captive, 96.0, np.where(office, 48.0, 30.0) * np.exp(0.45 * z)) * MONTH
    churn = signup + (rng.exponential(1.0, n) * mean_life).astype(np.int64)
    first_delivery = signup + (rng.uniform(2, 7, n) * DAY).astype(np.int64)
    sub_end = np.where(is_sub, np.minimum(churn, end), signup)

    tenure = sub_end - first_delivery
    changes = is_sub & (rng.random(n) < 0.15) & (tenure > 120 * DAY)
    change_at = first_delivery + 60 * DAY + (rng.random(n) * (tenure - 60 * DAY)).astype(np.int64)
    change_at = np.where(changes, change_at, end + YEAR)  # after the end: no change
    change_by = np.where(bottles <= 1, 1, rng.choice([-1, 1], n))
    return People(signup, is_sub, captive, z, cycle, bottles, water, server, churn, first_delivery,
                  sub_end, change_at, change_by)


def _orders(p: People, rng: np.random.Generator, end: int) -> Orders:
    n = len(p.signup)
    # Subscription deliveries: first delivery, then every cycle until the subscription ends.
    live = p.is_sub & (p.first_delivery < p.sub_end)
    counts = np.where(live, (p.sub_end - p.first_delivery) // p.cycle + 1, 0)
    owner, k = spread(counts)
    due = p.first_delivery[owner] + k * p.cycle[owner] + rng.integers(0, 2 * DAY, len(owner))
    delivery_at = at_hour(rng, due)
    keep = delivery_at < p.sub_end[owner]
    deliveries = (owner[keep], delivery_at[keep])

    # Subscribers' extra add-on orders: a Poisson process at a gamma-distributed rate.
    addon_rate = rng.gamma(0.6, 1.2 / 0.6, n) / YEAR
    counts = np.where(live, rng.poisson(addon_rate * np.maximum(p.sub_end - p.first_delivery, 0)), 0)
    owner, _ = spread(counts)
    addon_at = at_hour(rng, within(rng, p.first_delivery[owner], p.sub_end[owner]))
    keep = addon_at < p.sub_end[owner]
    addons = (owner[keep], addon_at[keep])

    # Spot buyers (BG/NBD): buy at a Poisson rate while alive; after each purchase, drop out with
    # probability `drop`. The first order is the sign-up itself.
    spot = ~p.is_sub
    rate = rng.gamma(0.6, 4.0 / 0.6, n) / YEAR
    drop = np.clip(rng.beta(1.2, 4.0, n) * np.exp(-0.4 * p.z), 0.02, 0.95)
    repeats = rng.geometric(drop) - 1  # purchases made before dropping out
    window = np.maximum(end - p.signup, 0)
    owner, _ = spread(np.where(spot, rng.poisson(rate * window), 0))
    arrival = at_hour(rng, within(rng, p.signup[owner], p.signup[owner] + window[owner]))
    order = sort_by(owner, arrival)
    owner, arrival = owner[order], arrival[order]
    _, rank = spread(np.bincount(owner, minlength=n))
    keep = (rank < repeats[owner]) & (arrival > p.signup[owner])
    first_buyers = np.flatnonzero(spot)
    spots = (np.concatenate([first_buyers, owner[keep]]),
             np.concatenate([p.signup[first_buyers], arrival[keep]]))

    customer = np.concatenate([deliveries[0], addons[0], spots[0]])
    at = np.concatenate([deliveries[1], addons[1], spots[1]])
    why = np.concatenate([np.full(len(deliveries[0]), DELIVERY), np.full(len(addons[0]), ADDON_ORDER),
                          np.full(len(spots[0]), SPOT)])
    order = sort_by(at, customer)
    customer, at, why = customer[order], at[order], why[order]
    items = _items(p, rng, customer, at, why)
    return _order_facts(p, rng, end, customer, at, *items)


def _items(
    p: People, rng: np.random.Generator, customer: np.ndarray, at: np.ndarray, why: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order lines in up to four slots: water, server rental, and one or two add-ons."""
    m = len(customer)
    delivery, spot = why == DELIVERY, why == SPOT
    # water: subscribers their bottle (plan changes move the count), spot buyers 7 L packs
    bottles = p.bottles[customer] + np.where(at >= p.change_at[customer], p.change_by[customer], 0)
    pack_single = rng.random(m) < 0.6
    spot_water = spot & (rng.random(m) < 0.75)
    water_product = np.where(delivery, p.water[customer],
                             np.where(pack_single, PRODUCT_INDEX["W7-PACK"], PRODUCT_INDEX["W7-4PK"]))
    packs = np.where(pack_single, rng.integers(2, 7, m), rng.integers(1, 3, m))
    water_qty = np.where(delivery, bottles, packs)
    has_water = delivery | spot_water
    has_server = delivery & (p.server[customer] >= 0)
    has_addon = np.where(delivery, rng.random(m) < 0.12, np.where(spot_water, rng.random(m) < 0.25, True))
    has_second = has_addon & (rng.random(m) < 0.25)
    first_addon = rng.choice(len(ADDONS), m, p=ADDON_P)
    second_addon = (first_addon + rng.integers(1, len(ADDONS), m)) % len(ADDONS)  # never the first
    addon_qty = 1 + (rng.random(m) < 0.2)
    # One row of four slots per order; reading the filled slots row by row gives the lines in
    # order of their order, then of their slot, with no sort.
    filled = np.column_stack([has_water, has_server, has_addon, has_second])
    product = np.empty((m, 4), dtype=np.int16)  # small ints: less memory to write and read
    product[:, 0], product[:, 1] = water_product, p.server[customer]
    product[:, 2], product[:, 3] = ADDONS[first_addon], ADDONS[second_addon]
    quantity = np.ones((m, 4), dtype=np.int16)
    quantity[:, 0], quantity[:, 2] = water_qty, addon_qty
    order, _ = np.nonzero(filled)
    return order, product[filled].astype(np.int64), quantity[filled].astype(np.int64)


def _order_facts(
    p: People, rng: np.random.Generator, end: int, customer: np.ndarray, at: np.ndarray,
    item_order: np.ndarray, item_product: np.ndarray, item_quantity: np.ndarray,
) -> Orders:
    m = len(customer)
    amount = np.bincount(item_order, weights=item_quantity * PRICES[item_product], minlength=m)
    amount = np.rint(amount).astype(np.int64)
    z = p.z[customer]
    u = rng.random(m)
    cancel_p = 0.025 * np.exp(-0.3 * z)
    return_p = 0.012 * np.exp(-0.4 * z)
    status = np.where(u < cancel_p, 1, np.where(u < cancel_p + return_p, 2, 0))
    shipped = at + (rng.uniform(0.5, 3.0, m) * DAY).astype(np.int64)
    not_shipped = (status == 1) | (shipped >= end)
    status = np.where(not_shipped & (status == 2), 0, status)  # only what left the warehouse comes back
    shipped = np.where(not_shipped, -1, shipped)
    partial = np.maximum(np.round(amount * rng.uniform(0.2, 0.8, m), -1).astype(np.int64), 10)
    refund = np.where(rng.random(m) < 0.6, amount, np.minimum(partial, amount))
    refund = np.where(status == 2, refund, -1)
    preferred = rng.choice(len(CHANNELS), len(p.signup), p=[.55, .3, .15])
    channel = np.where(rng.random(m) < 0.85, preferred[customer], rng.integers(0, len(CHANNELS), m))
    return Orders(customer, at, amount, status, refund, channel, shipped,
                  item_order, item_product, item_quantity)
