"""From a batch of an export's columns to a batch of kizuna fields, still as text.

Runs before parsing (`_convert`), per batch, in Arrow:

* split fields are joined (姓 + 名, 郵便番号1-2, TEL1-3, 日付 + 時刻, 都道府県 + 住所);
* in a line-item export the order's fields are taken from the first row of each order
  (later rows repeat them or leave them blank; a later row that says otherwise is
  rejected), carried across batches;
* rows that are not products (送料, 手数料, 割引 … in the line-kind column) keep their
  order but lose their line;
* platform status words become completed / cancelled / returned; a cancellation
  column (Shopify ``Cancelled at``, Next Engine キャンセル区分) makes an order cancelled;
* a row without a member id (a guest; Shopify has none) gets the key of its customer:
  normalised e-mail, else phone, else name + postal code (see `guest_id`); a relay address
  (楽天's ``…@pc.fw.rakuten.ne.jp``, `MASKED_EMAIL_DOMAINS`) differs per order and is never a key;
* what exports write around a value is undone: the apostrophe some put before numbers
  (``'7812345000000``), a time as ``hhmmss`` (MakeShop ``注文時間``), a name given-name first
  (Shopify ``Billing Name``), a prefecture as ``JP-13`` or ``Tokyo``.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc

from kizuna.importing._mapping import ColumnMapping
from kizuna.importing._parse import clean_prose, clean_text
from kizuna.importing._platforms import COMPOSED, GIVEN_FIRST, MASKED_EMAIL_DOMAINS, PREFECTURES
from kizuna.importing._presets import FIELDS, LINE_FIELDS, Plan
from kizuna.importing._sources import ROW
from kizuna.store import Column, TableSpec

__all__ = ["EMAIL_KEY", "GUEST_ID", "NAME_KEY", "PHONE_KEY", "Grouped", "Prepared", "Preparer", "guest_id",
           "masked_email", "wide_spec"]

EMAIL_KEY, PHONE_KEY, NAME_KEY, GUEST_ID = "_email_key", "_phone_key", "_name_key", "_guest_id"
# an address at a relay domain (or a subdomain of one)
_MASKED = "@(?:.+\\.)?(?:" + "|".join(d.replace(".", "\\.") for d in MASKED_EMAIL_DOMAINS) + ")$"


def masked_email(email: str | None) -> bool:
    """A platform's relay address, different per order: never a customer's identity.

    >>> masked_email("a1b2c3@pc.fw.rakuten.ne.jp"), masked_email("taro@rakuten.co.jp")
    (True, False)
    """
    import re

    return bool(email and re.search(_MASKED, _email_key_of(email)))


def _prefecture_words() -> tuple[pa.Array, pa.Array]:
    keys, values = [], []
    for number, (kanji, roman) in enumerate(PREFECTURES, start=1):
        base = roman.lower()
        for key in (f"jp-{number:02d}", base, f"{base}-ken", f"{base}-to", f"{base}-fu", f"{base} ken",
                    f"{base} prefecture"):
            keys.append(key)
            values.append(kanji)
    return pa.array(keys), pa.array(values)


_PREFECTURE_KEYS, _PREFECTURE_NAMES = _prefecture_words()
_NULL = pa.scalar(None, pa.string())
_ITEM = ("product_id", "quantity", "unit_price")


def guest_id(email: str | None, phone: str | None = None, *, key: str | bytes | None = None) -> str | None:
    """The customer id of a buyer without a member id: from the e-mail, else the phone.

    The e-mail is compared NFKC-normalised, trimmed and lower-cased; the phone by its
    digits. The id is ``m-`` (``t-``) + 16 hex of HMAC-SHA256 keyed with `key`, the workspace
    secret, so it carries no contact data into lists and logs and cannot be reversed by trying
    every phone number. Without a key: the unsalted SHA-256 that kizuna used before (the ids
    of old workspaces, which `Workspace.open` renames once).

    >>> guest_id("Taro@Example.jp ", key="s") == guest_id("taro@example.jp", key="s") != guest_id("taro@example.jp")
    True
    """
    if email and email.strip():
        return _digest("m-", _email_key_of(email), key)
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    return _digest("t-", digits, key) if digits else None


def _email_key_of(email: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", email).strip().lower()


def _digest(prefix: str, text: str, key: str | bytes | None = None) -> str:
    if key is None:
        return prefix + hashlib.sha256(text.encode()).hexdigest()[:16]
    secret = key.encode() if isinstance(key, str) else key
    return prefix + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:16]


def wide_spec(plan: Plan) -> TableSpec:
    """The columns a prepared batch is parsed into: every field of the plan's tables."""
    from kizuna.store import KINDS

    if not plan.rich:
        return KINDS[plan.kind]
    required = {"orders": {"order_id", "ordered_at", "amount"}, "order-items": {"order_id"},
                "customers": set()}[plan.kind]
    if plan.kind != "order-items" and not plan.identity:
        required.add("customer_id")
    have = plan.fields | ({"customer_id"} if plan.kind != "order-items" else set())
    if "line_total" in have:  # BASE: the amount is summed from the lines in `_targets`
        have.discard("amount")
    if have & {"cancel_flag", "cancelled_at"}:
        have.add("status")
    if not plan.lines:
        have -= set(LINE_FIELDS)
    columns = tuple(Column(f, FIELDS[f].kind, f in required) for f in FIELDS if f in have)
    return TableSpec("_wide", plan.kind, columns, key=())


