"""Scenarios as the workspace's YAML files describe them (docs/measures.md §4), checked when read.

A scenario = trigger + audience + goal + steps; a step = channel + wait + template::

    name: thank-you                       # optional: the file name without .yaml
    title: {ja: 購入直後のお礼, en: Thank-you after purchase}
    trigger: {after_order: {days: 1}}
    audience:
      segments: [loyal_candidate, churn_candidate]   # any of them (ids or Japanese labels)
      where: ["churn_risk >= 0.3", "rfm_rank in [a, b]"]   # all of them
    goal: {kind: order, days: 30}
    holdout: 0.1                           # optional; [delivery] holdout_share otherwise
    budget: 50000                          # optional: yen a calendar month; the rest waits (kizuna.scenarios._costs)
    steps:
      - channel: email                     # email, line, insert, dm, call
        wait_days: 0                       # after the occasion (step 1) or the step before
        subject: {ja: "…", en: "…"}
        body: {ja: "…{{ name }}…", en: "…"}

A mistake is one `ScenarioError` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kizuna._errors import KizunaError, Phrase
from kizuna.delivery import CHANNELS

__all__ = ["GOALS", "TRIGGERS", "Condition", "Goal", "Scenario", "ScenarioError", "Step", "Trigger",
           "load_scenario", "load_scenarios"]

# trigger kind -> its parameters and their defaults
TRIGGERS: dict[str, dict[str, Any]] = {
    # the yearly return of a date: subscription_start / first_delivery / review (profile events),
    # signed_up (customers.signed_up_at) or first_order
    "anniversary": {"of": None, "catch_up_days": 3},
    "after_order": {"days": 0, "catch_up_days": 3},  # days after each completed order
    "replenishment": {"days_before": 3, "catch_up_days": 3},  # a product's cycle_days after buying it
    "lapse": {},  # the customer became lapsing (late by lapse_factor × their own interval)
    "segment": {"name": None},  # the customer entered a segment, rank or matrix cell
    "nps": {"min": 0, "max": 10, "catch_up_days": 3},  # an NPS answer with a score in [min, max]
    "churn_risk": {"above": None},  # predicted churn risk rose above this
}
ANNIVERSARY_DATES = ("subscription_start", "first_delivery", "review", "signed_up", "first_order")
GOALS = ("order", "stays_subscribed", "referral", "nps_answer")
LANGS = ("ja", "en")
_OPERATORS = ("<=", ">=", "!=", "==", "<", ">", " not in ", " in ")
# What the audience's columns hold (customer_scores, customer_predictions), so that a `where`
# value of the wrong kind is a mistake in the file, found when it is read; the other columns
# are text or dates, or not known here (checked against the table when the scenario runs).
NUMBER_COLUMNS = frozenset({
    "recency_days", "frequency", "monetary", "orders", "aov", "ltv_revenue", "ltv_profit", "tenure_days",
    "nps_score", "r_score", "f_score", "m_score", "fm_score", "mean_interval_days",
    "horizon_days", "p_alive", "expected_orders", "expected_order_value", "clv", "clv_profit", "churn_risk",
    "value_at_risk", "cancel_probability", "open_contacts", "days_since_life_event",
})
BOOLEAN_COLUMNS = frozenset({"high_ltv", "near_loyal", "dormant", "lapsing", "lost"})
TEXT_COLUMNS = frozenset({"customer_id", "nps_class", "rfm_segment", "rfm_rank", "matrix_cell", "loyalty",
                          "near_loyal_missing", "lost_reason", "lost_reason_matched", "lifecycle_state"})


class ScenarioError(KizunaError):
    """A scenario file is wrong: `path`, `line` (1-based) and `field` say where; the problem and what to
    do is a phrase of the catalogue (``scenario.*``), said in the reader's language."""

    def __init__(self, path: Path, line: int | None, field_name: str, problem: str | Phrase) -> None:
        self.path, self.line, self.field = path, line, field_name
        where = f"{path}:{line}" if line else str(path)
        super().__init__(Phrase.of("scenario.error", where=where, field=field_name, problem=problem))


@dataclass(frozen=True)
class Trigger:
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Condition:
    """`column op value`, e.g. churn_risk >= 0.5 or rfm_rank in [a, b]."""

    column: str
    op: str
    value: Any
    line: int | None = None


