"""Vectorised parsing of text columns into kizuna's types (Arrow compute, no Python loops).

Each parser takes a string array already NFKC-normalised and trimmed (so full-width
digits, ￥ and half-width katakana are already plain, and ㋿ ㍻ are 令和 平成) and returns the
typed array and the reason for every value that could not be read (null where it could).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from kizuna.importing._values import BOOLEAN_WORDS

__all__ = ["clean_prose", "clean_text", "control_characters", "parse_bool", "parse_date", "parse_enum", "parse_float",
           "parse_int", "parse_score", "parse_timestamp"]

Parsed = tuple[pa.Array, pa.Array]  # values, reasons (null = fine)

_NULL_TEXT = pa.scalar(None, pa.string())


def clean_text(column: pa.Array) -> pa.Array:
    """NFKC (full-width digits and letters, half-width kana), trimmed, empty -> null."""
    if pc.all(pc.fill_null(pc.string_is_ascii(column), True)).as_py():  # NFKC leaves ASCII as it is
        text = pc.ascii_trim_whitespace(column)
    else:
        text = _each_distinct(column, lambda values: pc.utf8_trim_whitespace(pc.utf8_normalize(values, "NFKC")))
    return _empty_null(text)


def _empty_null(text: pa.Array) -> pa.Array:
    empty = pc.equal(text, "")
    return pc.if_else(empty, _NULL_TEXT, text) if pc.any(empty).as_py() else text  # (a copy only when needed)


def _each_distinct(column: pa.Array, clean):  # noqa: ANN001, ANN202 - an Arrow function of one array
    """`clean(column)`, computed once per distinct value when the column repeats its values (a channel,
    a status word, an export's "¥1,200" amounts): Unicode normalisation, the patterns or a decoding cost far
    more than finding the distinct values. `clean` gives an array, or a tuple of arrays (`Parsed`)."""
    if not isinstance(column, pa.Array):
        return clean(column)
    encoded = pc.dictionary_encode(column)
    if 2 * len(encoded.dictionary) > len(column):
        return clean(column)
    found = clean(encoded.dictionary)
    if isinstance(found, tuple):
        return tuple(pc.take(part, encoded.indices) for part in found)
    return pc.take(found, encoded.indices)


def clean_prose(column: pa.Array) -> pa.Array:
    """What a customer wrote (a name, an address, a comment), kept as given: only the spaces
    around it are trimmed, empty -> null.

    Not NFKC: that would turn a harmless full-width ``＝1+1`` into the formula ``=1+1``, and
    the store keeps the value the customer gave (files for people neutralise formulas).
    """
    return _empty_null(pc.utf8_trim(column, " \u3000"))


# C0 and C1 controls (CR, LF, tab, NUL …) and the Unicode line and paragraph separators
_CONTROL = r"[\x00-\x1f\x7f-\x{9f}\x{2028}\x{2029}]"


def control_characters(column: pa.Array, name: str) -> pa.Array:
    """The reason for every value (an e-mail address, a phone number) holding a control character."""
    if not _may_hold_controls(column):
        return pa.nulls(len(column), pa.string())
    found = pc.fill_null(pc.match_substring_regex(column, _CONTROL), False)
    if not pc.any(found).as_py():
        return pa.nulls(len(column), pa.string())
    return pc.if_else(found, f"control character in {name} (a line break, tab, NUL or other invisible "
                             "character inside the value); remove it from the file", _NULL_TEXT)


def _may_hold_controls(column: pa.Array) -> bool:
    """False when no byte of the column's text can start a control character: below 0x20, 0x7f, or the
    first byte of U+0080-U+009F (0xc2) or of U+2028/U+2029 (0xe2). One pass over the text buffer,
    where the pattern would run on every value."""
    import numpy as np

    if not isinstance(column, pa.Array) or column.type != pa.string() or column.buffers()[2] is None:
        return True
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    return bool(((data < 0x20) | (data == 0x7F) | (data == 0xC2) | (data == 0xE2)).any())


def _fail(column: pa.Array, parsed: pa.Array, reason: str) -> pa.Array:
    failed = pc.and_(pc.is_valid(column), pc.is_null(parsed))
    return pc.if_else(failed, reason, _NULL_TEXT)


def _whole(text: pa.Array) -> pa.Array:
    text = pc.replace_substring_regex(text, r"^(-?\d+)\.0*$", r"\1")
    ok = pc.match_substring_regex(text, r"^-?\d{1,18}$")
    return pc.if_else(ok, text, _NULL_TEXT).cast(pa.int64())


# A comma in a number is a thousands separator only between groups of exactly three digits
# (1,200 / ¥1,200,000 / 1,200円); anything else (1200,50 / 12,5 / 1,2,3) is a decimal comma or a
# typing error, and dropping it would store another amount.
_THOUSANDS = r"^[^\d,]*\d{1,3}(?:,\d{3})+(?:\.\d*)?[^\d,]*$"
COMMA_REASON = ("misplaced comma: a comma that is not a thousands separator (write whole numbers as "
                "1200 or 1,200; a decimal comma is not read)")


def _misplaced_commas(column: pa.Array) -> pa.Array | None:
    """True where a value holds a comma that does not separate thousands; None if none does."""
    has_comma = pc.fill_null(pc.match_substring(column, ","), False)
    if not pc.any(has_comma).as_py():
        return None
    bad = pc.and_(has_comma, pc.invert(pc.fill_null(pc.match_substring_regex(column, _THOUSANDS), False)))
    return bad if pc.any(bad).as_py() else None


def _comma_checked(column: pa.Array, values: pa.Array, reasons: pa.Array) -> Parsed:
    bad = _misplaced_commas(column)
    if bad is None:
        return values, reasons
    return (pc.if_else(bad, pa.scalar(None, values.type), values),
            pc.if_else(bad, COMMA_REASON, reasons))


def parse_int(column: pa.Array, what: str = "a whole number") -> Parsed:
    """Whole numbers and yen amounts: ``¥1,200``, ``1200円``, ``▲300`` (-300), ``12.0``.

    A comma must separate thousands: ``1200,50`` or ``1,2,3`` is rejected, not read as 120050 or 123.

    >>> parse_int(pa.array(["¥1,200", "▲300", "1200,50"]))[0].to_pylist()
    [1200, -300, None]
    """
    plain = pc.fill_null(pc.and_(pc.ascii_is_decimal(column), pc.less_equal(pc.binary_length(column), 18)), True)
    if pc.all(plain).as_py():  # most exports write plain digits: no need for the patterns below
        return column.cast(pa.int64()), pa.nulls(len(column), pa.string())
    marked = pc.invert(plain)
    if not isinstance(column, pa.Array) or 2 * (pc.sum(marked).as_py() or 0) > len(column):
        return _each_distinct(column, lambda values: _comma_checked(values, *_parse_marked_int(values, what)))
    # a few "¥1,200" among plain digits: the patterns below only for those
    some = pc.filter(column, marked)
    values, reasons = _comma_checked(some, *_parse_marked_int(some, what))
    plain_values = pc.if_else(plain, column, _NULL_TEXT).cast(pa.int64())
    return (pc.replace_with_mask(plain_values, marked, values),
            pc.replace_with_mask(pa.nulls(len(column), pa.string()), marked, reasons))


def _parse_marked_int(column: pa.Array, what: str) -> Parsed:
    # ¥1,200 / 1200円 / \1,200 (¥ as Shift_JIS shows a backslash) / ▲300 (Japanese minus);
    # the usual marks go by literal search first, which is several times faster than a pattern
    text = column
    for mark in (",", "¥", "円"):
        if pc.any(pc.fill_null(pc.match_substring(text, mark), False)).as_py():
            text = pc.replace_substring(text, mark, "")
    if pc.all(pc.fill_null(pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 18)),
                           True)).as_py():
        values = text.cast(pa.int64())
        return values, _fail(column, values, f"not {what}")
    text = pc.replace_substring_regex(text, r"[¥$円,\s\\]", "")
    text = pc.replace_substring_regex(text, r"^[▲△]", "-")
    values = _whole(text)
    return values, _fail(column, values, f"not {what}")


def parse_score(column: pa.Array) -> Parsed:
    """An NPS answer as a whole number; Japanese survey exports write ``10点`` or ``9 pt``.

    The 0-10 range is a row rule of the importer, not checked here.

    >>> parse_score(pa.array(["10点", "9 pt", "7"]))[0].to_pylist()
    [10, 9, 7]
    """
    # only a unit after the number: "9点満点中7" or "10円" are not scores
    text = pc.replace_substring_regex(column, r"(?i)^(-?\d+(?:\.0*)?)\s*(?:点|pts?|points?)$", r"\1")
    values = _whole(text)
    return values, _fail(column, values, "not a score (write a whole number 0-10, e.g. 9 or 9点)")


def parse_float(column: pa.Array) -> Parsed:
    text = pc.replace_substring_regex(column, r"[,\s]", "")
    ok = pc.match_substring_regex(text, r"^-?(\d+(\.\d*)?|\.\d+)$")
    values = pc.if_else(ok, text, _NULL_TEXT).cast(pa.float64())
    return _comma_checked(column, values, _fail(column, values, "not a number"))


# Japanese eras: name, initial (as written in R6.1.5) and the Gregorian year of its 元年 (year 1)
_ERAS = (("明治", "M", 1868), ("大正", "T", 1912), ("昭和", "S", 1926), ("平成", "H", 1989),
         ("令和", "R", 2019))
_ERA_PATTERN = (
    r"^(?P<era>" + "|".join(name for name, _, _ in _ERAS) + r"|[MTSHRmtshr])"
    r"\s*(?P<n>元|\d{1,2})\s*(?P<sep>年|[./-])(?P<rest>.*)$"
)
# text that was meant as an era date, for a reason that shows the era forms
_ERA_HINT = r"^(?:" + "|".join(name for name, _, _ in _ERAS) + r"|[MTSHRmtshr]\s*\d)"
_ERA_WORDS = pa.array([w for name, initial, _ in _ERAS for w in (name, initial)])
_ERA_STARTS = pa.array([start for _, _, start in _ERAS for _ in (0, 1)], pa.int64())


def _era_to_gregorian(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """令和6年1月5日 -> 2024年1月5日, R06/01/05 -> 2024/01/05; and which rows look like era dates.

    The year is simple arithmetic (era start + n - 1) without checking the era's end or first
    day: 平成32年 is what many systems printed for 2020 after the change of era, and refusing
    令和元年4月30日 (a day of Heisei) would reject a row whose date is unambiguous anyway.
    """
    # most columns hold only dates that start with a digit: skip the regex for them
    starts_with_digit = pc.fill_null(pc.utf8_is_digit(pc.utf8_slice_codeunits(column, 0, 1)), True)
    if pc.all(starts_with_digit).as_py():
        return column, pc.invert(starts_with_digit)
    is_era = pc.fill_null(pc.match_substring_regex(column, _ERA_HINT), False)
    if not pc.any(is_era).as_py():
        return column, is_era
    parts = pc.extract_regex(column, _ERA_PATTERN)
    era = pc.utf8_upper(pc.struct_field(parts, "era"))
    start = pc.take(_ERA_STARTS, pc.index_in(era, _ERA_WORDS))
    number = pc.replace_substring(pc.struct_field(parts, "n"), "元", "1").cast(pa.int64())
    year = pc.add(start, pc.subtract(number, 1))
    # 令和0年 does not exist: leave the year null so the row is rejected
    year = pc.if_else(pc.greater(number, 0), year, pa.scalar(None, pa.int64()))
    rebuilt = pc.binary_join_element_wise(
        year.cast(pa.string()), pc.struct_field(parts, "sep"), pc.struct_field(parts, "rest"), "",
    )
    return pc.if_else(pc.is_valid(parts), rebuilt, column), is_era


_DATE_PATTERN = (
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[ T]+(?P<h>\d{1,2}):(?P<mi>\d{1,2})(?::(?P<s>\d{1,2})(?:\.\d+)?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def _date_parts(column: pa.Array) -> pa.StructArray:
    # 2024年1月5日 10時30分 / 2024/1/5 10:30 / 2024.1.5 / 20240105 -> 2024-1-5 10:30
    text = pc.replace_substring_regex(column, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3")
    # official documents pad with spaces: 令和 6年 1月 5日
    text = pc.replace_substring_regex(text, r"[年月]\s*|/", "-")
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


# Excel's 1900 date system counts days from 1899-12-30 (day 60 is its fictitious 1900-02-29,
# so this epoch is right for every serial after 1900-03-01); the fraction is the time of day.
_EXCEL_EPOCH_SECONDS = -25569 * 86400
# a General cell shows a date as its serial: 5 digits, 20000 (1954-10-03) to 80000 (2119-01-11);
# 4 digits are a year and 8 digits are 20240105, so neither is taken for a serial
_SERIAL_PATTERN = r"^\d{5}(?:\.\d+)?$"
_SERIAL_RANGE = (20000, 80000)


def _excel_serials(column: pa.Array) -> pa.Array:
    """45296 -> 2024-01-05 00:00, 45296.75 -> 2024-01-05 18:00 (to the second); else null."""
    is_serial = pc.match_substring_regex(column, _SERIAL_PATTERN)
    number = pc.if_else(is_serial, column, _NULL_TEXT).cast(pa.float64())
    low, high = _SERIAL_RANGE
    number = pc.if_else(pc.and_(pc.greater_equal(number, low), pc.less_equal(number, high)),
                        number, pa.scalar(None, pa.float64()))
    # round to whole seconds: 13:05 is stored as 0.5451388…, shown with a few digits
    seconds = pc.round(pc.multiply(number, 86400.0)).cast(pa.int64())
    micros = pc.multiply(pc.add(seconds, _EXCEL_EPOCH_SECONDS), 1_000_000)
    return micros.cast(pa.timestamp("us"))


# Forms that most exports write for every row, read by strptime alone: (form, its exact shape, # a
# digit). The day is checked too, so 2024/2/30 (which strptime rolls over into March) and unpadded
# 2024/1/5 still take the general path below.
_PLAIN_FORMS = (
    ("%Y/%m/%d %H:%M:%S", "####/##/## ##:##:##"),
    ("%Y-%m-%d %H:%M:%S", "####-##-## ##:##:##"),
    ("%Y/%m/%d %H:%M", "####/##/## ##:##"),
    ("%Y-%m-%d %H:%M", "####-##-## ##:##"),
    ("%Y-%m-%d", "####-##-##"),
    ("%Y/%m/%d", "####/##/##"),
)


def _plain_stamps(column: pa.Array) -> pa.Array | None:
    """Timestamps when every value is in one plain form; else None (the general path decides)."""
    text = _fixed_width_text(column)
    if text is None:
        return None
    for form, shape in _PLAIN_FORMS:
        if text.shape[1] != len(shape) or not _fits(text, shape):
            continue
        parsed = pc.strptime(column, format=form, unit="us", error_is_null=True)
        if parsed.null_count != column.null_count:
            return None
        written = (text[:, 8] - 48).astype("int64") * 10 + (text[:, 9] - 48)
        return parsed if bool((pc.day(parsed.drop_null()).to_numpy() == written).all()) else None
    return None


def _fixed_width_text(column: pa.Array):  # noqa: ANN202 - a NumPy array, imported here
    """The bytes of the column's values as a NumPy matrix, a row per value, when every value has the same
    length (a shape is then checked position by position, not by a pattern per row); else None."""
    import numpy as np

    if not isinstance(column, pa.Array) or column.type != pa.string():
        return None
    values = column.drop_null()
    if not len(values):
        return None
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
    width = int(offsets[1] - offsets[0])
    if width == 0 or int(offsets[-1] - offsets[0]) != width * len(values) or not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    return data[offsets[0]:offsets[-1]].reshape(len(values), width)


def _fits(text, shape: str) -> bool:  # noqa: ANN001 - a NumPy matrix
    """Every row of `text` (see `_fixed_width_text`) has a digit where `shape` has #, and its other characters."""
    digits = [i for i, c in enumerate(shape) if c == "#"]
    marks = [i for i, c in enumerate(shape) if c != "#"]
    return bool(((text[:, digits] - 48) < 10).all()
                and (text[:, marks] == [ord(shape[i]) for i in marks]).all())


def _stamps(column: pa.Array, timezone: str) -> tuple[pa.Array, pa.Array]:
    """Parsed local timestamps (null where unreadable) and which rows were written as era dates."""
    plain = _plain_stamps(column)
    if plain is not None:
        return plain, pa.repeat(pa.scalar(False), len(column))
    text, is_era = _era_to_gregorian(column)
    parts = _date_parts(text)
    joined = pc.binary_join_element_wise(
        parts.field("y"), "-", _pad(parts.field("mo"), 2, "01"), "-",
        _pad(parts.field("d"), 2, "01"), " ", _pad(parts.field("h"), 2, "00"), ":",
        _pad(parts.field("mi"), 2, "00"), ":", _pad(parts.field("s"), 2, "00"), "",
    )
    stamps = pc.strptime(joined, format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True)
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
    # serials carry no offset: like other plain dates, they are wall-clock time in `timezone`
    if pc.any(pc.and_(pc.is_null(stamps), pc.is_valid(column))).as_py():  # (rare: skip the work)
        stamps = pc.coalesce(stamps, _excel_serials(column))
    return stamps, is_era


# years outside this range are typing errors or placeholders (9999-12-31 "no end",
# Excel's 1900-01-00 / 1899-12-30 zero dates), never a customer's order or birthday
_PLAUSIBLE_YEARS = (1901, 2099)


def _checked(column: pa.Array, stamps: pa.Array, is_era: pa.Array, example: str) -> Parsed:
    """Implausible years become reasons, not values; the rest fail with `example`."""
    low, high = _PLAUSIBLE_YEARS
    year = pc.year(stamps)
    implausible = pc.fill_null(pc.or_(pc.less(year, low), pc.greater(year, high)), False)
    if pc.any(implausible).as_py():  # (rare: formatting every date would cost more than parsing)
        shown = pc.binary_join_element_wise(
            "implausible date ", pc.strftime(stamps, "%Y-%m-%d"), " (check the year)", "",
        )
        stamps = pc.if_else(implausible, pa.scalar(None, stamps.type), stamps)
    else:
        shown = _NULL_TEXT
    failed = pc.and_(pc.is_valid(column), pc.is_null(stamps))
    if shown is _NULL_TEXT and not pc.any(failed).as_py():  # every date read
        return stamps, pa.nulls(len(column), pa.string())
    era_failed = pc.and_(failed, is_era)
    reasons = pc.case_when(
        pc.make_struct(implausible, era_failed, failed),
        shown, "not a date (write an era date e.g. 令和6年1月5日 or R6.1.5)", example,
    )
    return stamps, reasons


def parse_timestamp(column: pa.Array, timezone: str) -> Parsed:
    """Local wall-clock time in `timezone`; a written offset (+09:00, Z) is converted.

    Reads 2024-01-05 10:30, 2024/1/5, 2024年1月5日 13時05分, 20240105, era dates (令和6年1月5日,
    令和元年5月1日, R6.1.5, H31.4.30) and Excel serials from General cells (45296.5 is
    2024-01-05 12:00). Years before 1901 or after 2099 are rejected as implausible.

    >>> parse_timestamp(pa.array(["R6.1.5", "45296.5", "9999-12-31"]), "Asia/Tokyo")[1].to_pylist()
    [None, None, 'implausible date 9999-12-31 (check the year)']
    """
    stamps, is_era = _stamps(column, timezone)
    return _checked(column, stamps, is_era, "not a date (write e.g. 2024/1/5 or 2024-01-05 10:30)")


def _to_local(stamps: pa.Array, offsets: pa.Array, has_offset: pa.Array, tz: str) -> pa.Array:
    normalised = pc.replace_substring(pc.replace_substring(offsets, "Z", "+00:00"), ":", "")
    normalised = pc.if_else(has_offset, normalised, _NULL_TEXT)
    sign = pc.if_else(pc.starts_with(normalised, "-"), -1, 1)
    hours = pc.utf8_slice_codeunits(normalised, 1, 3).cast(pa.int64())
    minutes = pc.utf8_slice_codeunits(normalised, 3, 5).cast(pa.int64())
    seconds = pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    micros = pc.multiply(pc.fill_null(seconds, 0), 1_000_000)
    as_utc = pc.subtract(stamps.cast(pa.int64()), micros).cast(pa.timestamp("us", "UTC"))
    local = pc.local_timestamp(as_utc.cast(pa.timestamp("us", ZoneInfo(tz).key)))
    return pc.if_else(has_offset, local, stamps)


def parse_date(column: pa.Array) -> Parsed:
    """A calendar date; the same forms as `parse_timestamp`, the time of day dropped.

    >>> parse_date(pa.array(["令和元年5月1日", "S64.1.7"]))[0].to_pylist()
    [datetime.date(2019, 5, 1), datetime.date(1989, 1, 7)]
    """
    stamps, is_era = _stamps(column, "UTC")
    stamps, reasons = _checked(column, stamps, is_era, "not a date (write e.g. 1985/4/1)")
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
