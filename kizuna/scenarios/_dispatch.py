"""Stage 4 of `kizuna run`, dispatch: the rules, rendering and the channels for the rows due now.

Each due row passes the rules — goal reached → cancelled, no consent or address → suppressed, a
step before it not done, quiet hours, holidays and the frequency cap → deferred; beyond its
scenario's monthly budget → deferred to the next month (`kizuna.scenarios._costs`) — is rendered
(an e-mail's or LINE message's template links through {public_url}/c/, where they lead recorded
before any message goes: `kizuna.scenarios._tracking`) and handed to its channel, marked `sending`
before and `sent` after (see `kizuna.operations.Ledger`).
What the channel answers decides the rest (`Dispatcher.refused`): "later" (4xx) → scheduled again
after a back-off; "no" (5xx) → failed with the reply; no answer after the message went whole →
`resend` once with the same Message-ID, then `unconfirmed`; a refusal of the channel itself
(relay denied, login) → scheduled, unchanged. Three troubles in a row stop the channel for the
run; the rows it did not reach wait for the next.
E-mail goes over a few forked processes, LINE over a few threads, a customer's messages in order
on one; the offline channels (parcel inserts, direct mail, calls) become one list file per channel
and slice of the run (`Dispatcher.take`), written whole before their rows are marked.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import hashlib
import multiprocessing
import os
import secrets
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna._errors import KizunaError, Phrase
from kizuna._sheets import Column, write_table
from kizuna.delivery import ONLINE_CHANNELS, DeliveryError, Message, SendingRules, Transport
from kizuna.operations import RECOVERABLE, WAITING, Clicks, DueRow, Ledger, retry_delay
from kizuna.prediction import CallRules, PredictionSettings, call_blocker, keep_ranking, rank_key
from kizuna.scenarios._context import RunContext, RunSettings
from kizuna.scenarios._costs import OVER_BUDGET, Budgets
from kizuna.scenarios._model import Scenario
from kizuna.scenarios._render import RenderError, render, template_fields, text_to_html
from kizuna.scenarios._tracking import template_links, track_links, utm_parameters

__all__ = ["LIST_COLUMNS", "LIST_SHEETS", "PUSH_CONNECTIONS", "Dispatcher", "RunReport", "StepTally",
           "default_transports", "dispatch", "step_key"]

SAMPLES_PER_STEP = 3
MAX_TROUBLES = 3  # channel troubles in a row after which a run leaves that channel's rows for the next
PUSH_CONNECTIONS = 4  # connections per channel at once: SMTP and LINE answer in round trips
# The columns of the offline lists, by channel: (the catalogue's "header.<key>", kind of kizuna._sheets).
# A DM list is what address-label software reads: postal code first, 宛名 with 様, kana; a parcel-insert
# list names the parcel (the customer's order not yet shipped) in the order the warehouse packs them.
LIST_COLUMNS = {
    "insert": (("order_id", "text"), ("ordered_on", "date"), ("expected_next_order_on", "date"),
               ("customer_id", "text"), ("addressee", "text"), ("postal_code", "text"), ("address", "text"),
               ("scenario", "text"), ("step", "integer"), ("insert_content", "text")),
    "dm": (("postal_code", "text"), ("address", "text"), ("addressee", "text"), ("name_kana", "text"),
           ("customer_id", "text"), ("scenario", "text"), ("step", "integer"), ("dm_content", "text")),
    "call": (("customer_id", "text"), ("name", "text"), ("name_kana", "text"), ("phone", "text"),
             ("churn_risk", "percent"), ("value_at_risk", "yen"), ("scenario", "text"), ("step", "integer"),
             ("script", "text")),
}
LIST_SHEETS = {"insert": "sheet.insert_list", "dm": "sheet.dm_list", "call": "sheet.call_list"}


_COUNTING = threading.Lock()


@dataclass
class StepTally:
    """What a run did with one scenario step (and, dry, what it would do)."""

    scenario: str
    step: int
    channel: str
    counts: Counter = field(default_factory=Counter)
    title: dict[str, str] = field(default_factory=dict)  # the scenario's title by language, for people


@dataclass
class RunReport:
    as_of: dt.date
    now: dt.datetime
    dry_run: bool
    tallies: dict[tuple[str, int], StepTally] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    problems: list[Phrase | str] = field(default_factory=list)  # said in the reader's language (kizuna.i18n.say)

    def count(self, scenario: Scenario, step: int, what: str, n: int = 1) -> None:
        with _COUNTING:  # connections of one channel count from their own threads
            key = (scenario.name, step)
            if key not in self.tallies:
                self.tallies[key] = StepTally(scenario.name, step, scenario.steps[step - 1].channel,
                                              title=dict(scenario.title))
            self.tallies[key].counts[what] += n

    def total(self, what: str) -> int:
        return sum(t.counts[what] for t in self.tallies.values())


def dispatch(context: RunContext, due: list[DueRow], *, ledger: Ledger, scenarios: dict[str, Scenario],
             people: dict[str, dict], reached: set[str], report: RunReport, now: dt.datetime, dry_run: bool = False,
             transports: Mapping[str, Callable[[], Transport]] | None = None, lang: str | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             fields: Mapping[str, dict] | None = None) -> RunReport:
    """Stage 4 of a run: the rules, rendering and the channels for the `due` rows; counted in `report`.

    `fields`: row key -> its personal fields as of its occasion, over the customer's in `people`."""
    Dispatcher(context, ledger=ledger, scenarios=scenarios, people=people, reached=reached, report=report, now=now,
               dry_run=dry_run, transports=transports, lang=lang, progress=progress, fields=fields).run(due)
    return report


