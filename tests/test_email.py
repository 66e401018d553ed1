"""The e-mail channel against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives is what the
law and RFC 8058 ask for, failures are classified for the ledger, and a message is stored by the
server only once the final dot of DATA was sent — after the ledger's `committing()`."""

from __future__ import annotations

import base64
import datetime as dt
import math
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest

from kizuna._errors import KizunaError
from kizuna.delivery import EmailSettings
from kizuna.delivery._base import DeliveryError, Message
from kizuna.delivery._email import (
    PASSWORD_ENV,
    DkimSigner,
    EmailSettingsError,
    SenderIdentity,
    compose_email,
    email_bytes,
)
from kizuna.delivery._smtp import SmtpTransport

from smtp_server import SmtpServer

IDENTITY = SenderIdentity("水のショップ <info@shop.example.jp>", "東京都千代田区丸の内1-1-1", "0120-000-000")
SUBJECT = "山田様、ご愛顧ありがとうございます — ご契約1周年の記念に、これまでのお得をまとめました"
NAME = '<b>&"'  # a customer's name that breaks HTML unless escaped


def message(n: int = 1, *, address: str | None = None, text: str | None = None, **fields) -> Message:
    ref = f"{n:032x}"
    defaults = dict(
        key=f"churn_to_loyal/1/c{n}/2026-11-30", ref=ref, customer_id=f"c{n}", channel="email",
        address=address or f"customer{n}@example.com", subject=SUBJECT,
        text=text if text is not None else f"{NAME} 様\n\nボトル入りの水と比べて ¥12,345 お得になりました。\n",
        unsubscribe_url=f"https://shop.example.jp/u/{ref}?s=x&t=1",
    )
    return Message(**{**defaults, **fields})


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def pipelining(request) -> bool:
    """Every transaction test runs twice: with a server that offers PIPELINING and one that does not."""
    return request.param


@pytest.fixture
def server(pipelining):
    with SmtpServer(pipelining=pipelining) as running:
        yield running


def transport(server: SmtpServer, **kwargs) -> SmtpTransport:
    return SmtpTransport(server.url, IDENTITY, timeout=5, **kwargs)


# ---- what arrives -------------------------------------------------------------------------


def test_a_marketing_email_arrives_with_unsubscribe_headers_both_parts_and_the_footer(server):
    sent = message(7)
    calls = []
    with transport(server) as smtp:
        receipt = smtp.send(sent, committing=lambda: calls.append(server.count))
    [mail] = server.wait_for(1)
    assert calls == [0]  # committing ran once, before the server stored the message
    assert (mail.mail_from, mail.rcpt_tos) == ("info@shop.example.jp", ("customer7@example.com",))
    received = mail.message()
    ref = "00000000000000000000000000000007"
    assert receipt.provider_id == received["Message-ID"] == f"<{ref}@shop.example.jp>"
    assert received["List-Unsubscribe"] == f"<https://shop.example.jp/u/{ref}?s=x&t=1>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["From"].addresses[0].display_name == "水のショップ"
    assert received["From"].addresses[0].addr_spec == "info@shop.example.jp"
    assert received["To"] == "customer7@example.com"
    assert received["Subject"] == SUBJECT
    assert parsedate_to_datetime(received["Date"]).tzinfo is not None
    assert received.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in received.iter_parts())

    text = received.get_body(("plain",)).get_content().replace("\r\n", "\n")  # base64 holds CRLF text
    assert text.startswith(f"{NAME} 様\n\nボトル入りの水と比べて ¥12,345 お得になりました。\n")
    for shown in ("水のショップ", "東京都千代田区丸の内1-1-1", "0120-000-000", "配信停止",
                  f"https://shop.example.jp/u/{ref}?s=x&t=1"):
        assert shown in text

    page = received.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "&lt;b&gt;&amp;&quot; 様" in page and NAME not in page
    assert f'<a href="https://shop.example.jp/u/{ref}?s=x&amp;t=1">' in page
    for shown in ("水のショップ", "東京都千代田区丸の内1-1-1", "0120-000-000"):
        assert shown in page


def test_every_line_of_the_raw_message_fits_smtp_and_the_header_is_ascii():
    raw = email_bytes(message(text="あ" * 400 + "\n" + "x" * 2000 + "\n"), IDENTITY)
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert head.isascii()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines if not line.startswith(b"List-Unsubscribe: ")) <= 78
    assert max(len(line) for line in lines) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


