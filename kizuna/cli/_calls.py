"""`kizuna calls import` and `kizuna calls results`: the contact centre's calls, which talk script keeps
subscribers and what a call does against the holdout (docs/measures.md#calls). Thin: each command calls one
library function and prints what it returns. The printing of call results (shared with `kizuna results
--calls`) and of the win-back list grouped by reason (`kizuna priority --list winback`) is here too.
"""

from __future__ import annotations

import datetime as dt
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
    mistake,
    show_import_summary,
)
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import label, segment_label, text

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
        raise mistake("calls_folder", path=file)
    with Workspace.open(directory, store_url=db, create=True) as ws:
        summary = ws.import_file("calls", file, mapping=mapping, encoding=encoding, sheet=sheet, lang=lang)
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
    reference script with Newcombe's interval; then the kept rate of the customers called against the holdout's.
    (`kizuna results --calls` shows the same; here `--format json` gives the scripts' rows alone.)"""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        results = ws.call_results(as_of=_as_of(as_of), since=_as_of(since, "--since"))
    if fmt == "json":
        print_json(results["scripts"])
        return
    show_call_results(results, lang, fmt)


def show_call_results(results: dict[str, Any], lang: str, fmt: str) -> None:
    """The two tables of `Workspace.call_results` (JSON: the whole of it): the talk scripts, then the
    called against the held out with the difference and the effect per call."""
    if fmt == "json":
        print_json(results)
        return
    rows = results["scripts"]
    if not rows:
        console.print(label("calls_none", lang), markup=False, highlight=False)
        return
    columns = ["script", "calls", "reached", "kept", "kept_rate", "difference", "verdict"]
    show_rows([shown_row(row, lang) for row in rows], [(c, label(f"call_{c}", lang)) for c in columns], fmt,
              title=label("title_calls", lang))
    effect = results["holdout"]
    if effect is None:
        return
    groups = [{**g, "group": label(f"call_group_{g['group']}", lang), "kept_rate": _rate(g, lang)}
              for g in effect["groups"]]
    show_rows(groups, [("group", label("call_group", lang)), ("customers", label("customers", lang)),
                       ("kept", label("call_kept", lang)), ("kept_rate", label("call_kept_rate", lang))], fmt,
              title=label("title_call_holdout", lang))
    if fmt != "table":
        return
    for line in holdout_lines(effect, lang):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def holdout_lines(effect: dict[str, Any], lang: str) -> list[str]:
    """What the comparison with the holdout says, in words: who is compared, the difference, the effect per call."""
    before = effect["since"] - dt.timedelta(days=1)
    lines = [label("call_holdout_population", lang).format(day=before, since=effect["since"], as_of=effect["as_of"])]
    if effect["difference"] is not None:
        verdict = label("call_better" if effect["enough_data"] else "call_not_enough", lang)
        lines.append(label("call_holdout_difference", lang).format(
            difference=_points(effect["difference"]), low=_points(effect["difference_low"]),
            high=_points(effect["difference_high"]), verdict=verdict))
    if effect["per_call"] is not None:
        lines.append(label("call_holdout_per_call", lang).format(
            effect=_points(effect["per_call"]), low=_points(effect["per_call_low"]),
            high=_points(effect["per_call_high"]), share=f"{100 * effect['called_share']:.1f}%"))
    if effect["held_out_called"]:
        lines.append(label("call_holdout_called_anyway", lang).format(n=effect["held_out_called"]))
    return lines


def _points(value: float) -> str:
    return f"{100 * value:+.1f}pt"


def _rate(row: dict[str, Any], lang: str) -> str | None:
    if row["kept_rate"] is None:
        return None
    return f"{Percent(100 * row['kept_rate']):.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"


def shown_row(row: dict[str, Any], lang: str) -> dict[str, Any]:
    """A script's row in words: rates in %, intervals in brackets, the verdict."""
    shown = dict(row)
    shown["script"] = row["script"] if row["script"] is not None else label("call_no_script", lang)
    if row["kept_rate"] is not None:
        shown["kept_rate"] = _rate(row, lang)
    if row["reference"]:
        shown["difference"] = label("call_reference", lang)
    elif row["difference"] is not None:
        shown["difference"] = (f"{100 * row['difference']:+.1f}pt [{100 * row['difference_low']:+.1f}, "
                               f"{100 * row['difference_high']:+.1f}]")
    if row["enough_data"] is not None:
        shown["verdict"] = label("call_better" if row["enough_data"] else "call_not_enough", lang)
    return shown


# -- the win-back list (`kizuna priority --list winback`) ------------------------------------------------
def show_winback_list(listed: Any, lang: str) -> None:
    """The win-back calls on screen, grouped by lost reason: who, the reason and the words that gave it,
    their revenue, since when they are lost, and the reason's action."""
    rows = [{
        "n": n, "customer_id": r["customer_id"], "name": r["name"], "phone": r["phone"],
        "state": label(f"lifecycle_{r['lifecycle_state']}", lang) if r["lifecycle_state"] else None,
        "reason": segment_label(r["lost_reason"], lang) or None,
        "matched": label("lost_reason_word", lang).format(word=r["lost_reason_matched"])
        if r["lost_reason_matched"] else None,
        "ltv": r["ltv_revenue"], "lost_since": r["lost_since"],
        "action": label(f"action_{r['suggested_action']}", lang),
    } for n, r in enumerate(listed.to_pylist(), start=1)]
    columns = [("n", "#"), ("customer_id", label("customer_id", lang)), ("name", label("name", lang)),
               ("phone", label("phone_number", lang)), ("state", label("lifecycle_state", lang)),
               ("reason", label("lost_reason", lang)), ("matched", label("lost_reason_matched", lang)),
               ("ltv", text("header.ltv_revenue", lang)), ("lost_since", label("lost_since", lang)),
               ("action", label("suggested_action", lang))]
    show_rows(rows, columns, title=label("list_winback", lang))


def reason_counts(summary: dict[str, Any], lang: str) -> str:
    """The win-back list's calls and e-mail / DM rows per lost reason, in one line."""
    counts = [label("winback_reason_count", lang).format(reason=segment_label(reason, lang), calls=calls,
                                                          mail=summary["mail_by_reason"].get(reason, 0))
              for reason, calls in summary["calls_by_reason"].items()]
    return label("winback_by_reason", lang).format(counts=label("reason_separator", lang).join(counts))
