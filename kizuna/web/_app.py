"""The Starlette application: `create_app(workspace_dir)`, login, logout, language, body limits.

Every page of the dashboard goes through `kizuna.web._pages.page`. The session cookie is
HttpOnly, SameSite=Lax, and Secure when the request came over https (directly, or through a
proxy that uvicorn trusts with --forwarded-allow-ips).

Request bodies are limited before anything parses them (`BodyLimit`): 64 KiB (`FORM_BYTES`),
1 MiB (`WEBHOOK_BYTES`) for the LINE webhook; past it, 413 without reading the rest. Forms
take at most `FORM_FIELDS` fields (then 400).

Logs carry no personal data: the access log names the page (its endpoint), not the path, so no
customer id, search text or name reaches it; uvicorn's own access log is off (see `kizuna serve`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kizuna._errors import KizunaError
from kizuna.web._auth import SESSION_SECONDS, Session, check_password, dummy_check, valid_csrf
from kizuna.web._labels import Words
from kizuna.web._pages import HERE, WebState, page, render
from kizuna.web._pages import form as read_form
from kizuna.web._public import FORM_BYTES, WEBHOOK_BYTES, PublicState, public_routes
from kizuna.web._store import Reader

__all__ = ["BodyLimit", "create_app", "exposed_files"]

access_log = logging.getLogger("kizuna.web.access")
BODY_LIMITS = {"/line/webhook": WEBHOOK_BYTES}  # path -> bytes; FORM_BYTES for every other path
# The browser may load nothing from elsewhere; charts are inline SVG, styles our own file.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


# -- login, logout, language -------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    # only a path of this site: never an absolute or scheme-relative URL (open redirect)
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@page(login=False)
def login_form(request: Request, session: Session) -> Response:
    if session.user is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
    return render(request, session, "login.html", {"error": None, "next": _safe_next(request.query_params.get("next")),
                                                   "name": ""})


async def login_submit(request: Request) -> Response:
    state: WebState = request.app.state.kizuna
    client = request.client.host if request.client else "-"
    # failed logins are counted in the operational records: the limit holds across the server's processes
    wait = await run_in_threadpool(state.operations.login_wait, client, request.app.state.logins_per_minute)
    if wait:
        access_log.info("login rate-limited")
        return PlainTextResponse("Too many login attempts; try again in a minute.", 429,
                                 headers={"Retry-After": str(int(wait) + 1)})
    session = await run_in_threadpool(state.session, request)
    form = await read_form(request)
    if not valid_csrf(session, form.get("csrf")):
        response = render(request, session, "error.html", {"message": Words(session.lang)("csrf_failed")}, status=403)
        if session.changed:
            state.save(request, response, session)
        return response
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    user = await run_in_threadpool(state.operations.user, name) if name else None
    if user is None:
        await run_in_threadpool(dummy_check)  # as slow as a wrong password: names cannot be probed
        ok = False
    else:
        ok = await run_in_threadpool(check_password, user["password_hash"], password)
    if not ok:
        access_log.info("login failed")
        await run_in_threadpool(state.operations.record_login_failure, client)
        response = render(request, session, "login.html",
                          {"error": Words(session.lang)("login_failed"), "next": _safe_next(str(form.get("next", ""))),
                           "name": name}, status=401)
        return response
    sid = await run_in_threadpool(state.operations.start_session, name, SESSION_SECONDS)
    fresh = Session(user=name, lang=session.lang, role=user["role"], changed=True, sid=sid)  # a new token, too
    response = RedirectResponse(_safe_next(str(form.get("next", ""))), 303)
    state.save(request, response, fresh)
    return response


@page()
def logout(request: Request, session: Session) -> Response:
    """End this browser's session (the user's other sessions go on); its cookie is worthless after."""
    if session.sid:
        request.app.state.kizuna.operations.end_session(session.sid)
    session.user, session.role, session.sid = None, None, None
    session.changed = True
    return RedirectResponse("/login", 303)


@page(login=False)
def set_language(request: Request, session: Session) -> Response:
    lang = request.path_params["lang"]
    if lang in ("ja", "en"):
        session.lang = lang
        session.changed = True
    return RedirectResponse(_safe_next(request.query_params.get("next")), 303)


# -- middleware ---------------------------------------------------------------------------------
class Hardening:
    """Security headers on every response, and an access log line without personal data."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            endpoint = scope.get("endpoint")
            name = getattr(endpoint, "__name__", None) or ("static" if scope["path"].startswith("/static/") else "-")
            access_log.info("%s %s %s %.0fms", scope["method"], name, status[0], 1000 * (time.perf_counter() - started))


