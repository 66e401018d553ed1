"""Workspace settings: kizuna.toml, every default in one place (docs/measures.md#settings).

Every threshold and window of the analyses lives here, so that a business can
tune them without touching code. `Settings.load` merges a file over the
defaults and rejects unknown keys, naming them, so a typo is not silently
ignored; every value is checked for its type and range when the file is read,
so a wrong one stops the command in one line instead of changing every segment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import re
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna._errors import WorkspaceError

__all__ = ["RankRule", "Settings", "SETTINGS_FILE"]

SETTINGS_FILE = "kizuna.toml"
# The days kizuna computes on: DuckDB and Arrow overflow near year 1 and 9999 (a year before
# 0001-01-01 does not exist), and no shop's data lies outside.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
# Prediction horizons, in days: a week to ten years.
HORIZON_DAYS = (7, 3650)

# The rank every customer takes who meets none of the configured ones.
FALLBACK_RANK = "other"


@dataclass(frozen=True)
class RankRule:
    """One row of the RFM rank table of docs/measures.md §2 (002 §4-3)."""

    label: str
    max_recency_days: int
    min_orders: int
    min_revenue: int


DEFAULT_RANKS = (
    RankRule("loyal", 30, 15, 500_000),
    RankRule("a", 60, 10, 300_000),
    RankRule("b", 90, 5, 200_000),
)


@dataclass(frozen=True)
class Settings:
    """All settings of a workspace. Defaults: docs/measures.md."""

    # [business]
    currency: str = "JPY"
    timezone: str = "Asia/Tokyo"
    gross_margin_rate: float = 0.4
    # [store]; empty means kizuna.duckdb inside the workspace
    store_url: str = ""
    # DuckDB's memory ceiling, e.g. "2GB"; empty means DuckDB's own (80 % of the machine's RAM)
    store_memory_limit: str = ""
    # DuckDB: seconds to wait for another process (the web app, a cron run) to let go of the file
    store_lock_wait: int = 30
    # [operations]; empty means kizuna-ops.sqlite3 inside the workspace, else a postgres:// URL
    operations_url: str = ""
    # [analysis]
    as_of: str = ""  # YYYY-MM-DD: every report as of this day; empty means today
    rfm_window_days: int = 3 * 365
    nps_validity_days: int = 365
    dormant_days: int = 90
    lapse_factor: float = 2.0
    lost_lookback_days: int = 180
    f2_window_days: int = 90
    high_ltv_top_share: float = 0.2
    high_ltv_min_yen: int = 0  # > 0 replaces the top-share rule by an absolute threshold
    # Best first; at least one: the first is the loyal rank that near-loyal and loyalty measure
    # against. Customers who meet none take the rank "other", which no configured rank may be named.
    rfm_ranks: tuple[RankRule, ...] = field(default=DEFAULT_RANKS)
    # [import]
    import_batch_rows: int = 200_000
    # [prediction] (docs/measures.md §3)
    horizon_days: int = 90  # churn risk and expected orders: the next this many days
    clv_horizon_days: int = 365  # predicted CLV: expected revenue over this many days
    discount_rate: float = 0.1  # yearly rate that discounts future revenue in the CLV
    high_risk: float = 0.5  # churn risk from which a customer counts as at high risk
    call_capacity: int = 100  # rows of the call list: the calls a contact centre makes in a day
    # [delivery] (docs/measures.md §4): rules every scenario's messages follow
    quiet_start: str = "21:00"  # no e-mail or LINE from this local time …
    quiet_end: str = "09:00"  # … to this one (the next day when it is earlier)
    skip_holidays: bool = True  # Japanese public holidays are quiet all day
    cap_messages: int = 2  # at most this many marketing messages per customer …
    cap_days: int = 7  # … within this many days, across channels; more are deferred
    holdout_share: float = 0.1  # each scenario's control group (a scenario may set its own)
    global_control_share: float = 0.05  # customers no scenario contacts, to measure kizuna itself
    min_effect: float = 0.02  # the smallest uplift worth detecting: sizes "not enough data yet"
    alternative_name: str = "ボトル入りの水"  # what the product saves money against (money_saved)
    alternative_yen_per_l: int = 100  # its price per litre
    # [email]; the password comes from KIZUNA_SMTP_PASSWORD, never from this file
    smtp_url: str = ""  # smtp://host:port, smtps://user@host:465; empty: no e-mail is sent
    smtp_starttls: bool = False
    sender: str = ""  # From: "Shop name <info@example.jp>"
    sender_address: str = ""  # the sender's postal address (特定電子メール法)
    sender_contact: str = ""  # a telephone number or e-mail address for questions
    dkim_domain: str = ""  # sign with DKIM when these three are set
    dkim_selector: str = ""
    dkim_key_file: str = ""  # PEM private key; relative paths are inside the workspace
    # [line]; the channel token comes from KIZUNA_LINE_TOKEN, the secret from KIZUNA_LINE_SECRET
    line_api_base: str = "https://api.line.me"
    # [web]
    public_url: str = "http://127.0.0.1:8000"  # where customers reach `kizuna serve` (links in messages)

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(
                f"{path} not found. Create a workspace with `kizuna init DIR` "
                "or pass --dir to an existing one."
            ) from None
        except UnicodeDecodeError as exc:
            raise WorkspaceError(
                f"{path}: not UTF-8 text (byte {exc.start} cannot be read); save the file as UTF-8."
            ) from None
        except OSError as exc:
            raise WorkspaceError(f"{path}: cannot be read ({exc.strerror}).") from None
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{path}: not valid TOML ({exc}). Fix the file.") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = SETTINGS_FILE) -> Settings:
        """Settings from a parsed kizuna.toml: the defaults, with every given value checked.

        >>> Settings.from_dict({"analysis": {"dormant_days": 120}}).dormant_days
        120
        >>> Settings.from_dict({"analysis": {"dormant_days": -1}})
        Traceback (most recent call last):
        kizuna._errors.WorkspaceError: kizuna.toml: analysis.dormant_days must be an integer from 1 to 36,500, got -1.
        """
        sections: dict[str, dict[str, tuple[str, _Check]]] = {}
        for (section, key), entry in _SETTINGS.items():
            sections.setdefault(section, {})[key] = entry
        values: dict[str, Any] = {}
        for section, body in raw.items():
            if section not in sections:
                raise WorkspaceError(
                    f"{source}: unknown section [{section}]; known: {', '.join(sections)}."
                )
            if not isinstance(body, dict):
                raise WorkspaceError(
                    f"{source}: [{section}] must be a section of settings (key = value lines), "
                    f"got {section} = {_show(body)}."
                )
            for key, value in body.items():
                if key not in sections[section]:
                    raise WorkspaceError(
                        f"{source}: unknown setting {section}.{key}; known in [{section}]: "
                        f"{', '.join(sorted(sections[section]))}."
                    )
                name, check = sections[section][key]
                try:
                    values[name] = check(f"{section}.{key}", value)
                except _Invalid as exc:
                    raise WorkspaceError(f"{source}: {exc}") from None
        return dataclasses.replace(cls(), **values)

    def as_of_date(self, override: dt.date | None = None) -> dt.date:
        """The day reports are computed as of: `override`, else the as_of setting, else today."""
        if override is not None:
            return override
        return dt.date.fromisoformat(self.as_of) if self.as_of else dt.date.today()

    def to_toml(self) -> str:
        """The settings as a commented kizuna.toml."""
        q = _quote
        ranks = "\n".join(
            f"  {{ label = {q(r.label)}, max_recency_days = {r.max_recency_days}, "
            f"min_orders = {r.min_orders}, min_revenue = {r.min_revenue} }},"
            for r in self.rfm_ranks
        )
        return f"""\
