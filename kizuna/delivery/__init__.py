"""Delivery channels (docs/measures.md §4): e-mail over SMTP, LINE's Messaging API, and the rules of when a
message may go. Every transport sends one rendered `Message`; the send ledger around it
(`kizuna.operations`) makes delivery exactly once."""

from typing import TYPE_CHECKING

from kizuna._lazy import lazy_getattr
from kizuna.delivery._base import CHANNELS, ONLINE_CHANNELS, DeliveryError, Message, Receipt, Transport
from kizuna.delivery._settings import DeliverySettings, EmailSettings, LineSettings

if TYPE_CHECKING:
    from kizuna.delivery._email import EmailSettingsError, SenderIdentity, compose_email
    from kizuna.delivery._line import LineSettingsError, LineTransport
    from kizuna.delivery._line_webhook import (
        SECRET_ENV,
        WebhookEvent,
        WebhookPayloadError,
        parse_events,
        verify_signature,
    )
    from kizuna.delivery._rules import SendingRules
    from kizuna.delivery._smtp import SmtpTransport

__all__ = ["CHANNELS", "ONLINE_CHANNELS", "SECRET_ENV", "DeliveryError", "DeliverySettings", "EmailSettings",
           "EmailSettingsError", "LineSettings", "LineSettingsError",
           "LineTransport", "Message", "Receipt", "SenderIdentity", "SendingRules", "SmtpTransport", "Transport",
           "WebhookEvent", "WebhookPayloadError", "compose_email", "parse_events", "verify_signature"]

# The channels load on first use (PEP 562): the workspace composes the delivery settings into its
# settings, and commands that send nothing do not pay for the LINE client (httpx) or SMTP and TLS.
_LAZY = {name: module for module, names in {
    "_email": ("EmailSettingsError", "SenderIdentity", "compose_email"),
    "_line": ("LineSettingsError", "LineTransport"),
    "_line_webhook": ("SECRET_ENV", "WebhookEvent", "WebhookPayloadError", "parse_events", "verify_signature"),
    "_rules": ("SendingRules",),
    "_smtp": ("SmtpTransport",),
}.items() for name in names}


__getattr__ = lazy_getattr(__name__, _LAZY)
