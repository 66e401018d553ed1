"""The standard exports of the platforms Japanese shops use, as data (docs/measures.md §6).

Each preset is a table: the platform's headers -> kizuna fields, its status words, and
the line-kind words that mark rows which are not products (shipping, fees, discounts).
Headers are compared by `header_key` (full-/half-width, brackets, spaces and colons
folded), so a shop that renamed ``お名前(姓)`` to ``お名前（姓）`` still matches.

Fields are kizuna's canonical columns plus parts that are joined on import
(`COMPOSED`: 姓 + 名, 郵便番号1-2, TEL1-3, 日付 + 時刻, 都道府県 + 住所) and a few
that only steer the import (`cancelled_at`, `cancel_flag`, `line_kind`).

Header lists follow each platform's documented CSV layout: EC-CUBE 4 as its default
``dtb_csv`` rows define the 会員CSV and 受注CSV (70 columns, 送料 twice); EC-CUBE 2's CSV
出力項目; Shopify's orders_export / customers_export; 楽天 RMS 受注CSV and 楽天ペイ受注CSV;
Yahoo!ショッピング order and item downloads; Next Engine 受注明細; BASE, MakeShop and
futureshop order CSVs. Shops may choose and reorder columns: a preset fits when its
required fields are found, and the preset that names most of the file's headers wins.
Headers listed as "" are known but not imported (they count towards the fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["COMPOSED", "GENERIC", "PLATFORMS", "Preset"]

# field -> (parts, separator): joined when the file has the parts but not the whole
COMPOSED: dict[str, tuple[tuple[str, ...], str]] = {
    "name": (("name_last", "name_first"), " "),
    "name_kana": (("kana_last", "kana_first"), " "),
    "phone": (("phone1", "phone2", "phone3"), "-"),
    "postal_code": (("postal1", "postal2"), "-"),
    "address": (("prefecture", "city", "address1", "address2"), ""),
    "ordered_at": (("ordered_date", "ordered_time"), " "),
}

# Words every platform uses the same way; a preset's own words come first.
COMPLETED = ("新規受付", "入金待ち", "入金済み", "入金済", "対応中", "発送済み", "発送済", "発送待ち",
             "取り寄せ中", "処理済", "処理中", "完了", "対応済", "未対応", "出荷済み", "出荷済")
CANCELLED = ("キャンセル", "注文取消し", "注文取消", "取消", "キャンセル確定", "キャンセル済み")
RETURNED = ("返品", "返品済み", "返金済み", "返金済")


def _statuses(completed: tuple[str, ...] = (), cancelled: tuple[str, ...] = (),
              returned: tuple[str, ...] = ()) -> dict[str, str]:
    words = {w: "completed" for w in (*COMPLETED, *completed)}
    words.update({w: "cancelled" for w in (*CANCELLED, *cancelled)})
    words.update({w: "returned" for w in (*RETURNED, *returned)})
    return words


@dataclass(frozen=True)
class Preset:
    """How one export names kizuna's fields."""

    name: str  # shown in the import summary: "EC-CUBE 4 受注CSV"
    kind: str  # customers, orders or order-items (orders may carry lines and buyers)
    headers: dict[str, str]  # platform header -> field
    statuses: dict[str, str] = field(default_factory=dict)  # status or cancel-flag word -> status
    non_product_lines: tuple[str, ...] = ()  # line_kind words of rows that are not products
    guest_ids: tuple[str, ...] = ("0",)  # member-id values that mean "no member" (a guest)