# kizuna workspace settings. Defaults follow docs/measures.md in the kizuna project; change them to fit your business.

[business]
currency = {q(self.currency)}          # 3-letter currency code
timezone = {q(self.timezone)}          # order times without a zone are read as local time here
gross_margin_rate = {self.gross_margin_rate}        # LTV (profit) = revenue LTV x this rate (0 to 1)

[store]
# Empty: kizuna.duckdb in this folder. Or a connection URL, e.g.
# "postgres://user:pass@127.0.0.1:5432/kizuna" or "pyspark://local"
url = {q(self.store_url)}
# DuckDB only: the most memory it may use, e.g. "2GB" (beyond it, large imports and analyses
# spill to disk). Empty: DuckDB's default, 80 % of this machine's RAM.
memory_limit = {q(self.store_memory_limit)}
# DuckDB only: seconds a command waits for another kizuna process using the file to finish.
lock_wait = {self.store_lock_wait}

[operations]
# The send ledger, consents, survey answers, users. Empty: kizuna-ops.sqlite3 in this folder
# (one machine). Several web servers and a cron host sharing this workspace: a PostgreSQL
# database for all of them (one of their own, not the store's), e.g.
# "postgres://user:pass@db.internal:5432/kizuna_ops"
url = {q(self.operations_url)}

