""""Send me a test": one step's message, rendered for a chosen customer, to the operator's own address.

It goes through the step's real channel (the workspace's SMTP server, LINE's Messaging API) so
that the operator sees what a customer would — the sender, the footer, the line breaks, what
LINE does to it — but it is no delivery of the customer's: it is not in the send ledger, so it is
in no result, counts against no frequency cap, and never goes to the customer's address (only to
the one given). It is marked as a test: the subject (e-mail) or the text (LINE) starts with
【テスト】 / [TEST], and an e-mail carries the header ``X-Kizuna-Test: test/SCENARIO/STEP``. Its
unsubscribe link is a dummy's, as in the preview. One audit line records who sent which step.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ibis

from kizuna._errors import KizunaError, Phrase
from kizuna.delivery import Message, Transport
from kizuna.i18n import label
from kizuna.operations import record_audit
from kizuna.scenarios._context import RunContext
from kizuna.scenarios._dispatch import default_transports
from kizuna.scenarios._evaluate import audience_filter
from kizuna.scenarios._model import Scenario
from kizuna.scenarios._preview import preview_message
from kizuna.scenarios._render import text_to_html
from kizuna.scenarios._run import audience_tables

__all__ = ["TestSend", "TESTABLE_CHANNELS", "sample_customer", "send_test"]

TESTABLE_CHANNELS = ("email", "line")  # the others become lists for people: their preview is the test
DUMMY_REF = "0" * 32  # the unsubscribe link of a test leads nowhere, as the preview's


@dataclass(frozen=True)
class TestSend:
    """What was sent: to `address` by `channel`, step `step` of `scenario` rendered for `customer_id`."""

    __test__ = False  # not a pytest class

    scenario: str
    step: int
    channel: str
    customer_id: str
    address: str
    subject: str
    text: str
    provider_id: str | None


def sample_customer(context: RunContext, scenario: Scenario) -> str:
    """The customer a test is rendered for when none is named: the first (by id) of the scenario's
    audience, or of the store when it has no audience (or no scores yet)."""
    audience = audience_tables(context.store)
    table: ibis.Table | None = None
    if (scenario.segments or scenario.conditions or scenario.segment is not None) and audience.get("table") is not None:
        consents = {channel: context.operations.consents(channel) for channel in ("email", "line", "dm")}
        table = audience_filter(scenario, audience["table"], context.tables(), consents)
    if table is None or table.count().to_pyarrow().as_py() == 0:
        table = context.store.table("customers")
    found = table.select("customer_id").order_by("customer_id").limit(1).to_pyarrow().column("customer_id")
    if len(found) == 0:
        raise KizunaError.keyed("switch.test_no_customers")
    return str(found[0].as_py())


def send_test(context: RunContext, scenarios: Sequence[Scenario], name: str, *, user: str, as_of: dt.date,
              step: int = 1, customer_id: str | None = None, email: str | None = None,
              line_user_id: str | None = None, lang: str | None = None,
              transports: Mapping[str, Callable[[], Transport]] | None = None) -> TestSend:
    """Send step `step` of scenario `name`, rendered for `customer_id` (default `sample_customer`) as of
    `as_of`, to the operator's `email` (an e-mail step) or `line_user_id` (a LINE step), marked as a
    test and outside the ledger (see the module docstring). `transports`: channel -> factory (default:
    from the settings). Raises a KizunaError (a DeliveryError when the channel refused it)."""
    scenario = next((s for s in scenarios if s.name == name), None)
    if scenario is None:
        raise KizunaError.keyed("switch.no_scenario", name=name, known=", ".join(s.name for s in scenarios) or "-")
    if not 1 <= step <= len(scenario.steps):
        raise KizunaError.keyed("switch.no_step", name=name, step=step, steps=len(scenario.steps))
    channel = scenario.steps[step - 1].channel
    if channel not in TESTABLE_CHANNELS:
        raise KizunaError.keyed("switch.test_list_channel", name=name, step=step,
                                channel=Phrase.of(f"channel_{channel}"))
    address = (email if channel == "email" else line_user_id) or ""
    if not address.strip():
        raise KizunaError.keyed(f"switch.test_needs_{channel}", name=name, step=step)
    language = lang or scenario.lang
    customer_id = customer_id or sample_customer(context, scenario)
    shown = preview_message(context, scenarios, name, customer_id, step=step, as_of=as_of, lang=language)
    factory = (transports if transports is not None
               else default_transports(context.settings, context.home, language)).get(channel)
    if factory is None:
        raise KizunaError.keyed(f"switch.test_no_{channel}_channel")
    prefix = label("switch.test_prefix", language)
    subject = prefix + shown["subject"] if channel == "email" else shown["subject"]
    text = shown["text"] if channel == "email" else prefix + shown["text"]
    step_of = scenario.steps[step - 1]
    message = Message(
        key=f"test/{name}/{step}", ref=secrets.token_hex(16), customer_id=customer_id, channel=channel,
        address=address.strip(), subject=subject, text=text, html=text_to_html(text) if channel == "email" else None,
        unsubscribe_url=(context.links.unsubscribe_url(DUMMY_REF)
                         if channel == "email" and not step_of.transactional else None),
        transactional=step_of.transactional, test=True,
    )
    with factory() as transport:
        receipt = transport.send(message)
    record_audit(context.operations, user, "scenario.test", f"{name}/{step}", 1)
    return TestSend(name, step, channel, customer_id, message.address, subject, text, receipt.provider_id)
