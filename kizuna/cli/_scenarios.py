"""`kizuna run`, `kizuna scenario preview` and `kizuna results`: docs/measures.md §4–§5 from the command line.

Thin: each command calls one `Workspace` method and prints what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kizuna.cli._app import AsOfOption, DbOption, DirOption, FormatOption, LangOption, _as_of, _check, app, mistake
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import label, money, say

scenario_app = typer.Typer(help="Look at one scenario: render its message for a customer.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")

def _l(key: str, lang: str) -> str:
    return label(("" if key.startswith("title_") else "run_") + key, lang)


def _channel(channel: str, lang: str) -> str:
    return label(f"channel_{channel}", lang)


def _title(title: dict[str, str], name: str, lang: str) -> str:
    """A scenario's title in `lang` (its file's name only when it has no title at all)."""
    return title.get(lang) or title.get("ja") or name


@app.command()
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who gets what; send and record nothing.")] = False,
    as_of: AsOfOption = None,
    only: Annotated[str | None, typer.Option("--scenario", help="Run only this scenario.")] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Evaluate every scenario and deliver what is due (e-mail, LINE, lists), exactly once."""
    from kizuna.scenarios import cost_lines
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    done = "would_send" if dry_run else "sent"
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        report = ws.run(_as_of(as_of), dry_run=dry_run, only=only, release_store=True)
        costs = cost_lines(report.tallies.values(), ws.settings.costs, done)
    columns = ["enrolled", "holdout", done, "merged", "deferred", "suppressed", "cancelled", "failed"]
    if report.total("over_budget"):
        columns.insert(columns.index("deferred") + 1, "over_budget")
    if not dry_run:
        columns += ["unconfirmed", "waiting"]
    tallies = [t for _, t in sorted(report.tallies.items())]
    if fmt == "json":  # codes for programs, the titles beside them, the warnings in words
        steps = [{"scenario": t.scenario, "title": _title(t.title, t.scenario, lang), "step": t.step,
                  "channel": t.channel, **{c: t.counts.get(c, 0) for c in columns}} for t in tallies]
        print_json({"as_of": report.as_of, "now": report.now, "dry_run": dry_run, "steps": steps,
                    "files": [str(p) for p in report.files], "problems": [say(p, lang) for p in report.problems],
                    "samples": report.samples, "costs": costs})
        return
    rows = [{"scenario": _title(t.title, t.scenario, lang), "step": t.step, "channel": _channel(t.channel, lang),
             **{c: t.counts.get(c, 0) for c in columns}} for t in tallies]
    show_rows(rows, [(c, _l(c, lang)) for c in ("scenario", "step", "channel", *columns)], fmt,
              title=_l("title_run_dry" if dry_run else "title_run", lang))
    if fmt != "table":
        return
    for line in _cost_text(costs, lang):
        console.print(line, highlight=False, markup=False)
    for path in report.files:
        console.print(f"{_l('files', lang)}: {path}", highlight=False, markup=False)
    for problem in report.problems:
        console.print(f"! {say(problem, lang)}", highlight=False, markup=False, style="yellow")
    for sample in report.samples[:6] if dry_run else []:
        step = label("run_step_n", lang).format(n=sample["step"])
        console.rule(f"{_title(sample.get('title', {}), sample['scenario'], lang)} {step} "
                     f"{_channel(sample['channel'], lang)} → {sample['customer_id']}", style="dim")
        if sample["subject"]:
            console.print(sample["subject"], markup=False, highlight=False, style="bold")
        console.print(sample["text"].rstrip(), markup=False, highlight=False)


