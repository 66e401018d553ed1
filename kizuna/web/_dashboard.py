"""The dashboard's pages: overview, RFM, cohorts, customer lists and exports, one customer, the
call list, segment migration and scenario results. Each is a thin shell over the Workspace API
and `kizuna.analytics` (through `kizuna.web._figures` and `_lists`); contact data is masked for
viewers before it reaches a template or a file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
import urllib.parse
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anyio import from_thread
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from kizuna._errors import KizunaError
from kizuna.analytics import MemberQuery
from kizuna.i18n import say
from kizuna.web import _charts, _figures, _lists
from kizuna.web._auth import MASK, Session, mask_row
from kizuna.web._labels import Words
from kizuna.web._pages import FORMATS, BadDate, page, render
from kizuna.web._pages import form as read_form

__all__ = ["dashboard_figures", "priority_rows", "routes", "warm"]

MATRIX_ROWS = (("ltv_high", ("churn_candidate", "loyal_candidate", "loyal", "unanswered_high")),
               ("ltv_low", ("non_cooperative", "indifferent", "advocate", "unanswered_low")))
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def dashboard_figures(ws: Any) -> dict[str, Any]:
    """The overview's figures and charts (cached per store version by the caller)."""
    return _charted(_figures.dashboard(ws))


def _charted(data: dict[str, Any]) -> dict[str, Any]:
    data["kpis"] = _figures.kpi_tiles(data)  # the last full month, its changes and trend
    data["lorenz_svg"] = _charts.lorenz_svg(data["concentration"])
    top20 = next((r["revenue_share"] for r in data["concentration"] if abs(r["customer_share"] - 0.2) < 1e-9), None)
    data["top20"] = top20
    return data


def _stored_figures(ws: Any) -> dict[str, Any] | None:
    stored = _figures.stored_dashboard(ws)
    return None if stored is None else _charted(stored)


def warm(reader: Any) -> None:
    """Read the overview's figures in the background as the app starts; in a store without stored figures,
    start computing them on a copy (`_figures_or_busy`)."""
    def stored_or_computed(ws: Any) -> dict[str, Any] | None:
        found = _stored_figures(ws)
        if found is None:
            reader.warm("dashboard", dashboard_figures, snapshot=True)
        return found

    reader.warm("dashboard:stored", stored_or_computed)


def _figures_or_busy(request: Request) -> tuple[dict[str, Any], bool]:
    """The overview's figures: those `kizuna analyze` stored with the scores, read for each version of the
    store (a small table: the first overview after an analysis waits for it); in a store analysed by an
    older kizuna, computed from every order on a copy of the file in the background."""
    reader = request.app.state.kizuna.reader
    stored, _stale = reader.cached("dashboard:stored", _stored_figures, stale_ok=False)
    if stored is not None:
        return stored, False
    return reader.cached("dashboard", dashboard_figures, snapshot=True)


@page()
def overview(request: Request, session: Session) -> Response:
    data, stale = _figures_or_busy(request)
    cells = {r["segment"]: r for r in data["matrix"]}
    return render(request, session, "overview.html", {"d": data, "stale": stale, "cells": cells,
                                                      "matrix_rows": MATRIX_ROWS,
                                                      **_figures.formatters(session.lang)})


@page()
def rfm(request: Request, session: Session) -> Response:
    data, stale = _figures_or_busy(request)
    grid = {(r["r_score"], r["f_score"]): r for r in data["rf"]}
    top = max((r["customers"] for r in data["rf"]), default=0) or 1
    return render(request, session, "rfm.html", {"d": data, "stale": stale, "grid": grid, "top": top})


@page()
def cohorts(request: Request, session: Session) -> Response:
    data, stale = _figures_or_busy(request)
    rows: dict[Any, dict[str, Any]] = {}
    for r in data["cohorts"]:
        row = rows.setdefault(r["cohort"], {"cohort": r["cohort"], "size": r["cohort_size"], "k": {}})
        row["k"][r["k"]] = r["share"]
    shown = list(rows.values())[-12:]
    months = sorted({k for row in shown for k in row["k"]})
    return render(request, session, "cohorts.html", {"d": data, "stale": stale, "rows": shown, "months": months})


