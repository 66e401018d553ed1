"""What the pages show, read from an open `Workspace`: small plain-Python structures.

Every figure is a function of `kizuna.analytics` (the same on every engine), aggregated in the
engine; only the rows a page shows come back. `dashboard` is the expensive one (the KPI report
reads every order) unless `kizuna analyze` stored it with the scores, and is cached per store version
by the caller; the customer page is queried per request.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kizuna.analytics import (
    MEMBER_SORTS,
    Period,
    monthly_ltv,
    monthly_nps,
    nps_class_of,
    overview_from_rows,
    rf_grid,
)
from kizuna.i18n import LANGS, change_text, money
from kizuna.reporting import change_tone, period_label, sparkline_svg
from kizuna.web._auth import CONTACT_FIELDS, MASK

__all__ = ["MEMBERS", "PAGE_SIZE", "PREDICTIONS", "SORTS", "customer_detail", "dashboard", "formatters", "kpi_tiles",
           "mask_table", "stored_dashboard"]

PAGE_SIZE = 50
SORTS = MEMBER_SORTS  # columns a list may be sorted by (a request names one; anything else is refused)
PREDICTIONS = "customer_predictions"
OVERVIEW = "_kizuna_overview"  # the overview's figures, stored by `kizuna analyze`
MEMBERS = "_kizuna_list_members"  # the lists' rows: scores and the predictions they sort by


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def stored_dashboard(ws: Any) -> dict[str, Any] | None:
    """The overview's figures as the last `kizuna analyze` stored them with the scores (a small table
    read at once); None when the store has none (analysed by an older kizuna)."""
    if not ws.store.has_table(OVERVIEW):
        return None
    with ws.store.engine_errors():
        figures = overview_from_rows(ws.store.table(OVERVIEW).to_pyarrow())
    figures["has_predictions"] = ws.store.has_table(PREDICTIONS)
    return figures


def dashboard(ws: Any) -> dict[str, Any]:
    """The overview: the KPIs of the last full month with their changes against the month before and
    the same month last year, and their monthly trends up to that month; the matrix, ranks, R × F
    grid, concentration curve and cohorts, all as of the day of the last `kizuna analyze`."""
    stored = stored_dashboard(ws)
    if stored is not None:
        return stored
    as_of = ws.scores_as_of()
    if as_of is None:
        from kizuna._errors import NoDataError, Phrase

        raise NoDataError(Phrase.of("error.customer_scores"), Phrase.of("error.run_analyze_first"))
    report = ws.kpis(as_of)
    period = Period.month_before(as_of)  # the tiles' month: a running month would compare badly
    segments = ws.segments()
    tables = ws.tables()
    months = 12
    return {
        "as_of": as_of,
        "start": report.start,
        "period": period,
        "comparison": ws.kpi_comparison(period),
        "headline": report.headline,
        "nps": report.nps,
        "by_month": [r for r in _rows(report.by) if r["month"] <= period.start][-months:],
        "nps_by_month": _rows(monthly_nps(tables["nps_answers"], period.end, months)),
        "ltv_by_month": _rows(monthly_ltv(tables["orders"], period.end, months)),
        "churn_by_month": [r for r in _rows(report.subscription_churn) if r["month"] <= period.start][-months:],
        "matrix": _rows(segments["matrix"]),
        "ranks": _rows(segments["ranks"]),
        "rfm_segments": _rows(segments["rfm_segments"]),
        "rf": _rows(rf_grid(ws.scores())),
        "concentration": _rows(report.concentration),
        "cohorts": _rows(report.cohorts),
        "f2": report.f2,
        "has_predictions": ws.store.has_table(PREDICTIONS),
    }


# the overview's tiles: (tile, compared KPI, value format, monthly series, its column, a share)
TILES = (
    ("nps", "nps", "num1", "nps_by_month", "nps", False),
    ("repeat_rate", "repeat_rate", "pct", "by_month", "repeat_rate", True),
    ("purchase_frequency", "purchase_frequency", "num2", "by_month", "purchase_frequency", False),
    ("aov", "aov", "yen", "by_month", "aov", False),
    ("ltv", "mean_ltv", "yen", "ltv_by_month", "ltv", False),
    ("subscription_churn", "subscription_churn", "pct", "churn_by_month", "churn_rate", True),
)


def _month(value: Any) -> str:
    return value.strftime("%Y-%m") if value is not None else ""


def kpi_tiles(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One tile per KPI: the month's value, its changes against the month before and the same month last
    year (with their colour), and the trend up to that month (an SVG per language: yen axes say 万円)."""
    rows = {r["key"]: r for r in data["comparison"].rows}
    tiles = []
    for key, compared, fmt, series, column, share in TILES:
        row = rows[compared]
        points = [(_month(r["month"]), r[column]) for r in data[series]]
        plain = "" if fmt == "yen" else sparkline_svg(points, percent=share)
        tiles.append({
            "key": key, "value": row["value"], "format": fmt,
            "svg": {lang: sparkline_svg(points, yen=lang) if fmt == "yen" else plain for lang in LANGS},
            "changes": [{"key": f"kpi_{which}_month_change", "prior_key": f"kpi_{which}_month",
                         "prior": row[which], "value": row[f"{which}_change"], "unit": row["unit"],
                         "tone": change_tone(row[f"{which}_change"], row["better"], row["unit"])}
                        for which in ("previous", "last_year")],
        })
    return tiles


