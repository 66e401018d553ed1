"""The demo business's vocabulary: products, names, places and the words of its exports.

Every string here must encode as Shift_JIS (cp932), the encoding Japanese Excel users
save in; the tests check it, so a character such as "髙" or "﨑" cannot slip in.
"""

from __future__ import annotations

__all__ = [
    "ADDON_IDS", "ADDON_WEIGHTS", "CANCEL_REASONS", "COMMENTS", "EVENT_WORDS", "GIVEN_FEMALE",
    "GIVEN_MALE", "PLACES", "PRODUCTS", "STATUS_WORDS", "SUPPORT_CATEGORIES",
    "SUPPORT_CHANNEL_WORDS", "SURNAMES", "TOUCHPOINTS", "TOWNS", "BUILDINGS",
]

# product_id, name, category, price (yen), cycle_days, volume_l (per unit)
PRODUCTS: tuple[tuple[str, str, str, int, int | None, float | None], ...] = (
    ("W12-NAT", "天然水 12Lボトル (定期便)", "water", 1404, 30, 12.0),
    ("W12-RO", "RO水 12Lボトル (定期便)", "water", 1134, 30, 12.0),
    ("W7-PACK", "天然水 7Lパック (使い捨て)", "water", 1058, 14, 7.0),
    ("W7-4PK", "天然水 7Lパック 4個セット", "water", 3880, 30, 28.0),
    ("SRV-STD", "サーバーレンタル料 スタンダード (月額)", "server", 550, 30, None),
    ("SRV-PRM", "サーバーレンタル料 プレミアム 温水機能付き (月額)", "server", 1100, 30, None),
    ("FLT-01", "交換用エアフィルター", "maintenance", 1980, 180, None),
    ("CLN-KIT", "サーバーお手入れキット", "maintenance", 1320, 365, None),
    ("CUP-100", "紙コップ 100個", "accessory", 660, 60, None),
    ("STAND-01", "ボトルスタンド", "accessory", 3300, None, None),
    ("COF-30", "コーヒーカプセル 30個", "drink", 2160, 30, None),
    ("TEA-30", "緑茶カプセル 30個", "drink", 1944, 30, None),
    ("KETTLE", "電気ケトル 0.8L", "appliance", 4980, None, None),
    ("BOSAI-14", "防災備蓄用 7Lパック 2個", "water", 2480, 365, 14.0),
    ("BABY-2L", "赤ちゃん用軟水 2L×6本", "water", 1620, 14, 12.0),
)

# Add-ons and how often they are bought, in the order of PRODUCTS[6:]
ADDON_IDS = ("FLT-01", "CLN-KIT", "CUP-100", "STAND-01", "COF-30", "TEA-30", "KETTLE", "BOSAI-14",
             "BABY-2L")
ADDON_WEIGHTS = (0.16, 0.10, 0.18, 0.04, 0.20, 0.12, 0.03, 0.07, 0.10)

