"""Personalisation fields of scenario messages (docs/measures.md §4), computed in the store as Ibis expressions.

Two tables, on any engine:

* `personal_fields`: one row per customer with what a message says about them — how long they
  have been with us, what they bought, the litres used and the money saved against the
  alternative (bottled water in the running example of seed 000: "¥◯ saved", "◯ L so far") —
  as of the end of a day; `occasion_fields` the same for (customer, moment) pairs, each as of
  its own moment, so that the thank-you for an order counts the orders up to that one and
  not those placed since (docs/measures.md#templates);
* `related_products`: for each customer, the products most often bought together with theirs
  (seed 001, one-to-one), for the dormant-customer re-approach.

Orders follow docs/measures.md §1: a cancelled order never counts; a returned one counts as an order with
its amount reduced by the refund, but its litres are not "used so far" (the goods went back).
Co-purchases are counted over completed orders only.
"""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
from ibis import _

from kizuna.analytics import AsOf, counted_orders

__all__ = ["FIELD_COLUMNS", "OCCASION_FIELD_COLUMNS", "day_end", "moment_fields", "occasion_fields", "personal_fields",
           "related_products"]

# The columns of `personal_fields`, in order.
FIELD_COLUMNS = (
    "customer_id", "name", "tenure_days", "tenure_years", "orders_so_far", "spent_so_far", "litres_so_far",
    "money_saved", "first_order_at", "last_order_at", "last_product", "subscription_started_at",
)
# The columns of `occasion_fields`: the moment each row is as of follows the customer.
OCCASION_FIELD_COLUMNS = ("customer_id", "seen_until", *FIELD_COLUMNS[1:])


def day_end(day: dt.date) -> dt.datetime:
    """The last moment of `day` the store can hold (times are kept to the microsecond)."""
    return dt.datetime.combine(day, dt.time.max)


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
    customers = tables["customers"]
    cuts = customers.select("customer_id", seen_until=ibis.literal(day_end(as_of), type="timestamp"))
    return _fields(tables, cuts, as_of, alternative_yen_per_l).select(*FIELD_COLUMNS)


def occasion_fields(tables: dict[str, ibis.Table], cuts: pa.Table, *, alternative_yen_per_l: int) -> ibis.Table:
    """The fields of `personal_fields` for each (customer, moment) of `cuts`, each as of its moment.

    `cuts` has columns customer_id and seen_until (a local wall-clock timestamp): what happened
    at or before it is seen, nothing after (an order's thank-you: the order's own moment; an
    anniversary: the end of its day, `day_end`). A customer may appear at several moments.
    Customers not in the store are absent.

    Returns
    -------
    ibis.Table
        `OCCASION_FIELD_COLUMNS`: customer_id, seen_until, then the fields of `FIELD_COLUMNS`,
        tenure counted up to the date of seen_until.

    Examples
    --------
    >>> cuts = pa.table({"customer_id": ["C001"], "seen_until": [dt.datetime(2026, 10, 3, 14, 5)]})  # doctest: +SKIP
    >>> occasion_fields(ws.tables(), cuts, alternative_yen_per_l=100).to_pyarrow()  # doctest: +SKIP
    """
    cuts = cuts.select(["customer_id", "seen_until"]).cast(
        pa.schema([("customer_id", pa.string()), ("seen_until", pa.timestamp("us"))]))
    last = max(cuts.column("seen_until").to_pylist()).date() if cuts.num_rows else dt.date(1970, 1, 1)
    return moment_fields(tables, ibis.memtable(cuts), last, alternative_yen_per_l=alternative_yen_per_l)


def moment_fields(tables: dict[str, ibis.Table], moments: ibis.Table, last: dt.date, *, alternative_yen_per_l: int,
                  carry: tuple[str, ...] = ()) -> ibis.Table:
    """`occasion_fields` for the distinct (customer_id, seen_until) of `moments`, an expression (so that the
    moments can be worked out in the engine, an order's from the order), with the customers' columns
    `carry` beside them. No moment may be after the end of `last`.

    Returns
    -------
    ibis.Table
        `OCCASION_FIELD_COLUMNS`, then `carry`.
    """
    cuts = moments.select("customer_id", "seen_until").distinct()
    return _fields(tables, cuts, last, alternative_yen_per_l, carry).select(*OCCASION_FIELD_COLUMNS, *carry)


