"""The `kizuna` command: parses, calls the Python API, prints. Nothing is computed here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kizuna.analytics import basic_kpis
from kizuna.cli._render import FORMATS, console, print_json, show_rows
from kizuna.i18n import LANGS, label
from kizuna.importing import ImportSummary
from kizuna.store import KINDS
from kizuna.workspace import Workspace

app = typer.Typer(
    name="kizuna",
    help="kizuna (絆): find loyal customers and the heavy buyers about to leave, act, prove it worked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DirOption = Annotated[Path, typer.Option("--dir", "-d", help="Workspace folder.")]
LangOption = Annotated[str, typer.Option("--lang", help="Label language: ja or en.")]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json.")]
AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="Compute as of this date (YYYY-MM-DD); default today.")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Store URL for this run (overrides [store] url).")
]


def _check(lang: str, fmt: str = "table") -> None:
    if lang not in LANGS:
        raise typer.BadParameter(f"--lang must be one of {', '.join(LANGS)}")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")


def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--as-of {value!r} is not a date; write YYYY-MM-DD.") from None


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace.")],
    db: DbOption = None,
    lang: LangOption = "ja",
) -> None:
    """Create a workspace: kizuna.toml with the default settings, and the store."""
    _check(lang)
    with Workspace.init(directory, store_url=db or ""):
        pass
    console.print(f"{directory / 'kizuna.toml'} ✓")


@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")],
    file: Annotated[Path, typer.Argument(help="CSV, Excel (.xlsx) or Parquet file.")],
    mapping: Annotated[
        Path | None, typer.Option("--mapping", "-m", help="TOML mapping of your headers and values.")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="Force the encoding (default: detected).")
    ] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Import a file; rejected rows go to a rejects file with row, column and reason."""
    _check(lang, fmt)
    with Workspace.open(directory, store_url=db) as ws, _progress(fmt) as progress:
        task = progress.add_task(f"{label('importing', lang)} {file.name}", total=None)

        def update(done: int, expected: int | None) -> None:
            progress.update(task, completed=done, total=max(expected or 0, done) or None)

        summary = ws.import_file(kind, file, mapping=mapping, encoding=encoding, on_progress=update)
    show_import_summary(summary, lang, fmt)


def show_import_summary(summary: ImportSummary, lang: str, fmt: str) -> None:
    if fmt == "json":
        print_json(summary.to_dict())
        return
    rows = [
        {"k": label("file", lang), "v": str(summary.path)},
        {"k": label("kind", lang), "v": summary.kind},
        {"k": label("encoding", lang), "v": summary.encoding or summary.format},
        {"k": label("rows_read", lang), "v": summary.rows_read},
        {"k": label("accepted", lang), "v": summary.accepted},
        {"k": "  " + label("added", lang), "v": summary.added},
        {"k": "  " + label("updated", lang), "v": summary.updated},
        {"k": "  " + label("unchanged", lang), "v": summary.unchanged},
        {"k": label("duplicates", lang), "v": summary.duplicates},
        {"k": label("rejected", lang), "v": summary.rejected},
    ]
    if summary.rejects_path:
        rows.append({"k": label("rejects_file", lang), "v": str(summary.rejects_path)})
        for reason, count in summary.reasons.most_common(5):
            rows.append({"k": "  " + label("top_reasons", lang), "v": f"{reason}: {count:,}"})
    if summary.ignored_columns:
        rows.append({"k": label("ignored_columns", lang), "v": ", ".join(summary.ignored_columns)})
    show_rows(rows, [("k", label("measure", lang)), ("v", label("value", lang))], fmt)


@app.command()
def demo(
    customers: Annotated[int, typer.Option("--customers", "-n", help="Number of customers.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same business.")] = 7,
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Workspace folder.")] = Path("kizuna-demo"),
    as_of: AsOfOption = "2026-11-01",
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Generate a demo water-server business, import it, and show what kizuna finds."""
    from kizuna.demo import build_demo

    _check(lang, fmt)
    day = _as_of(as_of)
    with _progress(fmt) as progress:
        task = progress.add_task("demo", total=None)
        result = build_demo(directory, customers=customers, seed=seed, as_of=day,
                            on_progress=lambda step: progress.update(task, description=step))
    with result.workspace as ws:
        if fmt == "table":
            console.print(f"[bold]{label('demo_ready', lang)}[/bold]: {directory}")
        _show_counts(ws, lang, fmt)
        _show_kpis(ws, day, None, lang, fmt)


@app.command()
def kpi(
    start: Annotated[str | None, typer.Option("--from", help="Period start (YYYY-MM-DD).")] = None,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Headline measures: AOV, repeat rate, purchase frequency, NPS, 2:8 share."""
    _check(lang, fmt)
    with Workspace.open(directory, store_url=db) as ws:
        _show_kpis(ws, _as_of(as_of), _as_of(start) if start else None, lang, fmt)


def _show_counts(ws: Workspace, lang: str, fmt: str) -> None:
    rows = [{"table": label(name, lang), "rows": n} for name, n in ws.counts().items()]
    show_rows(rows, [("table", label("table", lang)), ("rows", label("rows", lang))], fmt)


def _show_kpis(ws: Workspace, as_of: dt.date, start: dt.date | None, lang: str, fmt: str) -> None:
    k = basic_kpis(ws.tables(), as_of, start=start,
                   nps_validity_days=ws.settings.nps_validity_days,
                   top_share_of_customers=ws.settings.high_ltv_top_share)
    rows = [
        ("period", f"{k.start} – {k.end}"),
        ("customers", k.customers), ("ordering_customers", k.ordering_customers),
        ("orders", k.orders), ("revenue", k.revenue),
        ("aov", None if k.aov is None else round(k.aov)),
        ("repeat_rate", pct(k.repeat_rate)),
        ("purchase_frequency", None if k.purchase_frequency is None else round(k.purchase_frequency, 2)),
        ("nps", None if k.nps is None else round(k.nps, 1)),
        ("promoters", k.promoters), ("passives", k.passives), ("detractors", k.detractors),
        ("top20_revenue_share", pct(k.top20_revenue_share)),
        ("mean_ltv", None if k.mean_ltv is None else round(k.mean_ltv)),
    ]
    suffix = {"repeat_rate": " %", "top20_revenue_share": " %", "revenue": " (¥)", "aov": " (¥)",
              "mean_ltv": " (¥)"}
    show_rows(
        [{"measure": label(key, lang) + suffix.get(key, ""), "key": key, "value": value}
         for key, value in rows],
        [("measure", label("measure", lang)), ("value", label("value", lang))]
        if fmt == "table" else [("key", "measure"), ("value", "value")],
        fmt,
    )


def pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 1)


def _progress(fmt: str) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=fmt != "table",
    )
