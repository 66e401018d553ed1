"""[analysis] of kizuna.toml: the windows and thresholds of the measures (docs/measures.md §1–§2)."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import DEFAULT_RANKS, FALLBACK_RANK, AsOfDay, Days, PositiveShare, RankRules, Section, Yen

__all__ = ["AnalysisSettings"]


class AnalysisSettings(Section):
    """The windows and thresholds of the measures and segments (docs/measures.md §1–§2)."""

    as_of: AsOfDay = Field("", description="every report as of this day (YYYY-MM-DD); empty = today")
    rfm_window_days: Days = Field(3 * 365, description="Frequency / Monetary window (3 years)")
    nps_validity_days: Days = Field(365, description="an NPS answer older than this no longer counts")
    dormant_days: Days = Field(90, description="dormant: no order for this many days")
    lapse_factor: Annotated[float, Field(gt=0, le=100)] = Field(
        2.0, description="lapsing: late by this many of the customer's own intervals")
    lost_lookback_days: Days = Field(180, description="lost reason: look back this far before the last order")
    f2_window_days: Days = Field(90, description="F2 conversion: second order within this many days")
    high_ltv_top_share: PositiveShare = Field(0.2, description="high LTV = top 20 % of ordering customers (2:8 rule)")
    high_ltv_min_yen: Yen = Field(0, description="> 0: high LTV = lifetime revenue >= this many yen instead")
    rfm_ranks: RankRules = Field(DEFAULT_RANKS, description=(
        "RFM ranks, best first: a customer takes the first rank whose three conditions all hold, and "
        f'"{FALLBACK_RANK}" if none does. At least one rank: the first is the loyal rank that near-loyal and '
        "loyalty measure against."))
