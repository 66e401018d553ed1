"""LINE webhooks: check that a request comes from LINE, and read its events.

LINE signs every webhook request: ``x-line-signature`` = base64(HMAC-SHA256(channel secret, raw
body)) (https://developers.line.biz/en/docs/messaging-api/verify-webhook-signature/). The web app
verifies the raw bytes before it parses them, then keeps the events it knows (``follow``,
``unfollow`` = an opt-out, docs/measures.md §4) and ignores the rest. LINE may deliver an event again
(``deliveryContext.isRedelivery``); ``webhookEventId`` identifies it for de-duplication.

The shapes follow line/line-openapi ``webhook.yml`` (``CallbackRequest``, ``Event``, ``Source``,
``DeliveryContext``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from kizuna._errors import KizunaError, Phrase
from kizuna.delivery._line import LineSettingsError

__all__ = ["SECRET_ENV", "WebhookEvent", "WebhookPayloadError", "channel_secret", "parse_events",
           "verify_signature"]

SECRET_ENV = "KIZUNA_LINE_SECRET"
SIGNATURE_HEADER = "x-line-signature"
MAX_DEPTH = 32  # LINE's events nest 4–5 levels (message.emojis, …); deeper is not LINE's
# an event's `timestamp` (epoch milliseconds) must fall in these years
FIRST_TIMESTAMP_MS = int(dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
LAST_TIMESTAMP_MS = int(dt.datetime(2200, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


class WebhookPayloadError(KizunaError):
    """A signed webhook body that is not LINE's JSON (the web app answers 400)."""


def channel_secret() -> str:
    """The channel secret from KIZUNA_LINE_SECRET; a KizunaError that says how to set it if missing."""
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise LineSettingsError(Phrase.of("error.line_no_secret", variable=SECRET_ENV), variable=SECRET_ENV)
    return secret


def verify_signature(body: bytes, signature: str | None, channel_secret: str) -> bool:
    """Whether `signature` (the x-line-signature header) signs the raw request `body`.

    The comparison takes the same time wherever the strings differ, so that the signature
    cannot be guessed byte by byte. A missing or malformed signature is False.

    Parameters
    ----------
    body
        The request body exactly as received, before any JSON parsing.
    signature
        The value of the x-line-signature header, or None when the request has none.
    channel_secret
        The channel secret (`channel_secret()`); an empty one raises, since anybody could
        sign with it.

    Examples
    --------
    >>> verify_signature(b'{"events":[]}', "pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=", "secret")
    True
    >>> verify_signature(b'{"events":[]}', None, "secret")
    False
    """
    if not channel_secret:
        raise LineSettingsError(Phrase.of("error.line_secret_empty", variable=SECRET_ENV), variable=SECRET_ENV)
    if not signature or not isinstance(signature, str):
        return False
    try:
        given = signature.encode("ascii")
    except UnicodeEncodeError:
        return False
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), given)


@dataclass(frozen=True)
class WebhookEvent:
    """One event of a LINE webhook request.

    `type` is LINE's event type ("follow", "unfollow", "message", "postback", …); types kizuna
    does not know are kept too, so that a caller can log and skip them.
    """

    event_id: str  # webhookEventId: a ULID, the same when LINE redelivers the event
    type: str
    user_id: str | None  # source.userId; None for events without a user (e.g. some group events)
    timestamp: int  # milliseconds since the epoch, as LINE sends it
    is_redelivery: bool = False  # deliveryContext.isRedelivery
    mode: str = "active"  # "standby": another channel handles this user; do not act on the event
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the event as sent

    @property
    def occurred_at(self) -> dt.datetime:
        """`timestamp` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.timestamp / 1000, tz=dt.UTC)


def parse_events(body: bytes | str) -> list[WebhookEvent]:
    """The events of a webhook request body (``{"destination": …, "events": [...]}``).

    LINE sends an empty ``events`` list to check the webhook URL: that is an empty list here.

    Raises
    ------
    WebhookPayloadError
        The body is not JSON, nests deeper than `MAX_DEPTH`, has no ``events`` list, or an
        event's ``timestamp`` is not epoch milliseconds from 2000 to 2200 (an integer).

    Examples
    --------
    >>> body = b'''{"destination": "U0", "events": [{"type": "unfollow", "mode": "active",
    ...   "timestamp": 1700000000000, "source": {"type": "user", "userId": "U4af4980629"},
    ...   "webhookEventId": "01HF0000000000000000000000", "deliveryContext": {"isRedelivery": false}}]}'''
    >>> [(e.type, e.user_id) for e in parse_events(body)]
    [('unfollow', 'U4af4980629')]
    """
    too_deep = WebhookPayloadError(f"the LINE webhook body nests deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:  # json's parser recurses: past Python's limit it gives up
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(f"the LINE webhook body is not JSON ({exc})") from None
    if _too_deep(data):
        raise too_deep
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise WebhookPayloadError('the LINE webhook body has no "events" list')
    return [_event(item) for item in events if isinstance(item, dict)]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(data: Any) -> bool:
    """Whether lists and objects nest deeper than MAX_DEPTH in parsed JSON (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _event(item: dict[str, Any]) -> WebhookEvent:
    source = item.get("source")
    user_id = source.get("userId") if isinstance(source, dict) else None
    context = item.get("deliveryContext")
    redelivery = context.get("isRedelivery") if isinstance(context, dict) else None
    timestamp = item.get("timestamp")
    if timestamp is None:
        timestamp = 0  # some events LINE documents without one; kizuna acts on none of those
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int) \
            or not FIRST_TIMESTAMP_MS <= timestamp < LAST_TIMESTAMP_MS:
        raise WebhookPayloadError(f"an event's timestamp is not epoch milliseconds: {str(timestamp)[:40]}")
    return WebhookEvent(
        event_id=str(item.get("webhookEventId") or "")[:100],
        type=str(item.get("type") or "")[:100],
        user_id=user_id if isinstance(user_id, str) and user_id else None,
        timestamp=timestamp,
        is_redelivery=redelivery is True,
        mode=str(item.get("mode") or "active")[:100],
        raw=item,
    )
