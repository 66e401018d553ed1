"""Platform exports import with no mapping (issue #13): files written in each platform's
documented layout, stored orders, items and customers checked against hand-worked figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from kizuna import MissingColumnsError, Workspace
from kizuna.importing import guest_id
from kizuna.workspace import Settings

from factories import rejects_of
from factories import stored as rows


@pytest.fixture
def ws(tmp_path: Path):
    # an English workspace: the rejects' reasons below are its English texts (kizuna.i18n reject.*)
    workspace = Workspace.init(tmp_path / "ws", settings=Settings().replace(business={"lang": "en"}))
    yield workspace
    workspace.close()


def export(path: Path, header: list[str], records: list[list[object]], encoding: str = "utf-8",
           newline: str = "\r\n") -> Path:
    """A CSV as the platform writes it: every field quoted, CRLF, in its encoding."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=newline)
    writer.writerow(header)
    for record in records:
        assert len(record) == len(header), record
        writer.writerow(["" if v is None else v for v in record])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def table(ws: Workspace, name: str, *columns: str, order_by: str | None = None) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows(ws, name, order_by or columns[0])]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- EC-CUBE 4: 会員 CSV and 受注 CSV (one row per 明細, cp932) ---------------------------

# EC-CUBE 4's default 会員CSV and 受注CSV columns, in order (its dtb_csv rows for csv_type 2 and 3)
EC4_MEMBERS = ["会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名", "郵便番号",
               "都道府県(ID)", "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)",
               "性別(名称)", "職業(ID)", "職業(名称)", "誕生日", "初回購入日", "最終購入日", "購入回数",
               "ショップ用メモ欄", "会員ステータス(ID)", "会員ステータス(名称)", "登録日", "更新日"]
EC4_ORDERS = ["注文ID", "注文番号", "会員ID", "お名前(姓)", "お名前(名)", "お名前(セイ)", "お名前(メイ)", "会社名",
              "郵便番号", "都道府県(ID)", "都道府県(名称)", "住所1", "住所2", "メールアドレス", "TEL", "性別(ID)",
              "性別(名称)", "職業(ID)", "職業(名称)", "誕生日", "ショップ用メモ欄", "小計", "値引き", "送料",
              "税金", "合計", "支払合計", "対応状況(ID)", "対応状況(名称)", "支払方法(ID)", "支払方法(名称)",
              "受注日", "入金日", "注文詳細ID", "商品ID", "商品規格ID", "商品名", "商品コード", "規格名1",
              "規格名2", "規格分類名1", "規格分類名2", "価格", "個数", "税率", "税率ルール(ID)", "明細区分(ID)",
              "明細区分(名称)", "出荷ID", "配送先_お名前(姓)", "配送先_お名前(名)", "配送先_お名前(セイ)",
              "配送先_お名前(メイ)", "配送先_会社名", "配送先_郵便番号", "配送先_都道府県(ID)",
              "配送先_都道府県(名称)", "配送先_住所1", "配送先_住所2", "配送先_TEL", "配送業者(ID)",
              "配送業者(名称)", "お届け時間ID", "お届け時間(名称)", "お届け希望日", "送料", "発送日",
              "出荷伝票番号", "配達用メモ", "出荷メール送信日"]
# postal code, prefecture, address 1 and 2, phone of each buyer
EC4_PEOPLE = {
    "山田": ("100-0001", "東京都", "千代田区千代田1-1", "", "090-1111-2222"),
    "佐藤": ("530-0001", "大阪府", "大阪市北区梅田1-1", "梅田ビル2F", "06-1234-5678"),
    "鈴木": ("060-0001", "北海道", "札幌市中央区北1条", "", "011-111-1111"),
}


def by_header(header: list[str], values: dict[str, object]) -> list[object]:
    """A record in `header`'s order; columns not given are blank (a repeated header gets one value)."""
    return [values.get(h, "") for h in header]


