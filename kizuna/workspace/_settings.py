"""The settings of a workspace: every capability's section of kizuna.toml, composed."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import Field

from kizuna.analytics import AnalysisSettings, LostReasonSettings
from kizuna.delivery import DeliverySettings, EmailSettings, LineSettings
from kizuna.importing import ImportSettings
from kizuna.operations import OperationsSettings, WebSettings
from kizuna.prediction import CallSettings, PredictionSettings
from kizuna.reporting import ReportSettings
from kizuna.scenarios import CostSettings
from kizuna.settings import BusinessSettings, Sections
from kizuna.store import StoreSettings

__all__ = ["Settings"]


class Settings(Sections):
    """All settings of a workspace, section by section as in kizuna.toml (defaults: docs/measures.md).

    >>> Settings.from_dict({"analysis": {"dormant_days": 120}}).analysis.dormant_days
    120
    >>> Settings.from_dict({"analysis": {"dormant_days": -1}})
    Traceback (most recent call last):
    kizuna._errors.WorkspaceError: kizuna.toml: analysis.dormant_days must be an integer from 1 to 36,500, got -1.
    """

    header: ClassVar[str] = ("kizuna workspace settings. Defaults follow docs/measures.md in the kizuna project; "
                             "change them to fit your business.")

    business: BusinessSettings = BusinessSettings()
    store: StoreSettings = StoreSettings()
    operations: OperationsSettings = OperationsSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    lost_reasons: LostReasonSettings = LostReasonSettings()
    importing: ImportSettings = Field(ImportSettings(), alias="import")
    prediction: PredictionSettings = PredictionSettings()
    calls: CallSettings = CallSettings()
    delivery: DeliverySettings = DeliverySettings()
    email: EmailSettings = EmailSettings()
    line: LineSettings = LineSettings()
    costs: CostSettings = CostSettings()
    web: WebSettings = WebSettings()
    report: ReportSettings = ReportSettings()

    def as_of_date(self, override: dt.date | None = None) -> dt.date:
        """The day reports are computed as of: `override`, else [analysis] as_of, else today."""
        if override is not None:
            return override
        return dt.date.fromisoformat(self.analysis.as_of) if self.analysis.as_of else dt.date.today()