# kanji, katakana, romaji; roughly in order of frequency
SURNAMES: tuple[tuple[str, str, str], ...] = (
    ("佐藤", "サトウ", "sato"), ("鈴木", "スズキ", "suzuki"), ("高橋", "タカハシ", "takahashi"),
    ("田中", "タナカ", "tanaka"), ("伊藤", "イトウ", "ito"), ("渡辺", "ワタナベ", "watanabe"),
    ("山本", "ヤマモト", "yamamoto"), ("中村", "ナカムラ", "nakamura"), ("小林", "コバヤシ", "kobayashi"),
    ("加藤", "カトウ", "kato"), ("吉田", "ヨシダ", "yoshida"), ("山田", "ヤマダ", "yamada"),
    ("佐々木", "ササキ", "sasaki"), ("山口", "ヤマグチ", "yamaguchi"), ("松本", "マツモト", "matsumoto"),
    ("井上", "イノウエ", "inoue"), ("木村", "キムラ", "kimura"), ("林", "ハヤシ", "hayashi"),
    ("斎藤", "サイトウ", "saito"), ("清水", "シミズ", "shimizu"), ("山崎", "ヤマザキ", "yamazaki"),
    ("森", "モリ", "mori"), ("池田", "イケダ", "ikeda"), ("橋本", "ハシモト", "hashimoto"),
    ("阿部", "アベ", "abe"), ("石川", "イシカワ", "ishikawa"), ("山下", "ヤマシタ", "yamashita"),
    ("中島", "ナカジマ", "nakajima"), ("石井", "イシイ", "ishii"), ("小川", "オガワ", "ogawa"),
    ("前田", "マエダ", "maeda"), ("岡田", "オカダ", "okada"), ("長谷川", "ハセガワ", "hasegawa"),
    ("藤田", "フジタ", "fujita"), ("後藤", "ゴトウ", "goto"), ("近藤", "コンドウ", "kondo"),
    ("村上", "ムラカミ", "murakami"), ("遠藤", "エンドウ", "endo"), ("青木", "アオキ", "aoki"),
    ("坂本", "サカモト", "sakamoto"), ("福田", "フクダ", "fukuda"), ("太田", "オオタ", "ota"),
    ("西村", "ニシムラ", "nishimura"), ("藤井", "フジイ", "fujii"), ("金子", "カネコ", "kaneko"),
    ("岡本", "オカモト", "okamoto"), ("藤原", "フジワラ", "fujiwara"), ("中野", "ナカノ", "nakano"),
    ("三浦", "ミウラ", "miura"), ("原田", "ハラダ", "harada"), ("中川", "ナカガワ", "nakagawa"),
    ("松田", "マツダ", "matsuda"), ("竹内", "タケウチ", "takeuchi"), ("小野", "オノ", "ono"),
    ("田村", "タムラ", "tamura"), ("中山", "ナカヤマ", "nakayama"), ("和田", "ワダ", "wada"),
    ("石田", "イシダ", "ishida"), ("森田", "モリタ", "morita"), ("上田", "ウエダ", "ueda"),
    ("原", "ハラ", "hara"), ("内田", "ウチダ", "uchida"), ("柴田", "シバタ", "shibata"),
    ("酒井", "サカイ", "sakai"), ("宮崎", "ミヤザキ", "miyazaki"), ("横山", "ヨコヤマ", "yokoyama"),
    ("高木", "タカギ", "takagi"), ("安藤", "アンドウ", "ando"), ("宮本", "ミヤモト", "miyamoto"),
    ("大野", "オオノ", "ono"), ("小島", "コジマ", "kojima"), ("谷口", "タニグチ", "taniguchi"),
    ("今井", "イマイ", "imai"), ("工藤", "クドウ", "kudo"), ("高田", "タカダ", "takada"),
    ("増田", "マスダ", "masuda"), ("丸山", "マルヤマ", "maruyama"), ("杉山", "スギヤマ", "sugiyama"),
    ("村田", "ムラタ", "murata"), ("大塚", "オオツカ", "otsuka"), ("新井", "アライ", "arai"),
    ("小山", "コヤマ", "koyama"), ("平野", "ヒラノ", "hirano"), ("藤本", "フジモト", "fujimoto"),
    ("河野", "コウノ", "kono"), ("上野", "ウエノ", "ueno"), ("野口", "ノグチ", "noguchi"),
    ("武田", "タケダ", "takeda"), ("松井", "マツイ", "matsui"), ("千葉", "チバ", "chiba"),
    ("岩崎", "イワサキ", "iwasaki"), ("菅原", "スガワラ", "sugawara"), ("木下", "キノシタ", "kinoshita"),
    ("久保", "クボ", "kubo"), ("佐野", "サノ", "sano"), ("野村", "ノムラ", "nomura"),
    ("松尾", "マツオ", "matsuo"),
)