def ec4_member(member: int, last: str, first: str, kana: tuple[str, str], email: str, birthday: str,
               signed_up: str) -> list[object]:
    postal, prefecture, address1, address2, phone = EC4_PEOPLE[last]
    return by_header(EC4_MEMBERS, {
        "会員ID": member, "お名前(姓)": last, "お名前(名)": first, "お名前(セイ)": kana[0], "お名前(メイ)": kana[1],
        "郵便番号": postal, "都道府県(ID)": 13, "都道府県(名称)": prefecture, "住所1": address1, "住所2": address2,
        "メールアドレス": email, "TEL": phone, "性別(ID)": 1, "性別(名称)": "男性", "誕生日": birthday, "購入回数": 0,
        "会員ステータス(ID)": 2, "会員ステータス(名称)": "本会員", "登録日": signed_up, "更新日": signed_up,
    })


def ec4_order(order: tuple, line: tuple) -> list[object]:
    number, member, last, first, kana, email, subtotal, discount, shipping, total, status, day = order
    code, name, price, quantity, kind = line
    postal, prefecture, address1, address2, phone = EC4_PEOPLE[last]
    return by_header(EC4_ORDERS, {
        "注文ID": number, "注文番号": number, "会員ID": member, "お名前(姓)": last, "お名前(名)": first,
        "お名前(セイ)": kana[0], "お名前(メイ)": kana[1], "郵便番号": postal, "都道府県(名称)": prefecture,
        "住所1": address1, "住所2": address2, "メールアドレス": email, "TEL": phone, "小計": subtotal,
        "値引き": discount, "送料": shipping, "税金": 0, "合計": total, "支払合計": total,
        "対応状況(名称)": status, "支払方法(名称)": "クレジットカード", "受注日": day, "商品名": name,
        "商品コード": code, "価格": price, "個数": quantity, "税率": 10, "明細区分(名称)": kind,
        "配送先_お名前(姓)": last, "配送先_お名前(名)": first, "配送先_TEL": phone,
    })


def write_ec4(tmp_path: Path) -> tuple[Path, Path]:
    members = export(tmp_path / "customer_20240401.csv", EC4_MEMBERS, [
        ec4_member(5, "山田", "太郎", ("ヤマダ", "タロウ"), "taro@example.jp", "1985-04-01", "2023-04-01 10:00:00"),
        ec4_member(6, "鈴木", "一郎", ("スズキ", "イチロウ"), "ichiro@example.jp", "", "2023-05-01 10:00:00"),
    ], "cp932")
    taro = ("ヤマダ", "タロウ")
    hana = ("サトウ", "ハナコ")
    o1001 = ("1001", 5, "山田", "太郎", taro, "taro@example.jp", 3000, 0, 500, 3500, "発送済み", "2024-01-05 10:30:00")
    o1002 = ("1002", 0, "山田", "太郎", taro, "TARO@example.jp", 1200, 0, 0, 1200, "新規受付", "2024-01-03 09:00:00")
    o1003 = ("1003", 0, "佐藤", "花子", hana, "hana@example.jp", 2000, 100, 0, 1900, "入金済み", "2024-02-01 12:00:00")
    o1004 = ("1004", "", "佐藤", "花子", hana, "Hana@Example.jp", 1500, 0, 0, 1500, "注文取消し", "2024-02-10 12:00:00")
    o1005 = ("1005", 6, "鈴木", "一郎", ("スズキ", "イチロウ"), "ichiro@example.jp", 1500, 0, 0, 1500, "返品",
             "2024-03-01 12:00:00")
    water, coffee = ("W-001", "天然水 12L"), ("C-010", "コーヒー豆 200g")
    orders = export(tmp_path / "order_20240401.csv", EC4_ORDERS, [
        ec4_order(o1001, (*water, 1500, 2, "商品")),
        ec4_order(o1001, ("", "送料", 500, 1, "送料")),
        ec4_order(o1002, (*water, 1200, 1, "商品")),
        ec4_order(o1003, (*coffee, 1000, 1, "商品")),
        ec4_order(o1003, (*coffee, 1000, 1, "商品")),
        ec4_order(o1003, ("", "割引", -100, 1, "割引")),
        ec4_order(o1004, (*water, 1500, 1, "商品")),
        ec4_order(o1005, (*water, 1500, 1, "商品")),
    ], "cp932")
    return members, orders


