"""One mapping file per shop, folders imported in dependency order, customers found by
e-mail and phone (issue #13, points 3 and 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kizuna import MappingError, MissingColumnsError, Workspace
from kizuna.importing import guest_id
from kizuna.workspace import Settings

from factories import rejects_of, write
from factories import stored as rows

KIZUNA = [sys.executable, "-m", "kizuna"]

SHOP_MAPPING = """
[columns]                  # every kind
"顧客コード" = "customer_id"
"品番" = "product_id"
"登録日時" = "signed_up_at"

[columns.orders]
"伝票No" = "order_id"
"受付日時" = "ordered_at"
"お支払額" = "amount"
"状態" = "status"

[columns.products]
"品名" = "name"

[columns.order-items]
"伝票No" = "order_id"
"数" = "quantity"
"売価" = "unit_price"

[values.status]
"出荷済" = "completed"
"取消済" = "cancelled"
"""


@pytest.fixture
def ws(tmp_path: Path):
    # an English workspace: the rejects' reasons below are its English texts (kizuna.i18n reject.*)
    workspace = Workspace.init(tmp_path / "ws", settings=Settings().replace(business={"lang": "en"}))
    yield workspace
    workspace.close()


def test_one_mapping_serves_every_export_of_a_shop(ws, tmp_path):
    mapping = write(tmp_path / "shop.toml", SHOP_MAPPING)
    customers = write(tmp_path / "kokyaku.csv", "顧客コード,氏名,登録日時\nK1,山田 太郎,2023/4/1\n", "cp932")
    products = write(tmp_path / "shohin.csv", "品番,品名,価格\nP1,天然水,1500\n", "cp932")
    orders = write(tmp_path / "denpyo.csv", "伝票No,顧客コード,受付日時,お支払額,状態\nD1,K1,2024/1/5,3000,出荷済\n"
                   "D2,K1,2024/1/9,1500,取消済\n", "cp932")
    items = write(tmp_path / "meisai.csv", "伝票No,品番,数,売価\nD1,P1,2,1500\nD2,P1,1,1500\n", "cp932")
    # the shared "登録日時" is a customers column: ignored for the other kinds, as are the
    # entries for headers a file does not have
    results = [ws.import_file(kind, path, mapping=mapping) for kind, path in
               (("customers", customers), ("products", products), ("orders", orders), ("order-items", items))]
    assert [(s.added, s.rejected) for s in results] == [(1, 0), (1, 0), (2, 0), (2, 0)]
    assert [(r["order_id"], r["amount"], r["status"]) for r in rows(ws, "orders", "order_id")] == [
        ("D1", 3000, "completed"), ("D2", 1500, "cancelled")]
    assert [(r["order_id"], r["quantity"]) for r in rows(ws, "order_items", "order_id")] == [("D1", 2), ("D2", 1)]
    assert rows(ws, "products", "product_id")[0]["name"] == "天然水"


@pytest.mark.parametrize(("text", "message"), [
    ('[columns]\n"x" = "amout"\n', "the mapping names amout, which no kind has"),
    ('[columns.orders]\n"x" = "score"\n', "the mapping names score in [columns.orders], which orders does not have"),
    ('[columns.bogus]\n"x" = "amount"\n', "[columns.bogus]: no such kind"),
])
def test_only_a_column_that_no_kind_has_is_a_mapping_error(ws, tmp_path, text, message):
    mapping = write(tmp_path / "m.toml", text)
    data = write(tmp_path / "o.csv", "order_id,customer_id,ordered_at,amount\nO1,C1,2024-01-05,100\n")
    with pytest.raises(MappingError) as caught:
        ws.import_file("orders", data, mapping=mapping)
    assert str(caught.value).startswith(f"{mapping}: ") and message in str(caught.value)


@pytest.mark.slow
def test_a_guest_is_found_by_phone_when_the_email_is_unknown_or_missing(ws, tmp_path):
    members = "customer_id,name,email,phone\nK1,山田 太郎,taro@example.jp,090-1111-2222\n"
    ws.import_file(write(tmp_path / "c.csv", members))
    orders = write(tmp_path / "o.csv", (
        "order_id,customer_id,ordered_at,amount,email,phone\n"
        "O1,,2024-01-05,100,TARO@EXAMPLE.JP,\n"          # the member, by e-mail
        "O2,,2024-01-06,200,,09011112222\n"              # the member, by phone digits
        "O3,,2024-01-07,300,new@example.jp,\n"           # a new guest
        "O4,,2024-01-08,400,New@Example.jp ,03-0000-0000\n"  # the same guest
        "O5,,2024-01-09,500,,\n"                         # nobody: rejected
    ))
    summary = ws.import_file("orders", orders)
    assert (summary.rows_read, summary.added, summary.rejected) == (5, 4, 1)
    assert [(r["row"], r["column"], r["reason"]) for r in rejects_of(summary)] == [
        ("6", "customer_id", "missing customer_id (no member id, e-mail or phone)")]
    new = guest_id("new@example.jp", key=ws.operations.secret())
    assert [(r["order_id"], r["customer_id"]) for r in rows(ws, "orders", "order_id")] == [
        ("O1", "K1"), ("O2", "K1"), ("O3", new), ("O4", new)]
    assert ws.store.count("customers") == 2


@pytest.mark.slow
def test_kizuna_import_folder_and_file_without_kind_on_the_command_line(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    # named so that file order is the wrong order: orders before their customers
    write(folder / "a_orders.csv", "order_id,customer_id,ordered_at,amount\nO1,K1,2024-01-05,1200\n")
    write(folder / "b_customers.csv", "customer_id,name\nK1,山田 太郎\n")
    subprocess.run([*KIZUNA, "init", str(tmp_path / "ws")], check=True, capture_output=True)
    done = subprocess.run([*KIZUNA, "import", str(folder), "-d", str(tmp_path / "ws"), "-f", "json"],
                          capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert [(s["kind"], Path(s["path"]).name, s["added"]) for s in json.loads(done.stdout)] == [
        ("customers", "b_customers.csv", 1), ("orders", "a_orders.csv", 1)]
    again = subprocess.run([*KIZUNA, "import", str(folder / "a_orders.csv"), "-d", str(tmp_path / "ws"),
                            "--lang", "en"], capture_output=True, text=True, encoding="utf-8")
    assert again.returncode == 0 and "unchanged" in again.stdout and "orders" in again.stdout
    wrong = subprocess.run([*KIZUNA, "import", "ordres", str(folder / "a_orders.csv"), "-d", str(tmp_path / "ws")],
                           capture_output=True, text=True, encoding="utf-8")
    assert wrong.returncode != 0 and "種類 'ordres' はありません" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_folder_with_a_file_kizuna_cannot_read_changes_nothing(ws, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    write(folder / "customers.csv", "customer_id,name\nK1,山田 太郎\n")
    write(folder / "memo.csv", "メモ,担当\nあとで確認,佐藤\n")
    with pytest.raises(MissingColumnsError) as caught:
        ws.import_folder(folder)
    assert "memo.csv" in str(caught.value)
    assert ws.store.count("customers") == 0  # told before the first file was imported
