"""[analysis] of kizuna.toml: the windows and thresholds of the measures (docs/measures.md §1 and §2)."""

import unicodedata
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from kizuna.analytics._words import DRIFTED_WORDS, SITUATION_WORDS, UNRESOLVED_WORDS
from kizuna.settings import (
    DEFAULT_RANKS,
    FALLBACK_RANK,
    Allowed,
    AsOfDay,
    Days,
    PositiveShare,
    RankRules,
    Section,
    Yen,
)

__all__ = ["AnalysisSettings", "LostReasonSettings"]


class AnalysisSettings(Section):
    """The windows and thresholds of the measures and segments (docs/measures.md §1 and §2)."""

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


def _words(value: Any) -> tuple[str, ...]:
    """A list of words, each folded as the text it is looked for in (NFKC, lower case), repeats dropped."""
    if not isinstance(value, list | tuple) or not all(isinstance(word, str) for word in value):
        raise ValueError("not a list of words")
    words = [unicodedata.normalize("NFKC", word).strip().lower() for word in value]
    if not all(words):
        raise ValueError("an empty word")
    return tuple(dict.fromkeys(words))


Words = Annotated[tuple[str, ...], PlainValidator(_words),
                  Allowed("settings.allowed_words")]


class LostReasonSettings(Section):
    """The words that decide a lost customer's reason from what they said (docs/measures.md#lost-reasons):
    a cancellation's reason or note, the category of a support contact, the detail of a life event.
    A text that holds a word of a list gives that reason; the lists are tried in the order below
    (unresolved, situation_changed, drifted) and the first word found is shown with the reason. Case does
    not count; a word is read NFKC-normalised (write katakana full-width)."""

    unresolved: Words = Field(
        UNRESOLVED_WORDS, description="unresolved: words of a problem not solved (price, breakdown, service)")
    situation_changed: Words = Field(
        SITUATION_WORDS, description="situation_changed: words of a change in the customer's life (move, birth)")
    drifted: Words = Field(
        DRIFTED_WORDS, description="drifted: words of a customer who simply stopped using it (left over, not needed)")
