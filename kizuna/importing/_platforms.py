"""The standard exports of the platforms Japanese shops use, as data (docs/measures.md §6).

Each preset is a table: the platform's headers -> kizuna fields, its status words, and
the line-kind words that mark rows which are not products (shipping, fees, discounts).
Headers are compared by `header_key` (full-/half-width, brackets, spaces and colons
folded), so a shop that renamed ``お名前(姓)`` to ``お名前（姓）`` still matches.

Fields are kizuna's canonical columns plus parts that are joined on import
(`COMPOSED`: 姓 + 名, 郵便番号1-2, TEL1-3, 日付 + 時刻, 都道府県 + 住所) and a few
that only steer the import (`cancelled_at`, `cancel_flag`, `line_kind`).

Every preset says, in a comment, where its header list and status words come from (the
platform's own repository, its manual, or an open-source tool that reads the file) and what
could not be confirmed. Shops may choose and reorder columns: a preset fits when its
required fields are found, and it wins only when it names clearly more of the file's
headers than the next platform (`_presets`). Headers listed as "" are known but not
imported (they count towards the fit).

Amounts: most exports give the order's total on every row (``amount``). BASE gives a
per-line total instead: the order's amount is the sum of its lines' ``line_total`` plus
the order's ``shipping_fee``, ``cod_fee`` and ``adjustment`` (`AMOUNT_PARTS`, summed in
`_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AMOUNT_PARTS", "COMPOSED", "GENERIC", "GIVEN_FIRST", "MASKED_EMAIL_DOMAINS", "PLATFORMS", "PREFECTURES",
           "Preset", "platform_named"]

# field -> (parts, separator): joined when the file has the parts but not the whole
COMPOSED: dict[str, tuple[tuple[str, ...], str]] = {
    "name": (("name_last", "name_first"), " "),
    "name_kana": (("kana_last", "kana_first"), " "),
    "phone": (("phone1", "phone2", "phone3"), "-"),
    "postal_code": (("postal1", "postal2"), "-"),
    "address": (("prefecture", "city", "address1", "address2"), ""),
    "ordered_at": (("ordered_date", "ordered_time"), " "),
}
# the order's amount from its lines (summed over the order's rows) and its order-level charges
AMOUNT_PARTS = ("line_total", "shipping_fee", "cod_fee", "adjustment")
# a name written given-name first ("太郎 山田", Shopify's Billing Name): turned to 姓 名
GIVEN_FIRST = "name_given_first"

# Relay (masked) e-mail domains: the address differs per order, so it never identifies a buyer;
# such buyers are matched by phone, then by name + postal code. A domain matches itself and
# its subdomains.
# - 楽天市場 (RMS, 楽天ペイ): 楽天あんしんメルアドサービス gives shops ``…@pc.fw.rakuten.ne.jp``
#   (issue #21's rebuilt RMS exports; the service is described at ingage.jp/manual/relation/?p=1534,
#   "楽天あんしんメルアドとは … 暗号化されたメールアドレス"); ``fw.rakuten.ne.jp`` covers its hosts.
MASKED_EMAIL_DOMAINS: tuple[str, ...] = ("fw.rakuten.ne.jp",)

# 都道府県 in JIS X 0401 order (code = index + 1), with the romanised names Shopify writes in
# ``Billing Province Name`` (e.g. "Tokyo") and the ISO 3166-2 codes of ``Province Code`` ("JP-13").
PREFECTURES: tuple[tuple[str, str], ...] = (
    ("北海道", "Hokkaido"), ("青森県", "Aomori"), ("岩手県", "Iwate"), ("宮城県", "Miyagi"), ("秋田県", "Akita"),
    ("山形県", "Yamagata"), ("福島県", "Fukushima"), ("茨城県", "Ibaraki"), ("栃木県", "Tochigi"),
    ("群馬県", "Gunma"), ("埼玉県", "Saitama"), ("千葉県", "Chiba"), ("東京都", "Tokyo"), ("神奈川県", "Kanagawa"),
    ("新潟県", "Niigata"), ("富山県", "Toyama"), ("石川県", "Ishikawa"), ("福井県", "Fukui"),
    ("山梨県", "Yamanashi"), ("長野県", "Nagano"), ("岐阜県", "Gifu"), ("静岡県", "Shizuoka"), ("愛知県", "Aichi"),
    ("三重県", "Mie"), ("滋賀県", "Shiga"), ("京都府", "Kyoto"), ("大阪府", "Osaka"), ("兵庫県", "Hyogo"),
    ("奈良県", "Nara"), ("和歌山県", "Wakayama"), ("鳥取県", "Tottori"), ("島根県", "Shimane"),
    ("岡山県", "Okayama"), ("広島県", "Hiroshima"), ("山口県", "Yamaguchi"), ("徳島県", "Tokushima"),
    ("香川県", "Kagawa"), ("愛媛県", "Ehime"), ("高知県", "Kochi"), ("福岡県", "Fukuoka"), ("佐賀県", "Saga"),
    ("長崎県", "Nagasaki"), ("熊本県", "Kumamoto"), ("大分県", "Oita"), ("宮崎県", "Miyazaki"),
    ("鹿児島県", "Kagoshima"), ("沖縄県", "Okinawa"),
)

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
    platform: str = ""  # the platform, for --platform and the refusal message: "EC-CUBE 2"


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

# EC-CUBE 2's mtb_order_status, as its 受注CSV writes dtb_order.status (a number):
# EC-CUBE/ec-cube2 html/install/sql/insert_data.sql, INSERT INTO mtb_order_status:
# 7 決済処理中, 1 新規受付, 2 入金待ち, 6 入金済み, 3 キャンセル, 4 取り寄せ中, 5 発送済み.
_EC_CUBE_2_STATUS = {"1": "completed", "2": "completed", "3": "cancelled", "4": "completed", "5": "completed",
                     "6": "completed", "7": "completed"}

PLATFORMS: tuple[Preset, ...] = (
    # EC-CUBE 4: EC-CUBE/ec-cube src/Eccube/Resource/doctrine/import_csv/ja/dtb_csv.csv (csv_type 3 受注,
    # csv_type 2 会員) and mtb_order_status.csv (新規受付, 入金済み, 対応中, 注文取消し, 発送済み, 決済処理中,
    # 購入処理中, 返品). Checked in #13; not fetched again in #21.
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
    }, _statuses(completed=("決済処理中",), cancelled=("購入処理中",)), _EC_CUBE_LINES, platform="EC-CUBE 4"),
    Preset("EC-CUBE 4 会員CSV", "customers", {
        "会員id": "customer_id", "お名前(姓)": "name_last", "お名前(名)": "name_first",
        "お名前(セイ)": "kana_last", "お名前(メイ)": "kana_first", "郵便番号": "postal_code",
        "都道府県(名称)": "prefecture", "住所1": "address1", "住所2": "address2",
        "メールアドレス": "email", "tel": "phone", "誕生日": "birthday", "登録日": "signed_up_at",
        **{h: "" for h in ("会員ステータス(名称)", "会員ステータス(id)", "会社名", "都道府県(id)",
                           "性別(名称)", "性別(id)", "職業(名称)", "職業(id)", "ポイント", "最終購入日", "購入回数",
                           "初回購入日", "更新日", "ショップ用メモ欄")},
    }, platform="EC-CUBE 4"),
    # EC-CUBE 2 受注CSV: EC-CUBE/ec-cube2 html/install/sql/insert_data.sql, the dtb_csv rows with csv_id 3
    # (disp_name in rank order; the rows with status 0, ZIP CODE and 国, are not written by default).
    # One row per order (dtb_order), no product lines; 対応状況 is dtb_order.status, a number
    # (_EC_CUBE_2_STATUS); 会員ID is 0 for a guest. Written by SC_Helper_CSV (fputcsv, CRLF), in the
    # shop's CSV encoding (Shift_JIS by default).
    Preset("EC-CUBE 2 受注CSV", "orders", {
        "注文番号": "order_id", "会員id": "customer_id", "お名前(姓)": "name_last", "お名前(名)": "name_first",
        "お名前(フリガナ・姓)": "kana_last", "お名前(フリガナ名)": "kana_first", "お名前(フリガナ・名)": "kana_first",
        "メールアドレス": "email", "電話番号1": "phone1", "電話番号2": "phone2", "電話番号3": "phone3",
        "郵便番号1": "postal1", "郵便番号2": "postal2", "都道府県": "prefecture", "住所1": "address1",
        "住所2": "address2", "生年月日": "birthday", "お支払い合計": "amount", "対応状況": "status",
        "注文日時": "ordered_at", "発送完了日時": "shipped_at",
        **{h: "" for h in ("要望等", "会社名", "fax1", "fax2", "fax3", "性別", "職種", "小計", "値引き", "送料",
                           "手数料", "使用ポイント", "加算ポイント", "税金", "合計", "配送業者id", "支払い方法",
                           "shopメモ", "更新日時", "端末種別id", "配送情報id", "zip code", "国")},
    }, {**_EC_CUBE_2_STATUS, **_statuses(completed=("決済処理中",))}, platform="EC-CUBE 2"),
    # EC-CUBE 2 会員CSV: the same insert_data.sql, dtb_csv rows with csv_id 2.
    Preset("EC-CUBE 2 会員CSV", "customers", {
        "会員id": "customer_id", "お名前(姓)": "name_last", "お名前(名)": "name_first",
        "お名前(フリガナ・姓)": "kana_last", "お名前(フリガナ・名)": "kana_first",
        "郵便番号1": "postal1", "郵便番号2": "postal2", "都道府県": "prefecture", "住所1": "address1",
        "住所2": "address2", "e-mail": "email", "tel1": "phone1", "tel2": "phone2", "tel3": "phone3",
        "誕生日": "birthday", "登録日": "signed_up_at",
        **{h: "" for h in ("会社名", "zip code", "国", "fax1", "fax2", "fax3", "性別", "職業", "初回購入日",
                           "最終購入日", "購入回数", "ポイント残高", "備考", "更新日")},
    }, platform="EC-CUBE 2"),
    # Shopify: help.shopify.com/ja/manual/fulfillment/managing-orders/exporting-orders and the orders /
    # customers CSV column descriptions (help.shopify.com/ja/manual/migrating-to-shopify/transporter-app/
    # csv-orders: Financial Status pending, authorized, partially_paid, paid, partially_refunded, refunded,
    # voided). One row per line item; the order's fields on its first row only. Billing Name is written
    # given-name first ("太郎 山田", GIVEN_FIRST); Billing Province Name is romanised ("Tokyo") and the
    # Province Code columns are ISO 3166-2 ("JP-13"), both turned to 都道府県 (PREFECTURES);
    # customers_export.csv puts an apostrophe before ids, zips and phones ("'7812345000000").
    Preset("Shopify orders_export", "orders", {
        "name": "order_id", "email": "email", "financial status": "status", "created at": "ordered_at",
        "total": "amount", "refunded amount": "refund_amount", "cancelled at": "cancelled_at",
        "fulfilled at": "shipped_at", "lineitem quantity": "quantity", "lineitem name": "product_name",
        "lineitem price": "unit_price", "lineitem sku": "product_id", "billing name": GIVEN_FIRST,
        "billing zip": "postal_code", "billing province name": "prefecture", "billing province": "prefecture",
        "billing city": "city", "billing address1": "address1", "billing address2": "address2",
        "billing phone": "phone", "phone": "phone", "accepts marketing": "email_opt_in", "source": "channel",
        **{h: "" for h in ("paid at", "fulfillment status", "currency", "subtotal", "shipping", "taxes",
                           "discount code", "discount amount", "shipping method", "billing street",
                           "billing company", "billing country", "id", "vendor",
                           "tags", "payment method", "lineitem compare at price", "notes",
                           "outstanding balance", "lineitem fulfillment status", "risk level")},
    }, {"paid": "completed", "partially_paid": "completed", "partially_refunded": "completed",
        "authorized": "completed", "pending": "completed", "refunded": "returned", "voided": "cancelled"},
        guest_ids=(), platform="Shopify"),
    Preset("Shopify customers_export", "customers", {
        "customer id": "customer_id", "first name": "name_first", "last name": "name_last",
        "email": "email", "accepts email marketing": "email_opt_in", "accepts marketing": "email_opt_in",
        "default address zip": "postal_code", "default address province code": "prefecture",
        "default address city": "city", "default address address1": "address1",
        "default address address2": "address2", "default address phone": "phone", "phone": "phone",
        "zip": "postal_code", "province code": "prefecture", "province": "prefecture", "city": "city",
        "address1": "address1", "address2": "address2",
        **{h: "" for h in ("company", "country", "country code", "total spent",
                           "total orders", "tags", "note", "tax exempt", "accepts sms marketing",
                           "default address company", "default address country code")},
    }, guest_ids=(), platform="Shopify"),
    # 楽天 RMS 受注CSV (the old 受注データダウンロード): column names as the 顧客分析君CRM import spec lists
    # them ("楽天市場 CSVデータ項目": 注文日 + 注文時間, 注文者名字/名前 (+フリガナ), 注文者郵便番号1/2,
    # 注文者住所:都道府県/都市区/町以降, 商品番号, 商品名, 個数, 単価; nextcrm-2_source-r540.zip on
    # osdn scmarchive). Buyers' e-mails are 楽天's relay addresses (MASKED_EMAIL_DOMAINS). Not confirmed
    # from a public source: this file's 受注ステータス words (kept: 新規受付, 発送前入金待ち, 発送待ち,
    # 発送後入金待ち, 処理済, 保留, キャンセル) and the 請求金額 / 合計金額 columns. (注文確認待ち … キャンセル確定
    # are the newer 楽天ペイ file's words, confirmed there; they are accepted here too.)
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
                           "楽天会員フラグ", "商品id", "商品url", "決済方法", "注文者性別", "レコードナンバー",
                           "項目・選択肢")},
    }, _statuses(completed=("発送前入金待ち", "発送後入金待ち", "保留", "注文確認待ち", "楽天処理中", "変更確定待ち",
                            "支払手続き中", "支払手続き済"), cancelled=("キャンセル確定待ち",)), platform="楽天 RMS"),
    # 楽天ペイ 受注CSV (RMS 受注・決済管理 > 楽天ペイ受注 > データダウンロード, 全項目): the column order an
    # open-source tool binds the file by, jmleejake/csvProject ArakuWeb/src/main/java/jp/prj/araku/rakuten/vo/
    # RakutenVO.java (@CsvBindByPosition 0 注文番号 … 109 店舗負担金合計, then the tax columns; commit 69ad57c),
    # and the same names written back in RakutenDAO.java (rakutenFormatCSVDownload). One row per product line
    # (商品明細ID), the order's fields repeated on each. ステータス words: the 楽天ペイ受注API's orderProgress
    # (webservice.rms.rakuten.co.jp/merchant-portal/view/ja/common/1-1_service_index/rakutenpayorderapi/
    # searchorder, as quoted in public RMS clients): 100 注文確認待ち, 200 楽天処理中, 300 発送待ち, 400 変更確定待ち,
    # 500 発送済, 600 支払手続き中, 700 支払手続き済, 800 キャンセル確定待ち, 900 キャンセル確定. The amount is
    # 請求金額 (what the buyer is billed, after ポイント利用額 and クーポン利用総額, like EC-CUBE's 支払合計);
    # 合計金額 only when 請求金額 is absent. Buyers' e-mails are relay addresses (MASKED_EMAIL_DOMAINS).
    # Not confirmed: that the CSV writes the words rather than the codes (both are mapped), and the encoding
    # (Shift_JIS, as RMS downloads are; the tool takes it as a setting).
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
        # the rest of RakutenVO's columns, known but not imported
        **{h: "" for h in ("サブステータスid", "サブステータス", "キャンセル期限日", "注文確認日時", "注文確定日時",
                           "発送指示日時", "支払方法名", "クレジットカード支払い方法", "クレジットカード支払い回数",
                           "配送方法", "配送区分", "注文種別", "複数送付先フラグ", "送付先一致フラグ", "離島フラグ",
                           "楽天確認中フラグ", "警告表示タイプ", "楽天会員フラグ", "購入履歴修正有無フラグ",
                           "商品合計金額", "消費税合計", "送料合計", "代引料合計", "ポイント利用額", "クーポン利用総額",
                           "店舗発行クーポン利用額", "楽天発行クーポン利用額", "注文者性別", "申込番号",
                           "申込お届け回数", "送付先id", "送付先送料", "送付先代引料", "送付先消費税合計",
                           "送付先商品合計金額", "送付先合計金額", "のし", "送付先郵便番号1", "送付先郵便番号2",
                           "送付先住所都道府県", "送付先住所郡市区", "送付先住所それ以降の住所", "送付先姓", "送付先名",
                           "送付先姓カナ", "送付先名カナ", "送付先電話番号1", "送付先電話番号2", "送付先電話番号3",
                           "商品明細id", "商品id", "送料込別", "税込別", "代引手数料込別", "項目・選択肢",
                           "ポイント倍率", "納期情報", "在庫タイプ", "ラッピングタイトル1", "ラッピング名1",
                           "ラッピング料金1", "ラッピング税込別1", "ラッピング種類1", "ラッピングタイトル2",
                           "ラッピング名2", "ラッピング料金2", "ラッピング税込別2", "ラッピング種類2", "お届け時間帯",
                           "お届け日指定", "担当者", "ひとことメモ", "メール差込文(お客様へのメッセージ)",
                           "ギフト配送希望", "コメント", "利用端末", "メールキャリアコード", "あす楽希望フラグ",
                           "医薬品受注フラグ", "楽天スーパーdeal商品受注フラグ", "メンバーシッププログラム受注タイプ",
                           "決済手数料", "注文者負担金合計", "店舗負担金合計", "外税合計", "決済手数料税率",
                           "商品税率", "商品毎税込価格")},
    }, {"100": "completed", "200": "completed", "300": "completed", "400": "completed", "500": "completed",
        "600": "completed", "700": "completed", "800": "cancelled", "900": "cancelled",
        **_statuses(completed=("注文確認待ち", "楽天処理中", "変更確定待ち", "支払手続き中", "支払手続き済"),
                    cancelled=("キャンセル確定待ち", "キャンセル確定"))}, platform="楽天ペイ"),
    # Yahoo!ショッピング: field names and OrderStatus codes from the store's order API, which the CSV
    # download template uses: developer.yahoo.co.jp/webapi/shopping/orderList.html (OrderId, OrderTime,
    # OrderStatus 1 予約中, 2 処理中, 3 保留, 4 キャンセル, 5 完了, Bill* fields) and the item fields
    # (LineId, ItemId, Title, Quantity, UnitPrice). The amount is TotalPrice, else SettleAmount. Still NOT
    # confirmed (#21, second pass): whether TotalPrice is before or after UsePoint. Yahoo's orderInfo.html and
    # orderList.html are public, but the stored copies reached only their change logs, not the field table
    # that defines TotalPrice, SettleAmount and UsePoint; no open-source reader found states it either.
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
        **_statuses(completed=("予約中", "保留"))}, guest_ids=(), platform="Yahoo!ショッピング"),
    Preset("Yahoo!ショッピング 注文商品データ", "order-items", {
        "orderid": "order_id", "lineid": "", "itemid": "product_id", "title": "product_name",
        "quantity": "quantity", "unitprice": "unit_price",
        **{h: "" for h in ("subcode", "itemoptionname", "itemoptionvalue", "unitgetpoint", "originalprice")},
    }, platform="Yahoo!ショッピング"),
    # Next Engine 受注明細: Next Engine's own item names for 受注伝票 and 受注明細 (receiveorder_base /
    # receiveorder_row; developer.next-engine.com/api/param/receiveorder_base), as an open-source NE client lists
    # them with their Japanese labels (店舗コード, 伝票番号, 受注番号, 受注日, …, 受注キャンセル区分, 受注キャンセル名,
    # 受注状態区分, 受注状態名, …, 総合計, 税金, 手数料, 発送代, 他費用, ポイント数, 商品計, …, 出荷確定日, …,
    # 購入者名 … 購入者メールアドレス; 明細: 明細行番号, 商品コード, 商品名, 受注数, 単価, 小計金額, キャンセルフラグ);
    # found by the index's exact-string search, its repository not shown there. 受注キャンセル区分
    # (developer.next-engine.com/api/api_v1_system_canceltype/info, as public NE scripts quote it): 0 有効な受注
    # です, 3 分割・統合によりキャンセル; 1 取込時重複, 2 受注不可, 4 その他取消 are #13's and not re-confirmed.
    # 受注状態区分 0 取込情報不足, 1 受注メール取込済, 2 起票済(CSV/手入力), 20 納品書印刷待ち, 30 納品書印刷中,
    # 40 納品書印刷済, 50 出荷確定済（完了） (api_v1_system_orderstatus) is not a cancellation and is not read.
    # Not confirmed: which of these columns the 受注明細 CSV download writes by default (it lets the shop
    # choose them), and its encoding (Shift_JIS assumed).
    Preset("Next Engine 受注明細", "orders", {
        "伝票番号": "order_id", "受注番号": "", "受注日": "ordered_at", "受注キャンセル区分": "cancel_flag",
        "キャンセル区分": "cancel_flag", "購入者名": "name", "購入者カナ": "name_kana",
        "購入者郵便番号": "postal_code", "購入者住所1": "address1", "購入者住所2": "address2",
        "購入者電話番号": "phone", "購入者メールアドレス": "email", "総合計": "amount",
        "出荷確定日": "shipped_at", "商品コード": "product_id", "商品名": "product_name",
        "受注数": "quantity", "単価": "unit_price",
        **{h: "" for h in ("店舗コード", "商品計", "税金", "発送代", "手数料", "他費用", "ポイント数",
                           "明細行番号", "小計", "小計金額", "受注状態区分", "受注状態", "受注状態名",
                           "受注キャンセル名", "受注キャンセル日", "取込日", "発送方法名", "支払名", "入金額",
                           "入金状況名", "入金日",
                           "購入者fax", "送り先名", "送り先カナ", "送り先郵便番号", "送り先住所1", "送り先住所2",
                           "送り先電話番号", "顧客コード", "商品op", "キャンセルフラグ", "受注明細行番号")},
    }, {"0": "completed", "有効な受注": "completed", "有効な受注です": "completed", "0:有効な受注": "completed",
        **{w: "cancelled" for w in ("1", "2", "3", "4", "取込時重複", "受注不可", "取消", "その他取消",
                                    "分割・統合によりキャンセル", "キャンセル", "1:取込時重複", "2:受注不可", "3:取消",
                                    "3:分割・統合によりキャンセル", "4:その他取消")}},
        guest_ids=(), platform="Next Engine"),
    # BASE 注文CSV: the header row an open-source order tool checks BASE files against (its HEADER_BASE:
    # 注文ID, 注文日時, 氏(請求先) … 発送状況, 商品ID, 種類ID, 購入元, 配送日, 配送時間帯, 注文メモ, 調整金額),
    # with 商品コード, 種類コード, JAN / GTIN and 特典 that BASE apps add; an import spec built from real BASE
    # files confirms one row per product line, Shift_JIS (CP932), 合計金額 per line, 送料 repeated on
    # each line and 調整金額 added to the order's total. The order's amount is Σ 合計金額 + 送料 +
    # 代引き手数料 + 調整金額 (AMOUNT_PARTS). 発送状況: 未発送, 発送済み, キャンセル (only 発送済み was seen in
    # a real file; the others are not confirmed). BASE has no member id: buyers are found by e-mail.
    Preset("BASE 注文CSV", "orders", {
        "注文id": "order_id", "注文日時": "ordered_at", "氏(請求先)": "name_last", "名(請求先)": "name_first",
        "郵便番号(請求先)": "postal_code", "都道府県(請求先)": "prefecture", "住所(請求先)": "address1",
        "住所2(請求先)": "address2", "電話番号(請求先)": "phone", "メールアドレス(請求先)": "email",
        "商品id": "product_id", "商品コード": "product_id", "商品名": "product_name", "価格": "unit_price",
        "数量": "quantity", "合計金額": "line_total", "送料": "shipping_fee", "代引き手数料": "cod_fee",
        "調整金額": "adjustment", "発送状況": "status",
        **{h: "" for h in ("氏(配送先)", "名(配送先)", "郵便番号(配送先)", "都道府県(配送先)", "住所(配送先)",
                           "住所2(配送先)", "電話番号(配送先)", "備考", "バリエーション", "税率", "支払い方法",
                           "種類id", "購入元", "配送日", "配送時間帯", "注文メモ", "種類コード", "jan/gtin",
                           "特典")},
    }, _statuses(completed=("未発送", "発送済み")), guest_ids=(), platform="BASE"),
    # MakeShop 注文データ: manual.makeshop.jp/hc/ja/articles/33957532168345 (注文出力用テンプレートの設定):
    # 日付 (2022/8/10) + 注文時間 (103309, hhmmss), 注文番号, 処理状況 (配送, 未処理, 注文キャンセル, 返送),
    # 注文者, 注文者(振り仮名). Not confirmed (the rest of that table was not in the stored copy): the
    # e-mail, phone, postal code, address, member id, product and amount columns below are #13's names.
    Preset("MakeShop 注文データ", "orders", {
        "注文番号": "order_id", "日付": "ordered_date", "注文時間": "ordered_time", "処理状況": "status",
        "注文者": "name", "注文者(振り仮名)": "name_kana", "会員id": "customer_id",
        "注文者メールアドレス": "email", "注文者電話番号": "phone", "注文者郵便番号": "postal_code",
        "注文者住所": "address1", "独自商品コード": "product_id", "商品コード": "product_id", "商品名": "product_name",
        "販売価格": "unit_price", "数量": "quantity", "決済金額": "amount", "合計金額": "amount",
        "注文日時": "ordered_at", "処理状態": "status",
        **{h: "" for h in ("会社名", "会社名(振り仮名)", "部署名", "送料", "決済方法", "配送状態", "オプション",
                           "使用ポイント", "配送先氏名")},
    }, _statuses(completed=("配送", "未処理", "処理中", "発送完了", "配送完了"), cancelled=("注文キャンセル",),
                 returned=("返送",)), guest_ids=(), platform="MakeShop"),
    # futureshop 受注データ (FutureShop2 形式): the item list that Next Engine's manual has shops tick in
    # futureshop's 受注データ取得項目設定 (manual.next-engine.net/main/orders/ord_torikomi-shori/juchu_torikomi/
    # juchu_futureshop2/6334/): 受注コード, 注文日時, 請求合計金額, 商品合計金額, 消費税合計, 包装手数料, 送料,
    # 決済手数料, …, 氏名(姓), …, 郵便番号, 都道府県区分, 住所1-3, 電話番号(メイン), 電話番号(サブ),
    # 携帯電話番号, お届け先*, 商品番号, 枝番号, 商品名, …, 販売単価, 購入数量, ポイント利用額 …; futureshop's own
    # manual (future-shop.jp/manual/operate/accept/opt-AcceptConfigDownloadItemEdit.html) says addresses are
    # 住所1-3 joined by spaces. One row per product line. Not confirmed (cut from the stored copy):
    # 氏名(名), the フリガナ and メールアドレス(メイン) names, a member id, and any status / cancel column —
    # the status words below are #13's.
    Preset("futureshop 受注データ", "orders", {
        "受注コード": "order_id", "注文日時": "ordered_at", "受注日時": "ordered_at", "請求合計金額": "amount",
        "氏名(姓)": "name_last", "氏名(名)": "name_first", "フリガナ(姓)": "kana_last",
        "フリガナ(名)": "kana_first", "メールアドレス(メイン)": "email", "メールアドレス": "email",
        "郵便番号": "postal_code", "都道府県区分": "prefecture", "住所1": "city", "住所2": "address1",
        "住所3": "address2", "電話番号(メイン)": "phone", "会員id": "customer_id", "会員番号": "customer_id",
        "商品番号": "product_id", "商品名": "product_name", "販売単価": "unit_price", "購入数量": "quantity",
        "受注状況": "status",
        **{h: "" for h in ("商品合計金額", "消費税合計", "包装手数料", "送料", "決済手数料", "クール便手数料",
                           "その他手数料", "決済方法", "コンビニ区分", "コンビニ支払番号", "通信欄", "ショップメモ",
                           "入金フラグ", "入金確認日", "メールアドレス(サブ)", "メールアドレス(モバイル)",
                           "電話番号(サブ)", "携帯電話番号", "お届け先氏名(姓)", "お届け先氏名(名)",
                           "お届け先フリガナ(姓)", "お届け先フリガナ(名)", "お届け先郵便番号", "お届け先都道府県区分",
                           "お届け先住所1", "お届け先住所2", "お届け先住所3", "お届け先電話番号", "お届け希望日",
                           "お届け希望時間", "詳細指定事項欄", "枝番号", "項目選択肢", "バリエーション名",
                           "オプション価格選択肢コード", "オプション価格", "ポイント利用の有無", "ポイント利用額",
                           "配送サービス", "割引合計金額(商品)", "割引合計金額(送料)")},
    }, _statuses(completed=("受付済", "出荷済", "出荷準備中")), guest_ids=(), platform="futureshop"),
)

# --platform NAME: the names a user may give, folded by `_platform_key`
_ALIASES = {
    "eccube4": "EC-CUBE 4", "eccube": "EC-CUBE 4", "eccube2": "EC-CUBE 2", "shopify": "Shopify",
    "rakuten": "楽天 RMS", "rakutenrms": "楽天 RMS", "rms": "楽天 RMS", "楽天": "楽天 RMS", "楽天rms": "楽天 RMS",
    "rakutenpay": "楽天ペイ", "楽天ペイ": "楽天ペイ", "yahoo": "Yahoo!ショッピング",
        "yahooshopping": "Yahoo!ショッピング",
    "yahooショッピング": "Yahoo!ショッピング", "nextengine": "Next Engine", "ネクストエンジン": "Next Engine",
    "base": "BASE", "makeshop": "MakeShop", "メイクショップ": "MakeShop", "futureshop": "futureshop",
    "フューチャーショップ": "futureshop",
}


def _platform_key(name: str) -> str:
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKC", name).lower() if ch.isalnum())


def platform_named(name: str) -> tuple[Preset, ...]:
    """The presets of the platform a user named (``--platform base``); empty when none is."""
    key = _platform_key(name)
    wanted = _ALIASES.get(key) or next((p.platform for p in PLATFORMS if _platform_key(p.platform) == key
                                        or _platform_key(p.name) == key), None)
    return tuple(p for p in PLATFORMS if p.platform == wanted) if wanted else ()


def platform_names() -> list[str]:
    """Every platform, in the order of PLATFORMS (for messages)."""
    return list(dict.fromkeys(p.platform for p in PLATFORMS))
