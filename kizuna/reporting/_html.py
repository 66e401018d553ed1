"""The report as one self-contained HTML file: inline SVG charts and styles, nothing fetched from
anywhere, the system's fonts by name. Words from `kizuna.i18n`, one language at a time."""

from __future__ import annotations

import datetime as dt
import functools
import os
import tempfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from kizuna.analytics import MATRIX_CELLS, NEW, migration_label
from kizuna.i18n import change_text, label, money, segment_label
from kizuna.reporting._charts import bar_svg, flow_svg, interval_svg
from kizuna.reporting._figures import ReportFigures
from kizuna.reporting._present import change_tone, period_label

__all__ = ["HEADLINE_TILES", "render_html", "report_name", "write_html"]

TEMPLATES = Path(__file__).parent / "templates"
HEADLINE_TILES = ("revenue", "ordering_customers", "mean_ltv", "nps")  # the four figures on top


class _Words:
    """The catalogue in one language for the template: ``t("key", n=1)``, ``t.segment("loyal")``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **values: object) -> str:
        text = label(key, self.lang)
        return text.format(**values) if values else text

    def segment(self, key: str | None) -> str:
        return segment_label(key, self.lang)


def report_name(figures: ReportFigures) -> str:
    """The files' name: report-2026-10 for a month, report-2026-01-01_2026-03-31 otherwise."""
    period = figures.period
    if period.months == 1:
        return f"report-{period.start:%Y-%m}"
    return f"report-{period.start.isoformat()}_{period.end.isoformat()}"


def _rounded(value: float, digits: int) -> Decimal:
    # half up, as people round (56.25 % is 56.3 %), not Python's half to even
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _num(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{_rounded(value, digits):,.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{_rounded(100 * value, digits):.{digits}f}%"


def _signed_pct(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{_rounded(100 * value, digits):+.{digits}f}%"


def _charts(figures: ReportFigures, lang: str) -> dict[str, str]:
    period = figures.period
    month_of = {(period.start.year, period.start.month), (period.start.year - 1, period.start.month)}
    months = [(f"{r['month']:%Y-%m}", r["revenue"]) for r in figures.monthly]
    highlight = [m for m, _ in months if (int(m[:4]), int(m[5:])) in month_of]
    rows = figures.migration.to_pylist()
    seen = {r["from_segment"] for r in rows} | {r["to_segment"] for r in rows}
    order = [k for k in (*MATRIX_CELLS, NEW) if k in seen]
    risk = figures.value_at_risk["by_cell"] if figures.value_at_risk else []
    scripts = figures.calls["scripts"]
    return {
        "revenue": bar_svg(months, yen=lang, highlight=highlight, vertical=True, width=620),
        "flow": flow_svg(rows, order, {k: migration_label(k, lang) for k in seen}, width=760, height=380),
        "lost": bar_svg([(segment_label(r["lost_reason"], lang), r["customers"]) for r in figures.lost]),
        "risk": bar_svg([(segment_label(r["cell"], lang), r["value_at_risk"]) for r in risk], yen=lang),
        "scenarios": interval_svg([(r["title"], r["uplift"], r["low"], r["high"]) for r in figures.scenarios]),
        "calls": interval_svg([(r["script"] if r["script"] is not None else label("call_no_script", lang),
                                r["kept_rate"], r["low"], r["high"]) for r in scripts], zero=False),
    }


def render_html(figures: ReportFigures, lang: str = "ja") -> str:
    """The report for `figures` as one HTML document in `lang` (ja or en)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    month = "_month" if figures.period.months == 1 else ""
    comparison = figures.comparison
    return env.get_template("report.html").render(
        f=figures, lang=lang, t=_Words(lang), kpis=comparison.rows, tiles=HEADLINE_TILES,
        title=label("report.title", lang).format(period=period_label(figures.period, lang)),
        period_name=period_label(figures.period, lang), previous_name=period_label(comparison.previous, lang),
        year_name=period_label(comparison.last_year, lang),
        prev_key=f"kpi_previous{month}", year_key=f"kpi_last_year{month}",
        before=figures.period.start - dt.timedelta(days=1), charts=_charts(figures, lang),
        money=functools.partial(money, lang=lang), change=functools.partial(change_text, lang=lang),
        tone=change_tone, num=_num, pct=_pct, signed_pct=_signed_pct,
    )


def write_html(figures: ReportFigures, folder: Path, lang: str = "ja") -> Path:
    """Write the report into `folder` (made if missing) as report-….html; its path. Written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report_name(figures)}.html"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".report-", suffix=".html")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(render_html(figures, lang))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
