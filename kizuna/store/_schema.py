"""The canonical tables (docs/measures.md §7): columns, types, natural keys and references.

Timestamps are stored as local wall-clock time of the workspace timezone
(``kizuna.toml`` [business] timezone): every engine then agrees on which day an
order fell, whatever timezone its session runs in (Ibis pins DuckDB and Spark
sessions to UTC). Amounts are integer yen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis

__all__ = ["Column", "TableSpec", "TABLES", "KINDS", "table_for_kind"]


@dataclass(frozen=True)
class Column:
    name: str
    # id, text, prose, timestamp, date, yen, int, float, bool, score, one of ENUMS' keys.
    # prose: what a customer wrote (names, addresses, comments), stored as given; text is normalised
    kind: str
    required: bool = False

    @property
    def dtype(self) -> str:
        return {
            "id": "string", "text": "string", "timestamp": "timestamp", "date": "date",
            "yen": "int64", "int": "int64", "float": "float64", "bool": "boolean",
            "score": "int64",
        }.get(self.kind, "string")


@dataclass(frozen=True)
class TableSpec:
    name: str
    kind: str  # the word users type: kizuna import KIND FILE
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    # column -> (table, column) that must already hold the value
    references: tuple[tuple[str, str], ...] = ()

    @property
    def schema(self) -> ibis.Schema:
        import ibis  # here: the table definitions alone load without Ibis

        return ibis.schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, kind: str, required: bool = False) -> Column:
    return Column(name, kind, required)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "customers", "customers",
            (
                _c("customer_id", "id", True), _c("name", "prose"), _c("name_kana", "prose"),
                _c("email", "text"), _c("phone", "text"), _c("line_user_id", "text"),
                _c("postal_code", "text"), _c("address", "prose"),
                _c("signed_up_at", "timestamp"), _c("email_opt_in", "bool"),
                _c("line_opt_in", "bool"), _c("dm_opt_in", "bool"), _c("birthday", "date"),
            ),
            key=("customer_id",),
        ),
        TableSpec(
            "products", "products",
            (
                _c("product_id", "id", True), _c("name", "prose", True), _c("category", "text"),
                _c("price", "yen"), _c("cycle_days", "int"), _c("volume_l", "float"),
            ),
            key=("product_id",),
        ),
        TableSpec(
            "orders", "orders",
            (
                _c("order_id", "id", True), _c("customer_id", "id", True),
                _c("ordered_at", "timestamp", True), _c("amount", "yen", True),
                _c("status", "order_status"), _c("refund_amount", "yen"),
                _c("channel", "text"), _c("shipped_at", "timestamp"),
            ),
            key=("order_id",),
            references=(("customer_id", "customers"),),
        ),
        TableSpec(
            "order_items", "order-items",
            (
                _c("order_id", "id", True), _c("product_id", "id", True),
                _c("quantity", "int", True), _c("unit_price", "yen", True),
            ),
            key=("order_id", "product_id"),
            references=(("order_id", "orders"), ("product_id", "products")),
        ),
        TableSpec(
            "nps_answers", "nps",
            (
                _c("customer_id", "id", True), _c("answered_at", "timestamp", True),
                _c("score", "score", True), _c("comment", "prose"), _c("touchpoint", "text"),
            ),
            key=("customer_id", "answered_at"),
            references=(("customer_id", "customers"),),
        ),
        TableSpec(
            "support_contacts", "support",
            (
                _c("contact_id", "id", True), _c("customer_id", "id", True),
                _c("opened_at", "timestamp", True), _c("channel", "support_channel", True),
                _c("resolved_at", "timestamp"), _c("status", "support_status"),
                _c("category", "text"), _c("is_complaint", "bool"),
            ),
            key=("contact_id",),
            references=(("customer_id", "customers"),),
        ),
        TableSpec(
            "events", "events",
            (
                _c("customer_id", "id", True), _c("occurred_at", "timestamp", True),
                _c("kind", "event_kind", True), _c("detail", "prose"),
            ),
            key=("customer_id", "occurred_at", "kind"),
            references=(("customer_id", "customers"),),
        ),
        # one row per call the contact centre made (docs/measures.md#calls): `kizuna calls import`
        # and the customer page's form write it; the call lists read its cooldown and callbacks
        TableSpec(
            "calls", "calls",
            (
                _c("customer_id", "id", True), _c("called_at", "timestamp", True),
                _c("agent", "text"), _c("script", "text"), _c("outcome", "call_outcome", True),
                _c("next_call_at", "timestamp"), _c("note", "prose"),
            ),
            key=("customer_id", "called_at"),
            references=(("customer_id", "customers"),),
        ),
    )
}

KINDS: dict[str, TableSpec] = {spec.kind: spec for spec in TABLES.values()}


def table_for_kind(kind: str) -> TableSpec:
    from kizuna._errors import KizunaError

    try:
        return KINDS[kind]
    except KeyError:
        raise KizunaError(
            f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}."
        ) from None
