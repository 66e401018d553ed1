"""`kizuna segment list|show|count|save|delete`: saved segments (segments/NAME.yaml, docs/measures.md#saved-segments)
from the command line.

Thin: each command calls one `Workspace` method and prints what it returns. Saving and deleting are
audit lines naming the machine's user and host.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kizuna.cli._app import DbOption, DirOption, FormatOption, LangOption, _check, app, mistake
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import label

if TYPE_CHECKING:
    from kizuna.scenarios import SegmentCount

segment_app = typer.Typer(help="Saved segments: conditions kept by name (segments/NAME.yaml), for scenarios, "
                               "exports and campaigns; their count and revenue share.", no_args_is_help=True)
app.add_typer(segment_app, name="segment")

NameArgument = Annotated[str, typer.Argument(help="The segment's name (its file name without .yaml).")]
WhereOption = Annotated[list[str] | None, typer.Option(
    "--where", "-w", help='A condition as a scenario\'s audience.where writes it, e.g. "churn_risk >= 0.5" or '
                          '"products_bought in [W12-NAT]"; repeat it for more (all must hold).')]


def _count_rows(count: SegmentCount, lang: str, fmt: str) -> list[dict]:
    def pct(value: float | None) -> float | Percent | None:
        if value is None or fmt == "json":
            return value
        return Percent(100 * value)

    return [
        {"key": "customers", "measure": label("customers", lang), "value": count.customers},
        {"key": "customer_share", "measure": label("saved_segment.customer_share", lang) + " %",
         "value": pct(count.customer_share)},
        {"key": "revenue", "measure": label("saved_segment.revenue", lang) + " (¥)", "value": count.revenue},
        {"key": "revenue_share", "measure": label("revenue_share", lang) + " %", "value": pct(count.revenue_share)},
    ]


def _show_count(count: SegmentCount, lang: str, fmt: str, title: str | None = None) -> None:
    rows = _count_rows(count, lang, fmt)
    if fmt == "json":
        print_json({r["key"]: r["value"] for r in rows} | {"total_customers": count.total_customers,
                                                            "total_revenue": count.total_revenue})
        return
    show_rows(rows, [("measure", label("measure", lang)), ("value", label("value", lang))] if fmt == "table"
              else [("key", "measure"), ("value", "value")], fmt, title=title)


@segment_app.command("list")
def segment_list(
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Every saved segment: its name, title and conditions."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, create=False, read_only=True) as ws:
        segments = ws.saved_segments()
    rows = [{"name": s.name, "title": s.label(lang), "where": s.where if fmt == "json" else " / ".join(s.where)}
            for s in segments]
    if fmt == "json":
        print_json(rows)
        return
    if not rows and fmt == "table":
        console.print(label("saved_segment.none", lang), markup=False, highlight=False)
        return
    show_rows(rows, [(k, label(f"saved_segment.column_{k}", lang)) for k in ("name", "title", "where")], fmt,
              title=label("saved_segment.title_list", lang))


@segment_app.command("show")
def segment_show(
    name: NameArgument,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """A saved segment's conditions, and how many customers it holds now with their revenue share."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        segment = ws.saved_segment(name)
        count = ws.count_segment(segment)
    if fmt == "json":
        print_json({"name": segment.name, "title": segment.title, "where": segment.where,
                    "customers": count.customers, "customer_share": count.customer_share, "revenue": count.revenue,
                    "revenue_share": count.revenue_share, "total_customers": count.total_customers,
                    "total_revenue": count.total_revenue})
        return
    if fmt == "table":
        console.print(f"{segment.label(lang)} ({segment.name})", markup=False, highlight=False, style="bold")
        for condition in segment.where:
            console.print(f"  {condition}", markup=False, highlight=False)
    _show_count(count, lang, fmt)


@segment_app.command("count")
def segment_count(
    where: WhereOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """How many customers meet the conditions (all of them), with their share of customers and of revenue."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        count = ws.count_segment(where or [])
    _show_count(count, lang, fmt)


@segment_app.command("save")
def segment_save(
    name: NameArgument,
    where: WhereOption = None,
    title: Annotated[str | None, typer.Option("--title", help="Its title, shown on pages and lists (Japanese).")]
    = None,
    title_en: Annotated[str | None, typer.Option("--title-en", help="Its English title (default: --title).")] = None,
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
) -> None:
    """Save the conditions as segments/NAME.yaml (replacing a segment of that name), checked first."""
    from kizuna.workspace import Workspace

    _check(lang)
    if not where:
        raise mistake("no_where")
    with Workspace.open(directory, create=False, read_only=True) as ws:
        segment = ws.save_segment(name, where, title={"ja": title or "", "en": title_en or title or ""})
    console.print(f"{segment.path} ✓", markup=False, highlight=False)


@segment_app.command("delete")
def segment_delete(
    name: NameArgument,
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
) -> None:
    """Remove segments/NAME.yaml; refused while a scenario or a campaign uses it."""
    from kizuna.workspace import Workspace

    _check(lang)
    with Workspace.open(directory, create=False, read_only=True) as ws:
        path = ws.delete_segment(name)
    console.print(label("saved_segment.deleted", lang).format(path=path), markup=False, highlight=False)
