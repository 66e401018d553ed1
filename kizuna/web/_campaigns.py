"""The segment builder and the campaign pages (docs/measures.md#saved-segments, #campaigns).

Segments: a form of field / operator / value rows over the fields the where-language knows (scores,
predictions, lifecycle state, products bought, sales channels, contacts and consents), labelled
from the catalogue; the count and revenue share as the rows change (`/segments/count`, a small
JSON answer that `static/segment-builder.js` asks for after a pause in typing — without script,
the form's "count" button does the same); saved by name into segments/NAME.yaml.

Campaigns: the list with each campaign's state, the form that writes campaigns/NAME.yaml, who a
send would reach and what it costs, a preview for one customer, a test to the operator's own
address, send now or at a time. A send larger than
`[delivery] confirm_over` asks to be confirmed first. A send from the page runs `kizuna campaign
send NAME --yes` in a process of its own — the dispatcher forks its SMTP connections, which a
threaded web server must not do — with its output in outbox/campaigns/.

Operators act (save, delete, schedule, send, test); every act is an audit line. Viewers see the same
pages without the buttons, may count, and get 403 when they post an act. Every POST carries the
session's CSRF token (checked by `kizuna.web._pages.page`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import threading
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from anyio import from_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kizuna._errors import KizunaError, NoDataError
from kizuna.web._auth import CONTACT_FIELDS, MASK, Session
from kizuna.web._labels import Words
from kizuna.web._pages import form as read_form
from kizuna.web._pages import page, render

__all__ = ["routes"]

MAX_ROWS = 10  # condition rows of the builder
MAX_VARIANTS = 3  # A/B variants the campaign form shows (a file may have more)
OPERATORS = {"number": (">=", "<=", ">", "<", "==", "!="), "share": (">=", "<=", ">", "<"), "flag": ("==",),
             "choice": ("in", "not in")}
OPERATOR_KEYS = {">=": "ge", "<=": "le", ">": "gt", "<": "lt", "==": "eq", "!=": "ne", "in": "in", "not in": "not_in"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TEMPLATE_EXAMPLE = "{{ name }}, {{ ltv_revenue | yen }}, {{ unsubscribe_url }}"  # fields a message may use


# -- the builder's rows ----------------------------------------------------------------------------------
@dataclass
class Row:
    """One condition as the form shows it: field, operator, values, and its mistake in words."""

    index: int
    field: str = ""
    op: str = ""
    values: list[str] = dc_field(default_factory=list)
    error: str | None = None

    @property
    def kind(self) -> str:
        return _kinds().get(self.field, "number" if self.field else "")

    def text(self) -> str | None:
        """The condition as the where-language writes it; None while the row is not filled in."""
        values = [v.strip() for v in self.values if v.strip()] or (["true"] if self.kind == "flag" else [])
        if not self.field or not values:  # a flag's row just chosen counts as the "yes" the form shows
            return None
        op = self.op if self.op in OPERATORS.get(self.kind, ()) else OPERATORS.get(self.kind, ("==",))[0]
        if op in ("in", "not in"):
            return f"{self.field} {op} [{', '.join(values)}]"
        return f"{self.field} {op} {values[0]}"


def _kinds() -> dict[str, str]:
    from kizuna.scenarios import SEGMENT_FIELDS

    return {name: kind for _, fields in SEGMENT_FIELDS for name, kind in fields}


def _rows_from(params: Any) -> list[Row]:
    """The rows of a submitted form or query (f0, o0, v0 …; v may repeat for a choice)."""
    rows = []
    for i in range(MAX_ROWS):
        name = str(params.get(f"f{i}") or "").strip()
        if not name:
            continue
        rows.append(Row(len(rows), name, str(params.get(f"o{i}") or "").strip(),
                        [str(v)[:200] for v in params.getlist(f"v{i}")]))
    return rows


def _rows_of(segment: Any) -> list[Row]:
    def shown(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return [Row(i, c.column, c.op, [shown(v) for v in (c.value if isinstance(c.value, list) else [c.value])])
            for i, c in enumerate(segment.conditions)]


def _conditions(rows: list[Row], lang: str, *, strict: bool) -> list[str] | None:
    """The rows' conditions, each checked; a mistake is put on its row (then None). `strict`: a row
    with a field but no value is a mistake too (saving), else it is left out (counting)."""
    from kizuna.i18n import say
    from kizuna.scenarios import ScenarioError, parse_conditions

    texts: list[str] = []
    failed = False
    for row in rows:
        text = row.text()
        if text is None:
            if strict:
                row.error = Words(lang)("segbuild.row_incomplete")
                failed = True
            continue
        try:
            parse_conditions([text], "form")
        except ScenarioError as exc:
            problem = exc.phrase.values.get("problem") if exc.phrase is not None else str(exc)
            row.error = say(problem, lang)
            failed = True
            continue
        texts.append(text)
    return None if failed else texts


def _field_groups(lang: str, rows: list[Row]) -> list[dict[str, Any]]:
    from kizuna.scenarios import SEGMENT_FIELDS

    words = Words(lang)
    groups = [{"label": words(f"segbuild.group_{group}"),
               "fields": [{"name": name, "label": words(f"segfield.{name}")} for name, _ in fields]}
              for group, fields in SEGMENT_FIELDS]
    known = set(_kinds())
    others = sorted({r.field for r in rows if r.field and r.field not in known})
    if others:  # a column a file names that the form does not offer: shown as written
        groups.append({"label": words("segbuild.group_other"), "fields": [{"name": n, "label": n} for n in others]})
    return groups


def _choices(ws: Any, lang: str) -> dict[str, list[tuple[str, str]]]:
    """value -> words for every choice field."""
    from kizuna.analytics import LIFECYCLE_STATES, MATRIX_CELLS, RFM_SEGMENTS
    from kizuna.i18n import label, segment_label, value_label

    data = ws.segment_choices()
    ranks = [(r, segment_label(f"rank_{r}", lang) if f"rank_{r}" != segment_label(f"rank_{r}", lang) else r)
             for r in data["rfm_rank"]]
    return {
        "rfm_rank": ranks,
        "matrix_cell": [(c, segment_label(c, lang)) for c in MATRIX_CELLS],
        "rfm_segment": [(s, segment_label(s, lang)) for s in RFM_SEGMENTS],
        "nps_class": [(c, segment_label(c, lang)) for c in ("promoter", "passive", "detractor")],
        "lost_reason": [(c, segment_label(c, lang)) for c in ("unresolved", "situation_changed", "drifted")],
        "lifecycle_state": [(s, label(f"lifecycle_{s}", lang)) for s in LIFECYCLE_STATES],
        "products_bought": list(zip(data["products_bought"], data["product_names"], strict=True)),
        "order_channels": [(c, value_label("sales_channel", c, lang)) for c in data["order_channels"]],
    }


def _row_views(rows: list[Row], lang: str, choices: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    words = Words(lang)
    views = []
    for row in [*rows, Row(len(rows))][:MAX_ROWS]:  # and an empty one to add a condition
        kind = row.kind
        options = choices.get(row.field, []) if kind == "choice" else []
        known = {value for value, _ in options}
        options += [(v, v) for v in row.values if kind == "choice" and v not in known]  # as the file wrote it
        views.append({"i": row.index, "field": row.field, "kind": kind, "op": row.op, "chosen": row.values,
                      "ops": [(op, words(f"segop.{OPERATOR_KEYS[op]}")) for op in OPERATORS.get(kind, ())],
                      "options": options, "error": row.error})
    return views


def _count_text(count: Any, lang: str) -> str:
    words = Words(lang)
    return words("segbuild.count_text", n=f"{count.customers:,}", share=_pct(count.customer_share),
                 revenue_share=_pct(count.revenue_share))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _count(ws: Any, texts: list[str], lang: str) -> tuple[str | None, str | None]:
    """(the count in words, or the reason there is none)."""
    from kizuna.i18n import say

    try:
        return _count_text(ws.count_segment(texts, source="form"), lang), None
    except NoDataError as exc:
        return None, say(exc, lang)
    except KizunaError as exc:
        return None, say(exc, lang)


# -- segment pages -------------------------------------------------------------------------------------
def _condition_words(row: Row, lang: str, choices: dict[str, list[tuple[str, str]]]) -> str:
    words = Words(lang)
    name = words(f"segfield.{row.field}") if row.field in _kinds() else row.field
    if row.kind == "flag":
        return f"{name}: {words('segbuild.yes' if row.values[:1] == ['true'] else 'segbuild.no')}"
    shown = dict(choices.get(row.field, []))
    values = words("segbuild.values_and").join(shown.get(v, v) for v in row.values)
    return f"{name} {words('segop.' + OPERATOR_KEYS.get(row.op, 'eq'))} {values}"


@page()
def segment_list(request: Request, session: Session) -> Response:
    """Every saved segment: title, conditions in words, who uses it."""
    with request.app.state.kizuna.reader.workspace() as ws:
        segments = ws.saved_segments()
        choices = _choices(ws, session.lang)
        views = [{"name": s.name, "title": s.label(session.lang),
                  "where": [_condition_words(r, session.lang, choices) for r in _rows_of(s)],
                  "users": ws.segment_users(s.name), "path": "/segments/" + urllib.parse.quote(s.name, safe="")}
                 for s in segments]
    return render(request, session, "segments.html", {"segments": views, "done": request.query_params.get("done")})


def _builder(request: Request, session: Session, ws: Any, *, rows: list[Row], name: str, title: Mapping[str, str],
             existing: bool, message: str | None = None, status: int = 200) -> Response:
    choices = _choices(ws, session.lang)
    texts = _conditions(rows, session.lang, strict=False)
    count, problem = _count(ws, texts, session.lang) if texts is not None else (None, None)
    return render(request, session, "segment_edit.html", {
        "name": name, "title_ja": title.get("ja", ""), "title_en": title.get("en", ""), "existing": existing,
        "rows": _row_views(rows, session.lang, choices), "groups": _field_groups(session.lang, rows),
        "count": count, "problem": problem, "message": message, "saved": request.query_params.get("saved"),
        "users": ws.segment_users(name) if existing else [],
    }, status=status)


@page()
def segment_new(request: Request, session: Session) -> Response:
    """The builder, empty (or with the rows of the address: f0=…&o0=…&v0=…)."""
    with request.app.state.kizuna.reader.workspace() as ws:
        return _builder(request, session, ws, rows=_rows_from(request.query_params), name="", title={},
                        existing=False)


@page()
def segment_page(request: Request, session: Session) -> Response:
    """A saved segment in the builder, with its count."""
    name = request.path_params["name"]
    with request.app.state.kizuna.reader.workspace() as ws:
        segment = ws.saved_segment(name)
        return _builder(request, session, ws, rows=_rows_of(segment), name=segment.name, title=segment.title,
                        existing=True)


@page()
def segment_count(request: Request, session: Session) -> Response:
    """GET f0=…&o0=…&v0=…: {"ok", "customers", "text"} — the builder's live count, in the user's language."""
    rows = _rows_from(request.query_params)
    texts = _conditions(rows, session.lang, strict=False)
    if texts is None:
        mistake = next(r.error for r in rows if r.error)
        return JSONResponse({"ok": False, "text": mistake}, headers={"cache-control": "no-store"})
    with request.app.state.kizuna.reader.workspace() as ws:
        try:
            count = ws.count_segment(texts, source="form")
        except KizunaError as exc:
            from kizuna.i18n import say

            return JSONResponse({"ok": False, "text": say(exc, session.lang)}, headers={"cache-control": "no-store"})
    return JSONResponse({"ok": True, "customers": count.customers, "revenue_share": count.revenue_share,
                         "text": _count_text(count, session.lang)}, headers={"cache-control": "no-store"})


def _forbidden(request: Request, session: Session) -> Response:
    return render(request, session, "error.html", {"message": Words(session.lang)("forbidden")}, status=403)


@page()
def segment_edit(request: Request, session: Session) -> Response:
    """POST the builder: do=count shows the count (anyone); do=save writes segments/NAME.yaml (operators)."""
    from kizuna.i18n import say

    sent = from_thread.run(read_form, request)  # parsed once already, for the CSRF check
    rows = _rows_from(sent)
    name = str(sent.get("name") or "").strip()[:64]
    title = {"ja": str(sent.get("title_ja") or "").strip()[:200], "en": str(sent.get("title_en") or "").strip()[:200]}
    existing = str(sent.get("existing") or "") == "1"
    with request.app.state.kizuna.reader.workspace() as ws:
        if sent.get("do") != "save":
            return _builder(request, session, ws, rows=rows, name=name, title=title, existing=existing)
        if not session.operator:
            return _forbidden(request, session)
        words = Words(session.lang)
        texts = _conditions(rows, session.lang, strict=True)
        message = None
        if not _NAME.fullmatch(name):
            message = words("segbuild.bad_name")
        elif texts is None:
            message = words("segbuild.fix_rows")
        elif not texts:
            message = words("segbuild.no_rows")
        if message is None:
            try:
                ws.save_segment(name, texts or [], title=title, by=session.user)
            except KizunaError as exc:
                message = say(exc, session.lang)
        if message is not None:
            return _builder(request, session, ws, rows=rows, name=name, title=title, existing=existing,
                            message=message, status=400)
    return RedirectResponse(f"/segments/{urllib.parse.quote(name, safe='')}?saved=1", 303)


@page()
def segment_delete(request: Request, session: Session) -> Response:
    """POST: an operator removes a saved segment no scenario or campaign uses."""
    if not session.operator:
        return _forbidden(request, session)
    name = request.path_params["name"]
    with request.app.state.kizuna.reader.workspace() as ws:
        ws.delete_segment(name, by=session.user)
    return RedirectResponse("/segments?" + urllib.parse.urlencode({"done": name}), 303)


# -- campaign pages -----------------------------------------------------------------------------------------
def _when(at: dt.datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M") if at is not None else ""


def _campaign_values(campaign: Any | None) -> dict[str, Any]:
    """The form's values for `campaign` (None: a new one)."""
    if campaign is None:
        return {"name": "", "title_ja": "", "title_en": "", "segment": "", "channel": "email", "lang": "ja",
                "subject_ja": "", "subject_en": "", "body_ja": "", "body_en": "", "send_at": "", "holdout": "",
                "ab": False, "variants": [_variant_values(None, i) for i in range(MAX_VARIANTS)],
                "goal_kind": "order", "goal_days": 30, "budget": ""}
    variants = [_variant_values(v, i, campaign) for i, v in enumerate(campaign.variants[:MAX_VARIANTS])]
    variants += [_variant_values(None, i) for i in range(len(variants), MAX_VARIANTS)]
    return {"name": campaign.name, "title_ja": campaign.title["ja"], "title_en": campaign.title["en"],
            "segment": campaign.segment, "channel": campaign.channel, "lang": campaign.lang,
            "subject_ja": campaign.subject["ja"], "subject_en": campaign.subject["en"],
            "body_ja": campaign.body["ja"], "body_en": campaign.body["en"], "send_at": _when(campaign.send_at),
            "holdout": "" if campaign.holdout is None else f"{100 * campaign.holdout:g}", "ab": campaign.ab,
            "variants": variants, "goal_kind": campaign.goal.kind, "goal_days": campaign.goal.days,
            "budget": "" if campaign.budget is None else str(campaign.budget)}


