"""SMTP for the e-mail channel: one connection kept open, DATA split at the point of no return.

`SmtpTransport` sends the body, calls the ledger's `committing()`, then writes the final "." —
the server stores a message only once it has read that dot, so a process killed before it sends
nothing, and one killed after it is never made to send twice.

What the server says, and what `send` raises (the ledger acts on it, `kizuna.scenarios._dispatch`):

======================================  ===============================================================
250 after the dot                       a Receipt: sent
4xx at MAIL, RCPT, DATA or after the    DeliveryError(status=4xx): not accepted, try again later
dot (421 too)
5xx after the dot                       DeliveryError(permanent=True): refused for good, the reply kept
5xx at RCPT about the recipient         DeliveryError(permanent=True), e.g. 550 5.1.1 user unknown
(5.1.x, 5.2.x …)
5xx at RCPT about us (5.7.x, 530,       DeliveryError(channel_wide=True): relay denied, login required,
"relay", "authentication")              client blocked — the message waits for the configuration
5xx at MAIL                             EmailSettingsError: the sender or login is wrong, the run stops
no answer to the dot (connection lost,  DeliveryError(maybe_delivered=True): the server may have it
timed out)
connection lost before the dot          reopened once; then DeliveryError(status=None)
======================================  ===============================================================
"""

from __future__ import annotations

import ipaddress
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from kizuna._errors import Phrase
from kizuna.delivery._base import DeliveryError, Message, Receipt
from kizuna.delivery._email import (
    PASSWORD_ENV,
    DkimSigner,
    EmailSettingsError,
    SenderIdentity,
    _recipient,
    email_bytes,
)

if TYPE_CHECKING:
    from kizuna.delivery._settings import EmailSettings

__all__ = ["SmtpTransport"]

