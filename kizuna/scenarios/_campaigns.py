"""One-off campaigns (`campaigns/NAME.yaml`): one message to a saved segment, a segment or a matrix
cell, on one channel, now or from `send_at`, in A/B variants if wanted, with a holdout — sent
through the send ledger as scenarios are, and measured by `kizuna results` as they are.

    title: {ja: 春のメルマガ, en: Spring newsletter}
    segment: lapsing-water           # a saved segment (segments/NAME.yaml), or a segment id or label
    channel: email                   # email, line, dm, insert, call
    lang: ja                         # the message's language (default ja)
    subject: {ja: "{{ name }}様 春のお知らせ", en: "Spring news for {{ name }}"}
    body: {ja: "…{{ name }}…", en: "…"}
    send_at: 2027-03-01 10:00        # optional: the first `kizuna run` from then sends it (business time zone)
    holdout: 0.1                     # optional; [delivery] holdout_share otherwise
    budget: 50000                    # optional: yen a calendar month ([costs] prices); the rest waits
    goal: {kind: order, days: 30}    # optional: what `kizuna results` counts (this is the default)
    ab:                              # optional: variants of the subject and/or body, and their shares
      - {name: A, share: 0.5}
      - {name: B, share: 0.5, subject: {ja: "…", en: "…"}}

In the send ledger a campaign is the scenario ``campaign:NAME`` with one step per variant and
one occasion, ``campaign``. It is enrolled once, by whichever comes first — `kizuna campaign
send` or the first `kizuna run` after `send_at`: the segment's members as of then, each in one
variant or in the control group (the campaign's holdout, the workspace's global control), by a
hash of the customer id and the campaign's name, as a scenario's holdout is. After that nothing
is enrolled again: sending it twice sends nothing twice; what waits (quiet hours, holidays, the
frequency cap) goes with the next run. Consents, addresses, the cap and the unsubscribe link
are the dispatcher's, as for every scenario message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import yaml

from kizuna._errors import KizunaError, Phrase
from kizuna.delivery import CHANNELS, Transport
from kizuna.operations import DueRow, Enrolment, Ledger, record_audit
from kizuna.scenarios._context import RunContext, RunSettings
from kizuna.scenarios._costs import incremental_profit
from kizuna.scenarios._dispatch import RunReport, dispatch
from kizuna.scenarios._effect import Counts, goal_conversions, measure
from kizuna.scenarios._model import (
    LANGS,
    Goal,
    Scenario,
    ScenarioError,
    Step,
    Trigger,
    _check_template,
    _Reader,
    yaml_mapping,
)
from kizuna.scenarios._segments_saved import NAME, SEGMENT_FOLDER, find_segment, write_atomically
from kizuna.scenarios._where import segment_population, where_predicate, with_contacts

__all__ = ["CAMPAIGN_FOLDER", "CAMPAIGN_PREFIX", "Campaign", "CampaignPlan", "Variant", "campaign_plan",
           "campaign_results", "campaign_state", "campaigns_due", "find_campaign", "load_campaign", "load_campaigns",
           "campaign_text", "preview_campaign", "send_campaign", "with_campaigns", "write_campaign"]

CAMPAIGN_FOLDER = "campaigns"
CAMPAIGN_PREFIX = "campaign:"  # a campaign's name in the ledger's scenario column; no scenario name has ":"
OCCASION = "campaign"
DEFAULT_GOAL = Goal("order", 30)
# What a channel needs of a customer to reach them (the contact and consent columns of a saved segment).
REACH = {"email": ("has_email", "email_consent"), "line": ("has_line", "line_consent"),
         "dm": ("has_address", "dm_consent"), "insert": ("has_address",), "call": ("has_phone",)}


@dataclass(frozen=True)
class Variant:
    """One version of the message: its name, subject and body ({ja, en}), and the share of customers it goes to."""

    name: str
    subject: dict[str, str]
    body: dict[str, str]
    share: float


@dataclass(frozen=True)
class Campaign:
    name: str
    title: dict[str, str]
    segment: str
    channel: str
    lang: str
    subject: dict[str, str]
    body: dict[str, str]
    variants: tuple[Variant, ...]
    holdout: float | None
    send_at: dt.datetime | None  # local wall-clock time of the business, or aware
    goal: Goal
    path: Path
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    budget: int | None = None  # yen per calendar month, as a scenario's (kizuna.scenarios._costs)

    def label(self, lang: str = "ja") -> str:
        return self.title.get(lang) or self.title.get("ja") or self.name

    @property
    def ledger_name(self) -> str:
        """The campaign's name in the send ledger (its scenario column)."""
        return CAMPAIGN_PREFIX + self.name

    @property
    def ab(self) -> bool:
        return len(self.variants) > 1

    def as_scenario(self) -> Scenario:
        """The campaign as the dispatcher and the preview take it: one step per variant."""
        steps = tuple(Step(number=i, channel=self.channel, wait_days=0, subject=v.subject, body=v.body,
                           line=self.lines.get("ab") or self.lines.get("body"))
                      for i, v in enumerate(self.variants, start=1))
        return Scenario(name=self.ledger_name, title=self.title, trigger=Trigger("campaign", {}), segments=(),
                        conditions=(), goal=self.goal, holdout=self.holdout, steps=steps, path=self.path,
                        lang=self.lang, lines=self.lines, budget=self.budget)

    def variant_of(self, customer_id: str) -> int:
        """The variant (1, 2, …) of a customer: a hash of their id and the campaign's name, read as a
        number in [0, 1) and laid along the variants' shares."""
        point = _hash_share(f"variant\0{self.name}", customer_id)
        total = 0.0
        for number, variant in enumerate(self.variants, start=1):
            total += variant.share
            if point < total:
                return number
        return len(self.variants)

    def send_at_utc(self, timezone: str) -> dt.datetime | None:
        if self.send_at is None:
            return None
        at = self.send_at if self.send_at.tzinfo else self.send_at.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
        return at.astimezone(dt.UTC)