def _variant_values(variant: Any | None, index: int, campaign: Any | None = None) -> dict[str, str]:
    if variant is None or campaign is None or not campaign.ab:
        return {"name": "ABC"[index], "share": "", "subject_ja": "", "subject_en": "", "body_ja": "", "body_en": ""}
    own = {part: getattr(variant, part) if getattr(variant, part) != getattr(campaign, part) else {"ja": "", "en": ""}
           for part in ("subject", "body")}
    return {"name": variant.name, "share": f"{100 * variant.share:g}", "subject_ja": own["subject"]["ja"],
            "subject_en": own["subject"]["en"], "body_ja": own["body"]["ja"], "body_en": own["body"]["en"]}


def _segment_options(ws: Any, lang: str) -> list[dict[str, Any]]:
    from kizuna.analytics import LIFECYCLE_SEGMENTS, MATRIX_CELLS, RFM_SEGMENTS
    from kizuna.i18n import label, segment_label

    words = Words(lang)
    saved = [(s.name, s.label(lang)) for s in ws.saved_segments()]
    return [
        {"label": words("campaign.segments_saved"), "options": saved},
        {"label": words("campaign.segments_matrix"), "options": [(c, segment_label(c, lang)) for c in MATRIX_CELLS]},
        {"label": words("campaign.segments_lifecycle"), "options": [(s, label(s, lang)) for s in LIFECYCLE_SEGMENTS]},
        {"label": words("campaign.segments_rfm"), "options": [(s, segment_label(s, lang)) for s in RFM_SEGMENTS]},
    ]