[analysis]
as_of = {q(self.as_of)}                  # every report as of this day (YYYY-MM-DD); empty = today
rfm_window_days = {self.rfm_window_days}        # Frequency / Monetary window (3 years)
nps_validity_days = {self.nps_validity_days}      # an NPS answer older than this no longer counts
dormant_days = {self.dormant_days}            # dormant: no order for this many days
lapse_factor = {self.lapse_factor}            # lapsing: late by this many of the customer's own intervals
lost_lookback_days = {self.lost_lookback_days}     # lost reason: look back this far before the last order
f2_window_days = {self.f2_window_days}          # F2 conversion: second order within this many days
high_ltv_top_share = {self.high_ltv_top_share}     # high LTV = top 20 % of ordering customers (2:8 rule)
high_ltv_min_yen = {self.high_ltv_min_yen}         # > 0: high LTV = lifetime revenue >= this many yen instead
# RFM ranks, best first: a customer takes the first rank whose three conditions all hold, and
# "{FALLBACK_RANK}" if none does. At least one rank: the first is the loyal rank.
rfm_ranks = [
{ranks}
]

[import]
batch_rows = {self.import_batch_rows}      # rows read per batch; bounds memory on large files

[prediction]
horizon_days = {self.horizon_days}          # churn risk = no order (or a cancellation) in the next this many days
clv_horizon_days = {self.clv_horizon_days}     # predicted CLV: expected revenue over this many days
discount_rate = {self.discount_rate}        # yearly rate discounting future revenue in the CLV
high_risk = {self.high_risk}            # churn risk from which a customer counts as at high risk
call_capacity = {self.call_capacity}        # rows of `kizuna priority`: the calls the contact centre makes in a day

[delivery]
quiet_start = {q(self.quiet_start)}       # no e-mail or LINE from this local time ...
quiet_end = {q(self.quiet_end)}         # ... to this one; such messages wait for the morning
skip_holidays = {_bool(self.skip_holidays)}      # Japanese public holidays are quiet all day
cap_messages = {self.cap_messages}          # at most this many marketing messages per customer ...
cap_days = {self.cap_days}              # ... within this many days, across channels (more wait)
holdout_share = {self.holdout_share}        # each scenario's control group: evaluated, never contacted
global_control_share = {self.global_control_share} # customers no scenario contacts: the effect of kizuna itself
min_effect = {self.min_effect}          # smallest uplift worth detecting (sizes "not enough data yet")
alternative_name = {q(self.alternative_name)}  # what customers would buy instead (money_saved)
alternative_yen_per_l = {self.alternative_yen_per_l}  # its price per litre

[email]
# The password is read from the environment variable KIZUNA_SMTP_PASSWORD.
smtp_url = {q(self.smtp_url)}             # e.g. "smtp://127.0.0.1:2525" or "smtps://user@mail.example.jp:465"
starttls = {_bool(self.smtp_starttls)}
sender = {q(self.sender)}               # "Shop <info@example.jp>"
sender_address = {q(self.sender_address)}       # postal address shown in every e-mail (特定電子メール法)
sender_contact = {q(self.sender_contact)}       # telephone or e-mail for questions
dkim_domain = {q(self.dkim_domain)}          # DKIM signing when domain, selector and key file are set
dkim_selector = {q(self.dkim_selector)}
dkim_key_file = {q(self.dkim_key_file)}

[line]
# The channel access token is read from KIZUNA_LINE_TOKEN, the channel secret from KIZUNA_LINE_SECRET.
api_base = {q(self.line_api_base)}