def test_the_same_delivery_always_has_the_same_message_id_and_body():
    first = email_bytes(message(3), IDENTITY, now=dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC))
    again = email_bytes(message(3), IDENTITY, now=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC))
    assert b"Message-ID: <00000000000000000000000000000003@shop.example.jp>\r\n" in first
    assert b"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n" in first
    assert first.replace(b"Mon, 30 Nov", b"Tue, 01 Dec") == again
    assert email_bytes(message(4), IDENTITY) != again


def test_sender_fields_are_escaped_in_html_and_quoted_in_from():
    identity = SenderIdentity('Tom & "Jerry", Ltd. <info@shop.example.jp>', "1 <Main> St & Co", "tel:03", lang="en")
    email = compose_email(message(text="Hello"), identity)
    assert email["From"].addresses[0].display_name == 'Tom & "Jerry", Ltd.'
    page = email.get_body(("html",)).get_content()
    assert "1 &lt;Main&gt; St &amp; Co" in page and "<Main>" not in page
    assert "Tom &amp; &quot;Jerry&quot;, Ltd." in page
    text = email.get_body(("plain",)).get_content()
    assert "Address: 1 <Main> St & Co" in text and "To stop receiving these e-mails" in text


def test_a_template_html_body_is_kept_and_the_footer_goes_before_its_end():
    html = '<html><body><h1>こんにちは</h1><p>&lt;b&gt; は既にエスケープ済み</p></BODY></html>'
    page = compose_email(message(html=html), IDENTITY).get_body(("html",)).get_content().replace("\r\n", "\n")
    assert page.startswith("<html><body><h1>こんにちは</h1><p>&lt;b&gt; は既にエスケープ済み</p>\n<hr")
    assert page.rstrip().endswith("</p>\n</BODY></html>")
    assert page.index("0120-000-000") < page.index("</BODY>")


def test_urls_in_a_text_only_message_become_links_in_the_html_part():
    email = compose_email(message(text="詳しくは https://shop.example.jp/a?b=1&c=2 をご覧ください。"), IDENTITY)
    page = email.get_body(("html",)).get_content()
    assert ('詳しくは <a href="https://shop.example.jp/a?b=1&amp;c=2">https://shop.example.jp/a?b=1&amp;c=2</a> '
            "をご覧ください。") in page


def test_a_transactional_email_has_no_unsubscribe_headers_and_needs_no_postal_address():
    email = compose_email(message(transactional=True, unsubscribe_url=None), SenderIdentity("Shop <a@shop.jp>"))
    assert "List-Unsubscribe" not in email and "List-Unsubscribe-Post" not in email
    assert "配信停止" not in email.get_body(("plain",)).get_content()


def test_lines_starting_with_a_dot_arrive_unchanged(server):
    text = ".\n..\n.hidden line\nend.\n"
    identity = SenderIdentity("Shop <info@shop.example.jp>", "1 Main St", "tel:03", lang="en")  # all ASCII: 7bit
    with SmtpTransport(server.url, identity) as smtp:
        smtp.send(message(text=text))
        sent = smtp.render(message(text=text))
    [mail] = server.wait_for(1)
    assert b"\r\n.\r\n..\r\n.hidden line\r\n" in sent  # a 7bit part: the dots go over the wire
    assert mail.data.replace(_date(mail.data), _date(sent)) == sent
    assert mail.message().get_body(("plain",)).get_content().replace("\r\n", "\n").startswith(text)


def _date(raw: bytes) -> bytes:
    return re.search(rb"\r\nDate: [^\r]*", raw).group()


# ---- the sender: 特定電子メール法 --------------------------------------------------------------


@pytest.mark.parametrize(("identity", "settings"), [
    (SenderIdentity("Shop <info@shop.example.jp>", "", "0120-000-000"), ("sender_address",)),
    (SenderIdentity("Shop <info@shop.example.jp>", "東京都", ""), ("sender_contact",)),
    (SenderIdentity("info@shop.example.jp", "東京都", "0120-000-000"), ("sender",)),
])
def test_a_marketing_email_without_the_legal_footer_is_refused(identity, settings):
    with pytest.raises(EmailSettingsError) as raised:
        email_bytes(message(), identity)
    assert isinstance(raised.value, KizunaError)
    assert raised.value.settings == settings
    assert f"[email] {settings[0]}" in str(raised.value) and "kizuna.toml" in str(raised.value)