def _segment_label(ws: Any, name: str, lang: str) -> str:
    for group in _segment_options(ws, lang):
        for value, shown in group["options"]:
            if value == name:
                return shown
    from kizuna.i18n import segment_label

    return segment_label(name, lang)


def _timezone(ws: Any) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(ws.settings.business.timezone)


@page()
def campaign_list(request: Request, session: Session) -> Response:
    """Every campaign with its state (draft, scheduled, sent) and the ledger's counts."""
    from kizuna.i18n import say

    views, problem = [], None
    with request.app.state.kizuna.reader.workspace() as ws:
        try:
            campaigns = ws.campaigns()
        except KizunaError as exc:  # a file being edited: the page says which, and how to fix it
            campaigns, problem = [], say(exc, session.lang)
        for c in campaigns:
            views.append({"name": c.name, "title": c.label(session.lang), "channel": c.channel,
                          "segment": _segment_label(ws, c.segment, session.lang), "send_at": _when(c.send_at),
                          "ab": [v.name for v in c.variants if v.name], **ws.campaign_state(c.name),
                          "path": "/campaigns/" + urllib.parse.quote(c.name, safe="")})
    return render(request, session, "campaigns.html", {"campaigns": views, "problem": problem})


def _plan(ws: Any, name: str, lang: str) -> tuple[Any | None, str | None]:
    from kizuna.i18n import say

    try:
        return ws.campaign_plan(name), None
    except KizunaError as exc:
        return None, say(exc, lang)


