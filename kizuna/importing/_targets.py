"""From the staged rows of one file to the rows of each table it fills (Ibis, any engine).

A customers, products or other one-table file fills its table. An orders export may
also fill customers (the buyers it names), products and order items (its lines):

* **customers without an id** (guests; Shopify writes none) take the id of the stored
  or member customer with the same normalised e-mail, else the same phone digits, else
  the same name + postal code, else an id derived from the e-mail (or phone, or name +
  postal code) and the workspace secret, so members and guests with one e-mail are one
  customer and a guest who orders twice is one customer (`_prepare.guest_id`); buyers
  behind a relay e-mail (楽天) are matched by phone, then name + postal code, and how many
  were is counted for the summary (`matched`);
* **buyers** are taken from each customer's latest order in the file (a field it leaves
  blank from another of their orders); a value the export leaves blank keeps the stored one;
* **products** named by lines are added when new (a products file stays the
  reference for names and prices); a line without a product name names it by its id;
* **order items**: lines of one order with the same product and price are one item
  with their quantities summed;
* **an order's amount from its lines** (BASE): Σ ``line_total`` of its rows + its
  ``shipping_fee``, ``cod_fee`` and ``adjustment``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis

from kizuna.importing._platforms import AMOUNT_PARTS
from kizuna.importing._prepare import EMAIL_KEY, GUEST_ID, NAME_KEY, PHONE_KEY
from kizuna.importing._presets import BUYER_FIELDS, Plan
from kizuna.importing._sources import ROW
from kizuna.store import TABLES, Store, TableSpec

__all__ = ["Target", "targets"]


@dataclass
class Target:
    spec: TableSpec
    rows: ibis.Table  # every column of spec (null where the file has none) + ROW
    present: list[str]  # the columns the file gives
    main: bool = False  # the table the summary's counts are about
    merge: bool = False  # a null in the file keeps the stored value
    insert_only: bool = False  # stored rows are left as they are
    duplicates_shown: bool = True  # repeats are news (not in a line-item file: every line repeats its order)


def targets(store: Store, plan: Plan, stage: ibis.Table, given: set[str],
            matched: dict[str, int] | None = None) -> list[Target]:
    """Targets in the order they must be applied (referenced tables first).

    `given`: the fields the file gives (after joining parts and deriving the status).
    `matched` receives how many buyers without a usable e-mail were told apart by phone and by
    name + postal code (``{"phone": 9, "name_postal": 1}``).
    """
    if not plan.rich:
        spec = TABLES[_table(plan.kind)]
        return [Target(spec, stage, [c for c in spec.column_names if c in given], main=True)]
    if plan.identity:
        given = given | {"customer_id"}
        guests = store.fetch_value(stage.filter(stage.customer_id.isnull()).count())
        if guests:  # (a file where every row has its member id needs no lookup)
            stage = _resolve_customers(store, stage)
            if matched is not None:
                matched.update(_matched(stage))
    found: list[Target] = []
    customers = TABLES["customers"]
    if plan.kind == "customers":
        found.append(_target(customers, stage, given, main=True))
    elif plan.buyers:
        buyer = sorted(given & set(BUYER_FIELDS))
        some = [f"_some_{c}" for c in buyer]
        # a customer's row: the last in the file of their latest order (of all their rows when no order
        # has a time), found by two groupings rather than a window that sorts every row; where that order
        # leaves a field blank, another order of the customer may give it. (The joins drop the rows without
        # a customer id; a filter of them, read three times, would be a common table expression that the
        # engine writes out.)
        known = stage.group_by("customer_id").aggregate(
            _last_at=stage.ordered_at.max(), **{name: stage[c].max() for name, c in zip(some, buyer, strict=True)})
        at_last = stage.inner_join(known, "customer_id")
        at_last = at_last.filter((at_last.ordered_at == at_last._last_at) | at_last._last_at.isnull())
        last = at_last.group_by("customer_id").aggregate(
            **{ROW: at_last[ROW].max()}, **{name: at_last[name].max() for name in some})
        latest = stage.inner_join(last, ["customer_id", ROW])
        latest = latest.mutate(**{c: latest[c].coalesce(latest[name]) for name, c in zip(some, buyer, strict=True)})
        found.append(_target(customers, latest, given & ({"customer_id"} | set(BUYER_FIELDS)), merge=True))
    lines = stage.filter(stage.product_id.notnull()) if plan.lines else None
    if lines is not None:
        # a product's first line in the file (a grouping rather than a window that sorts every line)
        first = lines.semi_join(lines.group_by("product_id").aggregate(**{ROW: lines[ROW].min()}), ["product_id", ROW])
        name = first.product_name.coalesce(first.product_id) if "product_name" in first.columns else first.product_id
        found.append(_target(TABLES["products"], first.mutate(name=name), {"product_id", "name"}, insert_only=True))
    if plan.kind == "orders":
        orders = TABLES["orders"]
        present = given & set(orders.column_names)
        rows = stage
        if "line_total" in stage.columns:  # BASE: the amount is the order's lines + its charges
            present = present | {"amount"}
            charges = [stage[c].max().coalesce(0) for c in AMOUNT_PARTS[1:] if c in stage.columns]
            amount = stage.line_total.sum().coalesce(0)
            for charge in charges:
                amount = amount + charge
            rows = stage.group_by([c for c in orders.column_names if c in present and c != "amount"]).aggregate(
                amount=amount.cast("int64"), **{ROW: stage[ROW].min()})
        elif plan.lines:  # every line repeats its order: one row per order (and per differing repeat)
            rows = stage.group_by([c for c in orders.column_names if c in present]).aggregate(
                **{ROW: stage[ROW].min()})
        found.append(_target(orders, rows, present, main=True, duplicates_shown=not plan.lines))
    if lines is not None:
        items = lines.group_by(["order_id", "product_id", "unit_price"]).aggregate(
            quantity=lines.quantity.sum(), **{ROW: lines[ROW].min()})
        found.append(_target(TABLES["order_items"], items, {"order_id", "product_id", "quantity", "unit_price"},
                             main=plan.kind == "order-items"))
    return found


def _table(kind: str) -> str:
    from kizuna.store import KINDS

    return KINDS[kind].name


def _target(spec: TableSpec, rows: ibis.Table, given: set[str], **flags: bool) -> Target:
    present = [c for c in spec.column_names if c in given]
    schema = spec.schema
    columns = {c: rows[c] if c in present else ibis.null(schema[c]) for c in spec.column_names}
    return Target(spec, rows.select(**columns, **{ROW: rows[ROW]}), present, **flags)


def _resolve_customers(store: Store, stage: ibis.Table) -> ibis.Table:
    """customer_id for rows without one: by e-mail, then phone, among stored customers and this file's.

    A phone finds a stored customer, a member of this file, or a guest of this file known by
    e-mail, so one buyer's orders with and without an e-mail stay one customer.
    """
    stored = store.table("customers")
    phone_digits = stored.phone.re_replace(r"[^0-9]", "")

    def first_id(known: ibis.Table, found: str) -> ibis.Table:
        return known.group_by("_key").aggregate(**{found: ibis._["_id"].min()})

    members = stage.filter(stage.customer_id.notnull() & stage[EMAIL_KEY].notnull())
    by_email = first_id(
        stored.filter(stored.email.notnull()).select(_key=stored.email.lower(), _id=stored.customer_id)
        .union(members.select(_key=members[EMAIL_KEY], _id=members.customer_id)), "_by_email")
    resolved = stage.left_join(by_email, stage[EMAIL_KEY] == by_email["_key"]).drop("_key")
    by_mail_guest = ibis.ifelse(resolved[GUEST_ID].startswith("m-"), resolved[GUEST_ID], ibis.null("string"))
    resolved = resolved.mutate(_email_id=resolved.customer_id.coalesce(resolved._by_email, by_mail_guest))
    known = resolved.filter(resolved._email_id.notnull() & resolved[PHONE_KEY].notnull())
    by_phone = first_id(
        stored.filter(phone_digits.notnull() & (phone_digits != "")).select(_key=phone_digits, _id=stored.customer_id)
        .union(known.select(_key=known[PHONE_KEY], _id=known._email_id)), "_by_phone")
    resolved = resolved.left_join(by_phone, resolved[PHONE_KEY] == by_phone["_key"]).drop("_key")
    # then name + postal code (a relay e-mail and no phone): stored customers, and buyers found above
    resolved = resolved.mutate(_phone_id=resolved._email_id.coalesce(resolved._by_phone))
    named = resolved.filter(resolved._phone_id.notnull() & resolved[NAME_KEY].notnull())
    stored_key = (stored.name.re_replace(r"\s+", "") + "|" + stored.postal_code.re_replace(r"[^0-9]", ""))
    by_name = first_id(
        stored.filter(stored.name.notnull() & stored.postal_code.notnull()
                      & (stored.postal_code.re_replace(r"[^0-9]", "") != ""))
        .select(_key=stored_key, _id=stored.customer_id)
        .union(named.select(_key=named[NAME_KEY], _id=named._phone_id)), "_by_name")
    resolved = resolved.left_join(by_name, resolved[NAME_KEY] == by_name["_key"]).drop("_key")
    how = ibis.cases((resolved._email_id.notnull(), "email"), (resolved._by_phone.notnull(), "phone"),
                     (resolved._by_name.notnull(), "name_postal"), (resolved[GUEST_ID].startswith("t-"), "phone"),
                     (resolved[GUEST_ID].startswith("n-"), "name_postal"), else_="email")
    customer_id = resolved._phone_id.coalesce(resolved._by_name, resolved[GUEST_ID])
    return resolved.mutate(customer_id=customer_id, _matched_by=how).drop(
        "_by_email", "_by_phone", "_by_name", "_email_id", "_phone_id")


def _matched(stage: ibis.Table) -> dict[str, int]:
    """Buyers without a member id or a usable e-mail, by what told them apart."""
    rows = stage.filter(stage[EMAIL_KEY].isnull() & stage._matched_by.isin(["phone", "name_postal"]))
    counts = rows.group_by("_matched_by").aggregate(n=rows.customer_id.nunique()).to_pyarrow().to_pylist()
    found = {r["_matched_by"]: int(r["n"]) for r in counts}
    return {k: found[k] for k in ("phone", "name_postal") if found.get(k)}
