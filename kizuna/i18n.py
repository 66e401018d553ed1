"""User-facing labels: Japanese by default, English with --lang en."""

from __future__ import annotations

__all__ = ["LANGS", "label"]

LANGS = ("ja", "en")

_LABELS: dict[str, tuple[str, str]] = {
    # tables
    "customers": ("顧客", "customers"),
    "products": ("商品", "products"),
    "orders": ("注文", "orders"),
    "order_items": ("注文明細", "order items"),
    "nps_answers": ("NPS回答", "NPS answers"),
    "support_contacts": ("問い合わせ", "support contacts"),
    "events": ("顧客イベント", "profile events"),
    # import summary
    "file": ("ファイル", "file"),
    "kind": ("種類", "kind"),
    "encoding": ("文字コード", "encoding"),
    "sheet": ("シート", "sheet"),
    "rows_read": ("読込行数", "rows read"),
    "accepted": ("受理", "accepted"),
    "added": ("新規", "added"),
    "updated": ("更新", "updated"),
    "unchanged": ("変更なし", "unchanged"),
    "duplicates": ("重複(同一内容)", "duplicates (same data)"),
    "rejected": ("却下", "rejected"),
    "rejects_file": ("却下行の一覧", "rejects file"),
    "ignored_columns": ("取り込まなかった列", "ignored columns"),
    "and_n_more": ("… ほか {n} 列", "… and {n} more"),
    "top_reasons": ("主な却下理由", "main reasons"),
    # KPIs
    "measure": ("指標", "measure"),
    "value": ("値", "value"),
    "period": ("期間", "period"),
    "ordering_customers": ("購入顧客数", "ordering customers"),
    "revenue": ("売上", "revenue"),
    "aov": ("平均購入単価 (AOV)", "average order value"),
    "repeat_rate": ("リピート率", "repeat rate"),
    "purchase_frequency": ("購入頻度", "purchase frequency"),
    "nps": ("NPS", "NPS"),
    "promoters": ("推薦者", "promoters"),
    "passives": ("中立者", "passives"),
    "detractors": ("批判者", "detractors"),
    "top20_revenue_share": ("上位20%顧客の売上シェア (2:8)", "revenue share of top 20% (2:8)"),
    "mean_ltv": ("平均LTV", "mean LTV"),
    "table": ("テーブル", "table"),
    "rows": ("件数", "rows"),
    "demo_ready": ("デモ企業のワークスペースを作成しました", "Demo business workspace ready"),
    "importing": ("取り込み中", "importing"),
    "reconcile": ("重複・参照を確認して保存中", "checking duplicates and references, saving"),
    "analyzing": ("顧客スコアを計算中", "computing customer scores"),
    "as_of": ("基準日", "as of"),
    "segment": ("セグメント", "segment"),
    "revenue_share": ("売上シェア", "revenue share"),
    "title_matrix": ("NPS × LTV マトリクス", "NPS x LTV matrix"),
    "title_ranks": ("RFMランク", "RFM ranks"),
    "title_kpi": ("主要指標", "Key figures"),
    "title_by_month": ("月別", "By month"),
    "title_by_channel": ("販売チャネル別", "By sales channel"),
    "title_concentration": ("売上集中度 (ローレンツ曲線)", "Revenue concentration (Lorenz curve)"),
    "title_cohorts": ("初回購入月コホートの継続率 (%: k か月後に購入した割合)",
                      "Retention by first-order month (% ordering k months later)"),
    "title_nps_by_channel": ("問い合わせチャネル別NPS", "NPS by support channel"),
    "title_subscription_churn": ("定期解約率", "Subscription churn"),
    "month": ("月", "month"),
    "ltv_band": ("LTV帯", "LTV band"),
    "share": ("構成比", "share"),
    "title_ltv_distribution": ("LTV分布 (累計売上)", "LTV distribution (lifetime revenue)"),
    "channel": ("チャネル", "channel"),
    "f2_conversion": ("F2転換率", "F2 conversion"),
    "f2_median_days": ("2回目購入までの日数 (中央値)", "median days to second order"),
    "top_customers": ("上位顧客", "top customers"),
    "cumulative_revenue": ("累積売上シェア %", "cumulative revenue share %"),
    "cohort": ("コホート", "cohort"),
    "cohort_size": ("人数", "size"),
    "months_after": ("経過月", "months after"),
    "months_after_n": ("{k}か月後", "+{k} mo"),
    "retention": ("継続率", "retention"),
    "support_channel": ("問い合わせチャネル", "support channel"),
    "answered": ("回答数", "answers"),
    "active_subscriptions": ("月初の契約数", "active at start"),
    "cancellations": ("解約数", "cancellations"),
    "churn_rate": ("解約率", "churn rate"),
    "demo_next": (
        "次の一手: kizuna export 離脱候補者 --dir {dir} -o churn.xlsx -f xlsx で架電リストを作成",
        "Next: kizuna export churn_candidate --dir {dir} -o churn.xlsx -f xlsx writes a call list",
    ),
}