def _last_log(path: Path, name: str) -> dict[str, Any] | None:
    """The newest send started from the page: when, and its problems (or its one error line)."""
    from kizuna.scenarios import OUTBOX

    logs = sorted((path / OUTBOX / "campaigns").glob(f"{name}-*.log"))
    if not logs:
        return None
    text = logs[-1].read_text(encoding="utf-8", errors="replace").strip()
    try:
        found = json.loads(text) if text else {}
        problems = [str(p) for p in found.get("problems", [])]
    except ValueError:
        problems = [line for line in text.splitlines() if line.strip()][-1:]
    return {"problems": problems, "running": not text}


def _campaign_page(request: Request, session: Session, ws: Any, campaign: Any | None, *,
                   values: dict[str, Any] | None = None, message: str | None = None,
                   confirm: dict[str, Any] | None = None, status: int = 200) -> Response:
    from kizuna.i18n import say
    from kizuna.operations import audit_lines, user_contact
    from kizuna.scenarios import unit_cost

    lang = session.lang
    name = campaign.name if campaign is not None else ""
    plan, plan_problem = _plan(ws, name, lang) if campaign is not None else (None, None)
    # what the send costs, shown before it ([costs] × the messages it would send)
    price = unit_cost(ws.settings.costs, plan.channel) if plan is not None else 0
    cost = {"n": plan.to_send, "price": price, "total": plan.to_send * price} if plan and not plan.enrolled else None
    customer = request.query_params.get("customer", "").strip()[:100]
    variant = request.query_params.get("variant", "")
    preview, preview_error = None, None
    if campaign is not None and customer:
        number = next((i for i, v in enumerate(campaign.variants, start=1) if v.name == variant), 1)
        mask = None if session.operator else dict.fromkeys(CONTACT_FIELDS, MASK)
        try:
            preview = ws.preview_campaign(name, customer, variant=number, replace=mask)
        except KizunaError as exc:
            preview_error = say(exc, lang)
    zone = _timezone(ws)
    audit = [{"at": dt.datetime.fromtimestamp(r["at_ts"], zone).strftime("%Y-%m-%d %H:%M"), "user": r["user"],
              "action": r["action"], "count": r["count"]}
             for r in audit_lines(ws.operations, what=name, prefix="campaign.", limit=20)] if name else []
    return render(request, session, "campaign_edit.html", {
        "c": values or _campaign_values(campaign), "existing": campaign is not None, "name": name,
        "title": campaign.label(lang) if campaign is not None else "",
        "state": ws.campaign_state(name) if campaign is not None else None, "plan": plan,
        "plan_problem": plan_problem, "limit": ws.settings.delivery.confirm_over,
        "segments": _segment_options(ws, lang), "channels": _channels(), "customer": customer,
        "variant": variant, "variants": [v.name for v in campaign.variants] if campaign is not None else [],
        "preview": preview, "preview_error": preview_error, "audit": audit, "message": message, "confirm": confirm,
        "log": _last_log(ws.path, name) if name else None, "started": request.query_params.get("started"),
        "saved": request.query_params.get("saved"), "now": dt.datetime.now(zone).strftime("%Y-%m-%dT%H:%M"),
        "path": "/campaigns/" + urllib.parse.quote(name, safe="") if name else "",
        "template_example": TEMPLATE_EXAMPLE, "cost": cost, "tested": request.query_params.get("tested", ""),
        "contact": user_contact(ws.operations, session.user or "") if session.operator else {},
    }, status=status)


