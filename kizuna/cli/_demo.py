"""`kizuna demo`: a demo business built, imported, analysed and predicted in one command."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kizuna.cli._app import (
    DEMO_CALLS_SHOWN,
    AsOfOption,
    FormatOption,
    LangOption,
    _as_of,
    _check,
    _progress,
    _show_counts,
    _show_segments,
    app,
    show_kpi_report,
)
from kizuna.cli._predict import show_call_list, show_prediction
from kizuna.cli._render import console
from kizuna.i18n import label


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
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    day = Workspace.check_day(_as_of(as_of)) or dt.date.today()
    with _progress(fmt) as progress:
        task = progress.add_task("demo", total=None)
        result = build_demo(directory, customers=customers, seed=seed, as_of=day,
                            on_progress=lambda step: progress.update(task, description=step))
    with result.workspace as ws:
        if fmt == "table":
            console.print(f"[bold]{label('demo_ready', lang)}[/bold]: {escape(str(directory))}")
        _show_counts(ws, lang, fmt)
        with _progress(fmt) as progress:
            progress.add_task(label("analyzing", lang), total=None)
            ws.analyze(day)
        show_kpi_report(ws.kpis(day), "month", lang, fmt)
        _show_segments(ws, lang, fmt)
        # docs/measures.md §3: who leaves next, and whom the contact centre calls first
        with _progress(fmt) as progress:
            progress.add_task(label("predicting", lang), total=None)
            predicted = ws.predict(day)
        show_prediction(ws, predicted, lang, fmt)
        show_call_list(ws.priority(DEMO_CALLS_SHOWN), lang, fmt)
        if fmt == "table":
            console.print(label("demo_next", lang).format(dir=directory), markup=False)