_LEADING_DOT = re.compile(rb"(?m)^\.")  # a body line starting with "." is sent as ".." (RFC 5321 §4.5.2)
# A refusal at RCPT that is about the client rather than the recipient: RFC 3463's class X.7
# (security or policy: relay denied, authentication required, client host blocked), 530
# (authentication required, RFC 4954), or a reply that says "relay" or "authentication".
_CHANNEL_WIDE = re.compile(r"^[45]\.7\.\d{1,3}\b|relay|authenticat", re.IGNORECASE)


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
    deliver it twice — `send` raises DeliveryError(maybe_delivered=True) and the ledger decides
    (resend once, with the same Message-ID). One transport per thread.

    Examples
    --------
    >>> with SmtpTransport.from_settings(settings.email, workspace) as transport:  # doctest: +SKIP
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
            raise EmailSettingsError(Phrase.of("error.smtp_url_invalid", url=repr(url)), settings=("smtp_url",))
        if parts.password is not None:
            raise EmailSettingsError(Phrase.of("error.smtp_url_password", variable=PASSWORD_ENV),
                                     settings=("smtp_url",))
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = port or (465 if self.implicit_tls else 25)
        self.starttls = starttls
        if self.implicit_tls and starttls:
            raise EmailSettingsError(Phrase.of("error.smtps_starttls"), settings=("starttls",))
        self.user = unquote(parts.username) if parts.username else None
        if self.user and not (self.implicit_tls or starttls or _is_loopback(self.host)):
            raise EmailSettingsError(Phrase.of("error.smtp_login_in_clear", host=self.host),
                                     settings=("smtp_url", "starttls"))
        self._password = password if password is not None else os.environ.get(PASSWORD_ENV)
        if self.user and not self._password:
            raise EmailSettingsError(Phrase.of("error.smtp_no_password", user=repr(self.user), variable=PASSWORD_ENV),
                                     settings=("smtp_url",))
        self.identity = identity
        self.dkim = dkim
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._conn: _Connection | None = None

    @classmethod
    def from_settings(cls, settings: EmailSettings, workspace: Path, *, lang: str = "ja",
                      timeout: float = 30.0) -> SmtpTransport:
        """The transport of a workspace's [email] settings (key files relative to `workspace`)."""
        if not settings.smtp_url:
            raise EmailSettingsError(Phrase.of("error.smtp_no_url"), settings=("smtp_url",))
        return cls(settings.smtp_url, SenderIdentity.from_settings(settings, lang=lang),
                   starttls=settings.starttls, dkim=DkimSigner.from_settings(settings, workspace),
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
                if committed:  # the whole message and (perhaps) its dot went out, and no answer came
                    raise DeliveryError(
                        f"the connection to {self.where} was lost after the final dot, before the server "
                        f"answered ({exc or type(exc).__name__}): the server may have the message",
                        permanent=False, maybe_delivered=True) from exc
                if attempt == 2:
                    raise DeliveryError(f"the connection to {self.where} broke twice: {exc}",
                                        permanent=False) from exc
                continue  # an idle connection the server closed: once more on a new one
            return Receipt(provider_id=f"<{message.ref}@{self.identity.domain}>")
        raise AssertionError("unreachable")

    def send_bytes(self, recipient: str, data: bytes) -> Receipt:
        """Send an e-mail composed elsewhere (the manager's report of `kizuna.reporting`: to the shop's own
        people, outside the customer ledger), DKIM-signed when set. A connection found closed is reopened
        once; one lost after the final dot raises DeliveryError(maybe_delivered=True), never sends twice."""
        data = self.dkim.sign(data) if self.dkim is not None else data
        address = _recipient(recipient)
        committed = False

        def commit() -> None:
            nonlocal committed
            committed = True

        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._transact(conn, address, data, commit)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._discard()
                if committed or attempt == 2:
                    raise DeliveryError(f"the connection to {self.where} was lost: {exc or type(exc).__name__}",
                                        permanent=False, maybe_delivered=committed) from exc
                continue
            return Receipt()
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
            raise EmailSettingsError(Phrase.of("error.smtp_login_refused", server=self.where, user=repr(self.user),
                                               reply=_reply(exc.smtp_code, exc.smtp_error), variable=PASSWORD_ENV),
                                     settings=("smtp_url",)) from None
        except smtplib.SMTPNotSupportedError as exc:
            _close(conn)
            what = "STARTTLS" if self.starttls and "STARTTLS" in str(exc) else "AUTH"
            raise EmailSettingsError(Phrase.of("error.smtp_not_offered", server=self.where, what=what,
                                               problem=str(exc)), settings=("smtp_url", "starttls")) from None
        except ssl.SSLCertVerificationError as exc:
            _close(conn)
            raise EmailSettingsError(Phrase.of("error.smtp_certificate", server=self.where,
                                               problem=str(exc.verify_message)), settings=("smtp_url",)) from None
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
                raise EmailSettingsError(Phrase.of("error.smtp_sender_refused", server=self.where, sender=sender,
                                                   reply=_reply(code, reply)), settings=("sender", "smtp_url"))
            raise DeliveryError(f"MAIL FROM: {_reply(code, reply)}", permanent=False, status=code)
        code, reply = conn.getreply() if pipelined else conn.rcpt(recipient)
        if code not in (250, 251):
            self._reset(conn, code, pending=1 if pipelined else 0)
            text = _reply(code, reply)
            raise DeliveryError(f"RCPT TO: {text}", permanent=code >= 500, status=code,
                                channel_wide=code >= 500 and _refuses_the_channel(code, text))
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


def _refuses_the_channel(code: int, text: str) -> bool:
    """Whether a 5xx reply to RCPT (`text` as `_reply` gives it) refuses the client, not the recipient.

    >>> _refuses_the_channel(554, "554 5.7.1 <a@example.jp>: Relay access denied")
    True
    >>> _refuses_the_channel(550, "550 5.1.1 <a@example.jp>: Recipient address rejected: User unknown")
    False
    """
    if code in (530, 535, 538):  # authentication required / failed / needs encryption (RFC 4954)
        return True
    said = re.sub(r"<[^<>]*>", "", text.partition(" ")[2])  # not the address: <relay@…> is a recipient
    return bool(_CHANNEL_WIDE.search(said.strip()))


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
