"""The Starlette application: `create_app(workspace_dir)`, sessions, login, and the page wrapper.

Every page of the dashboard goes through `page`: it reads the signed session and checks it
against the session rows of the operational records (see `kizuna.web._auth`), sends a visitor
who has not logged in to the login page, checks the CSRF token of every POST (403 without or
with a wrong one), runs the (blocking) page function in a worker thread and writes the session
cookie back — HttpOnly, SameSite=Lax, and Secure when the request came over https (directly, or
through a proxy that uvicorn trusts with --forwarded-allow-ips).

Request bodies are limited before anything parses them (`BodyLimit`): 64 KiB (`FORM_BYTES`),
1 MiB (`WEBHOOK_BYTES`) for the LINE webhook; past it, 413 without reading the rest. Forms
take at most `FORM_FIELDS` fields (then 400).

Logs carry no personal data: the access log names the page (its endpoint), not the path, so no
customer id, search text or name reaches it; uvicorn's own access log is off (see `kizuna serve`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kizuna._errors import KizunaError, NoDataError
from kizuna.settings import FIRST_DAY, LAST_DAY
from kizuna.web._auth import COOKIE, SESSION_SECONDS, Session, SessionCodec, check_password, dummy_check, valid_csrf
from kizuna.web._labels import Words
from kizuna.web._public import FORM_BYTES, WEBHOOK_BYTES, PublicState, RateLimiter, public_routes
from kizuna.web._store import Pending, Reader, StoreBusy

__all__ = ["BodyLimit", "create_app", "exposed_files", "page"]

HERE = Path(__file__).parent
access_log = logging.getLogger("kizuna.web.access")
FORM_FIELDS = 16  # the login form has four
BODY_LIMITS = {"/line/webhook": WEBHOOK_BYTES}  # path -> bytes; FORM_BYTES for every other path
OUT_OF_RANGE = {"ja": f"アドレスの日付が範囲外です。{FIRST_DAY} … {LAST_DAY} の日付を指定してください。",
                "en": f"A date in the address is out of range: give one from {FIRST_DAY} to {LAST_DAY}."}

# The browser may load nothing from elsewhere; charts are inline SVG, styles our own file.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class WebState:
    """What the pages share: the workspace reader, the operational records, the session codec."""

    def __init__(self, workspace_dir: Path, *, secure_cookies: bool | None, reader: Reader,
                 default_lang: str = "ja") -> None:
        from kizuna.operations import OPERATIONS_FILE, Operations

        self.path = workspace_dir
        self.reader = reader
        self.operations = Operations(workspace_dir / OPERATIONS_FILE)
        self.codec = SessionCodec(self.operations.secret())
        self.secure_cookies = secure_cookies
        self.default_lang = default_lang if default_lang in ("ja", "en") else "ja"
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        from jinja2 import StrictUndefined

        self.templates.env.undefined = StrictUndefined
        self.templates.env.globals["fmt"] = _formatters()

    def session(self, request: Request) -> Session:
        """The request's session; a new anonymous one when the cookie is missing, forged or expired,
        or names a session that was logged out, ended by a new password, or of a removed user."""
        session = self.codec.load(request.cookies.get(COOKIE))
        if session is None:
            return Session(lang=self.default_lang, changed=True)
        if session.user is not None:
            user = self.operations.session_user(session.sid) if session.sid else None
            if user is None or user["name"] != session.user:
                return Session(lang=session.lang, changed=True)
            session.role = user["role"]
        return session

    def save(self, request: Request, response: Response, session: Session) -> None:
        secure = self.secure_cookies if self.secure_cookies is not None else request.url.scheme == "https"
        response.set_cookie(COOKIE, self.codec.dump(session), max_age=SESSION_SECONDS, httponly=True,
                            samesite="lax", secure=secure, path="/")


def _formatters() -> dict[str, Callable[..., str]]:
    def yen(value: Any) -> str:
        return "" if value is None else f"¥{round(value):,}"

    def num(value: Any, digits: int = 0) -> str:
        return "" if value is None else f"{value:,.{digits}f}"

    def pct(value: Any, digits: int = 1) -> str:
        return "" if value is None else f"{100 * value:.{digits}f}%"

    def day(value: Any) -> str:
        if value is None:
            return ""
        return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "hour") else value.isoformat()

    return {"yen": yen, "num": num, "pct": pct, "day": day}


def render(request: Request, session: Session, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> Response:
    state: WebState = request.app.state.kizuna
    words = Words(session.lang)
    full = {"t": words, "session": session, "csrf": session.csrf, "lang": session.lang,
            "path": request.url.path, "query": str(request.url.query), **(context or {})}
    response = state.templates.TemplateResponse(request, template, full, status_code=status)
    response.headers["cache-control"] = "no-store"  # pages carry customer data
    return response


def page(*, login: bool = True) -> Callable[[Callable[..., Response]], Callable[[Request], Any]]:
    """Wrap a blocking page function `fn(request, session) -> Response` (see the module docstring)."""

    def wrap(fn: Callable[..., Response]) -> Callable[[Request], Any]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            state: WebState = request.app.state.kizuna
            session = await run_in_threadpool(state.session, request)
            if login and session.user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response: Response = RedirectResponse("/login?next=" + urllib.parse.quote(target, safe=""), 303)
            elif request.method == "POST" and not valid_csrf(session, (await _form(request)).get("csrf")):
                response = render(request, session, "error.html", {"message": Words(session.lang)("csrf_failed")},
                                  status=403)
            else:
                response = await run_in_threadpool(_guarded, fn, request, session)
            if session.changed:
                state.save(request, response, session)
            return response

        return endpoint

    return wrap


def _guarded(fn: Callable[..., Response], request: Request, session: Session) -> Response:
    words = Words(session.lang)
    try:
        return fn(request, session)
    except StoreBusy:
        return render(request, session, "error.html", {"message": words("busy"), "refresh": 5}, status=503)
    except Pending:
        return render(request, session, "error.html", {"message": words("computing"), "refresh": 3}, status=202)
    except NoDataError as exc:
        message = words("no_predictions") if "predictions" in str(exc) else words("no_scores")
        return render(request, session, "error.html", {"message": message}, status=200)
    except KizunaError as exc:
        return render(request, session, "error.html", {"message": str(exc)}, status=400)
    except OverflowError:  # a date of the address beyond what dates can be (?to=0001-01-01 less 90 days)
        return render(request, session, "error.html", {"message": OUT_OF_RANGE[session.lang]}, status=400)


async def _form(request: Request) -> Any:
    # the body is FORM_BYTES at most (BodyLimit); no files, few fields (more: 400)
    return await request.form(max_files=0, max_fields=FORM_FIELDS, max_part_size=FORM_BYTES)


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
    wait = request.app.state.login_attempts.take("login", request.client.host if request.client else "-")
    if wait:
        access_log.info("login rate-limited")
        return PlainTextResponse("Too many login attempts; try again in a minute.", 429,
                                 headers={"Retry-After": str(int(wait) + 1)})
    session = await run_in_threadpool(state.session, request)
    form = await _form(request)
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
    from kizuna.workspace import STORE_FILE, Settings

    path = Path(workspace_dir)
    names = [path / OPERATIONS_FILE, path / (OPERATIONS_FILE + "-wal"), path / (OPERATIONS_FILE + "-shm")]
    try:
        url = Settings.load(path / SETTINGS_FILE).store_url
    except (KizunaError, OSError):
        url = None
    if not url or url.startswith("duckdb://") or "://" not in url:  # a DuckDB file (as Store.connect finds it)
        store = Path(url.removeprefix("duckdb://")) if url else path / STORE_FILE
        names += [store, store.with_name(store.name + ".wal")]
    exposed = []
    for name in names:
        try:
            if name.stat().st_mode & 0o066:  # read or write by group or others
                exposed.append(name)
        except FileNotFoundError:
            continue
    return exposed


# -- the application ----------------------------------------------------------------------------
def create_app(workspace_dir: Path | str, *, secure_cookies: bool | None = None, lang: str = "ja",
               lock_wait: float = 5.0, max_hold: float = 10.0, release: float = 0.6, warm: bool = True,
               logins_per_minute: int = 10, private_files: bool = False) -> Starlette:
    """The web app on the workspace in `workspace_dir`.

    `secure_cookies`: None marks the session cookie Secure when the request came over https
    (uvicorn rewrites the scheme from X-Forwarded-Proto for trusted proxies); True or False force it.
    `lang`: the pages' language until a visitor switches (ja or en).
    `lock_wait`, `max_hold`, `release`: how the app shares the DuckDB file with cron (see
    `kizuna.web._store`). `warm` computes the dashboard's figures in the background at start.
    `logins_per_minute`: login attempts a client address may make a minute (then 429), against
    password guessing. `private_files` (`kizuna serve`): refuse (KizunaError) while other users of
    the machine can read the store or the operational records (`exposed_files`).

    >>> import uvicorn                                                    # doctest: +SKIP
    >>> uvicorn.run(create_app("shop"), host="127.0.0.1", port=8000)      # doctest: +SKIP
    """
    from kizuna.settings import SETTINGS_FILE
    from kizuna.web import _dashboard, _lists

    path = Path(workspace_dir)
    if not (path / SETTINGS_FILE).exists():
        raise KizunaError(f"{path.resolve()} is not a kizuna workspace (no {SETTINGS_FILE}). "
                          "Pass --dir to an existing one, or create one with `kizuna init DIR`.")
    if private_files and (exposed := exposed_files(path)):
        # they hold the secret that signs the session cookies, password hashes, customers' data
        files = " ".join(str(f) for f in exposed)
        raise KizunaError(f"other users of this machine can read or change {files}, which hold the workspace secret or "
                          f"customers' data; run `chmod 600 {files}` and start again.")
    reader = Reader(path, lock_wait=lock_wait, max_hold=max_hold, release=release)
    state = WebState(path, secure_cookies=secure_cookies, reader=reader, default_lang=lang)
    routes: list[Any] = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", set_language, methods=["GET"]),
        *_dashboard.routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    routes[:0] = public_routes(PublicState.from_workspace(state.path))  # survey, unsubscribe, LINE webhook
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(reader.close)  # let background computations finish before exit

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.kizuna = state
    app.state.login_attempts = RateLimiter({"login": logins_per_minute})
    app.add_middleware(BodyLimit)  # inside Hardening: a 413 gets the headers and a log line too
    app.add_middleware(Hardening)
    if warm:
        reader.warm("dashboard", _dashboard.dashboard_figures, snapshot=True)
        reader.warm("priority", _dashboard.priority_rows)
        reader.warm("lookup", _lists.build_lookup)
    return app


