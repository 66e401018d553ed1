"""Settings: kizuna.toml read, checked and written from one declaration (docs/measures.md#settings).

Each capability declares the section of kizuna.toml it uses, where it uses it: a `Section` whose
fields carry their default, their range and a description ([store] in kizuna.store, [analysis]
in kizuna.analytics …); the workspace composes them into its `Settings` (a `Sections`). From
those declarations alone this module reads a kizuna.toml — unknown sections and keys refused by
name, so a typo is not silently ignored; every value checked for its type and range, so a wrong
one stops the command in one line naming `section.key`, the value and what is allowed — and
writes one, each description as the comment of its setting. [business], which every capability
uses, is declared here.

The errors are phrases of the catalogue (``settings.*`` in kizuna.i18n), said in the reader's
language: this module sits beside the catalogue, so it names texts by their keys. Pydantic's error
types come out as what the setting allows (`allowed`), whatever the type: ``int_parsing``,
``greater_than_equal``, ``less_than_equal``, ``float_parsing``, ``string_type``, ``bool_type``,
``string_pattern_mismatch``, ``literal_error`` all say "must be <what is allowed>, got <value>";
``extra_forbidden`` names the unknown section or key and lists the known ones; ``model_type`` a
section that is not a table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import inspect
import json
import math
import re
import textwrap
import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic.dataclasses import dataclass as checked_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from kizuna._errors import Phrase, WorkspaceError

__all__ = [
    "DEFAULT_RANKS", "FALLBACK_RANK", "FIRST_DAY", "HORIZON_DAYS", "LAST_DAY", "SETTINGS_FILE", "Allowed", "AsOfDay",
    "BusinessSettings", "Clock", "Currency", "Days", "HttpUrl", "Lang", "PositiveShare", "RankRule", "RankRules",
    "Section",
    "Sections", "Share", "Text", "Timezone", "Yen", "allowed", "configured_lang", "settings_error",
]

SETTINGS_FILE = "kizuna.toml"
# The days kizuna computes on: DuckDB and Arrow overflow near year 1 and 9999 (a year before
# 0001-01-01 does not exist), and no shop's data lies outside.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
# Prediction horizons, in days: a week to ten years.
HORIZON_DAYS = (7, 3650)
MAX_DAYS = 36_500  # a hundred years: any window beyond it is a typo
MAX_YEN = 10**15  # fits int64 in every engine, with room to sum
# The rank every customer takes who meets none of the configured ones.
FALLBACK_RANK = "other"
WIDTH = 100  # of the kizuna.toml written


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What a setting's type allows, in words, for its one-line error (when its type and range do
    not say it: an integer's and a number's come from their bounds): the catalogue's key of the
    words (``settings.allowed_*``) and the values of its fields."""

    key: str
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def phrase(self) -> Phrase:
        return Phrase.of(self.key, **dict(self.values))


# -- the types of settings ------------------------------------------------------------------
# Annotated types: a declaration `dormant_days: Days = Field(90, description=…)` is the default,
# the check and the comment of kizuna.toml at once.
Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
Yen = Annotated[int, Field(ge=0, le=MAX_YEN)]
Share = Annotated[float, Field(ge=0, le=1)]
PositiveShare = Annotated[float, Field(gt=0, le=1)]  # a share that must not be 0
# Another range is another type, Annotated[float, Field(ge=0, le=0.9)]: a Field on the field
# cannot narrow its type's bound (pydantic keeps the type's).
Text = str  # any text in quotes


def _zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # e.g. "Asia" names a folder of zones
        raise ValueError("not a time zone") from None
    return value


def _day(value: Any) -> str:
    day = None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):  # as_of = 2025-01-31
        day = value
    elif isinstance(value, str):
        if not value:
            return ""
        with contextlib.suppress(ValueError):
            day = dt.date.fromisoformat(value)
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError("not a day")
    return day.isoformat()


Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), Allowed("settings.allowed_currency")]
Timezone = Annotated[str, Field(min_length=1), AfterValidator(_zone), Allowed("settings.allowed_timezone")]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"), Allowed("settings.allowed_clock")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^/\s]+(/\S*)?$"), AfterValidator(lambda url: url.rstrip("/")),
                    Allowed("settings.allowed_http_url")]
AsOfDay = Annotated[str, PlainValidator(_day),
                    Allowed("settings.allowed_day", (("first", str(FIRST_DAY)), ("last", str(LAST_DAY))))]
Lang = Literal["ja", "en"]  # the languages of the catalogue (kizuna.i18n.LANGS)


# -- RFM ranks --------------------------------------------------------------------------------
@checked_dataclass(frozen=True, config=ConfigDict(strict=True))
class RankRule:
    """One row of the RFM rank table of docs/measures.md §2 (002 §4-3)."""

    label: str
    max_recency_days: Annotated[int, Field(ge=0, le=MAX_DAYS)]
    min_orders: Annotated[int, Field(ge=0, le=10**9)]
    min_revenue: Yen


