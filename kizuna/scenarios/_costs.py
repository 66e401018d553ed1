"""What messages cost, monthly budgets, and the profit a scenario adds (docs/measures.md#costs).

* `[costs]` (`CostSettings`): yen per e-mail and LINE message, per direct-mail piece and parcel
  insert, per call. `cost_lines` turns a run's counts into "1,535 DM × ¥120 = ¥184,200".
* A scenario's (or campaign's) `budget:` is yen per calendar month in [business] timezone. What it
  spent is what its messages sent in the month cost (`month_spend`: sent or unconfirmed, whatever
  else happened to them). A run gives the budget to the messages due, oldest first (`Budgets`);
  a message that does not fit in what is left is **deferred to the first moment of the next
  month** — the same ledger row, so it is never sent twice — and goes then, within that month's
  budget, before newer ones (they are due later). A message tried before (a 4xx, a resend) or a
  transactional one is never held back by the budget; its cost still counts.
* `incremental_profit`: the scenario's incremental revenue × [business] gross_margin_rate − what
  its messages cost, with an interval from the difference of revenue per customer between the
  treated and the control (`revenue_difference`, normal approximation with each group's own
  variance).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import Annotated, Any, Protocol

from pydantic import Field

from kizuna.delivery import CHANNELS
from kizuna.operations import Ledger
from kizuna.settings import MAX_YEN, Section

__all__ = ["OVER_BUDGET", "Budgets", "CostSettings", "budget_left", "cost_lines", "incremental_profit",
           "month_bounds", "month_spend", "revenue_difference", "unit_cost"]

OVER_BUDGET = "over the monthly budget: goes next month"
Price = Annotated[int, Field(ge=0, le=MAX_YEN)]


class CostSettings(Section):
    """What a message costs, in yen: shown before a send (kizuna run --dry-run), counted against the
    scenarios' monthly budgets and in their incremental profit. The defaults are round examples; set
    your own prices."""

    email: Price = Field(0, description="per e-mail")
    line: Price = Field(3, description="per LINE message (the paid plans' price of a message beyond the plan)")
    dm: Price = Field(120, description="per direct-mail piece: printing and postage")
    insert: Price = Field(10, description="per parcel insert")
    call: Price = Field(300, description="per call")


def unit_cost(costs: CostSettings, channel: str) -> int:
    """Yen per message of `channel` (0 for a channel without a price)."""
    return int(getattr(costs, channel, 0) or 0)


class _Tally(Protocol):
    channel: str
    counts: Mapping[str, int]


def cost_lines(tallies: Iterable[_Tally], costs: CostSettings, what: str = "sent") -> list[dict[str, Any]]:
    """Per channel with messages counted as `what` ("would_send" in a dry run): channel, n, price and
    total (n × price), in the order of `kizuna.delivery.CHANNELS`."""
    counts = dict.fromkeys(CHANNELS, 0)
    for tally in tallies:
        counts[tally.channel] = counts.get(tally.channel, 0) + tally.counts.get(what, 0)
    return [{"channel": channel, "n": n, "price": unit_cost(costs, channel), "total": n * unit_cost(costs, channel)}
            for channel, n in counts.items() if n]


def month_bounds(moment: dt.datetime | dt.date, timezone: str | None = None) -> tuple[int, int]:
    """[start, end) of the calendar month of `moment`, in unix seconds: a timezone-aware moment's own
    month, or a date's in `timezone`.

    >>> month_bounds(dt.date(2026, 12, 15), "Asia/Tokyo")
    (1796050800, 1798729200)
    """
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None:
            raise ValueError("month_bounds needs a timezone-aware moment")
        zone = moment.tzinfo
        day = moment.date()
    else:
        zone, day = zoneinfo.ZoneInfo(timezone or "Asia/Tokyo"), moment
    first = dt.datetime(day.year, day.month, 1, tzinfo=zone)
    following = dt.datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=zone)
    return int(first.timestamp()), int(following.timestamp())


def month_spend(ledger: Ledger, name: str, month: dt.date, costs: CostSettings, timezone: str) -> int:
    """Yen the messages of scenario or campaign `name` sent in the calendar month of `month` cost."""
    start, end = month_bounds(month, timezone)
    return sum(n * unit_cost(costs, channel) for channel, n in ledger.sent_by_channel(name, start, end).items())


def budget_left(ledger: Ledger, name: str, month: dt.date, costs: CostSettings, budget: int | None, *,
                timezone: str = "Asia/Tokyo") -> int | None:
    """Yen that `name` may still spend in the month of `month` under its monthly `budget` (None: no budget)."""
    if budget is None:
        return None
    return budget - month_spend(ledger, name, month, costs, timezone)


class Budgets:
    """What each scenario with a budget may still spend in the month of one run (see the module docstring).

    `take` is asked for each message in the order they go; a message that does not fit is left
    for `next_month` (the first moment of the next month, unix seconds).
    """

    def __init__(self, ledger: Ledger, costs: CostSettings, now: dt.datetime) -> None:
        self.ledger, self.costs = ledger, costs
        self.start, self.next_month = month_bounds(now)
        self.left: dict[str, int] = {}

    def take(self, name: str, budget: int | None, channel: str, *, held: bool = True) -> bool:
        """Whether a message of `name` on `channel` fits what is left (and, if so, its cost is taken).

        `held` False: the message goes whatever is left (tried before, or transactional); its cost counts."""
        if budget is None:
            return True
        if name not in self.left:
            spent = self.ledger.sent_by_channel(name, self.start, self.next_month)
            self.left[name] = budget - sum(n * unit_cost(self.costs, c) for c, n in spent.items())
        price = unit_cost(self.costs, channel)
        if held and price > self.left[name]:
            return False
        self.left[name] -= price
        return True

    def give_back(self, name: str, budget: int | None, channel: str) -> None:
        """A message that took its cost did not go after all (its template failed)."""
        if budget is not None and name in self.left:
            self.left[name] += unit_cost(self.costs, channel)


_NORMAL = NormalDist()


def revenue_difference(n_treated: int, revenue_treated: float, squares_treated: float, n_control: int,
                       revenue_control: float, squares_control: float, confidence: float = 0.95
                       ) -> tuple[float, float, float] | None:
    """Revenue per treated customer minus revenue per control customer, with its interval.

    From each group's customers, revenue and sum of squared revenue per customer: the difference
    of the means ± z · √(s₁²/n₁ + s₂²/n₂), s² each group's sample variance (Welch's standard
    error, with the normal quantile: the groups are hundreds of customers). None when a group
    has fewer than two customers.

    >>> [round(v, 2) for v in revenue_difference(4, 4000, 8_000_000, 2, 1000, 1_000_000)]
    [500.0, -996.95, 1996.95]
    """
    if n_treated < 2 or n_control < 2:
        return None
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    mean_t, mean_c = revenue_treated / n_treated, revenue_control / n_control
    var_t = max(0.0, (squares_treated - n_treated * mean_t ** 2) / (n_treated - 1))
    var_c = max(0.0, (squares_control - n_control * mean_c ** 2) / (n_control - 1))
    spread = z * math.sqrt(var_t / n_treated + var_c / n_control)
    difference = mean_t - mean_c
    return difference, difference - spread, difference + spread


def incremental_profit(treated: Mapping[str, Any], control: Mapping[str, Any], *, margin: float, cost: float,
                       confidence: float = 0.95) -> dict[str, float | None]:
    """The profit a scenario added: treated customers × (revenue per treated − per control customer) ×
    `margin` − `cost`, and its interval; `treated` and `control` are rows of `goal_conversions` with
    ``spread`` (customers, revenue, revenue_squares).

    >>> found = incremental_profit({"customers": 4, "revenue": 4000, "revenue_squares": 8e6},
    ...                            {"customers": 2, "revenue": 1000, "revenue_squares": 1e6}, margin=0.4, cost=360)
    >>> {key: round(value) for key, value in found.items()}
    {'incremental_profit': 440, 'profit_low': -1955, 'profit_high': 2835}
    """
    nothing: dict[str, float | None] = {"incremental_profit": None, "profit_low": None, "profit_high": None}
    n_treated, n_control = treated["customers"], control["customers"]
    if not n_treated or not n_control:
        return nothing
    per_customer = treated["revenue"] / n_treated - control["revenue"] / n_control
    found = revenue_difference(n_treated, treated["revenue"], treated["revenue_squares"], n_control,
                               control["revenue"], control["revenue_squares"], confidence)
    low, high = (None, None) if found is None else (n_treated * found[1] * margin - cost,
                                                     n_treated * found[2] * margin - cost)
    return {"incremental_profit": n_treated * per_customer * margin - cost, "profit_low": low, "profit_high": high}