def test_the_identity_comes_from_the_email_settings():
    settings = EmailSettings(**{
        "sender": "Shop <info@shop.example.jp>", "sender_address": "東京都", "sender_contact": "03-0000-0000"})
    identity = SenderIdentity.from_settings(settings, lang="en")
    assert (identity.name, identity.address, identity.domain) == ("Shop", "info@shop.example.jp", "shop.example.jp")
    assert (identity.postal_address, identity.contact, identity.lang) == ("東京都", "03-0000-0000", "en")
    with pytest.raises(EmailSettingsError, match=r"set \[email\] sender = "):
        SenderIdentity.from_settings(EmailSettings())
    with pytest.raises(EmailSettingsError, match="not a mailbox"):
        SenderIdentity("Shop <not an address>")


# ---- DKIM ---------------------------------------------------------------------------------


def test_a_dkim_signed_email_verifies_with_the_published_key_and_signs_the_unsubscribe_headers(server, tmp_path):
    private_pem, public_txt = rsa_test_key()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "dkim.pem").write_bytes(private_pem)
    settings = EmailSettings(**{
        "smtp_url": server.url, "sender": "Shop <info@shop.example.jp>", "sender_address": "東京都",
        "sender_contact": "03", "dkim_domain": "shop.example.jp", "dkim_selector": "k1",
        "dkim_key_file": "keys/dkim.pem"})
    with SmtpTransport.from_settings(settings, tmp_path) as smtp:
        smtp.send(message())
    raw = server.wait_for(1)[0].data

    def dns(name: bytes, timeout: float = 5) -> bytes | None:
        return public_txt if name == b"k1._domainkey.shop.example.jp." else None

    assert dkim.verify(raw, dnsfunc=dns)
    signature = mail_header(raw, b"DKIM-Signature")
    signed = re.search(rb"h=([^;]+);", signature).group(1).replace(b" ", b"").split(b":")
    assert {b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
            b"list-unsubscribe-post"} <= set(signed)
    assert b"d=shop.example.jp;" in signature and b"s=k1;" in signature
    forged = raw.replace(b"List-Unsubscribe: <https://shop.example.jp/",
                         b"List-Unsubscribe: <https://evil.example.jp/")
    assert forged != raw and not dkim.verify(forged, dnsfunc=dns)


def test_dkim_settings_must_be_complete_and_the_key_readable(tmp_path):
    partial = EmailSettings(**{"dkim_domain": "shop.example.jp"})
    with pytest.raises(EmailSettingsError, match="fill in .email. dkim_selector, dkim_key_file") as raised:
        DkimSigner.from_settings(partial, tmp_path)
    assert raised.value.settings == ("dkim_selector", "dkim_key_file")
    assert DkimSigner.from_settings(EmailSettings(), tmp_path) is None
    (tmp_path / "bad.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    bad = EmailSettings(**{"dkim_domain": "d.jp", "dkim_selector": "s", "dkim_key_file": "bad.pem"})
    with pytest.raises(EmailSettingsError, match="does not hold an RSA private key"):
        DkimSigner.from_settings(bad, tmp_path)
    missing = EmailSettings(**{"dkim_domain": "d.jp", "dkim_selector": "s", "dkim_key_file": "no.pem"})
    with pytest.raises(EmailSettingsError, match=re.escape(f"{tmp_path / 'no.pem'} cannot be read")):
        DkimSigner.from_settings(missing, tmp_path)


def mail_header(raw: bytes, name: bytes) -> bytes:
    """One header of a raw message, unfolded."""
    match = re.search(rb"(?im)^" + name + rb":((?:[^\r\n]|\r\n[ \t])*)", raw)
    assert match, name
    return match.group(1).replace(b"\r\n", b"")


def rsa_test_key(bits: int = 1024) -> tuple[bytes, bytes]:
    """A throwaway RSA key: the PKCS#1 PEM, and the DNS TXT record publishing its public half.

    Written here because the venv has no `cryptography`; the primes are found with Miller–Rabin.
    """
    rng, e = random.Random(11), 65537
    while True:
        p, q = _prime(bits // 2, rng), _prime(bits // 2, rng)
        if p != q and math.gcd(e, (p - 1) * (q - 1)) == 1:
            break
    n, d = p * q, pow(e, -1, (p - 1) * (q - 1))
    key = _der(0x30, b"".join(_der_int(v) for v in (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))))
    pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + base64.encodebytes(key) + b"-----END RSA PRIVATE KEY-----\n"
    rsa_encryption = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + _der(0x05, b""))
    spki = _der(0x30, rsa_encryption + _der(0x03, b"\x00" + _der(0x30, _der_int(n) + _der_int(e))))
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