# -- lists ------------------------------------------------------------------------------------------
def _list_params(request: Request) -> dict[str, Any]:
    q = request.query_params

    def score(name: str) -> int | None:
        value = q.get(name, "")
        return int(value) if value.isdigit() and 1 <= int(value) <= 5 else None

    page_no = q.get("page", "1")
    return {"segment": q.get("segment") or None, "r": score("r"), "f": score("f"), "q": q.get("q", "")[:100],
            "sort": q.get("sort") if q.get("sort") in _figures.SORTS else "ltv_revenue",
            "descending": q.get("desc", "1") != "0",
            "page": max(1, int(page_no)) if page_no.isdigit() and len(page_no) < 7 else 1}


def _member_query(params: dict[str, Any], session: Session) -> MemberQuery:
    if not params["segment"] and (params["r"] is None or params["f"] is None):
        raise KizunaError.keyed("web.choose_list")
    return MemberQuery(segment=params["segment"], r=params["r"], f=params["f"], search=params["q"],
                       contacts=session.operator, sort=params["sort"], descending=params["descending"])


@page()
def customer_list(request: Request, session: Session) -> Response:
    params = _list_params(request)
    query = _member_query(params, session)
    reader = request.app.state.kizuna.reader
    with reader.workspace() as ws:
        key, total, rows = _lists.list_page(ws, query, params["page"], operator=session.operator, reader=reader,
                                            columns=_lists.SHOWN_COLUMNS)
    as_of, _stale = reader.cached("scores_as_of", _scores_as_of, stale_ok=False)
    pages = max(1, math.ceil(total / _figures.PAGE_SIZE))
    words = Words(session.lang)
    title = words.segment(key) if params["segment"] else f"R{params['r']} × F{params['f']}"
    keep = {k: v for k, v in (("segment", params["segment"]), ("r", params["r"]), ("f", params["f"]),
                              ("q", params["q"]), ("sort", params["sort"]),
                              ("desc", "1" if params["descending"] else "0")) if v not in (None, "")}
    return render(request, session, "list.html", {
        "key": key, "title": title, "cells": _list_cells(rows, words), "total": total, "page": params["page"],
        "pages": pages, "params": params, "keep": keep, "sorts": _figures.SORTS, "as_of": as_of,
        "has_predictions": any(r["churn_risk"] is not None for r in rows),
    })


def _list_cells(rows: list[dict[str, Any]], words: Words) -> list[tuple[str, ...]]:
    """The list page's cells, row by row, as list.html writes them: formatted here in one pass, as a
    template's call per cell (labels, yen, days) costs more than the page's read."""
    yen, num, pct, day = FORMATS["yen"], FORMATS["num"], FORMATS["pct"], FORMATS["day"]
    days, segment, rank = words("days"), words.segment, words.rank
    return [(urllib.parse.quote(r["customer_id"], safe="/"), r["customer_id"], r["name"] or "", r["phone"] or "",
             r["email"] or "", yen(r["ltv_revenue"]), num(r["orders"]), day(r["last_order_at"])[:10],
             f"{r['recency_days']}{days}", "" if r["nps_score"] is None else str(r["nps_score"]),
             segment(r["matrix_cell"]), rank(r["rfm_rank"]), pct(r["churn_risk"]), yen(r["value_at_risk"]))
            for r in rows]


def _scores_as_of(ws: Any) -> dt.date | None:
    return ws.scores_as_of()


@page()
def export(request: Request, session: Session) -> Response:
    from kizuna.exporting import write_customer_list

    fmt = request.path_params["fmt"]
    if fmt not in EXPORT_TYPES:
        return render(request, session, "error.html", {"message": Words(session.lang)("not_found")}, status=404)
    query = _member_query(_list_params(request), session)
    with request.app.state.kizuna.reader.workspace() as ws:
        key, table = _lists.list_export(ws, query, operator=session.operator)
        as_of, business = ws.scores_as_of(), ws.settings.business.name
    handle, name = tempfile.mkstemp(prefix="kizuna-export-", suffix=f".{fmt}")
    os.close(handle)
    try:
        write_customer_list(table, key, Path(name), fmt, session.lang, as_of=as_of, business=business)
    except BaseException:
        os.unlink(name)
        raise
    filename = f"kizuna-{key}-{dt.date.today().isoformat()}.{fmt}"
    return FileResponse(name, media_type=EXPORT_TYPES[fmt], filename=filename,
                        background=BackgroundTask(os.unlink, name), headers={"cache-control": "no-store"})