# Headers any export may use, by field; a platform's own table is tried first.
GENERIC: dict[str, str] = {
    **{h: "order_id" for h in ("受注番号", "注文番号", "受注id", "伝票番号", "オーダー番号",
                               "order id", "order number")},
    **{h: "customer_id" for h in ("顧客id", "顧客番号", "会員id", "会員番号", "customer id")},
    **{h: "ordered_at" for h in ("購入日", "購入日時", "注文日時", "受注日時", "注文日", "受注日",
                                 "order date", "created at")},
    **{h: "amount" for h in ("金額", "合計金額", "購入金額", "受注金額", "支払合計", "支払い合計",
                             "請求金額", "総合計", "合計", "total")},
    **{h: "status" for h in ("ステータス", "受注ステータス", "注文ステータス", "対応状況", "status")},
    "返金額": "refund_amount", "返金金額": "refund_amount", "販売チャネル": "channel",
    **{h: "shipped_at" for h in ("発送日", "出荷日", "発送日時", "出荷確定日")},
    **{h: "name" for h in ("氏名", "名前", "お名前", "顧客名", "購入者名")},
    **{h: "name_last" for h in ("姓", "お名前(姓)", "氏名(姓)", "名字")},
    **{h: "name_first" for h in ("名", "お名前(名)", "氏名(名)")},
    **{h: "name_kana" for h in ("フリガナ", "氏名(カナ)", "カナ", "ふりがな")},
    "お名前(セイ)": "kana_last", "お名前(メイ)": "kana_first", "セイ": "kana_last", "メイ": "kana_first",
    **{h: "email" for h in ("メールアドレス", "メール", "e-mail", "email", "mail")},
    **{h: "phone" for h in ("電話番号", "tel", "電話", "携帯電話番号")},
    "郵便番号": "postal_code", "〒": "postal_code",
    "都道府県": "prefecture", "都道府県(名称)": "prefecture",
    "住所": "address1", "住所1": "address1", "住所2": "address2",
    "生年月日": "birthday", "誕生日": "birthday",
    **{h: "signed_up_at" for h in ("登録日", "入会日", "会員登録日")},
    **{h: "email_opt_in" for h in ("メール配信", "メルマガ", "メルマガ購読", "メールマガジン",
                                   "accepts marketing")},
    "dm送付": "dm_opt_in", "lineユーザーid": "line_user_id",
    **{h: "product_id" for h in ("商品コード", "商品id", "商品番号", "品番", "sku")},
    "商品名": "product_name",
    **{h: "quantity" for h in ("数量", "個数", "受注数")},
    **{h: "unit_price" for h in ("単価", "販売単価", "価格", "販売価格")},
    "明細区分": "line_kind", "明細区分(名称)": "line_kind",
}

_EC_CUBE_LINES = ("送料", "手数料", "割引", "税", "ポイント", "値引き", "値引")

