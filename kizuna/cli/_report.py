"""`kizuna report`: the manager's monthly report as HTML and PDF, and (`--mail`) by e-mail.

Thin: `Workspace.report_figures`, `write_report`, `mail_report`; the files' paths for people, or
JSON for scripts. Ibis and Playwright load inside the command, so `kizuna --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import typer

from kizuna.cli._app import (
    AsOfOption,
    DbOption,
    DirOption,
    FormatOption,
    LangOption,
    _as_of,
    _check,
    _progress,
    app,
    mistake,
)
from kizuna.cli._render import console, print_json, show_rows
from kizuna.i18n import label


def _month(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    found = re.fullmatch(r"(\d{4})-(\d{2})", value.strip())
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise mistake("not_a_month", value=value)
    return int(found.group(1)), int(found.group(2))


@app.command()
def report(
    period: Annotated[str | None, typer.Option(
        "--period", help="The month to report on (YYYY-MM); default the last full month before --as-of.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder to write report-YYYY-MM.html and .pdf into (default: the workspace's reports/).")
    ] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print the PDF (Chromium).")] = True,
    mail: Annotated[bool, typer.Option(
        "--mail", help="E-mail it to \\[report] recipients through the \\[email] SMTP server.")] = False,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """The monthly report for managers: KPIs and their changes, the matrix and its moves, lost customers,
    value at risk, the scenarios' and the call centre's results (HTML and PDF; --mail sends them)."""
    from kizuna.analytics import Period
    from kizuna.reporting import period_label
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    month, day = _month(period), _as_of(as_of)
    if output is not None and output.exists() and not output.is_dir():
        raise mistake("output_is_file", path=output)
    with Workspace.open(directory, store_url=db, create=False) as ws:
        if mail:
            ws.check_report_mail()  # before the work: a missing setting costs nothing
        chosen = Period.month(*month) if month else Period.month_before(ws.as_of(day))
        with _progress(fmt) as progress:
            progress.add_task(label("report.title", lang).format(period=period_label(chosen, lang)), total=None)
            figures = ws.report_figures(chosen, lang=lang)
            files = ws.write_report(figures, output, lang=lang, pdf=pdf)
            sent = ws.mail_report(figures, files, lang=lang) if mail else []
    if fmt == "json":
        print_json({"start": chosen.start, "end": chosen.end, "files": [str(f) for f in files], "mailed_to": sent,
                    "made": dt.datetime.now().replace(microsecond=0)})
        return
    rows = [{"k": label("report.written", lang), "v": str(f)} for f in files]
    if mail:
        mailed = label("report.mailed", lang).format(n=len(sent), to=", ".join(sent))
        rows.append({"k": label("report.sent_by_mail", lang), "v": mailed})
    if fmt == "csv":
        show_rows(rows, [("k", "what"), ("v", "value")], fmt)
        return
    for row in rows:
        console.print(f"{row['k']}: {row['v']}", markup=False)