@pytest.mark.slow
def test_ec_cube_4_members_and_line_item_orders_with_guests(ws, tmp_path):
    members, orders = write_ec4(tmp_path)
    first = ws.import_file(members)
    assert (first.kind, first.preset, first.encoding, first.added, first.rejected) == (
        "customers", "EC-CUBE 4 会員CSV", "cp932", 2, 0)
    summary = ws.import_file(orders)
    assert (summary.kind, summary.preset, summary.rows_read, summary.rejected) == ("orders", "EC-CUBE 4 受注CSV", 8, 0)
    assert {t: (c.added, c.updated, c.unchanged) for t, c in summary.tables.items()} == {
        "customers": (1, 0, 2), "products": (2, 0, 0), "orders": (5, 0, 0), "order_items": (5, 0, 0),
    }
    hana = guest_id("hana@example.jp", key=ws.operations.secret())
    # 1002 is a guest order with member 5's e-mail (other case): it is member 5's; 1003 and 1004 are one guest
    assert table(ws, "orders", "order_id", "customer_id", "ordered_at", "amount", "status") == [
        ("1001", "5", at("2024-01-05 10:30"), 3500, "completed"),
        ("1002", "5", at("2024-01-03 09:00"), 1200, "completed"),
        ("1003", hana, at("2024-02-01 12:00"), 1900, "completed"),
        ("1004", hana, at("2024-02-10 12:00"), 1500, "cancelled"),
        ("1005", "6", at("2024-03-01 12:00"), 1500, "returned"),
    ]
    # 送料 and 割引 lines are not products; two lines of the same product and price are one item
    assert table(ws, "order_items", "order_id", "product_id", "quantity", "unit_price") == [
        ("1001", "W-001", 2, 1500), ("1002", "W-001", 1, 1200), ("1003", "C-010", 2, 1000),
        ("1004", "W-001", 1, 1500), ("1005", "W-001", 1, 1500),
    ]
    assert table(ws, "products", "product_id", "name") == [("C-010", "コーヒー豆 200g"), ("W-001", "天然水 12L")]
    customers = {r["customer_id"]: r for r in rows(ws, "customers", "customer_id")}
    assert sorted(customers) == sorted(["5", "6", hana])
    assert (customers["5"]["name"], customers["5"]["signed_up_at"], customers["5"]["birthday"]) == (
        "山田 太郎", at("2023-04-01 10:00"), dt.date(1985, 4, 1))  # the member file's values are kept
    assert {k: customers[hana][k] for k in ("name", "name_kana", "email", "phone", "postal_code", "address")} == {
        "name": "佐藤 花子", "name_kana": "サトウ ハナコ", "email": "Hana@Example.jp", "phone": "06-1234-5678",
        "postal_code": "530-0001", "address": "大阪府大阪市北区梅田1-1梅田ビル2F",
    }
    again = ws.import_file(orders)
    assert {t: (c.added, c.updated) for t, c in again.tables.items()} == {
        "customers": (0, 0), "products": (0, 0), "orders": (0, 0), "order_items": (0, 0)}
    assert again.unchanged == 5


@pytest.mark.slow
def test_a_shop_with_only_its_order_export_can_start(ws, tmp_path):
    _, orders = write_ec4(tmp_path)
    summary = ws.import_file(orders)
    assert (summary.added, summary.rejected, summary.tables["customers"].added) == (5, 0, 3)
    assert ws.store.count("customers") == 3  # members 5 and 6, and the guest


@pytest.mark.slow
def test_a_line_that_says_another_order_total_is_rejected_by_row(ws, tmp_path):
    header = ["注文番号", "会員ID", "メールアドレス", "支払合計", "対応状況(名称)", "受注日", "商品コード", "商品名",
              "価格", "個数", "明細区分(名称)"]
    path = export(tmp_path / "o.csv", header, [
        ["1", "", "a@example.jp", 3000, "新規受付", "2024-01-05", "P1", "品1", 1000, 1, "商品"],
        ["1", "", "a@example.jp", 3000, "新規受付", "2024-01-05", "P2", "品2", 2000, 1, "商品"],
        ["1", "", "a@example.jp", 9999, "新規受付", "2024-01-05", "P3", "品3", 500, 1, "商品"],  # row 4
        ["2", "", "b@example.jp", 500, "新規受付", "2024-01-06", "P1", "品1", 500, "x", "商品"],  # row 5
        ["2", "", "b@example.jp", 500, "新規受付", "2024-01-06", "", "送料", 0, 1, "送料"],
    ], "cp932")
    summary = ws.import_file(path)
    found = {(int(r["row"]), r["column"]): r["reason"] for r in rejects_of(summary)}
    assert found == {(4, "amount"): "not the same as on the order's first row (row 2)",
                     (5, "quantity"): "not a whole number"}
    assert (summary.rows_read, summary.rejected) == (5, 2)
    assert table(ws, "orders", "order_id", "amount") == [("1", 3000), ("2", 500)]
    assert table(ws, "order_items", "order_id", "product_id", order_by="product_id") == [("1", "P1"), ("1", "P2")]



