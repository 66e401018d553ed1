"""Workspace settings: kizuna.toml, with the SPEC's defaults.

Every threshold and window of the analyses lives here, so that a business can
tune them without touching code. `Settings.load` merges a file over the
defaults and rejects unknown keys, naming them, so a typo is not silently
ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna._errors import WorkspaceError

__all__ = ["RankRule", "Settings", "SETTINGS_FILE"]

SETTINGS_FILE = "kizuna.toml"


@dataclass(frozen=True)
class RankRule:
    """One row of the SPEC's RFM rank table (002 §4-3)."""

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
    """All settings of a workspace. Defaults are SPEC §1-§2."""

    # [business]
    currency: str = "JPY"
    timezone: str = "Asia/Tokyo"
    gross_margin_rate: float = 0.4
    # [store]; empty means kizuna.duckdb inside the workspace
    store_url: str = ""
    # DuckDB's memory ceiling, e.g. "2GB"; empty means DuckDB's own (80 % of the machine's RAM)
    store_memory_limit: str = ""
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
    rfm_ranks: tuple[RankRule, ...] = field(default=DEFAULT_RANKS)
    # [import]
    import_batch_rows: int = 200_000

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(
                f"{path} not found. Create a workspace with `kizuna init DIR` "
                "or pass --dir to an existing one."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{path}: not valid TOML ({exc}). Fix the file.") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "settings") -> Settings:
        values: dict[str, Any] = {}
        sections = {
            "business": {"currency", "timezone", "gross_margin_rate"},
            "store": {"url", "memory_limit"},
            "analysis": {
                "as_of", "rfm_window_days", "nps_validity_days", "dormant_days", "lapse_factor",
                "lost_lookback_days", "f2_window_days", "high_ltv_top_share",
                "high_ltv_min_yen", "rfm_ranks",
            },
            "import": {"batch_rows"},
        }
        for section, body in raw.items():
            if section not in sections or not isinstance(body, dict):
                raise WorkspaceError(
                    f"{source}: unknown section [{section}]; known: {', '.join(sections)}."
                )
            for key, value in body.items():
                if key not in sections[section]:
                    raise WorkspaceError(
                        f"{source}: unknown setting {section}.{key}; known in [{section}]: "
                        f"{', '.join(sorted(sections[section]))}."
                    )
                name = {"url": "store_url", "memory_limit": "store_memory_limit",
                        "batch_rows": "import_batch_rows"}.get(key, key)
                values[name] = value
        if "rfm_ranks" in values:
            values["rfm_ranks"] = tuple(_rank_rule(r, source) for r in values["rfm_ranks"])
        defaults = cls()
        for name, value in values.items():
            expected = type(getattr(defaults, name))
            if expected is float and isinstance(value, int):
                values[name] = float(value)
            elif expected is not tuple and not isinstance(value, expected):
                raise WorkspaceError(
                    f"{source}: setting {name} must be {expected.__name__}, got {value!r}."
                )
        settings = dataclasses.replace(defaults, **values)
        if settings.as_of:
            try:
                dt.date.fromisoformat(settings.as_of)
            except ValueError:
                raise WorkspaceError(
                    f"{source}: analysis.as_of must be a date written YYYY-MM-DD (or empty for today), "
                    f"got {settings.as_of!r}."
                ) from None
        return settings

    def as_of_date(self, override: dt.date | None = None) -> dt.date:
        """The day reports are computed as of: `override`, else the as_of setting, else today."""
        if override is not None:
            return override
        return dt.date.fromisoformat(self.as_of) if self.as_of else dt.date.today()

    def to_toml(self) -> str:
        """The settings as a commented kizuna.toml."""
        ranks = "\n".join(
            f'  {{ label = "{r.label}", max_recency_days = {r.max_recency_days}, '
            f"min_orders = {r.min_orders}, min_revenue = {r.min_revenue} }},"
            for r in self.rfm_ranks
        )
        return f"""\
# kizuna workspace settings. Defaults follow the product SPEC; change them to fit your business.

[business]
currency = "{self.currency}"
timezone = "{self.timezone}"          # order times without a zone are read as local time here
gross_margin_rate = {self.gross_margin_rate}        # LTV (profit) = revenue LTV x this rate

[store]
# Empty: kizuna.duckdb in this folder. Or a connection URL, e.g.
# "postgres://user:pass@127.0.0.1:5432/kizuna" or "pyspark://local"
url = "{self.store_url}"
# DuckDB only: the most memory it may use, e.g. "2GB" (beyond it, large imports and analyses
# spill to disk). Empty: DuckDB's default, 80 % of this machine's RAM.
memory_limit = "{self.store_memory_limit}"

[analysis]
as_of = "{self.as_of}"                  # every report as of this day (YYYY-MM-DD); empty = today
rfm_window_days = {self.rfm_window_days}        # Frequency / Monetary window (3 years)
nps_validity_days = {self.nps_validity_days}      # an NPS answer older than this no longer counts
dormant_days = {self.dormant_days}            # dormant: no order for this many days
lapse_factor = {self.lapse_factor}            # lapsing: late by this many of the customer's own intervals
lost_lookback_days = {self.lost_lookback_days}     # lost reason: look back this far before the last order
f2_window_days = {self.f2_window_days}          # F2 conversion: second order within this many days
high_ltv_top_share = {self.high_ltv_top_share}     # high LTV = top 20 % of ordering customers (2:8 rule)
high_ltv_min_yen = {self.high_ltv_min_yen}         # > 0: high LTV = lifetime revenue >= this many yen instead
# RFM ranks, best first: a customer takes the first rank whose three conditions all hold.
rfm_ranks = [
{ranks}
]

[import]
batch_rows = {self.import_batch_rows}      # rows read per batch; bounds memory on large files
"""


def _rank_rule(raw: Any, source: str) -> RankRule:
    try:
        return RankRule(
            label=str(raw["label"]),
            max_recency_days=int(raw["max_recency_days"]),
            min_orders=int(raw["min_orders"]),
            min_revenue=int(raw["min_revenue"]),
        )
    except (KeyError, TypeError, ValueError):
        raise WorkspaceError(
            f"{source}: each rfm_ranks entry needs label, max_recency_days, min_orders and "
            f"min_revenue; got {raw!r}."
        ) from None
