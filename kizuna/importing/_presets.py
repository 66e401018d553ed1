"""Which export a file is, and which of its columns hold which field: a `Plan`.

Every preset that could hold the file is tried: each platform's (`_platforms`) and
kizuna's own per kind (canonical names and common Japanese headers). A preset fits
when its required fields are found; among those, the one that names most of the file's
headers wins (platforms before kizuna's own on a tie). With no fit, the message lists
the required columns the closest preset did not find.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from kizuna._errors import MissingColumnsError
from kizuna.importing._mapping import ColumnMapping, looks_like_data, normalise_header
from kizuna.importing._platforms import COMPOSED, GENERIC, PLATFORMS, Preset
from kizuna.importing._values import HEADER_ALIASES
from kizuna.store import KINDS, TABLES, Column

__all__ = ["FIELDS", "LINE_FIELDS", "ORDER_FIELDS", "Plan", "header_key", "plan_import"]

# Kinds whose files may carry several tables: buyers, orders, lines.
RICH_KINDS = ("customers", "orders", "order-items")
LINE_FIELDS = ("product_id", "product_name", "quantity", "unit_price", "line_kind")
BUYER_FIELDS = ("name", "name_kana", "email", "phone", "line_user_id", "postal_code", "address",
                "email_opt_in", "line_opt_in", "dm_opt_in", "birthday", "signed_up_at")
ORDER_FIELDS = ("order_id", "customer_id", "ordered_at", "amount", "status", "refund_amount", "channel",
                "shipped_at", "cancelled_at", "cancel_flag")
# Fields of rich kinds and how they are read (parts of COMPOSED fields are text until joined).
FIELDS: dict[str, Column] = {
    **{c.name: c for c in TABLES["customers"].columns},
    **{c.name: Column(c.name, c.kind) for c in TABLES["orders"].columns},
    **{c.name: Column(c.name, c.kind) for c in TABLES["order_items"].columns},
    "product_name": Column("product_name", "prose"),
}
HELPER_FIELDS = tuple(p for parts, _ in COMPOSED.values() for p in parts) + (
    "cancelled_at", "cancel_flag", "line_kind")
# (kind, alternatives): each group needs one of its fields
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "customers": (("customer_id", "email", "phone"),),
    "orders": (("order_id",), ("ordered_at",), ("amount",), ("customer_id", "email", "phone")),
    "order-items": (("order_id",), ("product_id",), ("quantity",), ("unit_price",)),
}
_CUSTOMER_PARTS = {p for whole in ("name", "name_kana", "phone", "postal_code", "address")
                   for p in COMPOSED[whole][0]}
# the fields a file of each rich kind may hold
_KIND_FIELDS: dict[str, set[str]] = {
    "customers": set(TABLES["customers"].column_names) | _CUSTOMER_PARTS,
    "orders": set(FIELDS) | set(HELPER_FIELDS),
    "order-items": set(TABLES["order_items"].column_names) | {"product_name", "line_kind"},
}
_BRACKETS = str.maketrans("[【「『〔<《{]】」』〕>》}", "(" * 8 + ")" * 8)


def header_key(header: str) -> str:
    """A header folded for matching: width, case, brackets, spaces, colons and ・ do not count.

    >>> header_key("お名前（姓）") == header_key("お名前 [姓]")
    True
    """
    text = unicodedata.normalize("NFKC", header).strip().strip("\ufeff").lower()
    return re.sub(r"[\s:・_]", "", text.translate(_BRACKETS))


_GENERIC_KEYS = {header_key(h): f for h, f in GENERIC.items()}


@dataclass
class Plan:
    """What a file holds and where: `columns` maps batch column name -> field."""

    kind: str
    preset: str | None  # a platform's export, or None for kizuna's own columns
    columns: dict[str, str]
    ignored: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    non_product_lines: tuple[str, ...] = ()
    guest_ids: tuple[str, ...] = ()

    @property
    def fields(self) -> set[str]:
        """Fields the file has, joined ones included."""
        have = set(self.columns.values())
        return have | {whole for whole, (parts, _) in COMPOSED.items() if have & set(parts)}

    @property
    def rich(self) -> bool:
        return self.kind in RICH_KINDS

    @property
    def identity(self) -> bool:
        """Customers are found by e-mail or phone where a row has no member id."""
        return self.rich and self.kind != "order-items" and bool({"email", "phone"} & self.fields)

    @property
    def lines(self) -> bool:
        return self.kind in ("orders", "order-items") and {"product_id", "quantity", "unit_price"} <= self.fields

    @property
    def buyers(self) -> bool:
        """An orders file that names its buyers creates or updates them as customers."""
        return self.kind == "orders" and bool((set(BUYER_FIELDS) - {"signed_up_at"}) & self.fields)


@dataclass
class _Candidate:
    plan: Plan
    missing: list[str]
    platform_hits: int
    hits: int


def plan_import(
    headers: list[str], names: list[str], kind: str | None, mapping: ColumnMapping, path: Path,
    unreadable: list[str] = (),
) -> Plan:
    """The best-fitting preset for these headers (of `kind` when given)."""
    kinds = [kind] if kind else list(KINDS)
    candidates: list[_Candidate] = []
    for preset in PLATFORMS:
        if preset.kind in kinds:
            candidates.append(_resolve(headers, names, preset.kind, preset, mapping, unreadable))
    for one in kinds:
        candidates.append(_resolve(headers, names, one, None, mapping, unreadable))
    fitting = [c for c in candidates if not c.missing]
    if fitting:
        best = max(fitting, key=lambda c: (c.platform_hits, c.hits, c.plan.preset is not None))
        return best.plan
    shown = [h for h in headers if h.strip()]
    # the message is about kizuna's own columns: of that kind, or of the kind the file is closest to
    own = [c for c in candidates if c.plan.preset is None]
    closest = own[0] if kind else max(own, key=lambda c: c.hits - len(c.missing))
    if looks_like_data(shown):
        raise MissingColumnsError(path, closest.plan.kind, closest.missing, None)
    raise MissingColumnsError(path, closest.plan.kind, closest.missing, shown + list(unreadable))


def _resolve(
    headers: list[str], names: list[str], kind: str, preset: Preset | None, mapping: ColumnMapping,
    unreadable: list[str],
) -> _Candidate:
    spec = KINDS[kind]
    rich = kind in RICH_KINDS
    canonical = _KIND_FIELDS[kind] if rich else set(spec.column_names)
    platform = {header_key(h): (i, f) for i, (h, f) in enumerate((preset.headers if preset else {}).items())}
    aliases = {header_key(h): f for h, f in HEADER_ALIASES.get(kind, {}).items()}
    wanted = mapping.columns_for(kind)
    best: dict[str, tuple[float, str]] = {}  # field -> (rank, batch name)
    platform_hits = hits = canonical_hits = 0
    ignored: list[str] = []
    for header, name in zip(headers, names, strict=True):
        plain, key = normalise_header(header), header_key(header)
        if not plain:
            continue
        if key in platform:
            platform_hits += 1
        elif plain in canonical:
            canonical_hits += 1
        rank, target = _field_for(plain, key, wanted, canonical, platform, aliases, rich)
        if target and (target in canonical) and (target not in best or rank < best[target][0]):
            if target in best:
                ignored.append(_header_of(best[target][1], headers, names))
            best[target] = (rank, name)
            hits += 1
        else:
            ignored.append(header)
    columns = {name: target for target, (_, name) in best.items()}
    order = {n: i for i, n in enumerate(names)}
    columns = dict(sorted(columns.items(), key=lambda item: order[item[0]]))
    plan = Plan(kind, preset.name if preset else None, columns, ignored + list(unreadable),
                dict(preset.statuses) if preset else {}, preset.non_product_lines if preset else (),
                preset.guest_ids if preset else ())
    missing = _missing(kind, plan.fields)
    if preset and (platform_hits < 3 or platform_hits <= canonical_hits) and not missing:
        # a few shared words ("email", "total") do not make a file of kizuna's own columns a platform's
        missing = ["(too few of the platform's headers)"]
    return _Candidate(plan, missing, platform_hits, hits)


def _field_for(plain: str, key: str, wanted: dict[str, str], canonical: set[str],
               platform: dict[str, tuple[int, str]], aliases: dict[str, str], rich: bool) -> tuple[float, str]:
    if plain in wanted:
        return -2, wanted[plain]
    if key in platform:  # before canonical names: Shopify's "Name" is the order number
        return platform[key]
    if plain in canonical:
        return 4000, plain
    if key in aliases:
        return 5000, aliases[key]
    if rich and key in _GENERIC_KEYS:
        return 10000 + list(_GENERIC_KEYS).index(key), _GENERIC_KEYS[key]
    return 0, ""


def _header_of(name: str, headers: list[str], names: list[str]) -> str:
    return headers[names.index(name)]


def _missing(kind: str, have: set[str]) -> list[str]:
    groups = REQUIRED.get(kind) or tuple((c,) for c in KINDS[kind].required)
    return [group[0] for group in groups if not have & set(group)]