@pytest.mark.slow
def test_a_buyer_is_named_by_the_last_line_of_their_latest_order(ws, tmp_path):
    # the latest order by time; of two at the same time, the one further down the file; a field that order leaves
    # blank comes from another of the customer's orders. A product is named by its first line.
    header = ["注文番号", "会員ID", "お名前(姓)", "お名前(名)", "メールアドレス", "TEL", "支払合計", "対応状況(名称)",
              "受注日", "商品コード", "商品名", "価格", "個数", "明細区分(名称)"]
    path = export(tmp_path / "o.csv", header, [
        ["3", "7", "山田", "三郎", "c@example.jp", "", 1000, "新規受付", "2024-01-05 10:00:00", "P1", "水", 1000, 1,
         "商品"],
        ["1", "7", "山田", "一郎", "a@example.jp", "090-1111-1111", 1000, "新規受付", "2024-01-04 10:00:00", "P1",
         "天然水", 1000, 1, "商品"],
        ["2", "7", "山田", "次郎", "b@example.jp", "", 1000, "新規受付", "2024-01-05 10:00:00", "P1", "水 12L", 1000, 1,
         "商品"],
    ], "cp932")
    summary = ws.import_file(path)
    assert (summary.rejected, summary.tables["customers"].added) == (0, 1)
    assert table(ws, "customers", "customer_id", "name", "email", "phone") == [
        ("7", "山田 次郎", "b@example.jp", "090-1111-1111")]
    assert table(ws, "products", "product_id", "name") == [("P1", "水")]

# -- Shopify: orders_export (line items, order fields only on the first line) -------------

SHOPIFY_ORDERS = ["Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
                  "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
                  "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
                  "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
                  "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
                  "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
                  "Billing Province", "Billing Country", "Billing Phone", "Notes", "Cancelled at",
                  "Payment Method", "Refunded Amount", "Vendor", "Id", "Tags", "Source", "Billing Province Name"]


def shopify(name, email="", status="", total="", created="", line=("", "", "", ""), billing=None,
            cancelled="", refunded="", marketing="") -> list[str]:
    quantity, title, price, sku = line
    bill = billing or ("", "", "", "", "", "")
    bill_name, address1, city, zip_code, phone, province = bill
    first = bool(status)
    return [name, email, status, created if first else "", "fulfilled" if first else "", "", marketing,
            "JPY" if first else "", total, "0.00" if first else "", "0.00" if first else "", total, "",
            "0.00" if first else "", "", created, quantity, title, price, "", sku, "true", "true", "fulfilled",
            bill_name, address1, address1, "", "", city, zip_code, "JP-13" if first else "", "JP" if first else "",
            phone, "", cancelled, "Shopify Payments" if first else "", refunded, "shop", "", "", "web" if first else "",
            province]


# Shopify writes Billing Name given-name first and Billing Province Name romanised (help.shopify.com
# orders export; issue #21): kizuna stores "山田 太郎" and 東京都
TARO_BILLING = ("太郎 山田", "千代田1-1", "千代田区", "100-0001", "+81 90-1111-2222", "Tokyo")