class Dispatcher:
    """Dispatch: the rules, rendering and the channels for the rows due now.

    `people`: customer -> contacts, consents and fields; `reached`: keys of rows whose customer
    reached the goal; `transports`: channel -> factory (default: from the settings).

    A large run goes in slices of its rows, in the order they go (`take`, one slice at a time, each
    with its own customers' data): what crosses from one slice to the next is the budgets, the call
    capacity worked out for the whole run beforehand (`calls_taken`), the states of the steps later
    rows wait for (`carry_keys`), the frequency cap's sends of the customers met again (`carry_customers`)
    and the channels stopped by their troubles. One slice or many, every row meets the same rules.
    """

    def __init__(self, context: RunContext, *, ledger: Ledger, scenarios: dict[str, Scenario],
                 report: RunReport, now: dt.datetime, people: dict[str, dict] | None = None,
                 reached: set[str] | None = None, dry_run: bool = False,
                 transports: Mapping[str, Callable[[], Transport]] | None = None,
                 lang: str | None = None, progress: Callable[[str, int, int], None] | None = None,
                 fields: Mapping[str, dict] | None = None) -> None:
        self.context, self.report, self.ledger, self.scenarios = context, report, ledger, scenarios
        self.fields = fields or {}
        self.people, self.reached, self.now, self.dry_run = people or {}, reached or set(), now, dry_run
        self.now_unix = int(now.timestamp())
        settings = context.settings
        self.rules = SendingRules.from_settings(settings.delivery, settings.business.timezone)
        self.transports = (transports if transports is not None
                           else default_transports(settings, context.home, lang or "ja"))
        self.lang = lang
        self.progress = progress
        self.links = context.links
        self.operations = context.operations
        self.consents = {channel: self.operations.consents(channel) for channel in ("email", "line", "dm", "call",
                                                                                      "insert")}
        self.cap_since = self.now_unix - settings.delivery.cap_days * 86_400
        self.recent: dict[str, list[int]] = {}  # customer -> marketing messages sent within the cap's days
        self.recent_read: set[str] = set()  # customers met in an earlier slice whose sends are in `recent`
        self.samples: Counter = Counter()
        self.previous: dict[str, tuple[str, int, int | None]] = {}
        # between slices: the step keys later rows ask for, the customers they are for (None: one slice)
        self.carry_keys: set[str] | None = None
        self.carry_customers: set[str] | None = None
        self.stopped: set[str] = set()  # channels that met MAX_TROUBLES: their rows wait for the next run
        self.parent: int | None = None  # in a forked sending process: the run's PID
        self.lock = threading.Lock()
        self.sent_so_far = 0
        # the call lists' rules (kizuna.prediction.call_blocker) and the day's capacity, as `kizuna priority`
        self.call_rules = CallRules.of(getattr(settings, "prediction", None) or PredictionSettings(),
                                       getattr(settings, "calls", None))
        self.calls_taken: set[str] | None = None  # the whole run's, when it goes in slices
        self.budgets = Budgets(ledger, settings.costs, now)  # each scenario's monthly budget
        self.tracked: list[tuple[str, int, str]] = []  # (ref, link, url): recorded before the messages go

    # -- rules ----------------------------------------------------------------------------
    def address(self, row: DueRow, person: dict | None) -> tuple[str | None, str | None]:
        """(address, None) if the customer may get this row's message, else (None, why not)."""
        if person is None:
            return None, "customer not in the store"
        channel = row.channel
        own = self.consents[channel].get(row.customer_id)
        if own is False:
            return None, "opted out"
        if channel == "email":
            if not person.get("email"):
                return None, "no e-mail address"
            if not row.transactional and not (person.get("email_opt_in") or own):
                return None, "no e-mail consent recorded"  # 特定電子メール法: opt-in only
            return person["email"], None
        if channel == "line":
            user = person.get("line_user_id")
            if not user:
                return None, "no LINE user id"
            line_own = self.consents["line"].get(user)
            if line_own is False:
                return None, "unfollowed on LINE"
            if person.get("line_opt_in") is False and not line_own:
                return None, "opted out of LINE"
            return user, None
        if channel in ("dm", "insert"):
            if channel == "dm" and person.get("dm_opt_in") is False:
                return None, "opted out of direct mail"
            if not person.get("address"):
                return None, "no postal address"
            return person["address"], None
        if not person.get("phone"):
            return None, "no telephone number"
        return person["phone"], None

    @functools.cached_property
    def pushed_from(self) -> int:
        """When e-mail and LINE may go, at `now` or after (quiet hours, holidays)."""
        return int(self.rules.next_allowed(self.now).timestamp())

    def hold(self, row: DueRow) -> int | None:
        """None if the row may go now, else when it may (quiet hours, holiday, frequency cap)."""
        if row.transactional:
            return None
        later = self.now_unix
        if row.channel in ONLINE_CHANNELS:
            later = max(later, self.pushed_from)
        if row.channel != "insert":
            frees = self.rules.cap_frees_at(self.recent.get(row.customer_id, []), self.now_unix)
            if frees is not None:
                later = max(later, frees)
        return None if later <= self.now_unix else later

    # -- rendering ------------------------------------------------------------------------
    def message_fields(self, row: DueRow, person: dict, only: frozenset[str] | None = None) -> dict[str, Any]:
        """The fields of `row`'s message: the customer's, its occasion's, then its own (None as "");
        `only`: just those of these names (what a dry run's templates read)."""
        occasion = self.fields.get(row.key, {})
        if only is None:
            fields = {k: ("" if v is None else v) for k, v in {**person, **occasion}.items()}
        else:
            fields = {}
            for name in only:
                value = occasion[name] if name in occasion else person.get(name, _ABSENT)
                if value is not _ABSENT:
                    fields[name] = "" if value is None else value
        own: dict[str, Callable[[], Any]] = {
            "detail": lambda: row.detail or "", "occasion": lambda: row.occasion,
            "occasion_at": lambda: dt.datetime.fromtimestamp(row.occasion_ts, self.rules.zone).strftime("%Y-%m-%d"),
            "unsubscribe_url": lambda: self.links.unsubscribe_url(row.ref), "survey_url": lambda: "",
        }
        fields.update((name, value()) for name, value in own.items() if only is None or name in only)
        return fields

    def message(self, row: DueRow, person: dict, address: str) -> Message:
        scenario = self.scenarios[row.scenario]
        step = scenario.steps[row.step - 1]
        lang = self.lang or scenario.lang
        uses = template_fields(step.body[lang]) | template_fields(step.subject[lang])
        # a dry run keeps the subject and text only: the fields no template reads (a link's
        # signature, the HTML part) are not worked out; a failure is told with every field's name
        fields = self.message_fields(row, person, uses if self.dry_run else None)
        if "survey_url" in uses:
            if not self.dry_run:
                self.operations.survey_link(row.customer_id, row.channel, scenario=scenario.name, ref=row.ref)
            fields["survey_url"] = self.links.survey_url(row.ref)
        try:
            text = render(step.body[lang], fields, scenario=scenario.name, step=step.number)
            subject = render(step.subject[lang], fields, scenario=scenario.name, step=step.number).strip()
        except RenderError:
            if not self.dry_run:
                raise
            every = {**self.message_fields(row, person), **fields}
            render(step.body[lang], every, scenario=scenario.name, step=step.number)
            render(step.subject[lang], every, scenario=scenario.name, step=step.number)
            raise
        if row.channel in ONLINE_CHANNELS:
            text = self.track(row, step.body[lang], text)
        marketing = not step.transactional
        return Message(
            key=row.key, ref=row.ref, customer_id=row.customer_id, channel=row.channel, address=address,
            subject=subject, text=text,
            html=text_to_html(text) if row.channel == "email" and not self.dry_run else None,
            unsubscribe_url=fields.get("unsubscribe_url") if marketing and row.channel == "email" else None,
            transactional=step.transactional, fields=fields,
        )

    def track(self, row: DueRow, template: str, text: str) -> str:
        """`text` with the links its template wrote going through {public_url}/c/ (`kizuna.scenarios._tracking`)."""
        written = template_links(template)
        if not written:
            return text
        campaign, content = row.scenario, f"step{row.step}"
        if self.scenarios[row.scenario].trigger.kind == "campaign":  # "campaign:NAME", a step per variant
            campaign, content = row.scenario.split(":", 1)[1], row.detail or content
        text, targets = track_links(text, written, click_url=lambda n: self.links.click_url(row.ref, n),
                                    utm=utm_parameters(row.channel, campaign, content),
                                    keep=self.links.own_prefixes)
        if not self.dry_run:
            self.tracked.extend((row.ref, n, url) for n, url in enumerate(targets))
        return text

    # -- the loop -------------------------------------------------------------------------
    def previous_step(self, row: DueRow) -> int | None:
        """None if the step before `row` is done with, else when `row` may go at the earliest.

        A step follows the one before it by its wait_days: a deferred first e-mail holds back
        the second; one that was suppressed or failed does not.
        """
        if row.step == 1:
            return None
        before = self.previous.get(step_key(row, row.step - 1))
        if before is None:
            return None
        status, due_ts, sent_ts = before
        wait = self.scenarios[row.scenario].steps[row.step - 1].wait_days * 86_400
        if status in (*WAITING, *RECOVERABLE):
            return max(due_ts, self.now_unix) + max(wait, 1)
        if status in ("sent", "unconfirmed") and sent_ts is not None and sent_ts + wait > self.now_unix:
            return sent_ts + wait
        return None

    def calls_within_capacity(self, people: Iterable[dict | None]) -> set[str]:
        """The customers this run may call of `people` (those of its call rows): those who pass the call
        lists' rules, in the keep list's ranking (by value at risk, or by the value kept by calling once
        [calls] min_outcomes call outcomes are known: `keep_ranking`), up to the day's capacity (as
        `kizuna priority`)."""
        callable_ = [p for p in people if p is not None
                     and call_blocker(p, self.report.as_of, self.call_rules) is None]
        ranking = keep_ranking(max((p.get("call_outcomes") or 0 for p in callable_), default=0),
                               getattr(getattr(self.context.settings, "calls", None), "min_outcomes", 200),
                               any(p.get("uplift") is not None for p in callable_))
        callable_.sort(key=lambda p: rank_key(p, ranking))
        return {p["customer_id"] for p in callable_[:self.call_rules.capacity]}

    def run(self, due: list[DueRow]) -> None:
        """Dispatch `due`, the customers' data given to the constructor."""
        self.take(due, self.people, self.reached, self.fields)

    def take(self, due: list[DueRow], people: dict[str, dict], reached: set[str], fields: Mapping[str, dict]) -> None:
        """Dispatch one slice of the run's rows, with what the rules and templates need about its customers."""
        self.people, self.reached, self.fields = people, reached, fields
        unread = [c for c in people if c not in self.recent_read]
        self.recent.update(self.ledger.recent_sends(unread, self.cap_since))
        calls_taken = self.calls_taken
        if calls_taken is None:
            calls_taken = self.calls_within_capacity(
                {r.customer_id: people.get(r.customer_id) for r in due if r.channel == "call"}.values())
        # the steps' states as the ledger has them, unless this run has settled them already
        self.previous.update(self.ledger.states(
            list({k: None for r in due if r.step > 1 and (k := step_key(r, r.step - 1)) not in self.previous})))
        self._take(due, calls_taken)
        if self.carry_customers is not None:
            self.recent_read.update(c for c in unread if c in self.carry_customers)
            self.recent = {c: sent for c, sent in self.recent.items() if c in self.carry_customers}
        if self.carry_keys is not None:
            self.previous = {k: state for k, state in self.previous.items() if k in self.carry_keys}
        self.people, self.reached, self.fields = {}, set(), {}

    def _take(self, due: list[DueRow], calls_taken: set[str]) -> None:
        offline: dict[str, list[tuple[DueRow, Message]]] = defaultdict(list)
        online: dict[str, list[tuple[DueRow, Message]]] = defaultdict(list)
        for row in due:
            scenario = self.scenarios[row.scenario]
            if row.status == "committing":  # killed after the point of no return: never twice
                self.settle(scenario, row, "unconfirmed", "the run stopped while the server took it")
                continue
            if row.status == "sending" and row.channel not in ONLINE_CHANNELS and row.batch \
                    and self.batch_written(row):  # its list was written before the run was killed
                if not self.dry_run:
                    self.ledger.sent([row.key], note=row.batch, at=self.now_unix)
                self.report.count(scenario, row.step, "sent")
                continue
            if row.key in self.reached:
                self.settle(scenario, row, "cancelled", "goal reached")
                continue
            # a step keeps its place in the scenario: it waits for the one before it even when it
            # will not go itself (a parcel insert never arrives before the e-mail it follows)
            after = self.previous_step(row) if row.status in ("scheduled", "deferred") else None
            if after is not None:
                self.settle(scenario, row, "deferred", f"waits for step {row.step - 1}", due_ts=after)
                self.previous[row.key] = ("deferred", after, None)
                continue
            person = self.people.get(row.customer_id)
            address, why_not = self.address(row, person)
            if address is None:
                self.settle(scenario, row, "suppressed", why_not)
                continue
            if row.channel == "call" and not row.transactional:
                blocked = call_blocker(person, self.report.as_of, self.call_rules)
                if blocked is not None:  # called within the cooldown: not again from a scenario either
                    self.settle(scenario, row, "suppressed", blocked)
                    continue
                if row.customer_id not in calls_taken:  # over the day's capacity: tomorrow
                    later = self.now_unix + 86_400
                    self.settle(scenario, row, "deferred", "over the day's call capacity", due_ts=later)
                    self.previous[row.key] = ("deferred", later, None)
                    continue
            if row.status in WAITING:
                later = self.hold(row)
                if later is not None and row.status == "resend":  # held, and still to go once more only
                    self.report.count(scenario, row.step, "deferred")
                    self.report.count(scenario, row.step, "waiting")
                    self.previous[row.key] = ("resend", later, None)
                    if not self.dry_run:
                        self.ledger.settle(row.key, "resend", _MAYBE_HELD, due_ts=later, at=self.now_unix)
                    continue
                if later is not None:
                    self.settle(scenario, row, "deferred", "quiet hours, holiday or frequency cap", due_ts=later)
                    self.previous[row.key] = ("deferred", later, None)
                    continue
            untried = not row.transactional and row.attempts == 0 and row.status in ("scheduled", "deferred")
            if not self.budgets.take(row.scenario, scenario.budget, row.channel, held=untried):
                self.settle(scenario, row, "deferred", OVER_BUDGET, due_ts=self.budgets.next_month)
                self.report.count(scenario, row.step, "over_budget")
                self.previous[row.key] = ("deferred", self.budgets.next_month, None)
                continue
            try:
                message = self.message(row, person, address)
            except RenderError as exc:
                # a mistake in the scenario file, not in this message: the row waits for the fix
                self.budgets.give_back(row.scenario, scenario.budget, row.channel)
                self.report.count(scenario, row.step, "waiting")
                said = exc.phrase or str(exc)
                if said not in self.report.problems:
                    self.report.problems.append(said)
                continue
            if not row.transactional and row.channel != "insert":
                self.recent.setdefault(row.customer_id, []).append(self.now_unix)
            self.previous[row.key] = ("sent", row.due_ts, self.now_unix)  # goes in this run
            if self.dry_run:
                self.report.count(scenario, row.step, "would_send")
                self.sample(scenario, row, message)
                continue
            (online if row.channel in ONLINE_CHANNELS else offline)[row.channel].append((row, message))
        Clicks(self.operations).keep_links(self.tracked)  # where each tracked link leads, before any goes
        self.tracked = []
        for channel, items in offline.items():
            self.write_list(channel, items)
        for channel, items in online.items():
            self.push(channel, items)

    def settle(self, scenario: Scenario, row: DueRow, status: str, note: str | None, *,
               due_ts: int | None = None) -> None:
        self.report.count(scenario, row.step, status)
        self.previous[row.key] = (status, due_ts or row.due_ts, None)
        if not self.dry_run:
            self.ledger.settle(row.key, status, note, due_ts=due_ts, at=self.now_unix)

    def sample(self, scenario: Scenario, row: DueRow, message: Message) -> None:
        if self.samples[(row.scenario, row.step)] < SAMPLES_PER_STEP:
            self.samples[(row.scenario, row.step)] += 1
            self.report.samples.append({"scenario": scenario.name, "title": dict(scenario.title), "step": row.step,
                                        "channel": row.channel,
                                        "customer_id": row.customer_id, "subject": message.subject,
                                        "text": message.text})

    def push(self, channel: str, items: list[tuple[DueRow, Message]]) -> None:
        """Send e-mail or LINE messages over a few connections at once, a customer's in order."""
        factory = self.transports.get(channel)
        if factory is None:
            self.report.problems.append(Phrase.of(_NO_TRANSPORT[channel], n=len(items)))
            for row, _ in items:
                self.report.count(self.scenarios[row.scenario], row.step, "waiting")
            return
        if channel in self.stopped:  # its troubles stopped it in an earlier slice of this run
            for row, _ in items:
                self.report.count(self.scenarios[row.scenario], row.step, "waiting")
            return
        workers = max(1, min(PUSH_CONNECTIONS, len(items) // 50))
        parts: list[list[tuple[DueRow, Message]]] = [[] for _ in range(workers)]
        for item in items:  # one customer's messages stay on one connection, in step order
            parts[int(hashlib.md5(item[0].customer_id.encode()).hexdigest(), 16) % workers].append(item)
        self.sent_so_far = 0
        if workers == 1:
            stopped = self._push_part(channel, factory, parts[0], len(items))
        elif channel == "email":
            stopped = self._push_in_processes(channel, factory, parts, len(items))
        else:  # LINE: a resend after a crash is safe (the retry key), so threads will do
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"kizuna-{channel}") as pool:
                # a transport's settings error stops the run here, rows left to resend
                stopped = any([done.result() for done in [pool.submit(self._push_part, channel, factory, part,
                                                                      len(items)) for part in parts]])
        if stopped:
            self.stopped.add(channel)

    def _push_in_processes(self, channel: str, factory: Callable[[], Transport],
                           parts: list[list[tuple[DueRow, Message]]], total: int) -> bool:
        """E-mail over several connections, one process each (forked: nothing is pickled); whether one of
        them stopped for the channel's troubles.

        Why not threads: between marking a row `committing` and writing SMTP's final "." another
        thread may hold the GIL for milliseconds, and a kill then loses the message (it counts as
        maybe sent). In a process of its own the two are microseconds apart.
        """
        context = multiprocessing.get_context("fork")
        if self.progress:
            self.progress(channel, 0, total)
        children = []
        for part in parts:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=self._push_child, args=(channel, factory, part, total, sender),
                                    name=f"kizuna-{channel}", daemon=True)
            child.start()
            sender.close()
            children.append((child, receiver))
        outcomes = []
        for child, receiver in children:
            try:
                outcomes.append(receiver.recv())  # EOF if the child died without answering
            except EOFError:
                outcomes.append(({}, [], f"{channel}: a delivery process stopped (exit code {child.exitcode}); "
                                         "its messages wait for the next run", False))
            child.join()
        for tallies, problems, error, _ in outcomes:
            for (name, step), counts in tallies.items():
                for what, n in counts.items():
                    self.report.count(self.scenarios[name], step, what, n)
            self.report.problems.extend(problems)
            if error is not None:  # e.g. the SMTP login was refused: the rows wait for the next run
                raise KizunaError(error)
        if self.progress:
            self.progress(channel, total, total)
        return any(stopped for *_, stopped in outcomes)

    def _push_child(self, channel: str, factory: Callable[[], Transport], part: list[tuple[DueRow, Message]],
                    total: int, results) -> None:
        # a forked copy: its own SQLite connection, its own tallies; back to the parent through `results`
        self.parent = os.getppid()  # a run killed with SIGKILL takes its children's sending with it
        self.operations.forget_connections()
        self.report = RunReport(self.report.as_of, self.report.now, self.report.dry_run)
        self.progress = None
        error, stopped = None, False
        try:
            stopped = self._push_part(channel, factory, part, total)
        except KizunaError as exc:
            error = exc.phrase or str(exc)  # a phrase: said in the reader's language where the run stops
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the run
            error = f"{channel}: {type(exc).__name__}: {exc}"
        tallies = {key: dict(t.counts) for key, t in self.report.tallies.items()}
        results.send((tallies, self.report.problems, error, stopped))
        results.close()
        os._exit(0)  # no cleanup of what the parent owns (its store connection, its threads)

    def _push_part(self, channel: str, factory: Callable[[], Transport], items: list[tuple[DueRow, Message]],
                   total: int) -> bool:
        """Send `items` over one connection, in order; whether the channel's troubles stopped it."""
        troubles = 0  # channel errors in a row: the server is away, or the credentials are wrong
        try:
            with factory() as transport:
                for row, message in items:
                    scenario = self.scenarios[row.scenario]
                    if self.parent is not None and os.getppid() != self.parent:
                        break  # the run that forked this process was killed: stop where we are
                    if troubles >= MAX_TROUBLES:
                        self.report.count(scenario, row.step, "waiting")
                        continue
                    troubles = self._push_one(channel, transport, scenario, row, message, troubles, total)
        finally:
            if threading.current_thread() is not threading.main_thread():
                self.operations.close()  # this thread's SQLite connection
        return troubles >= MAX_TROUBLES

    def _push_one(self, channel: str, transport: Transport, scenario: Scenario, row: DueRow, message: Message,
                  troubles: int, total: int) -> int:
        self.ledger.sending(row.key)
        committed: list[bool] = []

        def committing() -> None:
            self.ledger.committing(row.key)
            committed.append(True)

        try:
            receipt = transport.send(message, committing=committing)
        except DeliveryError as exc:
            troubles = self.refused(scenario, row, exc, troubles, went=bool(committed))
            if troubles >= MAX_TROUBLES:
                self.report.problems.append(Phrase.of("run.channel_trouble", channel=Phrase.of(f"channel_{channel}"),
                                                      reason=exc.reason))
            return troubles
        self.ledger.sent([row.key], provider_id=receipt.provider_id, at=self.now_unix,
                         note="accepted earlier (409)" if receipt.already_accepted else None)
        self.report.count(scenario, row.step, "sent")
        if self.progress:
            with self.lock:
                self.sent_so_far += 1
                self.progress(channel, self.sent_so_far, total)
        return 0

    def refused(self, scenario: Scenario, row: DueRow, exc: DeliveryError, troubles: int, *, went: bool) -> int:
        """Record what the channel's refusal (or silence) means for `row`; the troubles in a row after it.

        `went`: the message was handed over whole (e-mail: its final "." was being written).
        An answer is acted on: 5xx fails the row with the reply, 4xx schedules it again after
        a back-off. No answer after the message went whole (`maybe_delivered`) is the one case
        in which the server may have it: the row is sent once more, with the same Message-ID
        (receivers drop a copy by it), and if that is not answered either it is `unconfirmed`.
        A refusal of the channel (relay denied, login required, LINE's 401 / 403) is not the
        message's fault: the row waits unchanged for the configuration to be fixed.
        """
        resending = row.status == "resend"
        again = "resend" if resending else "scheduled"  # a resend stays one: it goes once more, at most
        attempts = row.attempts + 1
        if exc.maybe_delivered:
            if resending:
                self.settle(scenario, row, "unconfirmed", f"{exc.reason}; no answer to its resend either")
            else:
                self.settle(scenario, row, "resend", f"{exc.reason}; to be sent once more, with the same Message-ID",
                            due_ts=self.now_unix + retry_delay(attempts))
                self.report.count(scenario, row.step, "waiting")
            return troubles + 1
        if exc.status in (401, 403) or exc.channel_wide:  # our token, login or relay, not this message
            self.settle(scenario, row, again, exc.reason)
            self.report.count(scenario, row.step, "waiting")
            return MAX_TROUBLES if exc.status in (401, 403) else troubles + 1
        if exc.permanent:
            self.settle(scenario, row, "failed", exc.reason)
            # refused before it went (an unknown recipient) says nothing about the channel; refused
            # after (its content, its signature) may be what the server says to every message
            return troubles + 1 if went else 0
        # for now: 4xx (after a back-off), or no server to answer (at the next run)
        later = self.now_unix + retry_delay(attempts) if exc.status is not None else None
        self.settle(scenario, row, again, exc.reason, due_ts=later)
        self.report.count(scenario, row.step, "waiting")
        return troubles + 1

    def batch_written(self, row: DueRow) -> bool:
        folder = self.context.outbox / row.channel
        return all((folder / f"{row.batch}.{fmt}").exists() for fmt in ("csv", "xlsx"))

    def list_rows(self, channel: str, items: list[tuple[DueRow, Message]]
                  ) -> tuple[list[Column], list[list[Any]], str, str]:
        """The columns, rows (in the order people work through them), sheet name and title row of a
        channel's list: headers in the run's language, scenario titles, 宛名 with 様."""
        from kizuna.exporting import list_heading
        from kizuna.i18n import text

        lang = self.lang or "ja"
        spec = LIST_COLUMNS[channel]
        records = []
        for row, message in items:
            fields = message.fields
            name = fields.get("name") or ""
            values = {**fields, "scenario": self.scenarios[row.scenario].label(lang), "step": row.step,
                      "addressee": text("sheet.addressee", lang, name=name) if name else "",
                      "postal_code": _postal_code(fields.get("postal_code")), "order_id": fields.get("next_order_id"),
                      "ordered_on": fields.get("next_order_at"),
                      "dm_content": message.text, "insert_content": message.text, "script": message.text}
            records.append(values)
        records.sort(key=_LIST_ORDER[channel])
        columns = [Column(text(f"header.{key}", lang), kind) for key, kind in spec]
        # a field the store left empty is "" for templates: an empty cell here, whatever the column's kind
        rows = [[None if values.get(key) == "" else values.get(key) for key, _ in spec] for values in records]
        sheet = text(LIST_SHEETS[channel], lang)
        title = list_heading(sheet, lang, as_of=self.report.as_of, business=self.context.settings.business.name)
        return columns, rows, sheet, title

    def write_list(self, channel: str, items: list[tuple[DueRow, Message]]) -> None:
        """One list file (csv and xlsx) per channel and run; rows marked sent once both exist."""
        folder = self.context.outbox / channel
        folder.mkdir(parents=True, exist_ok=True)
        batch = f"{self.now.strftime('%Y%m%d-%H%M%S')}-{channel}-{secrets.token_hex(3)}"
        keys = [row.key for row, _ in items]
        self.ledger.sending_many(keys, batch)
        columns, rows, sheet, title = self.list_rows(channel, items)
        for fmt in ("csv", "xlsx"):
            write_table(folder / f"{batch}.{fmt}", columns, rows, fmt=fmt, sheet=sheet, title=title)
        self.ledger.sent(keys, note=batch, at=self.now_unix)
        self.report.files.extend(folder / f"{batch}.{fmt}" for fmt in ("csv", "xlsx"))
        for row, _ in items:
            self.report.count(self.scenarios[row.scenario], row.step, "sent")


