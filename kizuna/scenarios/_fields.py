"""Personalisation fields of scenario messages (docs/measures.md §4), computed in the store as Ibis expressions.

Two tables, both as of a date (nothing after the end of that day is seen) and on any engine:

* `personal_fields`: one row per customer with what a message says about them — how long they
  have been with us, what they bought, the litres used and the money saved against the
  alternative (bottled water in the running example of seed 000: "¥◯ saved", "◯ L so far");
* `related_products`: for each customer, the products most often bought together with theirs
  (seed 001, one-to-one), for the dormant-customer re-approach.

Orders follow docs/measures.md §1: a cancelled order never counts; a returned one counts as an order with
its amount reduced by the refund, but its litres are not "used so far" (the goods went back).
Co-purchases are counted over completed orders only.
"""

from __future__ import annotations

import datetime as dt

import ibis
from ibis import _

from kizuna.analytics import AsOf, counted_orders

__all__ = ["FIELD_COLUMNS", "personal_fields", "related_products"]

# The columns of `personal_fields`, in order.
FIELD_COLUMNS = (
    "customer_id", "name", "tenure_days", "tenure_years", "orders_so_far", "spent_so_far", "litres_so_far",
    "money_saved", "first_order_at", "last_order_at", "last_product", "subscription_started_at",
)


def personal_fields(tables: dict[str, ibis.Table], as_of: dt.date, *, alternative_yen_per_l: int) -> ibis.Table:
    """One row per customer: the fields a scenario message may quote, as of the end of `as_of`.

    Parameters
    ----------
    tables
        The canonical tables (`Workspace.tables()`): customers, orders, order_items, products, events.
    as_of
        Orders, events and sign-ups after the end of this day are not seen.
    alternative_yen_per_l
        Price per litre of what the product replaces (settings ``alternative_yen_per_l``).

    Returns
    -------
    ibis.Table
        `FIELD_COLUMNS`: customer_id, name; tenure_days (days since the earliest of sign-up, first
        order and first subscription_start event; null when none is known) and tenure_years (whole
        calendar years over the same span); orders_so_far and spent_so_far (yen after refunds);
        litres_so_far (Σ quantity × volume_l of the items of orders not returned; 0 without volume
        data); money_saved (litres_so_far × alternative_yen_per_l, floored to whole yen, minus what
        was paid for those items, never below 0); first_order_at, last_order_at; last_product
        (the name of the lowest product_id among the items of the latest order; null without one);
        subscription_started_at (the first subscription_start event).

    Examples
    --------
    >>> fields = personal_fields(ws.tables(), dt.date(2026, 11, 1), alternative_yen_per_l=100)  # doctest: +SKIP
    >>> fields.filter(fields.customer_id == "C001").to_pyarrow().to_pylist()  # doctest: +SKIP
    """
    cut = AsOf(as_of)
    orders = counted_orders(tables["orders"], cut)
    summary = orders.group_by("customer_id").aggregate(
        orders_so_far=orders.count(),
        spent_so_far=orders.revenue.sum(),
        first_order_at=orders.ordered_at.min(),
        last_order_at=orders.ordered_at.max(),
    )
    litres = _litres(orders, tables["order_items"], tables["products"])
    last_product = _last_product(orders, summary, tables["order_items"], tables["products"])
    events = tables["events"]
    subscriptions = (
        events.filter(events.kind == "subscription_start", cut.before_end(events.occurred_at))
        .group_by("customer_id")
        .aggregate(subscription_started_at=_.occurred_at.min())
    )
    customers = tables["customers"]
    customers = customers.select(
        "customer_id", "name",
        _signed_up_at=ibis.cases((cut.before_end(customers.signed_up_at), customers.signed_up_at),
                                 else_=ibis.null("timestamp")),
    )
    t = (
        customers.left_join(summary, "customer_id")
        .left_join(litres, "customer_id")
        .left_join(last_product, "customer_id")
        .left_join(subscriptions, "customer_id")
    )
    # the earliest known start; LEAST treats NULLs differently across engines, so none reach it
    starts = (t._signed_up_at, t.first_order_at, t.subscription_started_at)
    since = ibis.least(*(ibis.coalesce(s, *(o for o in starts if o is not s)) for s in starts)).date()
    saved = (t._litres.fill_null(0.0) * alternative_yen_per_l).floor().cast("int64") - t._paid.fill_null(0)
    return t.select(
        "customer_id", "name",
        tenure_days=(ibis.literal(as_of) - since).cast("int64"),
        tenure_years=_whole_years(since, as_of),
        orders_so_far=t.orders_so_far.fill_null(0).cast("int64"),
        spent_so_far=t.spent_so_far.fill_null(0).cast("int64"),
        litres_so_far=t._litres.fill_null(0.0).cast("float64"),
        money_saved=ibis.greatest(saved, 0).cast("int64"),
        first_order_at=t.first_order_at,
        last_order_at=t.last_order_at,
        last_product=t.last_product,
        subscription_started_at=t.subscription_started_at,
    )


