"""The e-mail channel: compose a lawful marketing e-mail, sign it with DKIM, send it over SMTP.

Every e-mail is multipart/alternative (text and HTML, UTF-8) and carries in both parts the
footer 特定電子メール法 asks for: the sender's name, postal address and contact, and how to
stop the mails. A marketing e-mail also carries the one-click unsubscribe headers of RFC 8058.
The Message-ID is ``<ref@sender-domain>``: the same delivery always has the same id, so a
resend after a crash can be recognised downstream.

`SmtpTransport` keeps one connection open across messages and splits DATA so that the
ledger's `committing()` runs after the body went out and before the final "." — the server
stores a message only once it has read that dot, so a process killed before it sends nothing.

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
import ipaddress
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from kizuna._errors import WorkspaceError
from kizuna.delivery._base import DeliveryError, Message, Receipt

if TYPE_CHECKING:
    from kizuna.workspace import Settings

__all__ = [
    "PASSWORD_ENV", "DkimSigner", "EmailSettingsError", "SenderIdentity", "SmtpTransport", "compose_email",
    "email_bytes",
]

PASSWORD_ENV = "KIZUNA_SMTP_PASSWORD"
_LANGS = ("ja", "en")
# One transparency dot before every line that starts with "." (RFC 5321 §4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")
# A mailbox we can put in RCPT and To without quoting: no spaces, brackets or separators.
_MAILBOX = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+")
_URL = re.compile(r"https?://[^\s<>\"'、。「」（）]+")
_HEADER_CHUNK = 39  # UTF-8 bytes per encoded word: 64 characters, so a header line stays under 78


class EmailSettingsError(WorkspaceError):
    """The [email] settings in kizuna.toml do not allow sending this e-mail."""

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()) -> None:
        self.settings = settings  # the [email] keys to fill in or fix
        super().__init__(message)


_FOOTER = {
    "ja": {"contact": "お問い合わせ: {}", "stop": "配信停止をご希望の方は、次のページから手続きできます。",
           "stop_link": "配信停止の手続き", "sender": "発行元: {}", "address": "所在地: {}"},
    "en": {"contact": "Contact: {}", "stop": "To stop receiving these e-mails, unsubscribe here:",
           "stop_link": "Unsubscribe", "sender": "Sent by {}", "address": "Address: {}"},
}


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
            raise EmailSettingsError(
                f"[email] sender = {self.sender!r} is not a mailbox kizuna can send from. Set it in kizuna.toml "
                'to the shop\'s name and ASCII address, e.g. sender = "Shop <info@example.jp>".',
                settings=("sender",),
            )
        object.__setattr__(self, "name", " ".join(name.split()))
        object.__setattr__(self, "address", address)

    @property
    def domain(self) -> str:
        """The domain of the sender's address (the right side of Message-IDs)."""
        return self.address.rpartition("@")[2].lower()

    @classmethod
    def from_settings(cls, settings: Settings, *, lang: str = "ja") -> SenderIdentity:
        """The identity of the [email] settings; EmailSettingsError when `sender` is not set."""
        if not settings.sender:
            raise EmailSettingsError(
                'No sender for e-mails: set [email] sender = "Shop <info@example.jp>" in kizuna.toml.',
                settings=("sender",),
            )
        return cls(settings.sender, settings.sender_address, settings.sender_contact, lang)

    def check(self, *, marketing: bool) -> None:
        """Raise EmailSettingsError when a marketing e-mail could not show what the law asks for."""
        if not marketing:
            return
        missing = []
        if not self.name:
            missing.append('sender (with the shop\'s name: "Shop <info@example.jp>")')
        if not self.postal_address.strip():
            missing.append("sender_address (the postal address)")
        if not self.contact.strip():
            missing.append("sender_contact (a telephone number or e-mail address for questions)")
        if missing:
            raise EmailSettingsError(
                "Marketing e-mails must show the sender's name, postal address and contact "
                f"(特定電子メール法). Fill in [email] {'; '.join(missing)} in kizuna.toml.",
                settings=tuple(m.split(" ", 1)[0] for m in missing),
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
    if url:
        # on one line, however long (up to 998): some parsers keep the space of a folded first line
        headers += [f"List-Unsubscribe: <{url}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"']

    sender = [line for line in (identity.name and words["sender"].format(identity.name),
                                identity.postal_address and words["address"].format(identity.postal_address),
                                identity.contact and words["contact"].format(identity.contact)) if line]
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
            raise EmailSettingsError(
                f"[email] dkim_key_file does not hold an RSA private key in PEM form ({exc}). "
                "Create one with `openssl genrsa -out dkim.pem 2048`.",
                settings=("dkim_key_file",),
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings, workspace: Path) -> DkimSigner | None:
        """The signer of the [email] dkim_* settings; None when none of them is set."""
        given = {"dkim_domain": settings.dkim_domain, "dkim_selector": settings.dkim_selector,
                 "dkim_key_file": settings.dkim_key_file}
        if not any(given.values()):
            return None
        missing = tuple(key for key, value in given.items() if not value)
        if missing:
            raise EmailSettingsError(
                f"DKIM needs dkim_domain, dkim_selector and dkim_key_file; fill in [email] {', '.join(missing)} "
                "in kizuna.toml, or empty all three to send unsigned.",
                settings=missing,
            )
        path = Path(settings.dkim_key_file)
        path = path if path.is_absolute() else Path(workspace) / path
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise EmailSettingsError(
                f"[email] dkim_key_file {path} cannot be read ({exc.strerror}). Fix the path in kizuna.toml.",
                settings=("dkim_key_file",),
            ) from None
        return cls(settings.dkim_domain, settings.dkim_selector, key)

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front."""
        import dkim

        signature = dkim.sign(data, self.selector.encode(), self.domain.encode(), self.private_key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode() for h in self.HEADERS],
                              linesep=b"\r\n")
        return signature + data


class _Connection(smtplib.SMTP):
    """smtplib's client, with DATA split around the ledger's commit point."""

    def data(self, msg: bytes | str, committing: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """smtplib's DATA, calling `committing` after the body and before the final "." (see `body`)."""
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):
            msg = re.sub(r"(?:\r\n|\n|\r(?!\n))", "\r\n", msg).encode("ascii")
        return self.body(msg, committing)

    def body(self, msg: bytes, committing: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """After the 354 reply to DATA: the message, `committing()`, the final "." and its reply.

        If `committing` raises, the connection is closed without the dot: the server then
        discards the message.
        """
        quoted = _LEADING_DOT.sub(b"..", msg)
        if not quoted.endswith(b"\r\n"):
            quoted += b"\r\n"
        self.send(quoted)
        if committing is not None:
            try:
                committing()
            except BaseException:
                self.close()
                raise
        self.send(b".\r\n")
        return self.getreply()

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        result = super().connect(host, port, source_address)
        # The body and the final dot are two writes: without this, Nagle's algorithm holds
        # the dot back until the server acknowledges the body (up to 40 ms a message).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return result


class _SslConnection(_Connection, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    """Sends e-mails to one SMTP server over one connection, held open for the whole run.

    Parameters
    ----------
    url
        ``smtp://host:port`` (STARTTLS when `starttls`) or ``smtps://user@host:465`` (TLS from
        the start); a user in the URL logs in with the password of $KIZUNA_SMTP_PASSWORD.
    identity
        The sender: From, the envelope sender and the footer.
    starttls, password, dkim, timeout, ssl_context
        Upgrade to TLS after connecting; the password (default: $KIZUNA_SMTP_PASSWORD); a DKIM
        signer; seconds to wait for the server; the TLS context (default: the system's CAs).

    A dropped connection is reopened once per message, unless `committing` was already
    called: after that point the server may have the message, and sending it again could
    deliver it twice. One transport per thread.

    Examples
    --------
    >>> with SmtpTransport.from_settings(settings, workspace) as transport:  # doctest: +SKIP
    ...     transport.send(message, committing=ledger_marks_sent)
    """

    channel = "email"

    def __init__(self, url: str, identity: SenderIdentity, *, starttls: bool = False, password: str | None = None,
                 dkim: DkimSigner | None = None, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port == -1:
            raise EmailSettingsError(
                f"[email] smtp_url = {url!r} is not an SMTP server: write smtp://host:port or "
                "smtps://user@host:465 in kizuna.toml.", settings=("smtp_url",))
        if parts.password is not None:
            raise EmailSettingsError(
                f"[email] smtp_url holds a password: remove it from kizuna.toml and set the environment "
                f"variable {PASSWORD_ENV} instead.", settings=("smtp_url",))
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = port or (465 if self.implicit_tls else 25)
        self.starttls = starttls
        if self.implicit_tls and starttls:
            raise EmailSettingsError(
                "smtps:// is encrypted from the start: set [email] starttls = false, or use smtp://host:587 "
                "with starttls = true.", settings=("starttls",))
        self.user = unquote(parts.username) if parts.username else None
        if self.user and not (self.implicit_tls or starttls or _is_loopback(self.host)):
            raise EmailSettingsError(
                f"logging in to {self.host} without TLS would send the password in the clear: use "
                "smtps://…:465, or set [email] starttls = true.", settings=("smtp_url", "starttls"))
        self._password = password if password is not None else os.environ.get(PASSWORD_ENV)
        if self.user and not self._password:
            raise EmailSettingsError(
                f"[email] smtp_url logs in as {self.user!r}, but {PASSWORD_ENV} is not set: set it to the "
                "SMTP password in the environment of kizuna.", settings=("smtp_url",))
        self.identity = identity
        self.dkim = dkim
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._conn: _Connection | None = None

    @classmethod
    def from_settings(cls, settings: Settings, workspace: Path, *, lang: str = "ja",
                      timeout: float = 30.0) -> SmtpTransport:
        """The transport of a workspace's [email] settings (key files relative to `workspace`)."""
        if not settings.smtp_url:
            raise EmailSettingsError(
                'No SMTP server to send e-mails through: set [email] smtp_url = "smtp://host:port" in kizuna.toml.',
                settings=("smtp_url",))
        return cls(settings.smtp_url, SenderIdentity.from_settings(settings, lang=lang),
                   starttls=settings.smtp_starttls, dkim=DkimSigner.from_settings(settings, workspace),
                   timeout=timeout)

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pipelining(self) -> bool | None:
        """Whether the open connection pipelines its commands (RFC 2920); None when none is open."""
        return None if self._conn is None else self._conn.has_extn("pipelining")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def render(self, message: Message) -> bytes:
        """The bytes `send` transmits for `message`: composed, and signed when DKIM is set."""
        data = email_bytes(message, self.identity)
        return self.dkim.sign(data) if self.dkim is not None else data

    def send(self, message: Message, *, committing: Callable[[], None] | None = None) -> Receipt:
        """Deliver `message` (see `Transport.send`); Receipt.provider_id is its Message-ID."""
        if message.channel != self.channel:
            raise ValueError(f"SmtpTransport sends e-mail, not {message.channel!r} messages")
        data = self.render(message)
        recipient = _recipient(message.address)
        committed = commit_failed = False

        def commit() -> None:
            nonlocal committed, commit_failed
            committed = True
            if committing is not None:
                try:
                    committing()
                except BaseException:
                    # the connection was closed without the final dot: the server discards the message
                    commit_failed = True
                    self._discard()
                    raise

        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._transact(conn, recipient, data, commit)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                # SMTPResponseException is an OSError too, but _transact turns those into DeliveryError
                self._discard()
                if commit_failed:
                    raise  # the ledger's own error, untouched
                if committed or attempt == 2:
                    when = "after the message was committed" if committed else "twice"
                    raise DeliveryError(f"the connection to {self.where} broke {when}: {exc}",
                                        permanent=False) from exc
                continue  # an idle connection the server closed: once more on a new one
            return Receipt(provider_id=f"<{message.ref}@{self.identity.domain}>")
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Say QUIT and close the connection (the next `send` opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> _Connection:
        if self._conn is not None:
            return self._conn
        context = self._ssl_context or (ssl.create_default_context() if self.implicit_tls or self.starttls else None)
        conn: _Connection | None = None
        try:
            if self.implicit_tls:
                conn = _SslConnection(self.host, self.port, timeout=self.timeout, context=context)
            else:
                conn = _Connection(self.host, self.port, timeout=self.timeout)
            conn.ehlo_or_helo_if_needed()
            if self.starttls:
                conn.starttls(context=context)
                conn.ehlo()
            if self.user:
                conn.login(self.user, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            raise EmailSettingsError(
                f"{self.where} refused the login of {self.user!r} ({_reply(exc.smtp_code, exc.smtp_error)}): check "
                f"the user in [email] smtp_url and {PASSWORD_ENV}.", settings=("smtp_url",)) from None
        except smtplib.SMTPNotSupportedError as exc:
            _close(conn)
            what = "STARTTLS" if self.starttls and "STARTTLS" in str(exc) else "AUTH"
            raise EmailSettingsError(
                f"{self.where} does not offer {what} ({exc}): check [email] smtp_url and starttls.",
                settings=("smtp_url", "starttls")) from None
        except ssl.SSLCertVerificationError as exc:
            _close(conn)
            raise EmailSettingsError(
                f"the TLS certificate of {self.where} cannot be trusted ({exc.verify_message}): check the host "
                "name in [email] smtp_url.", settings=("smtp_url",)) from None
        except smtplib.SMTPResponseException as exc:  # refused at the greeting, EHLO or STARTTLS
            _close(conn)
            raise DeliveryError(f"{self.where} refused the connection: {_reply(exc.smtp_code, exc.smtp_error)}",
                                permanent=False, status=exc.smtp_code) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, name unknown
            _close(conn)
            raise DeliveryError(f"cannot reach the SMTP server {self.where}: {exc or type(exc).__name__}",
                                permanent=False) from exc
        self._conn = conn
        return conn

    def _transact(self, conn: _Connection, recipient: str, data: bytes, commit: Callable[[], None]) -> None:
        """MAIL, RCPT, DATA; a refusal raises DeliveryError and leaves the connection ready for the next.

        When the server offers PIPELINING (RFC 2920), the three commands go in one write and
        their replies are read after: two round trips a message instead of four.
        """
        sender = self.identity.address
        pipelined = conn.has_extn("pipelining")
        if pipelined:
            conn.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii"))
        code, reply = conn.getreply() if pipelined else conn.mail(sender)
        if code == 421:  # the server closed an idle connection ("timeout exceeded"): `send` opens another
            raise smtplib.SMTPServerDisconnected(_reply(code, reply))
        if code != 250:
            self._reset(conn, code, pending=2 if pipelined else 0)
            if code >= 500:
                # about the sender or the session, not this message: stop the run, lose nothing
                raise EmailSettingsError(
                    f"{self.where} refused the sender {sender} ({_reply(code, reply)}): check "
                    "[email] sender and the login in smtp_url.", settings=("sender", "smtp_url"))
            raise DeliveryError(f"MAIL FROM: {_reply(code, reply)}", permanent=False, status=code)
        code, reply = conn.getreply() if pipelined else conn.rcpt(recipient)
        if code not in (250, 251):
            self._reset(conn, code, pending=1 if pipelined else 0)
            raise DeliveryError(f"RCPT TO: {_reply(code, reply)}", permanent=code >= 500, status=code)
        if not pipelined:
            conn.putcmd("data")
        code, reply = conn.getreply()
        if code != 354:  # DATA itself refused, before anything was committed
            self._reset(conn, code)
            raise DeliveryError(f"DATA: {_reply(code, reply)}", permanent=code >= 500, status=code)
        code, reply = conn.body(data, commit)
        if code != 250:
            if code == 421:
                self._discard()
            raise DeliveryError(f"end of DATA: {_reply(code, reply)}", permanent=code >= 500, status=code)

    def _reset(self, conn: _Connection, code: int, *, pending: int = 0) -> None:
        """Abort the transaction so the connection serves the next message; drop it after a 421.

        `pending`: replies to pipelined commands still to be read (the server refuses them).
        """
        if code == 421:
            self._discard()
            return
        try:
            for _ in range(pending):
                if conn.getreply()[0] == 354:  # DATA accepted after all: end it empty, nobody receives it
                    conn.send(b".\r\n")
                    conn.getreply()
            code, _ = conn.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._discard()

def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        conn.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
