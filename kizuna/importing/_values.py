"""Words that Japanese exports use for kizuna's fixed values, and header aliases.

A mapping file's ``[values.COLUMN]`` table adds to these; its ``[columns]`` table
overrides the header aliases.
"""

from __future__ import annotations

__all__ = ["BOOLEAN_WORDS", "ENUMS", "HEADER_ALIASES"]

# canonical value -> accepted spellings (compared after NFKC, trimming and lower-casing)
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "order_status": {
        "completed": ("completed", "complete", "done", "shipped", "delivered", "完了", "発送済",
                      "発送済み", "出荷済", "出荷済み", "配送済", "配送完了", "受注", "確定", "入金済"),
        "cancelled": ("cancelled", "canceled", "cancel", "キャンセル", "取消", "取り消し", "取消し"),
        "returned": ("returned", "return", "refunded", "返品", "返品済", "返金", "返金済"),
    },
    "support_channel": {
        "phone": ("phone", "tel", "call", "電話", "架電", "受電"),
        "chat": ("chat", "チャット", "有人チャット"),
        "email": ("email", "e-mail", "mail", "メール", "電子メール"),
        "chatbot": ("chatbot", "bot", "チャットボット"),
        "faq": ("faq", "よくある質問"),
        "sms": ("sms", "ショートメッセージ"),
        "ivr": ("ivr", "自動音声", "音声自動応答"),
    },
    "support_status": {
        "open": ("open", "pending", "未解決", "対応中", "未対応", "保留"),
        "resolved": ("resolved", "closed", "解決", "解決済", "解決済み", "完了", "対応済", "対応済み"),
    },
    "event_kind": {
        "subscription_start": ("subscription_start", "定期開始", "定期申込", "契約開始", "申込"),
        "first_delivery": ("first_delivery", "初回配送", "初回お届け"),
        "review": ("review", "レビュー", "レビュー投稿"),
        "plan_change": ("plan_change", "プラン変更", "コース変更"),
        "cancellation": ("cancellation", "解約", "退会", "定期解約"),
        "moved": ("moved", "引越し", "引っ越し", "転居", "住所変更"),
        "married": ("married", "結婚"),
        "household_change": ("household_change", "世帯変更", "出産", "家族構成変更"),
        "referral": ("referral", "紹介", "友人紹介"),
    },
    # what a call came to, as a call centre's sheet writes it (docs/measures.md#calls)
    "call_outcome": {
        "reached": ("reached", "connected", "answered", "つながった", "繋がった", "通話", "通話済", "接続",
                    "応答", "本人対応", "対応済", "対応済み"),
        "no_answer": ("no_answer", "no answer", "noanswer", "busy", "voicemail", "不在", "留守", "留守電",
                      "応答なし", "不通", "話中", "つながらない", "繋がらない"),
        "kept": ("kept", "retained", "saved", "継続", "継続決定", "継続確定", "引き止め", "引き止め成功",
                 "解約阻止", "解約防止", "残留"),
        "cancelled": ("cancelled", "canceled", "cancel", "lost", "解約", "解約確定", "解約決定", "退会"),
        "callback": ("callback", "call back", "call_back", "折り返し", "折返し", "折り返し待ち", "再架電",
                     "かけ直し", "掛け直し", "後日"),
    },
}

BOOLEAN_WORDS: dict[bool, tuple[str, ...]] = {
    True: ("true", "t", "1", "yes", "y", "on", "はい", "可", "有", "あり", "○", "〇", "◯",
           "同意", "許可", "希望", "受け取る", "配信する"),
    False: ("false", "f", "0", "no", "n", "off", "いいえ", "不可", "無", "なし", "×", "✕",
            "拒否", "不要", "希望しない", "受け取らない", "配信しない", "配信停止"),
}

# Headers common in Japanese EC exports, per kind (NFKC-normalised before lookup).
HEADER_ALIASES: dict[str, dict[str, str]] = {
    "customers": {
        "顧客id": "customer_id", "顧客番号": "customer_id", "会員id": "customer_id",
        "会員番号": "customer_id", "氏名": "name", "名前": "name", "お名前": "name",
        "フリガナ": "name_kana", "氏名(カナ)": "name_kana", "メールアドレス": "email",
        "電話番号": "phone", "郵便番号": "postal_code", "住所": "address",
        "登録日": "signed_up_at", "入会日": "signed_up_at", "生年月日": "birthday",
        "メール配信": "email_opt_in", "メルマガ": "email_opt_in", "lineユーザーid": "line_user_id",
        "dm送付": "dm_opt_in",
    },
    "orders": {
        "受注番号": "order_id", "注文番号": "order_id", "受注id": "order_id",
        "顧客id": "customer_id", "顧客番号": "customer_id", "会員id": "customer_id",
        "会員番号": "customer_id", "購入日": "ordered_at", "注文日": "ordered_at",
        "受注日": "ordered_at", "注文日時": "ordered_at", "受注日時": "ordered_at",
        "金額": "amount", "合計金額": "amount", "購入金額": "amount", "受注金額": "amount",
        "ステータス": "status", "受注ステータス": "status", "返金額": "refund_amount",
        "販売チャネル": "channel", "発送日": "shipped_at", "出荷日": "shipped_at",
    },
    "order-items": {
        "受注番号": "order_id", "注文番号": "order_id", "商品id": "product_id",
        "商品コード": "product_id", "商品番号": "product_id", "数量": "quantity",
        "個数": "quantity", "単価": "unit_price", "販売単価": "unit_price",
    },
    "products": {
        "商品id": "product_id", "商品コード": "product_id", "商品番号": "product_id",
        "商品名": "name", "カテゴリ": "category", "カテゴリー": "category", "価格": "price",
        "販売価格": "price", "消費サイクル(日)": "cycle_days", "容量(l)": "volume_l",
    },
    "nps": {
        "顧客id": "customer_id", "会員id": "customer_id", "回答日": "answered_at",
        "回答日時": "answered_at", "スコア": "score", "推奨度": "score", "nps": "score",
        "コメント": "comment", "自由回答": "comment", "接点": "touchpoint",
    },
    "support": {
        "問い合わせid": "contact_id", "問合せid": "contact_id", "対応id": "contact_id",
        "顧客id": "customer_id", "会員id": "customer_id", "受付日時": "opened_at",
        "受付日": "opened_at", "チャネル": "channel", "窓口": "channel",
        "解決日時": "resolved_at", "解決日": "resolved_at", "ステータス": "status",
        "カテゴリ": "category", "区分": "category", "クレーム": "is_complaint",
    },
    "calls": {
        "顧客id": "customer_id", "顧客番号": "customer_id", "会員id": "customer_id", "会員番号": "customer_id",
        "架電日時": "called_at", "架電日": "called_at", "発信日時": "called_at", "通話日時": "called_at",
        "コール日時": "called_at", "担当者": "agent", "担当": "agent", "オペレーター": "agent",
        "オペレータ": "agent", "トークスクリプト": "script", "スクリプト": "script", "結果": "outcome",
        "架電結果": "outcome", "通話結果": "outcome", "コール結果": "outcome", "次回架電日": "next_call_at",
        "次回架電日時": "next_call_at", "次回連絡日": "next_call_at", "メモ": "note", "備考": "note",
        "対応メモ": "note",
    },
    "events": {
        "顧客id": "customer_id", "会員id": "customer_id", "発生日": "occurred_at",
        "発生日時": "occurred_at", "種別": "kind", "イベント": "kind", "詳細": "detail",
    },
}