def _hash_share(salt: str, customer_id: str) -> float:
    digest = hashlib.sha256(f"{salt}\0{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# -- reading ------------------------------------------------------------------------------------------
class _CampaignReader(_Reader):
    FIELDS = ("title", "segment", "channel", "lang", "subject", "body", "send_at", "holdout", "budget", "goal", "ab")

    def own(self, node: yaml.Node | None, field_name: str, key: str, **values: Any) -> ScenarioError:
        return ScenarioError(self.path, node.start_mark.line + 1 if node is not None else None, field_name,
                             Phrase.of(f"campaign.{key}", **values))

    def campaign(self, node: yaml.MappingNode) -> Campaign:
        fields = self.mapping(node, "", self.FIELDS, required=("segment", "channel", "body"))
        name = self.path.stem  # campaigns/NAME.yaml: the name is the file's
        if not NAME.fullmatch(name):
            raise self.fail(None, "name", "bad_name", name=repr(name))
        lang = str(self.scalar(fields["lang"], "lang")) if "lang" in fields else "ja"
        if lang not in LANGS:
            raise self.fail(fields["lang"], "lang", "one_of", allowed=", ".join(LANGS), value=repr(lang))
        channel = str(self.scalar(fields["channel"], "channel"))
        if channel not in CHANNELS:
            raise self.fail(fields["channel"], "channel", "one_of", allowed=", ".join(CHANNELS), value=repr(channel))
        subject = self.template(fields.get("subject"), "subject")
        body = self.template(fields["body"], "body")
        variants = self.variants(fields.get("ab"), subject, body)
        if channel == "email" and not all(v.subject["ja"].strip() or v.subject["en"].strip() for v in variants):
            raise self.fail(node, "subject", "email_subject")
        segment = str(self.scalar(fields["segment"], "segment")).strip()
        if not segment:
            raise self.fail(fields["segment"], "segment", "required")
        return Campaign(
            name=name, title=self.text(fields["title"], "title") if "title" in fields else {"ja": name, "en": name},
            segment=segment, channel=channel, lang=lang, subject=subject, body=body, variants=variants,
            holdout=self.number(fields["holdout"], "holdout", 0, 0.9) if "holdout" in fields else None,
            send_at=self.moment(fields["send_at"]) if "send_at" in fields else None,
            goal=self.goal(fields["goal"]) if "goal" in fields else DEFAULT_GOAL,
            path=self.path, lines={k: v.start_mark.line + 1 for k, v in fields.items()},
            budget=self.number(fields["budget"], "budget", 0, 10**12, integer=True) if "budget" in fields else None,
        )

    def template(self, node: yaml.Node | None, field_name: str) -> dict[str, str]:
        if node is None:
            return {"ja": "", "en": ""}
        texts = self.text(node, field_name)
        for lang in LANGS:  # a template that cannot be parsed is a mistake in the file, found now
            _check_template(self, node, f"{field_name}.{lang}", texts[lang])
        return texts

    def moment(self, node: yaml.Node) -> dt.datetime | None:
        value = self.scalar(node, "send_at")
        if value is None or value == "":
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value, dt.time())
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise self.own(node, "send_at", "bad_moment", value=repr(value)) from None
        if not isinstance(value, dt.datetime):
            raise self.own(node, "send_at", "bad_moment", value=repr(value))
        return value

    def variants(self, node: yaml.Node | None, subject: dict[str, str], body: dict[str, str]) -> tuple[Variant, ...]:
        if node is None:
            return (Variant("", subject, body, 1.0),)
        if not isinstance(node, yaml.SequenceNode) or len(node.value) < 2:
            raise self.own(node, "ab", "ab_list")
        found: list[Variant] = []
        for number, item in enumerate(node.value, start=1):
            where = f"ab[{number}]"
            parts = self.mapping(item, where, ("name", "share", "subject", "body"), required=("name", "share"))
            name = str(self.scalar(parts["name"], f"{where}.name")).strip()
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", name) or name in {v.name for v in found}:
                raise self.own(parts["name"], f"{where}.name", "bad_variant_name", name=repr(name))
            share = self.number(parts["share"], f"{where}.share", 0, 1)
            found.append(Variant(
                name=name, share=float(share),
                subject=self.template(parts["subject"], f"{where}.subject") if "subject" in parts else subject,
                body=self.template(parts["body"], f"{where}.body") if "body" in parts else body,
            ))
        if abs(sum(v.share for v in found) - 1) > 1e-6:
            raise self.own(node, "ab", "shares", total=f"{sum(v.share for v in found):g}")
        return tuple(found)


