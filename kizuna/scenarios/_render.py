"""Rendering a step's templates for one customer: Jinja2 with StrictUndefined, in a sandbox.

A template that names a field the store does not provide fails for that message with a
`TemplateError` naming the scenario, step and field, instead of sending "Dear ," to everyone.
The HTML part of an e-mail is the text part, escaped, with links made clickable.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from kizuna._errors import KizunaError, Phrase

__all__ = ["RenderError", "render", "template_environment", "template_fields", "text_to_html"]


class RenderError(KizunaError):
    """A template could not be rendered for a customer: `scenario`, `step`, `field_name` say where."""

    def __init__(self, scenario: str, step: int, problem: str | Phrase, field_name: str | None = None) -> None:
        self.scenario, self.step, self.field_name = scenario, step, field_name
        super().__init__(Phrase.of("scenario.render", scenario=scenario, step=step, problem=problem))


@functools.cache
def template_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["yen"] = lambda v: f"¥{int(v):,}" if v is not None else ""
    env.filters["number"] = lambda v, digits=0: f"{float(v):,.{digits}f}" if v is not None else ""
    return env


@functools.lru_cache(maxsize=512)
def _compiled(text: str) -> jinja2.Template:
    return template_environment().from_string(text)


@functools.lru_cache(maxsize=512)
def template_fields(text: str) -> frozenset[str]:
    """The names a template reads, e.g. {"name", "survey_url"}."""
    return frozenset(jinja2.meta.find_undeclared_variables(template_environment().parse(text)))


def render(text: str, fields: dict[str, Any], *, scenario: str, step: int) -> str:
    try:
        return _compiled(text).render(fields)
    except jinja2.UndefinedError as exc:
        found = re.search(r"'([^']+)' is undefined", str(exc))
        name = found.group(1) if found else None
        problem = Phrase.of("scenario.render_undefined", name=name, fields=", ".join(sorted(fields))) if name \
            else Phrase.of("scenario.render_failed", problem=exc.message)
        raise RenderError(scenario, step, problem, name) from None
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise RenderError(scenario, step, Phrase.of("scenario.render_failed", problem=str(exc))) from None


# a URL ends at the first character that is not printable ASCII: Japanese runs on after it unspaced
_URL = re.compile(r"https?://[!#-&(-;=?-~]+")


def text_to_html(text: str) -> str:
    """The text part as HTML: escaped, paragraphs kept, addresses made into links."""
    def paragraph(block: str) -> str:
        escaped = html.escape(block)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        return "<p>" + linked.replace("\n", "<br>\n") + "</p>"

    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    return "\n".join(paragraph(b) for b in blocks)