def _prime(bits: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # two top bits: n has all its bits
        if all(candidate % small for small in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)) and _probably_prime(
                candidate, rng):
            return candidate


def _probably_prime(n: int, rng: random.Random, rounds: int = 32) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 0x80 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
        (size.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# ---- the connection ---------------------------------------------------------------------------


def test_one_connection_carries_every_message(server, pipelining):
    with transport(server) as smtp:
        for n in range(1, 21):
            smtp.send(message(n))
            assert smtp.pipelining is pipelining
    mails = server.wait_for(20)
    assert [m.rcpt_tos[0] for m in mails] == [f"customer{n}@example.com" for n in range(1, 21)]
    assert {m.connection for m in mails} == {1} and server.connections == 1


@pytest.mark.parametrize("goodbye", [None, "421 4.4.2 smtp.kizuna.test Error: timeout exceeded"])
def test_a_connection_the_server_dropped_is_reopened_once(server, goodbye):
    with transport(server) as smtp:
        smtp.send(message(1))
        server.wait_for(1)
        server.drop_connections(reply=goodbye)
        smtp.send(message(2))
    assert [m.connection for m in server.wait_for(2)] == [1, 2]


def test_auth_logs_in_with_the_password_from_the_environment(monkeypatch, pipelining):
    with SmtpServer(user="shop", password="s3cret pass", pipelining=pipelining) as server:
        monkeypatch.setenv(PASSWORD_ENV, "s3cret pass")
        settings = EmailSettings(**{"smtp_url": server.url, "sender": "Shop <info@shop.example.jp>",
                                                 "sender_address": "東京都", "sender_contact": "03"})
        with SmtpTransport.from_settings(settings, Path(".")) as smtp:
            smtp.send(message())
        assert server.wait_for(1)[0].login == "shop"

        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        with pytest.raises(EmailSettingsError, match=f"refused the login of 'shop' .535.*{PASSWORD_ENV}"):
            SmtpTransport.from_settings(settings, Path(".")).send(message(2))
        # without logging in, the server answers MAIL with 530: the run stops, the message is not failed
        with pytest.raises(EmailSettingsError, match="refused the sender info@shop.example.jp .530"):
            SmtpTransport(f"smtp://127.0.0.1:{server.port}", IDENTITY).send(message(3))
        assert server.count == 1


@pytest.mark.parametrize(("url", "error"), [
    ("smtp://shop@127.0.0.1:2525", f"{PASSWORD_ENV} is not set"),
    ("smtp://shop:pw@127.0.0.1:2525", "holds a password"),
    ("smtp://shop@mail.example.jp:587", "password in the clear"),
    ("smtps://mail.example.jp:465", None),
    ("http://mail.example.jp", "is not an SMTP server"),
    ("smtp://mail.example.jp:99999", "is not an SMTP server"),
])
def test_smtp_url_is_checked_before_connecting(monkeypatch, url, error):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    if error is None:
        made = SmtpTransport(url, IDENTITY)
        assert (made.host, made.port, made.implicit_tls, made.user) == ("mail.example.jp", 465, True, None)
        return
    with pytest.raises(EmailSettingsError, match=error):
        SmtpTransport(url, IDENTITY)


def test_no_smtp_url_means_no_email():
    with pytest.raises(EmailSettingsError, match=r"set \[email\] smtp_url = "):
        SmtpTransport.from_settings(EmailSettings(), Path("."))


# ---- failures, as the ledger sees them ------------------------------------------------------------


def test_an_unknown_recipient_fails_only_its_message_and_the_connection_goes_on(pipelining):
    refuse = {"nobody@example.com": "550 5.1.1 <nobody@example.com>: no such user"}
    with SmtpServer(refuse=refuse, pipelining=pipelining) as server:
        calls = []
        with transport(server) as smtp:
            smtp.send(message(1))
            with pytest.raises(DeliveryError) as raised:
                smtp.send(message(2, address="nobody@example.com"), committing=lambda: calls.append(2))
            smtp.send(message(3))
        mails = server.wait_for(2)
    assert raised.value.permanent and raised.value.status == 550
    assert raised.value.reason == "RCPT TO: 550 5.1.1 <nobody@example.com>: no such user"
    assert calls == []
    assert [(m.rcpt_tos, m.connection) for m in mails] == [(("customer1@example.com",), 1),
                                                           (("customer3@example.com",), 1)]


def test_a_4xx_reply_is_temporary(pipelining):
    refuse = {"busy@example.com": "451 4.3.0 try again later"}
    with SmtpServer(refuse=refuse, pipelining=pipelining) as server, transport(server) as smtp:
        with pytest.raises(DeliveryError) as raised:
            smtp.send(message(address="busy@example.com"))
        assert not raised.value.permanent and raised.value.status == 451
        smtp.send(message(2))
        assert server.wait_for(1)[0].connection == 1


def test_a_message_refused_after_its_final_dot_fails_permanently_after_committing(pipelining):
    refuse = {"spam@example.com": "554 5.7.1 message content rejected"}
    with SmtpServer(refuse_data=refuse, pipelining=pipelining) as server, transport(server) as smtp:
        calls = []
        with pytest.raises(DeliveryError) as raised:
            smtp.send(message(address="spam@example.com"), committing=lambda: calls.append(1))
        assert raised.value.permanent and raised.value.status == 554 and calls == [1]
        assert raised.value.reason == "end of DATA: 554 5.7.1 message content rejected"
        smtp.send(message(2))
        assert [(m.rcpt_tos, m.connection) for m in server.wait_for(1)] == [(("customer2@example.com",), 1)]


def test_a_4xx_reply_to_the_final_dot_is_an_answer_not_a_maybe(pipelining):
    refuse = {"busy@example.com": "451 4.3.0 queue full, try again later"}
    with SmtpServer(refuse_data=refuse, pipelining=pipelining) as server, transport(server) as smtp:
        calls = []
        with pytest.raises(DeliveryError) as raised:
            smtp.send(message(address="busy@example.com"), committing=lambda: calls.append(1))
        error = raised.value
        assert (error.permanent, error.maybe_delivered, error.status, calls) == (False, False, 451, [1])
        assert error.reason == "end of DATA: 451 4.3.0 queue full, try again later"
        smtp.send(message(2))
        assert [m.connection for m in server.wait_for(1)] == [1]  # the session goes on


@pytest.mark.parametrize("stored", [False, True])
def test_a_connection_dropped_after_the_final_dot_may_have_delivered_and_is_not_retried(pipelining, stored):
    with SmtpServer(drop_after_dot={"lost@example.com"}, store_dropped=stored, pipelining=pipelining) as server:
        calls = []
        with transport(server) as smtp:
            with pytest.raises(DeliveryError) as raised:
                smtp.send(message(1, address="lost@example.com"), committing=lambda: calls.append(1))
            assert server.connections == 1  # not sent again on a new connection: the server may have it
            smtp.send(message(2))
        mails = server.wait_for(2 if stored else 1)
    error = raised.value
    assert error.maybe_delivered and not error.permanent and error.status is None and calls == [1]
    assert "lost after the final dot" in error.reason
    assert [m.rcpt_tos[0] for m in mails] == (["lost@example.com"] if stored else []) + ["customer2@example.com"]
    assert mails[-1].connection == 2


def test_no_answer_to_the_final_dot_within_the_timeout_may_have_delivered():
    with SmtpServer(answer_after=1.0) as server, pytest.raises(DeliveryError) as raised:
        SmtpTransport(server.url, IDENTITY, timeout=0.2).send(message(1))
    assert raised.value.maybe_delivered and not raised.value.permanent


@pytest.mark.parametrize(("reply", "channel_wide"), [
    ("554 5.7.1 <x@example.com>: Relay access denied", True),
    ("550 5.7.1 Unable to relay", True),
    ("530 5.7.0 Authentication required", True),
    ("550 relaying denied", True),
    ("550 5.7.606 Access denied, banned sending IP", True),
    ("550 5.1.1 <x@example.com>: Recipient address rejected: User unknown", False),
    ("550 5.1.1 <relay@example.com>: no such user", False),  # "relay" in the address says nothing
    ("552 5.2.2 mailbox full", False),
])
def test_a_5xx_at_rcpt_about_the_channel_is_not_the_messages_failure(pipelining, reply, channel_wide):
    with (SmtpServer(refuse={"*": reply}, pipelining=pipelining) as server, transport(server) as smtp,
          pytest.raises(DeliveryError) as raised):
        smtp.send(message(1))
    error = raised.value
    assert (error.channel_wide, error.permanent, error.status) == (channel_wide, not channel_wide, int(reply[:3]))
    assert error.reason == f"RCPT TO: {reply}"


def test_a_connection_killed_mid_transaction_is_a_temporary_error_and_nothing_is_committed(pipelining):
    with SmtpServer(drop={"crash@example.com"}, pipelining=pipelining) as server, transport(server) as smtp:
        calls = []
        with pytest.raises(DeliveryError) as raised:
            smtp.send(message(address="crash@example.com"), committing=lambda: calls.append(1))
        assert not raised.value.permanent and "broke twice" in raised.value.reason
        assert calls == [] and server.connections == 2  # tried once more on a new connection
        smtp.send(message(2))
        assert server.wait_for(1)[0].rcpt_tos == ("customer2@example.com",)


def test_a_server_that_is_not_there_is_a_temporary_error():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(DeliveryError) as raised:
            SmtpTransport(f"smtp://127.0.0.1:{port}", IDENTITY).send(message())
    assert not raised.value.permanent and f"cannot reach the SMTP server 127.0.0.1:{port}" in raised.value.reason


def test_a_server_that_does_not_answer_times_out_as_a_temporary_error():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        with pytest.raises(DeliveryError) as raised:
            SmtpTransport(f"smtp://127.0.0.1:{port}", IDENTITY, timeout=0.3).send(message())
    assert not raised.value.permanent and "timed out" in raised.value.reason


def test_an_unusable_address_is_a_permanent_error_before_connecting():
    smtp = SmtpTransport("smtp://127.0.0.1:9", IDENTITY)  # nothing listens: connecting would fail
    for address in ("taro", "taro yamada@example.com", "太郎@example.com", "a@b@example.com"):
        with pytest.raises(DeliveryError) as raised:
            smtp.send(message(address=address))
        assert raised.value.permanent and address not in raised.value.reason


def test_an_international_domain_is_sent_in_ascii(server):
    with transport(server) as smtp:
        smtp.send(message(address="taro@日本語.jp"))
    mail = server.wait_for(1)[0]
    assert mail.rcpt_tos == ("taro@xn--wgv71a119e.jp",) and mail.message()["To"] == "taro@xn--wgv71a119e.jp"


# ---- the commit point ---------------------------------------------------------------------------


def test_if_committing_fails_the_server_stores_nothing_and_the_error_is_the_ledgers(server):
    def ledger_down():
        raise RuntimeError("ledger is locked")

    with transport(server) as smtp:
        with pytest.raises(RuntimeError, match="ledger is locked"):
            smtp.send(message(1), committing=ledger_down)
        smtp.send(message(2))  # on a new connection
    mails = server.wait_for(1)
    assert [m.rcpt_tos for m in mails] == [("customer2@example.com",)] and mails[0].connection == 2


def test_a_process_killed_before_the_final_dot_leaves_nothing_on_the_server(server):
    """The property the ledger relies on: the body went out, `committing()` ran, the process
    died (SIGKILL) before the final "." — the server must not deliver the message."""
    child = textwrap.dedent(f"""
        import os, signal
        from kizuna.delivery._base import Message
        from kizuna.delivery._email import SenderIdentity
        from kizuna.delivery._smtp import SmtpTransport
        message = Message(key="k", ref="{'a' * 32}", customer_id="c", channel="email",
                          address="killed@example.com", subject="s", text="t" * 5000, transactional=True)
        transport = SmtpTransport({server.url!r}, SenderIdentity("Shop <info@shop.example.jp>"))
        transport.send(message, committing=lambda: os.kill(os.getpid(), signal.SIGKILL))
        raise SystemExit("committing() was not called")
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with transport(server) as smtp:
        smtp.send(message(2))
    mails = server.wait_for(1)  # the later message arrived, so the killed one had its chance
    assert [m.rcpt_tos for m in mails] == [("customer2@example.com",)]
    assert server.connections == 2
