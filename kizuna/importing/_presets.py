"""Which export a file is, and which of its columns hold which field: a `Plan`.

Every preset that could hold the file is tried: each platform's (`_platforms`) and
kizuna's own per kind (canonical names and common Japanese headers). A preset fits
when its required fields are found; among those, the one that names most of the file's
headers wins (platforms before kizuna's own on a tie).

No wrong guess: a platform wins only when it names clearly more of the file's headers
than the next platform that fits (`CLEAR_MARGIN`); an order-shaped file (an order id, a
date and an amount among its headers) is only ever read as orders or order items; when
nothing fits such a file, or two platforms fit alike, the import stops with one line
naming the closest platform and the columns it lacks (`PlatformMismatchError`).
``--platform NAME`` (`platform`) tries that platform's presets only. With no fit and a
file that is not order-shaped, the message lists the required columns the closest of
kizuna's own presets did not find.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from kizuna._errors import MissingColumnsError, Phrase, SourceImportError
from kizuna.importing._mapping import ColumnMapping, looks_like_data, normalise_header
from kizuna.importing._platforms import (
    AMOUNT_PARTS,
    COMPOSED,
    GENERIC,
    GIVEN_FIRST,
    PLATFORMS,
    Preset,
    platform_named,
    platform_names,
)
from kizuna.importing._values import HEADER_ALIASES
from kizuna.store import KINDS, TABLES, Column

__all__ = ["FIELDS", "LINE_FIELDS", "ORDER_FIELDS", "Plan", "PlatformMismatchError", "header_key", "plan_import"]

# Kinds whose files may carry several tables: buyers, orders, lines.
RICH_KINDS = ("customers", "orders", "order-items")
LINE_FIELDS = ("product_id", "product_name", "quantity", "unit_price", "line_kind", "line_total")
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
    # parts of an order's amount (BASE: per-line totals + the order's charges), summed in `_targets`
    **{part: Column(part, "yen") for part in AMOUNT_PARTS},
}
HELPER_FIELDS = tuple(p for parts, _ in COMPOSED.values() for p in parts) + (
    "cancelled_at", "cancel_flag", "line_kind", GIVEN_FIRST, *AMOUNT_PARTS)
# a joined field is there only when this part is (a time alone is not a date: MakeShop's 注文時間)
_LEAD_PART = {"ordered_at": "ordered_date"}
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
    "customers": set(TABLES["customers"].column_names) | _CUSTOMER_PARTS | {GIVEN_FIRST},
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
        joined = {whole for whole, (parts, _) in COMPOSED.items()
                  if (_LEAD_PART[whole] in have if whole in _LEAD_PART else have & set(parts))}
        if GIVEN_FIRST in have:
            joined.add("name")
        if "line_total" in have:
            joined.add("amount")
        return have | joined

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
    preset: Preset | None = None


# a platform wins only when it names this many more of the file's headers than the next one
CLEAR_MARGIN = 3


class PlatformMismatchError(MissingColumnsError):
    """An export that no platform's layout fits, or that two fit alike: one line, naming the closest."""

    def __init__(self, path: Path | str, message: Phrase, kind: str, missing: list[str]) -> None:
        self.kind, self.missing, self.found, self.sheets = kind, missing, None, ()
        SourceImportError.__init__(self, message, path=path)


