"""The vectorised parsers on their own: Japanese date forms, Excel serials, implausible years, 点.

Expectations are worked out by hand (era start + n - 1; Excel serial = days since 1899-12-30).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from kizuna.importing._parse import clean_text, parse_date, parse_int, parse_score, parse_timestamp

TOKYO = "Asia/Tokyo"
NOT_A_DATE = "not a date (write e.g. 2024/1/5 or 2024-01-05 10:30)"
NOT_A_BIRTHDAY = "not a date (write e.g. 1985/4/1)"
NOT_AN_ERA_DATE = "not a date (write an era date e.g. 令和6年1月5日 or R6.1.5)"


def stamp(text: str, timezone: str = TOKYO) -> tuple[dt.datetime | None, str | None]:
    values, reasons = parse_timestamp(pa.array([text]), timezone)
    return values[0].as_py(), reasons[0].as_py()


def day(text: str) -> tuple[dt.date | None, str | None]:
    values, reasons = parse_date(pa.array([text]))
    return values[0].as_py(), reasons[0].as_py()


@pytest.mark.parametrize(("text", "expected"), [
    ("令和6年1月5日", dt.datetime(2024, 1, 5)),
    ("令和6年1月5日 13時05分", dt.datetime(2024, 1, 5, 13, 5)),
    ("令和 6年 1月 5日", dt.datetime(2024, 1, 5)),
    ("平成31年4月30日(火)", dt.datetime(2019, 4, 30)),
    ("R6.1.5", dt.datetime(2024, 1, 5)),
    ("R06/01/05", dt.datetime(2024, 1, 5)),
    ("r6.1.5", dt.datetime(2024, 1, 5)),
    ("R6.1.5 9:30", dt.datetime(2024, 1, 5, 9, 30)),
    ("H31.4.30", dt.datetime(2019, 4, 30)),
    ("S64.1.7", dt.datetime(1989, 1, 7)),
    ("T15.12.24", dt.datetime(1926, 12, 24)),
    ("明治45年7月29日", dt.datetime(1912, 7, 29)),
])
def test_era_timestamps(text, expected):
    assert stamp(text) == (expected, None)


@pytest.mark.parametrize(("text", "expected"), [
    # the first day of each era is its 元年
    ("令和元年5月1日", dt.date(2019, 5, 1)),
    ("平成元年1月8日", dt.date(1989, 1, 8)),
    ("昭和元年12月25日", dt.date(1926, 12, 25)),
    ("大正元年7月30日", dt.date(1912, 7, 30)),
    # the last day of the era before
    ("平成31年4月30日", dt.date(2019, 4, 30)),
    ("昭和64年1月7日", dt.date(1989, 1, 7)),
    # outside the era: plain arithmetic, as systems that kept printing 平成 did
    ("平成32年1月1日", dt.date(2020, 1, 1)),
    ("令和1年4月30日", dt.date(2019, 4, 30)),
    ("S63.4.1", dt.date(1988, 4, 1)),
])
def test_era_dates_and_boundaries(text, expected):
    assert day(text) == (expected, None)


def test_era_ligatures_after_nfkc():
    assert parse_date(clean_text(pa.array(["㋿6年1月5日", "㍻31年4月30日", "㍼64年1月7日"])))[0].to_pylist() == [
        dt.date(2024, 1, 5), dt.date(2019, 4, 30), dt.date(1989, 1, 7),
    ]


@pytest.mark.parametrize("text", [
    "令和0年1月1日", "R6.13.1", "R6.2.30", "令和6年", "平成", "令和6年1月5日1", "R123.1.1", "H31..4",
])
def test_invalid_era_forms_are_rejected_with_a_reason(text):
    assert stamp(text) == (None, NOT_AN_ERA_DATE)
    assert day(text) == (None, NOT_AN_ERA_DATE)


@pytest.mark.parametrize("text", ["X6.1.5", "K6年1月5日", "6.1.5"])
def test_unknown_eras_are_not_dates(text):
    assert stamp(text) == (None, NOT_A_DATE)


@pytest.mark.parametrize(("text", "expected"), [
    ("45296", dt.datetime(2024, 1, 5)),
    ("45296.0", dt.datetime(2024, 1, 5)),
    ("45296.5", dt.datetime(2024, 1, 5, 12)),
    ("45296.75", dt.datetime(2024, 1, 5, 18)),
    ("45296.545138888889", dt.datetime(2024, 1, 5, 13, 5)),  # 13:05 as Excel stores it
    ("45296.54514", dt.datetime(2024, 1, 5, 13, 5)),  # ... and as a General cell shows it
    ("20000", dt.datetime(1954, 10, 3)),
    ("36526", dt.datetime(2000, 1, 1)),
    ("73050", dt.datetime(2099, 12, 31)),
])
def test_excel_serials(text, expected):
    assert stamp(text) == (expected, None)


def test_excel_serials_as_dates_drop_the_time():
    assert day("45296.75") == (dt.date(2024, 1, 5), None)


def test_excel_serials_take_no_offset():
    # a serial is wall-clock time like any date written without an offset
    assert stamp("45296.5", "America/New_York") == (dt.datetime(2024, 1, 5, 12), None)


@pytest.mark.parametrize("text", ["60", "1", "0", "19999", "2024", "123456", "-45296", "45296.", "4.5296e4"])
def test_numbers_that_are_not_serials(text):
    assert stamp(text) == (None, NOT_A_DATE)
    assert day(text) == (None, NOT_A_BIRTHDAY)


def test_eight_digit_dates_are_not_serials():
    assert stamp("20240105") == (dt.datetime(2024, 1, 5), None)
    assert day("20240105") == (dt.date(2024, 1, 5), None)


@pytest.mark.parametrize(("text", "shown"), [
    ("9999-12-31", "9999-12-31"),
    ("1900-01-01", "1900-01-01"),  # Excel's serial 1
    ("1899-12-30", "1899-12-30"),  # Excel's serial 0 as other tools write it
    ("1899-12-31", "1899-12-31"),
    ("1900/1/1 0:00", "1900-01-01"),
    ("2100-01-01", "2100-01-01"),
    ("80000", "2119-01-11"),  # a serial in range but past 2099
    ("明治33年1月1日", "1900-01-01"),
    ("1900-06-01T12:00+09:00", "1900-06-01"),
])
def test_implausible_years_are_reasons_not_values(text, shown):
    reason = f"implausible date {shown} (check the year)"
    assert stamp(text) == (None, reason)
    assert day(text) == (None, reason)


def test_plausible_range_ends():
    assert day("1901-01-01") == (dt.date(1901, 1, 1), None)
    assert day("2099-12-31") == (dt.date(2099, 12, 31), None)


def test_excel_day_zero_is_not_a_date():
    assert stamp("1900-01-00") == (None, NOT_A_DATE)


def test_reasons_per_row_in_one_array():
    values, reasons = parse_timestamp(pa.array(["R6.1.5", None, "9999-12-31", "x", "45296", "令和6年13月1日"]), TOKYO)
    assert values.to_pylist() == [dt.datetime(2024, 1, 5), None, None, None, dt.datetime(2024, 1, 5), None]
    assert reasons.to_pylist() == [
        None, None, "implausible date 9999-12-31 (check the year)", NOT_A_DATE, None, NOT_AN_ERA_DATE,
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-05T10:00+09:00", dt.datetime(2024, 1, 5, 10)),
    ("2024-01-05 01:00Z", dt.datetime(2024, 1, 5, 10)),
    ("2024-01-04T20:00-0500", dt.datetime(2024, 1, 5, 10)),
    ("2024年1月5日 13時05分", dt.datetime(2024, 1, 5, 13, 5)),
    ("2024/1/5(金)", dt.datetime(2024, 1, 5)),
    ("2024.1.5", dt.datetime(2024, 1, 5)),
])
def test_gregorian_forms_and_offsets_still_work(text, expected):
    assert stamp(text) == (expected, None)


def test_offsets_mixed_with_era_and_serial_rows():
    values, reasons = parse_timestamp(pa.array(["2024-01-05 01:00Z", "R6.1.5", "45296.5"]), TOKYO)
    assert values.to_pylist() == [dt.datetime(2024, 1, 5, 10), dt.datetime(2024, 1, 5), dt.datetime(2024, 1, 5, 12)]
    assert reasons.to_pylist() == [None, None, None]


def test_invalid_calendar_days_still_rejected():
    assert stamp("2024/2/30") == (None, NOT_A_DATE)


@pytest.mark.parametrize(("text", "expected"), [
    ("10点", 10), ("10 点", 10), ("0点", 0), ("9pt", 9), ("9 PT", 9), ("8pts", 8), ("7 points", 7),
    ("7", 7), ("10.0", 10), ("11点", 11),  # 0-10 is the importer's row rule
])
def test_scores(text, expected):
    values, reasons = parse_score(pa.array([text]))
    assert (values[0].as_py(), reasons[0].as_py()) == (expected, None)


@pytest.mark.parametrize("text", ["9点満点中7", "10円", "点", "十点", "9.5点", "x"])
def test_not_scores(text):
    values, reasons = parse_score(pa.array([text]))
    assert (values[0].as_py(), reasons[0].as_py()) == (None, "not a score (write a whole number 0-10, e.g. 9 or 9点)")


def test_score_nulls_stay_null_without_a_reason():
    values, reasons = parse_score(pa.array([None], pa.string()))
    assert values.to_pylist() == [None] and reasons.to_pylist() == [None]


def test_amounts_keep_their_forms():
    amounts = pa.array(["¥1,200", "1200円", "\\1,200", "▲300", "12.0", "10点"])
    values, reasons = parse_int(amounts, "an amount in whole yen")
    assert values.to_pylist() == [1200, 1200, 1200, -300, 12, None]
    assert reasons.to_pylist() == [None] * 5 + ["not an amount in whole yen"]


def test_marked_amounts_in_several_chunks_parse_as_in_one():
    # the repeated "¥1,200" of an export are parsed once per distinct value, in one chunk or several
    chunks = [["¥1,200", "¥1,200", "1,200円"], ["¥300", None, "¥1,2,00"]]
    whole = parse_int(pa.array([v for chunk in chunks for v in chunk]))
    split = parse_int(pa.chunked_array(chunks))
    assert split[0].to_pylist() == whole[0].to_pylist() == [1200, 1200, 1200, 300, None, None]
    assert split[1].to_pylist() == whole[1].to_pylist()