def write_shopify(tmp_path: Path) -> Path:
    return export(tmp_path / "orders_export_1.csv", SHOPIFY_ORDERS, [
        shopify("#1001", "taro@example.jp", "paid", "3800.00", "2024-01-05 10:30:00 +0900",
                ("2", "天然水 12L", "1500.00", "W-001"), TARO_BILLING, refunded="0.00", marketing="yes"),
        shopify("#1001", "taro@example.jp", created="2024-01-05 10:30:00 +0900",
                line=("1", "コーヒー豆", "800.00", "C-010")),
        shopify("#1002", "hana@example.jp", "refunded", "1500.00", "2024-01-20 01:00:00 +0000",
                ("1", "天然水 12L", "1500.00", "W-001"),
                ("花子 佐藤", "梅田1-1", "大阪市北区", "530-0001", "", "Osaka"), refunded="1500.00", marketing="no"),
        shopify("#1003", "TARO@example.jp", "voided", "800.00", "2024-02-01 12:00:00 +0900",
                ("1", "コーヒー豆", "800.00", "C-010"), TARO_BILLING, marketing="yes"),
        shopify("#1004", "hana@example.jp", "paid", "1500.00", "2024-02-05 12:00:00 +0900",
                ("1", "天然水 12L", "1500.00", "W-001"),
                ("花子 佐藤", "梅田1-1", "大阪市北区", "530-0001", "", "Osaka"),
                cancelled="2024-02-06 09:00:00 +0900", refunded="0.00", marketing="no"),
    ])


@pytest.mark.slow
def test_shopify_orders_export_identifies_customers_by_email(ws, tmp_path):
    summary = ws.import_file(write_shopify(tmp_path))
    assert (summary.preset, summary.rows_read, summary.rejected, summary.added) == (
        "Shopify orders_export", 5, 0, 4)
    taro, hana = (guest_id(e, key=ws.operations.secret()) for e in ("taro@example.jp", "hana@example.jp"))
    assert table(ws, "orders", "order_id", "customer_id", "ordered_at", "amount", "status", "refund_amount") == [
        ("#1001", taro, at("2024-01-05 10:30"), 3800, "completed", 0),
        ("#1002", hana, at("2024-01-20 10:00"), 1500, "returned", 1500),  # +0000 is 10:00 in Tokyo
        ("#1003", taro, at("2024-02-01 12:00"), 800, "cancelled", None),  # voided
        ("#1004", hana, at("2024-02-05 12:00"), 1500, "cancelled", 0),  # Cancelled at
    ]
    items = sorted(table(ws, "order_items", "order_id", "product_id", "quantity", "unit_price"))
    assert items == [("#1001", "C-010", 1, 800), ("#1001", "W-001", 2, 1500), ("#1002", "W-001", 1, 1500),
                     ("#1003", "C-010", 1, 800), ("#1004", "W-001", 1, 1500)]
    customers = {r["customer_id"]: r for r in rows(ws, "customers", "customer_id")}
    assert set(customers) == {taro, hana}
    # the latest order names the buyer: #1003 for taro (its e-mail as written), #1004 for hana
    assert (customers[taro]["email"], customers[taro]["name"], customers[taro]["email_opt_in"],
            customers[taro]["address"], customers[taro]["phone"]) == (
        "TARO@example.jp", "山田 太郎", True, "東京都千代田区千代田1-1", "+81 90-1111-2222")
    assert (customers[hana]["email_opt_in"], customers[hana]["phone"]) == (False, None)


@pytest.mark.slow
def test_shopify_customers_export_gives_the_id_that_orders_find_by_email(ws, tmp_path):
    header = ["Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing", "Default Address Company",
              "Default Address Address1", "Default Address Address2", "Default Address City",
              "Default Address Province Code", "Default Address Country Code", "Default Address Zip",
              "Default Address Phone", "Phone", "Accepts SMS Marketing", "Total Spent", "Total Orders", "Note",
              "Tax Exempt", "Tags"]
    customers = export(tmp_path / "customers_export.csv", header, [
        ["7001", "太郎", "山田", "taro@example.jp", "yes", "", "千代田1-1", "", "千代田区", "JP-13", "JP",
         "100-0001", "", "", "no", "4600.00", "2", "", "no", ""],
    ])
    summary = ws.import_file(customers)
    assert (summary.preset, summary.added) == ("Shopify customers_export", 1)
    ws.import_file(write_shopify(tmp_path))
    assert table(ws, "orders", "order_id", "customer_id")[:1] == [("#1001", "7001")]
    assert [r["order_id"] for r in rows(ws, "orders", "order_id") if r["customer_id"] == "7001"] == ["#1001", "#1003"]
    stored = {r["customer_id"]: r for r in rows(ws, "customers", "customer_id")}
    assert stored["7001"]["name"] == "山田 太郎" and ws.store.count("customers") == 2


