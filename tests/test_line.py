"""The LINE channel against a real local HTTP server that keeps LINE's push contract, and the webhook signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from kizuna._errors import KizunaError
from kizuna.delivery._base import DeliveryError, Message
from kizuna.delivery._line import LineSettingsError, LineTransport, line_text_length
from kizuna.delivery._line_webhook import (
    WebhookPayloadError,
    channel_secret,
    parse_events,
    verify_signature,
)
from kizuna.workspace import Settings

from line_server import PUSH_PATH, LineServer
from servers import free_port

TOKEN = "kizuna-test-token"
USER = "U" + "4af4980629" + "0" * 22  # U + 32 hex digits, like a real LINE user id


def message(text: str = "いつもご利用ありがとうございます。", *, address: str = USER,
            ref: str | None = None) -> Message:
    return Message(key="s/1/c1/2026-11-30", ref=ref or uuid.uuid4().hex, customer_id="c1", channel="line",
                   address=address, subject="", text=text)


@pytest.fixture
def line() -> Iterator[LineServer]:
    with LineServer(token=TOKEN) as server:
        yield server


def transport(server: LineServer, **options) -> LineTransport:
    options.setdefault("token", TOKEN)
    options.setdefault("base_delay", 0.05)
    return LineTransport(server.api_base, **options)


def gaps(server: LineServer) -> list[float]:
    times = [r.at for r in server.requests]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# -- sending -------------------------------------------------------------------------------------


def test_push_arrives_with_bearer_retry_key_and_text(line: LineServer) -> None:
    msg = message(ref="0123456789abcdef0123456789abcdef")
    seen_before_post: list[int] = []
    with transport(line) as sender:
        receipt = sender.send(msg, committing=lambda: seen_before_post.append(len(line.requests)))
    [push] = line.pushes
    assert (push.to, push.text) == (USER, "いつもご利用ありがとうございます。")
    assert push.messages == [{"type": "text", "text": "いつもご利用ありがとうございます。"}]
    assert push.retry_key == "01234567-89ab-cdef-0123-456789abcdef"  # the ref, as a UUID
    [request] = line.requests
    assert request.authorization == f"Bearer {TOKEN}"
    assert receipt.provider_id == push.request_id and not receipt.already_accepted
    assert seen_before_post == [0]  # committing ran once, before the request


def test_token_comes_from_the_environment(line: LineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_LINE_TOKEN", TOKEN)
    with LineTransport(line.api_base) as sender:
        sender.send(message())
    assert [r.authorization for r in line.requests] == [f"Bearer {TOKEN}"]
    assert TOKEN not in repr(sender)


def test_api_base_comes_from_the_settings(line: LineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_LINE_TOKEN", TOKEN)
    settings = Settings.from_dict({"line": {"api_base": line.api_base}})
    with LineTransport.from_settings(settings.line) as sender:
        sender.send(message())
    assert len(line.pushes) == 1
    assert Settings().line.api_base == "https://api.line.me"


def test_missing_token_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIZUNA_LINE_TOKEN", raising=False)
    with pytest.raises(LineSettingsError, match="KIZUNA_LINE_TOKEN is not set") as caught:
        LineTransport("http://127.0.0.1:1")
    assert caught.value.variable == "KIZUNA_LINE_TOKEN" and isinstance(caught.value, KizunaError)


def test_one_connection_serves_many_pushes(line: LineServer) -> None:
    with transport(line) as sender:
        receipts = [sender.send(message(f"お知らせ {i}")) for i in range(20)]
    assert [p.text for p in line.pushes] == [f"お知らせ {i}" for i in range(20)]
    assert len({r.provider_id for r in receipts}) == 20


def test_reused_retry_key_is_already_accepted_with_the_first_request_id(line: LineServer) -> None:
    msg = message()
    with transport(line) as sender:
        first = sender.send(msg)
    with transport(line) as sender:  # as a run started again after a crash would
        again = sender.send(msg)
    assert again.already_accepted and again.provider_id == first.provider_id
    assert len(line.pushes) == 1
    assert [r.status for r in line.requests] == [200, 409]


def test_lost_answer_is_resent_and_found_already_accepted(line: LineServer) -> None:
    line.fail_next(1, 500, accept=True)  # LINE took the push but answered 500
    with transport(line) as sender:
        receipt = sender.send(message())
    [push] = line.pushes
    assert receipt.already_accepted and receipt.provider_id == push.request_id
    assert [r.status for r in line.requests] == [500, 409]


def test_retry_key_expires_after_its_ttl() -> None:
    msg = message()
    with LineServer(token=TOKEN, retry_key_ttl=0.2) as line:
        with transport(line) as sender:
            sender.send(msg)
            time.sleep(0.3)
            receipt = sender.send(msg)
        assert not receipt.already_accepted
        assert len(line.pushes) == 2


# -- backoff -------------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_delivered(line: LineServer) -> None:
    line.fail_next(1, 429, retry_after=1)
    with transport(line, base_delay=0.01) as sender:
        receipt = sender.send(message())
    assert [r.status for r in line.requests] == [429, 200]
    [gap] = gaps(line)
    assert 1.0 <= gap < 3.0  # waited what LINE asked, not the 0.01 s backoff (late on a loaded machine, never early)
    assert receipt.provider_id == line.pushes[0].request_id


def test_retry_after_as_an_http_date(line: LineServer) -> None:
    when = time.time() + 2
    line.fail_next(1, 429, retry_after=time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when)))
    with transport(line, base_delay=0.01) as sender:
        sender.send(message())
    [gap] = gaps(line)
    assert 0.9 <= gap < 2.3  # the date has whole seconds: 1 to 2 s from now


def test_429_without_retry_after_backs_off_exponentially_with_jitter(line: LineServer) -> None:
    line.fail_next(3, 429)
    with transport(line, base_delay=0.2, max_attempts=4) as sender:
        sender.send(message())
    assert [r.status for r in line.requests] == [429, 429, 429, 200]
    # waits of 0.2, 0.4, 0.8 s, each scaled by a random factor in [0.5, 1]; a loaded machine wakes a
    # sleeper late, never early, so only the lower bound is tight (the upper one catches a runaway wait)
    for gap, ceiling in zip(gaps(line), (0.2, 0.4, 0.8), strict=True):
        assert ceiling * 0.5 <= gap < ceiling + 1.5


def test_500s_give_a_non_permanent_error_after_the_bounded_attempts(line: LineServer) -> None:
    line.fail_next(10, 500)
    seen: list[int] = []
    with transport(line, max_attempts=3) as sender, pytest.raises(DeliveryError) as caught:
        sender.send(message(), committing=lambda: seen.append(1))
    assert not caught.value.permanent and caught.value.status == 500
    assert "Internal server error" in caught.value.reason and "attempt 3" in caught.value.reason
    assert len(line.requests) == 3 and line.pushes == []
    assert seen == [1]  # once, not per attempt


def test_total_wait_is_bounded(line: LineServer) -> None:
    line.fail_next(10, 507)  # any 5xx
    started = time.monotonic()
    with transport(line, base_delay=0.2, max_attempts=50, max_wait=0.5) as sender, \
            pytest.raises(DeliveryError) as caught:
        sender.send(message())
    elapsed = time.monotonic() - started
    assert not caught.value.permanent
    assert 0.5 <= elapsed < 1.0
    assert 2 <= len(line.requests) <= 4  # 0.1-0.2 s, then 0.2-0.4 s, then what is left of 0.5 s


def test_retry_after_beyond_the_budget_stops_at_once(line: LineServer) -> None:
    line.fail_next(1, 429, retry_after=30)
    started = time.monotonic()
    with transport(line, max_wait=5) as sender, pytest.raises(DeliveryError) as caught:
        sender.send(message())
    assert time.monotonic() - started < 0.5
    assert not caught.value.permanent and caught.value.status == 429
    assert "asked to wait 30 s" in caught.value.reason
    assert len(line.requests) == 1


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    sender = LineTransport("http://127.0.0.1:1", token=TOKEN, base_delay=1.0, max_delay=5.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        waits = [sender._backoff(attempt) for _ in range(200)]
        assert ceiling * 0.5 <= min(waits) and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling * 0.3  # spread: senders do not retry in step


def test_unreachable_server_is_not_permanent() -> None:
    sender = LineTransport(f"http://127.0.0.1:{free_port()}", token=TOKEN, max_attempts=2, base_delay=0.01)
    with sender, pytest.raises(DeliveryError) as caught:
        sender.send(message())
    assert not caught.value.permanent and caught.value.status is None
    assert "could not be reached" in caught.value.reason


# -- permanent failures --------------------------------------------------------------------------


def test_invalid_user_id_is_permanent_with_lines_message(line: LineServer) -> None:
    with transport(line) as sender, pytest.raises(DeliveryError) as caught:
        sender.send(message(address="not-a-line-user"))
    assert caught.value.permanent and caught.value.status == 400
    assert "The property, 'to', in the request body is invalid" in caught.value.reason
    assert len(line.requests) == 1 and line.pushes == []


def test_bad_token_is_permanent(line: LineServer) -> None:
    with LineTransport(line.api_base, token="wrong") as sender, pytest.raises(DeliveryError) as caught:
        sender.send(message())
    assert caught.value.permanent and caught.value.status == 401
    assert "Authentication failed" in caught.value.reason and "KIZUNA_LINE_TOKEN" in caught.value.reason
    assert line.pushes == [] and len(line.requests) == 1


def test_other_4xx_is_permanent_with_lines_details(line: LineServer) -> None:
    # LINE counts a LINE emoji by its undisclosed alternative text: it may refuse what looked short enough
    line.fail_next(1, 400, body={"message": "The request body has 1 error(s)", "details": [
        {"message": "Length must be between 0 and 5000", "property": "messages[0].text"}]})
    line.fail_next(1, 403)
    with transport(line) as sender:
        for status, expected in ((400, "The request body has 1 error(s) (messages[0].text: Length must be between "
                                       "0 and 5000)"),
                                 (403, "Access to this API is not available for your account")):
            with pytest.raises(DeliveryError) as caught:
                sender.send(message())
            assert caught.value.permanent and caught.value.status == status
            assert caught.value.reason == f"LINE refused the message ({status}): {expected}"
    assert len(line.requests) == 2 and line.pushes == []


def test_text_over_lines_limit_is_refused_before_sending(line: LineServer) -> None:
    committed: list[int] = []
    with transport(line) as sender, pytest.raises(DeliveryError) as caught:
        sender.send(message("🍎" * 2500 + "あ"), committing=lambda: committed.append(1))  # 5,001 UTF-16 units
    assert caught.value.permanent and "5,001 characters" in caught.value.reason
    assert line.requests == [] and committed == []


def test_text_at_lines_limit_is_sent(line: LineServer) -> None:
    text = "🍎" * 2500  # 2,500 characters in Python, 5,000 for LINE
    assert line_text_length(text) == 5000
    with transport(line) as sender:
        sender.send(message(text))
    assert line.pushes[0].text == text


def test_empty_address_is_permanent(line: LineServer) -> None:
    with transport(line) as sender, pytest.raises(DeliveryError, match="no LINE user id") as caught:
        sender.send(message(address=""))
    assert caught.value.permanent and line.requests == []


# -- the local server keeps LINE's contract --------------------------------------------------------


def post(server: LineServer, body: object, retry_key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if retry_key is not None:
        headers["X-Line-Retry-Key"] = retry_key
    return httpx.post(server.api_base + PUSH_PATH, json=body, headers=headers)


@pytest.mark.parametrize(("body", "property_"), [
    ({"to": USER, "messages": []}, "messages"),
    ({"to": USER, "messages": [{"type": "text", "text": "x"}] * 6}, "messages"),
    ({"to": USER}, "messages"),
    ({"messages": [{"type": "text", "text": "x"}]}, "to"),
    ({"to": USER, "messages": [{"text": "x"}]}, "messages[0].type"),
    ({"to": USER, "messages": [{"type": "text"}]}, "messages[0].text"),
    ({"to": USER, "messages": [{"type": "text", "text": "x"}, {"type": "text", "text": "y" * 5001}]},
     "messages[1].text"),
])
def test_server_rejects_bodies_outside_the_schema(line: LineServer, body: dict, property_: str) -> None:
    response = post(line, body)
    assert response.status_code == 400
    error = response.json()
    assert error["message"] == "The request body has 1 error(s)"
    assert [d["property"] for d in error["details"]] == [property_]
    assert line.pushes == []


def test_server_rejects_a_retry_key_that_is_not_a_uuid(line: LineServer) -> None:
    response = post(line, {"to": USER, "messages": [{"type": "text", "text": "x"}]}, retry_key="abc")
    assert response.status_code == 400 and "X-Line-Retry-Key" in response.json()["message"]


def test_server_answers_every_push_with_a_request_id(line: LineServer) -> None:
    ok = post(line, {"to": USER, "messages": [{"type": "text", "text": "x"}]})
    assert ok.status_code == 200 and ok.headers["x-line-request-id"]
    assert len(ok.json()["sentMessages"]) == 1
    unauthorised = httpx.post(line.api_base + PUSH_PATH, json={}, headers={"Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401 and set(unauthorised.json()) == {"message"}


# -- webhook -------------------------------------------------------------------------------------

SECRET = "kizuna-channel-secret"
BODY = (b'{"destination":"U0123456789abcdef0123456789abcdef","events":[{"type":"follow",'
        b'"webhookEventId":"01HZ7Q3K8V0000000000000000"}]}')
# computed outside Python: printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
BODY_SIGNATURE = "DVT+iaSmAl2rCpIIFixFTE7uI7kLC0L+wMiQGgnTdIk="


def test_signature_pinned_by_hand() -> None:
    by_hand = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()).decode()
    assert by_hand == BODY_SIGNATURE
    assert verify_signature(BODY, BODY_SIGNATURE, SECRET)


@pytest.mark.parametrize(("body", "signature", "secret"), [
    (BODY.replace(b"follow", b"unfollow"), BODY_SIGNATURE, SECRET),  # tampered body
    (BODY + b" ", BODY_SIGNATURE, SECRET),  # one byte more
    (BODY, BODY_SIGNATURE, "another-channel-secret"),  # wrong secret
    (BODY, None, SECRET),  # no header
    (BODY, "", SECRET),
    (BODY, "not base64 at all", SECRET),
    (BODY, "DVT+iaSmAl2rCpIIFixFTE7uI7kLC0L+wMiQGgnTdIk", SECRET),  # padding cut off
    (BODY, "ＤVT+iaSmAl2rCpIIFixFTE7uI7kLC0L+wMiQGgnTdIk=", SECRET),  # a non-ASCII look-alike
])
def test_signature_rejects(body: bytes, signature: str | None, secret: str) -> None:
    assert verify_signature(body, signature, secret) is False


def test_empty_channel_secret_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KizunaError, match="KIZUNA_LINE_SECRET"):
        verify_signature(BODY, BODY_SIGNATURE, "")
    monkeypatch.delenv("KIZUNA_LINE_SECRET", raising=False)
    with pytest.raises(KizunaError, match="KIZUNA_LINE_SECRET is not set"):
        channel_secret()
    monkeypatch.setenv("KIZUNA_LINE_SECRET", SECRET)
    assert channel_secret() == SECRET


def test_parse_events_reads_lines_fields_and_keeps_unknown_types() -> None:
    events = [
        {"type": "follow", "mode": "active", "timestamp": 1_764_460_800_000, "webhookEventId": "01KB0A",
         "source": {"type": "user", "userId": USER}, "deliveryContext": {"isRedelivery": False},
         "replyToken": "r", "follow": {"isUnblocked": True}},
        {"type": "unfollow", "mode": "active", "timestamp": 1_764_460_801_000, "webhookEventId": "01KB0B",
         "source": {"type": "user", "userId": USER}, "deliveryContext": {"isRedelivery": True}},
        {"type": "somethingNew", "mode": "standby", "timestamp": 1_764_460_802_000, "webhookEventId": "01KB0C",
         "source": {"type": "group", "groupId": "C" + "0" * 32}, "deliveryContext": {"isRedelivery": False}},
    ]
    parsed = parse_events(json.dumps({"destination": "U" + "f" * 32, "events": events}).encode())
    assert [(e.event_id, e.type, e.user_id, e.timestamp, e.is_redelivery, e.mode) for e in parsed] == [
        ("01KB0A", "follow", USER, 1_764_460_800_000, False, "active"),
        ("01KB0B", "unfollow", USER, 1_764_460_801_000, True, "active"),
        ("01KB0C", "somethingNew", None, 1_764_460_802_000, False, "standby"),
    ]
    assert parsed[0].occurred_at.isoformat() == "2025-11-30T00:00:00+00:00"
    assert parsed[0].raw["follow"] == {"isUnblocked": True}


def test_parse_events_of_lines_url_check_is_empty() -> None:
    assert parse_events(b'{"destination":"U' + b"0" * 32 + b'","events":[]}') == []


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"destination":"U0"}', b'{"events":{}}'])
def test_parse_events_rejects_what_is_not_a_webhook(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_events(body)
