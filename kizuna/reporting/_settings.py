"""[report] of kizuna.toml: who receives the manager's report (`kizuna report --mail`) and what prints its PDF."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, PlainValidator

from kizuna.settings import Allowed, Section, Text

__all__ = ["ReportSettings"]

_MAILBOX = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\".]+(\.[^\s@<>()\[\]\\,;:\".]+)+")


def _addresses(value: Any) -> tuple[str, ...]:
    """A list of e-mail addresses (name@domain, ASCII), repeats dropped."""
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of addresses")
    addresses = [item.strip() for item in value]
    if not all(_MAILBOX.fullmatch(a) and a.isascii() for a in addresses):
        raise ValueError("not an address")
    return tuple(dict.fromkeys(addresses))


Addresses = Annotated[tuple[str, ...], PlainValidator(_addresses),
                      Allowed("settings.allowed_recipients")]


class ReportSettings(Section):
    """The monthly report for managers (`kizuna report`): one HTML file and its PDF, in reports/; `--mail`
    sends them to the recipients through the [email] SMTP server (an e-mail to the shop's own people,
    not to customers)."""

    recipients: Addresses = Field((), description='who receives `kizuna report --mail`, e.g. ["manager@example.jp"]')
    chromium: Text = Field("/usr/bin/chromium", description="the Chromium that prints the PDF (Debian: apt install "
                                                            "chromium)")