def plan_import(
    headers: list[str], names: list[str], kind: str | None, mapping: ColumnMapping, path: Path,
    unreadable: list[str] = (), platform: str | None = None,
) -> Plan:
    """The best-fitting preset for these headers (of `kind` when given; of `platform` when named)."""
    if platform:
        return _forced(headers, names, kind, mapping, path, unreadable, platform)
    kinds = [kind] if kind else list(KINDS)
    shaped = kind is None and order_shaped(headers)
    if shaped:  # never read as products or customers
        kinds = [k for k in kinds if k in ("orders", "order-items")]
    candidates: list[_Candidate] = []
    for preset in PLATFORMS:
        if preset.kind in kinds:
            candidates.append(_resolve(headers, names, preset.kind, preset, mapping, unreadable))
    for one in kinds:
        candidates.append(_resolve(headers, names, one, None, mapping, unreadable))
    fitting = [c for c in candidates if not c.missing]
    if fitting:
        ranked = sorted(fitting, key=lambda c: (c.platform_hits, c.hits, c.plan.preset is not None), reverse=True)
        best = ranked[0]
        rivals = [c for c in ranked[1:] if c.plan.preset and c.preset.platform != best.preset.platform] \
            if best.plan.preset else []
        if rivals and best.platform_hits - rivals[0].platform_hits < CLEAR_MARGIN:
            other = rivals[0]
            raise PlatformMismatchError(path, Phrase.of(
                "error.platform_ambiguous", first=best.plan.preset, first_hits=best.platform_hits,
                second=other.plan.preset, second_hits=other.platform_hits, platforms=", ".join(platform_names())),
                best.plan.kind, [])
        return best.plan
    if shaped:
        platforms = [c for c in candidates if c.plan.preset]
        closest = max(platforms, key=lambda c: (c.platform_hits - len(c.missing), c.platform_hits))
        raise _mismatch(path, closest, Phrase.of("error.platform_none_fits"))
    shown = [h for h in headers if h.strip()]
    # the message is about kizuna's own columns: of that kind, or of the kind the file is closest to
    own = [c for c in candidates if c.plan.preset is None]
    closest = own[0] if kind else max(own, key=lambda c: c.hits - len(c.missing))
    if looks_like_data(shown):
        raise MissingColumnsError(path, closest.plan.kind, closest.missing, None)
    raise MissingColumnsError(path, closest.plan.kind, closest.missing, shown + list(unreadable))


def _forced(headers: list[str], names: list[str], kind: str | None, mapping: ColumnMapping, path: Path,
            unreadable: list[str], platform: str) -> Plan:
    presets = [p for p in platform_named(platform) if kind is None or p.kind == kind]
    if not presets:
        raise PlatformMismatchError(path, Phrase.of("error.platform_unknown", platform=platform,
                                                    platforms=", ".join(platform_names())), kind or "orders", [])
    candidates = [_resolve(headers, names, p.kind, p, mapping, unreadable, forced=True) for p in presets]
    fitting = [c for c in candidates if not c.missing]
    if fitting:
        return max(fitting, key=lambda c: (c.platform_hits, c.hits)).plan
    closest = max(candidates, key=lambda c: (c.platform_hits - len(c.missing), c.platform_hits))
    raise _mismatch(path, closest, Phrase.of("error.platform_not_this", platform=presets[0].platform))


def _mismatch(path: Path, closest: _Candidate, what: Phrase) -> PlatformMismatchError:
    """One line: the closest platform and, in its own words, the columns it lacks."""
    preset = closest.preset
    lacking = [_header_for(preset, group) for group in closest.missing]
    return PlatformMismatchError(path, Phrase.of(
        "error.platform_mismatch", what=what, closest=preset.name, hits=closest.platform_hits,
        lacking=", ".join(lacking), platforms=", ".join(platform_names())), closest.plan.kind, closest.missing)


def _header_for(preset: Preset, field_name: str) -> str:
    """The preset's header for a missing field (or a part of it), else the field's name."""
    if field_name.startswith("("):
        return field_name
    group = next((g for groups in REQUIRED.values() for g in groups if field_name in g), (field_name,))
    wanted = set(group) | {p for f in group if f in COMPOSED for p in COMPOSED[f][0][:1]}
    wanted |= {"line_total"} if "amount" in group else set()
    for header, target in preset.headers.items():
        if target in wanted:
            return header
    return field_name


def _keys_for(*fields: str) -> set[str]:
    keys = {header_key(h) for h, f in GENERIC.items() if f in fields}
    keys |= {header_key(h) for p in PLATFORMS for h, f in p.headers.items() if f in fields}
    return keys - {"name", "id"}  # Shopify's order number is "Name": a customers file has one too


_ORDER_ID_KEYS = _keys_for("order_id")
_DATE_KEYS = _keys_for("ordered_at", "ordered_date")
_AMOUNT_KEYS = _keys_for("amount", "line_total")


def order_shaped(headers: list[str]) -> bool:
    """An order id, an order date and an amount among the headers: a file of orders."""
    keys = {header_key(h) for h in headers}
    return bool(keys & _ORDER_ID_KEYS and keys & _DATE_KEYS and keys & _AMOUNT_KEYS)


def _resolve(
    headers: list[str], names: list[str], kind: str, preset: Preset | None, mapping: ColumnMapping,
    unreadable: list[str], *, forced: bool = False,
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
    if preset and not forced and (platform_hits < 3 or platform_hits <= canonical_hits) and not missing:
        # a few shared words ("email", "total") do not make a file of kizuna's own columns a platform's
        missing = ["(too few of the platform's headers)"]
    return _Candidate(plan, missing, platform_hits, hits, preset)


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