PLATFORMS: tuple[Preset, ...] = (
    Preset("EC-CUBE 4 受注CSV", "orders", {
        "注文番号": "order_id", "注文id": "order_id", "会員id": "customer_id",
        "お名前(姓)": "name_last", "お名前(名)": "name_first", "お名前(セイ)": "kana_last",
        "お名前(メイ)": "kana_first", "郵便番号": "postal_code", "都道府県(名称)": "prefecture",
        "住所1": "address1", "住所2": "address2", "メールアドレス": "email", "tel": "phone",
        "誕生日": "birthday", "支払合計": "amount", "合計": "amount", "対応状況(名称)": "status",
        "受注日": "ordered_at", "発送日": "shipped_at", "商品コード": "product_id", "商品名": "product_name",
        "価格": "unit_price", "個数": "quantity", "明細区分(名称)": "line_kind",
        # the rest of the default 受注CSV (dtb_csv, csv_type 3), known but not imported
        **{h: "" for h in ("小計", "値引き", "送料", "手数料", "税金", "会社名", "都道府県(id)", "性別(id)",
                           "性別(名称)", "職業(id)", "職業(名称)", "ショップ用メモ欄", "対応状況(id)", "支払方法(id)",
                           "支払方法(名称)", "入金日", "注文詳細id", "商品id", "商品規格id", "規格名1", "規格名2",
                           "規格分類名1", "規格分類名2", "税率", "税率ルール(id)", "明細区分(id)", "出荷id",
                           "配送先_お名前(姓)", "配送先_お名前(名)", "配送先_お名前(セイ)", "配送先_お名前(メイ)",
                           "配送先_会社名", "配送先_郵便番号", "配送先_都道府県(id)", "配送先_都道府県(名称)",
                           "配送先_住所1", "配送先_住所2", "配送先_tel", "配送業者(id)", "配送業者(名称)",
                           "お届け時間id", "お届け時間(名称)", "お届け希望日", "出荷伝票番号", "配達用メモ",
                           "出荷メール送信日", "加算ポイント", "利用ポイント")},
    }, _statuses(completed=("決済処理中",), cancelled=("購入処理中",)), _EC_CUBE_LINES),
    Preset("EC-CUBE 4 会員CSV", "customers", {
        "会員id": "customer_id", "お名前(姓)": "name_last", "お名前(名)": "name_first",
        "お名前(セイ)": "kana_last", "お名前(メイ)": "kana_first", "郵便番号": "postal_code",
        "都道府県(名称)": "prefecture", "住所1": "address1", "住所2": "address2",
        "メールアドレス": "email", "tel": "phone", "誕生日": "birthday", "登録日": "signed_up_at",
        **{h: "" for h in ("会員ステータス(名称)", "会員ステータス(id)", "会社名", "都道府県(id)",
                           "性別(名称)", "性別(id)", "職業(名称)", "職業(id)", "ポイント", "最終購入日", "購入回数",
                           "初回購入日", "更新日", "ショップ用メモ欄")},
    }),
    Preset("EC-CUBE 2 受注CSV", "orders", {
        "注文番号": "order_id", "会員id": "customer_id", "顧客名1": "name_last", "顧客名2": "name_first",
        "顧客名カナ1": "kana_last", "顧客名カナ2": "kana_first", "メールアドレス": "email",
        "電話番号1": "phone1", "電話番号2": "phone2", "電話番号3": "phone3", "郵便番号1": "postal1",
        "郵便番号2": "postal2", "都道府県": "prefecture", "住所1": "address1", "住所2": "address2",
        "生年月日": "birthday", "支払い合計": "amount", "合計": "amount", "対応状況": "status",
        "受注日": "ordered_at", "発送日": "shipped_at", "商品コード": "product_id", "商品名": "product_name",
        "単価": "unit_price", "数量": "quantity",
        **{h: "" for h in ("小計", "値引き", "送料", "手数料", "税金", "使用ポイント", "加算ポイント",
                           "支払い方法", "更新日", "性別", "職種")},
    }, _statuses(completed=("決済処理中",), cancelled=("購入処理中",))),
    Preset("EC-CUBE 2 会員CSV", "customers", {
        "会員id": "customer_id", "お名前(姓)": "name_last", "お名前(名)": "name_first",
        "お名前(フリガナ・姓)": "kana_last", "お名前(フリガナ・名)": "kana_first",
        "郵便番号1": "postal1", "郵便番号2": "postal2", "都道府県": "prefecture", "住所1": "address1",
        "住所2": "address2", "e-mail": "email", "電話番号1": "phone1", "電話番号2": "phone2",
        "電話番号3": "phone3", "生年月日": "birthday", "メールマガジン": "email_opt_in",
        "登録日": "signed_up_at", **{h: "" for h in ("性別", "職業", "携帯メールアドレス", "ポイント")},
    }),
    Preset("Shopify orders_export", "orders", {
        "name": "order_id", "email": "email", "financial status": "status", "created at": "ordered_at",
        "total": "amount", "refunded amount": "refund_amount", "cancelled at": "cancelled_at",
        "fulfilled at": "shipped_at", "lineitem quantity": "quantity", "lineitem name": "product_name",
        "lineitem price": "unit_price", "lineitem sku": "product_id", "billing name": "name",
        "billing zip": "postal_code", "billing province name": "prefecture", "billing city": "city",
        "billing address1": "address1", "billing address2": "address2", "billing phone": "phone",
        "phone": "phone", "accepts marketing": "email_opt_in", "source": "channel",
        **{h: "" for h in ("paid at", "fulfillment status", "currency", "subtotal", "shipping", "taxes",
                           "discount code", "discount amount", "shipping method", "billing street",
                           "billing company", "billing province", "billing country", "id", "vendor",
                           "tags", "payment method", "lineitem compare at price", "notes",
                           "outstanding balance", "lineitem fulfillment status", "risk level")},
    }, {"paid": "completed", "partially_paid": "completed", "partially_refunded": "completed",
        "authorized": "completed", "pending": "completed", "refunded": "returned", "voided": "cancelled"},
        guest_ids=()),
    Preset("Shopify customers_export", "customers", {
        "customer id": "customer_id", "first name": "name_first", "last name": "name_last",
        "email": "email", "accepts email marketing": "email_opt_in", "accepts marketing": "email_opt_in",
        "default address zip": "postal_code", "default address province code": "prefecture",
        "default address city": "city", "default address address1": "address1",
        "default address address2": "address2", "default address phone": "phone", "phone": "phone",
        "zip": "postal_code", "province": "prefecture", "city": "city", "address1": "address1",
        "address2": "address2",
        **{h: "" for h in ("company", "country", "country code", "province code", "total spent",
                           "total orders", "tags", "note", "tax exempt", "accepts sms marketing",
                           "default address company", "default address country code")},
    }, guest_ids=()),
    Preset("楽天 RMS 受注CSV", "orders", {
        "受注番号": "order_id", "受注ステータス": "status", "注文日時": "ordered_at", "注文日": "ordered_date",
        "注文時間": "ordered_time", "請求金額(-99999=無効値)": "amount", "合計金額(-99999=無効値)": "amount",
        "注文者郵便番号1": "postal1", "注文者郵便番号2": "postal2", "注文者住所都道府県": "prefecture",
        "注文者住所都市区": "city", "注文者住所町以降": "address1", "注文者名字": "name_last",
        "注文者名前": "name_first", "注文者名字フリガナ": "kana_last", "注文者名前フリガナ": "kana_first",
        "注文者電話番号1": "phone1", "注文者電話番号2": "phone2", "注文者電話番号3": "phone3",
        "メールアドレス": "email", "注文者誕生日": "birthday", "商品番号": "product_id", "商品名": "product_name",
        "単価": "unit_price", "個数": "quantity",
        **{h: "" for h in ("カード決済ステータス", "入金日", "配送日", "お届け時間帯", "合計",
                           "消費税(-99999=無効値)", "送料(-99999=無効値)", "代引料(-99999=無効値)",
                           "楽天会員フラグ", "商品id", "商品url", "決済方法", "注文者性別")},
    }, _statuses(completed=("発送前入金待ち", "発送後入金待ち", "保留"))),
    Preset("楽天ペイ 受注CSV", "orders", {
        "注文番号": "order_id", "ステータス": "status", "注文日時": "ordered_at", "注文日": "ordered_date",
        "注文時間": "ordered_time", "請求金額": "amount", "合計金額": "amount",
        "注文者郵便番号1": "postal1", "注文者郵便番号2": "postal2", "注文者住所都道府県": "prefecture",
        "注文者住所郡市区": "city", "注文者住所それ以降の住所": "address1", "注文者姓": "name_last",
        "注文者名": "name_first", "注文者姓カナ": "kana_last", "注文者名カナ": "kana_first",
        "注文者電話番号1": "phone1", "注文者電話番号2": "phone2", "注文者電話番号3": "phone3",
        "注文者メールアドレス": "email", "注文者誕生日": "birthday", "商品管理番号": "product_id",
        "商品番号": "product_id", "商品名": "product_name", "単価": "unit_price", "個数": "quantity",
        "発送完了報告日時": "shipped_at",
        **{h: "" for h in ("サブステータスid", "サブステータス", "キャンセル期限日", "注文確認日時",
                           "注文確定日時", "支払方法名", "商品合計金額", "送料合計", "代引料合計",
                           "消費税合計", "商品明細id", "商品id", "注文者性別")},
    }, _statuses(completed=("注文確認待ち", "楽天処理中", "変更確定待ち", "支払手続き中", "支払手続き済", "保留"),
                 cancelled=("キャンセル確定待ち",))),
    Preset("Yahoo!ショッピング 注文データ", "orders", {
        "orderid": "order_id", "ordertime": "ordered_at", "orderstatus": "status", "totalprice": "amount",
        "settleamount": "amount", "billfirstname": "name_first", "billlastname": "name_last",
        "billfirstnamekana": "kana_first", "billlastnamekana": "kana_last", "billzipcode": "postal_code",
        "billprefecture": "prefecture", "billcity": "city", "billaddress1": "address1",
        "billaddress2": "address2", "billphonenumber": "phone", "billmailaddress": "email",
        "shipdate": "shipped_at", "refundtotalprice": "refund_amount",
        **{h: "" for h in ("parentorderid", "devicetype", "paymethod", "shipmethod", "shipcharge",
                           "paycharge", "discount", "usepoint", "sellerid")},
    }, {"1": "completed", "2": "completed", "3": "completed", "4": "cancelled", "5": "completed",
        **_statuses(completed=("予約中", "保留"))}, guest_ids=()),
    Preset("Yahoo!ショッピング 注文商品データ", "order-items", {
        "orderid": "order_id", "lineid": "", "itemid": "product_id", "title": "product_name",
        "quantity": "quantity", "unitprice": "unit_price",
        **{h: "" for h in ("subcode", "itemoptionname", "itemoptionvalue", "unitgetpoint", "originalprice")},
    }),
    Preset("Next Engine 受注明細", "orders", {
        "伝票番号": "order_id", "受注番号": "", "受注日": "ordered_at", "受注キャンセル区分": "cancel_flag",
        "キャンセル区分": "cancel_flag", "購入者名": "name", "購入者カナ": "name_kana",
        "購入者郵便番号": "postal_code", "購入者住所1": "address1", "購入者住所2": "address2",
        "購入者電話番号": "phone", "購入者メールアドレス": "email", "総合計": "amount",
        "出荷確定日": "shipped_at", "商品コード": "product_id", "商品名": "product_name",
        "受注数": "quantity", "単価": "unit_price",
        **{h: "" for h in ("店舗コード", "商品計", "税金", "発送代", "手数料", "他費用", "ポイント数",
                           "明細行番号", "小計", "受注状態区分", "受注状態")},
    }, {"0": "completed", "有効な受注": "completed", "0:有効な受注": "completed",
        **{w: "cancelled" for w in ("1", "2", "3", "4", "取込時重複", "受注不可", "取消", "その他取消",
                                    "キャンセル", "1:取込時重複", "2:受注不可", "3:取消", "4:その他取消")}},
        guest_ids=()),
    Preset("BASE 注文CSV", "orders", {
        "注文id": "order_id", "注文日時": "ordered_at", "氏名(姓)": "name_last", "氏名(名)": "name_first",
        "郵便番号": "postal_code", "都道府県": "prefecture", "住所": "address1", "住所2": "address2",
        "電話番号": "phone", "メールアドレス": "email", "商品id": "product_id", "品番": "product_id",
        "商品名": "product_name", "価格": "unit_price", "数量": "quantity", "合計金額": "amount",
        "対応状況": "status",
        **{h: "" for h in ("バリエーション", "税率", "送料", "支払い方法", "代引き手数料", "配送先氏名(姓)",
                           "配送先氏名(名)", "配送先郵便番号", "配送先都道府県", "配送先住所",
                           "配送先住所2", "配送先電話番号", "備考", "ポイント利用額", "クーポン利用額")},
    }, _statuses(completed=("入金待ち", "発送完了"))),
    Preset("MakeShop 注文データ", "orders", {
        "注文番号": "order_id", "注文日時": "ordered_at", "会員id": "customer_id", "注文者氏名": "name",
        "注文者氏名(カナ)": "name_kana", "注文者メールアドレス": "email", "注文者電話番号": "phone",
        "注文者郵便番号": "postal_code", "注文者住所": "address1", "独自商品コード": "product_id",
        "商品コード": "product_id", "商品名": "product_name", "販売価格": "unit_price", "数量": "quantity",
        "決済金額": "amount", "合計金額": "amount", "処理状態": "status",
        **{h: "" for h in ("送料", "決済方法", "配送状態", "オプション", "使用ポイント", "配送先氏名")},
    }, _statuses(completed=("未処理", "処理中", "発送完了", "配送完了"))),
    Preset("futureshop 受注データ", "orders", {
        "受注コード": "order_id", "受注日時": "ordered_at", "会員id": "customer_id",
        "会員番号": "customer_id", "注文者氏名": "name", "注文者氏名カナ": "name_kana",
        "注文者メールアドレス": "email", "注文者電話番号": "phone", "注文者郵便番号": "postal_code",
        "注文者住所": "address1", "商品番号": "product_id", "商品名": "product_name", "単価": "unit_price",
        "数量": "quantity", "請求金額": "amount", "ご請求金額": "amount", "受注状況": "status",
        **{h: "" for h in ("送料", "決済方法", "出荷状況", "ポイント利用額", "配送先氏名")},
    }, _statuses(completed=("受付済", "出荷済", "出荷準備中"))),
)
