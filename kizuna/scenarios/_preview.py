"""`kizuna scenario preview`: one step's message for one customer, rendered as it would be sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from kizuna._errors import KizunaError
from kizuna.scenarios._context import RunContext
from kizuna.scenarios._model import Scenario
from kizuna.scenarios._render import render, text_to_html
from kizuna.scenarios._run import scenario_fields

__all__ = ["preview_message"]


def preview_message(context: RunContext, scenarios: Sequence[Scenario], name: str, customer_id: str, *,
                    step: int = 1, as_of: dt.date, lang: str | None = None,
                    replace: Mapping[str, object] | None = None) -> dict[str, str]:
    """Step `step` of the scenario `name` for `customer_id` as of `as_of`: scenario, step, channel,
    subject, text and html. Nothing is recorded; the links in it are made with a dummy ref.
    `replace`: fields shown with these values instead of the customer's (a viewer's masked contact data)."""
    scenario = next((s for s in scenarios if s.name == name), None)
    if scenario is None:
        known = ", ".join(s.name for s in scenarios) or "none"
        raise KizunaError.keyed("error.no_scenario", name=repr(name), folder=str(context.scenarios_dir), known=known)
    if not 1 <= step <= len(scenario.steps):
        raise KizunaError.keyed("error.no_such_step", name=name, steps=len(scenario.steps), step=step)
    fields = scenario_fields(context, [customer_id], as_of, lang or scenario.lang).get(customer_id)
    if fields is None:
        raise KizunaError.keyed("error.no_customer", customer=repr(customer_id))
    chosen = scenario.steps[step - 1]
    language = lang or scenario.lang
    values = {k: ("" if v is None else v) for k, v in fields.items()}
    values.update(detail="", occasion="preview", occasion_at=str(as_of),
                  unsubscribe_url=context.links.unsubscribe_url("0" * 32),
                  survey_url=context.links.survey_url("0" * 32))
    values.update({k: v for k, v in (replace or {}).items() if values.get(k) not in (None, "")})
    text = render(chosen.body[language], values, scenario=name, step=step)
    subject = render(chosen.subject[language], values, scenario=name, step=step).strip()
    return {"scenario": name, "step": str(step), "channel": chosen.channel, "subject": subject, "text": text,
            "html": text_to_html(text)}