@dataclass(frozen=True)
class SegmentRef:
    """audience.segment: a saved segment by name (segments/NAME.yaml beside the scenarios folder)."""

    name: str
    line: int | None = None


@dataclass(frozen=True)
class Goal:
    kind: str
    days: int


@dataclass(frozen=True)
class Step:
    number: int
    channel: str
    wait_days: int
    subject: dict[str, str]  # lang -> template (e-mail)
    body: dict[str, str]  # lang -> template
    transactional: bool = False
    line: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: dict[str, str]
    trigger: Trigger
    segments: tuple[str, ...]
    conditions: tuple[Condition, ...]
    goal: Goal
    holdout: float | None
    steps: tuple[Step, ...]
    path: Path
    enabled: bool = True
    lang: str = "ja"
    budget: int | None = None  # yen per calendar month (`[costs]` prices); None: no limit
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    segment: SegmentRef | None = None  # audience.segment: a saved segment, read when the scenario runs

    def label(self, lang: str = "ja") -> str:
        return self.title.get(lang) or self.title.get("ja") or self.name


# -- reading -------------------------------------------------------------------------------

def load_scenarios(folder: Path) -> list[Scenario]:
    """Every `*.yaml` / `*.yml` in `folder`, sorted by file name; names must be unique."""
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        scenario = load_scenario(path)
        if scenario.name in seen:
            raise ScenarioError(path, scenario.lines.get("name"), "name",
                                Phrase.of("scenario.duplicate_name", name=repr(scenario.name),
                                          other=str(seen[scenario.name])))
        seen[scenario.name] = path
        scenarios.append(scenario)
    return scenarios


def load_scenario(path: Path) -> Scenario:
    return _Reader(path).scenario(yaml_mapping(path, "scenario.not_mapping"))


