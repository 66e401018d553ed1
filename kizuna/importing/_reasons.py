"""Why a row was rejected, in the reader's language.

The readers and checks write each reason as an English sentence (what the tests, the logs and
`--format json` know); `reason_phrase` finds the catalogue's phrase for it (``reject.*`` in
kizuna.i18n), so the rejects file and the summary say it in the language of the import. A reason
no pattern knows is kept as written. The checks name kizuna's own columns (`customer_id`,
`amount`); a person reads the column as their file names it (顧客ID, 受注金額), so `headers` maps
the one to the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kizuna._errors import Phrase

__all__ = ["reason_phrase"]

_TABLES = ("customers", "products", "orders", "order_items", "nps_answers", "support_contacts", "events", "calls")
# (pattern of the English reason, catalogue key); the first that matches the whole reason wins
_PATTERNS = tuple((re.compile(pattern), key) for pattern, key in (
    (r"missing customer_id \(no member id, e-mail or phone\)", "reject.missing_buyer"),
    (r"missing (?P<column>\w+)", "reject.missing"),
    (r"not a whole number", "reject.not_whole_number"),
    (r"not an amount in whole yen", "reject.not_yen"),
    (r"not a score \(write a whole number 0-10, e\.g\. 9 or 9点\)", "reject.not_score"),
    (r"not a number", "reject.not_number"),
    (r"not yes/no \(write e\.g\. 1/0, true/false, はい/いいえ\)", "reject.not_yes_no"),
    (r"unknown (?P<column>\w+); use one of (?P<allowed>.+) or map it in \[values\.(?P=column)\]",
     "reject.unknown_value"),
    (r"implausible date (?P<day>[\d-]+) \(check the year\)", "reject.implausible_date"),
    (r"not a date \(write an era date e\.g\. 令和6年1月5日 or R6\.1\.5\)", "reject.not_era_date"),
    (r"not a date \(write e\.g\. 2024/1/5 or 2024-01-05 10:30\)", "reject.not_timestamp"),
    (r"not a date \(write e\.g\. 1985/4/1\)", "reject.not_date"),
    (r"misplaced comma: .*", "reject.misplaced_comma"),
    (r"control character in (?P<column>\w+) \(.*", "reject.control_character"),
    (r"negative (?P<column>\w+)", "reject.negative"),
    (r"quantity must be 1 or more", "reject.quantity"),
    (r"NPS score outside 0-10", "reject.score_outside"),
    (r"refund larger than the order amount", "reject.refund_over"),
    (r"unknown (?P<column>\w+) \(not in (?P<table>\w+): import (?P=table) first\)", "reject.unknown_reference"),
    (r"unknown (?P<column>customer_id) \(not in customers\)", "reject.unknown_customer"),
    (r"not a column of calls", "reject.not_call_column"),
    (r"duplicate (?P<key>.+) with different data \(row (?P<row>\d+) kept\)", "reject.duplicate"),
    (r"stray quote: a quote \(\"\) opened in column (?P<column>.+) of row (?P<row>\d+) runs over (?P<lines>\d+) "
     r"lines that look like rows; close or remove it", "reject.stray_quote"),
    (r"wrong number of fields \((?P<n>\d+) where the header has (?P<width>\d+)\)", "reject.wrong_fields"),
    (r"undecodable bytes: not (?P<encoding>\S+) text \(the file is read as (?P=encoding)\)", "reject.undecodable"),
    (r"value too large: column (?P<column>.+) of row (?P<row>\d+) holds (?P<length>[\d,]+) characters, more than "
     r"the (?P<limit>[\d,]+) a value may have \(the field-size limit\); shorten or remove it",
     "reject.too_large_column"),
    (r"value too large: field (?P<field>\d+) of row (?P<row>\d+) holds (?P<length>[\d,]+) characters, more than "
     r"the (?P<limit>[\d,]+) a value may have \(the field-size limit\); shorten or remove it",
     "reject.too_large_field"),
    (r"unclosed quote: a quote \(\"\) opened in row (?P<row>\d+) is never closed; close or remove it",
     "reject.unclosed_quote"),
    (r"quote inside a value: row (?P<row>\d+) \((?P<problem>.+)\); quote the whole value or remove the quote",
     "reject.quote_inside"),
    (r"formula without a saved value: .*", "reject.formula"),
))


def reason_phrase(reason: str, headers: Mapping[str, str] | None = None) -> Phrase | str:
    """The catalogue's phrase for an English reason (a table's name in it as the table's label; a column
    of kizuna's as `headers` names it: the file's own header), else the reason itself.

    >>> reason_phrase("missing customer_id").key, reason_phrase("something new")
    ('reject.missing', 'something new')
    >>> reason_phrase("negative amount", {"amount": "受注金額"}).values["column"]
    '受注金額'
    """
    for pattern, key in _PATTERNS:
        found = pattern.fullmatch(reason)
        if found:
            values: dict[str, object] = dict(found.groupdict())
            if values.get("table") in _TABLES:
                values["table"] = Phrase.of(str(values["table"]))
            if headers and values.get("column") is not None:
                values["column"] = headers.get(str(values["column"]), values["column"])
            if headers and values.get("key") is not None:  # "customer_id, called_at"
                values["key"] = ", ".join(headers.get(part, part) for part in str(values["key"]).split(", "))
            return Phrase.of(key, **values)
    return reason