# -- one customer --------------------------------------------------------------------------------------
@page()
def customer(request: Request, session: Session) -> Response:
    state = request.app.state.kizuna
    customer_id = request.path_params["customer_id"]
    with state.reader.workspace() as ws:
        detail = _figures.customer_detail(ws, customer_id, session.operator, state.operations)
        calls = _last_calls(ws, customer_id, session.operator) if detail is not None else []
        now = dt.datetime.now(zoneinfo.ZoneInfo(ws.settings.business.timezone)).replace(tzinfo=None)
        titles = _scenario_titles(ws, session.lang)
    if detail is None:
        return render(request, session, "error.html", {"message": Words(session.lang)("not_found")}, status=404)
    return render(request, session, "customer.html", {
        "c": detail, "customer_id": customer_id, "calls": calls, "outcomes": CALL_OUTCOMES, "titles": titles,
        "now": now.strftime("%Y-%m-%dT%H:%M"),
        "call_path": f"/customer/{urllib.parse.quote(customer_id, safe='')}/calls",
    })


_TITLES: dict[tuple[str, str], tuple[Any, dict[str, str]]] = {}  # (folder, lang) -> (its files' stamp, titles)


def _scenario_titles(ws: Any, lang: str) -> dict[str, str]:
    """The scenarios' titles by name, read again only when a scenario file changed (parsing every YAML file
    for each customer page would take longer than the page's queries)."""
    from kizuna.scenarios import SCENARIO_FOLDER

    folder = ws.path / SCENARIO_FOLDER
    try:
        stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                             for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")]))
    except OSError:  # a file removed meanwhile: read them all
        stamp = None
    known = _TITLES.get((str(folder), lang))
    if stamp is not None and known is not None and known[0] == stamp:
        return known[1]
    try:  # the messages' scenarios by their titles; a scenario file being edited must not hide the page
        titles = {s.name: s.label(lang) for s in ws.scenarios()}
    except KizunaError:
        return {}
    _TITLES[(str(folder), lang)] = (stamp, titles)
    return titles


# the outcomes of a call, as the form offers them (the `call_outcome` values of the calls table)
CALL_OUTCOMES = ("reached", "no_answer", "kept", "cancelled", "callback")
CALLS_SHOWN = 5
_CALL_FIELDS = ("called_at", "agent", "script", "outcome", "next_call_at", "note")


def _last_calls(ws: Any, customer_id: str, operator: bool) -> list[dict[str, Any]]:
    """The customer's latest calls, newest first; the note (free text) masked for viewers."""
    from kizuna.store import customer_records

    rows = customer_records(ws.store, "calls", customer_id, newest_by="called_at", limit=CALLS_SHOWN,
                            tables=ws.store.table_names())
    return [{**r, "note": r.get("note") if operator or not r.get("note") else MASK} for r in rows]


@page()
def record_call(request: Request, session: Session) -> Response:
    """The customer page's form: one call written to the calls table (operators only; CSRF checked by `page`)."""
    from kizuna.importing import CallError
    from kizuna.importing import record_call as write_call

    words = Words(session.lang)
    if not session.operator:
        return render(request, session, "error.html", {"message": words("calls_operator_only")}, status=403)
    customer_id = request.path_params["customer_id"]
    sent = from_thread.run(read_form, request)  # parsed once already, for the CSRF check
    values = {name: str(sent.get(name) or "").strip() for name in _CALL_FIELDS}
    values["agent"] = values["agent"] or session.user or ""
    values["called_at"] = values["called_at"].replace("T", " ")
    try:
        with request.app.state.kizuna.reader.writing() as ws:
            write_call(ws.store, {"customer_id": customer_id, **values}, timezone=ws.settings.business.timezone)
    except CallError as exc:
        return render(request, session, "error.html", {"message": say(exc, session.lang)}, status=400)
    return RedirectResponse(f"/customer/{urllib.parse.quote(customer_id, safe='')}#calls", 303)