def label(key: str, lang: str = "ja") -> str:
    """The label for `key` in `lang`; the key itself when none is defined."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]

# Segment names (SPEC §2): id -> (ja, en)
SEGMENT_LABELS: dict[str, tuple[str, str]] = {
    # NPS x LTV matrix (000)
    "churn_candidate": ("離脱候補者", "churn candidate"),
    "loyal_candidate": ("ロイヤルカスタマー候補者", "loyal candidate"),
    "loyal": ("ロイヤルカスタマー", "loyal customer"),
    "non_cooperative": ("非協力者", "non-cooperative"),
    "indifferent": ("無関心", "indifferent"),
    "advocate": ("広報担当者", "advocate"),
    "unanswered_high": ("未回答 (高LTV)", "unanswered (high LTV)"),
    "unanswered_low": ("未回答 (低LTV)", "unanswered (low LTV)"),
    # RFM rank (002 §4-3)
    "rank_loyal": ("ロイヤルカスタマー", "loyal customer rank"),
    "rank_a": ("Aランク", "rank A"),
    "rank_b": ("Bランク", "rank B"),
    "rank_other": ("その他", "other"),
    # named RFM segments
    "champions": ("チャンピオン", "Champions"),
    "loyal_customers": ("ロイヤル", "Loyal"),
    "potential_loyalist": ("ロイヤル予備軍", "Potential loyalist"),
    "new_customers": ("新規顧客", "New"),
    "promising": ("有望", "Promising"),
    "need_attention": ("要注意", "Need attention"),
    "about_to_sleep": ("休眠寸前", "About to sleep"),
    "cant_lose_them": ("失えない顧客", "Can't lose them"),
    "at_risk": ("離反リスク", "At risk"),
    "hibernating": ("休眠", "Hibernating"),
    "lost": ("離脱", "Lost"),
    # behavioural vs psychological loyalty (002 §1-3)
    "good_customer": ("優良顧客", "good customer (behaviour only)"),
    "loyal_customer": ("ロイヤルカスタマー (行動+心理)", "loyal customer (behaviour + attitude)"),
    # flags
    "near_loyal": ("ロイヤルまであと一歩", "one step from loyal"),
    "dormant": ("休眠顧客", "dormant"),
    "lapsing": ("購入周期遅れ", "lapsing"),
    "lost_customers": ("離脱顧客", "lost customers"),
    "lost_unresolved": ("離脱: 課題未解決", "lost: unresolved problem"),
    "lost_situation_changed": ("離脱: 状況変化", "lost: situation changed"),
    "lost_drifted": ("離脱: 疎遠", "lost: drifted away"),
    # dimensions and reasons
    "recency": ("最終購入日", "recency"),
    "frequency": ("購入頻度", "frequency"),
    "monetary": ("購入金額", "monetary"),
    "nps": ("NPS", "NPS"),
    "unresolved": ("課題未解決", "unresolved problem"),
    "situation_changed": ("状況変化", "situation changed"),
    "drifted": ("疎遠", "drifted away"),
    "detractor": ("批判者", "detractor"),
    "passive": ("中立者", "passive"),
    "promoter": ("推薦者", "promoter"),
    # support channels (support_contacts.channel)
    "phone": ("電話", "phone"),
    "chat": ("チャット", "chat"),
    "email": ("メール", "e-mail"),
    "chatbot": ("チャットボット", "chatbot"),
    "faq": ("FAQ", "FAQ"),
    "sms": ("SMS", "SMS"),
    "ivr": ("自動音声 (IVR)", "IVR"),
}


def segment_label(key: str | None, lang: str = "ja") -> str:
    if key is None:
        return ""
    pair = SEGMENT_LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]


def segment_key(name: str) -> str | None:
    """The segment id for a name typed by a user: an id, or a Japanese or English label."""
    wanted = name.strip().lower()
    for key, (ja, en) in SEGMENT_LABELS.items():
        if wanted in (key, ja.lower(), en.lower()):
            return key
    return None
