"""Tracked links and their clicks: where each link of a sent message leads, and who clicked it.

`kizuna run` keeps, before a message goes, the URL each of its links leads to
(`Clicks.keep_links`: the template's URL with its UTM parameters); the message carries
``{public_url}/c/{token}`` instead (`Links.click_url`, signed over the message's ref and the
link's number). `kizuna serve` answers a click by looking the URL up (`Clicks.target`) — a
token names no URL, so the redirect can only lead where the message's template pointed — and
counting it (`Clicks.record`): one row per message, link and kind of browser (`agent_class`),
with the first and last time and how many times. No address and no full user agent are kept.

Link scanners of mail providers and chat previews fetch links nobody clicked; they are recorded
as ``bot`` and left out of the clickers (`Clicks.clickers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kizuna.operations._store import Operations, now_ts

__all__ = ["AGENTS", "Clicks", "agent_class"]

AGENTS = ("mobile", "desktop", "bot", "other")
# Fetchers that are not a person clicking: crawlers, link previews (LINE's, Slack's, Facebook's),
# mail security scanners, command-line and library clients.
_BOT = re.compile(r"bot|crawl|spider|slurp|preview|scan|fetch|curl|wget|python|httpx|aiohttp|requests|go-http|"
                  r"java/|okhttp|headless|phantom|facebookexternalhit|line-poker|proofpoint|mimecast|barracuda|"
                  r"safelinks|monitor|validator", re.IGNORECASE)
_MOBILE = re.compile(r"mobile|android|iphone|ipad|ipod|line/", re.IGNORECASE)


def agent_class(user_agent: str | None, *, method: str = "GET") -> str:
    """The kind of browser that followed a link: mobile, desktop, bot or other.

    A HEAD request, or a user agent naming a crawler, scanner or HTTP library, is a bot.

    >>> agent_class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1 Line/13.1.0")
    'mobile'
    >>> agent_class("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"), agent_class("curl/8.5")
    ('desktop', 'bot')
    """
    agent = user_agent or ""
    if method.upper() == "HEAD" or _BOT.search(agent):
        return "bot"
    if _MOBILE.search(agent):
        return "mobile"
    return "desktop" if agent.startswith("Mozilla/") else "other"


class Clicks:
    """The tracked links' reads and writes; each write is one short transaction."""

    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    def keep_links(self, links: Iterable[tuple[str, int, str]]) -> int:
        """Record (ref, link, url) of messages about to go; a message sent again keeps its latest."""
        rows = list(links)
        if not rows:
            return 0
        with self.ops.write() as db:
            return db.executemany("INSERT INTO message_links VALUES (?, ?, ?) ON CONFLICT (ref, link) "
                                  "DO UPDATE SET url = excluded.url", rows)

    def target(self, ref: str, link: int) -> str | None:
        """Where link `link` of the message `ref` leads; None when no such link was sent."""
        rows = self.ops.query("SELECT url FROM message_links WHERE ref = ? AND link = ?", (ref, link))
        return rows[0][0] if rows else None

    def record(self, ref: str, link: int, agent: str, *, at: int | None = None) -> None:
        """Count one click of link `link` of the message `ref` by a browser of kind `agent`."""
        at = now_ts() if at is None else at
        with self.ops.write() as db:
            db.execute("INSERT INTO clicks VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (ref, link, agent) DO UPDATE "
                       "SET last_ts = excluded.last_ts, clicks = clicks.clicks + 1", (ref, link, agent, at, at))

    def clickers(self, scenario: str | None = None) -> dict[tuple[str, int], int]:
        """(scenario, step) -> messages whose links a person clicked (bots left out): unique clickers."""
        where, params = ("AND d.scenario = ? ", (scenario,)) if scenario else ("", ())
        rows = self.ops.query(
            "SELECT d.scenario, d.step, COUNT(DISTINCT c.ref) AS n FROM clicks c JOIN deliveries d ON d.ref = c.ref "
            f"WHERE c.agent != 'bot' {where}GROUP BY d.scenario, d.step", params)
        return {(r["scenario"], r["step"]): int(r["n"]) for r in rows}