class Prepared:
    """One prepared batch: field columns as text, problems found, extra columns to stage."""

    def __init__(self, batch: pa.RecordBatch, problems: list[tuple[str, pa.Array]], keep: tuple[str, ...]):
        self.batch, self.problems, self.keep = batch, problems, keep


class Grouped:
    """A batch after the steps that need file order (see `Preparer.__call__`)."""

    def __init__(self, text: dict[str, pa.Array], problems: list[tuple[str, pa.Array]], rows: pa.Array):
        self.text, self.problems, self.rows = text, problems, rows


class Preparer:
    """Prepares the batches of one file in order (an order may span two batches)."""

    def __init__(self, plan: Plan, mapping: ColumnMapping, guest_key: str | bytes | None = None) -> None:
        self.plan = plan
        self.guest_key = guest_key  # the workspace secret, for guests' ids (`guest_id`)
        self.spec = wide_spec(plan)
        user_words = {w.lower() for w in mapping.values.get("status", {})}
        words = {clean_word(w): s for w, s in plan.statuses.items() if clean_word(w) not in user_words}
        self._words = (pa.array(list(words)), pa.array(list(words.values())))
        self._carry: tuple[str | None, dict[str, object], int] | None = None
        # staged beside the fields, to find customers by e-mail or phone in the store
        self.keep = (EMAIL_KEY, PHONE_KEY, NAME_KEY, GUEST_ID) if plan.identity else ()

    def __call__(self, batch: pa.RecordBatch) -> Grouped:
        """The part that must see the batches in file order: an order's lines may span two."""
        plan = self.plan
        rows = batch.column(ROW)
        text: dict[str, pa.Array] = {}
        for name, target in plan.columns.items():
            column = batch.column(name)
            text[target] = column if pa.types.is_string(column.type) else column.cast(pa.string())
        problems: list[tuple[str, pa.Array]] = []
        if plan.rich:
            _undo_export_quirks(text)
            for whole, (parts, sep) in COMPOSED.items():
                got = [text.pop(p) for p in parts if p in text]
                # an export with both (楽天: 注文日時 and 注文日 + 注文時間) takes the parts where the whole is blank
                if got:
                    joined = _join(got, sep)
                    text[whole] = joined if whole not in text else pc.coalesce(_blank_null(text[whole]), joined)
            if plan.lines and plan.kind == "orders" and "order_id" in text:
                problems += self._group(text, rows)
        return Grouped(text, problems, rows)

    def finish(self, grouped: Grouped) -> Prepared:
        """The rest, row by row: may run in any thread, in any order."""
        plan, text, problems, rows = self.plan, grouped.text, grouped.problems, grouped.rows
        n = len(rows)
        if not plan.rich:
            return Prepared(pa.RecordBatch.from_arrays([*text.values(), rows], [*text, ROW]), [], ())
        self._status(text)
        if plan.lines:
            problems += self._lines(text, n)
        keep = self.keep
        if plan.kind != "order-items":
            if "customer_id" not in text:
                text["customer_id"] = pa.nulls(n, pa.string())
            if plan.identity:
                problems += self._identity(text)
        names = [c.name for c in self.spec.columns]
        arrays = [text.get(name, pa.nulls(n, pa.string())) for name in names]
        arrays += [text[k] for k in keep]
        return Prepared(pa.RecordBatch.from_arrays([*arrays, rows], [*names, *keep, ROW]), problems, keep)

    # -- steps ------------------------------------------------------------------------
    def _group(self, text: dict[str, pa.Array], rows: pa.Array) -> list[tuple[str, pa.Array]]:
        """Order fields from the first row of each order; later rows that differ are problems."""
        fields = [f for f in text if f not in LINE_FIELDS and f != "order_id"]
        order_id = clean_text(text["order_id"])
        carry = self._carry
        lead = 1 if carry else 0

        def extended(values: pa.Array, first: object) -> pa.Array:
            return pa.concat_arrays([pa.array([first], values.type), values]) if carry else values

        ids = extended(order_id, carry[0] if carry else None)
        before = pa.concat_arrays([pa.nulls(1, pa.string()), ids[:-1]]) if len(ids) else ids
        start = pc.invert(pc.fill_null(pc.equal(ids, before), False))
        run = pc.subtract(pc.cumulative_sum(start.cast(pa.int64())), 1)
        first = pc.take(pc.indices_nonzero(start), run)
        first_row = pc.take(extended(rows, carry[2] if carry else None), first)
        problems = []
        new_carry: dict[str, object] = {}
        for name in fields:
            values = extended(text[name], carry[1].get(name) if carry else None)
            filled = pc.take(values, first)
            # raw text first: an export repeats its order fields as they were (NFKC is costly)
            differs = pc.and_(pc.is_valid(values), pc.not_equal(values, pc.coalesce(filled, "")))
            if pc.any(pc.fill_null(differs, False)).as_py():
                differs = pc.and_(pc.is_valid(clean_text(values)),
                                  pc.not_equal(clean_text(values), pc.coalesce(clean_text(filled), "")))
                if pc.any(pc.fill_null(differs, False)).as_py():  # (the reason's text only where it is needed)
                    why = pc.binary_join_element_wise(
                        "not the same as on the order's first row (row ", first_row.cast(pa.string()), ")", "")
                    problems.append((name, pc.if_else(pc.fill_null(differs, False), why, _NULL)[lead:]))
            text[name] = filled[lead:]
            new_carry[name] = filled[-1].as_py() if len(filled) else None
        if len(ids):
            self._carry = (ids[-1].as_py(), new_carry, first_row[-1].as_py())
        return problems

    def _status(self, text: dict[str, pa.Array]) -> None:
        words, statuses = self._words
        if not len(words) and "cancelled_at" not in text:
            return

        def mapped(column: pa.Array) -> pa.Array:
            # a few distinct words: cleaned once each, through a dictionary
            encoded = pc.dictionary_encode(column)
            found = pc.take(statuses, pc.index_in(pc.utf8_lower(clean_text(encoded.dictionary)), words))
            return pc.take(found, encoded.indices)

        status = text.get("status")
        if status is not None:
            status = pc.coalesce(mapped(status), status)
        flag = text.pop("cancel_flag", None)
        if flag is not None:
            said = mapped(flag)
            cancelled = pc.fill_null(pc.equal(said, "cancelled"), False)
            status = pc.if_else(cancelled, "cancelled", said if status is None else pc.coalesce(status, said))
        cancelled_at = text.pop("cancelled_at", None)
        if cancelled_at is not None:
            gone = pc.is_valid(clean_text(cancelled_at))
            status = pc.if_else(gone, "cancelled", status if status is not None else _NULL)
        if status is not None:
            text["status"] = status

    def _lines(self, text: dict[str, pa.Array], n: int) -> list[tuple[str, pa.Array]]:
        """Product lines keep product, quantity and price; other lines keep only their order."""
        line_kind = text.pop("line_kind", None)
        present = [f for f in ("product_id", "product_name", "quantity", "unit_price") if f in text]
        if self.plan.kind == "order-items":
            is_product = pa.repeat(pa.scalar(True), n)
        else:
            has = [_has(text[f]) for f in present]
            is_product = has[0]
            for more in has[1:]:
                is_product = pc.or_(is_product, more)
        if line_kind is not None and self.plan.non_product_lines:
            words = pa.array([clean_word(w) for w in self.plan.non_product_lines])
            other = pc.fill_null(pc.is_in(pc.utf8_lower(clean_text(line_kind)), words), False)
            is_product = pc.and_(is_product, pc.invert(other))
        for f in present:
            text[f] = pc.if_else(is_product, text[f], _NULL)
        problems = []
        for f in _ITEM:
            missing = pc.and_(is_product, pc.invert(_has(text[f])))
            problems.append((f, pc.if_else(missing, f"missing {f}", _NULL)))
        return problems

    def _identity(self, text: dict[str, pa.Array]) -> list[tuple[str, pa.Array]]:
        member = clean_text(text["customer_id"])
        if self.plan.guest_ids:
            member = pc.if_else(pc.fill_null(pc.is_in(member, pa.array(self.plan.guest_ids)), False),
                                _NULL, member)
        n = len(member)
        email = text.get("email")
        email_key = pc.utf8_lower(clean_text(email)) if email is not None else pa.nulls(n, pa.string())
        # a relay address is per order: the buyer is found by phone, then by name + postal code
        if any(pc.any(pc.match_substring(email_key, domain)).as_py() for domain in MASKED_EMAIL_DOMAINS):
            relayed = pc.fill_null(pc.match_substring_regex(email_key, _MASKED), False)
            email_key = pc.if_else(relayed, _NULL, email_key)
        phone = text.get("phone")
        phone_key = _digits(clean_text(phone)) if phone is not None else pa.nulls(n, pa.string())
        name_key = _name_key(text.get("name"), text.get("postal_code"), n)
        guest = pc.is_null(member)
        text["customer_id"] = member
        text[EMAIL_KEY], text[PHONE_KEY], text[NAME_KEY] = email_key, phone_key, name_key
        text[GUEST_ID] = pc.coalesce(_digests("m-", email_key, guest, self.guest_key),
                                     _digests("t-", phone_key, guest, self.guest_key),
                                     _digests("n-", name_key, guest, self.guest_key))
        nobody = pc.and_(guest, pc.and_(pc.is_null(email_key), pc.and_(pc.is_null(phone_key), pc.is_null(name_key))))
        # (name + postal code is a last resort, not named: the user should give an e-mail or phone)
        return [("customer_id", pc.if_else(nobody, "missing customer_id (no member id, e-mail or phone)", _NULL))]


