"""The e-mail channel: compose a lawful marketing e-mail, sign it with DKIM, send it over SMTP.

Every e-mail is multipart/alternative (text and HTML, UTF-8) and carries in both parts the
footer 特定電子メール法 asks for: the sender's name, postal address and contact, and how to
stop the mails. A marketing e-mail also carries the one-click unsubscribe headers of RFC 8058.
The Message-ID is ``<ref@sender-domain>``: the same delivery always has the same id, so a
resend after a crash can be recognised downstream.

Sending is `kizuna.delivery._smtp.SmtpTransport`.

::

    WorkspaceError (KizunaError)
    └── EmailSettingsError    [email] settings that do not allow sending (names the settings)
    DeliveryError (KizunaError)
        .permanent            5xx for this message; 4xx, broken or refused connections are not
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import html
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING

from kizuna._errors import Phrase, WorkspaceError
from kizuna.delivery._base import DeliveryError, Message
from kizuna.i18n import section

if TYPE_CHECKING:
    from kizuna.delivery._settings import EmailSettings

__all__ = [
    "PASSWORD_ENV", "TEST_HEADER", "DkimSigner", "EmailSettingsError", "SenderIdentity", "compose_email", "email_bytes",
]

PASSWORD_ENV = "KIZUNA_SMTP_PASSWORD"
TEST_HEADER = "X-Kizuna-Test"  # on a test send: the scenario and step it shows
_LANGS = ("ja", "en")
# One transparency dot before every line that starts with "." (RFC 5321 §4.5.2).
# A mailbox we can put in RCPT and To without quoting: no spaces, brackets or separators.
_MAILBOX = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+")
_URL = re.compile(r"https?://[^\s<>\"'、。「」（）]+")
_HEADER_CHUNK = 39  # UTF-8 bytes per encoded word: 64 characters, so a header line stays under 78


class EmailSettingsError(WorkspaceError):
    """The [email] settings in kizuna.toml do not allow sending this e-mail."""

    def __init__(self, message: str | Phrase, *, settings: tuple[str, ...] = ()) -> None:
        self.settings = settings  # the [email] keys to fill in or fix
        super().__init__(message)


# the footer's words, by language: the catalogue's "email.*" texts
_FOOTER = {lang: section("email.", lang) for lang in _LANGS}


@dataclass(frozen=True)
class SenderIdentity:
    """Who sends the e-mails, as 特定電子メール法 requires it to be shown.

    Parameters
    ----------
    sender
        The From: mailbox with the shop's name, ``"Shop <info@example.jp>"``.
    postal_address, contact
        The sender's postal address, and a telephone number or address for questions.
    lang
        "ja" or "en": the wording of the footer.

    Examples
    --------
    >>> SenderIdentity("ショップ <info@example.jp>").domain
    'example.jp'
    """

    sender: str
    postal_address: str = ""
    contact: str = ""
    lang: str = "ja"
    name: str = field(init=False, compare=False)
    address: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.lang not in _LANGS:
            raise ValueError(f"lang must be one of {', '.join(_LANGS)}, got {self.lang!r}")
        # not email.utils.parseaddr: people write "Tom & Jerry, Ltd. <…>" without quoting the comma
        match = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", self.sender)
        name, address = (match.group(1), match.group(2).strip()) if match else ("", self.sender.strip())
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if not _MAILBOX.fullmatch(address) or not address.isascii():
            raise EmailSettingsError(Phrase.of("error.email_sender_invalid", sender=repr(self.sender)),
                                     settings=("sender",))
        object.__setattr__(self, "name", " ".join(name.split()))
        object.__setattr__(self, "address", address)

    @property
    def domain(self) -> str:
        """The domain of the sender's address (the right side of Message-IDs)."""
        return self.address.rpartition("@")[2].lower()

    @classmethod
    def from_settings(cls, settings: EmailSettings, *, lang: str = "ja") -> SenderIdentity:
        """The identity of the [email] settings; EmailSettingsError when `sender` is not set."""
        if not settings.sender:
            raise EmailSettingsError(Phrase.of("error.email_no_sender"), settings=("sender",))
        return cls(settings.sender, settings.sender_address, settings.sender_contact, lang)

    def check(self, *, marketing: bool) -> None:
        """Raise EmailSettingsError when a marketing e-mail could not show what the law asks for."""
        if not marketing:
            return
        missing = {setting: key for setting, key, given in (
            ("sender", "error.email_missing_name", self.name),
            ("sender_address", "error.email_missing_address", self.postal_address.strip()),
            ("sender_contact", "error.email_missing_contact", self.contact.strip())) if not given}
        if missing:
            raise EmailSettingsError(
                Phrase.of("error.email_legal_footer", missing=[Phrase.of(key) for key in missing.values()]),
                settings=tuple(missing),
            )


