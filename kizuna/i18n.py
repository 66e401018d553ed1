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
    "rows_read": ("読込行数", "rows read"),
    "accepted": ("受理", "accepted"),
    "added": ("新規", "added"),
    "updated": ("更新", "updated"),
    "unchanged": ("変更なし", "unchanged"),
    "duplicates": ("重複(同一内容)", "duplicates (same data)"),
    "rejected": ("却下", "rejected"),
    "rejects_file": ("却下行の一覧", "rejects file"),
    "ignored_columns": ("取り込まなかった列", "ignored columns"),
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
}


def label(key: str, lang: str = "ja") -> str:
    """The label for `key` in `lang`; the key itself when none is defined."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]