def load_campaign(path: Path) -> Campaign:
    """The campaign in `path`, checked (ScenarioError names the file, line and field)."""
    return _CampaignReader(path).campaign(yaml_mapping(path, "campaign.not_mapping"))


def load_campaigns(folder: Path) -> list[Campaign]:
    """Every campaign in `folder` (campaigns/), by name."""
    if not folder.is_dir():
        return []
    return sorted((load_campaign(p) for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")]), key=lambda c: c.name)


def find_campaign(folder: Path, name: str) -> Campaign:
    for suffix in (".yaml", ".yml"):
        path = folder / f"{name}{suffix}"
        if NAME.fullmatch(name) and path.is_file():
            return load_campaign(path)
    known = ", ".join(c.name for c in load_campaigns(folder)) or "-"
    raise KizunaError(Phrase.of("campaign.not_found", name=name, folder=str(folder), known=known))


def campaign_text(values: Mapping[str, Any]) -> str:
    """A campaign file's YAML from its fields (as the web form gives them): title, segment, channel,
    lang, subject, body, send_at, holdout, goal, ab; empty ones are left out."""
    def texts(pair: Mapping[str, str] | None) -> dict[str, str] | None:
        if not pair or not any((pair.get(lang) or "").strip() for lang in LANGS):
            return None
        return {lang: (pair.get(lang) or "").replace("\r\n", "\n") for lang in LANGS}

    document: dict[str, Any] = {"title": texts(values.get("title")), "segment": values.get("segment"),
                                "channel": values.get("channel"), "lang": values.get("lang") or "ja",
                                "subject": texts(values.get("subject")), "body": texts(values.get("body"))}
    if values.get("send_at"):
        document["send_at"] = str(values["send_at"])
    if values.get("holdout") not in (None, ""):
        document["holdout"] = values["holdout"]
    if values.get("budget") not in (None, ""):
        document["budget"] = values["budget"]
    if values.get("goal"):
        document["goal"] = dict(values["goal"])
    if values.get("ab"):
        document["ab"] = [{k: v for k, v in [("name", a["name"]), ("share", a["share"]),
                                             ("subject", texts(a.get("subject"))), ("body", texts(a.get("body")))]
                           if v is not None} for a in values["ab"]]
    document = {k: v for k, v in document.items() if v is not None}
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1000)


def write_campaign(folder: Path, name: str, text: str) -> Campaign:
    """Write campaigns/NAME.yaml with `text` once it reads as a campaign (checked in a folder of its
    own first, then put in place whole: cron never reads half a file); the campaign."""
    import tempfile

    if not NAME.fullmatch(name):
        raise KizunaError(Phrase.of("saved_segment.bad_name", name=repr(name)))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    with tempfile.TemporaryDirectory(prefix=".check-", dir=folder) as scratch:
        check = Path(scratch) / path.name
        check.write_text(text, encoding="utf-8")
        try:
            load_campaign(check)
        except ScenarioError as exc:  # named as the file it would have been
            problem = exc.phrase.values["problem"] if exc.phrase is not None else str(exc)
            raise ScenarioError(path, exc.line, exc.field, problem) from None
    write_atomically(path, text)
    return load_campaign(path)


# -- who gets it -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignPlan:
    """What sending a campaign now would do: its segment's members, how many are held out, how many
    each variant would go to and how many of those the channel reaches with consent. `enrolled`:
    customers already in the ledger (it was sent before: nothing new is enrolled, `to_send` is 0)."""

    campaign: str
    channel: str
    members: int
    holdout: int
    variants: dict[str, int]
    reachable: dict[str, int]
    enrolled: int = 0
    waiting: int = 0

    @property
    def to_send(self) -> int:
        return 0 if self.enrolled else sum(self.reachable.values())


def _consents(context: RunContext) -> dict[str, dict[str, bool]]:
    return {channel: context.operations.consents(channel) for channel in ("email", "line", "dm")}


def campaign_members(context: RunContext, campaign: Campaign, *, tables: Mapping[str, ibis.Table],
                     audience: Mapping[str, ibis.Table]) -> pa.Table:
    """The campaign's segment now: customer_id and `reachable` (the channel reaches them, with consent)."""
    consents = _consents(context)
    reach = REACH[campaign.channel]
    population = segment_population(audience.get("scores"), audience.get("predictions"))
    population = with_contacts(population, tables["customers"], consents, set(reach))
    folder = context.home / SEGMENT_FOLDER
    if (folder / f"{campaign.segment}.yaml").is_file() or (folder / f"{campaign.segment}.yml").is_file():
        saved = find_segment(folder, campaign.segment)
        table, predicate = where_predicate(population, saved.conditions, source=saved, tables=tables,
                                           consents=consents)
    else:
        from kizuna.analytics import segment_filter

        try:
            _, predicate = segment_filter(population, campaign.segment)
        except KizunaError as exc:
            raise ScenarioError(campaign.path, campaign.lines.get("segment"), "segment",
                                Phrase.of("campaign.unknown_segment", name=repr(campaign.segment),
                                          problem=exc.phrase or str(exc))) from None
        table = population
    reachable = ibis.literal(True)
    for column in reach:
        reachable = reachable & table[column]
    return table.filter(predicate).select("customer_id", reachable=reachable).order_by("customer_id").to_pyarrow()


def _enrolled_count(ledger: Ledger, campaign: Campaign) -> tuple[int, int]:
    """(rows of the campaign in the ledger, of them still waiting to go)."""
    rows = ledger.ops.query("SELECT status, COUNT(*) AS n FROM deliveries WHERE scenario = ? GROUP BY status",
                            (campaign.ledger_name,))
    waiting = sum(r["n"] for r in rows if r["status"] in ("scheduled", "deferred", "resend", "sending"))
    return sum(r["n"] for r in rows), waiting


def _groups(campaign: Campaign, ids: Sequence[str], *, secret: str,
            settings: RunSettings) -> list[tuple[str, str, int]]:
    """(customer, group, variant) of each member: treated / holdout / global_control as a scenario's."""
    from kizuna.scenarios._run import group_of

    holdout = campaign.holdout if campaign.holdout is not None else settings.delivery.holdout_share
    return [(c, group_of(c, campaign.ledger_name, secret=secret, holdout=holdout,
                         global_control=settings.delivery.global_control_share), campaign.variant_of(c)) for c in ids]


def campaign_plan(context: RunContext, campaign: Campaign) -> CampaignPlan:
    """What `send_campaign` would enrol now (nothing, once the campaign was sent: see `enrolled`)."""
    ledger = Ledger(context.operations)
    enrolled, waiting = _enrolled_count(ledger, campaign)
    if enrolled:
        rows = ledger.ops.query("SELECT step, grp, COUNT(*) AS n FROM deliveries WHERE scenario = ? "
                                "GROUP BY step, grp", (campaign.ledger_name,))
        names = [v.name for v in campaign.variants]
        variants = {names[r["step"] - 1] if r["step"] <= len(names) else str(r["step"]): 0 for r in rows}
        for r in rows:
            if r["grp"] == "treated":
                variants[names[r["step"] - 1] if r["step"] <= len(names) else str(r["step"])] += r["n"]
        return CampaignPlan(campaign.name, campaign.channel, members=enrolled,
                            holdout=sum(r["n"] for r in rows if r["grp"] != "treated"), variants=variants,
                            reachable=dict.fromkeys(variants, 0), enrolled=enrolled, waiting=waiting)
    audience = _audience(context)
    members = campaign_members(context, campaign, tables=context.tables(), audience=audience)
    ids = members.column("customer_id").to_pylist()
    reach = dict(zip(ids, members.column("reachable").to_pylist(), strict=True))
    variants = {v.name: 0 for v in campaign.variants}
    reachable = dict.fromkeys(variants, 0)
    held = 0
    for customer, grp, variant in _groups(campaign, ids, secret=context.operations.secret(), settings=context.settings):
        if grp != "treated":
            held += 1
            continue
        name = campaign.variants[variant - 1].name
        variants[name] += 1
        reachable[name] += bool(reach[customer])
    return CampaignPlan(campaign.name, campaign.channel, members=len(ids), holdout=held, variants=variants,
                        reachable=reachable)


def _audience(context: RunContext) -> dict[str, ibis.Table]:
    from kizuna.scenarios._run import audience_tables

    return audience_tables(context.store)


def _enrolments(context: RunContext, campaign: Campaign, *, tables: Mapping[str, ibis.Table],
                audience: Mapping[str, ibis.Table], at: int) -> list[Enrolment]:
    members = campaign_members(context, campaign, tables=tables, audience=audience)
    found = []
    for customer, grp, variant in _groups(campaign, members.column("customer_id").to_pylist(),
                                          secret=context.operations.secret(), settings=context.settings):
        found.append(Enrolment(
            key=f"{campaign.ledger_name}/{variant}/{customer}/{OCCASION}", ref=secrets.token_hex(16),
            scenario=campaign.ledger_name, step=variant, customer_id=customer, occasion=OCCASION, occasion_ts=at,
            detail=campaign.variants[variant - 1].name or None, channel=campaign.channel, grp=grp,
            transactional=False, due_ts=at))
    return found


# -- sending ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignsDue:
    """What the campaigns add to a run's dispatch: their rows due now, their customers' data, each
    row's personal fields, and the campaigns as the dispatcher takes them (ledger name -> scenario)."""

    rows: list[DueRow]
    people: dict[str, dict]
    fields: dict[str, dict]
    scenarios: dict[str, Scenario]


def campaigns_due(context: RunContext, campaigns: Sequence[Campaign], ledger: Ledger, report: RunReport, *,
                  start: Iterable[str], tables: dict[str, ibis.Table], audience: dict[str, ibis.Table],
                  as_of: dt.date, now: dt.datetime, dry_run: bool = False, lang: str | None = None,
                  by: str = "kizuna run") -> CampaignsDue:
    """Enrol the campaigns named in `start` that were never enrolled (counted in `report`, with an audit
    line naming `by`; a dry run records nothing), and gather the rows of every campaign in `campaigns`
    due at `now`."""
    from kizuna.scenarios._run import _as_due, _due_people, _enrolled

    scenarios = {c.ledger_name: c.as_scenario() for c in campaigns}
    at = int(now.timestamp())
    extra: list[DueRow] = []
    for campaign in campaigns:
        if campaign.name not in set(start) or _enrolled_count(ledger, campaign)[0]:
            continue
        new = _enrolments(context, campaign, tables=tables, audience=audience, at=at)
        if dry_run:
            extra += [_as_due(e) for e in new if e.grp == "treated"]
        else:
            ledger.enrol(new)
            record_audit(context.operations, by, "campaign.send", campaign.name,
                         sum(e.grp == "treated" for e in new))
        _enrolled(report, new, scenarios)
    rows = [r for r in ledger.due(at) if r.scenario in scenarios] + extra
    if not rows:
        return CampaignsDue([], {}, {}, scenarios)
    zone = zoneinfo.ZoneInfo(context.settings.business.timezone)
    people, fields = _due_people(tables, context.settings, rows, as_of, audience, lang or "ja", zone)
    return CampaignsDue(rows, people, fields, scenarios)


def scheduled(campaigns: Iterable[Campaign], now: dt.datetime, timezone: str) -> list[str]:
    """The campaigns whose `send_at` has come by `now`."""
    return [c.name for c in campaigns if c.send_at is not None and c.send_at_utc(timezone) <= now.astimezone(dt.UTC)]


def with_campaigns(context: RunContext, scenarios: dict[str, Scenario], ledger: Ledger, report: RunReport,
                   *, tables: dict[str, ibis.Table], audience: dict[str, ibis.Table], as_of: dt.date, now: dt.datetime,
                   dry_run: bool = False, lang: str | None = None) -> tuple[Any, dict[str, Scenario]]:
    """`kizuna run`'s part of the campaigns: those whose `send_at` has come are enrolled (once), and the
    rows of every campaign due now are returned (a `Due`, None when there are none) with `scenarios` and
    the campaigns' own, for the run to dispatch after the scenarios' rows, under one frequency cap. A
    campaign that cannot be read or evaluated is a line in the report's problems; the scenarios and the
    other campaigns go on."""
    from kizuna.scenarios._run import Due

    campaigns = []
    folder = context.home / CAMPAIGN_FOLDER
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []:
        try:
            campaigns.append(load_campaign(path))
        except KizunaError as exc:
            report.problems.append(exc.phrase or str(exc))
    start = scheduled(campaigns, now, context.settings.business.timezone)
    found = CampaignsDue([], {}, {}, {})
    for campaign in campaigns:  # one at a time: one campaign's mistake stops only that campaign
        try:
            part = campaigns_due(context, [campaign], ledger, report, start=start, tables=tables, audience=audience,
                                 as_of=as_of, now=now, dry_run=dry_run, lang=lang)
        except KizunaError as exc:
            report.problems.append(exc.phrase or str(exc))
            continue
        found = CampaignsDue(found.rows + part.rows, {**found.people, **part.people},
                             {**found.fields, **part.fields}, {**found.scenarios, **part.scenarios})
    if not found.rows:
        return None, {**scenarios, **found.scenarios}
    return (Due(rows=found.rows, people=found.people, reached=set(), fields=found.fields),
            {**scenarios, **found.scenarios})


def send_campaign(context: RunContext, campaign: Campaign, *, as_of: dt.date, now: dt.datetime | None = None,
                  dry_run: bool = False, transports: Mapping[str, Callable[[], Transport]] | None = None,
                  lang: str | None = None, by: str = "kizuna") -> RunReport:
    """Send `campaign` now (see the module docstring): enrol it unless it was before (an audit line
    names `by`), and deliver its messages due, through the dispatcher's rules. Holds the workspace's
    run lock (not a dry run)."""
    import contextlib

    from kizuna.scenarios._run import _one_run_at_a_time

    with contextlib.nullcontext() if dry_run else _one_run_at_a_time(context.run_lock, context.operations):
        now = (now or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(context.settings.business.timezone))
        ledger = Ledger(context.operations)
        report = RunReport(as_of, now, dry_run)
        found = campaigns_due(context, [campaign], ledger, report, start=[campaign.name], tables=context.tables(),
                              audience=_audience(context), as_of=as_of, now=now, dry_run=dry_run, lang=lang, by=by)
        return dispatch(context, found.rows, ledger=ledger, scenarios=found.scenarios, people=found.people,
                        reached=set(), report=report, now=now, dry_run=dry_run, transports=transports, lang=lang,
                        fields=found.fields)


def campaign_state(context: RunContext, campaign: Campaign, now: dt.datetime | None = None) -> dict[str, Any]:
    """draft / scheduled / sent, and the ledger's counts: enrolled, sent, waiting, held out."""
    rows = context.operations.query("SELECT status, COUNT(*) AS n FROM deliveries WHERE scenario = ? "
                                    "GROUP BY status", (campaign.ledger_name,))
    counts = {r["status"]: r["n"] for r in rows}
    enrolled = sum(counts.values())
    state = "sent" if enrolled else "scheduled" if campaign.send_at is not None else "draft"
    return {"state": state, "enrolled": enrolled, "sent": counts.get("sent", 0) + counts.get("unconfirmed", 0),
            "waiting": sum(counts.get(s, 0) for s in ("scheduled", "deferred", "resend", "sending", "committing")),
            "holdout": counts.get("holdout", 0), "suppressed": counts.get("suppressed", 0),
            "failed": counts.get("failed", 0)}


def preview_campaign(context: RunContext, campaign: Campaign, customer_id: str, *, variant: int = 1,
                     as_of: dt.date, lang: str | None = None, replace: Mapping[str, object] | None = None
                     ) -> dict[str, str]:
    """Variant `variant`'s message for one customer, rendered as it would be sent (nothing is recorded;
    `replace`: fields shown with these values instead, a viewer's masked contact data)."""
    from kizuna.scenarios._preview import preview_message

    if not 1 <= variant <= len(campaign.variants):
        raise KizunaError(Phrase.of("campaign.no_variant", variant=variant, count=len(campaign.variants)))
    found = preview_message(context, [campaign.as_scenario()], campaign.ledger_name, customer_id, step=variant,
                            as_of=as_of, lang=lang or campaign.lang, replace=replace)
    return {**found, "campaign": campaign.name, "variant": campaign.variants[variant - 1].name}


# -- results ------------------------------------------------------------------------------------------------
def campaign_results(campaigns: Sequence[Campaign], rows: Sequence[dict[str, Any]], *, ledger: Ledger,
                     tables: Mapping[str, ibis.Table], settings: RunSettings, as_of: dt.date | None = None,
                     lang: str = "ja") -> list[dict[str, Any]]:
    """`kizuna results`' rows of the campaigns: from `rows` (what `scenario_results` made of their ledger
    rows, per step = variant), each variant's conversion against the control group, then the campaign's
    total — every variant against the same control (the campaign's holdout and the global control)."""
    defined = {c.ledger_name: c for c in campaigns}
    out: list[dict[str, Any]] = []
    for ledger_name in dict.fromkeys(r["scenario"] for r in rows):
        campaign = defined.get(ledger_name)
        mine = [dict(r) for r in rows if r["scenario"] == ledger_name]
        costs = {r["step"]: r.get("cost") or 0 for r in mine}
        effects = _variant_effects(campaign, ledger, tables, settings, as_of, costs) if campaign else {}
        for row in mine:
            row["kind"] = "campaign"
            row["scenario"] = ledger_name.removeprefix(CAMPAIGN_PREFIX)
            if campaign is not None:
                row["title"] = campaign.label(lang)
            if row["step"] is not None:
                number = row["step"]
                if campaign is not None and not campaign.ab:
                    continue  # one message: the total says it all
                row["step"] = campaign.variants[number - 1].name if campaign and number <= len(campaign.variants) \
                    else str(number)
                row["holdout"] = None
                row.update(effects.get(number, {}))
            else:
                holdout = sum(r["holdout"] or 0 for r in rows if r["scenario"] == ledger_name and r["step"] is not None)
                row["holdout"] = holdout
                row.update(effects.get(None, {}))
            out.append(row)
    return out


def _variant_effects(campaign: Campaign, ledger: Ledger, tables: Mapping[str, ibis.Table], settings: RunSettings,
                     as_of: dt.date | None, costs: Mapping[int | None, float]) -> dict[int | None, dict[str, Any]]:
    enrolled = ledger.ops.query("SELECT customer_id, occasion_ts, grp, step FROM deliveries WHERE scenario = ?",
                                (campaign.ledger_name,))
    if not enrolled:
        return {}
    zone = zoneinfo.ZoneInfo(settings.business.timezone)
    groups = ["control" if r["grp"] != "treated" else f"v{r['step']}" for r in enrolled]
    table = pa.table({
        "scenario": [campaign.ledger_name] * len(enrolled),
        "customer_id": [r["customer_id"] for r in enrolled],
        "occasion_at": pa.array([dt.datetime.fromtimestamp(r["occasion_ts"], zone).replace(tzinfo=None)
                                 for r in enrolled], pa.timestamp("us")),
        "group": groups,
    })
    found = goal_conversions(table, dict(tables), campaign.goal.kind, campaign.goal.days, as_of=as_of,
                             timezone=settings.business.timezone, spread=True).to_pyarrow().to_pylist()
    raw = {r["group"]: r for r in found}
    raw[None] = {k: sum(r[k] or 0 for g, r in raw.items() if g != "control")
                 for k in ("customers", "converted", "orders", "revenue", "revenue_squares")}
    control = raw.get("control", _NO_ONE)
    effects: dict[int | None, dict[str, Any]] = {None: _effect_columns(raw[None], control, settings, costs.get(None))}
    for number in range(1, len(campaign.variants) + 1):
        effects[number] = _effect_columns(raw.get(f"v{number}", _NO_ONE), control, settings, costs.get(number))
    return effects


_NO_ONE = {"customers": 0, "converted": 0, "orders": 0, "revenue": 0, "revenue_squares": 0.0}


def _effect_columns(treated_row: Mapping[str, Any], control_row: Mapping[str, Any], settings: RunSettings,
                    cost: float | None) -> dict[str, Any]:
    treated, control = Counts.from_row(treated_row), Counts.from_row(control_row)
    effect = measure(treated, control, settings.delivery.min_effect)
    return {
        # per customer of the variant (or of every variant) and of the control, whether reached or not
        "converted": treated.converted,
        "revenue_per_recipient": treated.revenue / treated.customers if treated.customers else None,
        "control_revenue_per_customer": control.revenue / control.customers if control.customers else None,
        **incremental_profit(treated_row, control_row, margin=settings.business.gross_margin_rate, cost=cost or 0),
        "treated_customers": treated.customers, "control_customers": control.customers,
        "treated_rate": effect.treated_rate, "control_rate": effect.control_rate,
        "uplift": effect.uplift, "low": effect.low, "high": effect.high, "enough_data": effect.enough_data,
        "needed_per_group": effect.needed_per_group, "incremental_orders": effect.incremental_orders,
        "incremental_revenue": effect.incremental_revenue,
    }
