"""The page wrapper every dashboard page goes through, and the state the pages share.

`page` reads the signed session and checks it against the session rows of the operational
records (see `kizuna.web._auth`), sends a visitor who has not logged in to the login page, checks
the CSRF token of every POST (403 without or with a wrong one), runs the (blocking) page function
in a worker thread and writes the session cookie back. A typed error becomes a page: `StoreBusy`
503, a computation still running 202, a user's mistake (`KizunaError`) 400 with its message.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from kizuna._errors import KizunaError, NoDataError, Phrase
from kizuna.i18n import say
from kizuna.settings import FIRST_DAY, LAST_DAY
from kizuna.web._auth import COOKIE, SESSION_SECONDS, Session, SessionCodec, valid_csrf
from kizuna.web._labels import Words
from kizuna.web._public import FORM_BYTES
from kizuna.web._store import Pending, Reader, StoreBusy

__all__ = ["FORMATS", "FORM_FIELDS", "HERE", "BadDate", "WebState", "form", "page", "render"]

HERE = Path(__file__).parent
FORM_FIELDS = 64  # the login form has four; the campaign form with three A/B variants, 33


class BadDate(ValueError):
    """A date in the address that is no date (2026-02-30, 'yesterday'): a 400 page, not a silent default."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class WebState:
    """What the pages share: the workspace reader, the operational records, the session codec."""

    def __init__(self, workspace_dir: Path, *, secure_cookies: bool | None, reader: Reader,
                 default_lang: str | None = None) -> None:
        from kizuna.operations import Operations
        from kizuna.settings import SETTINGS_FILE
        from kizuna.workspace import Settings

        self.path = workspace_dir
        self.reader = reader
        settings = Settings.load(workspace_dir / SETTINGS_FILE)
        self.operations = Operations.open(settings.operations.url, workspace_dir)
        self.codec = SessionCodec(self.operations.secret())
        self.secure_cookies = secure_cookies
        # a visitor's first language: the one asked for, else the workspace's [business] lang
        self.default_lang = default_lang if default_lang in ("ja", "en") else settings.business.lang
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        from jinja2 import StrictUndefined

        self.templates.env.undefined = StrictUndefined
        self.templates.env.globals["fmt"] = FORMATS

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


def _yen(value: Any) -> str:  # -¥2,045, not ¥-2,045: the sign before the currency, as people write it
    return "" if value is None else f"{'-' if round(value) < 0 else ''}¥{abs(round(value)):,}"


def _num(value: Any, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}%"


def _day(value: Any) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "hour") else value.isoformat()


# the templates' `fmt`: yen, numbers, shares and days as the pages write them
FORMATS: dict[str, Callable[..., str]] = {"yen": _yen, "num": _num, "pct": _pct, "day": _day}


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
            elif request.method == "POST" and not valid_csrf(session, (await form(request)).get("csrf")):
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
        predictions = isinstance(exc.table, Phrase) and exc.table.key == "error.customer_predictions"
        message = words("no_predictions") if predictions else words("no_scores")
        return render(request, session, "error.html", {"message": message}, status=200)
    except KizunaError as exc:
        return render(request, session, "error.html", {"message": say(exc, session.lang)}, status=400)
    except BadDate as exc:
        return render(request, session, "error.html", {"message": words("bad_date", value=exc.value)}, status=400)
    except OverflowError:  # a date of the address beyond what dates can be (?to=0001-01-01 less 90 days)
        message = words("date_out_of_range", first=FIRST_DAY, last=LAST_DAY)
        return render(request, session, "error.html", {"message": message}, status=400)


async def form(request: Request) -> Any:
    # the body is FORM_BYTES at most (BodyLimit); no files, few fields (more: 400)
    return await request.form(max_files=0, max_fields=FORM_FIELDS, max_part_size=FORM_BYTES)


