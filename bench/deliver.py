"""Messages per second of `kizuna run` with its durable ledger, against the transport alone.

    .venv/bin/python bench/deliver.py [--messages 3000]

E-mail: a real SMTP server (aiosmtpd, tests/smtp_server.py) in a process of its own on
127.0.0.1, so that it does not share the client's GIL. The reference is the same messages sent
by `SmtpTransport` alone over the same number of connections, with no ledger, in the same run.
LINE: the local server that follows LINE's push contract (tests/line_server.py), in this process;
reference `LineTransport` alone. The figure that matters is the ratio: machines here are noisy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from kizuna.delivery import LineTransport, Message, SenderIdentity, SmtpTransport  # noqa: E402, I001
from kizuna.scenarios._dispatch import PUSH_CONNECTIONS  # noqa: E402
from kizuna.workspace import Settings  # noqa: E402

from factories import day, workspace_with  # noqa: E402
from line_server import LineServer  # noqa: E402

JST = zoneinfo.ZoneInfo("Asia/Tokyo")
SCENARIO = """\
trigger: {after_order: {days: 1}}
goal: {kind: order, days: 30}
steps:
  - channel: CHANNEL
    subject: "{{ name }}様、ありがとうございます"
    body: "{{ name }}様\\n{{ orders_so_far }}回目のご注文、{{ spent_so_far | yen }}でした。"
"""


def shop(folder: Path, n: int, channel: str, **settings):
    customers = [{"customer_id": f"C{i:06d}", "name": f"顧客 {i}", "email": f"c{i}@example.jp", "email_opt_in": True,
                  "line_user_id": "U" + secrets.token_hex(16)} for i in range(n)]
    orders = [{"order_id": f"O{i:06d}", "customer_id": f"C{i:06d}", "ordered_at": day("2026-11-28", 15),
               "amount": 3240} for i in range(n)]
    ws = workspace_with(folder, customers=customers, orders=orders)
    for old in (ws.path / "scenarios").glob("*.yaml"):
        old.unlink()
    (ws.path / "scenarios" / "bench.yaml").write_text(SCENARIO.replace("CHANNEL", channel), encoding="utf-8")
    ws.save_settings(Settings().replace(
        delivery={"holdout_share": 0.0, "global_control_share": 0.0, "cap_messages": 1000},
        email={"sender": "Shop <info@shop.example.jp>", "sender_address": "東京都港区1-2-3",
               "sender_contact": "03-0000", **settings.get("email", {})},
        analysis={"as_of": "2026-11-30"}, line=settings.get("line", {})))
    return ws


def timed_run(ws, transports) -> tuple[int, float, float]:
    """(messages sent, seconds of the delivery phase, seconds of the whole run)."""
    first: list[float] = []

    def progress(channel: str, done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter())

    start = time.perf_counter()
    report = ws.run(now=dt.datetime(2026, 11, 30, 10, tzinfo=JST), transports=transports, progress=progress)
    end = time.perf_counter()
    return report.total("sent"), end - (first[0] if first else start), end - start


def transport_alone(make, messages: list[Message]) -> float:
    parts = [messages[i::PUSH_CONNECTIONS] for i in range(PUSH_CONNECTIONS)]

    def send(part: list[Message]) -> None:
        with make() as transport:
            for message in part:
                transport.send(message)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(PUSH_CONNECTIONS) as pool:
        list(pool.map(send, parts))
    return time.perf_counter() - start


def messages(n: int, channel: str) -> list[Message]:
    return [Message(key=f"k{i}", ref=secrets.token_hex(16), customer_id=f"C{i:06d}", channel=channel,
                    address=f"c{i}@example.jp" if channel == "email" else "U" + secrets.token_hex(16),
                    subject=f"顧客 {i}様、ありがとうございます", text=f"顧客 {i}様\n1回目のご注文、¥3,240でした。",
                    html=f"<p>顧客 {i}様</p>", unsubscribe_url=f"https://shop.example.jp/u/{i}")
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    n = args.messages
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "smtp_server.py"), "--pipelining"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().split()[-1]
            ws = shop(Path(tmp) / "email", n, "email", email={"smtp_url": url})
            identity = SenderIdentity.from_settings(ws.settings.email)
            alone = transport_alone(lambda: SmtpTransport(url, identity), messages(n, "email"))
            sent, deliver, whole = timed_run(ws, None)
            rows.append(("e-mail", sent, deliver, whole, n / alone))
        finally:
            server.terminate()
            server.wait()
        with LineServer() as line:
            os.environ["KIZUNA_LINE_TOKEN"] = line.token
            ws = shop(Path(tmp) / "line", n, "line", line={"api_base": line.api_base})
            alone = transport_alone(lambda: LineTransport(line.api_base), messages(n, "line"))
            sent, deliver, whole = timed_run(ws, None)
            rows.append(("LINE", sent, deliver, whole, n / alone))
    print(f"{n:,} messages, {PUSH_CONNECTIONS} connections per channel, load average {os.getloadavg()[0]:.1f}")
    print(f"{'channel':8} {'sent':>6} {'kizuna run msg/s':>17} {'(whole run s)':>14} "
          f"{'transport alone msg/s':>22} {'ratio':>6}")
    for channel, sent, deliver, whole, reference in rows:
        rate = sent / deliver
        print(f"{channel:8} {sent:>6,} {rate:>17,.0f} {whole:>14.1f} {reference:>22,.0f} {rate / reference:>6.2f}")


if __name__ == "__main__":
    main()