@page()
def call_results(request: Request, session: Session) -> Response:
    """Per talk script: the kept rate with its interval, and the difference from the reference script; the
    customers called against the call holdout (`Workspace.call_results`)."""
    with request.app.state.kizuna.reader.workspace() as ws:
        found = ws.call_results()
    return render(request, session, "calls.html", {"rows": found["scripts"], "effect": found["holdout"],
                                                   "one_day": dt.timedelta(days=1)})


# -- the call list, migration, results -------------------------------------------------------------------
def priority_rows(ws: Any) -> dict[str, Any]:
    """The keep list as the call-list page shows it (`_lists.call_list_view`)."""
    return _lists.call_list_view(ws, "keep")


def _winback_rows(ws: Any) -> dict[str, Any]:
    return _lists.call_list_view(ws, "winback")


@page()
def priority(request: Request, session: Session) -> Response:
    """The day's call list: keep (解約防止, the default) or win-back (掘り起こし, ?list=winback)."""
    kind = request.query_params.get("list")
    kind = kind if kind in _lists.CALL_LISTS else "keep"
    key, compute = ("priority", priority_rows) if kind == "keep" else ("priority:winback", _winback_rows)
    # contact data: never from an older version of the store (a customer may have been erased since)
    view, stale = request.app.state.kizuna.reader.cached(key, compute, stale_ok=False)
    shown = [mask_row(r, session.operator) for r in view["rows"]]
    return render(request, session, "priority.html", {"rows": shown, "stale": stale, "kind": kind,
                                                      "summary": view["summary"], "lists": _lists.CALL_LISTS})


def _day(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise BadDate(value) from None


def _migration(from_day: dt.date, to_day: dt.date, by: str) -> Callable[[Any], dict[str, Any]]:
    def compute(ws: Any) -> dict[str, Any]:
        from kizuna.analytics import migration_headline, migration_order

        table = ws.migration(from_day, to_day, by=by)
        return {"rows": table.to_pylist(), "order": list(migration_order(ws.settings.analysis, by)),
                "headline": migration_headline(table)}

    return compute


@page()
def migration(request: Request, session: Session) -> Response:
    from kizuna.analytics import migration_label

    reader = request.app.state.kizuna.reader
    q = request.query_params
    by = q.get("by") if q.get("by") in ("cell", "rank") else "cell"
    data, _stale = _figures_or_busy(request)
    to_day = _day(q.get("to")) or data["as_of"]
    from_day = _day(q.get("from")) or to_day - dt.timedelta(days=90)
    if from_day >= to_day:
        from_day = to_day - dt.timedelta(days=90)
    found, _stale = reader.cached(f"migration:{from_day}:{to_day}:{by}", _migration(from_day, to_day, by),
                                  wait=2.0, snapshot=True)
    rows = found["rows"]
    seen = {r["from_segment"] for r in rows} | {r["to_segment"] for r in rows}
    keys = [k for k in found["order"] if k in seen] + sorted(seen - set(found["order"]), key=str)
    names = {k: migration_label(k, session.lang) for k in keys}
    return render(request, session, "migration.html", {
        "by": by, "rows": rows, "from_day": from_day, "to_day": to_day, "keys": keys, "names": names,
        "headline": found["headline"], "grid": {(r["from_segment"], r["to_segment"]): r["customers"] for r in rows},
        "svg": _charts.flow_svg(rows, keys, names),
    })


@page()
def results(request: Request, session: Session) -> Response:
    with request.app.state.kizuna.reader.workspace() as ws:
        rows = list(ws.results(lang=session.lang))
    return render(request, session, "results.html", {"rows": rows})


def routes() -> list[Route]:
    return [
        Route("/", overview),
        Route("/rfm", rfm),
        Route("/cohorts", cohorts),
        Route("/list", customer_list),
        Route("/export.{fmt}", export),
        Route("/customer/{customer_id}", customer),
        Route("/customer/{customer_id}/calls", record_call, methods=["POST"]),
        Route("/calls", call_results),
        Route("/priority", priority),
        Route("/migration", migration),
        Route("/results", results),
    ]
