"""Prediction (docs/measures.md §3): who is still alive, what each customer is worth, who is about to leave, and
whom the contact centre calls first."""

from typing import TYPE_CHECKING

from kizuna._lazy import lazy_getattr
from kizuna.prediction._calls import call_holdout, in_call_holdout
from kizuna.prediction._settings import CallSettings, PredictionSettings

if TYPE_CHECKING:
    from kizuna.prediction._backtest import (
        Backtest,
        CallBacktest,
        backtest,
        backtest_report,
        call_backtest,
        write_backtest_report,
    )
    from kizuna.prediction._call_rules import CallRules, call_blocker, fresh_answer, last_calls, recently_called
    from kizuna.prediction._chart import write_holdout_chart
    from kizuna.prediction._churn import boosting_threads
    from kizuna.prediction._features import (
        CHURN_FEATURES,
        MODEL_COLUMNS,
        REASON_CONTEXT,
        churn_labels,
        customer_features,
    )
    from kizuna.prediction._in_engine import SAMPLE_CUSTOMERS, customer_sample, predict_in_engine
    from kizuna.prediction._predict import (
        PREDICTION_COLUMNS,
        FitProblem,
        PredictionError,
        Predictions,
        high_risk_count,
        keep_count,
        predict_customers,
        value_at_risk_by,
    )
    from kizuna.prediction._priority import (
        ACTIONS,
        LISTS,
        PRIORITY_COLUMNS,
        WINBACK_ACTIONS,
        CallList,
        call_list,
        call_list_rows,
        call_lists,
        missing_value_at_risk,
        priority_list,
        suggested_action,
        write_call_list,
    )
    from kizuna.prediction._uplift import (
        CALL_EFFECT_COLUMNS,
        KEEP_ORDERS,
        CallOutcomes,
        CallUplift,
        UpliftDataError,
        UpliftModel,
        call_outcomes,
        call_uplift,
        keep_ranking,
        rank_key,
        with_call_uplift,
    )

__all__ = [
    "CallSettings", "PredictionSettings", "call_holdout", "in_call_holdout",
    "ACTIONS", "CHURN_FEATURES", "MODEL_COLUMNS", "PREDICTION_COLUMNS", "PRIORITY_COLUMNS", "REASON_CONTEXT",
    "Backtest", "FitProblem", "PredictionError", "Predictions", "backtest", "call_list_rows", "churn_labels",
    "customer_features", "high_risk_count", "missing_value_at_risk", "predict_customers", "priority_list",
    "suggested_action", "value_at_risk_by", "write_holdout_chart",
    "backtest_report", "call_list", "write_backtest_report", "write_call_list",
    "CallList", "CallRules", "LISTS", "WINBACK_ACTIONS", "call_blocker", "call_lists", "fresh_answer", "keep_count",
    "last_calls", "recently_called",
    "CALL_EFFECT_COLUMNS", "KEEP_ORDERS", "CallOutcomes", "CallUplift", "UpliftDataError", "UpliftModel",
    "call_outcomes", "call_uplift", "keep_ranking", "rank_key", "with_call_uplift", "CallBacktest", "call_backtest",
    "SAMPLE_CUSTOMERS", "customer_sample", "predict_in_engine", "boosting_threads",
]

# The models load SciPy and scikit-learn on first use (PEP 562): the workspace composes
# PredictionSettings into its settings without paying for them.
_LAZY = {"Backtest": "_backtest", "backtest": "_backtest", "backtest_report": "_backtest",
         "write_backtest_report": "_backtest", "CallBacktest": "_backtest", "call_backtest": "_backtest",
         "call_list": "_priority", "write_call_list": "_priority",
         "write_holdout_chart": "_chart",
         "CHURN_FEATURES": "_features", "MODEL_COLUMNS": "_features", "REASON_CONTEXT": "_features",
         "churn_labels": "_features", "customer_features": "_features", "FitProblem": "_predict",
         "PREDICTION_COLUMNS": "_predict", "PredictionError": "_predict", "Predictions": "_predict",
         "high_risk_count": "_predict", "predict_customers": "_predict", "value_at_risk_by": "_predict",
         "ACTIONS": "_priority", "PRIORITY_COLUMNS": "_priority", "call_list_rows": "_priority",
         "missing_value_at_risk": "_priority", "priority_list": "_priority", "suggested_action": "_priority",
         "CallList": "_priority", "LISTS": "_priority", "WINBACK_ACTIONS": "_priority", "call_lists": "_priority",
         "keep_count": "_predict", "SAMPLE_CUSTOMERS": "_in_engine", "customer_sample": "_in_engine",
         "predict_in_engine": "_in_engine", "boosting_threads": "_churn",
         "CallRules": "_call_rules", "call_blocker": "_call_rules",
         "fresh_answer": "_call_rules", "last_calls": "_call_rules", "recently_called": "_call_rules",
         **dict.fromkeys(("CALL_EFFECT_COLUMNS", "KEEP_ORDERS", "CallOutcomes", "CallUplift", "UpliftDataError",
                          "UpliftModel", "call_outcomes", "call_uplift", "keep_ranking", "rank_key",
                          "with_call_uplift"), "_uplift")}


__getattr__ = lazy_getattr(__name__, _LAZY)