def related_products(tables: dict[str, ibis.Table], as_of: dt.date, *, top: int = 3) -> ibis.Table:
    """Per customer, the `top` products most bought together with theirs, that they have not bought.

    A product's score for a customer is the number of completed orders (of all customers, up to
    `as_of`) holding it together with one of the customer's products, summed over the customer's
    distinct products. Ties go to the lower product_id. The product pairs are counted once over
    all orders, then joined to each customer's distinct products, so the work grows with the
    orders and with customers × their products × partners, never with customers².

    Returns
    -------
    ibis.Table
        customer_id, rank (1 … top), product_id, name; customers without a related product are absent.

    Examples
    --------
    >>> related_products(ws.tables(), dt.date(2026, 11, 1), top=3).to_pyarrow()  # doctest: +SKIP
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}.")
    cut = AsOf(as_of)
    orders = tables["orders"]
    completed = orders.filter(cut.before_end(orders.ordered_at), orders.status.fill_null("completed") == "completed")
    items = tables["order_items"]
    bought = items.inner_join(completed.select("order_id", "customer_id"), "order_id").select(
        "order_id", "customer_id", "product_id"
    ).distinct()
    left = bought.select(order_id="order_id", product_id="product_id")
    right = bought.select(_order="order_id", other_id="product_id")
    pairs = (
        left.inner_join(right, [left.order_id == right._order, left.product_id != right.other_id])
        .group_by("product_id", "other_id")
        .aggregate(together=_.count())
    )
    mine = bought.select("customer_id", "product_id").distinct()
    owned = mine.select(_customer="customer_id", _owned="product_id")
    scored = (
        mine.inner_join(pairs, "product_id")
        .group_by("customer_id", "other_id")
        .aggregate(score=_.together.sum())
    )
    scored = scored.anti_join(owned, [scored.customer_id == owned._customer, scored.other_id == owned._owned])
    ranked = scored.mutate(
        rank=ibis.row_number().over(group_by=scored.customer_id, order_by=[ibis.desc(scored.score), scored.other_id])
        + 1
    )
    ranked = ranked.filter(ranked["rank"] <= top)
    products = tables["products"].select(_product="product_id", name="name")
    joined = ranked.left_join(products, ranked.other_id == products._product)
    return joined.select(
        "customer_id", rank=joined["rank"].cast("int64"), product_id=joined.other_id, name=joined.name
    )


def _litres(orders: ibis.Table, items: ibis.Table, products: ibis.Table) -> ibis.Table:
    """Per customer: litres of the items of orders kept (not returned), and what was paid for them."""
    kept = orders.filter(orders.status.fill_null("completed") != "returned").select("order_id", "customer_id")
    volumes = products.select("product_id", "volume_l")
    lines = items.inner_join(kept, "order_id").inner_join(volumes, "product_id")
    lines = lines.filter(lines.volume_l > 0)
    return lines.group_by("customer_id").aggregate(
        _litres=(lines.quantity.cast("float64") * lines.volume_l).sum(),
        _paid=(lines.quantity * lines.unit_price).sum().cast("int64"),
    )


def _last_product(orders: ibis.Table, summary: ibis.Table, items: ibis.Table, products: ibis.Table) -> ibis.Table:
    """Per customer: the name of the first item (lowest product_id) of the latest order.

    Orders at the same latest moment are told apart by the higher order_id, so every engine
    picks the same one; joins on the latest moment, not a window over all orders.
    """
    latest = summary.select(_customer="customer_id", _at="last_order_at")
    candidates = orders.inner_join(
        latest, [orders.customer_id == latest._customer, orders.ordered_at == latest._at]
    )
    last = candidates.group_by("customer_id").aggregate(order_id=_.order_id.max())
    first_item = (
        last.inner_join(items.select("order_id", "product_id"), "order_id")
        .group_by("customer_id")
        .aggregate(product_id=_.product_id.min())
    )
    names = products.select("product_id", last_product="name")
    return first_item.inner_join(names, "product_id").select("customer_id", "last_product")


def _whole_years(since: ibis.Value, as_of: dt.date) -> ibis.Value:
    """Whole calendar years from `since` (a date) to `as_of`: 1 on the first anniversary, not before."""
    before_anniversary = (since.month() > as_of.month) | ((since.month() == as_of.month) & (since.day() > as_of.day))
    return (as_of.year - since.year() - ibis.cases((before_anniversary, 1), else_=0)).cast("int64")
