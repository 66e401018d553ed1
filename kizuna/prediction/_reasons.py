"""Churn reasons in plain words: the features that raise a customer's risk most, with the
customer's own numbers, in Japanese (default) or English; the texts are the catalogue's
("reason.*" in kizuna.i18n).

One template per churn feature (all of ``CHURN_FEATURES``), filled from the customer's features
and the context columns (``REASON_CONTEXT``: the date an unresolved complaint was opened, the
kind of the latest life event). A customer's reasons are joined with " / "::

    最終購入から74日 (通常の間隔の2.0倍) / 2026-05-02から未解決のクレーム / NPS 3
    no order for 74 days, 2.0 times the usual interval / unresolved complaint since 2026-05-02 / NPS 3

Two features can tell the same story (days since the last order and the overdue ratio, open
contacts and complaints): a text already given for that customer is not repeated.

The texts are built one feature at a time, once per distinct set of the values its template
reads (customers with the same numbers get the same words); the overdue text, which nearly every
customer has of their own, column-wise in Arrow (its numbers formatted once per distinct value). The
reasons are joined in Arrow, with no Python string per customer, and what the words depend on is
found once for all the languages asked (`reason_text_arrays`).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kizuna.i18n import LANGS, ordinal, pattern, section, text

__all__ = ["LIFE_EVENT_WORDS", "reason_text_array", "reason_text_arrays", "reason_texts"]

SEPARATOR = " / "

# The latest life event's kind (events.kind) -> (ja, en), from the catalogue ("life_event.*").
LIFE_EVENT_WORDS: dict[str, tuple[str, str]] = {
    kind: (text(f"life_event.{kind}", "ja"), text(f"life_event.{kind}", "en"))
    for kind in section("life_event.") if kind != "other"
}

_Columns = dict[str, list]
_Template = Callable[[_Columns, str], list[str]]


# -- number words ---------------------------------------------------------------------------------
def _known(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _n(v: float) -> str:
    """A count or number of days as a whole number with thousands separators."""
    return f"{round(v):,}"


def _yen(v: float) -> str:
    return f"¥{round(v):,}"


def _Say(key: str, lang: str) -> Callable[..., str]:  # noqa: N802 (reads as a text, not a call)
    """One text of the catalogue in one language, to fill many times over: ``say(count, **values)``
    gives the singular when `count` rounds to 1 (English "1 day")."""
    many, one = pattern(key, lang).format, pattern(key, lang, count=1).format

    def say(count: float | None = None, **values: object) -> str:
        return (one if count is not None and round(count) == 1 else many)(**values)
    return say


def _ago(days: float, lang: str) -> str:
    """'12日前' / '12 days ago' under a month, then months, then years."""
    d = round(days)
    if d < 31:
        return text("reason.ago_days", lang, count=d, n=_n(d))
    months = round(d / 30.44)
    if months < 24:
        return text("reason.ago_months", lang, count=months, n=_n(months))
    years = round(d / 365.25)
    return text("reason.ago_years", lang, count=years, n=_n(years))


def _span(days: float, lang: str) -> str:
    """A length of time: '45日' / '45 days', '5か月' / '5 months', '3年' / '3 years'."""
    d = round(days)
    if d < 61:
        return text("span_days", lang, count=d, n=_n(d))
    months = d // 30
    if months < 24:
        return text("span_months", lang, count=months, n=_n(months))
    years = d // 365
    return text("span_years", lang, count=years, n=_n(years))


# -- one template per feature ---------------------------------------------------------------------
# Each takes the needed columns, restricted to the customers that have the feature as a reason
# (as Python lists, nulls as None/NaN), and returns their texts; every text is the catalogue's
# ("reason.*" in kizuna.i18n).

def _orders(c: _Columns, lang: str) -> list[str]:
    unknown, one_order = text("reason.orders_unknown", lang), text("reason.one_order", lang)
    orders = _Say("reason.orders", lang)
    out = []
    for n in c["orders"]:
        if not _known(n):
            out.append(unknown)
        elif n <= 1:
            out.append(one_order)
        else:
            out.append(orders(n, n=_n(n)))
    return out


def _prior_yearly(total: float, last_year: float, tenure: float) -> float | None:
    """The yearly rate before the last 365 days, when the customer was there for at least half a
    year before them; None otherwise."""
    if not (_known(total) and _known(last_year) and _known(tenure)) or tenure < 365 + 182:
        return None
    return (total - last_year) / ((tenure - 365) / 365)


def _orders_365d(c: _Columns, lang: str) -> list[str]:
    unknown, none = text("reason.orders_365d_unknown", lang), text("reason.no_order_365d", lang)
    down, orders = _Say("reason.orders_365d_down", lang), _Say("reason.orders_365d", lang)
    out = []
    for n, total, tenure in zip(c["orders_365d"], c["orders"], c["tenure_days"], strict=True):
        before = _prior_yearly(total, n, tenure)
        if not _known(n):
            out.append(unknown)
        elif before is not None and before > n and round(before) > round(n):
            out.append(down(n, n=_n(n), before=_n(before)))
        elif round(n) == 0:
            out.append(none)
        else:
            out.append(orders(n, n=_n(n)))
    return out


def _revenue(c: _Columns, lang: str) -> list[str]:
    unknown, spent = text("reason.revenue_unknown", lang), _Say("reason.revenue", lang)
    return [unknown if not _known(v) else spent(yen=_yen(v)) for v in c["revenue"]]


def _revenue_365d(c: _Columns, lang: str) -> list[str]:
    unknown, none = text("reason.revenue_365d_unknown", lang), text("reason.no_order_365d", lang)
    down, spent = _Say("reason.revenue_365d_down", lang), _Say("reason.revenue_365d", lang)
    out = []
    for v, total, tenure in zip(c["revenue_365d"], c["revenue"], c["tenure_days"], strict=True):
        before = _prior_yearly(total, v, tenure)
        if not _known(v):
            out.append(unknown)
        elif before is not None and before > v:
            out.append(down(yen=_yen(v), before=_yen(before)))
        elif round(v) == 0:
            out.append(none)
        else:
            out.append(spent(yen=_yen(v)))
    return out


def _interval(c: _Columns, lang: str) -> list[str]:
    none, apart = text("reason.no_repeat_order", lang), _Say("reason.interval", lang)
    return [none if not _known(v) else apart(v, days=_n(v)) for v in c["mean_interval_days"]]


def _tenure(c: _Columns, lang: str) -> list[str]:
    unknown, tenure = text("reason.tenure_unknown", lang), _Say("reason.tenure", lang)
    return [unknown if not _known(v) else tenure(span=_span(v, lang)) for v in c["tenure_days"]]


def _nps_score(c: _Columns, lang: str) -> list[str]:
    nps, none = _Say("reason.nps", lang), text("reason.no_nps", lang)
    return [nps(n=_n(v)) if _known(v) else none for v in c["nps_score"]]


def _nps_change(c: _Columns, lang: str) -> list[str]:
    fell, rose = _Say("reason.nps_fell", lang), _Say("reason.nps_rose", lang)
    same = _Say("reason.nps_unchanged", lang)
    out = []
    for score, change in zip(c["nps_score"], c["nps_change"], strict=True):
        if not (_known(score) and _known(change)):
            out.append(_nps_score({"nps_score": [score]}, lang)[0])
            continue
        before = score - change
        if change < 0:
            out.append(fell(before=_n(before), score=_n(score)))
        elif change > 0:
            out.append(rose(before=_n(before), score=_n(score)))
        else:
            out.append(same(score=_n(score)))
    return out


def _contacts(c: _Columns, lang: str) -> list[str]:
    contacts, unknown = _Say("reason.contacts", lang), text("reason.contacts_unknown", lang)
    return [contacts(v, n=_n(v)) if _known(v) else unknown for v in c["contacts_365d"]]


def _unresolved(c: _Columns, lang: str) -> list[str]:
    """An open contact (a complaint when the customer complained this year), since when."""
    complaints_365d, nothing = _Say("reason.complaints", lang), text("reason.nothing_unresolved", lang)
    # (complaint?) -> the texts: n open, n open since a date, one open since a date
    open_n = {True: _Say("reason.unresolved_complaints", lang), False: _Say("reason.unresolved_requests", lang)}
    open_since = {True: _Say("reason.unresolved_complaints_since", lang),
                  False: _Say("reason.unresolved_requests_since", lang)}
    one_since = {True: _Say("reason.unresolved_complaint_since", lang),
                 False: _Say("reason.unresolved_request_since", lang)}
    out = []
    for n, complaints, since in zip(c["open_contacts"], c["complaints_365d"], c["open_complaint_since"], strict=True):
        complaint = _known(complaints) and complaints > 0
        if not (_known(n) and n > 0):
            # no open contact (only complaints raise the risk): say how many complaints
            out.append(complaints_365d(complaints, n=_n(complaints)) if complaint else nothing)
            continue
        if since is None:
            out.append(open_n[complaint](n, n=_n(n)))
        elif round(n) > 1:
            out.append(open_since[complaint](n, n=_n(n), since=since))
        else:
            out.append(one_since[complaint](since=since))
    return out


def _complaints(c: _Columns, lang: str) -> list[str]:
    """An open complaint reads as the open-contacts reason (and is then given once); else the count."""
    return _unresolved(c, lang)


def _resolution(c: _Columns, lang: str) -> list[str]:
    none, quick, slow = (text("reason.nothing_resolved", lang), _Say("reason.resolved_quickly", lang),
                         _Say("reason.resolution", lang))
    out = []
    for v in c["resolution_hours"]:
        if not _known(v):
            out.append(none)
        elif v < 24:  # a quick answer is no complaint: what raises the risk is having needed support
            hours = max(round(v), 1)
            out.append(quick(hours, hours=_n(hours)))
        else:
            out.append(slow(v, hours=_n(v)))
    return out


def _since_contact(c: _Columns, lang: str) -> list[str]:
    contacted, never = _Say("reason.contacted", lang), text("reason.never_contacted", lang)
    return [contacted(ago=_ago(v, lang)) if _known(v) else never for v in c["days_since_contact"]]


def _subscriber(c: _Columns, lang: str) -> list[str]:
    yes, no = text("reason.subscriber", lang), text("reason.no_subscription", lang)
    return [yes if _known(v) and v >= 1 else no for v in c["is_subscriber"]]


def _subscription_days(c: _Columns, lang: str) -> list[str]:
    none, month = text("reason.no_subscription", lang), _Say("reason.subscription_month", lang)
    return [month(month=ordinal(int(v // 30) + 1, lang)) if _known(v) else none for v in c["subscription_days"]]


def _life_event(c: _Columns, lang: str) -> list[str]:
    none, happened = text("reason.no_life_event", lang), _Say("reason.life_event", lang)
    words = section("life_event.", lang)
    out = []
    for days, kind in zip(c["days_since_life_event"], c["life_event"], strict=True):
        if not _known(days):
            out.append(none)
            continue
        out.append(happened(ago=_ago(days, lang), event=words.get(kind or "", words["other"])))
    return out


# feature -> (the columns its template reads, the template)
_TEMPLATES: dict[str, tuple[tuple[str, ...], _Template]] = {
    "orders": (("orders",), _orders),
    "orders_365d": (("orders_365d", "orders", "tenure_days"), _orders_365d),
    "revenue": (("revenue",), _revenue),
    "revenue_365d": (("revenue_365d", "revenue", "tenure_days"), _revenue_365d),
    "mean_interval_days": (("mean_interval_days",), _interval),
    "tenure_days": (("tenure_days",), _tenure),
    "nps_score": (("nps_score",), _nps_score),
    "nps_change": (("nps_score", "nps_change"), _nps_change),
    "contacts_365d": (("contacts_365d",), _contacts),
    "open_contacts": (("open_contacts", "complaints_365d", "open_complaint_since"), _unresolved),
    "complaints_365d": (("open_contacts", "complaints_365d", "open_complaint_since"), _complaints),
    "resolution_hours": (("resolution_hours",), _resolution),
    "days_since_contact": (("days_since_contact",), _since_contact),
    "is_subscriber": (("is_subscriber",), _subscriber),
    "subscription_days": (("subscription_days",), _subscription_days),
    "days_since_life_event": (("days_since_life_event", "life_event"), _life_event),
}


def _generic(name: str) -> tuple[tuple[str, ...], _Template]:
    """A feature without a template (a model trained on other features): name and value."""
    def template(c: _Columns, lang: str) -> list[str]:
        return [f"{name} {v:g}" if isinstance(v, float) and _known(v) else f"{name} {v}" for v in c[name]]
    return (name,), template


def _text_column(features: pa.Table, name: str, rows: np.ndarray) -> list[str | None]:
    """A context column at `rows` as text: dates as 'YYYY-MM-DD', null as None."""
    column = features.column(name).take(pa.array(rows))
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.date32())
    return column.cast(pa.string()).to_pylist()


def _codes(features: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """A context column at `rows` as integer codes, equal where the values are (null: -1)."""
    encoded = pc.dictionary_encode(features.column(name).take(pa.array(rows))).combine_chunks()
    return encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _bits(values: np.ndarray) -> np.ndarray:
    """float64 values as int64 keys, equal exactly where the values are (every NaN alike)."""
    return np.where(np.isnan(values), np.nan, values).view(np.int64)


def _fill(text_pattern: str, fields: dict[str, tuple[list, np.ndarray]]) -> pa.StringArray:
    """`text_pattern` filled row by row in Arrow: a field is (its distinct values, each row's index in them),
    each distinct value formatted once with the pattern's format spec."""
    parts: list[pa.Array | pa.Scalar] = [pa.scalar("", pa.string())]
    formatter = string.Formatter()
    for literal, name, spec, conversion in formatter.parse(text_pattern):
        if literal:
            parts.append(pa.scalar(literal, pa.string()))
        if name is not None:
            values, spread = fields[name]
            words = [format(formatter.convert_field(v, conversion), spec or "") for v in values]
            parts.append(pa.array(words, pa.string()).take(pa.array(spread)))
    return pc.binary_join_element_wise(*parts, "")


def _spread_of(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of one row per distinct value of `key`, each row's index among them)."""
    _, first, spread = np.unique(key, return_index=True, return_inverse=True)
    return first, spread.reshape(-1)


def _tenth_key(ratio: np.ndarray, spec: str) -> list[np.ndarray]:
    """Keys equal where `ratio` prints the same with `spec`: with ".1f" the tenth it rounds to (the ratio
    itself where it lies too near the middle between two tenths to tell which), else the ratio."""
    if spec != ".1f":
        return [_bits(ratio)]
    with np.errstate(all="ignore"):
        tenths = ratio * 10
        clear = (np.abs(np.abs(tenths - np.floor(tenths)) - 0.5) > 1e-6) & (np.abs(tenths) < 1e12)
    return [_bits(np.where(clear, np.floor(tenths + 0.5), ratio)), clear.astype(np.int64)]


def _overdue(c: dict[str, np.ndarray], lang: str) -> pa.StringArray:
    """Days since the last order and how many times the usual interval that is; built column-wise (the
    days and the ratio formatted once per distinct printed value, the pattern filled in Arrow): nearly
    every customer has a text of their own."""
    days, interval = c["days_since_last_order"], c["mean_interval_days"]
    known = ~np.isnan(days)
    with np.errstate(all="ignore"):
        has_ratio = known & (interval > 0)
        ratio = np.where(has_ratio, days / np.where(has_ratio, interval, 1.0), 0.0)
    one = known & (np.round(np.where(known, days, 0.0)) == 1)
    first, spread = _spread_of(_bits(np.where(known, days, 0.0)))
    day_words = ([_n(v) for v in np.where(known, days, 0.0)[first].tolist()], spread)

    def filled(key: str, count: np.ndarray) -> pa.StringArray:
        fields: dict[str, tuple[list, np.ndarray]] = {"days": day_words}
        many, single = pattern(key, lang), pattern(key, lang, count=1)
        specs = {spec or "" for text_pattern in (many, single)
                 for _, name, spec, _ in string.Formatter().parse(text_pattern) if name == "ratio"}
        if specs:  # one spec in both (else every ratio apart, which prints right with either)
            at, where = _distinct(_tenth_key(ratio, specs.pop() if len(specs) == 1 else ""))
            fields["ratio"] = (ratio[at].tolist(), where)
        texts = _fill(many, fields)
        return texts if single == many else pc.if_else(pa.array(count), _fill(single, fields), texts)

    texts = pc.if_else(pa.array(has_ratio), filled("reason.overdue", one),
                       filled("reason.overdue_single_order", one))
    return pc.if_else(pa.array(known), texts, pa.scalar(text("reason.last_order_unknown", lang), pa.string()))


# feature -> (the columns it reads, its texts built column-wise from them as float64 NumPy arrays)
_COLUMNWISE: dict[str, tuple[tuple[str, ...], Callable[[dict[str, np.ndarray], str], pa.StringArray]]] = {
    "days_since_last_order": (("days_since_last_order", "mean_interval_days"), _overdue),
    "overdue_ratio": (("days_since_last_order", "mean_interval_days"), _overdue),
}


def _encoded(key: np.ndarray) -> tuple[np.ndarray, int]:
    """(each row's code, the number of codes): equal codes where `key` (int64) is equal, numbered in the
    order the values first appear (a hash of the values, no sort)."""
    encoded = pa.array(key).dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), len(encoded.dictionary)


def _distinct(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(one row of each distinct combination of `keys`, each row's combination).

    Each key becomes codes, the codes one int64, while they fit (else the rows are sorted)."""
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    space = 1
    for key in keys:
        code, count = _encoded(key)
        space *= max(count, 1)
        if space >= 2**62:
            _, first, spread = np.unique(np.column_stack(keys), axis=0, return_index=True, return_inverse=True)
            return first, spread.reshape(-1)
        combined = combined * count + code
    spread, _ = _encoded(combined)
    if not len(spread):
        return spread, spread
    # codes are numbered in order of first appearance: a row opens a code where its code exceeds all before it
    seen = np.maximum.accumulate(spread)
    first = np.flatnonzero(np.concatenate([[True], spread[1:] > seen[:-1]]))
    return first, spread


def reason_texts(features: pa.Table, reason_indices: np.ndarray, feature_names: Sequence[str],
                 lang: str = "ja") -> list[str]:
    """One text per customer (row of `features`): their reasons joined with " / ".

    `reason_indices` is (customers x k), indices into `feature_names` as given by
    ``ChurnModel.top_reasons`` (-1: no reason in that slot); `features` holds the customers'
    features and the context columns (``customer_features`` gives both), in the same row order.
    A customer without a reason gets "". `reason_text_array` gives the same as an Arrow array.

    >>> import pyarrow as pa, numpy as np
    >>> t = pa.table({"nps_score": [3.0], "nps_change": [-6.0]})
    >>> reason_texts(t, np.array([[1, 0, -1]]), ["nps_score", "nps_change"], "en")
    ['NPS fell from 9 to 3 / NPS 3']
    """
    return reason_text_array(features, reason_indices, feature_names, lang).to_pylist()


def reason_text_array(features: pa.Table, reason_indices: np.ndarray, feature_names: Sequence[str],
                      lang: str = "ja", *, none: str = "") -> pa.StringArray:
    """`reason_texts` as an Arrow string array, with `none` for a customer without a reason: the texts
    are joined in Arrow, with no Python string per customer."""
    return reason_text_arrays(features, reason_indices, feature_names, {lang: none})[lang]


def reason_text_arrays(features: pa.Table, reason_indices: np.ndarray, feature_names: Sequence[str],
                       nones: Mapping[str, str], *, unexplained: np.ndarray | None = None,
                       unexplained_texts: Mapping[str, str] | None = None) -> dict[str, pa.StringArray]:
    """`reason_text_array` in several languages at once (language -> the text of a customer without a
    reason): what the words depend on is found once for all of them. `unexplained`: a mask of the
    customers whose reasons were not looked for (their `reason_indices` all -1), who get
    `unexplained_texts` (language -> text) instead."""
    for lang in nones:
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}.")
    indices = np.asarray(reason_indices)
    n = features.num_rows
    if indices.ndim != 2 or len(indices) != n:
        raise ValueError(f"reason_indices must be (customers x reasons) with one row per row of features ({n:,}), "
                         f"got shape {indices.shape}.")
    if unexplained is not None:
        unexplained = np.asarray(unexplained, dtype=bool)
        if unexplained.shape != (n,) or unexplained_texts is None or set(unexplained_texts) != set(nones):
            raise ValueError("unexplained must be a mask with one value per row of features, with a text in each "
                             "language of nones.")
        if (indices[unexplained] >= 0).any():
            raise ValueError("a customer whose reasons were not looked for has reasons.")
    names = list(feature_names)
    if indices.size and (indices.max() >= len(names) or indices.min() < -1):
        raise ValueError(f"reason_indices must be -1 or an index into the {len(names)} feature names.")

    templates = [_COLUMNWISE.get(name) or _TEMPLATES.get(name) or _generic(name) for name in names]
    used = np.unique(indices[indices >= 0])
    needed = sorted({column for j in used for column in templates[j][0]})
    missing = [c for c in needed if c not in features.column_names]
    if missing:
        raise ValueError(f"the reasons quote column(s) {', '.join(missing)}, which the features table lacks "
                         "(customer_features gives them all).")

    # Numeric columns as float64 NumPy once; the slices below are then cheap.
    numeric: dict[str, np.ndarray] = {}
    for name in needed:
        column = features.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            numeric[name] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)

    # per feature, what its words are made from: the columns of the customers with that feature among their
    # reasons (column-wise), or the values of each distinct key and each customer's key; and each slot's
    # place among the features' texts laid one after the other (-1: no reason in that slot)
    plans: list[tuple[_Template | Callable[..., pa.StringArray], dict, np.ndarray | None]] = []
    place = np.full(indices.shape, -1, dtype=np.int64)
    offset = 0
    for j in used.tolist():
        at = indices == j
        rows = np.flatnonzero(at.any(axis=1))  # a feature is at most one of a customer's reasons
        columns_of, template = templates[j]
        numbers = {c: numeric[c][rows] for c in columns_of if c in numeric}
        if names[j] in _COLUMNWISE:
            plans.append((template, numbers, None))
        else:
            keys = [_bits(numbers[c]) if c in numbers else _codes(features, c, rows) for c in columns_of]
            first, spread = _distinct(keys)
            picked = rows[first]
            values = {c: numeric[c][picked].tolist() if c in numeric else _text_column(features, c, picked)
                      for c in columns_of}
            plans.append((template, values, spread))
        customer, slot = np.nonzero(at)
        place[customer, slot] = offset + np.searchsorted(rows, customer)
        offset += len(rows)

    out = {}
    for lang, none in nones.items():
        pieces = [template(values, lang) if spread is None else
                  pa.array(template(values, lang), pa.string()).take(pa.array(spread))
                  for template, values, spread in plans]
        texts = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
        del pieces  # not held beside their copy while the texts are joined
        other = None if unexplained is None else (unexplained, unexplained_texts[lang])
        out[lang] = _joined(texts, place, none, other)
    return out


def _joined(texts: pa.StringArray, place: np.ndarray, none: str,
            other: tuple[np.ndarray, str] | None = None) -> pa.StringArray:
    """Each row's texts (`place`: indices into `texts`, -1: none) joined with SEPARATOR: "" and a text
    already given in the row are not repeated, and with three slots an empty second slot ends the row;
    `none` for a row without any text; `other`: (a mask of rows, their text instead)."""
    n, k = place.shape
    if k == 0 or n == 0:
        column = np.full(n, none, dtype=object)
        if other is not None:
            column[other[0]] = other[1]
        return pa.array(column, pa.string())
    # each text as a code, equal where the words are (-1: no text in the slot); "" is no text either
    if len(texts):
        encoded = texts.dictionary_encode()
        code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        blank = pc.index(encoded.dictionary, "").as_py()  # -1 when no text is ""
        del encoded
    else:
        code, blank = np.zeros(1, dtype=np.int64), -1
    words = np.where(place >= 0, code[np.maximum(place, 0)], -1)
    empty = (words == -1) | (words == blank)
    kept = place.copy()
    for s in range(k):
        dropped = empty[:, s].copy()
        for earlier in range(s):  # the same words as an earlier slot (before that slot was itself dropped)
            dropped |= words[:, s] == words[:, earlier]
        kept[dropped, s] = -1
    if k == 3:
        kept[empty[:, 1], 2] = -1
    # the kept texts moved to the first slots, in their order: a row with m texts joins slots 0..m-1
    order = np.argsort(kept < 0, axis=1, kind="stable")
    kept = np.take_along_axis(kept, order, axis=1)
    count = (kept >= 0).sum(axis=1)
    # joined per number of texts on those rows alone, then each row's put in place (one take): no whole
    # column per slot and number of texts held at once
    parts: list[pa.Array] = [pa.array([none] if other is None else [none, other[1]], pa.string())]
    position = np.zeros(n, dtype=np.int64)  # 0: `none`
    if other is not None:
        position[other[0]] = 1
    offset = len(parts[0])
    for m in range(1, k + 1):
        rows = np.flatnonzero(count == m)
        if not len(rows):
            continue
        slots = [texts.take(pa.array(kept[rows, s])) for s in range(m)]
        parts.append(slots[0] if m == 1 else pc.binary_join_element_wise(*slots, SEPARATOR))
        del slots
        position[rows] = offset + np.arange(len(rows))
        offset += len(rows)
    return pa.chunked_array(parts).take(pa.array(position)).combine_chunks()