DEFAULT_RANKS = (
    RankRule("loyal", 30, 15, 500_000),
    RankRule("a", 60, 10, 300_000),
    RankRule("b", 90, 5, 200_000),
)
_RANK_FIELDS = tuple(f.name for f in dataclasses.fields(RankRule))
_RANK_TABLE = f"{{ {' = …, '.join(_RANK_FIELDS)} = … }}"


def _invalid(key: str, **values: Any) -> PydanticCustomError:
    """An error that `settings_error` says as the catalogue's `key` with `values` and the setting's
    `source` and `setting` (its ``section.key``)."""
    return PydanticCustomError("setting", "{key}", {"key": key, **values})


def _ranks(value: Any) -> tuple[RankRule, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _invalid("settings.ranks_list", table=_RANK_TABLE, value=_show(value))
    ranks: list[RankRule] = []
    for position, raw in enumerate(value, start=1):
        raw = dataclasses.asdict(raw) if isinstance(raw, RankRule) else raw
        if not isinstance(raw, dict):
            raise _invalid("settings.rank_table", position=position, table=_RANK_TABLE, value=_show(raw))
        missing = [f for f in _RANK_FIELDS if f not in raw]
        unknown = [str(k) for k in raw if k not in _RANK_FIELDS]
        if missing or unknown:
            raise _invalid("settings.rank_fields_missing" if missing else "settings.rank_fields_unknown",
                           position=position, fields=", ".join(_RANK_FIELDS), names=", ".join(missing or unknown))
        label = raw["label"]
        if not isinstance(label, str) or not label.strip() or label.casefold() == FALLBACK_RANK:
            raise _invalid("settings.rank_label", position=position, fallback=FALLBACK_RANK, value=_show(label))
        same = [i for i, r in enumerate(ranks, start=1) if r.label.casefold() == label.casefold()]
        if same:
            raise _invalid("settings.rank_label_same", position=position, same=same[0], value=_show(label))
        try:
            ranks.append(RankRule(**raw))
        except ValidationError as exc:
            name = exc.errors()[0]["loc"][0]
            raise _invalid("settings.rank_field", position=position, field=name,
                           allowed=allowed(RankRule.__pydantic_fields__[name]), value=_show(raw[name])) from None
    return tuple(ranks)


RankRules = Annotated[tuple[RankRule, ...], PlainValidator(_ranks)]


# -- sections ---------------------------------------------------------------------------------
class Section(BaseModel):
    """One [section] of kizuna.toml. Its docstring is the comment above the section in the file
    written; each field's description the comment of its setting."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_by_name=True,
                              validate_by_alias=True)


class BusinessSettings(Section):
    """What every figure is counted in, and where the business is."""

    currency: Currency = Field("JPY", description="3-letter currency code")
    timezone: Timezone = Field("Asia/Tokyo", description="order times without a zone are read as local time here")
    gross_margin_rate: Share = Field(0.4, description="LTV (profit) = revenue LTV x this rate (0 to 1)")
    name: Text = Field("", description="the business's name, on the title row of the workbooks kizuna writes")
    lang: Lang = Field("ja", description="the language of what people read: screens, lists, messages and errors "
                                         "(ja or en; a command's --lang overrides it)")


class Sections(Section):
    """All the sections of a kizuna.toml, each a field holding a `Section` (named by its alias
    where the section's name is a Python keyword: `importing` for [import])."""

    header: ClassVar[str] = ""

    @classmethod
    def load(cls, path: Path) -> Self:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError.keyed("settings.not_found", path=str(path)) from None
        except UnicodeDecodeError as exc:
            raise WorkspaceError.keyed("settings.not_utf8", path=str(path), byte=exc.start) from None
        except OSError as exc:
            raise WorkspaceError.keyed("settings.unreadable", path=str(path), problem=exc.strerror) from None
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError.keyed("settings.not_toml", path=str(path), problem=str(exc)) from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = SETTINGS_FILE) -> Self:
        """Settings from a parsed kizuna.toml: the defaults, with every given value checked."""
        try:
            return cls.model_validate(raw, by_alias=True, by_name=False)  # [import], never [importing]
        except ValidationError as exc:
            raise settings_error(cls, exc, raw, source) from None

    def replace(self, **changes: dict[str, Any]) -> Self:
        """A copy with some settings changed, each checked as if read from kizuna.toml:
        ``settings.replace(email={"smtp_url": url})``."""
        raw: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        for name, values in changes.items():
            raw[name] = {**dict(getattr(self, name)), **values}  # by field name: importing=…
        try:
            return self.model_validate(raw)
        except ValidationError as exc:
            raise settings_error(type(self), exc, raw, "settings") from None

    def to_toml(self) -> str:
        """The settings as a commented kizuna.toml: every setting, its description as its comment."""
        lines = _comment(self.header)
        for name, field in type(self).model_fields.items():
            section = getattr(self, name)
            lines += ["", f"[{field.alias or name}]", *_comment(type(section).__doc__ or "")]
            for key, declared in type(section).model_fields.items():
                lines += _setting(key, getattr(section, key), declared.description or "")
        return "\n".join(lines) + "\n"


def require_workspace(folder: Path) -> Path:
    """The kizuna.toml of the workspace in `folder`; a `WorkspaceError` saying how to make or find one
    when the folder holds none (the one message every command and the web app give)."""
    path = folder / SETTINGS_FILE
    if not path.exists():
        raise WorkspaceError.keyed("error.not_a_workspace", path=str(folder.resolve()), file=SETTINGS_FILE)
    return path


def configured_lang(folder: Path) -> str | None:
    """[business] lang of the kizuna.toml in `folder`, read without checking the rest of the file (so
    that the error about the rest is said in it); None when there is none or it is not a language."""
    try:
        lang = tomllib.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8")).get("business", {}).get("lang")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return lang if lang in get_args(Lang) else None


# -- errors -----------------------------------------------------------------------------------
def allowed(field: FieldInfo) -> Phrase:
    """What a declared field allows, in words: its `Allowed`, else from its type and bounds."""
    low = high = None
    above_low = False
    for meta in field.metadata:
        if isinstance(meta, Allowed):
            return meta.phrase
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            low, above_low = meta.gt, True
        elif isinstance(meta, annotated_types.Le):
            high = meta.le
    if field.annotation is bool:
        return Phrase.of("settings.allowed_bool")
    if field.annotation is int:
        return Phrase.of("settings.allowed_int", low=f"{low:,}", high=f"{high:,}")
    if field.annotation is float:
        return Phrase.of("settings.allowed_number_above" if above_low else "settings.allowed_number", low=low,
                         high=high)
    if get_origin(field.annotation) is Literal:
        choices = ", ".join(json.dumps(choice) for choice in get_args(field.annotation))
        return Phrase.of("settings.allowed_one_of", choices=choices)
    return Phrase.of("settings.allowed_text")


def settings_error(model: type[Sections], exc: ValidationError, raw: dict[str, Any], source: str) -> WorkspaceError:
    """The first of pydantic's errors (in the file's order) as kizuna's one line:
    `kizuna.toml: analysis.dormant_days must be an integer from 1 to 36,500, got -1.`"""
    sections = {field.alias or name: field.annotation for name, field in model.model_fields.items()}

    def order(error: Any) -> tuple[int, ...]:
        place, body = [], raw
        for part in error["loc"][:2]:
            keys = list(body) if isinstance(body, dict) else []
            place.append(keys.index(part) if part in keys else len(keys))
            body = body.get(part) if isinstance(body, dict) else None
        return tuple(place)

    error = min(exc.errors(), key=order)
    section, *rest = error["loc"]
    if not rest:
        if error["type"] == "extra_forbidden":
            return WorkspaceError.keyed("settings.unknown_section", source=source, section=section,
                                        known=", ".join(sections))
        return WorkspaceError.keyed("settings.not_a_section", source=source, section=section,
                                    value=_show(error["input"]))
    key, name = rest[0], f"{section}.{rest[0]}"
    fields = sections[section].model_fields
    if error["type"] == "extra_forbidden":
        return WorkspaceError.keyed("settings.unknown_setting", source=source, name=name, section=section,
                                    known=", ".join(sorted(fields)))
    if error["type"] == "setting":
        values = dict(error["ctx"])
        return WorkspaceError.keyed(values.pop("key"), source=source, setting=name, **values)
    return WorkspaceError.keyed("settings.must_be", source=source, name=name, allowed=allowed(fields[key]),
                                value=_show(error["input"]))


def _show(value: Any) -> str:
    # TOML-like spelling (true, "text", inf, [..]) on one line, shortened
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan as TOML writes them
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


# -- writing ----------------------------------------------------------------------------------
def _comment(text: str) -> list[str]:
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))  # a docstring's lines joined, then wrapped
    return [f"# {line}" for paragraph in paragraphs for line in textwrap.wrap(" ".join(paragraph.split()), WIDTH - 2)]


def _setting(key: str, value: Any, description: str) -> list[str]:
    written = f"{key} = {_toml(value)}"
    if "\n" not in written and len(written) + 4 + len(description) <= WIDTH:
        return [f"{written}  # {description}"]
    return [*_comment(description), written]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes (\" \\ \n \uXXXX) are all valid TOML
    if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):  # words: wrapped
        words = [f"{_toml(item)}," for item in value]
        if len(" ".join(words)) + 20 <= WIDTH:
            return "[" + " ".join(words)[:-1] + "]"
        lines = [""]
        for word in words:  # packed by hand: a word may hold a space or a hyphen
            fits = len(lines[-1]) + len(word) < WIDTH - 3
            lines[-1:] = [f"{lines[-1]} {word}".strip()] if fits else [lines[-1], word]
        return "[\n" + "".join(f"  {line}\n" for line in lines) + "]"
    if isinstance(value, tuple | list):  # of tables, e.g. the RFM ranks: one a line
        rows = (", ".join(f"{k} = {_toml(v)}" for k, v in dataclasses.asdict(row).items()) for row in value)
        return "[\n" + "".join(f"  {{ {row} }},\n" for row in rows) + "]"
    raise TypeError(f"no TOML spelling for {value!r}")