def _digits(text: pa.Array) -> pa.Array:
    """The digits of each value (null where there are none): 03-1234-5678 -> 0312345678."""
    digits = pc.replace_substring(text, "-", "")  # the usual separator, by literal search
    if not pc.all(pc.fill_null(pc.ascii_is_decimal(digits), True)).as_py():
        digits = pc.replace_substring_regex(digits, r"\D", "")
    return pc.if_else(pc.equal(digits, ""), _NULL, digits)


def _name_key(name: pa.Array | None, postal: pa.Array | None, n: int) -> pa.Array:
    """Name (NFKC, without spaces) + "|" + postal code digits, for buyers without a usable e-mail."""
    if name is None or postal is None:
        return pa.nulls(n, pa.string())
    bare = pc.replace_substring_regex(clean_text(name), r"\s+", "")
    digits = _digits(clean_text(postal))
    bare = pc.if_else(pc.equal(bare, ""), _NULL, bare)
    return pc.binary_join_element_wise(bare, digits, "|")


def _undo_export_quirks(text: dict[str, pa.Array]) -> None:
    """What exports write around values: a leading apostrophe, hhmmss, 名 姓, JP-13 / Tokyo."""
    for name, column in text.items():
        starts = pc.starts_with(column, "'")
        if pc.any(pc.fill_null(starts, False)).as_py():  # customers_export.csv: '7812345000000, '100-0001
            text[name] = pc.replace_substring_regex(column, r"^'([0-9+])", r"\1")
    time = text.get("ordered_time")
    if time is not None:  # MakeShop 注文時間 103309 -> 10:33:09
        text["ordered_time"] = pc.replace_substring_regex(
            pc.utf8_trim_whitespace(time), r"^(\d{1,2})(\d{2})(\d{2})$", r"\1:\2:\3")
    given_first = text.pop(GIVEN_FIRST, None)
    if given_first is not None:  # Shopify Billing Name "太郎 山田" -> "山田 太郎"
        swapped = pc.replace_substring_regex(
            clean_prose(given_first), r"^(\S+)[ \x{3000}]+(\S+)$", r"\2 \1")
        text["name"] = swapped if "name" not in text else pc.coalesce(_blank_null(text["name"]), swapped)
    prefecture = text.get("prefecture")
    if prefecture is not None:
        words = pc.utf8_lower(clean_text(prefecture))
        found = pc.take(_PREFECTURE_NAMES, pc.index_in(words, _PREFECTURE_KEYS))
        text["prefecture"] = pc.coalesce(found, prefecture)


