"""The scenario pages: each scenario with its state and switch, the next run's due counts per step,
a preview per customer and "send me a test" (docs/measures.md#switches).

An operator switches (on, paused, off), sends tests and keeps their own test addresses; a viewer
sees the same pages, no form, and previews with contact data masked. Every form is a POST with the
session's CSRF token (checked by `kizuna.web._pages.page`); every switch and test is an audit line.
The due counts are `kizuna run --dry-run`'s — for a paused or off scenario as if it were switched on
now — computed on a copy of the store and kept for a few minutes (`_due`); nothing is sent or recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import urllib.parse
import zoneinfo
from typing import Any

from anyio import from_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kizuna._errors import KizunaError
from kizuna.web._auth import CONTACT_FIELDS, MASK, Session
from kizuna.web._labels import Words
from kizuna.web._pages import form as read_form
from kizuna.web._pages import page, render

__all__ = ["routes"]

DUE_SECONDS = 300  # due counts are recomputed at least this often
# what the page shows of a dry run, per step (the catalogue's "run_*" labels)
DUE_COLUMNS = ("enrolled", "would_send", "deferred", "suppressed", "holdout", "merged")
_EMAIL = re.compile(r"[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+")
_LINE_USER = re.compile(r"U[0-9a-f]{32}")  # LINE's user ids: U and 32 hexadecimal digits


def _files(request: Request) -> tuple[list[Any], Any]:
    """The scenarios of the workspace's files and its settings; no store needed (a switch works while
    cron imports)."""
    from kizuna.scenarios import SCENARIO_FOLDER, load_scenarios
    from kizuna.settings import SETTINGS_FILE
    from kizuna.workspace import Settings

    path = request.app.state.kizuna.path
    folder = path / SCENARIO_FOLDER
    return (load_scenarios(folder) if folder.is_dir() else []), Settings.load(path / SETTINGS_FILE)


def _when(ts: int | None, timezone: str) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _due(request: Request, states: list[Any]) -> dict[str, Any]:
    """What the next `kizuna run` would do, dry: "due", (scenario, step) -> its counts; "problems";
    "computed", when (unix seconds). The scenarios switched on as the next run finds them; each one paused
    or off as if it alone were switched on now (a dry run of its own, so that its messages take no place
    of the others' under the frequency cap).

    Kept in memory for what it depends on — the store's version, the ledger's rows, the switches, the
    scenario files — and at most `DUE_SECONDS` (what is due moves with the clock), computed on a copy
    of the store (`Reader.cached`): rendering every message takes seconds at 10,000 customers.
    """
    from kizuna.scenarios import SCENARIO_FOLDER

    state = request.app.state.kizuna
    ledger = state.operations.query("SELECT count(*) AS n, max(updated_ts) AS at FROM deliveries")[0]
    files = sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size)
                   for f in (state.path / SCENARIO_FOLDER).glob("*.y*ml"))
    switches = sorted((s.name, s.state, s.changed_ts) for s in states)
    seen = (ledger["n"], ledger["at"], files, switches, int(time.time() // DUE_SECONDS))
    key = "scenario-due:" + hashlib.sha256(repr(seen).encode()).hexdigest()[:24]
    if_on = {s.name for s in states if s.in_file and s.state != "on"}

    def counts(report: Any, names: Any) -> dict[tuple[str, int], dict[str, int]]:
        return {(name, step): {c: tally.counts.get(c, 0) for c in DUE_COLUMNS}
                for (name, step), tally in report.tallies.items() if name in names}

    def compute(ws: Any) -> dict[str, Any]:
        report = ws.run(dry_run=True)
        due = counts(report, {s.name for s in states} - if_on)
        problems = list(report.problems)
        for name in sorted(if_on):
            switched_on = ws.run(dry_run=True, only=name, as_if_on=True)
            due.update(counts(switched_on, {name}))
            problems += [p for p in switched_on.problems if p not in problems]
        return {"due": due, "problems": problems, "computed": int(time.time())}

    value, _stale = state.reader.cached(key, compute, wait=60.0, snapshot=True)
    return value


def _view(state: Any, lang: str, timezone: str) -> dict[str, Any]:
    scenario = state.scenario
    return {"name": scenario.name, "title": scenario.label(lang), "state": state.state, "in_file": state.in_file,
            "by": state.changed_by, "at": _when(state.changed_ts, timezone),
            "steps": [{"number": s.number, "channel": s.channel, "wait_days": s.wait_days} for s in scenario.steps],
            "path": "/scenarios/" + urllib.parse.quote(scenario.name, safe="")}


@page()
def scenario_list(request: Request, session: Session) -> Response:
    """Every scenario: title, state and switch, steps, and the next run's due counts per step."""
    from kizuna.i18n import say
    from kizuna.scenarios import scenario_states

    scenarios, settings = _files(request)
    states = scenario_states(request.app.state.kizuna.operations, scenarios)
    timezone = settings.business.timezone
    found = _due(request, states) if states else {"due": {}, "problems": [], "computed": None}
    return render(request, session, "scenarios.html", {
        "scenarios": [_view(s, session.lang, timezone) for s in states], "due": found["due"],
        "computed": _when(found["computed"], timezone), "problems": [say(p, session.lang) for p in found["problems"]]})


@page()
def scenario_page(request: Request, session: Session) -> Response:
    """One scenario: its switch, due counts per step, the audit, a preview for a customer and test sends."""
    from kizuna.i18n import say
    from kizuna.operations import audit_lines, user_contact
    from kizuna.scenarios import scenario_states

    state = request.app.state.kizuna
    name = request.path_params["name"]
    customer = request.query_params.get("customer", "").strip()[:100]
    preview: list[dict[str, Any]] = []
    preview_error = None
    scenarios, settings = _files(request)
    states = scenario_states(state.operations, scenarios)
    found = next((s for s in states if s.name == name), None)
    if found is None:
        return render(request, session, "error.html", {"message": Words(session.lang)("not_found")}, status=404)
    timezone = settings.business.timezone
    dry = _due(request, states)
    if customer:
        with state.reader.workspace() as ws:
            try:
                mask = None if session.operator else dict.fromkeys(CONTACT_FIELDS, MASK)
                preview = _preview(ws, name, customer, mask)
            except KizunaError as exc:
                preview_error = say(exc, session.lang)
    audit = [{"at": _when(r["at_ts"], timezone), "user": r["user"], "action": r["action"], "what": r["what"],
              "count": r["count"]} for r in audit_lines(state.operations, what=name, prefix="scenario.", limit=20)]
    contact = user_contact(state.operations, session.user) if session.operator else {}
    return render(request, session, "scenario.html", {
        "s": _view(found, session.lang, timezone), "due": dry["due"],
        "problems": [say(p, session.lang) for p in dry["problems"]], "computed": _when(dry["computed"], timezone),
        "customer": customer, "preview": preview, "preview_error": preview_error,
        "audit": audit, "contact": contact, "sent": request.query_params.get("sent", ""),
    })


def _preview(ws: Any, name: str, customer: str, mask: dict[str, str] | None) -> list[dict[str, str]]:
    """Each step of the scenario rendered for `customer` in the scenario's language, as the customer would
    get it; `mask`: contact fields shown masked (a viewer)."""
    from kizuna.scenarios import preview_message

    scenarios = ws.scenarios()
    steps = next(s for s in scenarios if s.name == name).steps
    context, as_of = ws.run_context(), ws.as_of()
    return [preview_message(context, scenarios, name, customer, step=step.number, as_of=as_of, replace=mask)
            for step in steps]


def _forbidden(request: Request, session: Session) -> Response:
    return render(request, session, "error.html", {"message": Words(session.lang)("forbidden")}, status=403)


@page()
def switch(request: Request, session: Session) -> Response:
    """POST state=on|paused|off: an operator switches the scenario (an audit line); a viewer gets 403."""
    from kizuna.scenarios import switch_scenario

    if not session.operator:
        return _forbidden(request, session)
    name = request.path_params["name"]
    sent = from_thread.run(read_form, request)  # parsed once already, for the CSRF check
    scenarios, settings = _files(request)
    switch_scenario(request.app.state.kizuna.operations, scenarios, name, str(sent.get("state", "")),
                    user=session.user or "", today=settings.as_of_date())
    return RedirectResponse(_back(str(sent.get("next", "")), name), 303)


@page()
def send_test(request: Request, session: Session) -> Response:
    """POST step, customer: an operator sends that step, rendered for the customer, to their own address."""
    from kizuna.operations import user_contact

    if not session.operator:
        return _forbidden(request, session)
    state = request.app.state.kizuna
    name = request.path_params["name"]
    sent = from_thread.run(read_form, request)
    step = str(sent.get("step", ""))
    customer = str(sent.get("customer", "")).strip()[:100] or None
    contact = user_contact(state.operations, session.user or "")
    with state.reader.workspace() as ws:
        done = ws.send_test(name, user=session.user or "", step=int(step) if step.isdigit() else 0,
                            customer_id=customer, email=contact["email"], line_user_id=contact["line_user_id"])
    query = urllib.parse.urlencode({"customer": done.customer_id, "sent": f"{done.step}:{done.address}"})
    return RedirectResponse(f"/scenarios/{urllib.parse.quote(name, safe='')}?{query}#step-{done.step}", 303)


@page()
def my_contact(request: Request, session: Session) -> Response:
    """POST email, line_user_id: where an operator's own test sends go."""
    from kizuna.operations import set_user_contact

    if not session.operator:
        return _forbidden(request, session)
    sent = from_thread.run(read_form, request)
    email = str(sent.get("email", "")).strip()
    line = str(sent.get("line_user_id", "")).strip()
    if email and (len(email) > 254 or not _EMAIL.fullmatch(email)):
        raise KizunaError.keyed("switch.bad_email", value=email[:80])
    if line and not _LINE_USER.fullmatch(line):
        raise KizunaError.keyed("switch.bad_line_id", value=line[:80])
    set_user_contact(request.app.state.kizuna.operations, session.user or "", email=email, line_user_id=line)
    return RedirectResponse(_back(str(sent.get("next", "")), None), 303)


def _back(target: str, name: str | None) -> str:
    # only a page of the scenarios or campaigns: never another site (open redirect)
    if re.fullmatch(r"/(scenarios|campaigns)(/[A-Za-z0-9_.%-]+)?(\?[A-Za-z0-9_.%=&:@+-]*)?", target):
        return target
    return "/scenarios" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")


def routes() -> list[Route]:
    return [
        Route("/scenarios", scenario_list),
        Route("/scenarios/{name}", scenario_page),
        Route("/scenarios/{name}/switch", switch, methods=["POST"]),
        Route("/scenarios/{name}/test", send_test, methods=["POST"]),
        Route("/me/contact", my_contact, methods=["POST"]),
    ]
