"""[prediction] of kizuna.toml (docs/measures.md §3)."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import HORIZON_DAYS, PositiveShare, Section, Share

__all__ = ["CallSettings", "PredictionSettings"]

Horizon = Annotated[int, Field(ge=HORIZON_DAYS[0], le=HORIZON_DAYS[1])]


class PredictionSettings(Section):
    """Horizons, rates and the call list of the predictions (docs/measures.md §3)."""

    horizon_days: Horizon = Field(
        90, description="churn risk = no order (or a cancellation) in the next this many days")
    clv_horizon_days: Horizon = Field(365, description="predicted CLV: expected revenue over this many days")
    discount_rate: Share = Field(0.1, description="yearly rate discounting future revenue in the CLV")
    high_risk: PositiveShare = Field(
        0.5, description="calibrated churn risk from which an active or at-risk customer counts as at high risk")
    call_capacity: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        100, description="rows of `kizuna priority`: the calls the contact centre makes in a day")
    winback_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        180, description="`kizuna priority --list winback`: customers lost or cancelled within this many days")


class CallSettings(Section):
    """The calls the contact centre makes and what they teach (docs/measures.md#calls): who is not
    called again yet, which follow-ups are still timely, the customers left uncalled to measure what a
    call does, and when enough outcomes exist to rank by it."""

    cooldown_days: Annotated[int, Field(ge=0, le=3650)] = Field(
        14, description="a customer called within this many days is left off the call lists")
    follow_up_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        7, description="a 48-hour follow-up call only for NPS answers given within this many days")
    holdout_share: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.1, description="share of a call list kept uncalled (stable, hashed) to measure the effect of calling")
    min_outcomes: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        200, description="call outcomes needed before the keep list is ranked by the measured effect of a call")