def _channels() -> tuple[str, ...]:
    from kizuna.delivery import CHANNELS

    return tuple(CHANNELS)


@page()
def campaign_new(request: Request, session: Session) -> Response:
    with request.app.state.kizuna.reader.workspace() as ws:
        return _campaign_page(request, session, ws, None)


@page()
def campaign_page(request: Request, session: Session) -> Response:
    """A campaign: its state and audit, who a send reaches, its form, a preview, send now or at a time."""
    with request.app.state.kizuna.reader.workspace() as ws:
        return _campaign_page(request, session, ws, ws.campaign(request.path_params["name"]))


def _submitted(sent: Any) -> dict[str, Any]:
    """The campaign form as it was sent, cut to size."""
    def text(key: str, size: int = 200) -> str:
        return str(sent.get(key) or "").replace("\r\n", "\n").strip()[:size]

    return {"name": text("name", 64), "title_ja": text("title_ja"), "title_en": text("title_en"),
            "segment": text("segment", 64), "channel": text("channel", 16), "lang": text("lang", 2),
            "subject_ja": text("subject_ja"), "subject_en": text("subject_en"),
            "body_ja": text("body_ja", 20_000), "body_en": text("body_en", 20_000), "send_at": text("send_at", 16),
            "holdout": text("holdout", 8), "ab": sent.get("ab") == "1",
            "goal_kind": text("goal_kind", 16) or "order", "goal_days": text("goal_days", 4) or "30",
            "budget": text("budget", 13),
            "variants": [{"name": text(f"v{i}_name", 16), "share": text(f"v{i}_share", 8),
                          "subject_ja": text(f"v{i}_subject_ja"), "subject_en": text(f"v{i}_subject_en"),
                          "body_ja": text(f"v{i}_body_ja", 20_000), "body_en": text(f"v{i}_body_en", 20_000)}
                         for i in range(MAX_VARIANTS)]}