GIVEN_FEMALE: tuple[tuple[str, str, str], ...] = (
    ("陽子", "ヨウコ", "yoko"), ("恵子", "ケイコ", "keiko"), ("京子", "キョウコ", "kyoko"),
    ("幸子", "サチコ", "sachiko"), ("和子", "カズコ", "kazuko"), ("久美子", "クミコ", "kumiko"),
    ("裕子", "ユウコ", "yuko"), ("直美", "ナオミ", "naomi"), ("真由美", "マユミ", "mayumi"),
    ("智子", "トモコ", "tomoko"), ("美穂", "ミホ", "miho"), ("愛", "アイ", "ai"), ("彩", "アヤ", "aya"),
    ("舞", "マイ", "mai"), ("美咲", "ミサキ", "misaki"), ("陽菜", "ヒナ", "hina"), ("結衣", "ユイ", "yui"),
    ("さくら", "サクラ", "sakura"), ("葵", "アオイ", "aoi"), ("由美", "ユミ", "yumi"),
    ("明美", "アケミ", "akemi"), ("香織", "カオリ", "kaori"), ("沙織", "サオリ", "saori"),
    ("千尋", "チヒロ", "chihiro"), ("奈々", "ナナ", "nana"), ("彩香", "アヤカ", "ayaka"),
    ("真奈美", "マナミ", "manami"), ("恵美", "エミ", "emi"), ("優子", "ユウコ", "yuko"),
    ("典子", "ノリコ", "noriko"),
)

GIVEN_MALE: tuple[tuple[str, str, str], ...] = (
    ("翔太", "ショウタ", "shota"), ("大輔", "ダイスケ", "daisuke"), ("健太", "ケンタ", "kenta"),
    ("拓也", "タクヤ", "takuya"), ("誠", "マコト", "makoto"), ("浩", "ヒロシ", "hiroshi"),
    ("隆", "タカシ", "takashi"), ("修", "オサム", "osamu"), ("茂", "シゲル", "shigeru"),
    ("清", "キヨシ", "kiyoshi"), ("剛", "ツヨシ", "tsuyoshi"), ("直樹", "ナオキ", "naoki"),
    ("和也", "カズヤ", "kazuya"), ("達也", "タツヤ", "tatsuya"), ("健一", "ケンイチ", "kenichi"),
    ("大樹", "ダイキ", "daiki"), ("蓮", "レン", "ren"), ("悠真", "ユウマ", "yuma"),
    ("陽翔", "ハルト", "haruto"), ("湊", "ミナト", "minato"), ("亮", "リョウ", "ryo"),
    ("聡", "サトシ", "satoshi"), ("学", "マナブ", "manabu"), ("正樹", "マサキ", "masaki"),
    ("一郎", "イチロウ", "ichiro"), ("健二", "ケンジ", "kenji"), ("秀樹", "ヒデキ", "hideki"),
    ("雄一", "ユウイチ", "yuichi"), ("慎也", "シンヤ", "shinya"), ("洋平", "ヨウヘイ", "yohei"),
)