# -- 楽天: RMS 受注CSV (old) and 楽天ペイ受注CSV -------------------------------------------

RAKUTEN_OLD = ["受注番号", "受注ステータス", "カード決済ステータス", "入金日", "配送日", "お届け時間帯", "注文日時",
               "楽天会員フラグ", "合計", "消費税(-99999=無効値)", "送料(-99999=無効値)", "代引料(-99999=無効値)",
               "請求金額(-99999=無効値)", "合計金額(-99999=無効値)", "注文者郵便番号１", "注文者郵便番号２",
               "注文者住所：都道府県", "注文者住所：都市区", "注文者住所：町以降", "注文者名字", "注文者名前",
               "注文者名字フリガナ", "注文者名前フリガナ", "注文者電話番号１", "注文者電話番号２", "注文者電話番号３",
               "メールアドレス", "注文者性別", "注文者誕生日", "決済方法", "商品ID", "商品名", "商品番号", "商品URL",
               "単価", "個数"]


@pytest.mark.slow
def test_rakuten_rms_old_order_csv(ws, tmp_path):
    def row(number, status, day, billed, mail, item, price, quantity):
        return [number, status, "", "", "", "", day, "1", billed, 0, 0, 0, billed, billed, "１００", "０００１",
                "東京都", "千代田区", "千代田1-1", "山田", "太郎", "ヤマダ", "タロウ", "090", "1111", "2222", mail,
                "男", "", "クレジットカード", "10000001", item[1], item[0], "", price, quantity]

    path = export(tmp_path / "rakuten_order.csv", RAKUTEN_OLD, [
        row("123456-20240105-0000001", "処理済", "2024-01-05 10:30:00", "3,800", "abc1@pc.fw.rakuten.ne.jp",
            ("water-12", "天然水"), 1500, 2),
        row("123456-20240105-0000001", "処理済", "2024-01-05 10:30:00", "3,800", "abc1@pc.fw.rakuten.ne.jp",
            ("coffee-1", "珈琲"), 800, 1),
        row("123456-20240110-0000002", "キャンセル", "2024-01-10 08:00:00", "800", "abc1@pc.fw.rakuten.ne.jp",
            ("coffee-1", "珈琲"), 800, 1),
    ], "cp932")
    summary = ws.import_file(path)
    assert (summary.preset, summary.rows_read, summary.rejected, summary.added) == ("楽天 RMS 受注CSV", 3, 0, 2)
    # the relay address is per order, never a key: the buyer is found by phone (TEL1-3 joined)
    buyer = guest_id(None, "090-1111-2222", key=ws.operations.secret())
    assert summary.matched_by == {"phone": 1}
    assert table(ws, "orders", "order_id", "customer_id", "ordered_at", "amount", "status") == [
        ("123456-20240105-0000001", buyer, at("2024-01-05 10:30"), 3800, "completed"),
        ("123456-20240110-0000002", buyer, at("2024-01-10 08:00"), 800, "cancelled"),
    ]
    (customer,) = rows(ws, "customers", "customer_id")
    assert (customer["name"], customer["phone"], customer["postal_code"], customer["address"]) == (
        "山田 太郎", "090-1111-2222", "100-0001", "東京都千代田区千代田1-1")  # split fields joined
    assert sorted(table(ws, "order_items", "product_id", "quantity")) == [("coffee-1", 1), ("coffee-1", 1),
                                                                          ("water-12", 2)]


