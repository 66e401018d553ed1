"""When a message may go: quiet hours in the business's time zone, Japanese public holidays,
and the frequency cap across channels. A rule never drops a message; it names the next moment
the message may go, and the ledger defers it until then.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kizuna.delivery._settings import DeliverySettings

__all__ = ["SendingRules"]


@functools.cache
def _japan_holidays(year: int) -> frozenset[dt.date]:
    import holidays  # the maintained table of 国民の祝日 (and 振替休日), not one of ours

    return frozenset(holidays.country_holidays("JP", years=year))


def _clock(text: str) -> dt.time:
    hour, minute = text.split(":")
    return dt.time(int(hour), int(minute))


@dataclass(frozen=True)
class SendingRules:
    """Quiet hours and holidays for pushed messages; the cap for every marketing message.

    >>> rules = SendingRules("Asia/Tokyo", "21:00", "09:00", skip_holidays=True, cap_messages=2, cap_days=7)
    >>> at = dt.datetime(2026, 1, 1, 12, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))  # 元日
    >>> rules.next_allowed(at).isoformat()
    '2026-01-02T09:00:00+09:00'
    """

    timezone: str
    quiet_start: str
    quiet_end: str
    skip_holidays: bool
    cap_messages: int
    cap_days: int

    @classmethod
    def from_settings(cls, settings: DeliverySettings, timezone: str) -> SendingRules:
        """The rules of the [delivery] settings, in the local time of `timezone` ([business])."""
        return cls(timezone, settings.quiet_start, settings.quiet_end, settings.skip_holidays,
                   settings.cap_messages, settings.cap_days)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def is_holiday(self, day: dt.date) -> bool:
        return self.skip_holidays and day in _japan_holidays(day.year)

    def _quiet_at(self, local: dt.datetime) -> bool:
        start, end, time = _clock(self.quiet_start), _clock(self.quiet_end), local.time()
        if start == end:
            return False
        if start > end:  # across midnight, e.g. 21:00 – 09:00
            return time >= start or time < end
        return start <= time < end

    def next_allowed(self, at: dt.datetime) -> dt.datetime:
        """`at` if a message may be pushed then, else the first moment after it that may.

        The quiet hours end at quiet_end each day; a holiday is quiet all day.
        """
        local = at.astimezone(self.zone)
        for _ in range(400):  # a year of holidays and quiet nights at most
            if not self._quiet_at(local) and not self.is_holiday(local.date()):
                return local
            end = _clock(self.quiet_end)
            candidate = dt.datetime.combine(local.date(), end, self.zone)
            if candidate <= local:
                candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), end, self.zone)
            if self.is_holiday(local.date()) and not self._quiet_at(local):
                # a holiday afternoon: the next day's end of quiet hours
                candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), end, self.zone)
            if _clock(self.quiet_start) == end:  # no quiet hours: the next day's midnight
                candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), self.zone)
            local = candidate
        return local

    def cap_frees_at(self, sent: list[int], now: int) -> int | None:
        """None if one more marketing message may go now, else when the cap's window frees a place.

        `sent`: unix times of the customer's marketing messages (any channel) in the window.
        """
        window = self.cap_days * 86_400
        recent = sorted(t for t in sent if t > now - window)
        if len(recent) < self.cap_messages:
            return None
        return recent[len(recent) - self.cap_messages] + window
