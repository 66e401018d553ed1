"""A real SMTP server on 127.0.0.1 for the tests and the bench scripts: aiosmtpd in a thread.

It keeps every message it accepted, with its envelope and its raw bytes, and can be told to
require AUTH (LOGIN / PLAIN with one user and password), to refuse some recipients (or all)
with a given reply at RCPT or after the final dot of DATA, to drop the connection when a
recipient is named or right after the final dot, or to answer the dot late — the failures a
transport must survive. The failure settings are plain attributes: a test may change them
between runs ("the server is healthy again"). ::

    with SmtpServer(user="shop", password="secret") as server:
        ...send to server.host, server.port...
        mail = server.wait_for(1)[0]
        mail.message()["Subject"]

STARTTLS is not offered: the self-signed certificate it needs would be generated with the
`cryptography` package, which the venv does not have.

Run as a script (``python tests/smtp_server.py [--port N]``) it serves until interrupted and
counts what it received without keeping it: a server in a process of its own for benchmarks,
so that it does not share the client's GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMail", "SmtpServer"]


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # the message as sent, the transparency dots removed
    connection: int  # which connection (1, 2, … in the order they were opened) carried it
    login: str | None  # the AUTH user, None when the client did not log in

    def message(self) -> EmailMessage:
        """The message parsed by the standard library, the way a mail client would read it."""
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1, on a free port, for as long as the `with` block runs.

    Parameters
    ----------
    user, password
        When given, MAIL is answered "530" until the client has logged in (AUTH LOGIN or PLAIN)
        with exactly these; a wrong password is answered "535".
    refuse
        Recipient address → the reply its RCPT gets, e.g. ``{"nobody@example.jp": "550 5.1.1
        no such user"}`` or a 4xx reply; the address ``"*"`` stands for every recipient
        (``{"*": "550 5.7.1 Relay access denied"}``).
    refuse_data
        Recipient address (or ``"*"``) → the reply to the end of DATA (after the final dot):
        content refused (5xx) or "try again later" (4xx).
    drop
        Recipient addresses whose RCPT makes the server close the connection, like a server
        that crashed or a network that broke in the middle of a transaction.
    drop_after_dot
        Recipient addresses (or ``"*"``) whose message makes the server close the connection
        right after reading the final dot, without answering it.
    store_dropped
        Whether such a message was stored before the connection went (the server took it and
        crashed before it could say so); False: it was lost with the connection.
    answer_after
        Seconds the server waits after the final dot before answering (a client with a
        shorter timeout sees no answer); the message is stored.
    keep
        False: count the messages without keeping them (long benchmarks).
    pipelining
        Offer PIPELINING (RFC 2920) in the EHLO reply. aiosmtpd does not announce it, but reads
        commands one after another from its buffer, which is all that pipelining asks of a server.
    """

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 refuse: Mapping[str, str] | None = None, refuse_data: Mapping[str, str] | None = None,
                 drop: Iterable[str] = (), drop_after_dot: Iterable[str] = (), store_dropped: bool = False,
                 answer_after: float = 0.0, keep: bool = True, pipelining: bool = False, port: int = 0) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.user = user
        self.password = password
        self.refuse = dict(refuse or {})
        self.refuse_data = dict(refuse_data or {})
        self.drop = frozenset(drop)
        self.drop_after_dot = frozenset(drop_after_dot)
        self.store_dropped = store_dropped
        self.answer_after = answer_after
        self.keep = keep
        self.pipelining = pipelining
        self.host = "127.0.0.1"
        self._port = port
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._count = 0
        self._connections = 0
        self._open: set[_Protocol] = set()
        self._controller: _Controller | None = None

    # ---- life cycle -------------------------------------------------------------------

    def start(self) -> SmtpServer:
        handler = _Handler(self)
        controller = _Controller(
            self, handler, hostname=self.host, port=self._port, server_hostname="smtp.kizuna.test",
            # AUTH is checked by the handler at MAIL instead of auth_required=True: aiosmtpd
            # warns about AUTH without TLS, and the tests turn warnings into errors.
            auth_require_tls=False, authenticator=self._authenticate if self.user is not None else None,
            auth_exclude_mechanism=["CRAM-MD5"],
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the server is not running")
        return self._controller.port

    @property
    def url(self) -> str:
        """The server as an `[email] smtp_url` (with the user, when AUTH is required)."""
        user = f"{self.user}@" if self.user else ""
        return f"smtp://{user}{self.host}:{self.port}"

    # ---- what arrived -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        """The messages accepted so far, in order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def count(self) -> int:
        """How many messages were accepted, kept or not."""
        with self._lock:
            return self._count

    @property
    def connections(self) -> int:
        """How many client connections were opened (the controller's own start-up probe excluded)."""
        with self._lock:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """The messages once at least `count` have arrived; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.count} message(s) arrived within {timeout} s, expected {count}")
            time.sleep(0.01)
        return self.messages

    def drop_connections(self, reply: str | None = None) -> None:
        """Close every open client connection, as a server does with idle ones.

        `reply`, e.g. "421 4.4.2 timeout exceeded", is sent first, as Postfix does.
        """
        assert self._controller is not None
        loop = self._controller.loop

        async def close_all() -> None:
            for protocol in list(self._open):
                if protocol.transport is not None:
                    if reply is not None:
                        protocol.transport.write(f"{reply}\r\n".encode())
                    protocol.transport.close()

        asyncio.run_coroutine_threadsafe(close_all(), loop).result(5)

    # ---- called on the server's thread --------------------------------------------------

    def _connected(self, protocol: _Protocol) -> int:
        with self._lock:
            self._connections += 1
            self._open.add(protocol)
            return self._connections

    def _disconnected(self, protocol: _Protocol) -> None:
        with self._lock:
            self._open.discard(protocol)

    def _received(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._count += 1
            if self.keep:
                self._messages.append(mail)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client waiting)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)


class _Protocol(SMTP):
    """aiosmtpd's SMTP protocol, telling the server when connections open and close."""

    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.number:  # STARTTLS calls this again on the same connection
            self.number = self.owner._connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._disconnected(self)
        super().connection_lost(exc)


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        return _Protocol(self.owner, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # port 0 = the system picked a free port: the probe must connect to that one
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
        with self.owner._lock:  # the probe is not a client
            self.owner._connections -= 1


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.owner.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.owner.user is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.owner.drop:
            assert server.transport is not None
            server.transport.abort()
            return "421 4.3.0 closing"
        refused = _rule(self.owner.refuse, [address])
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _Protocol)
        refused = _rule(self.owner.refuse_data, envelope.rcpt_tos)
        if refused is not None:
            return refused
        drop = _rule(dict.fromkeys(self.owner.drop_after_dot, "drop"), envelope.rcpt_tos) is not None
        if not drop or self.owner.store_dropped:
            login = session.auth_data if isinstance(session.auth_data, str) else None
            self.owner._received(ReceivedMail(
                mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""), connection=server.number, login=login,
            ))
        if drop:  # the dot was read; the connection goes before any answer
            assert server.transport is not None
            server.transport.abort()
            return "421 4.3.0 closing"  # written to a closed transport: nobody reads it
        if self.owner.answer_after:
            await asyncio.sleep(self.owner.answer_after)
        return f"250 2.0.0 OK queued as {server.number}.{self.owner.count}"


def _rule(table: Mapping[str, str], addresses: Iterable[str]) -> str | None:
    """The entry of `table` for the first of `addresses` it names, else its "*" entry, else None."""
    for address in addresses:
        if address in table:
            return table[address]
    return table.get("*")


def main() -> None:
    parser = argparse.ArgumentParser(description="An SMTP server that counts what it receives.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--pipelining", action="store_true", help="offer PIPELINING (RFC 2920)")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SmtpServer(keep=False, pipelining=args.pipelining, port=args.port) as server:
        print(f"listening on {server.url}", flush=True)
        stop.wait()
        print(f"received {server.count} message(s) on {server.connections} connection(s)", flush=True)


if __name__ == "__main__":
    main()
