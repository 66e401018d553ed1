"""A local stand-in for LINE's push API: a real HTTP server on 127.0.0.1 that keeps LINE's contract.

It follows the published OpenAPI description of the Messaging API, line/line-openapi
``messaging-api.yml`` (commit 6e4c2a2a1b7b, 2026-07-01): ``POST /v2/bot/message/push`` with
``PushMessageRequest`` (``to``: string, required; ``messages``: 1-5 ``Message`` objects, required),
``TextMessage`` (``type`` = "text", ``text`` required), ``X-Line-Retry-Key`` (format: uuid) and
``ErrorResponse`` (``message`` required, ``details``: [{``message``, ``property``}]). What the YAML
does not say comes from LINE's documentation:

- text length ≤ 5000, counted in UTF-16 code units
  (https://developers.line.biz/en/docs/messaging-api/text-character-count/);
- a retry key accepted within 24 hours answers 409 with ``x-line-accepted-request-id`` = the
  first request's ``x-line-request-id`` (https://developers.line.biz/en/docs/messaging-api/retrying-api-request/);
- user, group and room ids are U, C or R followed by 32 lower-case hex digits.

Tests script trouble with `fail_next` (429 with or without Retry-After, 5xx, or a 5xx after the push
was accepted, as when LINE's answer is lost) and read what arrived in `pushes` and `requests`::

    with LineServer(token="t") as line:
        line.fail_next(1, 429, retry_after=1)
        ...  # LineTransport(line.api_base, token="t").send(...)
        assert line.pushes[0].to == "U..."
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LineServer", "Push", "Request", "PUSH_PATH"]

PUSH_PATH = "/v2/bot/message/push"
TEXT_LIMIT = 5000
RETRY_KEY_TTL = 24 * 3600.0
# Message.discriminator.mapping in messaging-api.yml
MESSAGE_TYPES = ("text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template",
                 "flex", "coupon")
_RECIPIENT = re.compile(r"[UCR][0-9a-f]{32}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MESSAGES = {
    401: "Authentication failed. Confirm that the access token in the authorization header is valid.",
    403: "Access to this API is not available for your account",
    404: "Not found",
    409: "The retry key is already accepted",
    429: "The API rate limit has been exceeded. Try again later.",
    500: "Internal server error",
}


@dataclass(frozen=True)
class Push:
    """A push LINE accepted."""

    to: str
    text: str  # the first message's text
    messages: list[dict[str, Any]]
    retry_key: str | None
    request_id: str


@dataclass(frozen=True)
class Request:
    """Any request that reached the server, with the status it was answered."""

    at: float  # time.monotonic() on arrival
    path: str
    status: int
    authorization: str | None
    retry_key: str | None
    request_id: str


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    accept: bool
    body: dict[str, Any] | None


class LineServer:
    """LINE's push endpoint on 127.0.0.1 and a random port, served from a thread.

    Parameters
    ----------
    token
        The channel access token the server expects as ``Authorization: Bearer <token>``.
    retry_key_ttl
        Seconds a retry key stays accepted (LINE: 24 hours).
    """

    def __init__(self, token: str = "kizuna-test-token", *, retry_key_ttl: float = RETRY_KEY_TTL) -> None:
        self.token = token
        self.retry_key_ttl = retry_key_ttl
        self._lock = threading.Lock()
        self._pushes: list[Push] = []
        self._requests: list[Request] = []
        self._failures: deque[_Failure] = deque()
        self._keys: dict[str, tuple[str, float, list[dict[str, str]]]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> LineServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"line": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="line-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT``: what `Settings.line_api_base` would hold."""
        assert self._httpd is not None, "the server is not running: use it as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- what tests script and read ---------------------------------------------------------------

    def fail_next(self, count: int, status: int = 429, *, retry_after: float | str | None = None,
                  accept: bool = False, body: dict[str, Any] | None = None) -> None:
        """Answer the next `count` well-formed pushes with `status` instead of accepting them.

        `retry_after` adds a Retry-After header (seconds, or an HTTP date as a string). `accept`
        accepts the push first and then answers `status`, as when LINE's answer is lost: a resend
        with the same retry key then gets 409. `body` replaces the error body ({"message": …}).
        """
        header = None if retry_after is None else (retry_after if isinstance(retry_after, str)
                                                   else f"{retry_after:g}")
        with self._lock:
            self._failures.extend(_Failure(status, header, accept, body) for _ in range(count))

    @property
    def pushes(self) -> list[Push]:
        with self._lock:
            return list(self._pushes)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget pushes, requests, scripted failures and retry keys."""
        with self._lock:
            self._pushes.clear()
            self._requests.clear()
            self._failures.clear()
            self._keys.clear()

    # -- LINE's contract ----------------------------------------------------------------------------

    def _answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Status, extra headers and JSON body for one request (called from the handler threads)."""
        if path != PUSH_PATH:
            return 404, {}, {"message": _MESSAGES[404]}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": _MESSAGES[401]}
        retry_key = headers.get("X-Line-Retry-Key")
        if retry_key is not None and not _UUID.fullmatch(retry_key):
            return 400, {}, {"message": "The value for the 'X-Line-Retry-Key' header is invalid"}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return 400, {}, {"message": "The request body could not be parsed as JSON"}
        problem = _validate(body)
        if problem is not None:
            return 400, {}, problem
        with self._lock:
            now = time.monotonic()
            if retry_key is not None:
                key = retry_key.lower()
                earlier = self._keys.get(key)
                if earlier is not None and now - earlier[1] < self.retry_key_ttl:
                    return 409, {"x-line-accepted-request-id": earlier[0]}, {
                        "message": _MESSAGES[409], "sentMessages": earlier[2]}
            failure = self._failures.popleft() if self._failures else None
            if failure is not None and not failure.accept:
                extra = {} if failure.retry_after is None else {"Retry-After": failure.retry_after}
                return failure.status, extra, failure.body or {"message": _MESSAGES.get(failure.status, "Error")}
            request_id = str(uuid.uuid4())
            sent = [{"id": str(uuid.uuid4().int % 10**18), "quoteToken": uuid.uuid4().hex} for _ in body["messages"]]
            self._pushes.append(Push(body["to"], body["messages"][0].get("text", ""), body["messages"], retry_key,
                                     request_id))
            if retry_key is not None:
                self._keys[retry_key.lower()] = (request_id, now, sent)
            if failure is not None:  # accepted, but the answer says otherwise
                return failure.status, {}, failure.body or {"message": _MESSAGES.get(failure.status, "Error")}
            return 200, {"x-line-request-id": request_id}, {"sentMessages": sent}

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)