@pytest.mark.slow
def test_rakuten_pay_order_csv_with_date_and_time_columns(ws, tmp_path):
    header = ["注文番号", "ステータス", "サブステータスID", "サブステータス", "注文日時", "注文日", "注文時間",
              "キャンセル期限日", "支払方法名", "合計金額", "商品合計金額", "送料合計", "請求金額",
              "注文者郵便番号1", "注文者郵便番号2", "注文者住所都道府県", "注文者住所郡市区",
              "注文者住所それ以降の住所",
              "注文者姓", "注文者名", "注文者姓カナ", "注文者名カナ", "注文者電話番号1", "注文者電話番号2",
              "注文者電話番号3", "注文者メールアドレス", "商品明細ID", "商品名", "商品ID", "商品番号", "商品管理番号",
              "単価", "個数"]
    records = [
        ["300001-20240301-0101", "発送済", "", "", "", "2024/03/01", "09:15:00", "", "クレジットカード", "2,400",
         "2,400", "0", "2,200", "530", "0001", "大阪府", "大阪市北区", "梅田1-1", "佐藤", "花子", "サトウ", "ハナコ",
         "06", "1234", "5678", "hana@example.jp", "1", "天然水", "20001", "", "water-12", "1,200", "2"],
        ["300001-20240302-0102", "キャンセル確定", "", "", "", "2024/03/02", "18:00:00", "", "クレジットカード",
         "1,200",
         "1,200", "0", "1,200", "530", "0001", "大阪府", "大阪市北区", "梅田1-1", "佐藤", "花子", "サトウ", "ハナコ",
         "06", "1234", "5678", "hana@example.jp", "2", "天然水", "20001", "", "water-12", "1,200", "1"],
    ]
    summary = ws.import_file(export(tmp_path / "rakutenpay.csv", header, records, "cp932"))
    assert (summary.preset, summary.added, summary.rejected) == ("楽天ペイ 受注CSV", 2, 0)
    hana = guest_id("hana@example.jp", key=ws.operations.secret())
    assert table(ws, "orders", "order_id", "customer_id", "ordered_at", "amount", "status") == [
        ("300001-20240301-0101", hana, at("2024-03-01 09:15"), 2200, "completed"),  # 請求金額 (after points)
        ("300001-20240302-0102", hana, at("2024-03-02 18:00"), 1200, "cancelled"),
    ]


# -- Yahoo!ショッピング: order file + item file, as a folder --------------------------------

def write_yahoo(folder: Path) -> None:
    folder.mkdir()
    export(folder / "a_items.csv", ["OrderId", "LineId", "Quantity", "ItemId", "SubCode", "Title", "ItemOptionName",
                                    "ItemOptionValue", "UnitPrice"], [
        ["store-10000001", "1", "2", "water-12", "", "天然水 12L", "", "", "1500"],
        ["store-10000001", "2", "1", "coffee-1", "", "珈琲", "", "", "800"],
        ["store-10000002", "1", "1", "water-12", "", "天然水 12L", "", "", "1500"],
    ], "cp932")
    export(folder / "b_orders.csv", ["OrderId", "ParentOrderId", "DeviceType", "OrderTime", "OrderStatus",
                                     "BillFirstName", "BillLastName", "BillZipCode", "BillPrefecture", "BillCity",
                                     "BillAddress1", "BillAddress2", "BillPhoneNumber", "BillMailAddress",
                                     "PayMethod", "TotalPrice"], [
        ["store-10000001", "", "1", "2024/01/05 10:30:00", "5", "太郎", "山田", "1000001", "東京都", "千代田区",
         "千代田1-1", "", "09011112222", "taro@example.jp", "payment_a1", "3800"],
        ["store-10000002", "", "2", "2024/01/08 20:00:00", "4", "太郎", "山田", "1000001", "東京都", "千代田区",
         "千代田1-1", "", "09011112222", "taro@example.jp", "payment_a1", "1500"],
    ], "cp932")


@pytest.mark.slow
def test_yahoo_order_and_item_files_import_as_a_folder_in_dependency_order(ws, tmp_path):
    write_yahoo(tmp_path / "yahoo")
    summaries = ws.import_folder(tmp_path / "yahoo")
    assert [(s.path.name, s.kind, s.preset, s.added, s.rejected) for s in summaries] == [
        ("b_orders.csv", "orders", "Yahoo!ショッピング 注文データ", 2, 0),
        ("a_items.csv", "order-items", "Yahoo!ショッピング 注文商品データ", 3, 0),
    ]
    taro = guest_id("taro@example.jp", key=ws.operations.secret())
    assert table(ws, "orders", "order_id", "customer_id", "amount", "status") == [
        ("store-10000001", taro, 3800, "completed"), ("store-10000002", taro, 1500, "cancelled")]
    assert table(ws, "products", "product_id", "name") == [("coffee-1", "珈琲"), ("water-12", "天然水 12L")]
    assert ws.store.count("order_items") == 3


# -- Next Engine 受注明細 (BASE, MakeShop, futureshop, EC-CUBE 2: test_platform_exports.py) --

