"""Tracked links: the links a template writes, sent through ``{public_url}/c/{token}`` with UTM parameters.

Which links: those written in the step's template (its text and subject), in an e-mail or a
LINE message. A URL written whole is tracked when the message shows it as written; one whose
end is a field (``https://shop.example.jp/item/{{ product_id }}``) when the message's URL starts
with the written part and that part names the host whole (so a field can never change where
the link leads to another site). A URL that only a field brings (a customer's data), the
unsubscribe and survey links, and anything under `public_url`'s /u/, /s/ and /c/ are left as they are.

Each tracked link gets its number in the message (0, 1, … by first appearance; the same URL
twice is one link) and its destination: the URL with ``utm_source=kizuna``, ``utm_medium`` (the
channel), ``utm_campaign`` (the scenario or campaign) and ``utm_content`` (the step or variant)
added to its query, the query and fragment it had kept, a ``utm_*`` it already had kept as it
was. The destinations are recorded before the message goes (`kizuna.operations.Clicks`), and a
click is sent on to the one recorded: a token names a link, never a URL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["UTM_SOURCE", "template_links", "track_links", "utm_parameters", "with_utm"]

UTM_SOURCE = "kizuna"
# A URL in a message: ASCII up to a space, a quote or bracket, or the first non-ASCII character
# (Japanese text runs on after a URL without a space); trailing punctuation is the sentence's.
_URL = re.compile(r"https?://[!#-&(-;=?-~]+")
_TRAILING = ".,;:!?)]}'"
_JINJA = re.compile(r"\{[{%#]")


def _urls(text: str) -> Iterable[tuple[int, int, str]]:
    for match in _URL.finditer(text):
        url = match.group().rstrip(_TRAILING)
        if "://" in url and url.split("://", 1)[1]:
            yield match.start(), match.start() + len(url), url


@functools.lru_cache(maxsize=512)
def template_links(*templates: str) -> tuple[tuple[str, bool], ...]:
    """The URLs `templates` write: (URL, whole) — `whole` False when a field follows the written part,
    which is then kept only if it names its host whole.

    >>> template_links("See https://shop.example.jp/sale!", "https://shop.example.jp/p/{{ product_id }}")
    (('https://shop.example.jp/sale', True), ('https://shop.example.jp/p/', False))
    >>> template_links("https://{{ host }}/x", "https://shop.example.{{ tld }}/")
    ()
    """
    found: list[tuple[str, bool]] = []
    for template in templates:
        for match in re.finditer(r"https?://\S+", template):
            written = match.group()
            tag = _JINJA.search(written)
            if tag is None:
                found += [(url, True) for _, _, url in _urls(written)][:1]
                continue
            prefix = written[:tag.start()]
            head = next(iter(_urls(prefix)), None)
            if head is None or head[2] != prefix:
                continue  # the field sits in the middle of the host, or before it
            rest = prefix.split("://", 1)[1]
            if "/" in rest or "?" in rest:  # the host ends before the field
                found.append((prefix, False))
    return tuple(dict.fromkeys(found))


def utm_parameters(channel: str, campaign: str, content: str) -> dict[str, str]:
    """The UTM parameters of a tracked link: source, medium (the channel), campaign, content."""
    return {"utm_source": UTM_SOURCE, "utm_medium": channel, "utm_campaign": campaign, "utm_content": content}


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with the `utm` parameters it lacks added to its query (its own query and fragment kept).

    >>> with_utm("https://shop.example.jp/sale?color=blue#top", {"utm_source": "kizuna", "utm_medium": "email"})
    'https://shop.example.jp/sale?color=blue&utm_source=kizuna&utm_medium=email#top'
    >>> with_utm("https://shop.example.jp/?utm_source=news", {"utm_source": "kizuna", "utm_medium": "line"})
    'https://shop.example.jp/?utm_source=news&utm_medium=line'
    """
    return _with_utm(url, tuple(utm.items()))


@functools.lru_cache(maxsize=4096)  # a step's links are the same in most of its messages
def _with_utm(url: str, utm: tuple[tuple[str, str], ...]) -> str:
    parts = urlsplit(url)
    have = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    missing = {key: value for key, value in utm if key not in have}
    if not missing:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(missing)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, parts.fragment))


def track_links(text: str, written: Iterable[tuple[str, bool]], *, click_url: Callable[[int], str],
                utm: Mapping[str, str], keep: Iterable[str] = ()) -> tuple[str, list[str]]:
    """`text` with the links its template wrote replaced by their tracked address, and the destination
    of each tracked link by its number.

    `written`: `template_links` of the template; `click_url(n)`: the tracked address of link n;
    `keep`: prefixes of URLs never tracked (the unsubscribe, survey and click links).

    >>> text, targets = track_links("Sale: https://shop.example.jp/sale. Stop: https://k.example.jp/u/x",
    ...                             template_links("Sale: https://shop.example.jp/sale. Stop: {{ unsubscribe_url }}"),
    ...                             click_url=lambda n: f"https://k.example.jp/c/{n}", utm={"utm_source": "kizuna"},
    ...                             keep=["https://k.example.jp/"])
    >>> text, targets
    ('Sale: https://k.example.jp/c/0. Stop: https://k.example.jp/u/x', ['https://shop.example.jp/sale?utm_source=kizuna'])
    """
    written = tuple(written)
    keep = tuple(keep)
    if not written:
        return text, []
    targets: list[str] = []
    out: list[str] = []
    last = 0
    for start, end, url in _urls(text):
        if url.startswith(keep) or not any(url == w if whole else url.startswith(w) for w, whole in written):
            continue
        target = with_utm(url, utm)
        if target not in targets:
            targets.append(target)
        out += [text[last:start], click_url(targets.index(target))]
        last = end
    return "".join(out) + text[last:], targets
