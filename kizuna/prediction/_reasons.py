"""Churn reasons in plain words: the features that raise a customer's risk most, with the
customer's own numbers, in Japanese (default) or English.

One template per churn feature (all of ``CHURN_FEATURES``), filled from the customer's features
and the context columns (``REASON_CONTEXT``: the date an unresolved complaint was opened, the
kind of the latest life event). A customer's reasons are joined with " / "::

    最終購入から74日 (通常の間隔の2.0倍) / 2026-05-02から未解決のクレーム / NPS 3
    no order for 74 days, 2.0 times the usual interval / unresolved complaint since 2026-05-02 / NPS 3

Two features can tell the same story (days since the last order and the overdue ratio, open
contacts and complaints): a text already given for that customer is not repeated.

The texts are built one feature at a time over all customers that have it as a reason (a list
comprehension each), so a million customers take about a second per language.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from kizuna.i18n import LANGS

__all__ = ["LIFE_EVENT_WORDS", "reason_texts"]

SEPARATOR = " / "

# The latest life event's kind (events.kind) in words: (ja, en); en is a past participle phrase
# so that "moved 3 months ago" reads.
LIFE_EVENT_WORDS: dict[str, tuple[str, str]] = {
    "moved": ("引越し", "moved"),
    "married": ("結婚", "married"),
    "household_change": ("世帯の変化", "household changed"),
    "plan_change": ("プラン変更", "changed plan"),
}

_Columns = dict[str, list]
_Template = Callable[[_Columns, bool], list[str]]


# -- number words ---------------------------------------------------------------------------------
def _known(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _n(v: float) -> str:
    """A count or number of days as a whole number with thousands separators."""
    return f"{round(v):,}"


def _yen(v: float) -> str:
    return f"¥{round(v):,}"


def _plural(count: float, word: str, plural: str | None = None) -> str:
    n = round(count)
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _ago(days: float, ja: bool) -> str:
    """'12日前' / '12 days ago' under a month, then months, then years."""
    d = round(days)
    if d < 31:
        return f"{d}日前" if ja else f"{_plural(d, 'day')} ago"
    months = round(d / 30.44)
    if months < 24:
        return f"{months}か月前" if ja else f"{_plural(months, 'month')} ago"
    years = round(d / 365.25)
    return f"{years}年前" if ja else f"{_plural(years, 'year')} ago"


def _span(days: float, ja: bool) -> str:
    """A length of time: '45日' / '45 days', '5か月' / '5 months', '3年' / '3 years'."""
    d = round(days)
    if d < 61:
        return f"{d}日" if ja else _plural(d, "day")
    months = d // 30
    if months < 24:
        return f"{months}か月" if ja else _plural(months, "month")
    years = d // 365
    return f"{years}年" if ja else _plural(years, "year")


# -- one template per feature ---------------------------------------------------------------------
# Each takes the needed columns, restricted to the customers that have the feature as a reason
# (as Python lists, nulls as None/NaN), and returns their texts.

def _overdue(c: _Columns, ja: bool) -> list[str]:
    out = []
    for days, interval in zip(c["days_since_last_order"], c["mean_interval_days"], strict=True):
        if not _known(days):
            out.append("最終購入日が不明" if ja else "date of the last order unknown")
        elif _known(interval) and interval > 0:
            ratio = days / interval
            out.append(f"最終購入から{_n(days)}日 (通常の間隔の{ratio:.1f}倍)" if ja
                       else f"no order for {_plural(days, 'day')}, {ratio:.1f} times the usual interval")
        else:
            out.append(f"最終購入から{_n(days)}日 (購入は1回のみ)" if ja
                       else f"no order for {_plural(days, 'day')}, after a single order")
    return out


def _orders(c: _Columns, ja: bool) -> list[str]:
    out = []
    for n in c["orders"]:
        if not _known(n):
            out.append("購入回数が不明" if ja else "number of orders unknown")
        elif n <= 1:
            out.append("購入は初回の1回のみ" if ja else "only one order so far")
        else:
            out.append(f"通算購入{_n(n)}回" if ja else f"{_plural(n, 'order')} in total")
    return out


def _prior_yearly(total: float, last_year: float, tenure: float) -> float | None:
    """The yearly rate before the last 365 days, when the customer was there for at least half a
    year before them; None otherwise."""
    if not (_known(total) and _known(last_year) and _known(tenure)) or tenure < 365 + 182:
        return None
    return (total - last_year) / ((tenure - 365) / 365)


def _orders_365d(c: _Columns, ja: bool) -> list[str]:
    out = []
    for n, total, tenure in zip(c["orders_365d"], c["orders"], c["tenure_days"], strict=True):
        before = _prior_yearly(total, n, tenure)
        if not _known(n):
            out.append("過去1年の購入回数が不明" if ja else "orders of the last year unknown")
        elif before is not None and before > n and round(before) > round(n):
            out.append(f"過去1年の購入{_n(n)}回 (以前は年{_n(before)}回)" if ja
                       else f"{_plural(n, 'order')} in the last year, down from {_n(before)} a year before")
        elif round(n) == 0:
            out.append("過去1年の購入なし" if ja else "no order in the last year")
        else:
            out.append(f"過去1年の購入{_n(n)}回" if ja else f"{_plural(n, 'order')} in the last year")
    return out


def _revenue(c: _Columns, ja: bool) -> list[str]:
    return [("通算購入額が不明" if ja else "total spend unknown") if not _known(v)
            else (f"通算購入額{_yen(v)}" if ja else f"{_yen(v)} spent in total") for v in c["revenue"]]


def _revenue_365d(c: _Columns, ja: bool) -> list[str]:
    out = []
    for v, total, tenure in zip(c["revenue_365d"], c["revenue"], c["tenure_days"], strict=True):
        before = _prior_yearly(total, v, tenure)
        if not _known(v):
            out.append("過去1年の購入額が不明" if ja else "spend of the last year unknown")
        elif before is not None and before > v:
            out.append(f"過去1年の購入額{_yen(v)} (以前は年{_yen(before)})" if ja
                       else f"{_yen(v)} spent in the last year, down from {_yen(before)} a year before")
        elif round(v) == 0:
            out.append("過去1年の購入なし" if ja else "no order in the last year")
        else:
            out.append(f"過去1年の購入額{_yen(v)}" if ja else f"{_yen(v)} spent in the last year")
    return out


def _interval(c: _Columns, ja: bool) -> list[str]:
    return [("リピート購入なし" if ja else "no repeat order yet") if not _known(v)
            else (f"購入間隔が平均{_n(v)}日" if ja else f"orders {_plural(v, 'day')} apart on average")
            for v in c["mean_interval_days"]]


def _tenure(c: _Columns, ja: bool) -> list[str]:
    return [("利用期間が不明" if ja else "time as a customer unknown") if not _known(v)
            else (f"利用開始から{_span(v, True)}" if ja else f"a customer for {_span(v, False)}")
            for v in c["tenure_days"]]


def _nps_score(c: _Columns, ja: bool) -> list[str]:
    return [f"NPS {_n(v)}" if _known(v) else ("NPS未回答" if ja else "no NPS answer") for v in c["nps_score"]]


def _nps_change(c: _Columns, ja: bool) -> list[str]:
    out = []
    for score, change in zip(c["nps_score"], c["nps_change"], strict=True):
        if not (_known(score) and _known(change)):
            out.append(_nps_score({"nps_score": [score]}, ja)[0])
            continue
        before = score - change
        if change < 0:
            out.append(f"NPSが{_n(before)}から{_n(score)}に低下" if ja
                       else f"NPS fell from {_n(before)} to {_n(score)}")
        elif change > 0:
            out.append(f"NPSが{_n(before)}から{_n(score)}に上昇" if ja
                       else f"NPS rose from {_n(before)} to {_n(score)}")
        else:
            out.append(f"NPS {_n(score)} (前回と同じ)" if ja else f"NPS unchanged at {_n(score)}")
    return out


def _contacts(c: _Columns, ja: bool) -> list[str]:
    return [(f"過去1年の問い合わせ{_n(v)}件" if ja else f"{_plural(v, 'support contact')} in the last year")
            if _known(v) else ("問い合わせ件数が不明" if ja else "support contacts unknown")
            for v in c["contacts_365d"]]


def _unresolved(c: _Columns, ja: bool) -> list[str]:
    """An open contact (a complaint when the customer complained this year), since when."""
    out = []
    for n, complaints, since in zip(c["open_contacts"], c["complaints_365d"], c["open_complaint_since"], strict=True):
        complaint = _known(complaints) and complaints > 0
        if not (_known(n) and n > 0):
            # no open contact (only complaints raise the risk): say how many complaints
            if _known(complaints) and complaints > 0:
                out.append(f"過去1年のクレーム{_n(complaints)}件" if ja
                           else f"{_plural(complaints, 'complaint')} in the last year")
            else:
                out.append("未解決の問い合わせなし" if ja else "no unresolved support request")
            continue
        what_ja = "クレーム" if complaint else "問い合わせ"
        what_en = "complaint" if complaint else "support request"
        many = round(n) > 1
        if since is None:
            out.append(f"未解決の{what_ja}{_n(n)}件" if ja else f"{_plural(n, 'unresolved ' + what_en)}")
        elif many:
            out.append(f"{since}から未解決の{what_ja}{_n(n)}件" if ja
                       else f"{_plural(n, 'unresolved ' + what_en)}, the first since {since}")
        else:
            out.append(f"{since}から未解決の{what_ja}" if ja else f"unresolved {what_en} since {since}")
    return out


def _complaints(c: _Columns, ja: bool) -> list[str]:
    """An open complaint reads as the open-contacts reason (and is then given once); else the count."""
    return _unresolved(c, ja)


def _resolution(c: _Columns, ja: bool) -> list[str]:
    out = []
    for v in c["resolution_hours"]:
        if not _known(v):
            out.append("解決済みの問い合わせなし" if ja else "no support request resolved")
        elif v < 24:  # a quick answer is no complaint: what raises the risk is having needed support
            out.append(f"問い合わせあり (平均{_n(max(v, 1))}時間で解決)" if ja
                       else f"needed support (resolved in {_plural(max(round(v), 1), 'hour')} on average)")
        else:
            out.append(f"問い合わせの解決に平均{_n(v)}時間" if ja
                       else f"support took {_plural(v, 'hour')} on average to resolve")
    return out


def _since_contact(c: _Columns, ja: bool) -> list[str]:
    return [(f"{_ago(v, True)}に問い合わせ" if ja else f"contacted support {_ago(v, False)}")
            if _known(v) else ("問い合わせなし" if ja else "never contacted support") for v in c["days_since_contact"]]


def _subscriber(c: _Columns, ja: bool) -> list[str]:
    return [("定期購入中" if ja else "on a subscription") if _known(v) and v >= 1
            else ("定期購入なし" if ja else "no subscription") for v in c["is_subscriber"]]


def _subscription_days(c: _Columns, ja: bool) -> list[str]:
    out = []
    for v in c["subscription_days"]:
        if not _known(v):
            out.append("定期購入なし" if ja else "no subscription")
            continue
        month = int(v // 30) + 1
        out.append(f"定期購入{month}か月目" if ja else f"subscription in its {_ordinal(month)} month")
    return out


def _life_event(c: _Columns, ja: bool) -> list[str]:
    out = []
    for days, kind in zip(c["days_since_life_event"], c["life_event"], strict=True):
        if not _known(days):
            out.append("生活の変化なし" if ja else "no change in life")
            continue
        ja_word, en_word = LIFE_EVENT_WORDS.get(kind or "", ("生活の変化", "life changed"))
        out.append(f"{_ago(days, True)}に{ja_word}" if ja else f"{en_word} {_ago(days, False)}")
    return out


# feature -> (the columns its template reads, the template)
_TEMPLATES: dict[str, tuple[tuple[str, ...], _Template]] = {
    "days_since_last_order": (("days_since_last_order", "mean_interval_days"), _overdue),
    "orders": (("orders",), _orders),
    "orders_365d": (("orders_365d", "orders", "tenure_days"), _orders_365d),
    "revenue": (("revenue",), _revenue),
    "revenue_365d": (("revenue_365d", "revenue", "tenure_days"), _revenue_365d),
    "mean_interval_days": (("mean_interval_days",), _interval),
    "overdue_ratio": (("days_since_last_order", "mean_interval_days"), _overdue),
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
    def template(c: _Columns, ja: bool) -> list[str]:
        return [f"{name} {v:g}" if isinstance(v, float) and _known(v) else f"{name} {v}" for v in c[name]]
    return (name,), template


def _text_column(features: pa.Table, name: str, rows: np.ndarray) -> list[str | None]:
    """A context column at `rows` as text: dates as 'YYYY-MM-DD', null as None."""
    column = features.column(name).take(pa.array(rows))
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.date32())
    return column.cast(pa.string()).to_pylist()


def reason_texts(features: pa.Table, reason_indices: np.ndarray, feature_names: Sequence[str],
                 lang: str = "ja") -> list[str]:
    """One text per customer (row of `features`): their reasons joined with " / ".

    `reason_indices` is (customers x k), indices into `feature_names` as given by
    ``ChurnModel.top_reasons`` (-1: no reason in that slot); `features` holds the customers'
    features and the context columns (``customer_features`` gives both), in the same row order.
    A customer without a reason gets "".

    >>> import pyarrow as pa, numpy as np
    >>> t = pa.table({"nps_score": [3.0], "nps_change": [-6.0]})
    >>> reason_texts(t, np.array([[1, 0, -1]]), ["nps_score", "nps_change"], "en")
    ['NPS fell from 9 to 3 / NPS 3']
    """
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}.")
    ja = lang == "ja"
    indices = np.asarray(reason_indices)
    n = features.num_rows
    if indices.ndim != 2 or len(indices) != n:
        raise ValueError(f"reason_indices must be (customers x reasons) with one row per row of features ({n:,}), "
                         f"got shape {indices.shape}.")
    names = list(feature_names)
    if indices.size and (indices.max() >= len(names) or indices.min() < -1):
        raise ValueError(f"reason_indices must be -1 or an index into the {len(names)} feature names.")

    templates = [_TEMPLATES.get(name) or _generic(name) for name in names]
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

    slots = [np.full(n, "", dtype=object) for _ in range(indices.shape[1])]
    for slot, texts in zip(indices.T, slots, strict=True):
        for j in used:
            rows = np.flatnonzero(slot == j)
            if not len(rows):
                continue
            columns_of, template = templates[j]
            values = {c: numeric[c][rows].tolist() if c in numeric else _text_column(features, c, rows)
                      for c in columns_of}
            texts[rows] = template(values, ja)

    if len(slots) == 3:  # the usual case, spelled out: twice as fast as the general one
        a, b, c = (s.tolist() for s in slots)
        return [_join3(x, y, z) for x, y, z in zip(a, b, c, strict=True)]
    columns = [s.tolist() for s in slots]
    return [SEPARATOR.join(dict.fromkeys(t for t in row if t)) for row in zip(*columns, strict=True)]


def _join3(a: str, b: str, c: str) -> str:
    if not b:
        return a
    if b == a:
        b = ""
    if c in (a, b):
        c = ""
    return SEPARATOR.join([t for t in (a, b, c) if t])
