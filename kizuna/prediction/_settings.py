"""[prediction] of kizuna.toml (docs/measures.md §3)."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import HORIZON_DAYS, PositiveShare, Section, Share

__all__ = ["PredictionSettings"]

Horizon = Annotated[int, Field(ge=HORIZON_DAYS[0], le=HORIZON_DAYS[1])]


class PredictionSettings(Section):
    """Horizons, rates and the call list of the predictions (docs/measures.md §3)."""

    horizon_days: Horizon = Field(
        90, description="churn risk = no order (or a cancellation) in the next this many days")
    clv_horizon_days: Horizon = Field(365, description="predicted CLV: expected revenue over this many days")
    discount_rate: Share = Field(0.1, description="yearly rate discounting future revenue in the CLV")
    high_risk: PositiveShare = Field(0.5, description="churn risk from which a customer counts as at high risk")
    call_capacity: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        100, description="rows of `kizuna priority`: the calls the contact centre makes in a day")
