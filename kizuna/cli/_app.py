"""The `kizuna` command: parses, calls the Python API, prints. Nothing is computed here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kizuna._errors import Phrase
from kizuna.cli._render import FORMATS, Percent, console, print_json, show_rows
from kizuna.i18n import LANGS, label, say, segment_label, value_label
from kizuna.settings import DEFAULT_RANKS, configured_lang
from kizuna.store import KINDS

if TYPE_CHECKING:  # loaded inside the commands: `kizuna --help` does not pay for Ibis
    from kizuna.importing import ImportSummary
    from kizuna.workspace import Workspace

app = typer.Typer(
    name="kizuna",
    help="kizuna (絆): find loyal customers and the heavy buyers about to leave, act, prove it worked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DirOption = Annotated[Path, typer.Option("--dir", "-d", help="Workspace folder.")]
_language: list[str] = []  # the language of the command running, for its error line (kizuna.cli.main)


def _lang(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """--lang when given, else the workspace's [business] lang, else Japanese.

    Click processes the options given first, then the others in the order declared, and --dir is
    declared before --lang: when --lang is not given, the folder is known here.
    """
    source = ctx.get_parameter_source(param.name or "lang")
    if source is None or source.name == "DEFAULT":  # (typer carries click's enum of its own: compared by name)
        folder = ctx.params.get("directory")
        value = (configured_lang(Path(folder)) if isinstance(folder, Path) else None) or value
    _language[:] = [value]
    return value


def speak(lang: str | None, folder: Path) -> None:
    """The language of the command's error line, for a command whose --lang means something else (the
    web pages' first language): `lang` when given, else the workspace's [business] lang, else Japanese."""
    _language[:] = [lang or configured_lang(folder) or "ja"]


def current_lang() -> str:
    """The language of the command running: its --lang, the workspace's [business] lang, else ja."""
    return _language[0] if _language and _language[0] in LANGS else "ja"


def mistake(key: str, **values: object) -> typer.BadParameter:
    """A mistake on the command line (the catalogue's "usage.<key>", a list among `values` said as the
    reader's list), in the command's language; the error line adds where its help is."""
    return typer.BadParameter(say(Phrase.of(f"usage.{key}", **values), current_lang()))


LangOption = Annotated[str, typer.Option(
    "--lang", help="Label language: ja or en (default: lang in the business section of kizuna.toml, else ja).",
    callback=_lang)]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json.")]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Compute as of this date (YYYY-MM-DD); default [analysis] as_of, else today."),
]
MappingOption = Annotated[
    Path | None, typer.Option("--mapping", "-m", help="TOML mapping of your headers and values.")
]
EncodingOption = Annotated[str | None, typer.Option("--encoding", help="Force the encoding (default: detected).")]
SheetOption = Annotated[
    str | None, typer.Option("--sheet", help="Excel: the sheet to read (default: the first with the columns).")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Store URL for this run (overrides [store] url).")
]


def _check(lang: str, fmt: str = "table") -> None:
    if lang not in LANGS:
        raise mistake("one_of", option="--lang", choices=list(LANGS))
    if fmt not in FORMATS:
        raise mistake("one_of", option="--format", choices=list(FORMATS))


def _as_of(value: str | None, option: str = "--as-of") -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise mistake("not_a_date", option=option, value=value) from None


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace.")],
    db: DbOption = None,
    lang: LangOption = "ja",
) -> None:
    """Create a workspace: kizuna.toml with the default settings, and the store."""
    from kizuna.workspace import Settings, Workspace

    _check(lang)
    from kizuna._errors import NoDataError

    with Workspace.init(directory, store_url=db or "", settings=Settings().replace(business={"lang": lang})) as ws:
        # a store that already holds orders: RFM ranks that fit it (docs/measures.md#rank-suggestion)
        suggested = ws.store.count("orders") > 0
        if suggested:
            try:
                ws.write_rank_rules(ws.suggest_ranks().rules)
            except NoDataError:  # none in the RFM window: the defaults stay, and `analyze` says so
                suggested = False
    console.print(f"{directory / 'kizuna.toml'} ✓", markup=False)
    if suggested:
        console.print(label("ranks.init", lang), markup=False, highlight=False)