[web]
public_url = {q(self.public_url)}  # where customers reach `kizuna serve`: unsubscribe and survey links
"""


# -- validation ---------------------------------------------------------------------------
# Each setting has a check: (its name as written, e.g. "analysis.dormant_days", the value read
# from TOML) -> the value to store, or _Invalid with the sentence to show after the file name.

_Check = Callable[[str, Any], Any]

MAX_DAYS = 36_500  # a hundred years: any window beyond it is a typo
MAX_YEN = 10**15  # fits int64 in every engine, with room to sum


class _Invalid(ValueError):
    """A value outside its allowed type or range; str() is the message, without the file."""


def _show(value: Any) -> str:
    # TOML-like spelling (true, "text", inf, [..]) on one line, shortened
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan as TOML writes them
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def _must(name: str, allowed: str, value: Any) -> _Invalid:
    return _Invalid(f"{name} must be {allowed}, got {_show(value)}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is not 1


def _integer(low: int, high: int) -> _Check:
    def check(name: str, value: Any) -> int:
        if _is_int(value) and low <= value <= high:
            return value
        raise _must(name, f"an integer from {low:,} to {high:,}", value)

    return check


def _number(low: float, high: float, *, above_low: bool = False) -> _Check:
    allowed = f"a number between {low} and {high}" + (f" (exclusive of {low})" if above_low else "")

    def check(name: str, value: Any) -> float:
        # NaN fails both comparisons; infinity fails the upper bound
        if (_is_int(value) or isinstance(value, float)) and (
            low < value if above_low else low <= value
        ) and value <= high:
            return float(value)
        raise _must(name, allowed, value)

    return check


def _text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _must(name, "text in quotes", value)


def _currency(name: str, value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value):
        return value
    raise _must(name, 'a 3-letter currency code in capitals, such as "JPY"', value)


def _timezone(name: str, value: Any) -> str:
    if isinstance(value, str) and value:
        try:
            zoneinfo.ZoneInfo(value)
            return value
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass  # not a zone; e.g. "Asia" names a folder of zones
    raise _must(name, 'an IANA time zone such as "Asia/Tokyo" (names are case-sensitive)', value)


def _as_of(name: str, value: Any) -> str:
    day = None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):  # as_of = 2025-01-31
        day = value
    elif isinstance(value, str):
        if not value:
            return ""
        with contextlib.suppress(ValueError):
            day = dt.date.fromisoformat(value)
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise _must(name, f"a date written YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY} (or empty for today)", value)
    return day.isoformat()


_RANK_FIELDS = {
    "max_recency_days": _integer(0, MAX_DAYS),
    "min_orders": _integer(0, 10**9),
    "min_revenue": _integer(0, MAX_YEN),
}


def _ranks(name: str, value: Any) -> tuple[RankRule, ...]:
    fields = ("label", *_RANK_FIELDS)
    if not isinstance(value, list) or not value:
        raise _must(name, f"a list of one or more ranks, best first, each {{ {' = …, '.join(fields)} = … }}",
                    value)
    ranks: list[RankRule] = []
    for position, raw in enumerate(value, start=1):
        where = f"rank {position} in {name}"
        if not isinstance(raw, dict):
            raise _must(where, f"a table {{ {' = …, '.join(fields)} = … }}", raw)
        missing = [f for f in fields if f not in raw]
        unknown = [str(k) for k in raw if k not in fields]
        if missing or unknown:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown: {', '.join(unknown)}"
            raise _Invalid(f"{where} must have exactly {', '.join(fields)}; {problem}.")
        label = raw["label"]
        if not isinstance(label, str) or not label.strip() or label.casefold() == FALLBACK_RANK:
            raise _must(f"label of {where}",
                        f'a non-empty name other than "{FALLBACK_RANK}" (the rank of customers who meet none)',
                        label)
        same = [i for i, r in enumerate(ranks, start=1) if r.label.casefold() == label.casefold()]
        if same:
            raise _must(f"label of {where}", f"different from the label of rank {same[0]}", label)
        numbers = {f: check(f"{f} of {where}", raw[f]) for f, check in _RANK_FIELDS.items()}
        ranks.append(RankRule(label=label, **numbers))
    return tuple(ranks)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _must(name, "true or false", value)


def _clock(name: str, value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        return value
    raise _must(name, 'a time of day written "HH:MM" (24-hour clock)', value)


def _smtp_url(name: str, value: Any) -> str:
    if isinstance(value, str) and (not value or re.fullmatch(r"smtps?://[^/\s]+(:[0-9]{1,5})?/?", value)):
        return value
    raise _must(name, 'smtp://host:port or smtps://user@host:port (or empty for no e-mail)', value)


def _http_url(name: str, value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
        return value.rstrip("/")
    raise _must(name, "an http:// or https:// address", value)


def _postgres_url(name: str, value: Any) -> str:
    if isinstance(value, str) and (not value or re.fullmatch(r"postgres(ql)?://\S+", value)):
        return value
    raise _must(name, "postgres://user:password@host:port/database (or empty for kizuna-ops.sqlite3)", value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# (section, key) -> (Settings field, check), in the order of kizuna.toml
_SETTINGS: dict[tuple[str, str], tuple[str, _Check]] = {
    ("business", "currency"): ("currency", _currency),
    ("business", "timezone"): ("timezone", _timezone),
    ("business", "gross_margin_rate"): ("gross_margin_rate", _number(0, 1)),
    ("store", "url"): ("store_url", _text),
    ("store", "memory_limit"): ("store_memory_limit", _text),  # DuckDB checks the format when it connects
    ("store", "lock_wait"): ("store_lock_wait", _integer(0, 3600)),
    ("operations", "url"): ("operations_url", _postgres_url),
    ("analysis", "as_of"): ("as_of", _as_of),
    ("analysis", "rfm_window_days"): ("rfm_window_days", _integer(1, MAX_DAYS)),
    ("analysis", "nps_validity_days"): ("nps_validity_days", _integer(1, MAX_DAYS)),
    ("analysis", "dormant_days"): ("dormant_days", _integer(1, MAX_DAYS)),
    ("analysis", "lapse_factor"): ("lapse_factor", _number(0, 100, above_low=True)),
    ("analysis", "lost_lookback_days"): ("lost_lookback_days", _integer(1, MAX_DAYS)),
    ("analysis", "f2_window_days"): ("f2_window_days", _integer(1, MAX_DAYS)),
    ("analysis", "high_ltv_top_share"): ("high_ltv_top_share", _number(0, 1, above_low=True)),
    ("analysis", "high_ltv_min_yen"): ("high_ltv_min_yen", _integer(0, MAX_YEN)),
    ("analysis", "rfm_ranks"): ("rfm_ranks", _ranks),
    ("import", "batch_rows"): ("import_batch_rows", _integer(1, 10_000_000)),
    ("prediction", "horizon_days"): ("horizon_days", _integer(*HORIZON_DAYS)),
    ("prediction", "clv_horizon_days"): ("clv_horizon_days", _integer(*HORIZON_DAYS)),
    ("prediction", "discount_rate"): ("discount_rate", _number(0, 1)),
    ("prediction", "high_risk"): ("high_risk", _number(0, 1, above_low=True)),
    ("prediction", "call_capacity"): ("call_capacity", _integer(1, 1_000_000)),
    ("delivery", "quiet_start"): ("quiet_start", _clock),
    ("delivery", "quiet_end"): ("quiet_end", _clock),
    ("delivery", "skip_holidays"): ("skip_holidays", _boolean),
    ("delivery", "cap_messages"): ("cap_messages", _integer(1, 1000)),
    ("delivery", "cap_days"): ("cap_days", _integer(1, 365)),
    ("delivery", "holdout_share"): ("holdout_share", _number(0, 0.9)),
    ("delivery", "global_control_share"): ("global_control_share", _number(0, 0.5)),
    ("delivery", "min_effect"): ("min_effect", _number(0, 1, above_low=True)),
    ("delivery", "alternative_name"): ("alternative_name", _text),
    ("delivery", "alternative_yen_per_l"): ("alternative_yen_per_l", _integer(0, 1_000_000)),
    ("email", "smtp_url"): ("smtp_url", _smtp_url),
    ("email", "starttls"): ("smtp_starttls", _boolean),
    ("email", "sender"): ("sender", _text),
    ("email", "sender_address"): ("sender_address", _text),
    ("email", "sender_contact"): ("sender_contact", _text),
    ("email", "dkim_domain"): ("dkim_domain", _text),
    ("email", "dkim_selector"): ("dkim_selector", _text),
    ("email", "dkim_key_file"): ("dkim_key_file", _text),
    ("line", "api_base"): ("line_api_base", _http_url),
    ("web", "public_url"): ("public_url", _http_url),
}


def _quote(text: str) -> str:
    # a TOML basic string: JSON's escapes (\" \\ \n \uXXXX) are all valid TOML
    return json.dumps(text, ensure_ascii=False)