def compose_email(message: Message, identity: SenderIdentity, *, now: dt.datetime | None = None) -> EmailMessage:
    """The e-mail for `message`, as the standard library's EmailMessage (for previews and tests).

    Parameters
    ----------
    message
        A rendered message of the "email" channel; not transactional = marketing, which needs
        an `unsubscribe_url` and a complete identity.
    identity
        The sender shown in From and in the footer.
    now
        The Date header (timezone-aware); the current time by default.

    Examples
    --------
    >>> from kizuna.delivery import Message
    >>> m = Message(key="k", ref="0" * 32, customer_id="c1", channel="email", address="taro@example.com",
    ...             subject="ご案内", text="山田様", unsubscribe_url="https://shop.example.jp/u/x")
    >>> e = compose_email(m, SenderIdentity("Shop <info@example.jp>", "東京都千代田区1-1", "03-0000-0000"))
    >>> e["Message-ID"], e["Subject"], e["List-Unsubscribe-Post"]
    ('<00000000000000000000000000000000@example.jp>', 'ご案内', 'List-Unsubscribe=One-Click')
    """
    parsed = BytesParser(policy=policy.default).parsebytes(email_bytes(message, identity, now=now))
    assert isinstance(parsed, EmailMessage)
    return parsed


def email_bytes(message: Message, identity: SenderIdentity, *, now: dt.datetime | None = None) -> bytes:
    """The e-mail for `message` as the bytes sent over SMTP (CRLF lines, no transparency dots).

    Written directly rather than through EmailMessage, which takes ~2 ms a message: ten times
    too slow for a run of a thousand messages a second.
    """
    identity.check(marketing=not message.transactional)
    if not message.transactional and not message.unsubscribe_url:
        raise ValueError(f"marketing e-mail {message.key} has no unsubscribe_url (RFC 8058, 特定電子メール法)")
    url = message.unsubscribe_url
    if url is not None and not re.fullmatch(r"https?://[!-;=?-~]+", url):
        raise ValueError(f"unsubscribe_url of {message.key} is not a plain http(s) URL: {url!r}")
    to = _recipient(message.address)
    words = _FOOTER[identity.lang]
    boundary = f"=_kizuna_{message.ref}"  # "=_" never occurs in base64, and 7bit parts are checked
    headers = [
        f"From: {_mailbox_header(identity.name, identity.address)}",
        f"To: {to}",
        f"Subject: {_text_header(message.subject)}",
        f"Date: {email.utils.format_datetime(now or dt.datetime.now(dt.UTC))}",
        f"Message-ID: <{message.ref}@{identity.domain}>",
    ]
    if message.test:  # mail filters and the operator tell a test of a step from a customer's message by it
        headers.append(f"{TEST_HEADER}: {message.key}")
    if url:
        # on one line, however long (up to 998): some parsers keep the space of a folded first line
        headers += [f"List-Unsubscribe: <{url}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"']

    sender = [line for line in (identity.name and words["sender"].format(sender=identity.name),
                                identity.postal_address and words["address"].format(address=identity.postal_address),
                                identity.contact and words["contact"].format(contact=identity.contact)) if line]
    footer = sender + [words["stop"], url] if url else sender
    text = _lines(message.text).rstrip("\n") + "\n\n" + "-" * 40 + "\n" + "\n".join(footer) + "\n"

    html_footer = "<br>\n".join(html.escape(line) for line in sender)
    if url:
        html_footer += (f'<br>\n{html.escape(words["stop"])} <a href="{html.escape(url)}">'
                        f'{html.escape(words["stop_link"])}</a>')
    html_footer = (f'\n<hr style="border:none;border-top:1px solid #ccc;margin:24px 0 8px">\n'
                   f'<p style="font-size:12px;color:#666;line-height:1.6">\n{html_footer}\n</p>\n')
    body_html = _lines(message.html) if message.html is not None else _html_from_text(message.text, identity.lang)
    end = body_html.lower().rfind("</body>")
    body_html = body_html[:end] + html_footer + body_html[end:] if end >= 0 else body_html + html_footer

    out = "\r\n".join(headers).encode("ascii") + b"\r\n\r\n"
    for subtype, body in (("plain", text), ("html", body_html)):
        out += f"--{boundary}\r\n".encode("ascii") + _part(subtype, body, boundary)
    return out + f"--{boundary}--\r\n".encode("ascii")


def _lines(text: str) -> str:
    """`text` with every line break as "\\n" (str.splitlines would also break on \\x0c, \\u2028…)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _part(subtype: str, body: str, boundary: str) -> bytes:
    data = body.replace("\n", "\r\n").encode("utf-8")
    if data.isascii() and boundary not in body and all(len(line) <= 998 for line in data.split(b"\r\n")):
        return f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n".encode() + data
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode()
            + encoded)


def _html_from_text(text: str, lang: str) -> str:
    """An HTML body for a text-only message: escaped, paragraphs kept, URLs as links."""
    paragraphs = [p for p in re.split(r"\n\s*\n", _lines(text).strip("\n")) if p.strip()]
    body = "".join(f"<p>{_linkify(p).replace(chr(10), '<br>' + chr(10))}</p>\n" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8"></head>\n'
            f"<body>\n{body}</body>\n</html>\n")


def _linkify(text: str) -> str:
    out, last = [], 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?)")
        out += [html.escape(text[last:match.start()]), f'<a href="{html.escape(url)}">{html.escape(url)}</a>']
        last = match.start() + len(url)
    return "".join(out) + html.escape(text[last:])


def _encoded_words(value: str) -> str:
    """RFC 2047 B encoded words, each whole UTF-8 characters, one per folded line."""
    data, words = value.encode("utf-8"), []
    while data:
        cut = min(len(data), _HEADER_CHUNK)
        while cut < len(data) and data[cut] & 0xC0 == 0x80:  # never split a character
            cut -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[:cut]).decode('ascii')}?=")
        data = data[cut:]
    return "\r\n ".join(words)


def _text_header(value: str) -> str:
    value = " ".join(value.split())  # a line break in a subject would end the header
    if value.isascii() and value.isprintable() and "=?" not in value and len(value) <= 900:
        return value
    return _encoded_words(value)


def _mailbox_header(name: str, address: str) -> str:
    if not name:
        return address
    if not name.isascii() or "=?" in name:
        return f"{_encoded_words(name)} <{address}>"
    if re.search(r'[()<>\[\]:;@\\,."]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _recipient(address: str) -> str:
    """The address for RCPT and To, the domain in ASCII (IDNA); DeliveryError when unusable."""
    local, _, domain = address.strip().rpartition("@")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    result = f"{local}@{domain}"
    if not _MAILBOX.fullmatch(result) or not result.isascii():
        # a customer's address: not quoted in the reason, which is stored and shown
        raise DeliveryError("not an e-mail address kizuna can send to (it needs name@domain in ASCII letters)",
                            permanent=True)
    return result


@dataclass(frozen=True)
class DkimSigner:
    """Signs e-mails with DKIM (RFC 6376, rsa-sha256, relaxed/relaxed) with dkimpy.

    The one-click unsubscribe headers are signed as RFC 8058 §4 requires; headers that a
    message lacks are signed as absent, so that nobody can add them on the way.
    """

    domain: str
    selector: str
    private_key: bytes = field(repr=False)  # PEM, PKCS#1 or PKCS#8

    HEADERS = ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
               "mime-version", "content-type")

    def __post_init__(self) -> None:
        import dkim.crypto

        try:
            dkim.crypto.parse_pem_private_key(self.private_key)
        except (dkim.crypto.UnparsableKeyError, ValueError) as exc:
            raise EmailSettingsError(Phrase.of("error.dkim_key_invalid", problem=str(exc)),
                                     settings=("dkim_key_file",)) from None

    @classmethod
    def from_settings(cls, settings: EmailSettings, workspace: Path) -> DkimSigner | None:
        """The signer of the [email] dkim_* settings; None when none of them is set."""
        given = {"dkim_domain": settings.dkim_domain, "dkim_selector": settings.dkim_selector,
                 "dkim_key_file": settings.dkim_key_file}
        if not any(given.values()):
            return None
        missing = tuple(key for key, value in given.items() if not value)
        if missing:
            raise EmailSettingsError(Phrase.of("error.dkim_incomplete", missing=list(missing)), settings=missing)
        path = Path(settings.dkim_key_file)
        path = path if path.is_absolute() else Path(workspace) / path
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise EmailSettingsError(Phrase.of("error.dkim_key_unreadable", path=str(path), problem=exc.strerror),
                                     settings=("dkim_key_file",)) from None
        return cls(settings.dkim_domain, settings.dkim_selector, key)

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front."""
        import dkim

        signature = dkim.sign(data, self.selector.encode(), self.domain.encode(), self.private_key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode() for h in self.HEADERS],
                              linesep=b"\r\n")
        return signature + data