@pytest.mark.slow
def test_next_engine_order_lines_with_cancel_flag(ws, tmp_path):
    header = ["店舗コード", "伝票番号", "受注番号", "受注日", "受注キャンセル区分", "購入者名", "購入者カナ",
              "購入者郵便番号", "購入者住所1", "購入者住所2", "購入者電話番号", "購入者メールアドレス", "総合計",
              "商品計", "税金", "発送代", "手数料", "他費用", "ポイント数", "出荷確定日", "明細行番号", "商品コード",
              "商品名", "受注数", "単価", "小計"]
    common = ["1", "", "", "山田 太郎", "ヤマダ タロウ", "100-0001", "東京都千代田区", "千代田1-1", "090-1111-2222",
              "taro@example.jp"]
    path = export(tmp_path / "ne_juchu_meisai.csv", header, [
        [common[0], "501", "R-1", "2024/01/05 10:30:00", "0:有効な受注", *common[3:], 3300, 3000, 0, 300, 0, 0, 0,
         "2024/01/06", "1", "water-12", "天然水", 2, 1500, 3000],
        [common[0], "502", "R-2", "2024/01/07 11:00:00", "3:取消", *common[3:], 1500, 1500, 0, 0, 0, 0, 0,
         "", "1", "water-12", "天然水", 1, 1500, 1500],
    ], "cp932")
    summary = ws.import_file(path)
    assert (summary.preset, summary.added, summary.rejected) == ("Next Engine 受注明細", 2, 0)
    assert table(ws, "orders", "order_id", "amount", "status", "shipped_at") == [
        ("501", 3300, "completed", at("2024-01-06 00:00")), ("502", 1500, "cancelled", None)]


# -- detection and its message -------------------------------------------------------------

def test_an_unknown_export_names_the_required_columns_it_lacks(ws, tmp_path):
    path = export(tmp_path / "x.csv", ["注文番号", "商品コード", "数量"], [["1", "P", "1"]])
    with pytest.raises(MissingColumnsError) as caught:
        ws.import_file(path)
    message = str(caught.value)
    # the closest kind is order items, which also needs a unit price
    assert "x.csv" in message and "unit_price for order items" in message and "--mapping" in message


@pytest.mark.slow
def test_headers_match_across_widths_brackets_and_order(ws, tmp_path):
    header = ["受注日", "注文番号", "メールアドレス", "支払合計", "お名前（姓）", "お名前（名）", "対応状況【名称】",
              "個数", "価格", "商品コード", "明細区分 (名称)"]
    path = export(tmp_path / "o.csv", header, [
        ["2024-01-05", "9", "a@example.jp", "１，０００", "山田", "太郎", "発送済み", "1", "1000", "P1", "商品"]])
    summary = ws.import_file(path)
    assert (summary.preset, summary.added, summary.rejected) == ("EC-CUBE 4 受注CSV", 1, 0)
    assert table(ws, "orders", "order_id", "amount", "status") == [("9", 1000, "completed")]
    assert rows(ws, "customers", "customer_id")[0]["name"] == "山田 太郎"


@pytest.mark.parametrize("batch_rows", [1, 2, 3])
@pytest.mark.slow
def test_orders_whose_lines_span_batches_come_out_the_same(tmp_path, batch_rows):
    """An order's lines cut by batch boundaries (Shopify leaves its fields blank after the first line)."""
    from kizuna.importing import import_file

    def imported(folder: Path, rows: int) -> tuple[list, list, list]:
        folder.mkdir()
        with Workspace.init(folder / "ws") as ws:
            members, orders = write_ec4(folder)
            for path in (members, orders, write_shopify(folder)):
                summary = import_file(ws.store, None, path, batch_rows=rows, rejects_dir=folder / "rejects")
                assert summary.rejected == 0
            return (table(ws, "orders", "order_id", "customer_id", "amount", "status", "refund_amount"),
                    sorted(table(ws, "order_items", "order_id", "product_id", "quantity", "unit_price")),
                    table(ws, "customers", "customer_id", "name", "email"))

    whole = imported(tmp_path / "whole", 1000)
    assert len(whole[0]) == 9 and len(whole[1]) == 10 and len(whole[2]) == 3  # Shopify's taro is member 5
    assert imported(tmp_path / "cut", batch_rows) == whole