@scenario_app.command("preview")
def preview(
    name: Annotated[str, typer.Argument(help="The scenario's name (its file name without .yaml).")],
    customer: Annotated[str, typer.Option("--customer", help="The customer id to render it for.")],
    step: Annotated[int, typer.Option("--step", help="Which step (1 = the first).")] = 1,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Message language: ja or en (default: the scenario's).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: text, html or json.")] = "text",
) -> None:
    """Render one step's message for one customer, as it would be sent."""
    from kizuna.workspace import Workspace

    if lang is not None:
        _check(lang)
    if fmt not in ("text", "html", "json"):
        raise mistake("one_of", option="--format", choices=["text", "html", "json"])
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        message = ws.preview(name, customer, step=step, as_of=_as_of(as_of), lang=lang)
    if fmt == "json":
        print_json(message)
    elif fmt == "html":
        console.print(message["html"], markup=False, highlight=False, soft_wrap=True)
    else:
        if message["subject"]:
            console.print(message["subject"], markup=False, highlight=False, style="bold")
        console.print(message["text"].rstrip(), markup=False, highlight=False, soft_wrap=True)


@app.command()
def results(
    name: Annotated[str | None, typer.Argument(help="One scenario (default: all).")] = None,
    calls: Annotated[bool, typer.Option(
        "--calls", help="The contact centre's calls instead: kept rate per talk script (Wilson, Newcombe against "
                        "the reference script) and the customers called against the call holdout.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="With --calls: only calls from this date.")] = None,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Per scenario and step: sent, delivered, failed, deferred, suppressed; the uplift against the control.
    With --calls, what the calls teach (as `kizuna calls results`)."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    if calls:
        if name is not None:
            raise mistake("calls_without_name")
        from kizuna.cli._calls import show_call_results

        with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
            found = ws.call_results(as_of=_as_of(as_of), since=_as_of(since, "--since"))
        show_call_results(found, lang, fmt)
        return
    if since is not None:
        raise mistake("since_with_calls")
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        rows = ws.results(name, as_of=_as_of(as_of), lang=lang)
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        console.print(_l("none", lang), markup=False, highlight=False)
        return
    shown = [_shown(row, lang) for row in rows]
    columns = ["scenario", "step", "channel", "due", "sent", "delivered", "failed", "deferred", "suppressed",
               "holdout", "clicked", "converted", "treated_rate", "control_rate", "uplift", "verdict",
               "revenue_per_recipient", "control_revenue_per_customer", "incremental_revenue", "cost",
               "incremental_profit"]
    if fmt == "table":  # a terminal is narrow: these are in csv and json
        for column in ("due", "delivered", "control_revenue_per_customer", "cost"):
            columns.remove(column)
    show_rows(shown, [(c, _l(c, lang)) for c in columns], fmt, title=_l("title_results", lang))


def _cost_text(costs: list[dict[str, Any]], lang: str) -> list[str]:
    """What the messages of a run cost, a line per channel: "DM 1,535件 × ¥120 = ¥184,200"."""
    if not costs:
        return []
    lines = [f"{_l('costs', lang)}:"]
    for c in costs:
        lines.append("  " + _l("cost_line", lang).format(channel=_channel(c["channel"], lang), n=f"{c['n']:,}",
                                                          price=money(c["price"], lang, exact=True),
                                                          total=money(c["total"], lang, exact=True)))
    lines.append("  " + _l("cost_total", lang).format(total=money(sum(c["total"] for c in costs), lang, exact=True)))
    return lines


def _shown(row: dict[str, Any], lang: str) -> dict[str, Any]:
    shown = dict(row)
    shown["scenario"] = row.get("title") or row["scenario"]  # the title in `lang`, not the file's name
    shown["channel"] = _channel(row["channel"], lang) if row["channel"] else ""
    for rate in ("treated_rate", "control_rate"):
        shown[rate] = Percent(100 * row[rate]) if row[rate] is not None else None
    for yen in ("revenue_per_recipient", "control_revenue_per_customer", "cost"):
        shown[yen] = round(row[yen]) if row[yen] is not None else None
    if row["incremental_profit"] is not None:
        shown["incremental_profit"] = money(row["incremental_profit"], lang, exact=True) + (
            f" [{money(row['profit_low'], lang, exact=True)}, {money(row['profit_high'], lang, exact=True)}]"
            if row["profit_low"] is not None else "")
    if row["step"] is None:
        shown["step"] = _l("total", lang)
        if row["uplift"] is not None:
            shown["uplift"] = f"{100 * row['uplift']:+.1f}pt [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
            shown["verdict"] = (_l("significant", lang) if row["enough_data"]
                                else _l("not_enough", lang).format(n=row["needed_per_group"] or 0))
        if row["incremental_revenue"] is not None:
            shown["incremental_revenue"] = round(row["incremental_revenue"])
    return shown
