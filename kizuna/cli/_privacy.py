"""`kizuna forget CUSTOMER_ID`: erase a customer's personal data on request (個人情報保護法).

Thin: asks for confirmation, calls `Workspace.forget`, prints every table and file it changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kizuna._errors import KizunaError
from kizuna.cli._app import DbOption, DirOption, FormatOption, LangOption, _check, app
from kizuna.cli._render import console, print_json, show_rows
from kizuna.i18n import text


def _t(key: str, lang: str, **values: object) -> str:
    """A text of ``kizuna forget`` from the catalogue ("forget.*"); "1 row", not "1 rows", in English."""
    n = values.get("n")
    return text(f"forget.{key}", lang, count=n if isinstance(n, int) else None, **values)


@app.command()
def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer's id, as in the customers table.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Erase a customer's personal data on request, keeping the anonymised figures."""
    _check(lang, fmt)
    if not yes:
        try:
            confirmed = typer.confirm(_t("confirm", lang, id=customer_id), default=False)
        except typer.Abort:  # no answer: stdin closed (a script, cron)
            raise KizunaError(_t("needs_yes", lang)) from None
        if not confirmed:
            console.print(_t("cancelled", lang), markup=False)
            raise typer.Exit(1)
    from kizuna.workspace import Workspace

    with Workspace.open(directory, store_url=db, create=False) as ws:
        report = ws.forget(customer_id)
    if fmt == "json":
        print_json({"customer_id": customer_id, **report.to_dict()})
        return
    show_rows(_rows(report, lang), [("where", _t("where", lang)), ("what", _t("what", lang))], fmt)
    if fmt == "table":
        console.print(_t("done", lang, id=customer_id), markup=False)


def _rows(report, lang: str) -> list[dict[str, str]]:
    """Every table and file the erasure changed, with what it did there."""
    from kizuna.operations import OPERATIONS_FILE

    rows = [{"where": table, "what": _t("store_rows", lang, n=n)} for table, n in report.rows.items()]
    rows += [{"where": f"{OPERATIONS_FILE}: {table}", "what": _t(table, lang, n=n)}
             for table, n in report.operations.items()]
    rows += [{"where": path, "what": _t("rejects_lines" if path.startswith("rejects") else "list_rows", lang, n=n)}
             for path, n in report.files.items()]
    rows += [{"where": name, "what": _t(how, lang)} for name, how in report.compacted.items()]
    return rows
