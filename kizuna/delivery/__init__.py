"""Delivery channels (docs/measures.md §4): e-mail over SMTP, LINE's Messaging API, and the rules of when a
message may go. Every transport sends one rendered `Message`; the send ledger around it
(`kizuna.operations`) makes delivery exactly once."""

from kizuna.delivery._base import CHANNELS, ONLINE_CHANNELS, DeliveryError, Message, Receipt, Transport
from kizuna.delivery._email import EmailSettingsError, SenderIdentity, compose_email
from kizuna.delivery._line import LineSettingsError, LineTransport
from kizuna.delivery._line_webhook import SECRET_ENV, WebhookEvent, WebhookPayloadError, parse_events, verify_signature
from kizuna.delivery._rules import SendingRules
from kizuna.delivery._settings import DeliverySettings, EmailSettings, LineSettings
from kizuna.delivery._smtp import SmtpTransport

__all__ = ["CHANNELS", "ONLINE_CHANNELS", "SECRET_ENV", "DeliveryError", "DeliverySettings", "EmailSettings",
           "EmailSettingsError", "LineSettings", "LineSettingsError",
           "LineTransport", "Message", "Receipt", "SenderIdentity", "SendingRules", "SmtpTransport", "Transport",
           "WebhookEvent", "WebhookPayloadError", "compose_email", "parse_events", "verify_signature"]
