"""Saved segments (`segments/NAME.yaml`): conditions in the language of a scenario's
`audience.where`, kept by name for scenarios (`audience: {segment: NAME}`), exports and campaigns.

    title: {ja: 離脱しそうな高LTV, en: High-LTV customers at risk}
    where:
      - "churn_risk >= 0.5"
      - "ltv_revenue >= 30000"
      - "products_bought in [W12-NAT, W12-RO]"
      - "email_consent == true"

The conditions are those of `kizuna.scenarios._where`: the audience table's columns, products
bought, sales channels, contacts and consents. A segment's count and revenue share (`count_segment`)
are one query in the engine: the customers are counted there, none is brought to Python. A mistake
in a file is one `ScenarioError` naming the file, the line and the field.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import yaml

from kizuna._errors import KizunaError, Phrase
from kizuna.scenarios._model import Condition, Scenario, ScenarioError, _Reader, yaml_mapping
from kizuna.scenarios._where import (
    CONSENT_FIELDS,
    CONTACT_FIELDS,
    SET_FIELDS,
    SET_OPERATORS,
    where_predicate,
    with_contacts,
)

__all__ = ["SEGMENT_FIELDS", "SEGMENT_FOLDER", "SavedSegment", "SegmentCount", "condition_text", "count_segment",
           "delete_segment", "find_segment", "load_segment", "load_segments", "parse_conditions", "save_segment",
           "scenario_segment", "segment_members"]

SEGMENT_FOLDER = "segments"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# The fields a person picks from in the segment builder, by group, with the kind of value each
# takes: number, share (a fraction 0–1), flag (true / false), or choice (values from a list).
SEGMENT_FIELDS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("scores", (("ltv_revenue", "number"), ("orders", "number"), ("recency_days", "number"),
                ("frequency", "number"), ("monetary", "number"), ("aov", "number"), ("tenure_days", "number"),
                ("r_score", "number"), ("f_score", "number"), ("m_score", "number"), ("nps_score", "number"),
                ("rfm_rank", "choice"), ("matrix_cell", "choice"), ("rfm_segment", "choice"),
                ("nps_class", "choice"), ("near_loyal", "flag"), ("dormant", "flag"), ("lapsing", "flag"),
                ("lost_reason", "choice"))),
    ("predictions", (("churn_risk", "share"), ("p_alive", "share"), ("value_at_risk", "number"),
                     ("clv", "number"), ("expected_orders", "number"), ("cancel_probability", "share"))),
    ("lifecycle", (("lifecycle_state", "choice"),)),
    ("products", (("products_bought", "choice"),)),
    ("channels", (("order_channels", "choice"), ("has_email", "flag"), ("has_line", "flag"),
                  ("has_address", "flag"), ("has_phone", "flag"))),
    ("consents", (("email_consent", "flag"), ("line_consent", "flag"), ("dm_consent", "flag"))),
)


@dataclass(frozen=True)
class SavedSegment:
    """A saved segment: its name (the file name), title in both languages, conditions, file."""

    name: str
    title: dict[str, str]
    conditions: tuple[Condition, ...]
    path: Path
    where_field: str = "where"  # what a condition's mistake names

    def label(self, lang: str = "ja") -> str:
        return self.title.get(lang) or self.title.get("ja") or self.name

    @property
    def where(self) -> list[str]:
        """The conditions as the file writes them."""
        return [condition_text(c) for c in self.conditions]


@dataclass(frozen=True)
class SegmentCount:
    """How many customers a set of conditions holds, and their share of the customers and of revenue."""

    customers: int
    revenue: int
    total_customers: int
    total_revenue: int

    @property
    def customer_share(self) -> float | None:
        return self.customers / self.total_customers if self.total_customers else None

    @property
    def revenue_share(self) -> float | None:
        return self.revenue / self.total_revenue if self.total_revenue else None


# -- the conditions as text ----------------------------------------------------------------------
def condition_text(condition: Condition) -> str:
    """A condition as a file or `--where` writes it: ``churn_risk >= 0.5``, ``rfm_rank in [a, b]``.

    >>> condition_text(Condition("rfm_rank", "in", ["a", "b"]))
    'rfm_rank in [a, b]'
    """
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "null" if v is None else str(v)

    shown = f"[{', '.join(value(v) for v in condition.value)}]" if isinstance(condition.value, list) \
        else value(condition.value)
    return f"{condition.column} {condition.op} {shown}"


class _SegmentReader(_Reader):
    """Reads a saved segment's YAML, or conditions typed elsewhere, as a scenario's conditions are read."""

    where_field = "where"

    def segment(self, node: yaml.MappingNode) -> SavedSegment:
        fields = self.mapping(node, "", ("title", "where"), required=("where",))
        name = self.path.stem  # segments/NAME.yaml: the name is the file's
        if not NAME.fullmatch(name):
            raise self.fail(None, "name", "bad_name", name=repr(name))
        where = fields["where"]
        nodes = where.value if isinstance(where, yaml.SequenceNode) else [where]
        title = self.text(fields["title"], "title") if "title" in fields else {"ja": name, "en": name}
        return SavedSegment(name=name, title=title, path=self.path,
                            conditions=tuple(self.checked(n) for n in nodes if not _empty(n)))

    def value(self, node: yaml.Node, column: str, text: str) -> Any:
        """One value of a condition; the fields the audience table lacks are checked here (a flag is
        true or false, a product or channel is text, whatever it looks like)."""
        if column in SET_FIELDS:
            return text.strip().strip("'\"")
        value = super().value(node, column, text)
        if column in CONTACT_FIELDS | CONSENT_FIELDS and value is not None and not isinstance(value, bool):
            raise self.fail(node, self.where_field, "not_boolean_for", value=repr(text.strip()), column=column)
        return value

    def checked(self, node: yaml.Node) -> Condition:
        condition = self.condition(node)
        if condition.column in SET_FIELDS and condition.op not in SET_OPERATORS:
            raise ScenarioError(self.path, node.start_mark.line + 1, self.where_field,
                                Phrase.of("saved_segment.set_operator", column=condition.column))
        return condition


def _empty(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def parse_conditions(texts: Sequence[str], source: Path | str = "--where") -> tuple[Condition, ...]:
    """Conditions typed on the command line or in the web form, checked as a file's are; an error
    names `source` and the condition's place (1, 2, …) as its line."""
    reader = _SegmentReader(Path(source))
    found = []
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            continue
        mark = yaml.Mark(str(source), 0, number - 1, 0, None, None)
        found.append(reader.checked(yaml.ScalarNode("tag:yaml.org,2002:str", text, mark, mark)))
    return tuple(found)