def yaml_mapping(path: Path, not_mapping: str) -> yaml.MappingNode:
    """The YAML mapping of a scenario, campaign or saved-segment file, with each node's line; a
    ScenarioError naming the file and line when it is not UTF-8, not YAML, or (`not_mapping`, a
    catalogue key) not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(path, None, "file", Phrase.of("scenario.not_utf8")) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(path, mark.line + 1 if mark else None, "YAML",
                            Phrase.of("scenario.yaml", problem=problem)) from None
    if not isinstance(node, yaml.MappingNode):
        raise ScenarioError(path, 1, "file", Phrase.of(not_mapping))
    return node


class _Reader:
    """Turns the YAML node tree into a Scenario, keeping each node's line for the messages."""

    where_field = "audience.where"  # what a condition's mistake names (a saved segment's file: "where")

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, field_name: str, key: str, **values: Any) -> ScenarioError:
        """The error at `node`: the catalogue's ``scenario.<key>`` with `values`."""
        return ScenarioError(self.path, node.start_mark.line + 1 if node is not None else None, field_name,
                             Phrase.of(f"scenario.{key}", **values))

    def mapping(self, node: yaml.Node, field_name: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field_name, "must_be_mapping", allowed=", ".join(allowed))
        items: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = str(key.value)
            if name not in allowed:
                raise self.fail(key, f"{field_name}.{name}" if field_name else name,
                                "unknown_field", known=", ".join(allowed))
            items[name] = value
        for name in required:
            if name not in items:
                raise self.fail(node, f"{field_name}.{name}" if field_name else name, "required")
        return items

    def scalar(self, node: yaml.Node, field_name: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, field_name, "single_value")
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value

    def number(self, node: yaml.Node, field_name: str, low: float, high: float, *, integer: bool = False) -> Any:
        value = self.scalar(node, field_name)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            raise self.fail(node, field_name, "integer_range" if integer else "number_range", low=low, high=high,
                            value=repr(value))
        return value

    def text(self, node: yaml.Node, field_name: str) -> dict[str, str]:
        """A text in both languages ({ja: …, en: …}) or one text for both."""
        if isinstance(node, yaml.ScalarNode):
            value = str(node.value)
            return {"ja": value, "en": value}
        items = self.mapping(node, field_name, LANGS)
        texts = {lang: str(self.scalar(value, f"{field_name}.{lang}")) for lang, value in items.items()}
        return {"ja": texts.get("ja") or texts.get("en", ""), "en": texts.get("en") or texts.get("ja", "")}

    def scenario(self, node: yaml.MappingNode) -> Scenario:
        fields = self.mapping(node, "", ("name", "title", "enabled", "lang", "trigger", "audience", "goal",
                                         "holdout", "budget", "steps"), required=("trigger", "goal", "steps"))
        name = str(self.scalar(fields["name"], "name")) if "name" in fields else self.path.stem
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise self.fail(fields.get("name"), "name", "bad_name", name=repr(name))
        lang = str(self.scalar(fields["lang"], "lang")) if "lang" in fields else "ja"
        if lang not in LANGS:
            raise self.fail(fields["lang"], "lang", "one_of", allowed=", ".join(LANGS), value=repr(lang))
        enabled = self.scalar(fields["enabled"], "enabled") if "enabled" in fields else True
        if not isinstance(enabled, bool):
            raise self.fail(fields["enabled"], "enabled", "true_false")
        segments, conditions = self.audience(fields.get("audience"))
        steps_node = fields["steps"]
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.fail(steps_node, "steps", "steps_list")
        return Scenario(
            name=name,
            title=self.text(fields["title"], "title") if "title" in fields else {"ja": name, "en": name},
            trigger=self.trigger(fields["trigger"]),
            segments=segments,
            conditions=conditions,
            goal=self.goal(fields["goal"]),
            holdout=self.number(fields["holdout"], "holdout", 0, 0.9) if "holdout" in fields else None,
            steps=tuple(self.step(i, n) for i, n in enumerate(steps_node.value, start=1)),
            path=self.path,
            enabled=enabled,
            lang=lang,
            budget=self.number(fields["budget"], "budget", 0, 10**12, integer=True) if "budget" in fields else None,
            lines={k: v.start_mark.line + 1 for k, v in fields.items()},
            segment=getattr(self, "saved_segment", None),
        )

    def trigger(self, node: yaml.Node) -> Trigger:
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            raise self.fail(node, "trigger", "one_trigger", known=", ".join(TRIGGERS))
        kind_node, params_node = node.value[0]
        kind = str(kind_node.value)
        if kind not in TRIGGERS:
            raise self.fail(kind_node, "trigger", "unknown_trigger", kind=repr(kind), known=", ".join(TRIGGERS))
        defaults = TRIGGERS[kind]
        params = dict(defaults)
        where = f"trigger.{kind}"
        if isinstance(params_node, yaml.ScalarNode) and params_node.value not in ("", "~", "null"):
            first = next(iter(defaults), None)  # the shorthand `anniversary: subscription_start`
            if first is None:
                raise self.fail(params_node, where, "no_value")
            params[first] = self.scalar(params_node, f"{where}.{first}")
        elif isinstance(params_node, yaml.MappingNode):
            for key, value in self.mapping(params_node, where, tuple(defaults)).items():
                if key in ("of", "name"):
                    params[key] = str(self.scalar(value, f"{where}.{key}"))
                elif key == "above":
                    params[key] = self.number(value, f"{where}.{key}", 0, 1)
                elif key in ("min", "max"):
                    params[key] = self.number(value, f"{where}.{key}", 0, 10, integer=True)
                else:
                    params[key] = self.number(value, f"{where}.{key}", 0, 3650, integer=True)
        missing = [k for k, v in params.items() if v is None]
        if missing:
            raise self.fail(params_node, f"{where}.{missing[0]}", "required")
        if kind == "anniversary" and params["of"] not in ANNIVERSARY_DATES:
            raise self.fail(params_node, f"{where}.of", "one_of", allowed=", ".join(ANNIVERSARY_DATES),
                            value=repr(params["of"]))
        if kind == "nps" and params["min"] > params["max"]:
            raise self.fail(params_node, f"{where}.min", "min_over_max")
        return Trigger(kind, params)

    def audience(self, node: yaml.Node | None) -> tuple[tuple[str, ...], tuple[Condition, ...]]:
        if node is None:
            return (), ()
        items = self.mapping(node, "audience", ("segments", "segment", "where"))
        if "segment" in items:  # a saved segment, segments/NAME.yaml in the workspace
            node = items["segment"]
            self.saved_segment = SegmentRef(str(self.scalar(node, "audience.segment")).strip(),
                                            node.start_mark.line + 1)
        segments: list[str] = []
        if "segments" in items:
            seg = items["segments"]
            nodes = seg.value if isinstance(seg, yaml.SequenceNode) else [seg]
            segments = [str(self.scalar(n, "audience.segments")) for n in nodes]
        conditions: list[Condition] = []
        if "where" in items:
            where = items["where"]
            nodes = where.value if isinstance(where, yaml.SequenceNode) else [where]
            conditions = [self.condition(n) for n in nodes]
        return tuple(segments), tuple(conditions)

    def condition(self, node: yaml.Node) -> Condition:
        text = str(self.scalar(node, self.where_field)).strip()
        for op in _OPERATORS:
            column, found, value = text.partition(op)
            column = column.strip()
            if found and re.fullmatch(r"[a-z_][a-z0-9_]*", column):
                raw = value.strip()
                if op.strip() in ("in", "not in"):
                    if not (raw.startswith("[") and raw.endswith("]")):
                        raise self.fail(node, self.where_field, "where_list", condition=repr(text))
                    parsed: Any = [self.value(node, column, v) for v in raw[1:-1].split(",") if v.strip()]
                else:
                    parsed = self.value(node, column, raw)
                return Condition(column, op.strip(), parsed, node.start_mark.line + 1)
        raise self.fail(node, self.where_field, "not_condition", condition=repr(text))

    def value(self, node: yaml.Node, column: str, text: str) -> Any:
        """One value of a condition, of the kind its column holds (see NUMBER_COLUMNS)."""
        value = _literal(text)
        if value is None:
            return None
        shown = text.strip()
        if column in NUMBER_COLUMNS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                         or value != value or value in (float("inf"), float("-inf"))):
            raise self.fail(node, self.where_field, "not_number_for", value=repr(shown), column=column)
        if column in BOOLEAN_COLUMNS and not isinstance(value, bool):
            raise self.fail(node, self.where_field, "not_boolean_for", value=repr(shown), column=column)
        if column in TEXT_COLUMNS and not isinstance(value, str):
            return shown.strip("'\"")  # rfm_rank in [a, 1]: the rank labelled "1"
        return value

    def goal(self, node: yaml.Node) -> Goal:
        items = self.mapping(node, "goal", ("kind", "days"), required=("kind",))
        kind = str(self.scalar(items["kind"], "goal.kind"))
        if kind not in GOALS:
            raise self.fail(items["kind"], "goal.kind", "one_of", allowed=", ".join(GOALS), value=repr(kind))
        days = self.number(items["days"], "goal.days", 1, 3650, integer=True) if "days" in items else 30
        return Goal(kind, days)

    def step(self, number: int, node: yaml.Node) -> Step:
        where = f"steps[{number}]"
        items = self.mapping(node, where, ("channel", "wait_days", "subject", "body", "transactional"),
                             required=("channel", "body"))
        channel = str(self.scalar(items["channel"], f"{where}.channel"))
        if channel not in CHANNELS:
            raise self.fail(items["channel"], f"{where}.channel", "one_of", allowed=", ".join(CHANNELS),
                            value=repr(channel))
        if channel == "email" and "subject" not in items:
            raise self.fail(node, f"{where}.subject", "email_subject")
        transactional = self.scalar(items["transactional"], f"{where}.transactional") \
            if "transactional" in items else False
        if not isinstance(transactional, bool):
            raise self.fail(items["transactional"], f"{where}.transactional", "true_false")
        subject = self.text(items["subject"], f"{where}.subject") if "subject" in items else {"ja": "", "en": ""}
        body = self.text(items["body"], f"{where}.body")
        for lang in LANGS:  # a template that cannot be parsed is a mistake in the file, found now
            for part, texts in (("subject", subject), ("body", body)):
                _check_template(self, items.get(part), f"{where}.{part}.{lang}", texts[lang])
        return Step(
            number=number, channel=channel,
            wait_days=self.number(items["wait_days"], f"{where}.wait_days", 0, 3650, integer=True)
            if "wait_days" in items else 0,
            subject=subject, body=body, transactional=transactional, line=node.start_mark.line + 1,
        )


def _check_template(reader: _Reader, node: yaml.Node | None, field_name: str, text: str) -> None:
    import jinja2

    from kizuna.scenarios._render import template_environment

    try:
        template_environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        line = node.start_mark.line + 1 + (exc.lineno or 1) if node is not None else None
        raise ScenarioError(reader.path, line, field_name, Phrase.of("scenario.template_error",
                                                                     problem=exc.message)) from None


def _literal(text: str) -> Any:
    text = text.strip().strip("'\"") if text.strip()[:1] in "'\"" else text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "none", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