def _postal_code(value: object) -> str:
    """A Japanese postal code as people write it (150-0005); anything else as given."""
    text = str(value or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"{digits[:3]}-{digits[3:]}" if len(digits) == 7 and digits.isascii() else text


def _day(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def _by_postal_code(values: dict[str, Any]) -> tuple:
    code = values["postal_code"]
    return (not code, code, values.get("customer_id") or "")  # no postal code: last, to be looked up


def _by_packing_day(values: dict[str, Any]) -> tuple:
    # the parcel's order date, else the day the next order is expected; a customer with neither: last
    day = _day(values.get("ordered_on")) or _day(values.get("expected_next_order_on"))
    return (day is None, day or dt.date.min, values.get("order_id") or "", values.get("customer_id") or "")


def _by_value_at_risk(values: dict[str, Any]) -> tuple:
    def missing_last(x: object) -> float:
        return -x if isinstance(x, int | float) and x == x else float("inf")

    return (missing_last(values.get("value_at_risk")), missing_last(values.get("churn_risk")))


_LIST_ORDER: dict[str, Callable[[dict[str, Any]], tuple]] = {
    "dm": _by_postal_code, "insert": _by_packing_day, "call": _by_value_at_risk}


_ABSENT = object()
_MAYBE_HELD = ("an earlier try may have reached the server; to be sent once more, with the same Message-ID, "
               "after the quiet hours, holiday or frequency cap")
_NO_TRANSPORT = {"email": "run.no_smtp", "line": "run.no_line_token"}  # catalogue keys


def step_key(row: DueRow, step: int) -> str:
    """The ledger key of `row`'s scenario step `step`, for its customer and occasion."""
    return f"{row.scenario}/{step}/{row.customer_id}/{row.occasion}"


def default_transports(settings: RunSettings, home: Path, lang: str) -> dict[str, Callable[[], Transport]]:
    """The channels kizuna.toml and the environment configure (key files named relative to `home`)."""
    import os

    from kizuna.delivery import LineTransport, SmtpTransport

    result: dict[str, Callable[[], Transport]] = {}
    if settings.email.smtp_url:
        result["email"] = lambda: SmtpTransport.from_settings(settings.email, home, lang=lang)
    if os.environ.get("KIZUNA_LINE_TOKEN"):
        result["line"] = lambda: LineTransport.from_settings(settings.line)
    return result
