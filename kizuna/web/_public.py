"""The public endpoints of `kizuna serve`: what customers and LINE reach without logging in.

    GET/POST /s/{token}      the 0–10 NPS survey of one signed link, answered once
    GET/POST /u/{token}      unsubscribe from the channel a message came by (RFC 8058 one-click POST)
    GET      /c/{token}      a tracked link of a message: the click counted, then a redirect to the
                             URL its template wrote (kept when it was sent; never one the request names)
    POST     /line/webhook   LINE follow / unfollow → LINE opt-in / opt-out

Only the operational records are touched (SQLite, `kizuna.operations`), never the DuckDB store,
so these endpoints keep working while `kizuna import` or `analyze` hold the store.

They reveal nothing: a link's token names a random ref, pages never show a name or address,
a bad or unknown token gets the same 404 page, and the log holds outcomes, never refs, ids or
tokens (`AccessLogFilter` hides the tokens in uvicorn's access log). Each client address has a
token bucket per endpoint (`RateLimiter`): past it, 429 with Retry-After — except a validly
signed unsubscribe link, which is always honoured (only bad unsubscribe tokens are counted).

Cross-site forgery: the survey form is public (no session, no cookie), so its hidden `form`
field is an HMAC of the link's ref under the workspace secret; a POST without it is refused,
and so is one whose Origin header names another site. The one-click unsubscribe POST takes
no such field: RFC 8058 has mail providers post it with no context but the link itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kizuna._errors import StoreError
from kizuna.delivery import SECRET_ENV, WebhookPayloadError, parse_events, verify_signature
from kizuna.i18n import LANGS, section
from kizuna.operations import Clicks, InvalidLink, Links, Operations, agent_class

__all__ = ["AccessLogFilter", "PublicState", "RateLimiter", "public_routes", "redact_path"]

logger = logging.getLogger("kizuna.web.public")

# requests per minute and client address, per endpoint; a burst may use the whole minute's worth
RATE_LIMITS = {"survey": 30, "unsubscribe": 30, "webhook": 600, "click": 30}
COMMENT_CHARS = 2000  # a survey comment longer than this is refused with the form shown again
FORM_BYTES = 64 * 1024  # a form body beyond this is refused (413) before it is parsed
WEBHOOK_BYTES = 1024 * 1024
ONE_CLICK = "One-Click"  # RFC 8058: the body of the one-click POST is List-Unsubscribe=One-Click

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates") / "public"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a missing text fails the page (and the tests), not blanks it
)
# The pages hold no script and load nothing from elsewhere; the token in their URL must not
# leave in a Referer header to another site (same-origin, not no-referrer: under no-referrer
# browsers send "Origin: null" with the form, and the origin check could not tell), and a page
# must not be framed to trick a click.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


class RateLimiter:
    """Token buckets per (endpoint, client address), in this process.

    A bucket holds `per_minute` tokens and refills at `per_minute` a minute; a request takes
    one. Buckets unused for a minute are full again and are dropped, so memory stays bounded
    by the clients of the last minute.

    >>> limiter = RateLimiter({"survey": 2}, clock=lambda: 0.0)
    >>> [limiter.take("survey", "192.0.2.1") for _ in range(3)]
    [0.0, 0.0, 30.0]
    """

    def __init__(self, per_minute: Mapping[str, int] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = {**RATE_LIMITS, **(per_minute or {})}
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()
        self._pruned = clock()

    def take(self, endpoint: str, client: str) -> float:
        """Take a token: 0.0 when the request may go ahead, else the seconds until one is back."""
        capacity = float(self.per_minute[endpoint])
        rate = capacity / 60.0
        now = self._clock()
        with self._lock:
            if now - self._pruned > 60.0:
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60.0}
                self._pruned = now
            tokens, at = self._buckets.get((endpoint, client), (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[(endpoint, client)] = (tokens - 1.0, now)
                return 0.0
            self._buckets[(endpoint, client)] = (tokens, now)
            return (1.0 - tokens) / rate


@dataclass
class PublicState:
    """What the public endpoints need: the operational records, the links, the LINE secret.

    Build it with `from_workspace`; the app author may pass a `limiter` of their own.
    """

    workspace_dir: Path
    operations: Operations
    links: Links
    line_secret: str | None = None  # KIZUNA_LINE_SECRET; without it the webhook answers 503
    form_secret: str = ""  # keys the survey form's anti-forgery field; the workspace secret
    limiter: RateLimiter = field(default_factory=RateLimiter)

    @classmethod
    def from_workspace(cls, path: Path | str, *, limiter: RateLimiter | None = None) -> PublicState:
        """Read kizuna.toml ([web] public_url) and open the operational records; no DuckDB."""
        from kizuna.settings import SETTINGS_FILE
        from kizuna.workspace import Settings

        path = Path(path)
        settings = Settings.load(path / SETTINGS_FILE)
        operations = Operations.open(settings.operations.url, path)
        secret = operations.secret()
        return cls(path, operations, Links(settings.web.public_url, secret),
                   line_secret=os.environ.get(SECRET_ENV, "").strip() or None, form_secret=secret,
                   limiter=limiter or RateLimiter())


def public_routes(state: PublicState) -> list[Route]:
    """The routes of the survey, the unsubscribe link and the LINE webhook, to mount in the app."""
    pages = _Pages(state)
    return [
        Route("/s/{token}", pages.survey, methods=["GET", "POST"], name="public_survey"),
        Route("/u/{token}", pages.unsubscribe, methods=["GET", "POST"], name="public_unsubscribe"),
        Route("/c/{token}", pages.click, methods=["GET"], name="public_click"),
        Route("/line/webhook", pages.line_webhook, methods=["POST"], name="line_webhook"),
    ]


class _Pages:
    def __init__(self, state: PublicState) -> None:
        self.state = state
        self.ops = state.operations
        self._form_key = (state.form_secret or state.operations.secret()).encode()
        public = urlsplit(state.links.public_url)
        self._public_origin = f"{public.scheme}://{public.netloc}".lower()

    # -- the survey ---------------------------------------------------------------------------
    async def survey(self, request: Request) -> Response:
        lang = pick_lang(request)
        if (limited := self._limited(request, "survey", lang)) is not None:
            return limited
        try:
            ref = self.state.links.read_survey(request.path_params["token"])
        except InvalidLink as exc:
            return page("expired" if exc.expired else "not_found", lang, 410 if exc.expired else 404)
        link = await run_in_threadpool(self.ops.survey, ref)
        if link is None:
            return page("not_found", lang, 404)
        if link["score"] is not None:
            return page("answered", lang)
        if request.method == "GET":
            return self._survey_form(ref, lang)
        form = await read_form(request, FORM_BYTES)
        if form is None:
            return page("too_large", lang, 413)
        sent = form.get("form", "").encode("utf-8", "replace")  # bytes: compare_digest refuses non-ASCII str
        if not self._same_site(request) or not hmac.compare_digest(sent, self._form_token(ref).encode()):
            logger.info("survey answer refused: no valid form field or another site's origin")
            return page("forged", lang, 403)
        score_text, comment = form.get("score", "").strip(), form.get("comment", "").strip()
        if score_text not in {str(n) for n in range(11)}:
            return self._survey_form(ref, lang, error="error_score", comment=comment, status=400)
        if len(comment) > COMMENT_CHARS:
            return self._survey_form(ref, lang, error="error_comment", comment=comment, score=int(score_text),
                                     status=400)
        try:
            first = await run_in_threadpool(self.ops.answer_survey, ref, int(score_text), comment or None)
        except KeyError:  # the link went between the two reads (it is never deleted, but be safe)
            return page("not_found", lang, 404)
        logger.info("survey answer %s", "recorded" if first else "ignored: the link was answered before")
        return page("thanks" if first else "answered", lang)

    def _survey_form(self, ref: str, lang: str, *, error: str | None = None, comment: str = "",
                     score: int | None = None, status: int = 200) -> Response:
        return page("survey", lang, status, form=self._form_token(ref), error=error, comment=comment,
                    score=score, max_comment=COMMENT_CHARS)

    def _form_token(self, ref: str) -> str:
        return hmac.new(self._form_key, b"kizuna.survey-form:" + ref.encode(), hashlib.sha256).hexdigest()

    def _same_site(self, request: Request) -> bool:
        # Browsers send Origin with a form POST: it must be this server (as the customer reached
        # it, public_url, or as the request names it). No Origin (old browsers, tools) or an opaque
        # one ("null": privacy settings) passes on the strength of the form field alone.
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return True
        own = f"{request.url.scheme}://{request.url.netloc}".lower()
        return origin.lower() in (self._public_origin, own)

    # -- unsubscribe --------------------------------------------------------------------------
    async def unsubscribe(self, request: Request) -> Response:
        # A validly signed link is never refused for the rate: mail providers send the one-click
        # POSTs of a whole campaign from a few addresses, and the law wants every opt-out honoured.
        # Only bad tokens count against the client's bucket (guessing costs nothing otherwise).
        lang = pick_lang(request)
        try:
            ref = self.state.links.read_unsubscribe(request.path_params["token"])
        except InvalidLink:
            if (limited := self._limited(request, "unsubscribe", lang)) is not None:
                return limited
            return page("not_found", lang, 404)
        delivery = await run_in_threadpool(self.ops.delivery, ref)
        if delivery is None:
            return page("not_found", lang, 404)
        channel = delivery["channel"]
        if request.method == "GET":  # a link scanner may fetch it: only a POST opts out
            return page("unsubscribe", lang, channel=channel, one_click=ONE_CLICK)
        form = await read_form(request, FORM_BYTES)
        if form is None:
            return page("too_large", lang, 413)
        if form.get("List-Unsubscribe") != ONE_CLICK:
            return page("unsubscribe", lang, 400, channel=channel, one_click=ONE_CLICK)
        await run_in_threadpool(self.ops.set_consent, channel, delivery["customer_id"], False, source="unsubscribe")
        logger.info("unsubscribe recorded for channel %s", channel)
        return page("unsubscribed", lang, channel=channel)

    # -- tracked links ------------------------------------------------------------------------
    async def click(self, request: Request) -> Response:
        # The token names a message and a link number, never a URL: the redirect goes where that
        # message's template pointed (kept before it was sent), whatever else the request says.
        # Like an unsubscribe link, a validly signed one is never refused for the rate.
        lang = pick_lang(request)
        try:
            ref, link = self.state.links.read_click(request.path_params["token"])
        except InvalidLink:
            if (limited := self._limited(request, "click", lang)) is not None:
                return limited
            return page("not_found", lang, 404)
        clicks = Clicks(self.ops)
        target = await run_in_threadpool(clicks.target, ref, link)
        if target is None or not target.startswith(("https://", "http://")):
            return page("not_found", lang, 404)
        agent = agent_class(request.headers.get("user-agent"), method=request.method)
        try:
            await run_in_threadpool(clicks.record, ref, link, agent)
        except StoreError:  # the records stayed locked: the customer still goes where they clicked
            logger.warning("click not recorded: the operational records were busy")
        # no-store: each click comes back here to be counted; the token never leaves in a Referer
        # (same-origin, as every page of the app says), so the shop's site never learns it
        return RedirectResponse(target, 302, headers={"Cache-Control": "no-store", "Referrer-Policy": "same-origin"})

    # -- the LINE webhook ---------------------------------------------------------------------
    async def line_webhook(self, request: Request) -> Response:
        if (limited := self._limited(request, "webhook", "en")) is not None:
            return limited
        secret = self.state.line_secret
        if not secret:
            logger.warning("LINE webhook called but %s is not set: answered 503", SECRET_ENV)
            return Response("LINE webhook not configured", 503, media_type="text/plain")
        body = await read_body(request, WEBHOOK_BYTES)
        if body is None:
            return Response("too large", 413, media_type="text/plain")
        if not verify_signature(body, request.headers.get("x-line-signature"), secret):
            logger.info("LINE webhook refused: bad signature")
            return Response("bad signature", 401, media_type="text/plain")
        try:
            events = parse_events(body)
        except WebhookPayloadError:
            return Response("bad payload", 400, media_type="text/plain")
        applied = await run_in_threadpool(self._apply_events, events)
        logger.info("LINE webhook: %d event(s), %d consent change(s) applied", len(events), applied)
        return Response(status_code=200)

    def _apply_events(self, events: list[Any]) -> int:
        applied = 0
        for event in events:
            if event.type not in ("follow", "unfollow") or not event.user_id or event.mode != "active":
                continue  # other types, and events another channel handles (standby), are not ours
            # Seen before → nothing. Else the consent first, the event after: a crash between the
            # two leaves an event LINE redelivers and applies again (set_consent is idempotent and
            # ordered by the event's time); the other order could lose an opt-out.
            if event.event_id and self.ops.seen_event(event.event_id):
                continue
            follow = event.type == "follow"
            at = event.timestamp // 1000 if event.timestamp else None
            self.ops.set_consent("line", event.user_id, follow, source="line-follow" if follow else "line-unfollow",
                                 at=at)
            if event.event_id:
                self.ops.first_delivery_of(event.event_id, event.type)
            applied += 1
        return applied

    # -- shared -------------------------------------------------------------------------------
    def _limited(self, request: Request, endpoint: str, lang: str) -> Response | None:
        client = request.client.host if request.client else "-"
        wait = self.state.limiter.take(endpoint, client)
        if not wait:
            return None
        logger.warning("rate limit reached on %s", endpoint)
        retry = str(max(1, math.ceil(wait)))
        if endpoint == "webhook":
            return Response("too many requests", 429, headers={"Retry-After": retry}, media_type="text/plain")
        response = page("rate_limited", lang, 429)
        response.headers["Retry-After"] = retry
        return response


# -- pages and languages ------------------------------------------------------------------------
# the pages' words, by language: the catalogue's "public.*" texts
TEXTS: dict[str, dict[str, str]] = {lang: section("public.", lang) for lang in LANGS}


def pick_lang(request: Request) -> str:
    """?lang=ja|en, else the first of ja / en in Accept-Language by preference, else Japanese."""
    asked = request.query_params.get("lang")
    if asked in TEXTS:
        return asked
    best, best_q = "ja", 0.0
    for position, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        try:
            q = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        q -= position * 1e-6  # equal weights: the earlier one wins
        if lang in TEXTS and q > best_q:
            best, best_q = lang, q
    return best


def page(name: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    """One of the public pages, in `lang`, with the security headers."""
    texts = TEXTS[lang]
    channel = context.get("channel")
    channel_name = texts.get(f"channel_{channel}", texts["channel_other"])
    template = name if name in ("survey", "unsubscribe") else "message"
    html = _TEMPLATES.get_template(f"{template}.html").render(
        t=texts, lang=lang, page=name, title=texts[f"title_{name}"],
        message=texts[name].format(channel=channel_name, n=COMMENT_CHARS),
        error_text=texts[context["error"]].format(n=COMMENT_CHARS) if context.get("error") else None,
        **context)
    return HTMLResponse(html, status, headers=_HEADERS)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit` bytes (nothing more is read)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, limit: int) -> dict[str, str] | None:
    """The form fields (url-encoded or multipart, as RFC 8058 allows); None when too large."""
    body = await read_body(request, limit)
    if body is None:
        return None
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(max_files=0, max_fields=16) as form:
            return {key: value for key, value in form.items() if isinstance(value, str)}
    except Exception:  # a malformed multipart body is no form at all
        return {}


def redact_path(path: str) -> str:
    """A request path with a link's token hidden: /s/eyJ… → /s/…; other paths as they are.

    >>> redact_path("/u/ImFiYyI.sig?lang=en"), redact_path("/line/webhook")
    ('/u/…', '/line/webhook')
    """
    for prefix in ("/s/", "/u/", "/c/"):
        if path.startswith(prefix):
            return prefix + "…"
    return path


class AccessLogFilter(logging.Filter):
    """Hides the tokens of survey, unsubscribe and tracked links in uvicorn's access log.

    A token names a customer's message and works as the customer's own link: it must not sit in
    a log. Install it with ``logging.getLogger("uvicorn.access").addFilter(AccessLogFilter())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True
