"""`kizuna migration`: how customers moved between matrix cells or RFM ranks (docs/measures.md §2, §5).

Thin: one `Workspace.migration` call, then a cross table for people, or the (from, to,
customers) rows for scripts. Ibis loads inside the command, so `kizuna --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kizuna._errors import KizunaError
from kizuna.cli._app import DbOption, DirOption, FormatOption, LangOption, _as_of, _check, _progress, app, mistake
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import label

BY = ("cell", "rank")


@app.command()
def migration(
    start: Annotated[str, typer.Option("--from", help="Start date (YYYY-MM-DD): the segments before.")],
    end: Annotated[
        str | None, typer.Option("--to", help="End date (YYYY-MM-DD); default [analysis] as_of, else today.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="cell (NPS × LTV matrix) or rank (RFM rank).")] = "cell",
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Also write the flow (Sankey) chart to this SVG file.")
    ] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Segment migration between two dates: customers moved between cells or ranks, churn candidates → loyal."""
    from kizuna.analytics import migration_headline, migration_sankey_svg
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if by not in BY:
        raise mistake("one_of", option="--by", choices=list(BY))
    first, last = _as_of(start, "--from"), _as_of(end, "--to")
    if chart is not None and (chart.is_dir() or not chart.resolve().parent.is_dir()):
        raise mistake("chart_file", path=chart)
    with Workspace.open(directory, store_url=db, create=False) as ws:
        last = ws.as_of(last)
        if first is not None and first >= last:  # the option names, before any work
            raise mistake("from_before_to", first=first, last=last)
        with _progress(fmt) as progress:
            progress.add_task(label("analyzing", lang), total=None)
            table = ws.migration(first, last, by=by)
    if chart is not None:  # before the output: a closed pipe must not lose the file
        try:
            chart.write_text(migration_sankey_svg(table, lang), encoding="utf-8")
        except OSError as exc:
            raise KizunaError.keyed("error.chart_not_written", path=str(chart), problem=exc.strerror) from None
    show_migration(table, migration_headline(table), lang, fmt)
    if chart is not None and fmt == "table":
        console.print(f"{label('chart', lang)}: {chart}", markup=False)


def show_migration(table, headline: dict, lang: str, fmt: str) -> None:
    """The transitions as a cross table (rows: start, columns: end) and the headline figures;
    csv: one row per (from, to) pair; json: both."""
    from kizuna.analytics import migration_label

    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    rows = [{**r, "from_label": migration_label(r["from_segment"], lang),
             "to_label": migration_label(r["to_segment"], lang)} for r in table.to_pylist()]
    if fmt == "json":
        print_json({"by": meta["by"], "from": meta["from_day"], "to": meta["to_day"], "headline": headline,
                    "transitions": rows})
        return
    if fmt == "csv":
        show_rows(rows, [(k, k) for k in ("from_segment", "from_label", "to_segment", "to_label", "customers")], fmt)
        return
    order = meta["order"].split(",")
    targets = [k for k in order if k != "new"]  # nobody moves to "new"
    cells = {(r["from_segment"], r["to_segment"]): r["customers"] for r in rows}
    cross = [{"from": migration_label(a, lang), **{b: cells.get((a, b), 0) for b in targets},
              "total": sum(cells.get((a, b), 0) for b in targets)} for a in order]
    cross.append({"from": label("migration_total", lang),
                  **{b: sum(cells.get((a, b), 0) for a in order) for b in targets}, "total": headline["customers"]})
    title = label(f"title_migration_{meta['by']}", lang).format(d1=meta["from_day"], d2=meta["to_day"])
    show_rows(cross, [("from", label("migration_from_to", lang)), *((b, migration_label(b, lang)) for b in targets),
                      ("total", label("migration_total", lang))], fmt, title=title)
    figures = [{"k": label(f"migration_{k}", lang),
                "v": Percent(round(100 * v, 1)) if k.endswith("_share") and v is not None else v}
               for k, v in headline.items()]
    show_rows(figures, [("k", label("measure", lang)), ("v", label("value", lang))], fmt,
              title=label("title_migration_headline", lang))