# prefecture + city, first three digits of the postal code, weight (about the population)
PLACES: tuple[tuple[str, str, int], ...] = (
    ("東京都世田谷区", "154", 9), ("東京都練馬区", "176", 7), ("東京都大田区", "144", 7),
    ("東京都杉並区", "166", 6), ("東京都江戸川区", "132", 6), ("東京都港区", "105", 3),
    ("東京都八王子市", "192", 5), ("東京都町田市", "194", 4), ("神奈川県横浜市港北区", "222", 6),
    ("神奈川県横浜市青葉区", "225", 5), ("神奈川県川崎市中原区", "211", 5),
    ("神奈川県相模原市中央区", "252", 4), ("神奈川県藤沢市", "251", 4), ("大阪府大阪市北区", "530", 4),
    ("大阪府堺市北区", "591", 4), ("大阪府豊中市", "560", 4), ("大阪府吹田市", "564", 4),
    ("愛知県名古屋市中区", "460", 5), ("愛知県豊田市", "471", 3), ("愛知県岡崎市", "444", 3),
    ("埼玉県さいたま市浦和区", "330", 5), ("埼玉県川口市", "332", 5), ("埼玉県所沢市", "359", 3),
    ("千葉県千葉市中央区", "260", 4), ("千葉県船橋市", "273", 5), ("千葉県柏市", "277", 3),
    ("兵庫県神戸市中央区", "650", 4), ("兵庫県西宮市", "662", 4), ("兵庫県姫路市", "670", 3),
    ("北海道札幌市中央区", "060", 5), ("北海道旭川市", "070", 2), ("福岡県福岡市博多区", "812", 5),
    ("福岡県北九州市小倉北区", "802", 3), ("静岡県静岡市葵区", "420", 3), ("静岡県浜松市中央区", "430", 3),
    ("宮城県仙台市青葉区", "980", 4), ("広島県広島市中区", "730", 4), ("京都府京都市左京区", "606", 4),
    ("新潟県新潟市中央区", "951", 2), ("沖縄県那覇市", "900", 2),
)

TOWNS = ("本町", "中央", "桜台", "緑町", "旭町", "栄町", "東町", "南町", "若葉", "松が丘", "青葉台",
         "富士見", "日の出町", "春日", "山手町", "泉", "朝日町", "北町", "西町", "港南")
BUILDINGS = ("メゾン桜", "グランハイツ", "コーポ緑", "サンライズマンション", "パークハウス",
             "レジデンス青葉", "ハイツ富士見")

# canonical value -> the word the demo's exports use (all known to kizuna's importer)
STATUS_WORDS = {"completed": "完了", "cancelled": "キャンセル", "returned": "返品"}
SUPPORT_CHANNEL_WORDS = {"phone": "電話", "chat": "チャット", "email": "メール",
                         "chatbot": "チャットボット", "faq": "よくある質問"}
EVENT_WORDS = {
    "subscription_start": "定期開始", "first_delivery": "初回配送", "review": "レビュー",
    "plan_change": "プラン変更", "cancellation": "解約", "moved": "引越し", "married": "結婚",
    "household_change": "世帯変更", "referral": "紹介",
}

SUPPORT_CATEGORIES = ("配送・お届け日", "請求・お支払い", "サーバー故障・メンテナンス",
                      "プラン変更・休止", "解約", "商品について", "その他")

TOUCHPOINTS = ("メール", "LINE", "同梱チラシ", "マイページ", "サポート後アンケート")

CANCEL_REASONS = ("料金が高い", "使い切れない", "他社に乗り換え", "引越しのため",
                  "ボトル交換が大変", "置き場所がない", "家族構成の変化")

# NPS comments by class: detractor, passive, promoter
COMMENTS: dict[str, tuple[str, ...]] = {
    "detractor": (
        "ボトルの交換が重くて大変です。", "配送日の変更がしにくいです。",
        "料金が高いと感じます。他社も検討中です。", "サポートの電話がつながりにくい。",
        "サーバーの音が気になります。", "解約の手続きがわかりにくい。",
        "使い切れずにボトルが溜まってしまいます。", "請求内容がわかりにくい。",
    ),
    "passive": (
        "特に不満はありませんが、もう少し安いと嬉しいです。",
        "水はおいしいですが、ボトル交換が少し重いです。",
        "普通に使えています。", "配送の時間帯をもっと選べると助かります。",
    ),
    "promoter": (
        "水がおいしく、配送も時間通りで満足しています。", "家族みんなで使っています。友人にも勧めました。",
        "サーバーがおしゃれでキッチンに合います。", "コーヒーカプセルが便利です。",
        "子どものミルク作りに重宝しています。", "すぐにお湯が出るので料理に便利です。",
    ),
}
