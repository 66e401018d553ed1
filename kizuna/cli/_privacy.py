"""`kizuna forget CUSTOMER_ID`: erase a customer's personal data on request (個人情報保護法).

Thin: asks for confirmation, calls `Workspace.forget`, prints every table and file it changed.
"""

from __future__ import annotations

import re
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
    "where": ("変更した場所", "where"), "what": ("変更内容", "what changed"),
    "store_rows": ("{n} 行を仮名化し個人情報を消去", "{n} rows under the pseudonym, personal data nulled"),
    "deliveries": ("{n} 行: 顧客IDとキーを仮名に", "{n} rows: customer id and key under the pseudonym"),
    "survey_links": ("{n} 行を仮名に", "{n} rows under the pseudonym"),
    "survey_answers": ("{n} 行を仮名に、コメントを削除", "{n} rows under the pseudonym, comments removed"),
    "memberships": ("{n} 行を削除", "{n} rows deleted"),
    "consents": ("{n} 件の配信停止を顧客IDでなく鍵付きハッシュで保持",
                 "{n} opt-outs kept under a keyed hash, not the id"),
    "list_rows": ("{n} 行を削除", "{n} rows removed"),
    "rejects_lines": ("{n} 行を削除", "{n} lines removed"),
    "rewritten": ("新しいファイルに書き直し、置き換え(古いブロックは残らない)",
                  "copied into a new file that replaced it (no old block left)"),
    "vacuum_full": ("変更したテーブルを VACUUM FULL (ファイルはサーバー側、ワークスペースにはない)",
                    "VACUUM FULL of the tables changed (its files are the server's, none in the workspace)"),
    "tables_rewritten": ("テーブルを丸ごと書き直し済み", "tables rewritten whole"),
    "in_memory": ("メモリ上のストア: ファイルなし", "a store in memory: no file"),
    "vacuum": ("VACUUM で書き直し、WAL を空に", "rewritten by VACUUM, its WAL emptied"),
    "vacuum_wal_busy": ("他のプロセスが使用中で WAL を空にできません: 次の kizuna コマンドで再試行します",
                        "in use by another process, its WAL not emptied: the next kizuna command tries again"),
}


def _t(key: str, lang: str, **values: object) -> str:
    text = _TEXT[key][0 if lang == "ja" else 1].format(**values)
    if lang != "ja" and values.get("n") == 1:  # "1 row", "1 opt-out"
        text = re.sub(r"^1 (row|line|opt-out)s\b", r"1 \1", text)
    return text


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
