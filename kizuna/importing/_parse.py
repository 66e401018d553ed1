"""Vectorised parsing of text columns into kizuna's types (Arrow compute, no Python loops).

Each parser takes a string array already NFKC-normalised and trimmed (so full-width
digits, ￥ and half-width katakana are already plain) and returns the typed array
and the reason for every value that could not be read (null where it could).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from kizuna.importing._values import BOOLEAN_WORDS

__all__ = ["clean_text", "parse_bool", "parse_date", "parse_enum", "parse_float",
           "parse_int", "parse_timestamp"]

Parsed = tuple[pa.Array, pa.Array]  # values, reasons (null = fine)


def clean_text(column: pa.Array) -> pa.Array:
    """NFKC (full-width digits and letters, half-width kana), trimmed, empty -> null."""
    text = pc.utf8_trim_whitespace(pc.utf8_normalize(column, "NFKC"))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _fail(column: pa.Array, parsed: pa.Array, reason: str) -> pa.Array:
    failed = pc.and_(pc.is_valid(column), pc.is_null(parsed))
    return pc.if_else(failed, reason, pa.scalar(None, pa.string()))


def parse_int(column: pa.Array, what: str = "a whole number") -> Parsed:
    # ¥1,200 / 1200円 / \1,200 (¥ as Shift_JIS shows a backslash) / ▲300 (Japanese minus)
    text = pc.replace_substring_regex(column, r"[¥$円,\s\\]", "")
    text = pc.replace_substring_regex(text, r"^[▲△]", "-")
    text = pc.replace_substring_regex(text, r"^(-?\d+)\.0*$", r"\1")
    ok = pc.match_substring_regex(text, r"^-?\d{1,18}$")
    values = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.int64())
    return values, _fail(column, values, f"not {what}")


def parse_float(column: pa.Array) -> Parsed:
    text = pc.replace_substring_regex(column, r"[,\s]", "")
    ok = pc.match_substring_regex(text, r"^-?(\d+(\.\d*)?|\.\d+)$")
    values = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
    return values, _fail(column, values, "not a number")


_DATE_PATTERN = (
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[ T]+(?P<h>\d{1,2}):(?P<mi>\d{1,2})(?::(?P<s>\d{1,2})(?:\.\d+)?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def _date_parts(column: pa.Array) -> pa.StructArray:
    # 2024年1月5日 10時30分 / 2024/1/5 10:30 / 2024.1.5 / 20240105 -> 2024-1-5 10:30
    text = pc.replace_substring_regex(column, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"[年月/]", "-")
    text = pc.replace_substring_regex(text, r"\(.\)", "")  # weekday: 2024/1/5(金)
    text = pc.replace_substring_regex(text, r"日", " ")
    text = pc.replace_substring_regex(text, r"時", ":")
    text = pc.replace_substring_regex(text, r"分", ":")
    text = pc.replace_substring_regex(text, r"秒", "")
    text = pc.replace_substring_regex(text, r":$", "")
    text = pc.replace_substring_regex(text, r":(\d):", r":0\1:")
    text = pc.utf8_trim_whitespace(text)
    # "2024-1-5 10:30:.123" style fractions were cut by the pattern; only seconds matter
    return pc.extract_regex(text, _DATE_PATTERN)


def _pad(part: pa.Array, width: int, default: str) -> pa.Array:
    filled = pc.if_else(pc.or_(pc.is_null(part), pc.equal(part, "")), default, part)
    return pc.utf8_lpad(filled, width, "0")


def parse_timestamp(column: pa.Array, timezone: str) -> Parsed:
    """Local wall-clock time in `timezone`; a written offset (+09:00, Z) is converted."""
    parts = _date_parts(column)
    text = pc.binary_join_element_wise(
        parts.field("y"), "-", _pad(parts.field("mo"), 2, "01"), "-",
        _pad(parts.field("d"), 2, "01"), " ", _pad(parts.field("h"), 2, "00"), ":",
        _pad(parts.field("mi"), 2, "00"), ":", _pad(parts.field("s"), 2, "00"), "",
    )
    stamps = pc.strptime(text, format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
    # strptime rolls 2024/2/30 over into March: a date must read back as written
    same_day = pc.and_(
        pc.equal(pc.day(stamps), _pad(parts.field("d"), 2, "01").cast(pa.int64())),
        pc.equal(pc.month(stamps), _pad(parts.field("mo"), 2, "01").cast(pa.int64())),
    )
    stamps = pc.if_else(pc.fill_null(same_day, False), stamps, pa.scalar(None, stamps.type))
    offsets = parts.field("tz")
    has_offset = pc.and_(pc.is_valid(offsets), pc.not_equal(offsets, ""))
    if pc.any(has_offset).as_py():
        stamps = _to_local(stamps, offsets, has_offset, timezone)
    return stamps, _fail(column, stamps, "not a date (write e.g. 2024/1/5 or 2024-01-05 10:30)")


def _to_local(stamps: pa.Array, offsets: pa.Array, has_offset: pa.Array, tz: str) -> pa.Array:
    normalised = pc.replace_substring(pc.replace_substring(offsets, "Z", "+00:00"), ":", "")
    normalised = pc.if_else(has_offset, normalised, pa.scalar(None, pa.string()))
    sign = pc.if_else(pc.starts_with(normalised, "-"), -1, 1)
    hours = pc.utf8_slice_codeunits(normalised, 1, 3).cast(pa.int64())
    minutes = pc.utf8_slice_codeunits(normalised, 3, 5).cast(pa.int64())
    seconds = pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    micros = pc.multiply(pc.fill_null(seconds, 0), 1_000_000)
    as_utc = pc.subtract(stamps.cast(pa.int64()), micros).cast(pa.timestamp("us", "UTC"))
    local = pc.local_timestamp(as_utc.cast(pa.timestamp("us", ZoneInfo(tz).key)))
    return pc.if_else(has_offset, local, stamps)


def parse_date(column: pa.Array) -> Parsed:
    stamps, reasons = parse_timestamp(column, "UTC")
    reasons = pc.if_else(pc.is_valid(reasons), "not a date (write e.g. 1985/4/1)", reasons)
    return stamps.cast(pa.date32()), reasons


def parse_bool(column: pa.Array) -> Parsed:
    lowered = pc.utf8_lower(column)
    truthy = pc.is_in(lowered, pa.array(BOOLEAN_WORDS[True]))
    falsy = pc.is_in(lowered, pa.array(BOOLEAN_WORDS[False]))
    values = pc.if_else(truthy, True, pc.if_else(falsy, False, pa.scalar(None, pa.bool_())))
    return values, _fail(column, values, "not yes/no (write e.g. 1/0, true/false, はい/いいえ)")


def parse_enum(column: pa.Array, spellings: dict[str, tuple[str, ...]], label: str) -> Parsed:
    lowered = pc.utf8_lower(column)
    words: list[str] = []
    canon: list[str] = []
    for value, aliases in spellings.items():
        for alias in aliases:
            words.append(alias.lower())
            canon.append(value)
    index = pc.index_in(lowered, pa.array(words))
    values = pc.take(pa.array(canon), index)
    allowed = ", ".join(spellings)
    return values, _fail(
        column, values, f"unknown {label}; use one of {allowed} or map it in [values.{label}]"
    )