def _validate(body: Any) -> dict[str, Any] | None:
    """LINE's 400 body for a PushMessageRequest that breaks the schema, or None."""
    if not isinstance(body, dict):
        return {"message": "The request body has 1 error(s)",
                "details": [{"message": "must be an object", "property": ""}]}
    to = body.get("to")
    if to is not None and isinstance(to, str) and to and not _RECIPIENT.fullmatch(to):
        return {"message": "The property, 'to', in the request body is invalid (line: -, column: -)"}
    details: list[dict[str, str]] = []
    if not isinstance(to, str) or not to:
        details.append({"message": "May not be empty", "property": "to"})
    messages = body.get("messages")
    if not isinstance(messages, list):
        details.append({"message": "Must be specified", "property": "messages"})
    elif not 1 <= len(messages) <= 5:
        details.append({"message": "Size must be between 1 and 5", "property": "messages"})
    else:
        for i, message in enumerate(messages):
            details += _message_problems(message, f"messages[{i}]")
    if "notificationDisabled" in body and not isinstance(body["notificationDisabled"], bool):
        details.append({"message": "Must be a boolean", "property": "notificationDisabled"})
    if not details:
        return None
    return {"message": f"The request body has {len(details)} error(s)", "details": details}


def _message_problems(message: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(message, dict):
        return [{"message": "Must be an object", "property": where}]
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        return [{"message": f"Must be one of the following values: [{', '.join(MESSAGE_TYPES)}]",
                 "property": f"{where}.type"}]
    if kind != "text":
        return []  # kizuna sends text only; other types are not checked further
    text = message.get("text")
    if not isinstance(text, str) or not text:
        return [{"message": "May not be empty", "property": f"{where}.text"}]
    if len(text.encode("utf-16-le")) // 2 > TEXT_LIMIT:
        return [{"message": f"Length must be between 0 and {TEXT_LIMIT}", "property": f"{where}.text"}]
    return []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.line.me: one connection serves a whole run
    timeout = 30  # an idle client connection does not hold its thread forever
    line: LineServer

    def setup(self) -> None:
        super().setup()
        # headers and body leave in two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK, 40 ms per request on Linux
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, extra, body = self.line._answer(self.path, self.headers, raw)
        request_id = extra.get("x-line-request-id") or str(uuid.uuid4())
        self.line._record(Request(arrived, self.path, status, self.headers.get("Authorization"),
                                  self.headers.get("X-Line-Retry-Key"), request_id))
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-line-request-id", request_id)  # LINE sends one on every answer
        for name, value in extra.items():
            if name != "x-line-request-id":
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.send_error(405)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
        pass  # quiet test output; `requests` records everything
