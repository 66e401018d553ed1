"""How a period and a change are shown to people: the period in words, the colour of a change."""

from __future__ import annotations

from typing import Any

from kizuna.i18n import label

__all__ = ["change_tone", "period_label"]


def period_label(period: Any, lang: str = "ja") -> str:
    """"2026年10月" ("2026-10") for a calendar month, else "2026-01-01 – 2026-03-31"."""
    if period.months == 1:
        return label("period_month", lang).format(y=period.start.year, m=period.start.month)
    return label("period_days", lang).format(start=period.start, end=period.end)


def change_tone(change: float | None, better: str, unit: str = "percent") -> str:
    """"good", "bad", "flat" (rounds to ±0.0) or "none" (nothing to compare with): the colour of a change
    of a KPI where `better` ("higher" or "lower") is the good direction."""
    if change is None:
        return "none"
    if round(change * 100 if unit == "percent" else change, 1) == 0:
        return "flat"
    return "good" if (change > 0) == (better == "higher") else "bad"
