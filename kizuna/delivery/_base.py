"""What every channel's transport shares: the message, the receipt, the error, the protocol.

A transport delivers one rendered message and says what happened; the send ledger
(`kizuna.operations`) records the message before `send` is called and marks it after, so
that a run killed at any moment and started again sends nothing twice and loses nothing.

::

    DeliveryError (KizunaError)   the channel refused the message or could not be reached
        .permanent        True: retrying will not help (bad address, 4xx other than 409/429)
        .maybe_delivered  True: handed over whole, but no answer came (e-mail: the connection
                          was lost after the final "."): the server may have it
        .channel_wide     True: a refusal of the channel, not of this message (relay denied,
                          login required): the message waits for the configuration to be fixed
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kizuna._errors import KizunaError

__all__ = ["CHANNELS", "ONLINE_CHANNELS", "DeliveryError", "Message", "Receipt", "Transport"]

# e-mail and LINE are pushed by kizuna; the other three become files for people
ONLINE_CHANNELS = ("email", "line")
CHANNELS = ("email", "line", "insert", "dm", "call")


@dataclass(frozen=True)
class Message:
    """One rendered message to one customer on one channel."""

    key: str  # idempotency key: scenario / step / customer / occasion, unique in the ledger
    ref: str  # opaque 32-hex id of this delivery (links, Message-ID, LINE retry key)
    customer_id: str
    channel: str  # one of CHANNELS
    address: str  # e-mail address, LINE user id; empty for the offline channels
    subject: str  # e-mail subject; LINE and files ignore it
    text: str  # the plain-text body (LINE: the text message)
    html: str | None = None  # the HTML body of an e-mail
    unsubscribe_url: str | None = None  # one-click unsubscribe (RFC 8058) for this channel
    transactional: bool = False  # exempt from frequency caps and quiet hours
    fields: dict[str, object] = field(default_factory=dict)  # personalisation, for the offline lists
    test: bool = False  # an operator's test of a step, to their own address: marked, outside the ledger

    @property
    def retry_key(self) -> str:
        """`ref` as a UUID: LINE's X-Line-Retry-Key (accepted again within 24 h = 409)."""
        return str(uuid.UUID(hex=self.ref))


@dataclass(frozen=True)
class Receipt:
    """What the channel said when it accepted a message."""

    provider_id: str | None = None  # SMTP queue id / Message-ID, LINE's request id
    already_accepted: bool = False  # LINE answered 409: an earlier attempt was accepted


class DeliveryError(KizunaError):
    """The channel did not accept the message.

    `permanent` errors fail the ledger row with `reason`; others leave it for a later run.
    `status` is the server's reply code when it answered (None: no answer, e.g. unreachable).
    `maybe_delivered`: the message went out whole and no answer came, so the server may have
    it (never `permanent`). `channel_wide`: the server refused the channel — its relay, our
    login, our address — rather than this message; such a refusal is never `permanent`.
    """

    def __init__(self, reason: str, *, permanent: bool, status: int | None = None, maybe_delivered: bool = False,
                 channel_wide: bool = False) -> None:
        self.reason = reason
        self.permanent = permanent and not (maybe_delivered or channel_wide)
        self.status = status
        self.maybe_delivered = maybe_delivered
        self.channel_wide = channel_wide
        super().__init__(reason)


class Transport(Protocol):
    """Sends messages of one channel; a context manager that holds its connection open."""

    channel: str

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, message: Message, *, committing: Callable[[], None] | None = None) -> Receipt:
        """Deliver `message`; raise DeliveryError if the channel refuses it.

        `committing` is called once, at the last moment before the channel takes the message
        for good (e-mail: before the final "." of DATA); the ledger marks the row then, so a
        process killed before that point resends it and one killed after does not.
        """
        ...
