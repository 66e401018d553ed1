"""The web app's own words, Japanese and English; the CLI's labels (kizuna.i18n) serve the rest."""

from __future__ import annotations

from kizuna.i18n import label, segment_label

__all__ = ["Words"]

_WEB: dict[str, tuple[str, str]] = {
    "app": ("kizuna 顧客ダッシュボード", "kizuna customer dashboard"),
    "login": ("ログイン", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "user": ("ユーザー名", "User name"),
    "password": ("パスワード", "Password"),
    "login_failed": ("ユーザー名またはパスワードが違います。", "Wrong user name or password."),
    "nav_overview": ("概要", "Overview"),
    "nav_rfm": ("RFM", "RFM"),
    "nav_cohorts": ("コホート", "Cohorts"),
    "nav_migration": ("セグメント移動", "Migration"),
    "nav_priority": ("架電リスト", "Call list"),
    "nav_results": ("施策の効果", "Results"),
    "role_viewer": ("閲覧者 (連絡先は非表示)", "viewer (contact data hidden)"),
    "role_operator": ("オペレーター", "operator"),
    "as_of_day": ("基準日 {day}", "as of {day}"),
    "updating": ("最新のデータで再計算中です。数秒後に再読み込みしてください。",
                 "Recomputing with the latest data; reload in a few seconds."),
    "busy": ("別の処理 (取り込み・分析) がデータを更新中です。少し待ってから再読み込みしてください。",
             "Another kizuna command (an import or analysis) is writing the data; reload in a moment."),
    "bad_date": ("アドレスの日付「{value}」は読めません。YYYY-MM-DD (例: 2026-04-01) で指定してください。",
                 "The date {value!r} in the address cannot be read: write it YYYY-MM-DD (e.g. 2026-04-01)."),
    "computing": ("集計中です。数秒後に自動で再読み込みします。",
                  "Computing; the page reloads by itself in a few seconds."),
    "no_scores": ("顧客スコアがまだありません。`kizuna analyze` を実行してください。",
                  "No customer scores yet. Run `kizuna analyze`."),
    "no_predictions": ("予測がまだありません。`kizuna predict` を実行してください。",
                       "No predictions yet. Run `kizuna predict`."),
    "kpi_trend": ("過去12か月の推移", "last 12 months"),
    "ltv": ("平均LTV", "mean LTV"),
    "subscription_churn": ("定期解約率", "subscription churn"),
    "nps_month_note": ("各月の回答のNPS", "NPS of each month's answers"),
    "matrix_hint": ("セルをクリックすると顧客一覧を表示します。", "Click a cell to list its customers."),
    "ltv_high": ("高LTV", "high LTV"),
    "ltv_low": ("低LTV", "low LTV"),
    "unanswered": ("未回答", "no answer"),
    "rf_heatmap": ("R × F ヒートマップ (顧客数)", "R × F heatmap (customers)"),
    "r_score": ("R (最近さ)", "R (recency)"),
    "f_score": ("F (頻度)", "F (frequency)"),
    "named_segments": ("RFMセグメント", "RFM segments"),
    "list_title": ("顧客一覧", "Customers"),
    "search": ("検索", "Search"),
    "search_hint_operator": ("顧客ID・氏名・メール・電話", "customer id, name, e-mail, phone"),
    "search_hint_viewer": ("顧客ID", "customer id"),
    "sort": ("並び順", "Sort"),
    "descending": ("降順", "descending"),
    "apply": ("絞り込む", "Apply"),
    "export_csv": ("CSVで出力", "Export CSV"),
    "export_xlsx": ("Excelで出力", "Export Excel"),
    "page_of": ("{page} / {pages} ページ ({total} 件)", "page {page} of {pages} ({total} customers)"),
    "previous": ("前へ", "Previous"),
    "next": ("次へ", "Next"),
    "no_rows": ("該当する顧客はいません。", "No customers match."),
    "customer": ("顧客", "Customer"),
    "profile": ("プロフィール", "Profile"),
    "scores": ("スコア", "Scores"),
    "prediction": ("予測", "Prediction"),
    "timeline": ("タイムライン", "Timeline"),
    "kind_order": ("注文", "order"),
    "kind_nps": ("NPS回答", "NPS answer"),
    "kind_support": ("問い合わせ", "support contact"),
    "kind_event": ("イベント", "event"),
    "kind_message": ("送信メッセージ", "message"),
    "expected_next_order": ("次回購入予測日", "expected next order"),
    "expected_orders": ("期待購入回数", "expected orders"),
    "not_found": ("見つかりません。", "Not found."),
    "forbidden": ("この操作は許可されていません。", "This is not allowed."),
    "csrf_failed": ("フォームの有効期限が切れました。ページを再読み込みしてやり直してください。",
                    "The form expired; reload the page and try again."),
    "migration_from": ("開始日", "from"),
    "migration_to": ("終了日", "to"),
    "migration_by": ("分類", "by"),
    "by_cell": ("NPS×LTVセル", "NPS × LTV cell"),
    "by_rank": ("RFMランク", "RFM rank"),
    "transition_table": ("移動表 (行: 開始日, 列: 終了日)", "Transition table (rows: from, columns: to)"),
    "migration_headline": ("離脱候補者からロイヤルカスタマーへ: {n} / {of} 人 ({share})",
                           "churn candidates who became loyal: {n} of {of} ({share})"),
    "flow": ("移動の流れ", "Flow"),
    "show": ("表示", "Show"),
    "no_results": ("まだ実行された施策はありません。", "No scenarios have run yet."),
    "total_row": ("合計", "total"),
    "not_enough_data": ("データ不足 (各群 {n} 人必要)", "not enough data yet ({n} per group needed)"),
    "not_enough_data_short": ("データ不足", "not enough data yet"),
    "language": ("English", "日本語"),
    "curve_note": ("上位{p}%の顧客が売上の{s}%", "the top {p}% of customers bring {s}% of revenue"),
    "f2_note": ("F2転換率", "F2 conversion"),
}

_RESULT_COLUMNS = {
    "scenario": ("施策", "scenario"), "step": ("ステップ", "step"), "channel": ("チャネル", "channel"),
    "due": ("予定", "due"), "sent": ("送信", "sent"), "delivered": ("配信", "delivered"), "failed": ("失敗", "failed"),
    "deferred": ("延期", "deferred"), "suppressed": ("抑止", "suppressed"), "holdout": ("対照群", "holdout"),
    "treated_customers": ("介入群", "treated"), "control_customers": ("対照群人数", "control"),
    "treated_rate": ("介入群CV率", "treated rate"), "control_rate": ("対照群CV率", "control rate"),
    "uplift": ("効果 (95%区間)", "uplift (95% interval)"), "incremental_orders": ("増分注文", "incremental orders"),
    "incremental_revenue": ("増分売上", "incremental revenue"),
}


class Words:
    """Labels in one language, for templates: ``t("login")``, ``t.segment("churn_candidate")``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in ("ja", "en") else "ja"

    def __call__(self, key: str, **values: object) -> str:
        pair = _WEB.get(key) or _RESULT_COLUMNS.get(key)
        text = (pair[0] if self.lang == "ja" else pair[1]) if pair else label(key, self.lang)
        return text.format(**values) if values else text

    def segment(self, key: str | None) -> str:
        return segment_label(key, self.lang)

    def rank(self, key: str | None) -> str:
        return segment_label(f"rank_{key}", self.lang) if key else ""
