"""`Words`: the catalogue (kizuna.i18n) in one language, for templates; no texts of its own."""

from __future__ import annotations

from kizuna.i18n import LANGS, label, segment_label, value_label

__all__ = ["Words"]


class Words:
    """Labels in one language, for templates: ``t("login")``, ``t.segment("churn_candidate")``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "ja"

    def __call__(self, key: str, **values: object) -> str:
        text = label(key, self.lang)
        return text.format(**values) if values else text

    def segment(self, key: str | None) -> str:
        return segment_label(key, self.lang)

    def rank(self, key: str | None) -> str:
        return segment_label(f"rank_{key}", self.lang) if key else ""

    def value(self, kind: str, value: str | None) -> str:
        """A value of the data in words (``t.value("sales_channel", "web")``), else as the shop wrote it."""
        return value_label(kind, value, self.lang)
