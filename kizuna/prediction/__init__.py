"""Prediction (docs/measures.md §3): who is still alive, what each customer is worth, who is about to leave, and
whom the contact centre calls first."""

from kizuna.prediction._backtest import Backtest, backtest
from kizuna.prediction._chart import write_holdout_chart
from kizuna.prediction._features import (
    CHURN_FEATURES,
    MODEL_COLUMNS,
    REASON_CONTEXT,
    churn_labels,
    customer_features,
)
from kizuna.prediction._predict import (
    PREDICTION_COLUMNS,
    FitProblem,
    PredictionError,
    Predictions,
    high_risk_count,
    predict_customers,
    value_at_risk_by,
)
from kizuna.prediction._priority import (
    ACTIONS,
    PRIORITY_COLUMNS,
    call_list_rows,
    missing_value_at_risk,
    priority_list,
    suggested_action,
)

__all__ = [
    "ACTIONS", "CHURN_FEATURES", "MODEL_COLUMNS", "PREDICTION_COLUMNS", "PRIORITY_COLUMNS", "REASON_CONTEXT",
    "Backtest", "FitProblem", "PredictionError", "Predictions", "backtest", "call_list_rows", "churn_labels",
    "customer_features", "high_risk_count", "missing_value_at_risk", "predict_customers", "priority_list",
    "suggested_action", "value_at_risk_by", "write_holdout_chart",
]
