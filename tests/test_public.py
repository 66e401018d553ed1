"""The public endpoints: NPS survey, one-click unsubscribe, LINE webhook, rate limits, no leaks.

In-process through httpx.ASGITransport on a bare Starlette app of the public routes, then over
real HTTP: a uvicorn server in a thread, and a uvicorn server process recording answers while
another process writes the ledger.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from starlette.applications import Starlette

from kizuna.operations import OPERATIONS_FILE, Operations, now_ts
from kizuna.web._public import AccessLogFilter, PublicState, RateLimiter, public_routes
from kizuna.workspace import SETTINGS_FILE, Settings

from servers import free_port

PUBLIC_URL = "https://shop.example.jp/kizuna"
LINE_SECRET = "line-channel-secret-for-tests"
USER = "U" + "4af4980629" + "0" * 22
CLIENT = ("192.0.2.10", 50000)


# -- helpers ----------------------------------------------------------------------------------


def make_workspace(path: Path, public_url: str = PUBLIC_URL) -> Path:
    """A workspace folder with kizuna.toml only: the public endpoints never open the store."""
    path.mkdir(parents=True, exist_ok=True)
    (path / SETTINGS_FILE).write_text(Settings().replace(web={"public_url": public_url}).to_toml(),
                                      encoding="utf-8")
    return path


def add_delivery(ops: Operations, customer_id: str, channel: str = "email", ref: str | None = None) -> str:
    """One sent message in the ledger, as `kizuna run` writes it; its ref."""
    ref = ref or uuid.uuid4().hex
    now = now_ts()
    with ops.write() as db:
        db.execute(
            "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, channel, grp, "
            "status, due_ts, created_ts, updated_ts, sent_ts) VALUES (?, ?, 'thanks', 1, ?, ?, ?, ?, 'treated', "
            "'sent', ?, ?, ?, ?)",
            (f"thanks/1/{customer_id}/{ref}", ref, customer_id, f"order:{ref}", now, channel, now, now, now, now),
        )
    return ref


class Client:
    """A synchronous HTTP client on the ASGI app, from one client address, with no cookies kept."""

    def __init__(self, app, client: tuple[str, int] = CLIENT) -> None:
        self.app, self.client = app, client

    def request(self, method: str, url: str, **options) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                return await http.request(method, url, **options)

        return anyio.run(go)

    def get(self, url: str, **options) -> httpx.Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options) -> httpx.Response:
        return self.request("POST", url, **options)


@dataclasses.dataclass
class Site:
    state: PublicState
    http: Client

    @property
    def ops(self) -> Operations:
        return self.state.operations

    def survey_path(self, customer_id: str = "C001", touchpoint: str = "delivery") -> tuple[str, str]:
        ref = self.ops.survey_link(customer_id, touchpoint, scenario="detractor_follow_up")
        return ref, path_of(self.state.links.survey_url(ref))

    def unsubscribe_path(self, customer_id: str = "C001", channel: str = "email") -> str:
        return path_of(self.state.links.unsubscribe_url(add_delivery(self.ops, customer_id, channel)))


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL)
    return url[len(PUBLIC_URL):]


def form_field(html: str) -> str:
    return re.search(r'name="form" value="([0-9a-f]+)"', html).group(1)


def answers(ops: Operations) -> list[dict]:
    return [dict(r) for r in ops.query("SELECT ref, customer_id, score, comment, touchpoint, answered_ts "
                                       "FROM survey_answers ORDER BY answered_ts, ref")]


def consent_rows(ops: Operations) -> list[dict]:
    return [dict(r) for r in ops.query("SELECT channel, subject, opted_in, source, changed_ts FROM consents "
                                       "ORDER BY channel, subject")]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("KIZUNA_LINE_SECRET", LINE_SECRET)
    state = PublicState.from_workspace(make_workspace(tmp_path / "shop"))
    yield Site(state, Client(Starlette(routes=public_routes(state))))
    state.operations.close()


# -- the survey -------------------------------------------------------------------------------


def test_survey_form_is_japanese_by_default_english_on_request(site: Site) -> None:
    _, path = site.survey_path()
    ja = site.http.get(path)
    assert ja.status_code == 200
    assert '<html lang="ja">' in ja.text and "友人や家族にすすめる可能性" in ja.text
    assert len(re.findall(r'type="radio" name="score" value="\d+"', ja.text)) == 11
    assert 'name="viewport" content="width=device-width' in ja.text
    assert ja.headers["referrer-policy"] == "same-origin" and ja.headers["cache-control"] == "no-store"
    assert "set-cookie" not in ja.headers
    assert "How likely" in site.http.get(path + "?lang=en").text
    english = site.http.get(path, headers={"Accept-Language": "en-US,en;q=0.9,ja;q=0.8"})
    assert '<html lang="en">' in english.text
    assert '<html lang="ja">' in site.http.get(path, headers={"Accept-Language": "fr, ja;q=0.5, en;q=0.4"}).text


def test_survey_answer_is_stored_with_its_touchpoint_once_per_link(site: Site) -> None:
    ref, path = site.survey_path("C001", touchpoint="support_call")
    token = form_field(site.http.get(path).text)
    before = now_ts()
    first = site.http.post(path, data={"form": token, "score": "3", "comment": "配送が遅れました"})
    assert first.status_code == 200 and "ご回答ありがとうございました" in first.text
    stored = answers(site.ops)
    assert [(a["ref"], a["customer_id"], a["score"], a["comment"], a["touchpoint"]) for a in stored] == [
        (ref, "C001", 3, "配送が遅れました", "support_call")]
    assert before <= stored[0]["answered_ts"] <= now_ts()  # a detractor (0–6) with its time: due for follow-up
    again = site.http.post(path, data={"form": token, "score": "10", "comment": "changed my mind"})
    assert again.status_code == 200 and "回答済み" in again.text
    assert answers(site.ops) == stored
    assert "回答済み" in site.http.get(path).text  # the form is not shown again


def test_web_answer_reaches_the_stores_nps_answers(site: Site, tmp_path: Path) -> None:
    from kizuna.workspace import Workspace

    with Workspace.open(site.state.workspace_dir) as ws:
        from factories import arrow_rows

        ws.store.append("customers", arrow_rows("customers", [{"customer_id": "C001"}]))
    _, path = site.survey_path("C001", touchpoint="delivery")
    site.http.post(path, data={"form": form_field(site.http.get(path).text), "score": "6"})
    with Workspace.open(site.state.workspace_dir) as ws:
        assert ws.merge_survey_answers() == 1
        rows = ws.store.table("nps_answers").to_pyarrow().to_pylist()
    assert [(r["customer_id"], r["score"], r["touchpoint"]) for r in rows] == [("C001", 6, "delivery")]


def test_survey_post_without_the_forms_field_or_from_another_site_is_refused(site: Site) -> None:
    ref, path = site.survey_path()
    _, other_path = site.survey_path("C002")
    token = form_field(site.http.get(path).text)
    other_token = form_field(site.http.get(other_path).text)
    assert token != other_token
    refused = [
        site.http.post(path, data={"score": "0"}),  # a forged cross-site form: no field
        site.http.post(path, data={"score": "0", "form": other_token}),  # another link's field
        site.http.post(path, data={"score": "0", "form": "0" * 64}),
        site.http.post(path, data={"score": "0", "form": "偽" * 64}),
        site.http.post(path, data={"score": "0", "form": token}, headers={"Origin": "https://evil.example"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert answers(site.ops) == []
    ok = site.http.post(path, data={"score": "9", "form": token}, headers={"Origin": "https://shop.example.jp"})
    assert ok.status_code == 200 and [a["score"] for a in answers(site.ops)] == [9]


def test_survey_wrong_score_or_long_comment_shows_the_form_again(site: Site) -> None:
    _, path = site.survey_path()
    token = form_field(site.http.get(path).text)
    for score in ("", "11", "-1", "5.5", "ten"):
        response = site.http.post(path, data={"form": token, "score": score, "comment": "<b>良い</b>"})
        assert response.status_code == 400 and "0〜10の中から1つ選んでください" in response.text
        assert "&lt;b&gt;良い&lt;/b&gt;" in response.text  # kept, escaped
    long = site.http.post(path, data={"form": token, "score": "7", "comment": "あ" * 2001})
    assert long.status_code == 400 and "2000文字以内" in long.text and 'value="7" required checked' in long.text
    assert answers(site.ops) == []
    assert site.http.post(path, data={"form": token, "score": "7", "comment": "あ" * 2000}).status_code == 200


def test_tampered_survey_links_get_a_404_that_reveals_nothing(site: Site) -> None:
    ref, path = site.survey_path("C-secret-42")
    token = path.removeprefix("/s/")
    payload, stamp, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    forged = URLSafeTimedSerializer("another secret", salt="kizuna.survey").dumps(ref)
    unsubscribe_token = URLSafeSerializer(site.state.form_secret, salt="kizuna.unsubscribe").dumps(ref)
    for bad in (f"{payload}.{stamp}.{flipped}", forged, unsubscribe_token, "x", token + "x"):
        response = site.http.get("/s/" + bad)
        assert response.status_code == 404, bad
        assert "C-secret-42" not in response.text and ref not in response.text
        assert site.http.post("/s/" + bad, data={"score": "0"}).status_code == 404
    # a valid signature over a ref that is not in the records: the same page
    unknown = site.state.links.survey_url(uuid.uuid4().hex)
    assert site.http.get(path_of(unknown)).status_code == 404
    assert answers(site.ops) == []


class _PastSigner(TimestampSigner):
    days_ago = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.days_ago * 86_400


def _signed_days_ago(site: Site, ref: str, days: int) -> str:
    signer = type("Signer", (_PastSigner,), {"days_ago": days})
    return "/s/" + URLSafeTimedSerializer(site.state.form_secret, salt="kizuna.survey", signer=signer).dumps(ref)


def test_expired_survey_link_says_so_with_410(site: Site) -> None:
    ref, _ = site.survey_path()
    expired = _signed_days_ago(site, ref, 31)  # links work SURVEY_DAYS = 30 days
    response = site.http.get(expired)
    assert response.status_code == 410 and "有効期限が切れています" in response.text
    assert site.http.post(expired, data={"score": "1"}).status_code == 410
    assert "expired" in site.http.get(expired + "?lang=en").text
    fresh = _signed_days_ago(site, ref, 29)
    assert site.http.get(fresh).status_code == 200
    assert answers(site.ops) == []


# -- unsubscribe ------------------------------------------------------------------------------


def test_one_click_post_with_no_cookie_records_the_opt_out(site: Site) -> None:
    path = site.unsubscribe_path("C001", "email")
    # RFC 8058: what a mail provider sends, without cookies, authorisation or redirects followed
    response = site.http.post(path, content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"},
                              follow_redirects=False)
    assert response.status_code == 200 and "location" not in response.headers
    assert "set-cookie" not in response.headers and len(response.content) < 4096
    assert "配信を停止しました" in response.text
    rows = consent_rows(site.ops)
    assert [(r["channel"], r["subject"], r["opted_in"], r["source"]) for r in rows] == [
        ("email", "C001", 0, "unsubscribe")]
    assert site.http.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # idempotent
    assert [(r["channel"], r["subject"], r["opted_in"]) for r in consent_rows(site.ops)] == [("email", "C001", 0)]


def test_one_click_post_as_multipart_form_data_works_too(site: Site) -> None:
    path = site.unsubscribe_path("C007", "line")
    response = site.http.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert site.ops.consent("line", "C007") is False


def test_unsubscribe_page_asks_first_and_its_button_posts_one_click(site: Site) -> None:
    path = site.unsubscribe_path("C001", "email")
    page = site.http.get(path)
    assert page.status_code == 200 and "メールの配信を停止します" in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "C001" not in page.text
    assert consent_rows(site.ops) == []  # a GET (a link scanner) changes nothing
    assert site.http.post(path, data={"List-Unsubscribe": "yes"}).status_code == 400
    assert consent_rows(site.ops) == []
    assert site.http.post(path + "?lang=en", data={"List-Unsubscribe": "One-Click"}).text.count("e-mail") >= 1
    assert site.ops.consent("email", "C001") is False


def test_unknown_or_tampered_unsubscribe_token_is_404(site: Site) -> None:
    path = site.unsubscribe_path("C001")
    unknown = path_of(site.state.links.unsubscribe_url(uuid.uuid4().hex))
    forged = "/u/" + URLSafeSerializer("another secret", salt="kizuna.unsubscribe").dumps(path.split("/")[-1])
    # a changed signature character well inside it: the last base64 character also carries padding
    # bits, so changing it can leave the decoded signature the same (a valid link, rightly)
    middle = len(path) - 10
    tampered = path[:middle] + ("A" if path[middle] != "A" else "B") + path[middle + 1:]
    for bad in (tampered, unknown, forged, "/u/abc"):
        assert site.http.get(bad).status_code == 404
        assert site.http.post(bad, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert consent_rows(site.ops) == []


def test_oversized_form_is_refused_before_parsing(site: Site) -> None:
    path = site.unsubscribe_path()
    response = site.http.post(path, content=b"List-Unsubscribe=One-Click&x=" + b"a" * 70_000,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and consent_rows(site.ops) == []


# -- the LINE webhook -------------------------------------------------------------------------


def line_event(kind: str, *, event_id: str | None = None, timestamp: int = 1_764_460_800_123, user: str = USER,
               redelivery: bool = False, mode: str = "active") -> dict:
    event = {"type": kind, "mode": mode, "timestamp": timestamp, "source": {"type": "user", "userId": user},
             "webhookEventId": event_id or uuid.uuid4().hex.upper()[:26],
             "deliveryContext": {"isRedelivery": redelivery}}
    if kind == "message":
        event["message"] = {"id": "1", "type": "text", "text": "こんにちは"}
        event["replyToken"] = "r" * 32
    return event


def post_webhook(site: Site, events: list[dict], *, secret: str = LINE_SECRET,
                 signature: str | None = None) -> httpx.Response:
    body = json.dumps({"destination": "U" + "0" * 32, "events": events}, ensure_ascii=False).encode()
    signed = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "x-line-signature": signature if signature is not None else signed}
    return site.http.post("/line/webhook", content=body, headers=headers)


def test_follow_and_unfollow_set_line_consent_at_the_events_time(site: Site) -> None:
    assert post_webhook(site, [line_event("follow", timestamp=1_764_460_800_999)]).status_code == 200
    assert consent_rows(site.ops) == [
        {"channel": "line", "subject": USER, "opted_in": 1, "source": "line-follow", "changed_ts": 1_764_460_800}]
    assert post_webhook(site, [line_event("unfollow", timestamp=1_764_464_400_000)]).status_code == 200
    assert consent_rows(site.ops) == [
        {"channel": "line", "subject": USER, "opted_in": 0, "source": "line-unfollow", "changed_ts": 1_764_464_400}]


def test_webhook_with_a_bad_or_missing_signature_is_401_and_changes_nothing(site: Site) -> None:
    event = [line_event("unfollow")]
    assert post_webhook(site, event, secret="another channel's secret").status_code == 401
    assert post_webhook(site, event, signature="").status_code == 401
    response = site.http.post("/line/webhook", content=json.dumps({"events": event}).encode(),
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert consent_rows(site.ops) == []
    assert site.ops.query("SELECT count(*) AS n FROM webhook_events")[0]["n"] == 0


def test_redelivered_event_changes_nothing(site: Site) -> None:
    follow = line_event("follow", event_id="01HF0000000000000000000001")
    assert post_webhook(site, [follow]).status_code == 200
    with site.ops.write() as db:  # the customer opts out by some other way at the same second
        db.execute("UPDATE consents SET opted_in = 0, source = 'support-call'")
    redelivered = {**follow, "deliveryContext": {"isRedelivery": True}}
    assert post_webhook(site, [redelivered]).status_code == 200
    assert post_webhook(site, [follow]).status_code == 200  # the same event id, even unflagged
    assert [(r["opted_in"], r["source"]) for r in consent_rows(site.ops)] == [(0, "support-call")]


def test_unknown_event_types_verification_and_standby_are_accepted_and_ignored(site: Site) -> None:
    assert post_webhook(site, []).status_code == 200  # LINE's "Verify" button
    events = [line_event("message"), line_event("postback"), line_event("accountLink"),
              line_event("unfollow", mode="standby"), {"type": "follow", "webhookEventId": "X1"}]
    assert post_webhook(site, events).status_code == 200
    assert consent_rows(site.ops) == []


def test_webhook_signed_but_not_json_is_400_and_unconfigured_is_503(site: Site) -> None:
    body = b"not json"
    signed = base64.b64encode(hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    response = site.http.post("/line/webhook", content=body, headers={"x-line-signature": signed})
    assert response.status_code == 400
    bare = dataclasses.replace(site.state, line_secret=None)
    client = Client(Starlette(routes=public_routes(bare)))
    assert client.post("/line/webhook", content=b'{"events":[]}', headers={"x-line-signature": signed}
                       ).status_code == 503


# -- rate limits ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_per_client_and_endpoint(site: Site) -> None:
    clock = [1000.0]
    state = dataclasses.replace(site.state, limiter=RateLimiter({"survey": 3, "unsubscribe": 3, "webhook": 5},
                                                                clock=lambda: clock[0]))
    app = Starlette(routes=public_routes(state))
    one, other = Client(app, ("192.0.2.1", 1)), Client(app, ("192.0.2.2", 1))
    _, survey = site.survey_path()
    assert [one.get(survey).status_code for _ in range(4)] == [200, 200, 200, 429]
    limited = one.get(survey)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "20"  # 3 a minute: one each 20 s
    assert "しばらくしてから" in limited.text
    assert one.post(survey, data={"score": "1"}).status_code == 429 and answers(site.ops) == []
    assert other.get(survey).status_code == 200  # another address has its own bucket
    assert one.get(site.unsubscribe_path()).status_code == 200  # and so has another endpoint
    clock[0] += 15
    assert one.get(survey).headers["retry-after"] == "5"
    clock[0] += 5
    assert one.get(survey).status_code == 200
    statuses = [post_webhook(Site(state, one), []).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_rate_limiter_forgets_idle_clients() -> None:
    clock = [0.0]
    limiter = RateLimiter({"survey": 1}, clock=lambda: clock[0])
    for n in range(100):
        assert limiter.take("survey", f"198.51.100.{n}") == 0.0
    clock[0] = 61.0
    assert limiter.take("survey", "203.0.113.1") == 0.0
    assert len(limiter._buckets) == 1


# -- over real HTTP ---------------------------------------------------------------------------


class ThreadServer:
    """uvicorn on 127.0.0.1 in a thread of this process."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        # log_config=None: uvicorn leaves logging alone, so the test sees its access records
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_real_uvicorn_server_records_answers_and_logs_no_tokens(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    ref, survey = site.survey_path("C001")
    unsubscribe = site.unsubscribe_path("C002")
    access = logging.getLogger("uvicorn.access")
    log_filter = AccessLogFilter()
    access.addFilter(log_filter)
    caplog.set_level(logging.INFO)
    # another test's uvicorn.Config(log_level="warning") leaves uvicorn's loggers at WARNING
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    try:
        with ThreadServer(Starlette(routes=public_routes(site.state))) as base, httpx.Client(base_url=base) as http:
            token = form_field(http.get(survey).text)
            assert http.post(survey, data={"form": token, "score": "2", "comment": "遅い"}).status_code == 200
            assert http.post(unsubscribe, content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
            assert post_webhook(Site(site.state, _HttpxAdapter(http)), [line_event("unfollow")]).status_code == 200
    finally:
        access.removeFilter(log_filter)
    assert [(a["customer_id"], a["score"]) for a in answers(site.ops)] == [("C001", 2)]
    assert site.ops.consent("email", "C002") is False and site.ops.consent("line", USER) is False
    # the server's records (the test's own httpx client logs its URLs, as a client would)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("uvicorn", "kizuna")))
    assert '"POST /s/… HTTP/1.1" 200' in logged and '"POST /u/… HTTP/1.1" 200' in logged
    for secret in (survey.split("/")[-1], unsubscribe.split("/")[-1], ref, "C001", "C002", USER, "遅い"):
        assert secret not in logged


def _signed_post(http: httpx.Client, body: bytes) -> httpx.Response:
    signed = base64.b64encode(hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return http.post("/line/webhook", content=body, headers={"Content-Type": "application/json",
                                                            "x-line-signature": signed})


def test_valid_one_click_unsubscribes_are_never_rate_limited_bad_tokens_are(site: Site) -> None:
    # a mail provider posts a whole campaign's one-click unsubscribes from one address
    state = dataclasses.replace(site.state, limiter=RateLimiter({"unsubscribe": 2}))
    customers = [f"C{n:03d}" for n in range(12)]
    paths = [site.unsubscribe_path(c) for c in customers]
    with ThreadServer(Starlette(routes=public_routes(state))) as base, httpx.Client(base_url=base) as http:
        statuses = [http.post(path, content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code
                    for path in paths]
        assert statuses == [200] * len(customers)
        assert http.get(paths[0]).status_code == 200  # the confirmation page too
        bad = [http.post(path[:-2] + "xx", data={"List-Unsubscribe": "One-Click"}).status_code for path in paths[:4]]
        assert bad == [404, 404, 429, 429]  # guessing tokens is limited
        assert http.post(paths[1], data={"List-Unsubscribe": "One-Click"}).status_code == 200  # still honoured
    assert {r["subject"] for r in consent_rows(site.ops) if r["opted_in"] == 0} == set(customers)


def test_signed_webhook_nested_too_deep_or_with_an_absurd_timestamp_is_400(site: Site) -> None:
    def body(**fields) -> bytes:
        return json.dumps({"events": [{**line_event("unfollow"), **fields}]}).encode()

    deep_list = b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    deep_object = b'{"events": [{"type": "unfollow", "x": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}]}"
    nested_40 = body(x=functools.reduce(lambda inner, _: [inner], range(40), 1))  # parses, but no LINE event nests so
    timestamps = [body().replace(b"1764460800123", value)
                  for value in (b"1e30", str(10**30).encode(), b"-5", b"1.5e12", b'"1764460800123"', b"true",
                                b"NaN", b"Infinity")]
    with ThreadServer(Starlette(routes=public_routes(site.state))) as base, httpx.Client(base_url=base) as http:
        statuses = [_signed_post(http, b).status_code for b in (deep_list, deep_object, nested_40, *timestamps)]
        assert statuses == [400] * (3 + len(timestamps))
        assert consent_rows(site.ops) == []
        assert _signed_post(http, body()).status_code == 200  # a real event still goes through
    assert site.ops.consent("line", USER) is False


def _chromium_path() -> str | None:
    """Chromium from KIZUNA_CHROMIUM or the system (Debian's chromium); None: Playwright's own build."""
    return os.environ.get("KIZUNA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_survey_and_unsubscribe_in_a_real_browser_on_a_phone_screen(tmp_path: Path) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    port = free_port()
    state = PublicState.from_workspace(make_workspace(tmp_path / "shop", f"http://127.0.0.1:{port}"))
    ref = state.operations.survey_link("C001", "delivery")
    survey = state.links.survey_url(ref)
    unsubscribe = state.links.unsubscribe_url(add_delivery(state.operations, "C002"))
    with ThreadServer(Starlette(routes=public_routes(state)), port), sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=_chromium_path())
        except PlaywrightError as exc:
            pytest.fail(f"Chromium cannot start ({str(exc).splitlines()[0]}); install chromium or set "
                        "KIZUNA_CHROMIUM", pytrace=False)
        try:
            phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP", is_mobile=True)
            page = phone.new_page()
            page.goto(survey)
            assert page.locator("h1").inner_text() == "アンケートのお願い"
            # nothing wider than the phone's screen: no sideways scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.get_by_text("3", exact=True).click()
            page.fill("textarea", "配送が遅かったです")
            page.get_by_role("button").click()
            assert page.locator("h1").inner_text() == "ご回答ありがとうございました"
            page.goto(unsubscribe)
            page.get_by_role("button", name="配信を停止する").click()
            assert page.locator("h1").inner_text() == "配信を停止しました"
        finally:
            browser.close()
    assert [(a["customer_id"], a["score"], a["comment"]) for a in answers(state.operations)] == [
        ("C001", 3, "配送が遅かったです")]
    assert state.operations.consent("email", "C002") is False
    state.operations.close()


class _HttpxAdapter:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def post(self, url: str, **options) -> httpx.Response:
        return self.http.post(url, **options)


SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from kizuna.web._public import PublicState, RateLimiter, public_routes
state = PublicState.from_workspace(sys.argv[1], limiter=RateLimiter({"survey": 100000, "unsubscribe": 100000}))
uvicorn.run(Starlette(routes=public_routes(state)), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""

WRITER = """
import sys, time, uuid
from pathlib import Path
from kizuna.operations import Operations, now_ts
ops = Operations(sys.argv[1])
stop = Path(sys.argv[2])
n = 0
while not stop.exists():  # like `kizuna run` from cron: ledger rows, consents, survey links
    ref = uuid.uuid4().hex
    now = now_ts()
    with ops.write() as db:
        db.execute(
            "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, channel, grp, "
            "status, due_ts, created_ts, updated_ts, sent_ts) VALUES (?, ?, 'cron', 1, ?, 'o', ?, 'email', "
            "'treated', 'sent', ?, ?, ?, ?)", (f"cron/1/W{n}", ref, f"W{n}", now, now, now, now, now))
    ops.set_consent("dm", f"W{n}", False, source="cron")
    ops.survey_link(f"W{n}", "delivery")
    n += 1
print(n, time.time())
"""


@pytest.mark.slow
def test_server_process_and_cron_process_write_the_records_at_once(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path / "shop")
    state = PublicState.from_workspace(workspace)
    customers = [f"C{n:03d}" for n in range(60)]
    unsubscribes = {c: path_of(state.links.unsubscribe_url(add_delivery(state.operations, c))) for c in customers}
    surveys = {c: path_of(state.links.survey_url(state.operations.survey_link(c, "delivery"))) for c in customers}
    state.operations.close()
    port, stop = free_port(), tmp_path / "stop"
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SERVER), str(workspace), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(workspace / OPERATIONS_FILE),
                               str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ops = Operations(workspace / OPERATIONS_FILE)
    statuses = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # the server answers, and the writer is writing
            try:
                httpx.get(base + "/u/x", timeout=1)
                if ops.query("SELECT count(*) AS n FROM deliveries WHERE scenario = 'cron'")[0]["n"] >= 20:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as http:
            for c in customers:
                statuses.append(http.post(unsubscribes[c], data={"List-Unsubscribe": "One-Click"}).status_code)
                token = form_field(http.get(surveys[c]).text)
                statuses.append(http.post(surveys[c], data={"form": token, "score": str(int(c[1:]) % 11)}).status_code)
        assert writer.poll() is None, writer.communicate()[1]  # it wrote all along
        stop.touch()
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        written = int(out.split()[0])
        server.terminate()
        _, server_err = server.communicate(timeout=20)
        assert statuses == [200] * 120
        assert "locked" not in server_err + err and "Traceback" not in server_err + err
        opted_out = {r["subject"] for r in ops.query("SELECT subject FROM consents WHERE channel = 'email' "
                                                     "AND opted_in = 0 AND source = 'unsubscribe'")}
        assert opted_out == set(customers)
        stored = {r["customer_id"]: r["score"] for r in ops.query("SELECT customer_id, score FROM survey_answers")}
        assert stored == {c: int(c[1:]) % 11 for c in customers}
        assert written >= 20
        assert ops.query("SELECT count(*) AS n FROM deliveries WHERE scenario = 'cron'")[0]["n"] == written
        assert ops.query("SELECT count(*) AS n FROM consents WHERE channel = 'dm'")[0]["n"] == written
        assert ops.query("SELECT count(*) AS n FROM survey_links WHERE customer_id LIKE 'W%'")[0]["n"] == written
    finally:
        ops.close()
        for process in (writer, server):
            if process.poll() is None:
                process.kill()
                process.communicate()