# -- files -----------------------------------------------------------------------------------------
def load_segment(path: Path) -> SavedSegment:
    """The saved segment in `path`, checked (ScenarioError names the file, line and field)."""
    return _SegmentReader(path).segment(yaml_mapping(path, "saved_segment.not_mapping"))


def load_segments(folder: Path) -> list[SavedSegment]:
    """Every saved segment in `folder` (segments/), by name."""
    if not folder.is_dir():
        return []
    return sorted((load_segment(p) for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")]), key=lambda s: s.name)


def find_segment(folder: Path, name: str) -> SavedSegment:
    """The saved segment `name` (segments/NAME.yaml); a KizunaError listing the others when there is none."""
    for suffix in (".yaml", ".yml"):
        path = folder / f"{name}{suffix}"
        if NAME.fullmatch(name) and path.is_file():
            return load_segment(path)
    known = ", ".join(s.name for s in load_segments(folder)) or "-"
    raise KizunaError(Phrase.of("saved_segment.not_found", name=name, folder=str(folder), known=known))


def save_segment(folder: Path, name: str, where: Sequence[str] | Sequence[Condition], *,
                 title: Mapping[str, str] | None = None) -> SavedSegment:
    """Write segments/NAME.yaml (replacing it) with `title` ({ja, en}) and the conditions `where`,
    checked first; the segment as read back. The file is replaced whole or not at all."""
    if not NAME.fullmatch(name):
        raise KizunaError(Phrase.of("saved_segment.bad_name", name=repr(name)))
    conditions = tuple(c for c in where if isinstance(c, Condition)) or parse_conditions(
        [w for w in where if isinstance(w, str)])
    for condition in conditions:
        values = condition.value if isinstance(condition.value, list) else [condition.value]
        if any(isinstance(v, str) and re.search(r"[,\[\]\n]", v) for v in values):
            raise KizunaError(Phrase.of("saved_segment.bad_value", condition=condition_text(condition)))
    titles = {"ja": (title or {}).get("ja") or name, "en": (title or {}).get("en") or (title or {}).get("ja") or name}
    text = yaml.safe_dump({"title": titles, "where": [condition_text(c) for c in conditions]},
                          allow_unicode=True, sort_keys=False, width=1000)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    write_atomically(path, text)
    return load_segment(path)


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` through a file beside it: a reader (cron's `kizuna run`) sees the old file or the new."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def scenario_segment(scenario: Scenario) -> SavedSegment:
    """A scenario's `audience.segment`: the saved segment of that name in the workspace the scenario
    file is in (its folder's sibling segments/), read now; a ScenarioError at that line when there is none."""
    ref = scenario.segment
    folder = scenario.path.resolve().parent.parent / SEGMENT_FOLDER
    path = next((folder / f"{ref.name}{s}" for s in (".yaml", ".yml") if (folder / f"{ref.name}{s}").is_file()), None)
    if not NAME.fullmatch(ref.name) or path is None:
        raise ScenarioError(scenario.path, ref.line, "audience.segment",
                            Phrase.of("saved_segment.missing", name=repr(ref.name), folder=str(folder)))
    return load_segment(path)


def delete_segment(folder: Path, name: str) -> Path:
    """Remove segments/NAME.yaml; the file removed."""
    segment = find_segment(folder, name)
    segment.path.unlink()
    return segment.path


# -- evaluating -------------------------------------------------------------------------------------
def count_segment(population: ibis.Table, conditions: Iterable[Condition], *, source: Any,
                  tables: Mapping[str, ibis.Table], consents: Mapping[str, Mapping[str, bool]] | None = None
                  ) -> SegmentCount:
    """The customers who meet the conditions, their lifetime revenue, and both of the whole
    population: one aggregate in the engine."""
    table, predicate = where_predicate(population, conditions, source=source, tables=tables, consents=consents)
    marked = table.select(_in=predicate, _revenue=table.ltv_revenue.fill_null(0))
    row = marked.aggregate(
        customers=marked._in.cast("int64").sum(),
        revenue=ibis.cases((marked._in, marked._revenue), else_=0).sum(),
        total_customers=marked.count(),
        total_revenue=marked._revenue.sum(),
    ).to_pyarrow().to_pylist()[0]
    return SegmentCount(*(int(row[k] or 0) for k in ("customers", "revenue", "total_customers", "total_revenue")))


def segment_members(population: ibis.Table, conditions: Iterable[Condition], *, source: Any,
                    tables: Mapping[str, ibis.Table], consents: Mapping[str, Mapping[str, bool]] | None = None,
                    columns: Sequence[str] = ("customer_id",)) -> ibis.Table:
    """The rows of `population` (with the contact columns asked for in `columns`) that meet the conditions."""
    conditions = list(conditions)
    contacts = {c for c in columns if c in CONTACT_FIELDS | CONSENT_FIELDS}
    table, predicate = where_predicate(population, conditions, source=source, tables=tables, consents=consents)
    missing = contacts - set(table.columns)
    if missing:
        table = with_contacts(table, tables["customers"], consents or {}, missing)
    return table.filter(predicate).select(*columns)