def clean_word(word: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKC", word).strip().lower()


def _join(parts: list[pa.Array], sep: str) -> pa.Array:
    """The non-blank parts joined by `sep`; null when all are blank.

    (Pairwise: pyarrow 26's null_handling="skip" drops rows whose parts are all null.)
    """
    cleaned = [clean_prose(p if pa.types.is_string(p.type) else p.cast(pa.string())) for p in parts]
    joined = cleaned[0]
    for part in cleaned[1:]:
        both = pc.binary_join_element_wise(joined, part, sep)
        joined = pc.coalesce(both, joined, part)
    return joined


def _blank_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(pc.utf8_trim(column, " \u3000"), ""), _NULL, column)


def _digests(prefix: str, keys: pa.Array, guest: pa.Array, key: str | bytes | None) -> pa.Array:
    """The digest of each guest's key (members keep their id: their keys are not hashed)."""
    keys = pc.if_else(guest, keys, _NULL)
    unique = pc.unique(keys.filter(pc.is_valid(keys)))
    if not len(unique):
        return pa.nulls(len(keys), pa.string())
    hashed = pa.array([_digest(prefix, k, key) for k in unique.to_pylist()], pa.string())
    return pc.take(hashed, pc.index_in(keys, unique))


def _has(column: pa.Array) -> pa.Array:
    """Not null and not blank (without NFKC: a full-width space is trimmed too)."""
    if isinstance(column, pa.Array) and not pc.any(pc.utf8_is_space(column)).as_py():  # no value is all spaces
        return pc.fill_null(pc.greater(pc.binary_length(column), 0), False)
    trimmed = pc.utf8_trim(column, " \t\u3000")
    return pc.fill_null(pc.greater(pc.utf8_length(trimmed), 0), False)
