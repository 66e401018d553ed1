"""What the pages show, read from an open `Workspace`: small plain-Python structures.

Everything is aggregated, filtered, sorted and paged in the engine; only the rows a page
shows come back. `dashboard` is the expensive one (the KPI report reads every order) and is
cached per store version by the caller; the lists and the customer page are queried per request.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _

from kizuna.analytics import EXPORT_COLUMNS, PREDICTION_EXPORT_COLUMNS, AsOf, counted_orders, segment_filter
from kizuna.web._auth import CONTACT_FIELDS, MASK

__all__ = ["PAGE_SIZE", "SORTS", "customer_detail", "dashboard", "list_query", "mask_table", "member_page"]

PAGE_SIZE = 50
# Columns a list may be sorted by (a request names one; anything else is refused).
SORTS = ("ltv_revenue", "orders", "recency_days", "last_order_at", "nps_score", "customer_id", "churn_risk",
         "value_at_risk")
TREND_MONTHS = 12
PREDICTIONS = "customer_predictions"


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def dashboard(ws: Any) -> dict[str, Any]:
    """The overview: headline KPIs with their monthly trends, the matrix, ranks, R × F grid,
    concentration curve and cohorts, all as of the day of the last `kizuna analyze`."""
    scores = ws.scores()
    as_of = scores.as_of.max().to_pyarrow().as_py()
    if as_of is None:
        from kizuna._errors import NoDataError

        raise NoDataError("customer_scores", "Run `kizuna analyze` first.")
    report = ws.kpis(as_of)
    segments = ws.segments()
    tables = ws.tables()
    cut = AsOf(as_of)
    by_month = _rows(report.by)[-TREND_MONTHS:]
    churn = _rows(report.subscription_churn)[-TREND_MONTHS:]
    rf = scores.filter(scores.r_score.notnull() & scores.f_score.notnull()).group_by(["r_score", "f_score"]).aggregate(
        customers=_.count(), revenue=_.ltv_revenue.sum())
    return {
        "as_of": as_of,
        "start": report.start,
        "headline": report.headline,
        "nps": report.nps,
        "by_month": by_month,
        "nps_by_month": _nps_by_month(tables["nps_answers"], cut),
        "ltv_by_month": _ltv_by_month(tables["orders"], cut),
        "churn_by_month": churn,
        "matrix": _rows(segments["matrix"]),
        "ranks": _rows(segments["ranks"]),
        "rfm_segments": _rows(segments["rfm_segments"]),
        "rf": _rows(rf.to_pyarrow()),
        "concentration": _rows(report.concentration),
        "cohorts": _rows(report.cohorts),
        "f2": report.f2,
        "has_predictions": ws.store.has_table(PREDICTIONS),
    }


def _month_start(day: dt.date, back: int) -> dt.date:
    month = day.year * 12 + day.month - 1 - back
    return dt.date(month // 12, month % 12 + 1, 1)


def _nps_by_month(answers: ibis.Table, cut: AsOf) -> list[dict[str, Any]]:
    """NPS of the answers given in each of the last months (a month's own score, not a running one)."""
    start = ibis.literal(dt.datetime.combine(_month_start(cut.day, TREND_MONTHS - 1), dt.time()), type="timestamp")
    recent = answers.filter(cut.before_end(answers.answered_at), answers.answered_at >= start)
    per = recent.group_by(month=recent.answered_at.truncate("M").date()).aggregate(
        answered=_.count(), promoters=(_.score >= 9).sum(), detractors=(_.score <= 6).sum())
    rows = _rows(per.order_by("month").to_pyarrow())
    for row in rows:
        row["nps"] = 100.0 * (row["promoters"] - row["detractors"]) / row["answered"] if row["answered"] else None
    return rows


def _ltv_by_month(orders: ibis.Table, cut: AsOf) -> list[dict[str, Any]]:
    """Mean lifetime revenue per customer at the end of each month (customers who had ordered by then)."""
    counted = counted_orders(orders, cut)
    revenue = counted.group_by(month=counted.ordered_at.truncate("M").date()).aggregate(revenue=_.revenue.sum())
    firsts = counted.group_by("customer_id").aggregate(first=_.ordered_at.min())
    newcomers = firsts.group_by(month=firsts.first.truncate("M").date()).aggregate(new=_.count())
    joined = revenue.outer_join(newcomers, "month").select(
        month=ibis.coalesce(_.month, _.month_right), revenue=_.revenue.fill_null(0), new=_.new.fill_null(0))
    running_revenue = running_customers = 0
    out = []
    for row in _rows(joined.order_by("month").to_pyarrow()):
        running_revenue += row["revenue"]
        running_customers += row["new"]
        out.append({"month": row["month"],
                    "ltv": running_revenue / running_customers if running_customers else None})
    return out[-TREND_MONTHS:]


# -- customer lists --------------------------------------------------------------------------------
def list_query(ws: Any, *, segment: str | None, r: int | None, f: int | None, q: str, sort: str | None,
               descending: bool, operator: bool) -> tuple[str, ibis.Table]:
    """(list key, expression) for a list page or export: a segment (cell, rank, flag) or an R × F cell,
    narrowed by `q` (customer id prefix; name, e-mail or phone too for an operator), sorted in the engine."""
    scores = ws.scores()
    if segment:
        key, condition = segment_filter(scores, segment)
    elif r is not None and f is not None:
        key, condition = f"R{r}F{f}", (scores.r_score == r) & (scores.f_score == f)
    else:
        raise ValueError("a list needs a segment or an R and F score")
    customers = ws.store.table("customers")
    members = scores.filter(condition).inner_join(customers, "customer_id")
    columns = list(EXPORT_COLUMNS)
    if ws.store.has_table(PREDICTIONS):
        members = members.left_join(ws.store.table(PREDICTIONS).select("customer_id", *PREDICTION_EXPORT_COLUMNS),
                                    "customer_id")
        columns += PREDICTION_EXPORT_COLUMNS
    members = members.select(*columns)
    q = q.strip()
    if q:
        match = members.customer_id.startswith(q)
        if operator:  # a viewer must not find a customer by data it cannot see
            low = q.lower()
            match = (match | members.name.contains(q) | members.email.lower().contains(low)
                     | members.phone.contains(q))
        members = members.filter(match)
    if sort is None:  # the caller orders
        return key, members
    if sort not in SORTS or sort not in columns:
        sort = "ltv_revenue"
    first = ibis.desc(sort) if descending else ibis.asc(sort)
    if sort in ("nps_score", "churn_risk", "value_at_risk", "last_order_at"):
        first = members[sort].desc(nulls_first=False) if descending else members[sort].asc(nulls_first=False)
    return key, members.order_by([first, "customer_id"])


def member_page(expr: ibis.Table, page: int, operator: bool) -> tuple[int, list[dict[str, Any]]]:
    """(total, rows of page `page`, 1-based), contact data masked unless `operator`."""
    total = int(expr.count().to_pyarrow().as_py())
    rows = expr.limit(PAGE_SIZE, offset=(page - 1) * PAGE_SIZE).to_pyarrow()
    return total, _rows(mask_table(rows, operator))


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
    store = ws.store
    tables = set(store.backend.list_tables())
    raw = store.engine == "duckdb"  # parameterised SQL: compiling seven Ibis expressions costs more than running them

    def rows_of(name: str, order: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        if name not in tables:
            return []
        if raw:
            ordered = f'ORDER BY "{order}" DESC ' if order else ""
            return _rows(store.backend.con.execute(
                f'SELECT * FROM "{name}" WHERE customer_id = ? {ordered}LIMIT {limit}', [customer_id]).to_arrow_table())
        table = store.table(name)
        expr = table.filter(table.customer_id == customer_id)
        return _rows((expr.order_by(ibis.desc(order)) if order else expr).limit(limit).to_pyarrow())

    profile = rows_of("customers", limit=1)
    if not profile:
        return None
    profile = mask_table(pa.Table.from_pylist(profile), operator).to_pylist()[0]
    scores = next(iter(rows_of("customer_scores", limit=1)), None)
    predictions = next(iter(rows_of(PREDICTIONS, limit=1)), None)
    orders = rows_of("orders", "ordered_at")
    answers = rows_of("nps_answers", "answered_at")
    contacts = rows_of("support_contacts", "opened_at")
    events = rows_of("events", "occurred_at")
    deliveries = [dict(r) for r in operations.deliveries_of(customer_id)]
    zone = zoneinfo.ZoneInfo(ws.settings.timezone)  # the store keeps local wall-clock times
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

