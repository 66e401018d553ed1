"""`kizuna forget CUSTOMER_ID`: erase a customer's personal data on request (個人情報保護法).

Thin: asks for confirmation, calls `forget_customer`, prints what was changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kizuna._errors import KizunaError
from kizuna.cli._app import DbOption, DirOption, FormatOption, LangOption, _check, app
from kizuna.cli._render import console, print_json, show_rows

_TEXT = {
    "confirm": ("顧客 {id} の個人情報(氏名・連絡先・住所・コメント)を消去し、顧客IDを仮名に置き換えます。"
                "元に戻せません。続けますか?",
                "Erase the personal data of customer {id} (name, contact details, address, comments) and replace "
                "the id by a pseudonym? This cannot be undone."),
    "needs_yes": ("確認の応答がありません。確認なしで実行するには --yes を付けてください。",
                  "no answer to the confirmation; add --yes to erase without asking."),
    "cancelled": ("中止しました。何も変更していません。", "cancelled; nothing was changed."),
    "done": ("顧客 {id} の個人情報を消去しました。注文数・売上・NPSの集計値はそのまま残ります。",
             "Customer {id} erased. Order counts, revenue and NPS figures are kept, under a pseudonym."),
    "where": ("消去した場所", "where"), "rows": ("行数", "rows"),
    "rejects": ("取り込み却下ファイル", "rejects files"),
    "rejects_value": ("{lines} 行 / {files} ファイル", "{lines} lines in {files} files"),
    "operations": ("配信記録・アンケート回答(仮名化)", "send ledger and survey answers (pseudonymised)"),
}


def _t(key: str, lang: str, **values: object) -> str:
    return _TEXT[key][0 if lang == "ja" else 1].format(**values)


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
    from kizuna.workspace._forget import forget_customer

    with Workspace.open(directory, store_url=db, create=False) as ws:
        report = forget_customer(ws, customer_id)
    if fmt == "json":
        print_json({"customer_id": customer_id, **report.to_dict()})
        return
    rows = [{"where": name, "rows": count} for name, count in report.rows.items()]
    rows.append({"where": _t("rejects", lang),
                 "rows": _t("rejects_value", lang, lines=report.rejects_lines, files=report.rejects_files)})
    rows.append({"where": _t("operations", lang), "rows": "✓"})
    show_rows(rows, [("where", _t("where", lang)), ("rows", _t("rows", lang))], fmt)
    if fmt == "table":
        console.print(_t("done", lang, id=customer_id), markup=False)