def formatters(lang: str) -> dict[str, Any]:
    """A page's yen (万円 / 億円 above ¥1,000,000), changes and periods in `lang`."""
    return {"money": functools.partial(money, lang=lang), "change": functools.partial(change_text, lang=lang),
            "period_label": functools.partial(period_label, lang=lang)}


def mask_table(table: pa.Table, operator: bool) -> pa.Table:
    """`table` with contact columns masked (kept null where empty) unless `operator`."""
    if operator:
        return table
    for i, name in enumerate(table.column_names):
        if name in CONTACT_FIELDS:
            column = table.column(i)
            masked = pc.if_else(pc.is_valid(column), pa.scalar(MASK), pa.scalar(None, pa.string()))
            table = table.set_column(i, name, masked)
    return table


# -- one customer ------------------------------------------------------------------------------
def customer_detail(ws: Any, customer_id: str, operator: bool, operations: Any) -> dict[str, Any] | None:
    """Everything about one customer the store and the ledger know, with a merged timeline."""
    from kizuna.store import customer_records

    tables = ws.store.table_names()

    def rows_of(name: str, order: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        return customer_records(ws.store, name, customer_id, newest_by=order, limit=limit, tables=tables)

    profile = rows_of("customers", limit=1)
    if not profile:
        return None
    # as `mask_table` masks a column: every value that is not NULL
    profile = {k: MASK if k in CONTACT_FIELDS and v is not None and not operator else v for k, v in profile[0].items()}
    scores = next(iter(rows_of("customer_scores", limit=1)), None)
    predictions = next(iter(rows_of(PREDICTIONS, limit=1)), None)
    orders = rows_of("orders", "ordered_at")
    answers = [{**a, "nps_class": nps_class_of(a["score"])} for a in rows_of("nps_answers", "answered_at")]
    contacts = rows_of("support_contacts", "opened_at")
    events = rows_of("events", "occurred_at")
    deliveries = [dict(r) for r in operations.deliveries_of(customer_id)]
    zone = zoneinfo.ZoneInfo(ws.settings.business.timezone)  # the store keeps local wall-clock times
    timeline: list[dict[str, Any]] = []
    for o in orders:
        timeline.append({"at": o["ordered_at"], "kind": "order", "row": o})
    for a in answers:
        timeline.append({"at": a["answered_at"], "kind": "nps", "row": a})
    for c in contacts:
        timeline.append({"at": c["opened_at"], "kind": "support", "row": c})
    for e in events:
        timeline.append({"at": e["occurred_at"], "kind": "event", "row": e})
    for d in deliveries:
        ts = d.get("sent_ts") or d.get("due_ts")
        at = dt.datetime.fromtimestamp(ts, zone).replace(tzinfo=None) if ts else None
        timeline.append({"at": at, "kind": "message", "row": d})
    if not operator:  # free text that may hold an address (転居先: …) or an e-mail address (a bounce)
        for item in timeline:
            for field in ("detail", "note"):
                if item["row"].get(field) and item["kind"] in ("event", "message"):
                    item["row"] = {**item["row"], field: MASK}
    timeline.sort(key=lambda item: item["at"] or dt.datetime.min, reverse=True)
    return {"profile": profile, "scores": scores, "predictions": predictions, "timeline": timeline,
            "counts": {"orders": len(orders), "nps": len(answers), "support": len(contacts), "events": len(events),
                       "messages": len(deliveries)}}

