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
    "chart": ("グラフ", "chart"),
    "action_detractor_follow_up": ("48時間以内のフォロー電話 (批判者)", "follow-up call within 48 h (detractor)"),
    "action_hearing_call": ("ヒアリング電話 (課題の解決)", "hearing call: solve the problem"),
    "action_new_offer": ("新しい状況に合わせた提案", "new offer for the changed situation"),
    "action_loyal_programme": ("ロイヤル化プログラム (好きになってもらうメール)",
                               "loyal programme (come-to-like-it mail)"),
    "action_near_loyal_treatment": ("ロイヤル一歩手前の特別対応", "near-loyal special treatment"),
    "action_reminder": ("リマインド (メール・電話)", "reminder by e-mail or phone"),
    "action_check_in": ("お礼と近況確認の電話", "thank-you and check-in call"),
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
}

# scenarios (`kizuna run`, `kizuna results`, docs/measures.md §4-§5)
_LABELS |= {
    "run_scenario": ("シナリオ", "Scenario"), "run_step": ("ステップ", "Step"), "run_channel": ("チャネル", "Channel"),
    "run_enrolled": ("対象", "Enrolled"), "run_holdout": ("対照群", "Control"), "run_sent": ("送信", "Sent"),
    "run_would_send": ("送信予定", "Would send"), "run_failed": ("失敗", "Failed"),
    "run_deferred": ("保留", "Deferred"),
    "run_suppressed": ("配信停止等", "Suppressed"), "run_cancelled": ("目標達成", "Goal reached"),
    "run_waiting": ("待機", "Waiting"), "run_unconfirmed": ("未確認", "Unconfirmed"), "run_due": ("配信時期", "Due"),
    "run_resend": ("再送待ち (同一Message-ID)", "To resend (same Message-ID)"),
    "run_delivered": ("到達", "Delivered"), "run_treated_rate": ("施策群CVR", "Treated rate"),
    "run_control_rate": ("対照群CVR", "Control rate"), "run_uplift": ("差 (95%区間)", "Uplift (95% CI)"),
    "run_verdict": ("判定", "Verdict"), "run_incremental_revenue": ("増分売上", "Incremental revenue"),
    "title_run": ("シナリオ実行", "Scenario run"),
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


def label(key: str, lang: str = "ja") -> str:
    """The label for `key` in `lang`; the key itself when none is defined."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "ja" else pair[1]

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
