"""The catalogue of user-facing text: every word a person reads, in Japanese and English side by side.

One key, one pair ``(ja, en)``. The keys are grouped by area, each area a dict below:

* labels of the command line, the web app and the lists (`label`, no prefix: ``"customers"``,
  ``"title_priority"``; the web app's page words and result columns are in the same namespace,
  so a template's ``t("key")`` finds any of them);
* ``segment.*`` segment, rank and flag names (`segment_label`, `segment_key`; data ids such as
  ``churn_candidate`` are the codes, these are the words);
* ``header.*`` the column headers of exported customer lists; ``list.*`` the "why on this list" words;
* ``reason.*`` churn reasons in words; ``life_event.*`` the kinds of life events in them;
* ``forget.*`` the erasure command (``kizuna forget``);
* ``public.*`` the pages customers reach (survey, unsubscribe); ``email.*`` the lawful e-mail footer;
* ``chart.*`` the backtest chart;
* values of the data in words: ``sales_channel.*``, ``order_status.*``, ``support_status.*``,
  ``delivery_status.*``, ``delivery_group.*``, ``kind.*`` (`value_label`; a value with no text, the
  shop's own word, is shown as it is);
* the errors and warnings a person meets, as phrases (`kizuna._errors.Phrase`, said by `say`):
  ``error.*``, ``settings.*`` (kizuna.toml), ``scenario.*`` (scenario files), ``mapping.*``,
  ``reject.*`` (why a row was rejected), ``run.*`` (`kizuna run`'s warnings).

Texts are `str.format` patterns with named fields (``{n}``, ``{day}``); both languages of a key
use the same fields (tests/test_catalogue.py checks it, and that every key has both texts).
English plurals: ``text(key, lang, count=n)`` takes ``key + "_one"`` when ``round(n) == 1`` and
that key exists (Japanese has no plural; its ``_one`` text is the same).

Why one Python module and not gettext catalogues (Babel): kizuna has two languages, written by
the same people at the same time, and Japanese is the product's first language, not a translation
of English source strings — gettext keys a text by its English original, so a changed English
sentence orphans its Japanese. Here the key is a stable id, the two texts sit on one line in one
review, the `{field}` checks and the completeness check are a plain test, and there is no
extraction / .po / compile (.mo) step and no runtime dependency in the base layer, which imports
nothing from kizuna but kizuna._errors. What gettext would add — translator tools for further
languages — can be had later by writing these pairs out as .po files mechanically.

Adding a text: put the key in its area below (prefix included), both languages, same fields.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

from kizuna._errors import KizunaError, Phrase, use_catalogue

__all__ = ["CATALOGUE", "LANGS", "MONEY_SHORT_FROM", "change_text", "fields", "label", "money", "ordinal", "pattern",
           "say", "section", "segment_key", "segment_label", "text", "value_label"]

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
    "scores_computed": ("顧客スコア: {n}人 (基準日 {day})", "customer scores: {n} customers (as of {day})"),
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
    # prediction and the call list
    "predicting": ("予測中", "predicting"),
    "customer_id": ("顧客ID", "customer id"),
    "name": ("氏名", "name"),
    "phone_number": ("電話番号", "phone"),
    "title_model_fit": ("モデルの当てはまり", "Model fit"),
    "title_value_at_risk": ("セグメント別の離脱リスク金額", "Value at risk by segment"),
    "title_priority": ("架電優先リスト (リスク金額順)", "Call list (by value at risk)"),
    "model": ("モデル", "model"),
    "parameters": ("パラメータ (標準誤差)", "parameters (standard error)"),
    "predicted_customers": ("予測した顧客", "customers predicted"),
    "high_risk_customers": ("離脱リスクの高い顧客 (≥ {p} %)", "customers at high risk (≥ {p} %)"),
    "value_at_risk": ("離脱リスク金額 (円)", "value at risk (yen)"),
    "churn_risk": ("離脱確率 %", "churn risk %"),
    "clv": ("予測CLV (円)", "predicted CLV (yen)"),
    "p_alive": ("稼働確率 %", "P(alive) %"),
    "reasons": ("主な理由", "main reasons"),
    "suggested_action": ("推奨アクション", "suggested action"),
    "opted_out": ("配信停止", "opted out"),
    "validation_auc": ("検証AUC", "validation AUC"),
    "training_customers": ("学習に使った顧客", "training customers"),
    "note": ("注意", "note"),
    "days": ("日", "days"),
    "actual_churn_rate": ("実際の離脱率", "actual churn rate"),
    "predicted_purchases": ("予測購入日数 (合計)", "predicted purchase days (total)"),
    "actual_purchases": ("実際の購入日数 (合計)", "actual purchase days (total)"),
    "title_backtest": ("バックテスト", "Backtest"),
    "title_churn_ranking": ("離脱の予測精度 (ベースラインとの比較)", "Churn ranking against the baselines"),
    "churn_score": ("スコア", "score"),
    "score_model": ("kizuna離脱モデル", "kizuna churn model"),
    "score_recency": ("最終購入からの日数のみ", "days since last order only"),
    "score_bg_nbd": ("BG/NBD 1 − P(稼働)", "BG/NBD 1 − P(alive)"),
    "score_bg_nbd_orders": ("BG/NBD 期待購入回数 (少ないほど高リスク)", "BG/NBD expected orders (fewer: riskier)"),
    "top_decile_lift": ("上位10%リフト", "top-decile lift"),
    "title_holdout": ("予測と実績: 期間内の購入日数 (較正期間のリピート回数別)",
                      "Predicted vs actual purchase days (by repeat purchases before)"),
    "repeat_purchases_before": ("較正期間のリピート回数", "repeat purchases before"),
    "predicted": ("予測", "predicted"),
    "actual": ("実績", "actual"),
    "title_calibration": ("離脱確率の較正 (予測の十分位別)", "Churn risk calibration (by decile)"),
    "risk_decile": ("十分位", "decile"),
    "interval_95": ("実績の95%区間", "actual, 95% interval"),
    "within_interval": ("予測が区間内", "prediction within it"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "chart": ("グラフ", "chart"),
    "action_detractor_follow_up": ("48時間以内のフォロー電話 (批判者)", "follow-up call within 48 h (detractor)"),
    "action_hearing_call": ("ヒアリング電話 (課題の解決)", "hearing call: solve the problem"),
    "action_new_offer": ("新しい状況に合わせた提案", "new offer for the changed situation"),
    "action_loyal_programme": ("ロイヤル化プログラム (好きになってもらうメール)",
                               "loyal programme (come-to-like-it mail)"),
    "action_near_loyal_treatment": ("ロイヤル一歩手前の特別対応", "near-loyal special treatment"),
    "action_reminder": ("リマインド (メール・電話)", "reminder by e-mail or phone"),
    "action_check_in": ("お礼と近況確認の電話", "thank-you and check-in call"),
    "lifecycle_state": ("ライフサイクル", "lifecycle state"),
    "lifecycle_active": ("稼働中", "active"),
    "lifecycle_at_risk": ("離脱の兆し", "at risk"),
    "lifecycle_lapsed": ("購入周期遅れ (長期)", "lapsed"),
    "lifecycle_lost": ("離脱", "lost"),
    "lifecycle_subscription_cancelled": ("定期解約済み", "subscription cancelled"),
    "keep_customers": ("稼働中・離脱の兆しの顧客 (離脱確率の対象)",
                       "active or at-risk customers (churn risk is for them)"),
    "list_keep": ("解約防止リスト", "keep list"),
    "list_winback": ("掘り起こしリスト", "win-back list"),
    "call_list_summary": (
        "{list}: 架電 {calls}件 (上限 {capacity}件)、電話番号のない {mail}件はメール・DMリストへ、"
        "{days}日以内に架電済みの {cooled}件は除外 (対象 {candidates}件)",
        "{list}: {calls} calls (capacity {capacity}); {mail} without a phone number go to the e-mail / DM list; "
        "{cooled} called within {days} days left off ({candidates} candidates)",
    ),
    # the keep list's ranking (kizuna.prediction.keep_ranking) and the call holdout, under the summary
    "call_ranking_uplift": (
        "並び順: 架電で守れる見込み金額 (架電の効果 × CLV、架電結果 {outcomes}件から推定)",
        "ranked by the expected value kept by calling (effect of a call × CLV, from {outcomes} call outcomes)",
    ),
    "call_ranking_value_at_risk": (
        "並び順: リスク金額 (離脱確率 × CLV)。架電の効果で並べるには架電結果が {needed}件必要です (現在 {outcomes}件)",
        "ranked by value at risk (churn risk × CLV): ranking by the effect of a call needs {needed} call outcomes "
        "({outcomes} so far)",
    ),
    "call_ranking_no_estimate": (
        "並び順: リスク金額 (離脱確率 × CLV)。架電結果 {outcomes}件から架電の効果を推定できませんでした "
        "(理由は kizuna predict の注記)",
        "ranked by value at risk (churn risk × CLV): the effect of a call could not be estimated from {outcomes} "
        "call outcomes (kizuna predict's notes say why)",
    ),
    # kizuna backtest --calls
    "title_call_backtest": ("架電の効果による並び順の検証 (架電した顧客とホールドアウト)",
                            "Ranking by the effect of a call (customers called against those held out)"),
    "ranking_uplift": ("架電で守れる見込み金額 (効果 × CLV)", "expected value kept by calling (uplift × CLV)"),
    "ranking_value_at_risk": ("リスク金額 (離脱確率 × CLV)", "value at risk (churn risk × CLV)"),
    "ranking_random": ("無作為 (期待値)", "random (expected)"),
    "ranking": ("並び順", "ranking"),
    "qini_coefficient": ("Qini係数", "Qini coefficient"),
    "uplift_at_capacity": ("架電枠内の効果 (継続率の差)", "uplift at capacity (kept-rate difference)"),
    "kept_rate_called": ("継続率 (架電)", "kept rate (called)"),
    "kept_rate_held_out": ("継続率 (ホールドアウト)", "kept rate (held out)"),
    "call_backtest_training": (
        "学習: リスト日 {first} 〜 {last} の架電結果 {n}件 (架電 {called}件、ホールドアウト {held}件)",
        "trained on {n} call outcomes of lists {first} … {last} ({called} called, {held} held out)"),
    "call_backtest_evaluation": (
        "検証: リスト日 {first} 〜 {last} の架電結果 {n}件 (架電 {called}件、ホールドアウト {held}件)",
        "evaluated on {n} call outcomes of lists {first} … {last} ({called} called, {held} held out)"),
    "backtest_population": ("対象: 稼働中・離脱の兆しの顧客", "population: active or at-risk customers"),
    "call_capacity": ("1日の架電件数", "calls a day (capacity)"),
    "precision_at_capacity": ("架電枠内の適合率", "precision at capacity"),
    "recall_at_capacity": ("架電枠内の再現率", "recall at capacity"),
    "title_model_vs_baselines": ("架電枠内の比較: kizuna離脱モデル 対 各ベースライン",
                                 "Within the day's calls: the churn model against each baseline"),
    "baseline": ("ベースライン", "baseline"),
    "model_precision": ("モデルの適合率", "model's precision"),
    "baseline_precision": ("ベースラインの適合率", "baseline's precision"),
    "on_one_list_only": ("片方のリストだけの顧客", "customers on one list only"),
    "difference_points": ("差 (ポイント)", "difference (points)"),
    "difference_interval_95": ("差の95%区間", "difference, 95% interval"),
    "verdict": ("判定", "verdict"),
    "verdict_better": ("モデルが上 (偶然を超える差)", "model better (beyond chance)"),
    "verdict_worse": ("ベースラインが上 (偶然を超える差)", "baseline better (beyond chance)"),
    "verdict_no_difference": ("偶然の範囲内の差", "no difference beyond chance"),
    "lift_at_capacity": ("架電枠内のリフト", "lift at capacity"),
    "demo_next": (
        "次の一手: kizuna priority --dir {dir} -f xlsx -o call-list.xlsx で架電リスト (リスク金額順) を作成、"
        "kizuna export 離脱候補者 --dir {dir} -f xlsx -o churn.xlsx でセグメントの顧客一覧、"
        "kizuna run --dry-run --dir {dir} で {dir}/scenarios/ のシナリオが誰に何を送るかを確認、"
        "kizuna user add NAME --role operator --dir {dir} のあと kizuna serve --dir {dir} でダッシュボード",
        "Next: kizuna priority --dir {dir} -f xlsx -o call-list.xlsx writes the call list (by value at risk); "
        "kizuna export churn_candidate --dir {dir} -f xlsx -o churn.xlsx a segment's customers; "
        "kizuna run --dry-run --dir {dir} shows who the scenarios in {dir}/scenarios/ would reach with what; "
        "kizuna user add NAME --role operator --dir {dir}, then kizuna serve --dir {dir} for the dashboard",
    ),
}

# segment migration (`kizuna migration`, docs/measures.md §2 and §5)
_LABELS |= {
    "migration_new": ("新規 (開始日に未登録)", "new (joined after the start)"),
    "title_migration_cell": ("セグメント移動 (NPS × LTV マトリクス): {d1} → {d2}",
                             "Segment migration (NPS x LTV matrix): {d1} -> {d2}"),
    "title_migration_rank": ("ランク移動 (RFMランク): {d1} → {d2}", "Rank migration (RFM ranks): {d1} -> {d2}"),
    "title_migration_headline": ("移動のまとめ", "Migration summary"),
    "migration_from_to": ("開始日 \\ 終了日", "from \\ to"),
    "migration_total": ("合計", "total"),
    "migration_customers": ("顧客数 (終了日)", "customers (end date)"),
    "migration_customers_before": ("顧客数 (開始日)", "customers (start date)"),
    "migration_stayed": ("同じセグメントに留まった", "stayed in the same segment"),
    "migration_moved": ("別のセグメントへ移動", "moved to another segment"),
    "migration_churn_candidates_before": ("離脱候補者 (開始日)", "churn candidates (start date)"),
    "migration_churn_candidates_after": ("離脱候補者 (終了日)", "churn candidates (end date)"),
    "migration_loyal_before": ("ロイヤルカスタマー (開始日)", "loyal customers (start date)"),
    "migration_loyal_after": ("ロイヤルカスタマー (終了日)", "loyal customers (end date)"),
    "migration_churn_candidate_to_loyal": ("離脱候補者 → ロイヤルカスタマー", "churn candidates -> loyal"),
    "migration_churn_candidate_to_loyal_share": ("離脱候補者のうちロイヤル化した割合 %",
                                                 "share of churn candidates who became loyal %"),
    "migration_moved_up": ("ランクアップ", "moved up a rank"),
    "migration_moved_down": ("ランクダウン", "moved down a rank"),
    "migration_reached_top": ("最上位ランクに到達", "reached the top rank"),
}


# platform exports in the import summary (#13)
_LABELS |= {
    "import_preset": ("形式", "export"),
    "import_table_counts": ("新規 {a} / 更新 {u} / 変更なし {n}", "added {a} / updated {u} / unchanged {n}"),
    "import_rows_orders": ("注文行", "order rows"),
    "import_rows_items": ("明細行", "item rows"),
    "import_rows_other_lines": ("商品以外の行 (送料・手数料・割引・ポイント)",
                                "other lines (shipping, fees, discounts, points)"),
    "import_rows_rejected": ("却下", "rejected"),
    "import_matched_by": ("同一顧客の判定", "same buyer found by"),
    "import_matched_phone": ("電話番号", "phone"),
    "import_matched_name_postal": ("氏名+郵便番号", "name + postal code"),
}

# scenarios (`kizuna run`, `kizuna results`, docs/measures.md §4-§5)
_LABELS |= {
    "run_scenario": ("シナリオ", "Scenario"), "run_step": ("ステップ", "Step"), "run_channel": ("チャネル", "Channel"),
    "run_enrolled": ("対象", "Enrolled"), "run_holdout": ("対照群", "Control"), "run_sent": ("送信", "Sent"),
    "run_would_send": ("送信予定", "Would send"), "run_failed": ("失敗", "Failed"),
    "run_deferred": ("保留", "Deferred"),
    "run_suppressed": ("配信停止等", "Suppressed"), "run_cancelled": ("目標達成", "Goal reached"),
    "run_merged": ("統合 (同時期の別機会)", "Merged (a later occasion went)"),
    "run_waiting": ("待機", "Waiting"), "run_unconfirmed": ("未確認", "Unconfirmed"), "run_due": ("配信時期", "Due"),
    "run_resend": ("再送待ち (同一Message-ID)", "To resend (same Message-ID)"),
    "run_delivered": ("到達", "Delivered"), "run_treated_rate": ("施策群CVR", "Treated rate"),
    "run_control_rate": ("対照群CVR", "Control rate"), "run_uplift": ("差 (95%区間)", "Uplift (95% CI)"),
    "run_verdict": ("判定", "Verdict"), "run_incremental_revenue": ("増分売上", "Incremental revenue"),
    "title_run": ("シナリオ実行", "Scenario run"), "run_step_n": ("ステップ{n}", "step {n}"),
    "title_run_dry": ("シナリオ実行 (ドライラン: 送信なし)", "Scenario run (dry run: nothing sent)"),
    "title_results": ("シナリオの結果", "Scenario results"), "run_total": ("合計", "total"),
    "run_not_enough": ("データ不足 (各群{n:,}人必要)", "not enough data yet ({n:,} per group needed)"),
    "run_significant": ("効果あり", "effect shown"), "run_files": ("作成したリスト", "Lists written"),
    "run_none": ("まだ実行されたシナリオはありません。`kizuna run` で実行してください。",
                 "No scenario has run yet. Run `kizuna run`."),
    "channel_email": ("メール", "e-mail"), "channel_line": ("LINE", "LINE"),
    "channel_insert": ("同梱物", "parcel insert"), "channel_dm": ("DM", "direct mail"),
    "channel_call": ("架電", "call"),
}

# clicks, costs and budgets (`kizuna run`, `kizuna results`, the results page; docs/measures.md#clicks, #costs)
_LABELS |= {
    "run_over_budget": ("予算超過 (翌月へ)", "Over budget (next month)"),
    "run_costs": ("費用", "Costs"),
    "run_cost_line": ("{channel} {n}件 × {price} = {total}", "{channel}: {n} × {price} = {total}"),
    "run_cost_total": ("合計 {total}", "Total {total}"),
    "run_clicked": ("クリック (人)", "Clicked"), "run_converted": ("CV (人)", "Converted"),
    "run_revenue_per_recipient": ("1人あたり売上", "Revenue per recipient"),
    "run_control_revenue_per_customer": ("対照群1人あたり売上", "Control revenue per customer"),
    "run_cost": ("費用", "Cost"), "run_incremental_profit": ("増分利益 (95%区間)", "Incremental profit (95% CI)"),
    "clicked": ("クリック (人)", "clicked"), "converted": ("CV (人)", "converted"),
    "revenue_per_recipient": ("1人あたり売上", "revenue per recipient"),
    "control_revenue_per_customer": ("対照群1人あたり売上", "control revenue per customer"),
    "cost": ("費用", "cost"), "incremental_profit": ("増分利益 (95%区間)", "incremental profit (95% interval)"),
}

# calls and what they teach (`kizuna calls`, the customer page; docs/measures.md#calls)
_LABELS |= {
    "title_calls": ("トークスクリプト別の継続率", "Kept rate by talk script"), "nav_calls": ("架電の結果", "Calls"),
    "call_script": ("トークスクリプト", "Talk script"), "call_calls": ("架電数", "Calls"),
    "call_customers": ("架電した顧客", "Customers called"), "call_reached": ("通話できた顧客", "Customers reached"),
    "call_kept": ("継続", "Kept"), "call_kept_rate": ("継続率 (95%区間)", "Kept rate (95% CI)"),
    "call_difference": ("基準との差 (95%区間)", "Difference from the reference (95% CI)"),
    "call_reference": ("基準", "reference"), "call_verdict": ("判定", "Verdict"),
    "call_better": ("差あり", "difference shown"), "call_not_enough": ("差は未確定", "no difference shown yet"),
    "call_no_script": ("(スクリプトなし)", "(no script)"),
    "calls_none": ("架電結果はまだありません。`kizuna calls import FILE` で取り込んでください。",
                   "No call outcomes yet. Import them with `kizuna calls import FILE`."),
    "call_outcome_reached": ("つながった", "reached"), "call_outcome_no_answer": ("不在", "no answer"),
    "call_outcome_kept": ("継続", "kept"), "call_outcome_cancelled": ("解約", "cancelled"),
    "call_outcome_callback": ("折り返し", "call back"),
    "calls_last": ("最近の架電", "Latest calls"), "call_called_at": ("架電日時", "Called at"),
    "call_agent": ("担当者", "Agent"), "call_outcome": ("結果", "Outcome"),
    "call_next_call_at": ("次回架電日", "Next call"), "call_note": ("メモ", "Note"),
    "call_record": ("架電結果を記録", "Record a call"), "call_save": ("記録する", "Save"),
    "calls_never": ("架電の記録はありません。", "No call recorded."),
    "calls_operator_only": ("架電結果の記録にはオペレーター権限が必要です。",
                            "Recording a call needs the operator role."),
    "lost_reason_matched": ("理由の根拠となった語", "word that gave the reason"),
    "lost_reason_word": ("「{word}」", "“{word}”"),
}

# the call lists and what calls teach where people see them (`kizuna priority`, `kizuna results --calls`,
# the web app's call list, customer and calls pages; docs/measures.md#call-list, #call-effect)
_LABELS |= {
    "title_lifecycle": ("ライフサイクル別の顧客", "Customers by lifecycle state"),
    "title_rfm_segments": ("RFMセグメント", "RFM segments"),
    "lost_reason": ("離脱理由", "lost reason"),
    "lost_since": ("離脱日", "lost since"),
    "last_call": ("前回の架電", "last call"),
    "winback_reason_count": ("{reason} 架電{calls}件・メール/DM {mail}件",
                             "{reason}: calls {calls}, e-mail / DM {mail}"),
    "winback_by_reason": ("離脱理由別: {counts}", "by lost reason: {counts}"),
    "reason_separator": ("、", "; "),
    "call_summary_calls": ("架電 {calls}件 (1日の上限 {capacity}件)", "{calls} calls (capacity {capacity} a day)"),
    "call_summary_mail": ("電話番号がないためメール・DMリストへ: {n}件",
                          "no telephone number, to the e-mail / DM list: {n}"),
    "call_summary_cooled": ("{days}日以内に架電済みのため除外: {n}件", "called within {days} days, left off: {n}"),
    "call_summary_capacity": ("上限を超えたため今日は対象外: {n}件", "over today's capacity: {n}"),
    "call_summary_held_out": ("効果測定のため架電しない顧客 (ホールドアウト): {n}件",
                              "held out uncalled to measure the effect: {n}"),
    "call_summary_candidates": ("対象の顧客: {n}件", "customers the list draws from: {n}"),
    "call_list_empty": ("今日架電する顧客はいません。", "Nobody to call today."),
    "title_call_holdout": ("架電の効果 (ホールドアウトとの比較)", "What a call does (against the holdout)"),
    "call_group": ("群", "group"),
    "call_group_called": ("架電した顧客", "called"),
    "call_group_not_called": ("架電できたが未架電の顧客", "could be called, not called"),
    "call_group_held_out": ("ホールドアウト (架電しない)", "held out (never called)"),
    "call_holdout_population": (
        "対象: {day}時点で稼働中・離脱の兆しの、電話番号のある顧客。継続 = {as_of}時点で離脱・定期解約済みでない "
        "(架電期間 {since} 〜 {as_of})",
        "customers active or at risk on {day} with a telephone number; kept = not lost or cancelled on {as_of} "
        "(calls {since} … {as_of})",
    ),
    "call_holdout_difference": (
        "架電できた顧客 (架電・未架電の計) とホールドアウトの継続率の差: {difference} [{low}, {high}] {verdict}",
        "kept rate of those who could be called (called or not) minus the held out: {difference} [{low}, {high}], "
        "{verdict}",
    ),
    "call_holdout_per_call": (
        "架電した顧客1人あたりの効果: {effect} [{low}, {high}] (架電できた顧客のうち {share} に架電)",
        "effect per customer called: {effect} [{low}, {high}] ({share} of those who could be called were)",
    ),
    # the kinds of profile events (events.kind), as the customer page's timeline shows them
    "event_kind_subscription_start": ("定期購入の開始", "subscription started"),
    "event_kind_first_delivery": ("初回お届け", "first delivery"),
    "event_kind_review": ("レビュー投稿", "review"),
    "event_kind_plan_change": ("プラン変更", "plan changed"),
    "event_kind_cancellation": ("解約", "cancellation"),
    "event_kind_moved": ("引越し", "moved"),
    "event_kind_married": ("結婚", "married"),
    "event_kind_household_change": ("世帯の変化", "household changed"),
    "event_kind_referral": ("紹介", "referral"),
    "call_holdout_called_anyway": ("ホールドアウトのうち {n}人はリストの外で架電されています。",
                                   "{n} of the held out were called anyway, outside the lists."),
}

# a period's KPIs against the previous period and last year (`kizuna kpi --compare`, the overview's tiles)
_LABELS |= {
    "money.exact": ("¥{n}", "¥{n}"),
    "money.medium": ("{n}万円", "¥{n}M"),
    "money.large": ("{n}億円", "¥{n}B"),
    "change.percent": ("{n}%", "{n}%"),
    "change.points": ("{n}pt", "{n} pt"),
    "title_kpi_compare": ("主要指標の比較: {period}", "Key figures compared: {period}"),
    "period_month": ("{y}年{m}月", "{y}-{m:02d}"),
    "period_days": ("{start} – {end}", "{start} – {end}"),
    "kpi_previous": ("前期", "previous period"),
    "kpi_previous_change": ("前期比", "vs previous period"),
    "kpi_last_year": ("前年同期", "same period last year"),
    "kpi_last_year_change": ("前年同期比", "vs same period last year"),
    "kpi_previous_month": ("前月", "previous month"),
    "kpi_previous_month_change": ("前月比", "vs last month"),
    "kpi_last_year_month": ("前年同月", "same month last year"),
    "kpi_last_year_month_change": ("前年同月比", "vs a year ago"),
    "kpi_tiles_period": ("{period}の実績 (月末時点)", "{period} (at the end of the month)"),
    "new_buyers": ("新規購入顧客数", "new customers"),
    "no_prior": ("前期の値がないため比較できません", "nothing to compare with"),
}

# the manager's report (`kizuna report`, kizuna.reporting)
_LABELS |= {
    "report.title": ("月次レポート {period}", "Monthly report {period}"),
    "report.meta": ("対象期間 {start} – {end} ・ 作成 {made} (kizuna)",
                    "Period {start} – {end} · made {made} (kizuna)"),
    "report.kpis": ("主要指標", "Key figures"),
    "report.kpi_note": (
        "売上・注文・購入顧客数・平均購入単価・リピート率・購入頻度は期間内の注文、平均LTVとNPSは期間末時点、"
        "定期解約率は期間初めの契約に対する期間内の解約です。率とNPSの変化はポイント (pt) 差です。",
        "Revenue, orders, ordering customers, AOV, repeat rate and purchase frequency count the period's orders; "
        "mean LTV and NPS are as of its end; subscription churn is the period's cancellations of the subscriptions "
        "active at its start. Changes of rates and of the NPS are differences in points (pt)."),
    "report.revenue_by_month": ("月別売上 (直近13か月、当月と前年同月を強調)",
                                "Revenue by month (last 13 months; this month and a year before highlighted)"),
    "report.matrix": ("NPS × LTV マトリクスと前期からの移動", "NPS × LTV matrix and the moves since last period"),
    "report.churn_to_loyal": (
        "離脱候補者 → ロイヤルカスタマー: {start} の離脱候補者 {of} 人のうち {n} 人 ({share}) が "
        "{end} にロイヤルカスタマー",
        "Churn candidates → loyal: {n} of the {of} churn candidates on {start} ({share}) were loyal on {end}"),
    "report.change": ("増減", "change"),
    "report.flow": ("セグメント間の移動: {start} → {end}", "Moves between segments: {start} → {end}"),
    "report.lost": ("期間中に離脱した顧客 (理由別)", "Customers lost in the period, by reason"),
    "report.lost_reason": ("離脱理由", "reason"),
    "report.lost_ltv": ("累計売上 (LTV)", "their lifetime revenue"),
    "report.lost_chart": ("理由別の離脱顧客数", "Customers lost, by reason"),
    "report.no_lost": ("期間中に離脱した顧客はいません。", "No customer was lost in the period."),
    "report.lost_note": (
        "離脱: 期間末に「離脱」または「定期解約済み」で、離脱日が期間内の顧客。理由は期間末時点の判定です。",
        "Lost: lost or subscription cancelled at the period's end, and lost on a day within it; the reason as of "
        "the period's end."),
    "report.value_at_risk": ("離脱リスク金額", "Value at risk"),
    "report.value_at_risk_lead": (
        "稼働中・離脱の兆しの顧客 {n} 人の離脱リスク金額は合計 {total}、うち離脱確率 {p}% 以上の顧客は {high} 人です。",
        "The {n} active or at-risk customers put {total} at risk; {high} of them have a churn risk of {p}% or more."),
    "report.value_at_risk_yen": ("離脱リスク金額", "value at risk"),
    "report.value_at_risk_chart": ("セグメント別の離脱リスク金額", "Value at risk by segment"),
    "report.value_at_risk_note": (
        "{day} 時点の予測 (kizuna predict、今後 {days} 日)。離脱リスク金額 = 離脱確率 × 予測CLV。",
        "Predicted as of {day} (kizuna predict, the next {days} days). Value at risk = churn risk × predicted CLV."),
    "report.no_predictions": ("予測がありません。kizuna predict を実行すると離脱リスク金額が載ります。",
                              "No predictions yet: run kizuna predict to see the value at risk here."),
    "report.scenarios": ("施策の効果", "What the scenarios achieved"),
    "report.scenarios_chart": ("施策ごとの効果 (介入群と対照群のCV率の差、95%区間)",
                               "Uplift per scenario (treated minus control conversion, 95% interval)"),
    "report.scenarios_note": (
        "開始から {day} までの累計。区間が0をまたぐ施策は、まだ効果があるとは言えません。",
        "Since each scenario started, up to {day}. A scenario whose interval spans 0 has not shown an effect yet."),
    "report.no_scenarios": ("まだ施策の送信記録がありません (kizuna run)。",
                            "No scenario has sent anything yet (kizuna run)."),
    "report.calls": ("コールセンター", "Call centre"),
    "report.calls_made": ("架電数", "calls made"),
    "report.kept_rate": ("継続率 (95%区間)", "kept rate (95% interval)"),
    "report.calls_chart": ("トークスクリプト別の継続率 (95%区間)", "Kept rate by talk script (95% interval)"),
    "report.no_calls": ("期間中の架電結果はありません (kizuna calls import)。",
                        "No call outcomes in the period (kizuna calls import)."),
    "report.footer": (
        "指標の定義は kizuna の docs/measures.md にあります。このファイルは外部のデータを読み込みません。",
        "The figures are defined in kizuna's docs/measures.md. This file loads nothing from elsewhere."),
    "report.mail_intro": ("{period} の月次レポートを添付します (PDF と HTML)。", "The monthly report for {period} is "
                          "attached (PDF and HTML)."),
    "report.mail_line": ("{name}: {value} ({previous} {change}、{last_year} {year_change})",
                         "{name}: {value} ({previous} {change}, {last_year} {year_change})"),
    "report.written": ("レポート", "report"),
    "report.sent_by_mail": ("メール送信", "e-mailed"),
    "report.mailed": ("{n} 人に送信しました: {to}", "sent to {n}: {to}"),
}

# models that did not fit the data (`kizuna predict`, `backtest`, `priority`, the web pages; issue #18)
_LABELS |= {
    "fit_failed_bg_nbd": (
        "BG/NBDモデルはこのデータでは収束しませんでした ({reason}): 稼働確率・期待購入回数・次回購入予定日・CLV・"
        "離脱リスク金額は空欄です。離脱確率は離脱モデルだけで求めています。",
        "BG/NBD did not converge on this data ({reason}): P(alive), expected orders, next order date, CLV and "
        "value at risk are left empty; churn risk comes from the churn model alone.",
    ),
    "fit_failed_gamma_gamma": (
        "Gamma-Gammaモデルはこのデータでは収束しませんでした ({reason}): 期待購入単価は各顧客の平均購入単価 "
        "(リピートのない顧客は全体の平均) です。",
        "Gamma-Gamma did not converge on this data ({reason}): the expected order value is each customer's own "
        "average order value (the overall average for customers without repeat orders).",
    ),
    "fit_failed_shifted_beta_geo": (
        "sBGモデルは定期購入の継続データでは収束しませんでした ({reason}): 解約確率は空欄です。",
        "sBG did not converge on the subscriptions ({reason}): the cancellation probability is left empty.",
    ),
    "fit_partial_bg_nbd": (
        "{n}人の顧客はBG/NBDの値が計算できなかったため、稼働確率・期待購入回数・CLV・離脱リスク金額が空欄です。",
        "{n} customers' P(alive), expected orders, CLV and value at risk could not be computed and are left empty.",
    ),
    "fit_reason_no_dropout": ("{span}間だれも離脱していません", "nobody has dropped out in {span}"),
    "fit_reason_no_cancellation": ("解約した人がいません", "nobody has cancelled"),
    "fit_reason_no_repeat_buyers": ("リピート購入した顧客がいません", "no customer has a repeat order"),
    "fit_reason_no_time": ("観察期間がありません", "no time has been observed"),
    "fit_reason_diverged": ("パラメータが0か無限大に発散します", "its parameters run off to 0 or infinity"),
    "fit_reason_not_identified": ("データからパラメータが定まりません", "the data do not pin its parameters down"),
    "fit_reason_not_converged": ("最適化が収束しません", "the optimiser does not converge"),
    "span_years": ("{n}年", "{n} years"),
    "span_days": ("{n}日", "{n} days"),
    "not_computed": ("計算できません", "not computed"),
    "not_computed_hint": ("モデルがこのデータに収束しなかったため空欄です (kizuna predict の注意を参照)",
                          "left empty: the model did not converge on this data (see kizuna predict)"),
    "call_list_no_value_at_risk": (
        "離脱リスク金額が計算できなかったため (kizuna predict の注意を参照)、離脱確率の高い順に並べています。",
        "Value at risk could not be computed (see kizuna predict), so the list is ordered by churn risk.",
    ),
}

# the web app's page words (kizuna.web: templates call t("key"))
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
    "address": ("住所", "address"),
    "signed_up": ("登録日", "signed up"),
    "opt_ins": ("配信許諾", "opt-ins"),
    "web.choose_list": ("一覧にするセグメントか、R × F のセルを選んでください。", "choose a segment or an R × F cell"),
    "date_out_of_range": ("アドレスの日付が範囲外です。{first} … {last} の日付を指定してください。",
                          "A date in the address is out of range: give one from {first} to {last}."),
}

# scenario result columns (the web app's results page)
_RESULT_COLUMNS: dict[str, tuple[str, str]] = {
    "scenario": ("施策", "scenario"), "step": ("ステップ", "step"), "channel": ("チャネル", "channel"),
    "due": ("予定", "due"), "sent": ("送信", "sent"), "delivered": ("配信", "delivered"), "failed": ("失敗", "failed"),
    "deferred": ("延期", "deferred"), "suppressed": ("抑止", "suppressed"), "holdout": ("対照群", "holdout"),
    "treated_customers": ("介入群", "treated"), "control_customers": ("対照群人数", "control"),
    "treated_rate": ("介入群CV率", "treated rate"), "control_rate": ("対照群CV率", "control rate"),
    "uplift": ("効果 (95%区間)", "uplift (95% interval)"), "incremental_orders": ("増分注文", "incremental orders"),
    "incremental_revenue": ("増分売上", "incremental revenue"),
}

# Segment names (docs/measures.md §2): id -> (ja, en)
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
# the lifecycle states as segments (`kizuna segments --by lifecycle`, `kizuna export lifecycle_at_risk`)
SEGMENT_LABELS |= {key: pair for key, pair in _LABELS.items()
                   if key.startswith("lifecycle_") and key != "lifecycle_state"}

# -- exported customer lists (kizuna.exporting) ---------------------------------------------------
_LISTS: dict[str, tuple[str, str]] = {
    "header.customer_id": ("顧客ID", "customer id"), "header.name": ("氏名", "name"),
    "header.name_kana": ("フリガナ", "name (kana)"), "header.email": ("メールアドレス", "e-mail"),
    "header.phone": ("電話番号", "phone"), "header.postal_code": ("郵便番号", "postal code"),
    "header.address": ("住所", "address"), "header.ltv_revenue": ("LTV (円)", "LTV (yen)"),
    "header.orders": ("購入回数", "orders"), "header.last_order_at": ("最終購入日", "last order"),
    "header.recency_days": ("最終購入からの日数", "days since last order"),
    "header.nps_score": ("NPS回答", "NPS answer"), "header.nps_class": ("NPS区分", "NPS class"),
    "header.matrix_cell": ("NPS×LTV", "NPS x LTV cell"), "header.rfm_rank": ("RFMランク", "RFM rank"),
    "header.reason": ("リスト掲載理由", "why on this list"),
    "header.churn_risk": ("離脱確率 %", "churn risk %"),
    "header.value_at_risk": ("離脱リスク金額 (円)", "value at risk (yen)"),
    "header.churn_reasons": ("離脱リスクの主な理由", "main reasons for the risk"),
    # "why on this list"
    "list.missing": ("不足: {missing}", "missing: {missing}"),
    "list.and": ("・", "・"),
    "list.lapsing": ("最終購入から{days}日 (平均間隔{interval:.0f}日)",
                     "{days} days since last order (usual interval {interval:.0f})"),
}
# the workbooks and lists for people (kizuna._sheets): sheet names, the title row, the lists `kizuna run`
# writes for the offline channels, the rejects of an import
_LISTS |= {
    "sheet.customer_list": ("顧客リスト_{segment}", "Customers_{segment}"),
    "sheet.call_list": ("架電リスト", "Call list"),
    "sheet.dm_list": ("DM宛名リスト", "DM address list"),
    "sheet.insert_list": ("同梱物リスト", "Parcel insert list"),
    "sheet.rejects": ("取込エラー", "Import errors"),
    "sheet.as_of": ("基準日 {day}", "as of {day}"),
    "sheet.addressee": ("{name} 様", "{name}"),
    "stdout": ("標準出力", "standard output"),
    "header.addressee": ("宛名", "addressee"), "header.scenario": ("シナリオ", "scenario"),
    "header.step": ("ステップ", "step"), "header.dm_content": ("DMの内容", "direct mail text"),
    "header.insert_content": ("同梱物の内容", "insert text"), "header.script": ("トークスクリプト", "talk script"),
    "header.order_id": ("同梱する注文", "order to pack it with"), "header.ordered_on": ("注文日", "order date"),
    "header.expected_next_order_on": ("次回注文予測日", "expected next order"),
    "header.reject_file": ("ファイル", "file"), "header.reject_row": ("行", "row"),
    "header.reject_column": ("列", "column"), "header.reject_value": ("値", "value"),
    "header.reject_reason": ("却下理由", "reason"),
}

# -- churn reasons (kizuna.prediction: reason_texts) ----------------------------------------------
# {n}, {days}, {hours}: whole numbers with thousands separators; {yen}: ¥1,234; {since}: a date;
# {ago}, {span}: one of the reason.ago_* / span_* texts; {month}: `ordinal`.
_REASONS: dict[str, tuple[str, str]] = {
    "reason.last_order_unknown": ("最終購入日が不明", "date of the last order unknown"),
    "reason.overdue": ("最終購入から{days}日 (通常の間隔の{ratio:.1f}倍)",
                       "no order for {days} days, {ratio:.1f} times the usual interval"),
    "reason.overdue_one": ("最終購入から{days}日 (通常の間隔の{ratio:.1f}倍)",
                           "no order for {days} day, {ratio:.1f} times the usual interval"),
    "reason.overdue_single_order": ("最終購入から{days}日 (購入は1回のみ)",
                                    "no order for {days} days, after a single order"),
    "reason.overdue_single_order_one": ("最終購入から{days}日 (購入は1回のみ)",
                                        "no order for {days} day, after a single order"),
    "reason.orders_unknown": ("購入回数が不明", "number of orders unknown"),
    "reason.one_order": ("購入は初回の1回のみ", "only one order so far"),
    "reason.orders": ("通算購入{n}回", "{n} orders in total"),
    "reason.orders_one": ("通算購入{n}回", "{n} order in total"),
    "reason.orders_365d_unknown": ("過去1年の購入回数が不明", "orders of the last year unknown"),
    "reason.orders_365d_down": ("過去1年の購入{n}回 (以前は年{before}回)",
                                "{n} orders in the last year, down from {before} a year before"),
    "reason.orders_365d_down_one": ("過去1年の購入{n}回 (以前は年{before}回)",
                                    "{n} order in the last year, down from {before} a year before"),
    "reason.no_order_365d": ("過去1年の購入なし", "no order in the last year"),
    "reason.orders_365d": ("過去1年の購入{n}回", "{n} orders in the last year"),
    "reason.orders_365d_one": ("過去1年の購入{n}回", "{n} order in the last year"),
    "reason.revenue_unknown": ("通算購入額が不明", "total spend unknown"),
    "reason.revenue": ("通算購入額{yen}", "{yen} spent in total"),
    "reason.revenue_365d_unknown": ("過去1年の購入額が不明", "spend of the last year unknown"),
    "reason.revenue_365d_down": ("過去1年の購入額{yen} (以前は年{before})",
                                 "{yen} spent in the last year, down from {before} a year before"),
    "reason.revenue_365d": ("過去1年の購入額{yen}", "{yen} spent in the last year"),
    "reason.no_repeat_order": ("リピート購入なし", "no repeat order yet"),
    "reason.interval": ("購入間隔が平均{days}日", "orders {days} days apart on average"),
    "reason.interval_one": ("購入間隔が平均{days}日", "orders {days} day apart on average"),
    "reason.tenure_unknown": ("利用期間が不明", "time as a customer unknown"),
    "reason.tenure": ("利用開始から{span}", "a customer for {span}"),
    "reason.nps": ("NPS {n}", "NPS {n}"),
    "reason.no_nps": ("NPS未回答", "no NPS answer"),
    "reason.nps_fell": ("NPSが{before}から{score}に低下", "NPS fell from {before} to {score}"),
    "reason.nps_rose": ("NPSが{before}から{score}に上昇", "NPS rose from {before} to {score}"),
    "reason.nps_unchanged": ("NPS {score} (前回と同じ)", "NPS unchanged at {score}"),
    "reason.contacts": ("過去1年の問い合わせ{n}件", "{n} support contacts in the last year"),
    "reason.contacts_one": ("過去1年の問い合わせ{n}件", "{n} support contact in the last year"),
    "reason.contacts_unknown": ("問い合わせ件数が不明", "support contacts unknown"),
    "reason.complaints": ("過去1年のクレーム{n}件", "{n} complaints in the last year"),
    "reason.complaints_one": ("過去1年のクレーム{n}件", "{n} complaint in the last year"),
    "reason.nothing_unresolved": ("未解決の問い合わせなし", "no unresolved support request"),
    "reason.unresolved_complaints": ("未解決のクレーム{n}件", "{n} unresolved complaints"),
    "reason.unresolved_complaints_one": ("未解決のクレーム{n}件", "{n} unresolved complaint"),
    "reason.unresolved_requests": ("未解決の問い合わせ{n}件", "{n} unresolved support requests"),
    "reason.unresolved_requests_one": ("未解決の問い合わせ{n}件", "{n} unresolved support request"),
    "reason.unresolved_complaints_since": ("{since}から未解決のクレーム{n}件",
                                           "{n} unresolved complaints, the first since {since}"),
    "reason.unresolved_requests_since": ("{since}から未解決の問い合わせ{n}件",
                                         "{n} unresolved support requests, the first since {since}"),
    "reason.unresolved_complaint_since": ("{since}から未解決のクレーム", "unresolved complaint since {since}"),
    "reason.unresolved_request_since": ("{since}から未解決の問い合わせ", "unresolved support request since {since}"),
    "reason.nothing_resolved": ("解決済みの問い合わせなし", "no support request resolved"),
    "reason.resolved_quickly": ("問い合わせあり (平均{hours}時間で解決)",
                                "needed support (resolved in {hours} hours on average)"),
    "reason.resolved_quickly_one": ("問い合わせあり (平均{hours}時間で解決)",
                                    "needed support (resolved in {hours} hour on average)"),
    "reason.resolution": ("問い合わせの解決に平均{hours}時間", "support took {hours} hours on average to resolve"),
    "reason.resolution_one": ("問い合わせの解決に平均{hours}時間", "support took {hours} hour on average to resolve"),
    "reason.contacted": ("{ago}に問い合わせ", "contacted support {ago}"),
    "reason.never_contacted": ("問い合わせなし", "never contacted support"),
    "reason.subscriber": ("定期購入中", "on a subscription"),
    "reason.no_subscription": ("定期購入なし", "no subscription"),
    "reason.subscription_month": ("定期購入{month}か月目", "subscription in its {month} month"),
    "reason.no_life_event": ("生活の変化なし", "no change in life"),
    "reason.life_event": ("{ago}に{event}", "{event} {ago}"),
    "reason.typical": ("目立つ要因なし (似た顧客と同程度のリスク)",
                       "no single factor stands out (a risk typical of similar customers)"),
    "reason.already_left": ("離脱済みのため算出していません", "not looked for: the customer has already left"),
    "reason.ago_days": ("{n}日前", "{n} days ago"), "reason.ago_days_one": ("{n}日前", "{n} day ago"),
    "reason.ago_months": ("{n}か月前", "{n} months ago"), "reason.ago_months_one": ("{n}か月前", "{n} month ago"),
    "reason.ago_years": ("{n}年前", "{n} years ago"), "reason.ago_years_one": ("{n}年前", "{n} year ago"),
    "span_days_one": ("{n}日", "{n} day"),
    "span_months": ("{n}か月", "{n} months"), "span_months_one": ("{n}か月", "{n} month"),
    "span_years_one": ("{n}年", "{n} year"),
    # the latest life event's kind (events.kind); English a past participle phrase: "moved 3 months ago"
    "life_event.moved": ("引越し", "moved"),
    "life_event.married": ("結婚", "married"),
    "life_event.household_change": ("世帯の変化", "household changed"),
    "life_event.plan_change": ("プラン変更", "changed plan"),
    "life_event.other": ("生活の変化", "life changed"),
}

# -- the backtest chart (kizuna.prediction: write_holdout_chart) ----------------------------------
_CHART: dict[str, tuple[str, str]] = {
    "chart.title": ("較正期間の購入回数別: 予測と実績 (検証期間)",
                    "Holdout purchases by calibration frequency: predicted vs actual"),
    "chart.x": ("較正期間のリピート購入回数", "Repeat purchases in the calibration period"),
    "chart.y": ("検証期間の平均購入回数", "Mean purchases in the holdout period"),
    "chart.actual": ("実績", "Actual"),
    "chart.predicted": ("予測", "Predicted"),
    "chart.font_system": ("グラフ用の日本語フォント (noto-cjk-sans-jp-regular) が入っていないため、"
                          "システムのフォント {family} ({file}) を使います。",
                          "The charts' Japanese font (noto-cjk-sans-jp-regular) is not installed: they use "
                          "the system's {family} ({file})."),
    "chart.font_missing": ("日本語フォントがないため、グラフの日本語は表示されません。"
                           "`pip install noto-cjk-sans-jp-regular` を実行してください。",
                           "No Japanese font: the charts' Japanese labels will not show. "
                           "Run `pip install noto-cjk-sans-jp-regular`."),
}

# -- kizuna ranks suggest (kizuna.analytics.suggest_ranks) ------------------------------------------
_RANKS: dict[str, tuple[str, str]] = {
    "ranks.title": ("RFMランク基準の提案 ({as_of} 時点、直近{days:,}日に購入した{customers:,}人の分布から)",
                    "Suggested RFM rank thresholds (as of {as_of}, from the {customers:,} customers who ordered "
                    "in the last {days:,} days)"),
    "ranks.rank": ("ランク", "rank"),
    "ranks.max_recency_days": ("最終購入 (日以内)", "last order within (days)"),
    "ranks.min_orders": ("購入回数 (以上)", "orders (at least)"),
    "ranks.min_revenue": ("購入金額 (円以上)", "revenue (yen, at least)"),
    "ranks.top_share": ("上位 %", "top %"),
    "ranks.customers": ("顧客数", "customers"),
    "ranks.customer_share": ("顧客シェア %", "customer share %"),
    "ranks.revenue": ("売上 (円)", "revenue (yen)"),
    "ranks.revenue_share": ("売上シェア %", "revenue share %"),
    "ranks.current_customers": ("現在の基準での顧客数", "customers now"),
    "ranks.current_revenue_share": ("現在の基準での売上シェア %", "revenue share now %"),
    "ranks.written": ("{path} の [analysis] rfm_ranks に書き込みました。`kizuna analyze` で反映されます。",
                      "Written to [analysis] rfm_ranks in {path}. Run `kizuna analyze` to rank by them."),
    "ranks.not_written": ("書き込むには --write を付けて実行してください。",
                          "Add --write to write them into kizuna.toml."),
    "ranks.hint": ("RFMランクの基準は初期値 (ロイヤル: 50万円・15回以上) のままです。"
                   "`kizuna ranks suggest` でこの店舗の分布に合った基準を確認できます。",
                   "The RFM ranks are still the defaults (loyal: ¥500,000 and 15 orders). "
                   "`kizuna ranks suggest` proposes thresholds that fit this shop."),
    "ranks.init": ("ストアの注文から RFMランクの基準を設定しました (`kizuna ranks suggest` で確認できます)。",
                   "RFM rank thresholds set from the store's orders (see `kizuna ranks suggest`)."),
}

# -- kizuna forget (個人情報保護法) -----------------------------------------------------------------
_FORGET: dict[str, tuple[str, str]] = {
    "forget.confirm": ("顧客 {id} の個人情報(氏名・連絡先・住所・コメント)を消去し、顧客IDを仮名に置き換えます。"
                       "元に戻せません。続けますか?",
                       "Erase the personal data of customer {id} (name, contact details, address, comments) and "
                       "replace the id by a pseudonym? This cannot be undone."),
    "forget.needs_yes": ("確認の応答がありません。確認なしで実行するには --yes を付けてください。",
                         "no answer to the confirmation; add --yes to erase without asking."),
    "forget.cancelled": ("中止しました。何も変更していません。", "cancelled; nothing was changed."),
    "forget.done": ("顧客 {id} の個人情報を消去しました。注文数・売上・NPSの集計値はそのまま残ります。",
                    "Customer {id} erased. Order counts, revenue and NPS figures are kept, under a pseudonym."),
    "forget.where": ("変更した場所", "where"), "forget.what": ("変更内容", "what changed"),
    "forget.store_rows": ("{n} 行を仮名化し個人情報を消去", "{n} rows under the pseudonym, personal data nulled"),
    "forget.store_rows_one": ("{n} 行を仮名化し個人情報を消去", "{n} row under the pseudonym, personal data nulled"),
    "forget.deliveries": ("{n} 行: 顧客IDとキーを仮名に", "{n} rows: customer id and key under the pseudonym"),
    "forget.deliveries_one": ("{n} 行: 顧客IDとキーを仮名に", "{n} row: customer id and key under the pseudonym"),
    "forget.survey_links": ("{n} 行を仮名に", "{n} rows under the pseudonym"),
    "forget.survey_links_one": ("{n} 行を仮名に", "{n} row under the pseudonym"),
    "forget.survey_answers": ("{n} 行を仮名に、コメントを削除", "{n} rows under the pseudonym, comments removed"),
    "forget.survey_answers_one": ("{n} 行を仮名に、コメントを削除", "{n} row under the pseudonym, comments removed"),
    "forget.memberships": ("{n} 行を削除", "{n} rows deleted"),
    "forget.memberships_one": ("{n} 行を削除", "{n} row deleted"),
    "forget.consents": ("{n} 件の配信停止を顧客IDでなく鍵付きハッシュで保持",
                        "{n} opt-outs kept under a keyed hash, not the id"),
    "forget.consents_one": ("{n} 件の配信停止を顧客IDでなく鍵付きハッシュで保持",
                            "{n} opt-out kept under a keyed hash, not the id"),
    "forget.list_rows": ("{n} 行を削除", "{n} rows removed"),
    "forget.list_rows_one": ("{n} 行を削除", "{n} row removed"),
    "forget.rejects_lines": ("{n} 行を削除", "{n} lines removed"),
    "forget.rejects_lines_one": ("{n} 行を削除", "{n} line removed"),
    "forget.rewritten": ("新しいファイルに書き直し、置き換え(古いブロックは残らない)",
                         "copied into a new file that replaced it (no old block left)"),
    "forget.vacuum_full": ("変更したテーブルを VACUUM FULL (ファイルはサーバー側、ワークスペースにはない)",
                           "VACUUM FULL of the tables changed (its files are the server's, none in the workspace)"),
    "forget.tables_rewritten": ("テーブルを丸ごと書き直し済み", "tables rewritten whole"),
    "forget.in_memory": ("メモリ上のストア: ファイルなし", "a store in memory: no file"),
    "forget.vacuum": ("VACUUM で書き直し、WAL を空に", "rewritten by VACUUM, its WAL emptied"),
    "forget.vacuum_wal_busy": ("他のプロセスが使用中で WAL を空にできません: 次の kizuna コマンドで再試行します",
                               "in use by another process, its WAL not emptied: the next kizuna command tries again"),
}

# -- the pages customers reach: survey, unsubscribe (kizuna.web public endpoints) ----------------
_PUBLIC: dict[str, tuple[str, str]] = {
    "public.title_survey": ("アンケートのお願い", "A quick question"),
    "public.survey": ("いつもご利用ありがとうございます。1問だけのアンケートにご協力ください。",
                      "Thank you for being our customer. Would you answer one question?"),
    "public.question": ("この商品・サービスを友人や家族にすすめる可能性は、0〜10でどのくらいですか?",
                        "How likely are you to recommend us to a friend or family member, from 0 to 10?"),
    "public.not_likely": ("0 = まったくすすめない", "0 = not at all likely"),
    "public.very_likely": ("10 = ぜひすすめたい", "10 = extremely likely"),
    "public.comment": ("よろしければ、理由をお聞かせください(任意)", "Would you tell us why? (optional)"),
    "public.send": ("回答を送信する", "Send my answer"),
    "public.error_score": ("0〜10の中から1つ選んでください。", "Please choose a number from 0 to 10."),
    "public.error_comment": ("コメントは{n}文字以内でお願いします。", "Please keep the comment within {n} characters."),
    "public.title_thanks": ("ご回答ありがとうございました", "Thank you for your answer"),
    "public.thanks": ("いただいたご意見は、サービスの改善に活用させていただきます。",
                      "Your feedback helps us improve."),
    "public.title_answered": ("回答済みです", "Already answered"),
    "public.answered": ("このアンケートには、すでにご回答いただいています。ありがとうございました。",
                        "This survey has been answered already. Thank you."),
    "public.title_expired": ("リンクの有効期限が切れています", "This link has expired"),
    "public.expired": ("このアンケートの回答期限は過ぎました。ご協力ありがとうございました。",
                       "The time to answer this survey is over. Thank you all the same."),
    "public.title_not_found": ("ページが見つかりません", "Page not found"),
    "public.not_found": ("リンクが正しくないか、すでに無効になっています。",
                         "This link is not valid, or no longer works."),
    "public.title_forged": ("送信できませんでした", "Your answer could not be sent"),
    "public.forged": ("お手数ですが、メッセージのリンクをもう一度開いてからご回答ください。",
                      "Please open the link in the message again and answer from there."),
    "public.title_too_large": ("送信できませんでした", "Could not be sent"),
    "public.too_large": ("送信された内容が大きすぎます。", "What was sent is too large."),
    "public.title_rate_limited": ("しばらくしてからお試しください", "Please try again shortly"),
    "public.rate_limited": ("短時間にアクセスが集中しました。1分ほどお待ちください。",
                            "Too many requests in a short time. Please wait a minute."),
    "public.title_unsubscribe": ("配信停止", "Unsubscribe"),
    "public.unsubscribe": ("{channel}の配信を停止します。よろしければボタンを押してください。",
                           "Stop messages by {channel}? Press the button to confirm."),
    "public.unsubscribe_button": ("配信を停止する", "Unsubscribe"),
    "public.title_unsubscribed": ("配信を停止しました", "You are unsubscribed"),
    "public.unsubscribed": ("今後、{channel}でのご案内はお送りしません。",
                            "We will not send you messages by {channel} any more."),
    "public.channel_email": ("メール", "e-mail"), "public.channel_line": ("LINE", "LINE"),
    "public.channel_other": ("ご案内", "this channel"),
    "public.language": ("English", "日本語"),
}

# -- the e-mail footer 特定電子メール法 asks for (kizuna.delivery) ----------------------------------
_EMAIL: dict[str, tuple[str, str]] = {
    "email.contact": ("お問い合わせ: {contact}", "Contact: {contact}"),
    "email.stop": ("配信停止をご希望の方は、次のページから手続きできます。",
                   "To stop receiving these e-mails, unsubscribe here:"),
    "email.stop_link": ("配信停止の手続き", "Unsubscribe"),
    "email.sender": ("発行元: {sender}", "Sent by {sender}"),
    "email.address": ("所在地: {address}", "Address: {address}"),
}


# -- codes in words: values of the data that people see (timelines, lists, tables) ----------------------
_CODES: dict[str, tuple[str, str]] = {
    # orders.channel (sales channels); other values are the shop's own words, shown as they are
    "sales_channel.web": ("ECサイト", "online shop"), "sales_channel.app": ("アプリ", "app"),
    "sales_channel.phone": ("電話注文", "phone order"), "sales_channel.shop": ("店舗", "shop"),
    "sales_channel.store": ("店舗", "store"), "sales_channel.catalog": ("カタログ", "catalogue"),
    "sales_channel.fax": ("FAX", "fax"), "sales_channel.line": ("LINE", "LINE"),
    # orders.status, support_contacts.status
    "order_status.completed": ("完了", "completed"), "order_status.cancelled": ("キャンセル", "cancelled"),
    "order_status.returned": ("返品", "returned"),
    "support_status.open": ("未解決", "open"), "support_status.resolved": ("解決済み", "resolved"),
    # what became of a message (the ledger's deliveries.status) and its group
    "delivery_status.scheduled": ("予定", "scheduled"), "delivery_status.deferred": ("保留", "deferred"),
    "delivery_status.resend": ("再送待ち", "to resend"), "delivery_status.sending": ("送信中", "sending"),
    "delivery_status.committing": ("送信中", "sending"), "delivery_status.sent": ("送信済み", "sent"),
    "delivery_status.delivered": ("到達", "delivered"), "delivery_status.failed": ("失敗", "failed"),
    "delivery_status.suppressed": ("配信停止等", "suppressed"),
    "delivery_status.cancelled": ("目標達成", "goal reached"),
    "delivery_status.merged": ("統合", "merged"), "delivery_status.unconfirmed": ("未確認", "unconfirmed"),
    "delivery_status.holdout": ("対照群", "control group"), "delivery_status.listed": ("リスト出力", "listed"),
    "delivery_group.treated": ("介入群", "treated"), "delivery_group.control": ("対照群", "control group"),
    "delivery_group.holdout": ("対照群", "control group"),
    "delivery_group.global_control": ("全体対照群", "global control"),
    # what a file holds (import kinds)
    "kind.customers": ("顧客", "customers"), "kind.products": ("商品", "products"), "kind.orders": ("注文", "orders"),
    "kind.order-items": ("注文明細", "order items"), "kind.nps": ("NPS回答", "NPS answers"),
    "kind.support": ("問い合わせ", "support contacts"), "kind.events": ("顧客イベント", "profile events"),
    "kind.calls": ("架電結果", "call outcomes"),
}

# -- errors a person meets: settings, scenarios, imports, the run (kizuna._errors.Phrase) ----------
_ERRORS: dict[str, tuple[str, str]] = {
    "error.prefix": ("エラー", "error"),
    # mistakes on the command line (kizuna.cli._app.mistake), and the pointer to the command's help after them
    "usage.with_help": ("{message}。`{command} --help` を参照してください。", "{message}. See `{command} --help`."),
    "usage.one_of": ("{option} は {choices} のいずれかにしてください", "{option} must be one of {choices}"),
    "usage.not_a_date": ("{option} '{value}' は日付ではありません。YYYY-MM-DD の形で書いてください",
                         "{option} '{value}' is not a date; write YYYY-MM-DD"),
    "usage.not_a_month": ("--period '{value}' は年月ではありません。YYYY-MM の形で書いてください（例: 2026-10）",
                          "--period '{value}' is not a month; write YYYY-MM, e.g. 2026-10"),
    "usage.from_before_to": ("--from {first} は --to {last} より前の日にしてください。--from を早めてください",
                             "--from {first} must be before --to {last}; give an earlier --from"),
    "usage.import_arguments": ("[種類] ファイル、またはフォルダーを1つ指定してください",
                               "give [KIND] FILE, or a folder"),
    "usage.unknown_kind": ("種類 '{kind}' はありません。{kinds} のいずれかにするか、省略してください",
                           "unknown kind '{kind}'; choose one of {kinds}, or leave it out"),
    "usage.kind_with_folder": (
        "{path} はフォルダーです。種類を付けずに取り込むか（各ファイルの種類は見出しから判断します）、"
        "ファイルを1つ指定してください",
        "{path} is a folder: import it without KIND (each file's kind is told from its headers), or name one file"),
    "usage.header_row_with_folder": (
        "{path} はフォルダーです。--header-row は1つのファイル用です"
        "（フォルダーでは各ファイルの見出し行を自動で見つけます）",
        "{path} is a folder: --header-row is for one file (in a folder, each file's header row is found by itself)"),
    "usage.segment_or_saved": ("セグメント名か --segment NAME（保存したセグメント）のどちらか一方を指定してください",
                               "give a SEGMENT or --segment NAME (a saved segment), one of them"),
    "usage.calls_folder": ("{path} はフォルダーです。通話結果のファイルを1つ指定してください",
                           "{path} is a folder: name one file of calls"),
    "usage.chart_file": ("--chart {path}: 既存のフォルダー内のファイル名を指定してください（例: migration.svg）",
                         "--chart {path}: give a file name in an existing folder, e.g. migration.svg"),
    "usage.top_shares": ("--top '{value}': パーセントをカンマ区切りで指定してください（例: 1,5,15）",
                         "--top '{value}': give percentages separated by commas, e.g. 1,5,15"),
    "usage.output_is_file": ("--output {path} はファイルです。レポートを書き出すフォルダーを指定してください",
                             "--output {path} is a file: give a folder for the report's files"),
    "usage.calls_without_name": ("--calls にはシナリオ名を付けません", "--calls takes no scenario name"),
    "usage.since_with_calls": ("--since は --calls と一緒に使います", "--since goes with --calls"),
    "usage.no_where": ("--where の条件を1つ以上指定してください", "give at least one --where condition"),
    "usage.test_address": ("--to ADDRESS（メールのステップ）か --line USER_ID（LINE のステップ）の"
                           "どちらかを指定してください",
                           "give --to ADDRESS (an e-mail step) or --line USER_ID (a LINE step)"),
    "usage.user_name_length": ("ユーザー名は1〜64文字にしてください", "the user name must be 1 to 64 characters"),
    "usage.no_variants": ("このキャンペーンにはバリアントがありません。--variant を外してください",
                          "this campaign has no variants; leave out --variant"),
    "list.separator": ("、", ", "),
    "error.in_file": ("{path}: {problem}", "{path}: {problem}"),
    "error.column_problem": ("{column}: {problem}", "{column}: {problem}"),
    # the workspace folder and the days and horizons a command is given
    "error.not_a_workspace": (
        "{path} は kizuna のワークスペースではありません ({file} がありません)。`kizuna init DIR` で作成するか、"
        "--dir で既存のワークスペースを指定してください。",
        "{path} is not a kizuna workspace (no {file}). Create one with `kizuna init DIR`, or pass --dir to an "
        "existing one."),
    "error.workspace_is_file": (
        "{path} はフォルダーではなくファイルです。ワークスペースには新しいフォルダーか空のフォルダーを"
        "指定してください。",
        "{path} is a file, not a folder. Give a new or empty folder for the workspace."),
    "error.workspace_exists": (
        "{path} はすでに kizuna のワークスペースです ({file} があります)。--dir で使うか、別のフォルダーを"
        "指定してください。",
        "{path} is already a kizuna workspace ({file} exists). Use it with --dir, or choose another folder."),
    "error.folder_not_created": (
        "フォルダー {path} を作成できません ({problem})。書き込めるフォルダーを指定してください。",
        "cannot create the folder {path} ({problem}). Choose a folder you can write in."),
    "error.day_out_of_range": (
        "日付 {day} は kizuna が計算できる期間 ({first} … {last}) の外です。この期間の日付を指定してください。",
        "the date {day} is outside {first} … {last}, the days kizuna computes on; give a date in that range."),
    "error.horizon_out_of_range": (
        "--horizon {days} は {low} … {high} 日の範囲の外です。この範囲の日数を指定してください。",
        "--horizon {days} is outside {low} … {high} days; give a number of days within them."),
    "error.no_data": ("このワークスペースには{table}がありません。{hint}", "No {table} in this workspace. {hint}"),
    "error.unknown_segment": ("セグメント {name} はありません。次のどれかを指定してください: {known}。",
                              "unknown segment {name}. Choose one of: {known} (ids such as churn_candidate and "
                              "Japanese names such as 離脱候補者 work too)."),
    "error.columns_in_no_sheet": (
        "ブックのどのシート ({sheets}) にも、{table}に必要な列 {columns} がありません。--sheet でシートを指定し、"
        "見出しが違うときは対応付けてください。--mapping FILE.toml で見出しを kizuna の列に対応付けます "
        "([columns] \"あなたの見出し\" = \"{first}\")。",
        "no sheet of the workbook ({sheets}) has the column(s) {columns} for {table}. Name the sheet with --sheet, "
        "and map its headers if they differ. Map your headers onto kizuna's columns with --mapping FILE.toml "
        "([columns] \"your header\" = \"{first}\")."),
    "error.columns_no_header": (
        "1行目が見出しではなくデータのようです。{table}には列 ({columns}) を示す見出し行が必要です。"
        "見出し行を加えるか、見出し付きで書き出してください。",
        "the first row looks like data, not a header: kizuna needs a header row naming the columns ({columns} for "
        "{table}). Add one, or export the file with headers."),
    "error.columns_missing": (
        "{table}に必要な列 {columns} がありません。ファイルの列: {found}。--mapping FILE.toml で見出しを kizuna の"
        "列に対応付けてください ([columns] \"あなたの見出し\" = \"{first}\")。",
        "required column(s) {columns} for {table} not found; the file has {found}. Map your headers onto kizuna's "
        "columns with --mapping FILE.toml ([columns] \"your header\" = \"{first}\")."),
    "error.platform_ambiguous": (
        "見出しが {first} ({first_hits}列が一致) と {second} ({second_hits}列) のどちらにも合います。--platform で"
        "プラットフォームを指定してください ({platforms})。",
        "the headers fit both {first} ({first_hits} of its columns) and {second} ({second_hits}); name the platform "
        "with --platform ({platforms})."),
    "error.platform_unknown": ("プラットフォーム「{platform}」はありません。--platform には次のどれかを"
                               "指定してください: {platforms}。",
                               "unknown platform '{platform}'; --platform takes one of {platforms}."),
    "error.platform_none_fits": ("どのプラットフォームの形式にも合わない注文ファイルです",
                                 "an order export that fits no platform's layout"),
    "error.platform_not_this": ("{platform} のエクスポートではありません", "not a {platform} export"),
    "error.platform_mismatch": (
        "{what}。最も近いのは {closest} ({hits}列が一致) ですが、{lacking} がありません。--platform で"
        "プラットフォームを指定するか ({platforms})、--mapping FILE.toml で列を対応付けてください。",
        "{what}: the closest is {closest} ({hits} of its columns), which lacks {lacking}. Name the platform with "
        "--platform ({platforms}), or map the columns with --mapping FILE.toml."),
    "error.header_row_counted_from_1": ("--header-row {row}: 行は 1 から数えます。",
                                        "--header-row {row}: rows are counted from 1."),
    "error.header_row_parquet": (
        "--header-row は CSV と Excel のファイルに使います。Parquet ファイルは列名を自身で持っています。",
        "--header-row is for CSV and Excel files; a Parquet file names its columns itself."),
    "error.parquet_unreadable": ("読める Parquet ファイルではありません ({problem})。",
                                 "not a readable Parquet file ({problem})."),
    "error.excel_unreadable": ("読める Excel ブックではありません ({problem})。",
                               "not a readable Excel workbook ({problem})."),
    "error.unknown_encoding": (
        "文字コード {encoding} (--encoding) はわかりません。utf-8、cp932 (Shift_JIS)、euc_jp のどれかを指定するか、"
        "指定せずに自動で判定させてください。",
        "unknown encoding {encoding} (--encoding); use utf-8, cp932 (Shift_JIS) or euc_jp, or leave it out to "
        "detect it."),
    "error.encoding_undetected": (
        "ファイルの文字コードを判定できません。UTF-8 (または Shift_JIS) で保存して取り込み直すか、--encoding を"
        "指定してください。",
        "cannot tell the file's character encoding. Save it as UTF-8 (or Shift_JIS) and import it again, or pass "
        "--encoding."),
    "error.header_unreadable": ("見出し行を読めません ({problem})。", "cannot read the header row ({problem})."),
    "error.header_row_missing": (
        "ファイルに {row} 行目 (--header-row {row}) はありません。{rows} 行しかありません。"
        "列名のある行を指定してください。",
        "the file has no row {row} (--header-row {row}); it has {rows} row(s). Give the row that holds the column "
        "names."),
    "error.header_row_missing_in_sheet": (
        "シート {sheet} に {row} 行目 (--header-row {row}) はありません。{rows} 行しかありません。"
        "列名のある行を指定してください。",
        "the sheet {sheet} has no row {row} (--header-row {row}); it has {rows} row(s). Give the row that holds "
        "the column names."),
    "error.header_row_blank": (
        "ファイルの {row} 行目 (--header-row {row}) は空です。列名のある行を指定してください。",
        "row {row} of the file (--header-row {row}) is blank. Give the row that holds the column names."),
    "error.header_row_blank_in_sheet": (
        "シート {sheet} の {row} 行目 (--header-row {row}) は空です。列名のある行を指定してください。",
        "row {row} of the sheet {sheet} (--header-row {row}) is blank. Give the row that holds the column names."),
    "error.sheet_no_header": ("シート {sheet} に見出し行がありません。", "the sheet {sheet} has no header row."),
    "error.workbook_no_header": ("ブックのどのシートにも見出し行がありません。",
                                 "no sheet of the workbook has a header row."),
    "error.not_a_folder": ("フォルダーではありません。", "not a folder."),
    "error.folder_nothing_to_import": (
        "取り込めるファイルがありません。kizuna が取り込めるのは {kinds} のファイルです。",
        "no file to import here; kizuna imports {kinds} files."),
    # the files kizuna writes for people (exports, call lists, sheets)
    "error.export_format_unknown": ("書き出し形式 {fmt} はありません。{first} か {second} を指定してください。",
                                    "unknown export format {fmt}; choose {first} or {second}."),
    "error.file_format_unknown": ("ファイル形式 {fmt} はありません。{first} か {second} を指定してください。",
                                  "unknown format {fmt} for a file; choose {first} or {second}."),
    "error.sheet_format_unknown": ("ファイル形式 {fmt} はありません。{first} か {second} を指定してください。",
                                   "unknown file format {fmt}; choose {first} or {second}."),
    "error.stdout_csv_only": ("{fmt} のファイルは標準出力には書き出せません。-o でファイル名を指定してください。",
                              "a {fmt} file is not written to standard output; give a file name with -o."),
    "error.workbook_to_stdout": ("Excel ブックは標準出力には書き出せません。-o でファイル名を指定してください。",
                                 "an Excel workbook is not written to standard output; give a file name with -o."),
    "error.export_over_own_file": (
        "{path} はこのワークスペースの {name} で、kizuna が使うファイルです。書き出しで上書きはできません。"
        "-o FILE で別の場所に書き出してください。",
        "{path} is this workspace's {name}, which kizuna keeps for itself; an export must not write over it. "
        "Write the list elsewhere with -o FILE."),
    "error.export_into_own_folder": (
        "{path} はこのワークスペースの {name} フォルダーの中で、kizuna が使う場所です。書き出しで上書きはできません。"
        "-o FILE で別の場所に書き出してください。",
        "{path} is in this workspace's {name} folder, which kizuna keeps for itself; an export must not write over "
        "it. Write the list elsewhere with -o FILE."),
    "error.export_to_folder": ("{path} はフォルダーです。-o でファイル名を指定してください (例: -o {example})。",
                               "{path} is a folder; give a file name with -o, e.g. -o {example}."),
    "error.export_below_file": (
        "{path} に書き込めません: {folder} はフォルダーではなくファイルです。-o で別のパスを指定してください。",
        "cannot write {path}: {folder} is a file, not a folder. Choose another path with -o."),
    "error.export_not_permitted": ("{path} に書き込めません: 権限がありません。-o で別のパスを指定してください。",
                                   "cannot write {path}: permission denied. Choose another path with -o."),
    "error.export_failed": ("{path} に書き込めません ({problem})。-o で別のファイルを指定してください。",
                            "cannot write {path} ({problem}). Choose another file with -o."),
    "error.file_not_written": ("{path} に書き込めません: {problem}。別のファイル名を指定してください。",
                               "cannot write {path}: {problem}. Choose another file name."),
    "error.sheet_too_many_rows": (
        "{path}: 1 枚のワークシートに入る {room} 行を超えています。csv で書き出してください (-f csv)。",
        "{path}: more than {room} rows, the most one worksheet holds; write the list as csv instead (-f csv)."),
    # scenarios, lists, reports and users at the command line
    "error.no_scenario": ("{folder} に {name} というシナリオはありません (あるのは: {known})。",
                          "no scenario named {name} in {folder} (there are: {known})."),
    "error.no_such_step": ("シナリオ {name} のステップは 1 から {steps} までです。ステップ {step} はありません。",
                           "scenario {name} has steps 1 to {steps}; there is no step {step}."),
    "error.no_customer": ("このワークスペースに顧客 {customer} はいません。",
                          "no customer {customer} in this workspace."),
    "error.no_enabled_scenario": ("{folder} に有効なシナリオ {name} はありません。",
                                  "no enabled scenario named {name} in {folder}."),
    "error.run_running": (
        "別の `kizuna run` (PID {pid}) がこのワークスペースの配信中です。この実行は止めます。終わるのを待つか、"
        "後でもう一度実行してください。",
        "another `kizuna run` (PID {pid}) is delivering for this workspace; this one stops. Let it finish, or run "
        "again later."),
    "error.run_running_elsewhere": (
        "別のホストの `kizuna run` がこのワークスペースの配信中です (運用記録を共有しています)。この実行は止めます。"
        "後でもう一度実行してください。",
        "another `kizuna run` is delivering for this workspace from another host (the operational records are "
        "shared); this one stops. Run again later."),
    "error.audience_needs_scores": (
        "シナリオ {name} には対象者の条件があり、顧客スコアが必要です。先に `kizuna analyze` を実行してください。",
        "scenario {name} has an audience, which needs customer scores; run `kizuna analyze` first."),
    "error.period_reversed": ("期間の開始 {start} が終了 {end} より後です。もっと前の開始日を指定してください。",
                              "the period starts on {start}, after its end {end}; give an earlier start."),
    "error.rank_shares_count": (
        "ランクごとに 1 つの割合を指定してください。[analysis] rfm_ranks には {n} 個 ({ranks}) あり、{given} 個では"
        "ありません。",
        "give one share per rank: [analysis] rfm_ranks has {n} ({ranks}), not {given}."),
    "error.rank_shares_order": (
        "割合は最上位のランクから順に大きくなり、それぞれ 0 % より大きく 100 % 未満でなければなりません。"
        "指定された値: {given}。",
        "the shares must grow from the best rank to the last, each above 0 % and below 100 %; got {given}."),
    "error.migration_days_reversed": (
        "開始日 {start} が終了日 {end} より前ではありません。--from には --to より前の日付を指定してください。",
        "the start date {start} is not before the end date {end}; give --from an earlier date than --to."),
    "error.migration_by_unknown": ("移動の内訳 {by} はありません。{first} か {second} を指定してください。",
                                   "unknown migration breakdown {by}; choose {first} or {second}."),
    "error.call_list_unknown": ("リスト {kind} はありません。{choices} のどれかを指定してください。",
                                "unknown list {kind}; choose one of {choices}."),
    "error.predictions_without_states": (
        "customer_predictions は古い kizuna が書いたもので、ライフサイクルの状態がありません。"
        "`kizuna predict` をもう一度実行してください。",
        "customer_predictions was written by an older kizuna, without lifecycle states: run `kizuna predict` "
        "again."),
    "error.scores_without_states": (
        "customer_scores にまだライフサイクルの状態がありません。`kizuna analyze` をもう一度実行してください。",
        "customer_scores has no lifecycle states yet: run `kizuna analyze` again."),
    "error.backtest_not_written": ("{folder} にバックテストのレポートを書き込めません ({problem})。",
                                   "cannot write the backtest report into {folder} ({problem})."),
    "error.chart_not_written": ("図 {path} を書き込めません ({problem})。別のファイルを指定してください。",
                                "cannot write the chart {path} ({problem}). Choose another file."),
    "error.forget_unknown_customer": (
        "このワークスペースに顧客 {customer} はいません (消去済みかもしれません)。`kizuna export` のリストに"
        "出ている ID を確かめてください。",
        "no customer {customer} in this workspace (or forgotten already); check the id as it appears in "
        "`kizuna export` lists."),
    "error.no_user": ("{folder} にユーザー {name} はいません。`kizuna user add {plain} --role viewer` で"
                      "追加してください。",
                      "no user {name} in {folder}; add one with `kizuna user add {plain} --role viewer`."),
    "error.user_removed": ("ユーザー {name} はその間に削除されました。", "the user {name} was removed meanwhile."),
    "error.password_short": ("パスワードが {n} 文字です。{least} 文字以上にしてください。",
                             "the password is {n} characters; give at least {least}."),
    "error.files_exposed": (
        "このマシンの他のユーザーが {files} を読み書きできます。ワークスペースの秘密鍵や顧客データを含むファイルです。"
        "`chmod 600 {files}` を実行してから起動し直してください。",
        "other users of this machine can read or change {files}, which hold the workspace secret or customers' "
        "data; run `chmod 600 {files}` and start again."),
    "error.pdf_needs_playwright": (
        "PDF の作成には Playwright が必要です。pip install 'kizuna[report]' を実行するか、--no-pdf で PDF を"
        "省いてください (HTML のレポートだけで完結しています)。",
        "writing the PDF needs Playwright: pip install 'kizuna[report]', or leave the PDF out with --no-pdf (the "
        "HTML report is complete on its own)."),
    "error.pdf_no_chromium": (
        "PDF を印刷する Chromium が {chromium} にありません。Debian の chromium を入れる (apt install chromium)、"
        "kizuna.toml の [report] chromium に場所を書く、または --no-pdf で PDF を省いてください。",
        "no Chromium at {chromium} to print the PDF with: install Debian's (apt install chromium), set [report] "
        "chromium in kizuna.toml to yours, or leave the PDF out with --no-pdf."),
    "error.pdf_chromium_failed": (
        "{chromium} の Chromium が起動しませんでした ({problem})。動くか確かめるか、--no-pdf で PDF を省いてください。",
        "Chromium at {chromium} did not start ({problem}); check that it runs, or leave the PDF out with --no-pdf."),
    # the store and the operational records
    "error.store_scheme_unknown": (
        "{url} のストアを開けません: kizuna は {scheme} には保存しません。DuckDB のファイル (パス、または "
        "duckdb:///パス)、postgres://user:password@host/db、pyspark://local のどれかを --db か kizuna.toml の "
        "[store] url で指定してください。",
        "cannot open the store at {url}: kizuna does not store in {scheme}. Give a DuckDB file (a path, or "
        "duckdb:///path), postgres://user:password@host/db or pyspark://local, with --db or [store] url in "
        "kizuna.toml."),
    "error.no_store": (
        "{path} にストアがありません。`kizuna init` か `kizuna import` でそこに作るか、--db と kizuna.toml の "
        "[store] url を確かめてください。",
        "no store at {path}; run `kizuna init` or `kizuna import` to create one there, or check --db and [store] "
        "url in kizuna.toml."),
    "error.out_of_memory_limit": (
        "DuckDB のメモリが足りなくなりました: メモリ上限 {limit} が小さすぎました。kizuna.toml の [store] "
        "memory_limit を上げるか、空にして DuckDB の既定 (このコンピューターのメモリの 80%) にしてください。",
        "DuckDB ran out of memory: the memory limit of {limit} was too small. Raise [store] memory_limit in "
        "kizuna.toml, or empty it for DuckDB's default (80% of this computer's memory)."),
    "error.out_of_memory": (
        "DuckDB のメモリが足りなくなりました: このコンピューターのメモリが足りませんでした。他のプログラムを閉じるか、"
        "kizuna.toml の [store] memory_limit を空きメモリより小さくして、DuckDB が早めにディスクを使うように"
        "してください。",
        "DuckDB ran out of memory: this computer's memory was too small. Close other programs, or set [store] "
        "memory_limit in kizuna.toml below the free memory so that DuckDB spills to disk sooner."),
    "error.memory_limit_invalid": (
        "kizuna.toml の [store] memory_limit = {limit} は DuckDB が受け付けるメモリ量ではありません ({problem})。"
        "\"2GB\" や \"512MB\" のように書くか、空にしてください。",
        "[store] memory_limit = {limit} in kizuna.toml is not a memory size DuckDB accepts ({problem}). Write it "
        "like \"2GB\" or \"512MB\", or leave it empty."),
    "error.operations_url": (
        "kizuna.toml の [operations] url = {url}: 運用記録は PostgreSQL (postgres://user:password@host/db) か、"
        "url が空ならワークスペースの {file} に保存します。",
        "[operations] url = {url} in kizuna.toml: the operational records are kept in PostgreSQL "
        "(postgres://user:password@host/db) or, with an empty url, in {file} in the workspace."),
    "error.operations_needs_psycopg": (
        "[operations] url が PostgreSQL を指しています: そのために kizuna[postgres] (psycopg) を"
        "インストールしてください。",
        "[operations] url names PostgreSQL: install kizuna[postgres] (psycopg) for it."),
    "error.operations_unopened": ("{name}: 運用記録を開けません ({problem})。",
                                  "{name}: cannot open the operational records ({problem})."),
    "error.operations_locked": (
        "{name}: 運用記録が別の kizuna のプロセスに {seconds} 秒間ロックされたままでした{detail}。"
        "もう一度試してください。",
        "{name}: the operational records stayed locked for {seconds} s by another kizuna process{detail}; try "
        "again."),
    # the channels' settings (kizuna.toml's [email], the environment's LINE token and secret)
    "error.email_sender_invalid": (
        "[email] sender = {sender} は kizuna が送信に使えるメールボックスではありません。kizuna.toml に店名と ASCII の"
        "アドレスを書いてください。例: sender = \"Shop <info@example.jp>\"。",
        "[email] sender = {sender} is not a mailbox kizuna can send from. Set it in kizuna.toml to the shop's name "
        "and ASCII address, e.g. sender = \"Shop <info@example.jp>\"."),
    "error.email_no_sender": (
        "メールの送信者がありません: kizuna.toml に [email] sender = \"Shop <info@example.jp>\" を設定してください。",
        "No sender for e-mails: set [email] sender = \"Shop <info@example.jp>\" in kizuna.toml."),
    "error.email_legal_footer": (
        "広告宣伝メールには送信者の名前、住所、連絡先の表示が必要です (特定電子メール法)。kizuna.toml の [email] "
        "{missing} を書いてください。",
        "Marketing e-mails must show the sender's name, postal address and contact (特定電子メール法). Fill in "
        "[email] {missing} in kizuna.toml."),
    "error.email_missing_name": ("sender (店名を含めて: \"Shop <info@example.jp>\")",
                                 "sender (with the shop's name: \"Shop <info@example.jp>\")"),
    "error.email_missing_address": ("sender_address (住所)", "sender_address (the postal address)"),
    "error.email_missing_contact": ("sender_contact (問い合わせ先の電話番号かメールアドレス)",
                                    "sender_contact (a telephone number or e-mail address for questions)"),
    "error.dkim_key_invalid": (
        "[email] dkim_key_file が PEM 形式の RSA 秘密鍵ではありません ({problem})。"
        "`openssl genrsa -out dkim.pem 2048` で作成してください。",
        "[email] dkim_key_file does not hold an RSA private key in PEM form ({problem}). Create one with "
        "`openssl genrsa -out dkim.pem 2048`."),
    "error.dkim_incomplete": (
        "DKIM には dkim_domain、dkim_selector、dkim_key_file が必要です。kizuna.toml の [email] {missing} を書くか、"
        "3 つとも空にして署名なしで送ってください。",
        "DKIM needs dkim_domain, dkim_selector and dkim_key_file; fill in [email] {missing} in kizuna.toml, or "
        "empty all three to send unsigned."),
    "error.dkim_key_unreadable": (
        "[email] dkim_key_file {path} を読めません ({problem})。kizuna.toml のパスを直してください。",
        "[email] dkim_key_file {path} cannot be read ({problem}). Fix the path in kizuna.toml."),
    "error.smtp_url_invalid": (
        "[email] smtp_url = {url} は SMTP サーバーではありません: kizuna.toml に smtp://host:port か "
        "smtps://user@host:465 と書いてください。",
        "[email] smtp_url = {url} is not an SMTP server: write smtp://host:port or smtps://user@host:465 in "
        "kizuna.toml."),
    "error.smtp_url_password": (
        "[email] smtp_url にパスワードが含まれています: kizuna.toml から消して、環境変数 {variable} に"
        "設定してください。",
        "[email] smtp_url holds a password: remove it from kizuna.toml and set the environment variable "
        "{variable} instead."),
    "error.smtps_starttls": (
        "smtps:// は最初から暗号化されています: [email] starttls = false にするか、smtp://host:587 と "
        "starttls = true を使ってください。",
        "smtps:// is encrypted from the start: set [email] starttls = false, or use smtp://host:587 with "
        "starttls = true."),
    "error.smtp_login_in_clear": (
        "TLS なしで {host} にログインするとパスワードが平文で送られます: smtps://…:465 を使うか、"
        "[email] starttls = true にしてください。",
        "logging in to {host} without TLS would send the password in the clear: use smtps://…:465, or set "
        "[email] starttls = true."),
    "error.smtp_no_password": (
        "[email] smtp_url は {user} としてログインしますが、{variable} が設定されていません: kizuna の環境に SMTP の"
        "パスワードを設定してください。",
        "[email] smtp_url logs in as {user}, but {variable} is not set: set it to the SMTP password in the "
        "environment of kizuna."),
    "error.smtp_no_url": (
        "メールを送る SMTP サーバーがありません: kizuna.toml に [email] smtp_url = \"smtp://host:port\" を"
        "設定してください。",
        "No SMTP server to send e-mails through: set [email] smtp_url = \"smtp://host:port\" in kizuna.toml."),
    "error.smtp_login_refused": (
        "{server} が {user} のログインを拒否しました ({reply}): [email] smtp_url のユーザーと {variable} を"
        "確かめてください。",
        "{server} refused the login of {user} ({reply}): check the user in [email] smtp_url and {variable}."),
    "error.smtp_not_offered": (
        "{server} は {what} を提供していません ({problem}): [email] smtp_url と starttls を確かめてください。",
        "{server} does not offer {what} ({problem}): check [email] smtp_url and starttls."),
    "error.smtp_certificate": (
        "{server} の TLS 証明書を信頼できません ({problem}): [email] smtp_url のホスト名を確かめてください。",
        "the TLS certificate of {server} cannot be trusted ({problem}): check the host name in [email] smtp_url."),
    "error.smtp_sender_refused": (
        "{server} が送信者 {sender} を拒否しました ({reply}): [email] sender と smtp_url のログインを"
        "確かめてください。",
        "{server} refused the sender {sender} ({reply}): check [email] sender and the login in smtp_url."),
    "error.line_no_token": (
        "{variable} が設定されていません: LINE のメッセージにはチャネルアクセストークンが必要です。LINE Developers "
        "コンソール (チャネルの Messaging API タブ) で発行し、kizuna の環境に設定してください (例: "
        "`export {variable}=...`)。kizuna.toml には書きません。",
        "{variable} is not set: LINE messages need the channel access token. Issue one in the LINE Developers "
        "console (your channel's Messaging API tab) and set it in the environment of kizuna, e.g. "
        "`export {variable}=...`; it never goes into kizuna.toml."),
    "error.line_no_secret": (
        "{variable} が設定されていません: Webhook のリクエストが LINE から来たことを確かめるには、LINE のチャネル"
        "シークレットが必要です。LINE Developers コンソール (チャネルの基本設定タブ) からコピーし、`kizuna serve` "
        "の環境に設定してください (例: `export {variable}=...`)。",
        "{variable} is not set: kizuna needs the LINE channel secret to check that webhook requests come from "
        "LINE. Copy it from the LINE Developers console (your channel's Basic settings tab) into the environment "
        "of `kizuna serve`, e.g. `export {variable}=...`."),
    "error.line_secret_empty": ("LINE のチャネルシークレットが空です: {variable} にチャネルのシークレットを"
                                "設定してください。",
                                "the LINE channel secret is empty: set {variable} to your channel's secret."),
    # the caveats of a fit (`kizuna predict`'s and the backtests' notes)
    "note.few_customers": (
        "{model}: 顧客が {n} 人しかいません。4 つのパラメータをある程度の精度で推定するには {least} 人以上が必要です。",
        "{model}: only {n} customers; at least {least} are needed to estimate four parameters with any precision."),
    "note.few_repeat_buyers": (
        "{model}: リピーターが {n} 人しかいません。3 つのパラメータをある程度の精度で推定するには {least} 人以上が"
        "必要です。",
        "{model}: only {n} repeat buyers; at least {least} are needed to estimate three parameters with any "
        "precision."),
    "note.spend_correlated": (
        "{model}: 購入回数と購入単価に相関があります (r = {r})。モデルは両者が独立だと仮定しているため、購入単価の"
        "予測が偏るおそれがあります。",
        "{model}: frequency and monetary value are correlated (r = {r}); the model assumes they are independent, "
        "so its spend predictions may be biased."),
    "note.spend_mean_infinite": (
        "{model}: q = {q} ≤ 1 のため、全体の平均購入単価 p·v/(q-1) が無限大になります。注文の少ない顧客の予測は"
        "信頼できません。",
        "{model}: q = {q} <= 1, so the population mean order value p·v/(q-1) is infinite; predictions for "
        "customers with few orders are unreliable."),
    "note.churn_near_chance": (
        "チャーンモデルは、検証用に取り分けた {n} 人の顧客で偶然とほとんど変わりません (AUC {auc}。0.5 は"
        "コイン投げ): 特徴量からは誰が離脱するかがわかりません。リスクと理由は慎重に扱ってください。",
        "The churn model does little better than chance on the {n} customers held out to check it (AUC {auc}; "
        "0.5 is a coin toss): the features do not tell who leaves. Treat its risks and reasons with care."),
    "note.churn_few_left": (
        "期間内に離脱したのは {n} 人中 {rare} 人だけで、誰が離脱するかを確かに学ぶには少なすぎます。チャーンリスクは"
        "粗い値です。より長い履歴か別の --horizon のほうが良いモデルになります。",
        "Only {rare} of {n} customers left in the window: too few to learn reliably who leaves; the churn risks "
        "are rough. A longer history or a different --horizon gives a better model."),
    "note.churn_few_returned": (
        "期間内に再び注文したのは {n} 人中 {rare} 人だけで、誰が離脱するかを確かに学ぶには少なすぎます。"
        "チャーンリスクは粗い値です。より長い履歴か別の --horizon のほうが良いモデルになります。",
        "Only {rare} of {n} customers ordered again in the window: too few to learn reliably who leaves; the "
        "churn risks are rough. A longer history or a different --horizon gives a better model."),
    "note.uplift_small_group": (
        "小さいほうのグループの顧客が {n} 人しかいません (電話した {called} 人、電話しなかった {held} 人): "
        "電話の効果の推定は粗い値です。",
        "Only {n} customers in the smaller group ({called} called, {held} held out): the estimated effect of a "
        "call is rough."),
    "note.churn_all_customers": (
        "{cutoff} に稼働中または離脱リスクだった顧客は {n} 人だけで、その人たちだけでチャーンモデルを学習するには"
        "少なすぎるため、離脱したかどうかを問わず注文したことのある全顧客で学習しました。稼働中の顧客のリスクは"
        "粗くなります。",
        "Only {n} customers were active or at risk on {cutoff}: too few to train the churn model on them alone, "
        "so it was trained on every customer who had ordered, lost or not; the risks of the active customers are "
        "rougher."),
    "note.churn_short_window": (
        "{start} より前の履歴は {horizon} 日の期間でチャーンモデルを学習するには短すぎるため、{window} 日 "
        "({cutoff} の後 {window} 日注文しなかった人) で学習しました。そのためリスクは約 {window} 日以内に注文が"
        "ない確率です。",
        "The history before {start} is too short to train the churn model on a {horizon}-day window; it was "
        "trained on {window} days (who stopped ordering for {window} days after {cutoff}), so its risk is of no "
        "order within about {window} days."),
    "note.fitted_on_sample": (
        "モデルは {customers} 人中 {sample} 人の標本 ({every} 人に 1 人) で学習しました。全顧客はエンジン内で"
        "採点しています。上の数字は標本のものです。",
        "The models were fitted on a sample of {sample} of {customers} customers (one in {every}); every customer "
        "was scored in the engine, the figures above are the sample's."),
    "error.file_not_found": ("ファイルがありません。パスを確かめてください。", "file not found. Check the path."),
    "error.no_such_sheet": ("{sheet} というシートはありません。ブックのシート: {sheets}。",
                            "no sheet named {sheet}; the workbook has {sheets}."),
    "error.unknown_file_type": ("{suffix} のファイルは取り込めません。kizuna が取り込めるのは .csv、.tsv、.txt、.xlsx、"
                                ".parquet です。",
                                "unknown file type {suffix}; kizuna imports .csv, .tsv, .txt, .xlsx and .parquet."),
    "error.empty_file": ("ファイルが空か、見出し行がありません。", "the file is empty or has no header row."),
    "error.header_not_text": ("見出し行 ({row}行目) が {encoding} のテキストではありません。"
                              "UTF-8 か Shift_JIS で保存するか、"
                              "--encoding を指定してください。",
                              "the header row (row {row}) is not {encoding} text. Save the file as UTF-8 or Shift_JIS, "
                              "or pass --encoding."),
    # the --mapping file (kizuna.importing: MappingError)
    "mapping.not_found": ("対応付けファイルがありません。--mapping のパスを確かめてください。",
                          "mapping file not found. Check the --mapping path."),
    "mapping.not_toml": ("TOML の対応付けファイルとして読めません ({problem})。",
                         "not a valid TOML mapping file ({problem})."),
    "mapping.unknown_tables": ("{tables} という表は使えません。対応付けファイルに書けるのは [columns]、[columns.KIND]、"
                               "[values.COLUMN] です。",
                               "unknown table(s) {tables}; a mapping has "
                               "[columns], [columns.KIND] and [values.COLUMN]."),
    "mapping.unknown_kind": ("[columns.{kind}]: そのような種類はありません。次のどれかにしてください: {kinds}。",
                             "[columns.{kind}]: no such kind; use one of {kinds}."),
    "mapping.entries": ("[columns]、[columns.KIND]、[values.COLUMN] の各行は \"元の名前\" = \"kizuna の名前\" と"
                        "書いてください。",
                        "every entry must be \"source\" = \"kizuna name\", in [columns], [columns.KIND] and "
                        "[values.COLUMN]."),
    "mapping.not_of_kind": ("対応付けが [columns.{kind}] に {names} を書いていますが、{kind} にその列はありません。"
                            "{kind} の列: {columns}。",
                            "the mapping names {names} in [columns.{kind}], which {kind} does not have; columns of "
                            "{kind}: {columns}."),
    "mapping.unknown_columns": ("対応付けが {names} を書いていますが、どの種類にもその列はありません。kizuna の列は "
                                "docs/measures.md §7 にあります (例: customer_id、order_id、ordered_at、amount、"
                                "product_id)。",
                                "the mapping names {names}, which no kind has; kizuna's columns are listed in "
                                "docs/measures.md §7 (e.g. customer_id, order_id, ordered_at, amount, product_id)."),
    "error.columns_found_more": ("{listed} … ほか {n} 列", "{listed} … and {n} more"),
    "error.columns_found_none": ("見出しなし", "no header"),
    "error.run_orders_first": ("`kizuna import orders FILE` を先に実行してください (または `kizuna demo`)。",
                               "Run `kizuna import orders FILE` first (or `kizuna demo`)."),
    "error.run_analyze_first": ("`kizuna analyze` を先に実行してください。", "Run `kizuna analyze` first."),
    "error.run_predict_first": ("`kizuna predict` を先に実行してください。", "Run `kizuna predict` first."),
    "error.customer_scores": ("顧客スコア", "customer scores"),
    "error.backtest_past_data": (
        "検証期間 {start} – {end} がデータの最後の注文 ({last}) より先に及ぶため、その期間に何が起きたかはまだ"
        "分かりません。--as-of を最後の注文の {days} 日以上前にするか、--horizon を短くしてください。",
        "The holdout period {start} – {end} runs past the last order in the data ({last}): what happened in it "
        "is not known yet. Choose --as-of at least {days} days before the last order, or a shorter --horizon."),
    "error.no_orders_after": (
        "{as_of} より後の注文がデータにありません (最後の注文: {last})。その後に架電した顧客がどうなったかは"
        "分かりません。--as-of をもっと前の日付にしてください。",
        "No orders after {as_of} in the data ({last}): what became of the customers called after it is not "
        "known. Choose an earlier --as-of."),
    "error.no_call_outcomes_after": (
        "{as_of} 以降に作られた架電リストの結果はまだありません (結果 {outcomes} 件、架電後 {days} 日が"
        "経っていない顧客 {pending} 人)。--as-of をもっと前にするか、結果が出るのを待ってください。",
        "No call outcome of a list made on or after {as_of} is known yet ({outcomes} outcomes in all, {pending} "
        "customers called still within their {days} days): choose an earlier --as-of, or wait."),
    "error.predict_no_orders": (
        "基準日までの注文がないため、予測するものがありません。`kizuna import orders FILE` を実行してください。",
        "No orders up to the as-of date: nothing to predict. Run `kizuna import orders FILE`."),
    "error.churn_short_history": (
        "学習日 (基準日から予測期間を引いた日) までに注文した顧客が {n} 人しかいません。誰が離脱するかを学ぶには"
        "履歴が短すぎます (少なくとも {least} 人必要です)。注文履歴をもっと取り込むか、--horizon を短くしてください。",
        "Only {n} customers had ordered before the training date (the as-of date minus the horizon): too short a "
        "history to learn who leaves (at least {least} are needed). Import more history or shorten --horizon."),
    "error.churn_all_left": (
        "{n} 人の顧客全員が離脱しました (期間内に注文なし)。結果が一方だけでは、離脱する顧客と残る顧客を見分ける"
        "手がかりがありません。両方が起きる基準日か --horizon を選ぶか、注文履歴をもっと取り込んでください。",
        "All {n} customers left (no order in the window): with one outcome only, nothing tells those who leave "
        "from those who stay. Choose an as-of date or --horizon where both happen, or import more history."),
    "error.churn_all_returned": (
        "{n} 人の顧客全員が期間内に再び注文しました。結果が一方だけでは、離脱する顧客と残る顧客を見分ける"
        "手がかりがありません。両方が起きる基準日か --horizon を選ぶか、注文履歴をもっと取り込んでください。",
        "All {n} customers ordered again in the window: with one outcome only, nothing tells those who leave "
        "from those who stay. Choose an as-of date or --horizon where both happen, or import more history."),
    "error.uplift_no_outcomes": (
        "架電の結果はまだひとつも分かっていません。引き止めリストの顧客は、架電した人も架電せずに残した人も、"
        "リストの日から予測期間が過ぎて初めて数えられます。架電結果を取り込み (`kizuna calls import FILE`)、"
        "お待ちください。",
        "No call outcome is known yet: a customer on a keep list, called or held out, counts once the horizon "
        "after the list day has passed. Import the calls (`kizuna calls import FILE`) and wait."),
    "error.uplift_no_held_out": (
        "{n} 件の架電結果に、架電せずに残した顧客 (対照群) のものがひとつもありません。架電しなかった顧客が"
        "いなければ、架電の効果は測れません。[calls] holdout_share を 0 より大きく (既定 0.1) して引き止め"
        "リストに架電しない顧客を残し、その結果を待ってください。",
        "None of the {n} call outcomes is of a held-out customer: without customers left uncalled, the effect of "
        "a call cannot be measured. Keep [calls] holdout_share above 0 (default 0.1) so that the keep list "
        "leaves some customers uncalled, and wait for their outcomes."),
    "error.uplift_few_held_out": (
        "結果の分かっている対照群の顧客が {n} 人しかいません (架電 {called} 人、対照群 {held} 人)。架電の効果を"
        "推定するには、それぞれ少なくとも {least} 人必要です。結果が増えるのを待ってください (リストの日から"
        "予測期間が過ぎた顧客の結果が数えられます)。",
        "Only {n} held-out customers have an outcome ({called} called, {held} held out): at least {least} of each "
        "are needed to estimate the effect of a call. Wait for more outcomes (their horizon after the list day "
        "must have passed)."),
    "error.uplift_few_called": (
        "結果の分かっている架電済みの顧客が {n} 人しかいません (架電 {called} 人、対照群 {held} 人)。架電の効果を"
        "推定するには、それぞれ少なくとも {least} 人必要です。結果が増えるのを待ってください (リストの日から"
        "予測期間が過ぎた顧客の結果が数えられます)。",
        "Only {n} customers called have an outcome ({called} called, {held} held out): at least {least} of each "
        "are needed to estimate the effect of a call. Wait for more outcomes (their horizon after the list day "
        "must have passed)."),
    "error.before_day": ("{day} より前の期間: {problem}", "Before {day}: {problem}"),
    "error.predict_few_repeat_buyers": (
        "2日以上に分けて注文した顧客が {n} 人しかいません。購入頻度を学ぶにはリピート購入者が少なすぎます。"
        "注文履歴をもっと取り込んでください。",
        "Only {n} customers have ordered on more than one day: too few repeat buyers to learn how often "
        "customers buy. Import more order history."),
    "error.predict_short_history": (
        "{cutoff} ({as_of} の {window} 日前) までに注文した顧客が {n} 人しかいません。誰が離脱するかを学ぶには"
        "履歴が短すぎます。注文履歴をもっと取り込むか、--horizon を短くしてください。",
        "Only {n} customers had ordered by {cutoff} ({window} days before {as_of}): too short a history to learn "
        "who leaves. Import more order history, or shorten --horizon."),
    "error.customer_predictions": ("予測", "predictions"),
    "error.orders_in_window": ("{day} までの {days} 日間の注文", "orders in the {days} days up to {day}"),
    "error.ranks_need_orders": ("ランクの基準はその注文から求めます。`kizuna import orders FILE` で最近の注文を"
                                "取り込むか、--as-of に注文のある日付を指定してください。",
                                "Rank thresholds are taken from them: import recent orders with `kizuna import "
                                "orders FILE`, or give --as-of a day within their dates."),
    # kizuna.toml (kizuna.settings)
    "settings.not_found": ("{path} がありません。`kizuna init DIR` でワークスペースを作るか、--dir で既存の"
                           "ワークスペースを指定してください。",
                           "{path} not found. Create a workspace with `kizuna init DIR` "
                           "or pass --dir to an existing one."),
    "settings.not_utf8": ("{path}: UTF-8 のテキストではありません ({byte} バイト目が読めません)。"
                          "UTF-8 で保存してください。",
                          "{path}: not UTF-8 text (byte {byte} cannot be read); save the file as UTF-8."),
    "settings.unreadable": ("{path}: 読めません ({problem})。", "{path}: cannot be read ({problem})."),
    "settings.not_toml": ("{path}: TOML として正しくありません ({problem})。ファイルを直してください。",
                          "{path}: not valid TOML ({problem}). Fix the file."),
    "settings.unknown_section": ("{source}: [{section}] というセクションはありません。使えるセクション: {known}。",
                                 "{source}: unknown section [{section}]; known: {known}."),
    "settings.not_a_section": ("{source}: [{section}] は設定のセクション (キー = 値 の行) にしてください "
                               "(指定された値: {section} = {value})。",
                               "{source}: [{section}] must be a section of settings (key = value lines), got "
                               "{section} = {value}."),
    "settings.unknown_setting": ("{source}: {name} という設定はありません。[{section}] の設定: {known}。",
                                 "{source}: unknown setting {name}; known in [{section}]: {known}."),
    "settings.must_be": ("{source}: {name} の値は{allowed}にしてください (指定された値: {value})。",
                         "{source}: {name} must be {allowed}, got {value}."),
    "settings.allowed_bool": ("true か false", "true or false"),
    "settings.allowed_int": ("{low}〜{high} の整数", "an integer from {low} to {high}"),
    "settings.allowed_number": ("{low}〜{high} の数値", "a number between {low} and {high}"),
    "settings.allowed_number_above": ("{low} より大きく {high} 以下の数値",
                                      "a number between {low} and {high} (exclusive of {low})"),
    "settings.allowed_one_of": ("{choices} のどれか", "one of {choices}"),
    "settings.allowed_text": ("引用符 (\") で囲んだ文字列", "text in quotes"),
    "settings.allowed_currency": ("\"JPY\" のような大文字3文字の通貨コード",
                                  "a 3-letter currency code in capitals, such as \"JPY\""),
    "settings.allowed_timezone": ("\"Asia/Tokyo\" のような IANA のタイムゾーン名 (大文字・小文字を区別します)",
                                  "an IANA time zone such as \"Asia/Tokyo\" (names are case-sensitive)"),
    "settings.allowed_clock": ("\"HH:MM\" (24時間制) の時刻", "a time of day written \"HH:MM\" (24-hour clock)"),
    "settings.allowed_http_url": ("http:// か https:// で始まるアドレス", "an http:// or https:// address"),
    "settings.allowed_day": ("{first} から {last} までの YYYY-MM-DD の日付 (空にすると今日)",
                             "a date written YYYY-MM-DD from {first} to {last} (or empty for today)"),
    "settings.allowed_recipients": ("[\"manager@example.jp\"] のような、引用符で囲んだメールアドレスのリスト",
                                    "a list of e-mail addresses in quotes, such as [\"manager@example.jp\"]"),
    "settings.allowed_smtp_url": ("smtp://host:port か smtps://user@host:port (メールを送らないときは空)",
                                  "smtp://host:port or smtps://user@host:port (or empty for no e-mail)"),
    "settings.allowed_ops_url": ("postgres://user:password@host:port/database (kizuna-ops.sqlite3 を使うときは空)",
                                 "postgres://user:password@host:port/database (or empty for kizuna-ops.sqlite3)"),
    "settings.allowed_words": ("[\"語\", \"別の語\"] のような、引用符で囲んだ語のリスト (空の語は不可)",
                               "a list of words in quotes, such as [\"word\", \"another word\"] (none empty)"),
    "settings.ranks_list": ("{source}: {setting} は、良いランクから順に、各ランクを {table} と書いた1つ以上の"
                            "リストにしてください (指定された値: {value})。",
                            "{source}: {setting} must be a list of one or more ranks, best first, each {table}, got "
                            "{value}."),
    "settings.rank_table": ("{source}: {setting} の {position}番目のランクは {table} の形にしてください "
                            "(指定された値: {value})。",
                            "{source}: rank {position} in {setting} must be a table {table}, got {value}."),
    "settings.rank_fields_missing": ("{source}: {setting} の {position}番目のランクには "
                                     "{fields} をすべて書いてください。"
                                     "足りない項目: {names}。",
                                     "{source}: rank {position} in {setting} must have exactly {fields}; missing "
                                     "{names}."),
    "settings.rank_fields_unknown": ("{source}: {setting} の {position}番目のランクに書ける項目は {fields} だけです。"
                                     "知らない項目: {names}。",
                                     "{source}: rank {position} in {setting} must have exactly {fields}; unknown: "
                                     "{names}."),
    "settings.rank_label": ("{source}: {setting} の {position}番目のランクの label は、\"{fallback}\" 以外の空でない"
                            "名前にしてください (\"{fallback}\" はどのランクにも入らない顧客のランクです。指定された値:"
                            " "
                            "{value})。",
                            "{source}: label of rank {position} in {setting} must be a non-empty name other than "
                            "\"{fallback}\" (the rank of customers who meet none), got {value}."),
    "settings.rank_label_same": ("{source}: {setting} の {position}番目のランクの label は、{same}番目のランクと別の"
                                 "名前にしてください (指定された値: {value})。",
                                 "{source}: label of rank {position} in {setting} must be different from the label "
                                 "of rank {same}, got {value}."),
    "settings.rank_field": ("{source}: {setting} の {position}番目のランクの {field} は{allowed}にしてください "
                            "(指定された値: {value})。",
                            "{source}: {field} of rank {position} in {setting} must be {allowed}, got {value}."),
    # scenario files (kizuna.scenarios: ScenarioError, RenderError)
    "scenario.error": ("{where}: {field}: {problem}", "{where}: {field}: {problem}"),
    "scenario.duplicate_name": ("{name} は {other} の name と同じです。name はシナリオごとに別の名前にしてください。",
                                "{name} is also the name of {other}; names must be unique."),
    "scenario.not_utf8": ("UTF-8 のテキストではありません。UTF-8 で保存してください。",
                          "not UTF-8 text; save it as UTF-8."),
    "scenario.yaml": ("YAML として読めません ({problem})。字下げと「:」の位置を確かめてください。", "{problem}."),
    "scenario.not_mapping": ("シナリオは name, trigger, audience, goal, steps を「項目: 値」で書いたものです。",
                             "a scenario is a mapping of name, trigger, audience, goal and steps."),
    "scenario.must_be_mapping": ("{allowed} を「項目: 値」の形で書いてください。", "must be a mapping with {allowed}."),
    "scenario.unknown_field": ("この項目はありません (綴りを確かめてください)。使える項目: {known}。",
                               "unknown field; known: {known}."),
    "scenario.required": ("必ず書く項目です。書き加えてください。", "is required."),
    "scenario.single_value": ("値を1つだけ書いてください (リストや「項目: 値」は書けません)。",
                              "must be a single value."),
    "scenario.integer_range": ("{low} から {high} までの整数で書いてください (書かれた値: {value})。",
                               "must be an integer from {low} to {high}, got {value}."),
    "scenario.number_range": ("{low} から {high} までの数値で書いてください (書かれた値: {value})。",
                              "must be a number from {low} to {high}, got {value}."),
    "scenario.bad_name": ("{name}: 英数字と - _ . だけを使い、64文字以内にしてください。",
                          "{name}: use letters, digits, - _ . (up to 64)."),
    "scenario.one_of": ("{allowed} のどれかにしてください (書かれた値: {value})。",
                        "must be one of {allowed}, got {value}."),
    "scenario.true_false": ("true か false で書いてください。", "must be true or false."),
    "scenario.steps_list": ("1つ以上のステップを「- channel: …」のリストで書いてください。",
                            "must be a list of one or more steps."),
    "scenario.one_trigger": ("次のどれか1つだけを書いてください: {known}。", "must name exactly one of: {known}."),
    "scenario.unknown_trigger": ("トリガー {kind} はありません。使えるトリガー: {known}。",
                                 "unknown trigger {kind}; known: {known}."),
    "scenario.no_value": ("このトリガーには値を書きません。", "takes no value."),
    "scenario.min_over_max": ("max 以下にしてください。", "must not exceed max."),
    "scenario.where_list": ("{condition}: 値はリストで書いてください (例: rfm_rank in [a, b])。",
                            "{condition}: write a list, e.g. rfm_rank in [a, b]."),
    "scenario.not_condition": ("{condition} は条件として読めません。「列 演算子 値」の形で、演算子は "
                               "== != < <= > >= in, not in のどれかを使ってください (例: churn_risk >= 0.5)。",
                               "{condition} is not a condition; write `column op value` with op one of "
                               "== != < <= > >= in, not in (e.g. churn_risk >= 0.5)."),
    "scenario.not_number_for": ("{value} は {column} と比べられる数値ではありません。",
                                "{value} is not a number for {column}."),
    "scenario.not_boolean_for": ("{value} は {column} と比べられる true / false ではありません。",
                                 "{value} is not true or false for {column}."),
    "scenario.not_other_for": ("{value} は {column} と比べられる {kind} の値ではありません。",
                               "{value} is not a {kind} value for {column}."),
    "scenario.compare_kinds": ("{condition} は種類の違う値を比べています ({problem})。",
                               "{condition} compares different kinds of value ({problem})."),
    "scenario.unknown_column": ("列 {column} はありません。使える列: {known}。",
                                "unknown column {column}; the audience has {known}."),
    "scenario.email_subject": ("メールのステップには subject (件名) が必要です。", "an e-mail step needs a subject."),
    "scenario.template_error": ("テンプレートの書き方に誤りがあります: {problem}。", "template error: {problem}."),
    "scenario.needs_scores": ("シナリオ {name} のトリガーには顧客スコアが必要です。"
                              "`kizuna analyze` を実行してください。",
                              "scenario {name}: its trigger needs customer scores; run `kizuna analyze`."),
    "scenario.needs_predictions": ("シナリオ {name} のトリガーには予測が必要です。"
                                   "`kizuna predict` を実行してください。",
                                   "scenario {name}: its trigger needs predictions; run `kizuna predict`."),
    "scenario.render": ("シナリオ {scenario} のステップ {step}: {problem}",
                        "scenario {scenario}, step {step}: {problem}"),
    "scenario.render_undefined": (
        "テンプレートが {{{{ {name} }}}} を使っていますが、そのような差し込み項目はありません。シナリオファイルを"
        "直してください。使える項目: {fields}。",
        "the template uses {{{{ {name} }}}}, which is not a field; fix the scenario file. The fields it may use are "
        "{fields}."),
    "scenario.render_failed": ("テンプレートを差し込めませんでした: {problem}", "the template failed: {problem}"),
    # why a row was rejected (the rejects file, the import summary; kizuna.importing reason_phrase)
    "reject.missing": ("{column} が空です", "missing {column}"),
    "reject.missing_buyer": ("customer_id が空です (会員ID・メールアドレス・電話番号のどれもありません)",
                             "missing customer_id (no member id, e-mail or phone)"),
    "reject.not_whole_number": ("整数ではありません", "not a whole number"),
    "reject.not_yen": ("円単位の整数の金額ではありません", "not an amount in whole yen"),
    "reject.not_score": ("スコアではありません (0〜10の整数で書いてください。例: 9 または 9点)",
                         "not a score (write a whole number 0-10, e.g. 9 or 9点)"),
    "reject.not_number": ("数値ではありません", "not a number"),
    "reject.not_yes_no": ("はい/いいえ として読めません (例: 1/0、true/false、はい/いいえ)",
                          "not yes/no (write e.g. 1/0, true/false, はい/いいえ)"),
    "reject.unknown_value": ("{column} に使えない値です (使える値: {allowed}。または [values.{column}] で対応付けて"
                             "ください)",
                             "unknown {column}; use one of {allowed} or map it in [values.{column}]"),
    "reject.implausible_date": ("ありえない日付 {day} (年を確かめてください)",
                                "implausible date {day} (check the year)"),
    "reject.not_era_date": ("日付として読めません (和暦は 令和6年1月5日 や R6.1.5 のように書いてください)",
                            "not a date (write an era date e.g. 令和6年1月5日 or R6.1.5)"),
    "reject.not_timestamp": ("日付として読めません (例: 2024/1/5 や 2024-01-05 10:30)",
                             "not a date (write e.g. 2024/1/5 or 2024-01-05 10:30)"),
    "reject.not_date": ("日付として読めません (例: 1985/4/1)", "not a date (write e.g. 1985/4/1)"),
    "reject.misplaced_comma": ("カンマの位置の誤り: 3桁区切りではないカンマがあります (1200 か 1,200 と書いてください。"
                               "小数点のカンマは読みません)",
                               "misplaced comma: a comma that is not a thousands separator (write whole numbers as "
                               "1200 or 1,200; a decimal comma is not read)"),
    "reject.control_character": ("{column} に制御文字があります (値の中の改行・タブ・NUL などの見えない文字)。"
                                 "ファイルから取り除いてください",
                                 "control character in {column} (a line break, tab, NUL or other invisible character "
                                 "inside the value); remove it from the file"),
    "reject.negative": ("{column} が負の値です", "negative {column}"),
    "reject.quantity": ("数量は1以上にしてください", "quantity must be 1 or more"),
    "reject.score_outside": ("NPSスコアが0〜10の範囲外です", "NPS score outside 0-10"),
    "reject.refund_over": ("返金額が注文金額を超えています", "refund larger than the order amount"),
    "reject.unknown_reference": ("{column} が{table}にありません (先に{table}を取り込んでください)",
                                 "unknown {column} (not in {table}: import {table} first)"),
    "reject.unknown_customer": ("{column} が顧客にありません", "unknown {column} (not in customers)"),
    "reject.not_call_column": ("架電結果の列ではありません", "not a column of calls"),
    "reject.duplicate": ("{key} が重複し、内容が違います ({row}行目を採用)",
                         "duplicate {key} with different data (row {row} kept)"),
    "reject.stray_quote": ("余分な引用符: {row}行目の列 {column} で開いた引用符 (\") が、"
                           "行に見える {lines} 行にわたって"
                           "続いています。閉じるか取り除いてください",
                           "stray quote: a quote (\") opened in column {column} of row {row} runs over {lines} lines "
                           "that look like rows; close or remove it"),
    "reject.wrong_fields": ("列の数が違います (見出しは {width} 列、この行は {n} 列)",
                            "wrong number of fields ({n} where the header has {width})"),
    "reject.undecodable": ("読めないバイト: {encoding} のテキストではありません "
                           "(ファイルを {encoding} として読んでいます)",
                           "undecodable bytes: not {encoding} text (the file is read as {encoding})"),
    "reject.too_large_column": ("値が長すぎます: {row}行目の列 {column} が {length} 文字で、"
                                "1つの値の上限 {limit} 文字を"
                                "超えています。短くするか取り除いてください",
                                "value too large: column {column} of row {row} holds {length} characters, more than "
                                "the {limit} a value may have (the field-size limit); shorten or remove it"),
    "reject.too_large_field": ("値が長すぎます: {row}行目の {field} 番目の値が {length} 文字で、1つの値の上限 {limit} "
                               "文字を超えています。短くするか取り除いてください",
                               "value too large: field {field} of row {row} holds {length} characters, more than "
                               "the {limit} a value may have (the field-size limit); shorten or remove it"),
    "reject.unclosed_quote": ("閉じていない引用符: {row}行目で開いた引用符 (\") が閉じられていません。閉じるか"
                              "取り除いてください",
                              "unclosed quote: a quote (\") opened in row {row} is never closed; close or remove it"),
    "reject.quote_inside": ("値の中の引用符: {row}行目 ({problem})。値全体を引用符で囲むか、引用符を取り除いてください",
                            "quote inside a value: row {row} ({problem}); quote the whole value or remove the quote"),
    "reject.formula": ("保存された値のない数式: ブックの数式に計算済みの値がありません (Excel で保存されていません)。"
                       "Excel で開いて保存するか、シートを CSV に書き出してから取り込み直してください",
                       "formula without a saved value: the workbook's formulas have no saved values (it was not "
                       "saved by Excel); open it in Excel and save it, or export the sheet to CSV, "
                       "and import it again"),
    # kizuna run's warnings (kizuna.scenarios: RunReport.problems)
    "run.no_smtp": ("メール {n}件は送信待ちです: SMTPサーバーが設定されていません。kizuna.toml の [email] smtp_url を"
                    "設定してください。",
                    "{n} e-mails wait: no SMTP server is set; fill in [email] smtp_url in kizuna.toml."),
    "run.no_line_token": ("LINE {n}件は送信待ちです: 環境変数 KIZUNA_LINE_TOKEN にチャネルアクセストークンを"
                          "設定してください。",
                          "{n} LINE messages wait: set KIZUNA_LINE_TOKEN to the channel access token."),
    "run.channel_trouble": ("{channel}: {reason} (残りは次回の実行で送ります)",
                            "{channel}: {reason} (the rest wait for the next run)"),
}


# -- scenario switches and test sends (kizuna.scenarios: switches; the scenario pages) -------------
_SWITCHES: dict[str, tuple[str, str]] = {
    "switch.nav": ("シナリオ", "Scenarios"),
    "switch.title": ("シナリオ", "Scenarios"),
    "switch.back": ("シナリオ一覧へ", "All scenarios"),
    "switch.state_on": ("オン", "on"),
    "switch.state_paused": ("一時停止", "paused"),
    "switch.state_off": ("オフ", "off"),
    "switch.action_on": ("オンにする", "Switch on"),
    "switch.action_paused": ("一時停止する", "Pause"),
    "switch.action_off": ("オフにする", "Switch off"),
    "switch.off_in_file_note": ("ファイルで停止中 (enabled: false)", "off in its file (enabled: false)"),
    "switch.switched_by": ("{by} が切替 ({at})", "switched by {by} ({at})"),
    "switch.help_on": ("オン: cron の kizuna run が対象を判定し、予定のメッセージを送ります。",
                       "On: cron's kizuna run finds the occasions and sends what is due."),
    "switch.help_paused": (
        "一時停止: 判定も送信もしません。すでに予定済みのメッセージ (次のステップ・保留中) は、オンに戻すと送られます。"
        "停止中に生じた機会は、オンに戻しても遡って送りません。",
        "Paused: nothing is evaluated or sent. Messages already scheduled (a later step, a deferred one) go once it "
        "is on again; occasions that came while it was paused are not caught up."),
    "switch.help_off": (
        "オフ: 判定も送信もしません。オフにした時点で未送信のメッセージは取り消され、オンに戻すと新しく始まります"
        " (停止中の機会は遡りません)。",
        "Off: nothing is evaluated or sent. Its messages not yet sent are cancelled when it is switched off, and it "
        "starts afresh when switched on (occasions while it was off are not caught up)."),
    "switch.none": ("シナリオがありません。ワークスペースの scenarios/ フォルダーにYAMLファイルを置いてください。",
                    "No scenarios: put YAML files in the workspace's scenarios/ folder."),
    "switch.column_name": ("名前", "name"),
    "switch.column_title": ("シナリオ", "scenario"),
    "switch.column_state": ("状態", "state"),
    "switch.column_steps": ("ステップ", "steps"),
    "switch.column_steps_due": ("ステップ (次回の送信予定)", "steps (due at the next run)"),
    "switch.column_switch": ("切替", "switch"),
    "switch.column_wait": ("待ち日数", "wait"),
    "switch.column_changed_by": ("切替した人", "switched by"),
    "switch.column_changed_at": ("切替日時", "switched at"),
    "switch.wait": ("{n}日後", "+{n} d"),
    "switch.step_n": ("ステップ{n}", "step {n}"),
    "switch.due_title": ("次回実行の予定件数", "Due at the next run"),
    "switch.due_short": ("送信予定 {n}件", "{n} due"),
    "switch.deferred_short": ("保留 {n}件", "{n} deferred"),
    "switch.due_if_on": ("今オンにした場合の件数", "if switched on now"),
    "switch.due_note": ("件数は kizuna run --dry-run と同じ計算です (送信・記録はしません)。{at} 時点。",
                        "Counted as kizuna run --dry-run counts (nothing sent or recorded), at {at}."),
    "switch.preview_title": ("顧客ごとのプレビュー", "Preview for a customer"),
    "switch.preview_customer": ("顧客ID", "Customer id"),
    "switch.preview_show": ("表示", "Show"),
    "switch.subject": ("件名", "Subject"),
    "switch.test_title": ("自分にテスト送信", "Send me a test"),
    "switch.test_button": ("テスト送信", "Send test"),
    "switch.test_to": ("送信先: {address}", "to {address}"),
    "switch.test_customer_hint": (
        "テストは上で表示した顧客の内容で送ります (未指定なら対象の先頭の顧客)。顧客の宛先には送られず、"
        "送信実績・頻度上限にも数えません。",
        "A test is rendered for the customer shown above (none: the first of the audience). It never goes to the "
        "customer, and counts in no result and against no frequency cap."),
    "switch.test_no_address_email": ("下でテスト用の自分のメールアドレスを登録してください。",
                                     "Give your own e-mail address below to send yourself tests."),
    "switch.test_no_address_line": ("下でテスト用の自分のLINEユーザーIDを登録してください。",
                                    "Give your own LINE user id below to send yourself tests."),
    "switch.test_list_only": ("リストで出力するチャネルです。プレビューで確認してください。",
                              "A channel of lists for people: the preview is its test."),
    "switch.test_done": ("ステップ{step}のテストを {address} に送りました。", "Test of step {step} sent to {address}."),
    "switch.test_prefix": ("【テスト】", "[TEST] "),
    "switch.my_addresses": ("テストの送り先 (自分)", "Where my tests go"),
    "switch.my_addresses_hint": ("テスト送信はここに登録した自分の宛先にだけ送られます。",
                                 "Test sends go only to your own addresses given here."),
    "switch.my_email": ("メールアドレス", "E-mail address"),
    "switch.my_line": ("LINEユーザーID", "LINE user id"),
    "switch.save": ("保存", "Save"),
    "switch.audit_title": ("操作履歴", "Audit"),
    "switch.audit_none": ("まだ操作はありません。", "Nothing done yet."),
    "switch.audit_at": ("日時", "when"),
    "switch.audit_user": ("操作した人", "who"),
    "switch.audit_action": ("操作", "what"),
    "switch.audit_count": ("件数", "messages"),
    "switch.audit.scenario.on": ("オンに切替", "switched on"),
    "switch.audit.scenario.paused": ("一時停止", "paused"),
    "switch.audit.scenario.off": ("オフに切替 (未送信を取消)", "switched off (unsent cancelled)"),
    "switch.audit.scenario.test": ("テスト送信", "test sent"),
    # the command line
    "switch.switched": ("「{title}」を{state}にしました。", "{title} is now {state}."),
    "switch.unchanged": ("「{title}」はすでに{state}です。", "{title} is {state} already."),
    "switch.cancelled": ("未送信のメッセージ {n} 件を取り消しました。", "{n} messages not yet sent were cancelled."),
    "switch.cancelled_one": ("未送信のメッセージ {n} 件を取り消しました。", "{n} message not yet sent was cancelled."),
    "switch.test_sent": ("テストを {address} に送りました (「{title}」ステップ{step}、顧客 {customer} の内容)。",
                         "Test sent to {address} (step {step} of {title}, as for customer {customer})."),
    # errors
    "switch.no_scenario": ("シナリオ「{name}」はありません (あるもの: {known})。",
                           "No scenario named {name} (there are: {known})."),
    "switch.no_step": ("シナリオ「{name}」のステップは1〜{steps}です。ステップ{step}はありません。",
                       "Scenario {name} has steps 1 to {steps}; there is no step {step}."),
    "switch.bad_state": ("状態「{state}」は指定できません。{states} のいずれかです。",
                         "{state} is not a state; give one of {states}."),
    "switch.off_in_file": (
        "シナリオ「{name}」はファイル {path} で enabled: false になっているため切り替えられません。"
        "ファイルを enabled: true にしてください。",
        "Scenario {name} is off in its file {path} (enabled: false); set enabled: true there to switch it."),
    "switch.run_paused": ("シナリオ「{name}」は一時停止中です ({by}、{at})。kizuna scenario on {name} で再開します。",
                          "Scenario {name} is paused ({by}, {at}); `kizuna scenario on {name}` switches it on."),
    "switch.run_off": ("シナリオ「{name}」はオフです ({by}、{at})。kizuna scenario on {name} でオンにします。",
                       "Scenario {name} is off ({by}, {at}); `kizuna scenario on {name}` switches it on."),
    "switch.test_list_channel": (
        "シナリオ「{name}」のステップ{step}は{channel}で、リストとして出力されます。テスト送信の代わりに "
        "kizuna scenario preview で確認してください。",
        "Step {step} of {name} goes by {channel}, a list for people: look at it with `kizuna scenario preview` "
        "instead of a test send."),
    "switch.test_needs_email": (
        "シナリオ「{name}」のステップ{step}はメールです。自分のメールアドレス (--to) を指定してください。",
        "Step {step} of {name} is an e-mail: give your own address (--to)."),
    "switch.test_needs_line": (
        "シナリオ「{name}」のステップ{step}はLINEです。自分のLINEユーザーID (--line) を指定してください。",
        "Step {step} of {name} goes by LINE: give your own LINE user id (--line)."),
    "switch.test_no_email_channel": (
        "メールを送るSMTPサーバーがありません。kizuna.toml の [email] smtp_url を設定してください。",
        "No SMTP server to send e-mail through: set [email] smtp_url in kizuna.toml."),
    "switch.test_no_line_channel": (
        "LINEに送れません。環境変数 KIZUNA_LINE_TOKEN にチャネルアクセストークンを設定してください。",
        "LINE cannot be reached: set KIZUNA_LINE_TOKEN to the channel access token."),
    "switch.test_no_customers": ("顧客がいないため、テストの内容を作れません。先に顧客を取り込んでください。",
                                 "No customers to render a test for: import customers first."),
    "switch.bad_email": ("「{value}」はメールアドレスとして使えません (例: hanako@example.jp)。",
                         "{value} is not an e-mail address kizuna can send to (e.g. hanako@example.jp)."),
    "switch.bad_line_id": ("「{value}」はLINEユーザーIDではありません (U と16進数32桁)。",
                           "{value} is not a LINE user id (U and 32 hexadecimal digits)."),
}


# -- saved segments and one-off campaigns (kizuna.scenarios: segments/, campaigns/; their pages) -----
_OUTREACH: dict[str, tuple[str, str]] = {
    # mistakes in segments/NAME.yaml, in --where, in the builder
    "saved_segment.not_mapping": ("保存済みセグメントは title と where を持つマッピングです。",
                                  "a saved segment is a mapping of title and where."),
    "saved_segment.set_operator": ("{column} には in、not in、==、!= だけが使えます "
                                   "(例: {column} in [A, B])。",
                                   "{column} takes in, not in, == or != (e.g. {column} in [A, B])."),
    "saved_segment.not_found": ("保存済みセグメント「{name}」は {folder} にありません "
                                "(あるもの: {known})。",
                                "no saved segment named {name} in {folder} (there are: {known})."),
    "saved_segment.bad_name": ("名前 {name}: 英数字と - _ . だけを使い、64文字以内にしてください。",
                               "the name {name}: use letters, digits, - _ . (up to 64)."),
    "saved_segment.bad_value": ("「{condition}」: 値にカンマや角かっこは使えません。",
                                "{condition}: a value cannot hold a comma or a bracket."),
    "saved_segment.needs_scores": ("先に `kizuna analyze` を実行してください。", "Run `kizuna analyze` first."),
    "saved_segment.needs_tables": ("この条件は注文と顧客のテーブルを読みます。",
                                   "this condition reads the orders and customers."),
    "saved_segment.missing": ("保存済みセグメント {name} が {folder} にありません。"
                              "`kizuna segment list` で名前を確かめてください。",
                              "no saved segment {name} in {folder}; see `kizuna segment list` for the names."),
    "saved_segment.in_use": ("セグメント {name} は {users} で使われているため削除できません。"
                             "先にそちらを変えてください。",
                             "the segment {name} is used by {users}; change them first."),
    "saved_segment.cannot_write": ("{path} に書き込めません ({problem})。"
                                   "-o で別のファイルを指定してください。",
                                   "cannot write {path} ({problem}). Choose another file with -o."),
    # kizuna segment
    "saved_segment.title_list": ("保存済みセグメント", "Saved segments"),
    "saved_segment.none": ("保存済みセグメントはまだありません。`kizuna segment save` で作れます。",
                           "No saved segments yet; make one with `kizuna segment save`."),
    "saved_segment.column_name": ("名前", "name"),
    "saved_segment.column_title": ("タイトル", "title"),
    "saved_segment.column_where": ("条件", "conditions"),
    "saved_segment.customer_share": ("顧客に占める割合", "share of customers"),
    "saved_segment.revenue": ("累計売上", "lifetime revenue"),
    "saved_segment.deleted": ("{path} を削除しました", "{path} deleted"),
    # the segment builder (web)
    "segbuild.nav": ("セグメント", "Segments"),
    "segbuild.title_list": ("保存済みセグメント", "Saved segments"),
    "segbuild.title_new": ("新しいセグメント", "New segment"),
    "segbuild.new": ("新しいセグメントを作る", "Build a segment"),
    "segbuild.back": ("セグメント一覧へ", "All segments"),
    "segbuild.help_list": ("保存したセグメントは、シナリオの対象 (audience: segment)、顧客リストの出力、"
                           "キャンペーンの送り先に使えます。",
                           "A saved segment can be a scenario's audience (audience: segment), a customer "
                           "list to export, or a campaign's recipients."),
    "segbuild.none": ("保存済みセグメントはまだありません。", "No saved segments yet."),
    "segbuild.column_title": ("セグメント", "Segment"),
    "segbuild.column_where": ("条件", "Conditions"),
    "segbuild.column_users": ("使っているもの", "Used by"),
    "segbuild.everyone": ("全顧客", "every customer"),
    "segbuild.delete": ("削除", "Delete"),
    "segbuild.deleted": ("セグメント {name} を削除しました。", "The segment {name} was deleted."),
    "segbuild.conditions": ("条件 (すべてを満たす顧客)", "Conditions (customers who meet all of them)"),
    "segbuild.help": ("項目・比べ方・値を選びます。件数と売上シェアは入力に合わせて更新されます。"
                      "項目を選んだら「件数を表示」を押すと、その項目の選択肢が出ます。",
                      "Pick a field, how to compare and a value; the count and revenue share follow "
                      "as you type. After picking a field, Count shows that field's choices."),
    "segbuild.field": ("項目", "Field"),
    "segbuild.operator": ("比べ方", "Comparison"),
    "segbuild.value": ("値", "Value"),
    "segbuild.choose_field": ("— 項目を選ぶ —", "— choose a field —"),
    "segbuild.add_hint": ("項目を選ぶと条件を追加できます", "choose a field to add a condition"),
    "segbuild.is": ("が", "is"),
    "segbuild.yes": ("はい", "yes"),
    "segbuild.no": ("いいえ", "no"),
    "segbuild.many_hint": ("Ctrl (Mac は ⌘) を押しながら複数選べます", "hold Ctrl (⌘ on a Mac) to pick several"),
    "segbuild.share_hint": ("0〜1 (0.5 = 50%)", "0 to 1 (0.5 = 50%)"),
    "segbuild.count": ("件数を表示", "Count"),
    "segbuild.count_text": ("{n}人 (全顧客の{share})・売上シェア {revenue_share}",
                            "{n} customers ({share} of all) · revenue share {revenue_share}"),
    "segbuild.save_title": ("名前を付けて保存", "Save by name"),
    "segbuild.name": ("名前 (ファイル名)", "Name (file name)"),
    "segbuild.name_hint": ("英数字と - _ . (例: spring-lapsed)。同じ名前なら上書きします。",
                           "letters, digits, - _ . (e.g. spring-lapsed); the same name replaces it."),
    "segbuild.title_ja": ("タイトル (日本語)", "Title (Japanese)"),
    "segbuild.title_en": ("タイトル (英語)", "Title (English)"),
    "segbuild.save": ("保存", "Save"),
    "segbuild.saved": ("保存しました。", "Saved."),
    "segbuild.viewer_note": ("閲覧者は件数を見ることができます。保存はオペレーターが行います。",
                             "Viewers can count; an operator saves."),
    "segbuild.used_by": ("使っているもの: {users}", "used by {users}"),
    "segbuild.values_and": ("・", ", "),
    "segbuild.row_incomplete": ("値を入れてください。", "give a value."),
    "segbuild.bad_name": ("名前には英数字と - _ . だけを使い、64文字以内にしてください。",
                          "Use letters, digits, - _ . in the name (up to 64)."),
    "segbuild.fix_rows": ("印の付いた条件を直してください。", "Fix the conditions marked."),
    "segbuild.no_rows": ("条件を1つ以上選んでください。", "Choose at least one condition."),
    "segbuild.group_scores": ("スコア", "Scores"),
    "segbuild.group_predictions": ("予測", "Predictions"),
    "segbuild.group_lifecycle": ("ライフサイクル", "Lifecycle"),
    "segbuild.group_products": ("購入した商品", "Products bought"),
    "segbuild.group_channels": ("チャネル", "Channels"),
    "segbuild.group_consents": ("配信の同意", "Consents"),
    "segbuild.group_other": ("その他 (ファイルに書かれた項目)", "Other (as the file names them)"),
    "segop.ge": ("以上", "at least"), "segop.le": ("以下", "at most"), "segop.gt": ("より大きい", "more than"),
    "segop.lt": ("未満", "less than"), "segop.eq": ("に等しい", "equal to"), "segop.ne": ("以外", "not equal to"),
    "segop.in": ("のいずれか", "is one of"), "segop.not_in": ("のいずれでもない", "is none of"),
    "segfield.ltv_revenue": ("LTV (累計売上, 円)", "LTV (lifetime revenue, yen)"),
    "segfield.orders": ("購入回数", "orders"),
    "segfield.recency_days": ("最終購入からの日数", "days since last order"),
    "segfield.frequency": ("購入頻度 (集計期間の回数)", "frequency (orders in the RFM window)"),
    "segfield.monetary": ("購入金額 (集計期間, 円)", "monetary (yen in the RFM window)"),
    "segfield.aov": ("平均購入単価 (円)", "average order value (yen)"),
    "segfield.tenure_days": ("初回購入からの日数", "days since first order"),
    "segfield.r_score": ("Rスコア (1〜5)", "R score (1–5)"),
    "segfield.f_score": ("Fスコア (1〜5)", "F score (1–5)"),
    "segfield.m_score": ("Mスコア (1〜5)", "M score (1–5)"),
    "segfield.nps_score": ("NPS回答 (0〜10)", "NPS answer (0–10)"),
    "segfield.rfm_rank": ("RFMランク", "RFM rank"),
    "segfield.matrix_cell": ("NPS×LTVセル", "NPS × LTV cell"),
    "segfield.rfm_segment": ("RFMセグメント", "RFM segment"),
    "segfield.nps_class": ("NPS区分", "NPS class"),
    "segfield.near_loyal": ("ロイヤルまであと一歩", "one step from loyal"),
    "segfield.dormant": ("休眠顧客", "dormant"),
    "segfield.lapsing": ("購入周期遅れ", "lapsing"),
    "segfield.lost_reason": ("離脱の理由", "reason lost"),
    "segfield.churn_risk": ("離脱確率", "churn risk"),
    "segfield.p_alive": ("継続している確率", "probability still a customer"),
    "segfield.value_at_risk": ("離脱リスク金額 (円)", "value at risk (yen)"),
    "segfield.clv": ("予測LTV (円)", "predicted lifetime value (yen)"),
    "segfield.expected_orders": ("期待購入回数", "expected orders"),
    "segfield.cancel_probability": ("解約確率", "cancellation probability"),
    "segfield.lifecycle_state": ("ライフサイクルの状態", "lifecycle state"),
    "segfield.products_bought": ("購入した商品", "products bought"),
    "segfield.order_channels": ("購入した販売チャネル", "sales channels ordered through"),
    "segfield.has_email": ("メールアドレスがある", "has an e-mail address"),
    "segfield.has_line": ("LINEでつながっている", "connected on LINE"),
    "segfield.has_address": ("住所がある", "has a postal address"),
    "segfield.has_phone": ("電話番号がある", "has a phone number"),
    "segfield.email_consent": ("メール配信に同意", "agreed to e-mail"),
    "segfield.line_consent": ("LINE配信を許可", "accepts LINE messages"),
    "segfield.dm_consent": ("DM送付を許可", "accepts direct mail"),
    # mistakes in campaigns/NAME.yaml and its form
    "campaign.not_mapping": ("キャンペーンは segment、channel、body などを持つマッピングです。",
                             "a campaign is a mapping of segment, channel, body and the rest."),
    "campaign.not_found": ("キャンペーン「{name}」は {folder} にありません (あるもの: {known})。",
                           "no campaign named {name} in {folder} (there are: {known})."),
    "campaign.bad_moment": ("{value} は日時として読めません。2027-03-01 10:00 のように書いてください。",
                            "{value} is not a date and time; write it like 2027-03-01 10:00."),
    "campaign.ab_list": ("ab は2つ以上のパターン ({{name, share, subject, body}}) の一覧です。",
                         "ab is a list of two or more variants ({{name, share, subject, body}})."),
    "campaign.bad_variant_name": ("パターン名 {name}: 英数字と - _ で16文字以内、重複なしにしてください。",
                                  "variant name {name}: letters, digits, - and _ (up to 16), each name once."),
    "campaign.shares": ("パターンの share の合計が {total} です。合計を 1 (100%) にしてください。",
                        "the variants' shares add up to {total}; make them add up to 1 (100%)."),
    "campaign.unknown_segment": ("{name} は保存済みセグメント (segments/) にも既定のセグメントにも"
                                 "ありません: {problem}",
                                 "{name} is neither a saved segment (segments/) nor a segment: {problem}"),
    "campaign.no_variant": ("パターン {variant} はありません (1 から {count})。",
                            "there is no variant {variant} (1 to {count})."),
    "campaign.confirm": ("{n} 件を{channel}で送ります。[delivery] confirm_over ({limit} 件) を超えるため、"
                         "確認のうえ --yes を付けて実行してください。",
                         "this sends {n} messages by {channel}, more than [delivery] confirm_over "
                         "({limit}): check and run again with --yes."),
    "campaign.bad_percent": ("「{value}」は割合 (%) として読めません。", "{value} is not a percentage."),
    "campaign.bad_number": ("「{value}」は数として読めません。", "{value} is not a number."),
    "campaign.bad_time": ("「{value}」は日時として読めません。", "{value} is not a date and time."),
    # kizuna campaign, the campaign pages
    "campaign.nav": ("キャンペーン", "Campaigns"),
    "campaign.title_list": ("キャンペーン", "Campaigns"),
    "campaign.title_new": ("新しいキャンペーン", "New campaign"),
    "campaign.title_plan": ("送信の見込み", "Who it reaches"),
    "campaign.title_dry": ("キャンペーン (試算: 送信も記録もしていません)",
                           "Campaign (dry run: nothing sent or recorded)"),
    "campaign.title_sent": ("キャンペーンの送信", "Campaign sent"),
    "campaign.none": ("キャンペーンはまだありません。", "No campaigns yet."),
    "campaign.new": ("新しいキャンペーン", "New campaign"),
    "campaign.back": ("キャンペーン一覧へ", "All campaigns"),
    "campaign.help_list": ("1回限りの配信 (メルマガ、季節のDM など)。送信は送信台帳を通り、"
                           "同じ顧客には1度だけ届きます。"
                           "配信停止・頻度上限・深夜帯・祝日はシナリオと同じく守られます。",
                           "One-off sends (newsletters, seasonal DMs). They go through the send ledger, "
                           "once per customer, and follow the consents, the frequency cap, quiet hours and "
                           "holidays as scenarios do."),
    "campaign.state_draft": ("下書き", "draft"),
    "campaign.state_scheduled": ("予約済み", "scheduled"),
    "campaign.state_sent": ("送信済み", "sent"),
    "campaign.column_name": ("名前", "name"),
    "campaign.column_title": ("キャンペーン", "campaign"),
    "campaign.column_state": ("状態", "state"),
    "campaign.column_segment": ("送り先", "recipients"),
    "campaign.column_channel": ("チャネル", "channel"),
    "campaign.column_send_at": ("送信日時", "send at"),
    "campaign.column_holdout": ("対照群", "control group"),
    "campaign.column_enrolled": ("対象", "enrolled"),
    "campaign.column_sent": ("送信", "sent"),
    "campaign.column_waiting": ("待機", "waiting"),
    "campaign.column_variant": ("パターン", "variant"),
    "campaign.plan_members": ("セグメントの顧客", "customers in the segment"),
    "campaign.plan_holdout": ("対照群 (送らない)", "control group (not sent)"),
    "campaign.plan_variant": ("パターン {variant}", "variant {variant}"),
    "campaign.plan_treated": ("送る対象", "to receive it"),
    "campaign.plan_reachable": ("うち届けられる {n}", "{n} of them reachable"),
    "campaign.plan_to_send": ("送信数", "messages to send"),
    "campaign.plan_to_send_text": ("{n} 件 ({channel})", "{n} by {channel}"),
    "campaign.plan_enrolled": ("送信済み (台帳)", "already in the ledger"),
    "campaign.plan_waiting": ("まだ待機中", "still waiting"),
    "campaign.plan_budget": ("月の予算 {budget}: 超える分は翌月に送られます",
                             "monthly budget {budget}: what goes beyond it is sent next month"),
    "campaign.test_done": ("テストを {address} に送りました (顧客 {customer} の内容)。",
                           "Test sent to {address} (as customer {customer} would get it)."),
    "campaign.send_title": ("送信", "Send"),
    "campaign.send_help": ("もう一度送っても、同じ顧客に2度は届きません。"
                           "{limit} 件を超える送信は確認してから行います。",
                           "Sending again never reaches a customer twice. A send of more than {limit} "
                           "messages asks to be confirmed."),
    "campaign.send_now": ("今すぐ送信", "Send now"),
    "campaign.send_at": ("送信日時", "Send at"),
    "campaign.send_at_hint": ("空欄なら下書き。日時を入れると、その後の kizuna run が送ります。",
                              "Empty: a draft. With a time, the first kizuna run after it sends it."),
    "campaign.schedule": ("この日時に予約", "Schedule"),
    "campaign.unschedule": ("予約を取り消す", "Cancel the schedule"),
    "campaign.started": ("送信を始めました。再読み込みすると進み具合がわかります。",
                         "Sending has started; reload to see how far it got."),
    "campaign.saved": ("保存しました。", "Saved."),
    "campaign.ledger_counts": ("送信 {sent}・待機 {waiting}・配信停止等 {suppressed}・失敗 {failed}・対照群 {holdout}",
                               "sent {sent} · waiting {waiting} · suppressed {suppressed} · failed {failed} · "
                               "control {holdout}"),
    "campaign.confirm_title": ("送信の確認", "Confirm the send"),
    "campaign.confirm_send": ("{n} 件を{channel}で今すぐ送ります ({limit} 件を超えています)。よろしいですか?",
                              "This sends {n} messages by {channel} now (more than {limit}). Go ahead?"),
    "campaign.confirm_schedule": ("{at} に {n} 件を{channel}で送る予約をします ({limit} 件を超えています)。"
                                  "よろしいですか?",
                                  "This schedules {n} messages by {channel} for {at} (more than {limit}). "
                                  "Go ahead?"),
    "campaign.confirm_yes": ("送信する", "Yes, send"),
    "campaign.confirm_no": ("やめる", "Cancel"),
    "campaign.preview_title": ("プレビュー (顧客を1人選んで表示)", "Preview (for one customer)"),
    "campaign.preview_customer": ("顧客ID", "Customer id"),
    "campaign.preview_show": ("表示", "Show"),
    "campaign.subject": ("件名", "Subject"),
    "campaign.form_title": ("内容", "Content"),
    "campaign.viewer_note": ("閲覧者は内容を見ることができます。編集と送信はオペレーターが行います。",
                             "Viewers see the campaign; an operator edits and sends it."),
    "campaign.name": ("名前 (ファイル名)", "Name (file name)"),
    "campaign.title_ja": ("タイトル (日本語)", "Title (Japanese)"),
    "campaign.title_en": ("タイトル (英語)", "Title (English)"),
    "campaign.choose_segment": ("— 送り先を選ぶ —", "— choose the recipients —"),
    "campaign.build_segment": ("セグメントを作る", "Build a segment"),
    "campaign.segments_saved": ("保存済みセグメント", "Saved segments"),
    "campaign.segments_matrix": ("NPS×LTVセル", "NPS × LTV cells"),
    "campaign.segments_lifecycle": ("ライフサイクル", "Lifecycle"),
    "campaign.segments_rfm": ("RFMセグメント", "RFM segments"),
    "campaign.lang": ("メッセージの言語", "Message language"),
    "campaign.lang_ja": ("日本語", "Japanese"),
    "campaign.lang_en": ("英語", "English"),
    "campaign.holdout_percent": ("対照群 (%)", "Control group (%)"),
    "campaign.holdout_hint": ("送らずに効果を測る顧客の割合。空欄なら設定の値 ([delivery] holdout_share)。",
                              "The share of customers not sent to, to measure the effect; empty: "
                              "[delivery] holdout_share."),
    "campaign.goal_days": ("効果を数える日数 (送信後の注文)", "Days to count orders after the send"),
    "campaign.budget": ("月の予算 (円、空欄なら上限なし)", "Monthly budget (yen; empty: no limit)"),
    "campaign.subject_ja": ("件名 (日本語)", "Subject (Japanese)"),
    "campaign.subject_en": ("件名 (英語)", "Subject (English)"),
    "campaign.body_ja": ("本文 (日本語)", "Text (Japanese)"),
    "campaign.body_en": ("本文 (英語)", "Text (English)"),
    "campaign.template_hint": ("シナリオと同じ差し込み項目が使えます: {example} など。",
                               "The same fields as in scenarios: {example} and the rest."),
    "campaign.ab_title": ("A/Bテスト", "A/B test"),
    "campaign.ab_help": ("パターンごとに件名や本文を変え、割合 (%) で顧客を分けます (合計100%)。空欄の件名・本文は"
                         "上の内容を使います。顧客の割り当ては顧客IDから決まり、送り直しても変わりません。",
                         "Each variant may change the subject or text; customers are split by the shares "
                         "(adding up to 100%). An empty subject or text is the one above. A customer's "
                         "variant follows from their id and never changes."),
    "campaign.variant_name": ("パターン名", "Variant"),
    "campaign.variant_share": ("割合 (%)", "Share (%)"),
    "campaign.save": ("保存", "Save"),
    "campaign.audit_title": ("操作の記録", "Audit"),
    "campaign.audit_none": ("まだ操作はありません。", "Nothing done yet."),
    "campaign.audit_at": ("日時", "When"),
    "campaign.audit_user": ("ユーザー", "Who"),
    "campaign.audit_action": ("操作", "What"),
    "campaign.audit_count": ("件数", "How many"),
    "campaign.audit.campaign.save": ("保存", "saved"),
    "campaign.audit.campaign.schedule": ("送信を予約", "scheduled"),
    "campaign.audit.campaign.unschedule": ("予約を取り消し", "schedule cancelled"),
    "campaign.audit.campaign.send": ("送信 (台帳に登録)", "sent (enrolled in the ledger)"),
}

# -- looking up -----------------------------------------------------------------------------------
def text(key: str, lang: str = "ja", /, count: float | None = None, **values: object) -> str:
    """The text of `key` in `lang` (Japanese unless "en"), its {fields} filled from `values`.

    `count` picks the singular (``key + "_one"``) when it rounds to 1 and the catalogue has one.
    An unknown key is a KeyError: a code must not reach a person.

    >>> text("forget.list_rows", "en", count=1, n=1)
    '1 row removed'
    """
    pat = pattern(key, lang, count)
    return pat.format(**values) if values else pat


def pattern(key: str, lang: str = "ja", count: float | None = None) -> str:
    """The unfilled text of `key` in `lang` (for filling many times over in a loop)."""
    if count is not None and round(count) == 1 and f"{key}_one" in _CATALOGUE:
        key = f"{key}_one"
    return _CATALOGUE[key][0 if lang == "ja" else 1]


def section(prefix: str, lang: str = "ja") -> dict[str, str]:
    """Every text whose key starts with `prefix` ("public."), by the rest of its key, in `lang`."""
    i = 0 if lang == "ja" else 1
    return {key[len(prefix):]: pair[i] for key, pair in _CATALOGUE.items() if key.startswith(prefix)}


def label(key: str, lang: str = "ja") -> str:
    """The label for `key` in `lang`; the key itself when none is defined (a data value shown as is)."""
    pair = _CATALOGUE.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]


def segment_label(key: str | None, lang: str = "ja") -> str:
    """The name of a segment, rank or flag id in `lang`; "" for None, the id itself when unknown."""
    if key is None:
        return ""
    pair = SEGMENT_LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]


def value_label(kind: str, value: str | None, lang: str = "ja") -> str:
    """A value of the data in words: the catalogue's ``kind.value`` (``sales_channel.web`` → ECサイト), else
    the value as the shop wrote it (its own channel names, a status from its export); "" for None.

    >>> value_label("sales_channel", "web"), value_label("sales_channel", "楽天市場"), value_label("order_status", None)
    ('ECサイト', '楽天市場', '')
    """
    if value is None:
        return ""
    pair = _CATALOGUE.get(f"{kind}.{value}")
    return value if pair is None else pair[0 if lang == "ja" else 1]


def segment_key(name: str) -> str | None:
    """The segment id for a name typed by a user: an id, or a Japanese or English label."""
    wanted = name.strip().lower()
    for key, (ja, en) in SEGMENT_LABELS.items():
        if wanted in (key, ja.lower(), en.lower()):
            return key
    return None


def ordinal(n: int, lang: str = "ja") -> str:
    """A position in words' digits: "3" in Japanese (the text says 目), "3rd" in English."""
    if lang == "ja":
        return str(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- yen as a manager reads it ----------------------------------------------------------------------
MONEY_SHORT_FROM = 1_000_000  # from here on a tile or a chart says 万円 / 億円 (millions, billions)
# each language's units, smallest first: (yen per unit, decimals, catalogue key)
_MONEY_UNITS = {
    "ja": ((10_000, 0, "money.medium"), (100_000_000, 1, "money.large")),
    "en": ((1_000_000, 1, "money.medium"), (1_000_000_000, 1, "money.large")),
}


def _half_up(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def money(value: float | int | None, lang: str = "ja", *, exact: bool = False) -> str:
    """Yen for a tile or a chart: whole yen below ¥1,000,000, above it the units people say.

    Japanese: 万円 without decimals, from 1億 on 億円 with one; English: millions and billions with
    one decimal. Rounding is half up (half a unit goes to the larger figure, as people round money,
    not Python's round-half-even); a figure that rounds up to the next unit is shown in it
    (¥99,995,000 is 1.0億円, not 10,000万円). Tables and files show exact yen (`exact=True`). None
    is "".

    >>> money(12_345_678), money(400_488_728), money(400_488_728, "en"), money(999_999)
    ('1,235万円', '4.0億円', '¥400.5M', '¥999,999')
    """
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    yen = _half_up(abs(Decimal(str(value))), 0)
    if exact or yen < MONEY_SHORT_FROM:
        return f"{sign}{pattern('money.exact', lang).format(n=f'{yen:,.0f}')}"
    units = _MONEY_UNITS["ja" if lang == "ja" else "en"]
    size, decimals, key = units[0]
    for bigger in units[1:]:  # a larger unit once the figure reaches it, after rounding in the smaller
        if _half_up(yen / size, decimals) * size >= bigger[0]:
            size, decimals, key = bigger
    shown = _half_up(yen / size, decimals)
    return f"{sign}{pattern(key, lang).format(n=f'{shown:,.{decimals}f}')}"


def change_text(value: float | None, unit: str, lang: str = "ja") -> str:
    """A change for people, with its arrow: "↑ +2.9%" (`unit` "percent": `value` a fraction), "↓ -1.2pt"
    ("points"), "→ ±0.0%" when it rounds to nothing, "—" when there is nothing to compare with.

    >>> change_text(0.0287, "percent"), change_text(-1.247, "points", "en"), change_text(None, "points")
    ('↑ +2.9%', '↓ -1.2 pt', '—')
    """
    if value is None:
        return "—"
    shown = _half_up(Decimal(str(value * 100 if unit == "percent" else value)), 1)
    arrow, number = ("→", f"±{abs(shown):.1f}") if shown == 0 else ("↑" if shown > 0 else "↓", f"{shown:+,.1f}")
    return f"{arrow} {pattern('change.' + unit, lang).format(n=number)}"


def say(said: Phrase | KizunaError | str | Any, lang: str = "ja") -> str:
    """What a person reads for `said` in `lang`: a `Phrase` in words (the phrases among its values too, and
    a list among them as its items said and joined), a `KizunaError` its message, anything else as it is.

    >>> say(Phrase.of("error.in_file", path="a.csv", problem=Phrase.of("error.file_not_found")), "en")
    'a.csv: file not found. Check the path.'
    """
    if isinstance(said, KizunaError):
        said = said.phrase if said.phrase is not None else str(said)
    if not isinstance(said, Phrase):
        return str(said)
    values = {name: _said(value, lang) for name, value in said.values.items()}
    return text(said.key, lang, **values)


def _said(value: Any, lang: str) -> Any:
    if isinstance(value, Phrase):
        return say(value, lang)
    if isinstance(value, list | tuple):
        return pattern("list.separator", lang).join(str(_said(item, lang)) for item in value)
    return value


def fields(pattern_text: str) -> set[str]:
    """The names of the {fields} of a text: the same for both languages of a key."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(pattern_text)
            if name is not None}


# -- the catalogue: every area above in one mapping (keep this last) ------------------------------
def _merge(*areas: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    merged: dict[str, tuple[str, str]] = {}
    for area in areas:
        for key, pair in area.items():
            if key in merged and merged[key] != pair:
                raise ValueError(f"kizuna.i18n: {key!r} is defined twice with different texts")
            merged[key] = pair
    return merged


_CATALOGUE = _merge(_LABELS, _WEB, _RESULT_COLUMNS, {f"segment.{key}": pair for key, pair in SEGMENT_LABELS.items()},
                    _LISTS, _REASONS, _CHART, _RANKS, _FORGET, _PUBLIC, _EMAIL, _CODES, _ERRORS,
                    _SWITCHES, _OUTREACH)
CATALOGUE: Mapping[str, tuple[str, str]] = MappingProxyType(_CATALOGUE)
use_catalogue(say)  # errors below this layer carry phrases; they are said in words from here on