class BodyTooLarge(Exception):
    """Raised by `BodyLimit`'s receive when a request body goes past its limit."""


class BodyLimit:
    """Refuses a request body larger than its path's limit with 413, before anything parses it.

    A Content-Length over the limit is answered at once, without reading the body; a body sent
    without one (chunked) is counted as it arrives and cut off at the limit. Either way the
    server holds at most `limit` bytes of it, however large the client says or sends.
    """

    def __init__(self, app: Any, default: int = FORM_BYTES, limits: dict[str, int] | None = None) -> None:
        self.app, self.default = app, default
        self.limits = BODY_LIMITS if limits is None else limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        access_log.info("request body over %d bytes refused", limit)
        body = f"Request body too large: {limit // 1024} KiB at most.\n".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def exposed_files(workspace_dir: Path | str) -> list[Path]:
    """The workspace's files with secrets or personal data that other users of the machine may read
    or write: the operational records (workspace secret, password hashes) and the DuckDB store."""
    from kizuna.operations import OPERATIONS_FILE
    from kizuna.settings import SETTINGS_FILE
    from kizuna.store import Store
    from kizuna.workspace import STORE_FILE, Settings

    path = Path(workspace_dir)
    try:
        settings = Settings.load(path / SETTINGS_FILE)
    except (KizunaError, OSError):
        settings = Settings()
    names = [] if settings.operations.url else [
        path / OPERATIONS_FILE, path / (OPERATIONS_FILE + "-wal"), path / (OPERATIONS_FILE + "-shm")]
    names += Store.files_at(settings.store.url or str(path / STORE_FILE))
    exposed = []
    for name in names:
        try:
            if name.stat().st_mode & 0o066:  # read or write by group or others
                exposed.append(name)
        except FileNotFoundError:
            continue
    return exposed


# -- the application ----------------------------------------------------------------------------
def create_app(workspace_dir: Path | str, *, secure_cookies: bool | None = None, lang: str | None = None,
               lock_wait: float = 5.0, max_hold: float | None = None, release: float = 0.6, warm: bool = True,
               logins_per_minute: int = 10, private_files: bool = False) -> Starlette:
    """The web app on the workspace in `workspace_dir`.

    `secure_cookies`: None marks the session cookie Secure when the request came over https
    (uvicorn rewrites the scheme from X-Forwarded-Proto for trusted proxies); True or False force it.
    `lang`: the pages' language until a visitor switches (ja or en; default [business] lang).
    `lock_wait`, `max_hold`, `release`: how the app shares the DuckDB file with cron (see
    `kizuna.web._store`). `warm` computes the dashboard's figures in the background at start.
    `logins_per_minute`: failed logins a client address may make a minute (then 429), against
    password guessing; counted in the operational records, so that every process serving the
    workspace (`kizuna serve --workers N`) shares the count. `private_files` (`kizuna serve`):
    refuse (KizunaError) while other users of the machine can read the store or the operational
    records (`exposed_files`).

    >>> import uvicorn                                                    # doctest: +SKIP
    >>> uvicorn.run(create_app("shop"), host="127.0.0.1", port=8000)      # doctest: +SKIP
    """
    from kizuna.settings import require_workspace
    from kizuna.web import _campaigns, _dashboard, _scenarios_page

    path = Path(workspace_dir)
    require_workspace(path)
    if private_files and (exposed := exposed_files(path)):
        # they hold the secret that signs the session cookies, password hashes, customers' data
        files = " ".join(str(f) for f in exposed)
        raise KizunaError.keyed("error.files_exposed", files=files)
    reader = Reader(path, lock_wait=lock_wait, max_hold=max_hold, release=release)
    state = WebState(path, secure_cookies=secure_cookies, reader=reader, default_lang=lang)
    routes: list[Any] = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", set_language, methods=["GET"]),
        *_dashboard.routes(),
        *_scenarios_page.routes(),  # switches, due counts, preview, test sends
        *_campaigns.routes(),  # the segment builder, campaigns
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    routes[:0] = public_routes(PublicState.from_workspace(state.path))  # survey, unsubscribe, LINE webhook
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(reader.close)  # let background computations finish before exit

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.kizuna = state
    app.state.logins_per_minute = logins_per_minute
    app.add_middleware(BodyLimit)  # inside Hardening: a 413 gets the headers and a log line too
    app.add_middleware(Hardening)
    if warm:
        _dashboard.warm(reader)
        reader.warm("priority", _dashboard.priority_rows)
    return app