@app.command("import")
def import_(
    what: Annotated[list[str], typer.Argument(
        help=f"[KIND] FILE, or a FOLDER. KIND is one of {', '.join(KINDS)}; without it the kind is told "
             "from the headers, and platform exports (EC-CUBE, Shopify, 楽天, Yahoo!, Next Engine, BASE, "
             "MakeShop, futureshop) need no mapping. A folder imports every file, customers first.",
        metavar="[KIND] FILE|FOLDER", show_default=False)],
    mapping: MappingOption = None,
    encoding: EncodingOption = None,
    sheet: SheetOption = None,
    header_row: Annotated[
        int | None, typer.Option("--header-row", min=1, help="CSV/Excel: the row the column names are on, counted "
                                 "from 1 (default: found among the first 20 rows, below any title).")
    ] = None,
    platform: Annotated[
        str | None, typer.Option("--platform", help="Read the file as this platform's export instead of telling it "
                                 "from the headers: ec-cube4, ec-cube2, shopify, rakuten, rakutenpay, yahoo, "
                                 "nextengine, base, makeshop, futureshop.")
    ] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Import a file or a folder; rejected rows go to a rejects file with row, column and reason."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if len(what) > 2:
        raise mistake("import_arguments")
    kind, file = (what[0], Path(what[1])) if len(what) == 2 else (None, Path(what[0]))
    if kind is not None and kind not in KINDS:
        raise mistake("unknown_kind", kind=kind, kinds=list(KINDS))
    if kind is not None and file.is_dir():
        raise mistake("kind_with_folder", path=file)
    if header_row is not None and file.is_dir():
        raise mistake("header_row_with_folder", path=file)
    with Workspace.open(directory, store_url=db, create=True) as ws, _progress(fmt) as progress:
        task = progress.add_task(f"{label('importing', lang)} {file.name}", total=None)
        current = [file]

        def update(done: int, expected: int | None) -> None:
            progress.update(task, completed=done, total=max(expected or 0, done) or None)

        def phase(name: str) -> None:
            progress.update(task, description=f"{label(name, lang)} {current[0].name}")

        def next_file(_kind: str, path: Path) -> None:
            current[0] = path
            progress.update(task, completed=0, total=None, description=f"{label('importing', lang)} {path.name}")

        if file.is_dir():
            summaries = ws.import_folder(file, mapping=mapping, platform=platform, on_file=next_file,
                                         on_progress=update, on_phase=phase, lang=lang)
        else:
            summaries = [ws.import_file(kind, file, mapping=mapping, encoding=encoding, sheet=sheet,
                                        header_row=header_row, platform=platform, on_progress=update,
                                        on_phase=phase, lang=lang)]
    if fmt == "json" and len(summaries) > 1:
        print_json([s.to_dict() for s in summaries])
        return
    for summary in summaries:
        show_import_summary(summary, lang, fmt)


def show_import_summary(summary: ImportSummary, lang: str, fmt: str) -> None:
    if fmt == "json":
        print_json(summary.to_dict())
        return
    rows = [
        {"k": label("file", lang), "v": str(summary.path)},
        {"k": label("kind", lang), "v": label(f"kind.{summary.kind}", lang)},
        *([{"k": label("import_preset", lang), "v": summary.preset}] if summary.preset else []),
        {"k": label("encoding", lang), "v": summary.encoding or summary.format},
        *([{"k": label("sheet", lang), "v": summary.sheet}] if summary.sheet else []),
        {"k": label("rows_read", lang), "v": summary.rows_read},
        # an orders file: rows read = order rows + item rows + other lines + rejected, in that order
        *([{"k": "  " + label(f"import_rows_{part}", lang), "v": n} for part, n in summary.row_kinds.items()]
          if summary.row_kinds is not None else []),
        *([{"k": label("import_matched_by", lang), "v": ", ".join(
            f"{label(f'import_matched_{how}', lang)} {n:,}" for how, n in summary.matched_by.items())}]
          if summary.matched_by else []),
        {"k": label("accepted", lang), "v": summary.accepted},
        {"k": "  " + label("added", lang), "v": summary.added},
        {"k": "  " + label("updated", lang), "v": summary.updated},
        {"k": "  " + label("unchanged", lang), "v": summary.unchanged},
        {"k": label("duplicates", lang), "v": summary.duplicates},
        {"k": label("rejected", lang), "v": summary.rejected},
    ]
    if len(summary.tables) > 1:  # an export that filled several tables: what each one got
        for table, counts in summary.tables.items():
            rows.append({"k": label(table, lang), "v": label("import_table_counts", lang).format(
                a=f"{counts.added:,}", u=f"{counts.updated:,}", n=f"{counts.unchanged:,}")})
    if summary.rejects_path:
        rows.append({"k": label("rejects_file", lang), "v": str(summary.rejects_path)})
        for reason, count in summary.reasons.most_common(5):
            rows.append({"k": "  " + label("top_reasons", lang), "v": f"{reason}: {count:,}"})
    if summary.ignored_columns:
        rows.append({"k": label("ignored_columns", lang), "v": _some(summary.ignored_columns, lang)})
    show_rows(rows, [("k", label("measure", lang)), ("v", label("value", lang))], fmt)


IGNORED_SHOWN = 10


def _some(names: list[str], lang: str) -> str:
    """The first few names and how many more (a wide export can have thousands of columns)."""
    shown = ", ".join(names[:IGNORED_SHOWN])
    more = len(names) - IGNORED_SHOWN
    return shown if more <= 0 else f"{shown} {label('and_n_more', lang).format(n=f'{more:,}')}"


@app.command()
def analyze(
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Build customer_scores: RFM, LTV, NPS cell, ranks, loyalty, lapse and lost reasons per customer."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False) as ws:
        day = ws.as_of(_as_of(as_of))
        with _progress(fmt) as progress:
            progress.add_task(label("analyzing", lang), total=None)
            count = ws.analyze(day)
        if fmt == "table":
            console.print(label("scores_computed", lang).format(n=f"{count:,}", day=day), markup=False)
        _show_segments(ws, lang, fmt)
        if fmt == "table" and ws.settings.analysis.rfm_ranks == DEFAULT_RANKS:  # the seed's, not this shop's
            console.print(label("ranks.hint", lang), markup=False, highlight=False)


@app.command()
def kpi(
    start: Annotated[str | None, typer.Option("--from", help="Period start (YYYY-MM-DD); default a year back.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Period end (YYYY-MM-DD); same as --as-of.")] = None,
    by: Annotated[str, typer.Option("--by", help="Break figures down by month or channel.")] = "month",
    compare: Annotated[bool, typer.Option(
        "--compare", help="Each KPI beside the previous period and the same period last year, with the changes; "
                          "without --from, for the last full month before --to / --as-of.")
    ] = False,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """The KPI report: NPS, repeat rate, frequency, AOV, LTV, 2:8 curve, cohorts, F2, NPS by channel."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if by not in ("month", "channel"):
        raise mistake("one_of", option="--by", choices=["month", "channel"])
    day, first = _as_of(to or as_of, "--to" if to else "--as-of"), _as_of(start, "--from")
    with Workspace.open(directory, store_url=db, create=False) as ws:
        if compare:
            from kizuna.analytics import Period

            day = ws.as_of(day)  # without --from: the last full month, which a month before it is compared with
            comparison = ws.kpi_comparison(Period(first, day) if first is not None else Period.month_before(day))
        else:
            report = ws.kpis(day, start=first, by=by)
    if compare:
        show_kpi_comparison(comparison, lang, fmt)
        return
    show_kpi_report(report, by, lang, fmt)


SEGMENT_TABLES = {"matrix": "matrix", "ranks": "ranks", "rfm": "rfm_segments", "lifecycle": "lifecycle"}


@app.command()
def segments(
    by: Annotated[str | None, typer.Option(
        "--by", help="One table: matrix (NPS × LTV), ranks (RFM rank), rfm (named RFM segments) or lifecycle "
                     "(lifecycle state). Default: the matrix and the ranks.")] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Customers, revenue and revenue share per segment (from the last `kizuna analyze`)."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if by is not None and by not in SEGMENT_TABLES:
        raise mistake("one_of", option="--by", choices=list(SEGMENT_TABLES))
    with Workspace.open(directory, store_url=db, create=False) as ws:
        _show_segments(ws, lang, fmt, only=None if by is None else SEGMENT_TABLES[by])


@app.command()
def export(
    segment: Annotated[
        str | None, typer.Argument(help="A cell, rank, RFM segment or flag, e.g. churn_candidate or 離脱候補者.")
    ] = None,
    saved: Annotated[str | None, typer.Option(
        "--segment", help="A saved segment instead (segments/NAME.yaml; see `kizuna segment list`).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (csv without it: standard output; xlsx: SEGMENT.xlsx).")] = None,
    export_format: Annotated[str, typer.Option("--format", "-f", help="csv or xlsx.")] = "csv",
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
) -> None:
    """Write a segment's customer list with contact details, LTV, last order, NPS and the reason."""
    from kizuna.cli._render import error_console
    from kizuna.workspace import Workspace

    _check(lang)
    if (segment is None) == (saved is None):
        raise mistake("segment_or_saved")
    # a CSV without -o goes to standard output, as every command's
    path = output if output is not None or export_format == "csv" else Path(f"{segment or saved}.{export_format}")
    if path == Path("-"):
        path = None
    with Workspace.open(directory, store_url=db, create=False) as ws:
        count = (ws.export_segment(segment, path, fmt=export_format, lang=lang) if segment is not None
                 else ws.export_saved_segment(saved or "", path, fmt=export_format, lang=lang))
    (console if path is not None else error_console).print(
        f"{path or label('stdout', lang)}: {count:,} {label('customers', lang)}", markup=False)


def _show_counts(ws: Workspace, lang: str, fmt: str) -> None:
    rows = [{"table": label(name, lang), "rows": n} for name, n in ws.counts().items()]
    show_rows(rows, [("table", label("table", lang)), ("rows", label("rows", lang))], fmt)


def _segment_rows(table, lang: str) -> list[dict]:
    return [
        {**row, "label": segment_label(row["segment"], lang), "revenue_share": _pct(row["revenue_share"])}
        for row in table.to_pylist()
    ]


def _show_segments(ws: Workspace, lang: str, fmt: str, only: str | None = None) -> None:
    """The segment tables of `Workspace.segments` (`only`: that one table): JSON every table unless `only`."""
    from kizuna._errors import KizunaError

    names = [only] if only is not None else ["matrix", "ranks"]
    # a person reads the two tables shown; a script's JSON has every table unless one is named
    tables = ws.segments(None if fmt == "json" and only is None else names)
    if only is not None and only not in tables:  # analysed by an older kizuna, without lifecycle states
        raise KizunaError.keyed("error.scores_without_states")
    if fmt == "json":
        print_json({name: _segment_rows(t, lang) for name, t in tables.items() if only is None or name == only})
        return
    columns = [("label", label("segment", lang)), ("customers", label("customers", lang)),
               ("revenue", label("revenue", lang) + " (¥)"), ("revenue_share", label("revenue_share", lang) + " %")]
    if fmt == "csv":  # one table for scripts: which table each row belongs to is a column
        rows = [{**r, "table": name} for name in names for r in _segment_rows(tables[name], lang)]
        show_rows(rows, [("table", "table"), ("segment", "segment"), *columns], fmt)
        return
    for name in names:
        show_rows(_segment_rows(tables[name], lang), columns, fmt, title=label(f"title_{name}", lang))


def _pct(x: float | None) -> Percent | None:
    return None if x is None else Percent(round(100 * x, 1))


def show_kpi_report(report, by: str, lang: str, fmt: str) -> None:
    h, n, f2 = report.headline, report.nps, report.f2
    figures = [
        ("period", f"{report.start} – {report.as_of}"),
        ("customers", h["customers"]), ("ordering_customers", h["ordering_customers"]),
        ("orders", h["orders"]), ("revenue", h["revenue"]),
        ("aov", None if h["aov"] is None else round(h["aov"])),
        ("repeat_rate", _pct(h["repeat_rate"])),
        ("purchase_frequency", None if h["purchase_frequency"] is None else round(h["purchase_frequency"], 2)),
        ("nps", None if n["score"] is None else Percent(round(n["score"], 1))),
        ("promoters", f"{n['promoter']:,} ({_pct(n['promoter'] / n['answered']) if n['answered'] else '-'} %)"),
        ("passives", f"{n['passive']:,} ({_pct(n['passive'] / n['answered']) if n['answered'] else '-'} %)"),
        ("detractors", f"{n['detractor']:,} ({_pct(n['detractor'] / n['answered']) if n['answered'] else '-'} %)"),
        ("top20_revenue_share", _pct(h["top20_revenue_share"])),
        ("mean_ltv", None if h["mean_ltv"] is None else round(h["mean_ltv"])),
        ("f2_conversion", _pct(f2["conversion"])),
        ("f2_median_days", f2["median_days_to_second"]),
    ]
    if fmt == "json":
        print_json({
            "as_of": report.as_of, "start": report.start, "headline": h, "nps": n, "f2": f2,
            "by": report.by.to_pylist(), "ltv_distribution": report.ltv_distribution.to_pylist(),
            "concentration": report.concentration.to_pylist(), "cohorts": report.cohorts.to_pylist(),
            "nps_by_channel": report.nps_by_channel.to_pylist(),
            "subscription_churn": report.subscription_churn.to_pylist(),
        })
        return
    suffix = {"repeat_rate": " %", "top20_revenue_share": " %", "f2_conversion": " %", "revenue": " (¥)",
              "aov": " (¥)", "mean_ltv": " (¥)"}
    show_rows(
        [{"measure": label(k, lang) + suffix.get(k, ""), "key": k, "value": v} for k, v in figures],
        [("measure", label("measure", lang)), ("value", label("value", lang))] if fmt == "table"
        else [("key", "measure"), ("value", "value")],
        fmt, title=label("title_kpi", lang),
    )
    if fmt == "csv":
        return  # one table per call for scripts; --format json gives everything
    by_rows = [
        {**r, "repeat_rate": _pct(r["repeat_rate"]), "month": str(r.get("month", ""))[:7],
         "aov": None if r["aov"] is None else round(r["aov"]),
         "channel": value_label("sales_channel", r.get("channel"), lang)}  # the shop's own names stay
        for r in report.by.to_pylist()
    ]
    show_rows(by_rows, [(by, label(by, lang)), ("ordering_customers", label("ordering_customers", lang)),
                        ("orders", label("orders", lang)), ("revenue", label("revenue", lang)),
                        ("aov", label("aov", lang)), ("repeat_rate", label("repeat_rate", lang) + " %"),
                        ("purchase_frequency", label("purchase_frequency", lang))], fmt,
              title=label(f"title_by_{by}", lang))
    bands = report.ltv_distribution.to_pylist()
    total = sum(r["customers"] for r in bands) or 1
    show_rows([{"band": f"¥{r['band']:,} –", "customers": r["customers"], "share": _pct(r["customers"] / total),
                "revenue": r["revenue"]} for r in bands],
              [("band", label("ltv_band", lang)), ("customers", label("customers", lang)),
               ("share", label("share", lang) + " %"), ("revenue", label("revenue", lang) + " (¥)")],
              fmt, title=label("title_ltv_distribution", lang))
    curve = [{"customers": f"{round(100 * r['customer_share'])} %", "revenue": _pct(r["revenue_share"])}
             for r in report.concentration.to_pylist()]
    show_rows(curve, [("customers", label("top_customers", lang)), ("revenue", label("cumulative_revenue", lang))],
              fmt, title=label("title_concentration", lang))
    show_rows(*_cohort_pivot(report.cohorts.to_pylist(), lang), fmt, title=label("title_cohorts", lang))
    channels = report.nps_by_channel.to_pylist()
    show_rows([{**r, "nps": None if r["nps"] is None else Percent(round(r["nps"], 1)),
                "channel": segment_label(r["channel"], lang)} for r in channels],
              [("channel", label("support_channel", lang)), ("answered", label("answered", lang)),
               ("nps", "NPS")], fmt, title=label("title_nps_by_channel", lang))
    show_rows([{**r, "churn_rate": _pct(r["churn_rate"]), "month": str(r["month"])[:7]}
               for r in report.subscription_churn.to_pylist()],
              [("month", label("month", lang)), ("active_at_start", label("active_subscriptions", lang)),
               ("cancellations", label("cancellations", lang)), ("churn_rate", label("churn_rate", lang) + " %")],
              fmt, title=label("title_subscription_churn", lang))


KPI_SUFFIX = {"revenue": " (¥)", "aov": " (¥)", "mean_ltv": " (¥)", "repeat_rate": " %", "subscription_churn": " %"}


def _kpi_value(key: str, value: float | None) -> float | int | Percent | None:
    if value is None:
        return None
    if key in ("repeat_rate", "subscription_churn"):
        return Percent(round(100 * value, 1))
    if key in ("revenue", "aov", "mean_ltv", "orders", "ordering_customers", "new_buyers"):
        return round(value)
    return round(value, 2)


def show_kpi_comparison(comparison, lang: str, fmt: str) -> None:
    """`kizuna kpi --compare`: each KPI, the previous period's and last year's, with the changes
    (table: arrows, % or pt; csv and json: the figures, changes as fractions or points)."""
    from kizuna.i18n import change_text
    from kizuna.reporting import period_label

    periods = {"period": comparison.period, "previous": comparison.previous, "last_year": comparison.last_year}
    if fmt == "json":
        print_json({**{k: {"start": p.start, "end": p.end} for k, p in periods.items()}, "kpis": comparison.rows})
        return
    if fmt == "csv":
        show_rows(comparison.rows, [(k, k) for k in ("key", "value", "previous", "previous_change", "last_year",
                                                      "last_year_change", "unit", "better")], fmt)
        return
    month = "_month" if comparison.period.months == 1 else ""
    rows = [{"measure": label(r["key"], lang) + KPI_SUFFIX.get(r["key"], ""), "value": _kpi_value(r["key"], r["value"]),
             "previous": _kpi_value(r["key"], r["previous"]),
             "previous_change": change_text(r["previous_change"], r["unit"], lang),
             "last_year": _kpi_value(r["key"], r["last_year"]),
             "last_year_change": change_text(r["last_year_change"], r["unit"], lang)} for r in comparison.rows]
    show_rows(rows, [
        ("measure", label("measure", lang)), ("value", period_label(comparison.period, lang)),
        ("previous", f"{label('kpi_previous' + month, lang)} ({period_label(comparison.previous, lang)})"),
        ("previous_change", label(f"kpi_previous{month}_change", lang)),
        ("last_year", f"{label('kpi_last_year' + month, lang)} ({period_label(comparison.last_year, lang)})"),
        ("last_year_change", label(f"kpi_last_year{month}_change", lang)),
    ], fmt, title=label("title_kpi_compare", lang).format(period=period_label(comparison.period, lang)))


COHORT_MONTHS_SHOWN = (1, 2, 3, 6, 12)
DEMO_CALLS_SHOWN = 10
COHORTS_SHOWN = 24


def _cohort_pivot(rows: list[dict], lang: str) -> tuple[list[dict], list[tuple[str, str]]]:
    """Cohorts as rows and months-after as columns, the last two years; `--format json` has all."""
    by_cohort: dict[str, dict] = {}
    for r in rows:
        cohort = str(r["cohort"])[:7]
        entry = by_cohort.setdefault(cohort, {"cohort": cohort, "cohort_size": r["cohort_size"]})
        if r["k"] in COHORT_MONTHS_SHOWN:
            entry[f"k{r['k']}"] = _pct(r["share"])
    shown = [by_cohort[c] for c in sorted(by_cohort)[-COHORTS_SHOWN:]]
    columns = [("cohort", label("cohort", lang)), ("cohort_size", label("cohort_size", lang))]
    columns += [(f"k{k}", label("months_after_n", lang).format(k=k)) for k in COHORT_MONTHS_SHOWN]
    return shown, columns


def _progress(fmt: str) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        # not when piped or captured: there it would only leave an empty line behind
        console=console, transient=True, disable=fmt != "table" or not console.is_terminal,
    )