def _number(value: str, words: Words, key: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise KizunaError(words(key, value=value)) from None


_VARIANT_TEXTS = ("subject_ja", "subject_en", "body_ja", "body_en")


def _file_values(values: dict[str, Any], words: Words) -> dict[str, Any]:
    """The form's values as `campaign_text` takes them (percentages as shares)."""
    holdout = _number(values["holdout"], words, "campaign.bad_percent")
    days = _number(values["goal_days"], words, "campaign.bad_number")
    budget = _number(values["budget"], words, "campaign.bad_number")
    found: dict[str, Any] = {
        "title": {"ja": values["title_ja"], "en": values["title_en"]}, "segment": values["segment"],
        "channel": values["channel"], "lang": values["lang"],
        "subject": {"ja": values["subject_ja"], "en": values["subject_en"]},
        "body": {"ja": values["body_ja"], "en": values["body_en"]},
        "send_at": values["send_at"].replace("T", " ") if values["send_at"] else None,
        "holdout": None if holdout is None else round(holdout / 100, 6),
        "goal": {"kind": values["goal_kind"], "days": int(days) if days is not None else 30},
        "budget": None if budget is None else int(budget),
    }
    if values["ab"]:
        found["ab"] = [{"name": v["name"],
                        "share": round((_number(v["share"], words, "campaign.bad_percent") or 0) / 100, 6),
                        "subject": {"ja": v["subject_ja"], "en": v["subject_en"]},
                        "body": {"ja": v["body_ja"], "en": v["body_en"]}}
                       # the form's spare variants come named (A, B, C): one counts once it has a share or text
                       for v in values["variants"] if v["share"] or any(v[k] for k in _VARIANT_TEXTS)]
    return found


@page()
def campaign_save(request: Request, session: Session) -> Response:
    """POST the campaign form: an operator writes campaigns/NAME.yaml (checked first; an audit line)."""
    from kizuna.i18n import say
    from kizuna.scenarios import campaign_text

    if not session.operator:
        return _forbidden(request, session)
    sent = from_thread.run(read_form, request)
    values = _submitted(sent)
    words = Words(session.lang)
    with request.app.state.kizuna.reader.workspace() as ws:
        name = values["name"]
        try:
            if not _NAME.fullmatch(name):
                raise KizunaError(words("segbuild.bad_name"))
            ws.write_campaign(name, campaign_text(_file_values(values, words)), by=session.user)
        except KizunaError as exc:
            existing = (ws.campaigns_dir / f"{name}.yaml").is_file() if _NAME.fullmatch(name) else False
            campaign = ws.campaign(name) if existing else None
            return _campaign_page(request, session, ws, campaign, values=values, message=say(exc, session.lang),
                                  status=400)
    return RedirectResponse(f"/campaigns/{urllib.parse.quote(name, safe='')}?saved=1", 303)


def _confirmed(sent: Any, plan: Any, limit: int) -> bool:
    """Whether a send of `plan` may go: at most `limit` messages, or confirmed for exactly this many."""
    return plan.to_send <= limit or str(sent.get("confirm") or "") == str(plan.to_send)


@page()
def campaign_send(request: Request, session: Session) -> Response:
    """POST: an operator sends the campaign now (after a confirmation above [delivery] confirm_over)."""
    if not session.operator:
        return _forbidden(request, session)
    name = request.path_params["name"]
    sent = from_thread.run(read_form, request)
    with request.app.state.kizuna.reader.workspace() as ws:
        campaign = ws.campaign(name)
        plan = ws.campaign_plan(name)
        if not _confirmed(sent, plan, ws.settings.delivery.confirm_over):
            return _campaign_page(request, session, ws, campaign, confirm={"action": "send", "n": plan.to_send})
        path = ws.path
    _start_send(path, name, session.user or "", session.lang)
    return RedirectResponse(f"/campaigns/{urllib.parse.quote(name, safe='')}?started=1", 303)


@page()
def campaign_schedule(request: Request, session: Session) -> Response:
    """POST send_at (empty: none): an operator sets when `kizuna run` sends the campaign (confirmed above
    [delivery] confirm_over; an audit line)."""
    if not session.operator:
        return _forbidden(request, session)
    name = request.path_params["name"]
    sent = from_thread.run(read_form, request)
    value = str(sent.get("send_at") or "").strip()[:16]
    words = Words(session.lang)
    with request.app.state.kizuna.reader.workspace() as ws:
        campaign = ws.campaign(name)
        try:
            at = dt.datetime.fromisoformat(value) if value else None
        except ValueError:
            raise KizunaError(words("campaign.bad_time", value=value)) from None
        count = None
        if at is not None:
            plan = ws.campaign_plan(name)
            if not _confirmed(sent, plan, ws.settings.delivery.confirm_over):
                return _campaign_page(request, session, ws, campaign,
                                      confirm={"action": "schedule", "n": plan.to_send, "send_at": value})
            count = plan.to_send
        ws.schedule_campaign(name, at, by=session.user, count=count)
    return RedirectResponse(f"/campaigns/{urllib.parse.quote(name, safe='')}?saved=1", 303)


@page()
def campaign_test(request: Request, session: Session) -> Response:
    """POST customer, variant: an operator sends that variant, rendered for the customer, to their own
    address (marked as a test, outside the ledger)."""
    from kizuna.operations import user_contact

    if not session.operator:
        return _forbidden(request, session)
    name = request.path_params["name"]
    sent = from_thread.run(read_form, request)
    customer = str(sent.get("customer") or "").strip()[:100] or None
    contact = user_contact(request.app.state.kizuna.operations, session.user or "")
    with request.app.state.kizuna.reader.workspace() as ws:
        campaign = ws.campaign(name)
        names = [v.name for v in campaign.variants]
        variant = str(sent.get("variant") or "")
        number = names.index(variant) + 1 if variant in names else 1
        done = ws.send_campaign_test(name, user=session.user or "", variant=number, customer_id=customer,
                                     email=contact["email"], line_user_id=contact["line_user_id"])
    query = urllib.parse.urlencode({"customer": done.customer_id, "variant": names[number - 1],
                                    "tested": done.address})
    return RedirectResponse(f"/campaigns/{urllib.parse.quote(name, safe='')}?{query}#preview", 303)


def _start_send(path: Path, name: str, user: str, lang: str) -> Path:
    """`kizuna campaign send NAME --yes` in a process of its own; its output in outbox/campaigns/."""
    from kizuna.scenarios import OUTBOX

    folder = path / OUTBOX / "campaigns"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S-%f')}.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-m", "kizuna", "campaign", "send", name, "--yes", "--by", user,
                                    "--dir", str(path), "--lang", lang, "--format", "json"],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    # waited for in a thread of its own: the process is reaped when it ends, however long the send
    threading.Thread(target=process.wait, name=f"kizuna-campaign-{name}", daemon=True).start()
    return log


def routes() -> list[Route]:
    return [
        Route("/segments", segment_list),
        Route("/segments/new", segment_new),
        Route("/segments/count", segment_count),
        Route("/segments/edit", segment_edit, methods=["POST"]),
        Route("/segments/{name}", segment_page),
        Route("/segments/{name}/delete", segment_delete, methods=["POST"]),
        Route("/campaigns", campaign_list),
        Route("/campaigns/new", campaign_new),
        Route("/campaigns/save", campaign_save, methods=["POST"]),
        Route("/campaigns/{name}", campaign_page),
        Route("/campaigns/{name}/send", campaign_send, methods=["POST"]),
        Route("/campaigns/{name}/schedule", campaign_schedule, methods=["POST"]),
        Route("/campaigns/{name}/test", campaign_test, methods=["POST"]),
    ]