def _fields(tables: dict[str, ibis.Table], cuts: ibis.Table, last: dt.date, alternative_yen_per_l: int,
            carry: tuple[str, ...] = ()) -> ibis.Table:
    """The fields per row of `cuts` (customer_id, seen_until), with the customers' columns `carry`; `last` is
    the latest day of seen_until."""
    keys = ["customer_id", "seen_until"]
    orders = counted_orders(tables["orders"], AsOf(last)).inner_join(cuts, "customer_id")
    orders = orders.filter(orders.ordered_at <= orders.seen_until)
    summary = orders.group_by(keys).aggregate(
        orders_so_far=orders.count(),
        spent_so_far=orders.revenue.sum(),
        first_order_at=orders.ordered_at.min(),
        last_order_at=orders.ordered_at.max(),
    )
    litres = _litres(orders, tables["order_items"], tables["products"])
    last_product = _last_product(orders, summary, tables["order_items"], tables["products"])
    events = tables["events"]
    starts = events.filter(events.kind == "subscription_start").inner_join(cuts, "customer_id")
    subscriptions = (
        starts.filter(starts.occurred_at <= starts.seen_until)
        .group_by(keys)
        .aggregate(subscription_started_at=_.occurred_at.min())
    )
    customers = tables["customers"].inner_join(cuts, "customer_id")
    customers = customers.select(
        "customer_id", "seen_until", "name", *carry,
        _signed_up_at=ibis.cases((customers.signed_up_at <= customers.seen_until, customers.signed_up_at),
                                 else_=ibis.null("timestamp")),
    )
    t = (
        customers.left_join(summary, keys)
        .left_join(litres, keys)
        .left_join(last_product, keys)
        .left_join(subscriptions, keys)
    )
    # the earliest known start; LEAST treats NULLs differently across engines, so none reach it
    begins = (t._signed_up_at, t.first_order_at, t.subscription_started_at)
    since = ibis.least(*(ibis.coalesce(s, *(o for o in begins if o is not s)) for s in begins)).date()
    day = t.seen_until.date()
    saved = (t._litres.fill_null(0.0) * alternative_yen_per_l).floor().cast("int64") - t._paid.fill_null(0)
    return t.select(
        "customer_id", "seen_until", "name", *carry,
        tenure_days=(day.epoch_days() - since.epoch_days()).cast("int64"),
        tenure_years=_whole_years(since, day),
        orders_so_far=t.orders_so_far.fill_null(0).cast("int64"),
        spent_so_far=t.spent_so_far.fill_null(0).cast("int64"),
        litres_so_far=t._litres.fill_null(0.0).cast("float64"),
        money_saved=ibis.greatest(saved, 0).cast("int64"),
        first_order_at=t.first_order_at,
        last_order_at=t.last_order_at,
        last_product=t.last_product,
        subscription_started_at=t.subscription_started_at,
    )


def related_products(tables: dict[str, ibis.Table], as_of: dt.date, *, top: int = 3,
                     customers: ibis.Table | None = None) -> ibis.Table:
    """Per customer, the `top` products most bought together with theirs, that they have not bought.

    A product's score for a customer is the number of completed orders (of all customers, up to
    `as_of`) holding it together with one of the customer's products, summed over the customer's
    distinct products. Ties go to the lower product_id. The product pairs are counted once over
    all orders, then joined to each customer's distinct products, so the work grows with the
    orders and with customers × their products × partners, never with customers². `customers` (a
    table with customer_id): only theirs are scored (the pairs are counted over everyone's orders).

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
    if customers is not None:
        mine = mine.semi_join(customers.select("customer_id"), "customer_id")
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
    """Per customer and cut: litres of the items of orders kept (not returned), and what was paid for them."""
    kept = orders.filter(orders.status.fill_null("completed") != "returned").select(
        "order_id", "customer_id", "seen_until")
    volumes = products.select("product_id", "volume_l")
    lines = items.inner_join(kept, "order_id").inner_join(volumes, "product_id")
    lines = lines.filter(lines.volume_l > 0)
    return lines.group_by(["customer_id", "seen_until"]).aggregate(
        _litres=(lines.quantity.cast("float64") * lines.volume_l).sum(),
        _paid=(lines.quantity * lines.unit_price).sum().cast("int64"),
    )


def _last_product(orders: ibis.Table, summary: ibis.Table, items: ibis.Table, products: ibis.Table) -> ibis.Table:
    """Per customer and cut: the name of the first item (lowest product_id) of the latest order.

    Orders at the same latest moment are told apart by the higher order_id, so every engine
    picks the same one; joins on the latest moment, not a window over all orders.
    """
    latest = summary.select(_customer="customer_id", _until="seen_until", _at="last_order_at")
    candidates = orders.inner_join(
        latest, [orders.customer_id == latest._customer, orders.seen_until == latest._until,
                 orders.ordered_at == latest._at]
    )
    last = candidates.group_by(["customer_id", "seen_until"]).aggregate(order_id=_.order_id.max())
    first_item = (
        last.inner_join(items.select("order_id", "product_id"), "order_id")
        .group_by(["customer_id", "seen_until"])
        .aggregate(product_id=_.product_id.min())
    )
    names = products.select("product_id", last_product="name")
    return first_item.inner_join(names, "product_id").select("customer_id", "seen_until", "last_product")


def _whole_years(since: ibis.Value, day: ibis.Value) -> ibis.Value:
    """Whole calendar years from `since` to `day` (both dates): 1 on the first anniversary, not before."""
    before_anniversary = (since.month() > day.month()) | ((since.month() == day.month()) & (since.day() > day.day()))
    return (day.year() - since.year() - ibis.cases((before_anniversary, 1), else_=0)).cast("int64")
