"""`kizuna calls import` and `kizuna calls results`: the contact centre's calls and which talk script keeps
subscribers (docs/measures.md#calls). Thin: each command calls one library function and prints what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kizuna.cli._app import (
    AsOfOption,
    DbOption,
    DirOption,
    EncodingOption,
    FormatOption,
    LangOption,
    MappingOption,
    SheetOption,
    _as_of,
    _check,
    app,
    show_import_summary,
)
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import label

calls_app = typer.Typer(help="The contact centre's calls: import their outcomes, see which talk script keeps "
                             "subscribers.", no_args_is_help=True)
app.add_typer(calls_app, name="calls")


@calls_app.command("import")
def import_calls(
    file: Annotated[Path, typer.Argument(help="CSV / TSV / Excel sheet of calls: customer, called at, agent, script, "
                                              "outcome, next call date, note (Japanese headers and outcome words "
                                              "are recognised).", show_default=False)],
    mapping: MappingOption = None,
    encoding: EncodingOption = None,
    sheet: SheetOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Import call outcomes into the calls table; rejected rows go to a rejects file with row, column and reason."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if file.is_dir():
        raise typer.BadParameter(f"{file} is a folder: name one file of calls.", param_hint="FILE")
    with Workspace.open(directory, store_url=db, create=True) as ws:
        summary = ws.import_file("calls", file, mapping=mapping, encoding=encoding, sheet=sheet)
    show_import_summary(summary, lang, fmt)


@calls_app.command("results")
def call_results(
    since: Annotated[str | None, typer.Option("--since", help="Only calls from this date (YYYY-MM-DD).")] = None,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Per talk script: customers reached, kept, the kept rate with its 95 % interval, and the difference from the
    reference script with Newcombe's interval."""
    from kizuna.scenarios import script_results
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        rows = script_results(ws.tables()["calls"], as_of=_as_of(as_of), since=_as_of(since, "--since"))
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        console.print(label("calls_none", lang), markup=False, highlight=False)
        return
    columns = ["script", "calls", "reached", "kept", "kept_rate", "difference", "verdict"]
    show_rows([shown_row(row, lang) for row in rows], [(c, label(f"call_{c}", lang)) for c in columns], fmt,
              title=label("title_calls", lang))


def shown_row(row: dict[str, Any], lang: str) -> dict[str, Any]:
    """A script's row in words: rates in %, intervals in brackets, the verdict."""
    shown = dict(row)
    shown["script"] = row["script"] if row["script"] is not None else label("call_no_script", lang)
    if row["kept_rate"] is not None:
        shown["kept_rate"] = f"{Percent(100 * row['kept_rate']):.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"
    if row["reference"]:
        shown["difference"] = label("call_reference", lang)
    elif row["difference"] is not None:
        shown["difference"] = (f"{100 * row['difference']:+.1f}pt [{100 * row['difference_low']:+.1f}, "
                               f"{100 * row['difference_high']:+.1f}]")
    if row["enough_data"] is not None:
        shown["verdict"] = label("call_better" if row["enough_data"] else "call_not_enough", lang)
    return shown
