"""The LINE channel: one push message per customer through the Messaging API.

Every push carries ``X-Line-Retry-Key`` = the delivery's ref as a UUID, so LINE executes a
request at most once however often it is sent: a resend after a timeout, a 5xx or a crash
that answers 409 was accepted earlier, and is recorded as such (`Receipt.already_accepted`)
instead of reaching the customer twice.
See https://developers.line.biz/en/docs/messaging-api/retrying-api-request/.

What LINE answers and what kizuna does (https://developers.line.biz/en/reference/messaging-api/#send-push-message):

=========================  =====================================================================
200                        accepted; ``x-line-request-id`` is the receipt's provider id
409                        the retry key was accepted before: ``x-line-accepted-request-id``
429, 5xx, timeout          wait (Retry-After, else exponential with jitter) and resend, within
                           `max_attempts` and `max_wait`; then a non-permanent DeliveryError
other 4xx                  a permanent DeliveryError with LINE's ``message`` and ``details``
=========================  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from kizuna._errors import Phrase, WorkspaceError
from kizuna.delivery._base import DeliveryError, Message, Receipt

if TYPE_CHECKING:
    from kizuna.delivery._settings import LineSettings

__all__ = ["LINE_TEXT_LIMIT", "LineSettingsError", "LineTransport", "TOKEN_ENV", "line_text_length"]

TOKEN_ENV = "KIZUNA_LINE_TOKEN"
PUSH_PATH = "/v2/bot/message/push"
# LINE's limit for a text message, counted in UTF-16 code units: 🍎 counts 2
# (https://developers.line.biz/en/docs/messaging-api/text-character-count/).
LINE_TEXT_LIMIT = 5000


class LineSettingsError(WorkspaceError):
    """The LINE channel is not set up: its token or secret is missing from the environment."""

    def __init__(self, message: str | Phrase, *, variable: str) -> None:
        self.variable = variable  # the environment variable to set
        super().__init__(message)


def line_text_length(text: str) -> int:
    """The length of `text` as LINE counts it: UTF-16 code units.

    >>> line_text_length("ありがとう🍎")
    7
    """
    return len(text.encode("utf-16-le")) // 2


class LineTransport:
    """Pushes text messages to LINE users; a context manager that keeps one HTTP connection open.

    Parameters
    ----------
    api_base
        The Messaging API's origin ([line] api_base); tests point it at a local server.
    token
        The channel access token; None reads it from the environment variable KIZUNA_LINE_TOKEN.
    max_attempts
        Requests per message at most, the first included, when LINE answers 429 or 5xx or cannot
        be reached.
    max_wait
        Seconds of waiting between those requests at most, per message. A Retry-After longer
        than what is left ends the attempts at once: the next run sends the message.
    base_delay, max_delay
        Exponential backoff without Retry-After: before resend n (1, 2, …) wait
        min(max_delay, base_delay × 2^(n-1)), scaled by a random factor in [0.5, 1] so that
        several senders do not retry in step.
    timeout
        Seconds to connect, and to wait for LINE's answer.

    Examples
    --------
    >>> with LineTransport.from_settings(settings.line) as line:    # doctest: +SKIP
    ...     receipt = line.send(message, committing=ledger.committing)
    """

    channel = "line"

    def __init__(
        self,
        api_base: str = "https://api.line.me",
        token: str | None = None,
        *,
        max_attempts: int = 5,
        max_wait: float = 60.0,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        if token is None:
            token = os.environ.get(TOKEN_ENV, "")
        token = token.strip()
        if not token:
            raise LineSettingsError(Phrase.of("error.line_no_token", variable=TOKEN_ENV), variable=TOKEN_ENV)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if max_wait < 0 or base_delay < 0 or max_delay < 0:
            raise ValueError("max_wait, base_delay and max_delay must not be negative")
        self.api_base = api_base.rstrip("/")
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._token = token
        self._random = random.Random()
        self._client: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings: LineSettings, **options: Any) -> LineTransport:
        """A transport to [line] api_base, with the token from KIZUNA_LINE_TOKEN."""
        return cls(settings.api_base, **options)

    def __repr__(self) -> str:  # never show the token
        return f"LineTransport({self.api_base!r}, max_attempts={self.max_attempts}, max_wait={self.max_wait})"

    def __enter__(self) -> LineTransport:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the next `send` opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.api_base,
                headers={"Authorization": f"Bearer {self._token}", "User-Agent": "kizuna"},
                timeout=self.timeout,
            )
        return self._client

    def send(self, message: Message, *, committing: Callable[[], None] | None = None) -> Receipt:
        """Push `message.text` to the LINE user `message.address`.

        `committing` is called once, right before the first request: the retry key makes
        every later resend of this message (here or after a crash) safe.

        Raises
        ------
        DeliveryError
            permanent for a message LINE will never take (too long, bad user id, bad token);
            not permanent when LINE stayed busy or unreachable through all attempts.
        """
        self._check(message)
        body = {"to": message.address, "messages": [{"type": "text", "text": message.text}]}
        headers = {"X-Line-Retry-Key": message.retry_key}
        client = self._open()
        if committing is not None:
            committing()
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = client.post(PUSH_PATH, json=body, headers=headers)
            except httpx.TransportError as exc:
                # A timeout may hide an accepted push: the retry key turns the resend into a 409.
                failure = DeliveryError(
                    f"LINE could not be reached at {self.api_base} ({type(exc).__name__}: {exc}); "
                    f"gave up after {attempt} attempt(s), the next run sends the message again.",
                    permanent=False,
                )
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                if status == 200:
                    return Receipt(provider_id=response.headers.get("x-line-request-id"))
                if status == 409:
                    return Receipt(
                        provider_id=response.headers.get("x-line-accepted-request-id"), already_accepted=True
                    )
                if status != 429 and status < 500:
                    hint = f"; set {TOKEN_ENV} to a valid channel access token" if status == 401 else ""
                    raise DeliveryError(
                        f"LINE refused the message ({status}): {_error_text(response)}{hint}",
                        permanent=True, status=status,
                    )
                retry_after = _retry_after(response.headers.get("retry-after"))
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                failure = DeliveryError(
                    f"LINE answered {status} ({_error_text(response)}) to attempt {attempt}"
                    + (f" and asked to wait {retry_after:g} s" if retry_after is not None else "")
                    + "; the next run sends the message again.",
                    permanent=False,
                    status=status,
                )
                if retry_after is not None and waited + retry_after > self.max_wait:
                    raise failure  # honour Retry-After or stop: resending sooner only earns another 429
            if attempt == self.max_attempts:
                raise failure
            delay = min(delay, self.max_wait - waited)
            if delay <= 0 and waited >= self.max_wait:
                raise failure
            time.sleep(delay)
            waited += delay
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, message: Message) -> None:
        """Refuse what LINE would refuse anyway, before the ledger marks the message as sending."""
        if not message.address:
            raise DeliveryError("no LINE user id for this customer (line_user_id is empty)", permanent=True)
        if not message.text:
            raise DeliveryError("the LINE message is empty: its template rendered no text", permanent=True)
        length = line_text_length(message.text)
        if length > LINE_TEXT_LIMIT:
            raise DeliveryError(
                f"the LINE message has {length:,} characters, more than LINE's limit of {LINE_TEXT_LIMIT:,} "
                "(counted in UTF-16 code units: an emoji counts 2). Shorten the step's template.",
                permanent=True,
            )

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based) when LINE gives no Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * self._random.uniform(0.5, 1.0)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date, RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _error_text(response: httpx.Response) -> str:
    """LINE's error body ({"message": …, "details": [{"message", "property"}]}) in one line."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return response.reason_phrase or f"HTTP {response.status_code}"
    text = data["message"]
    details = data.get("details")
    if isinstance(details, list):
        parts = []
        for detail in details:
            if isinstance(detail, dict) and detail.get("message"):
                prop = detail.get("property")
                parts.append(f"{prop}: {detail['message']}" if prop else str(detail["message"]))
        if parts:
            text += " (" + "; ".join(parts) + ")"
    return text
