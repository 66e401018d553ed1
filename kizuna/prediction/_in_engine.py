"""`predict` where the customers stay in the engine: the models are fitted here on a sample, every
customer is scored where the rows are (docs/spark.md).

For a store that computes away from this process (`Store.distributed`: Spark's executors) the
per-customer tables are never brought here whole:

* **fit**, in this process: the stages of `predict_customers` (`read_features`, `fit_models`) run
  on the tables narrowed to a deterministic sample of at most `sample_customers` customers (a hash
  of the customer id), so BG/NBD's counts, Gamma-Gamma's repeat buyers, sBG's subscriptions and the
  churn model's training rows are the sample's. With no more customers than that the sample is
  everyone, and the fits are exactly those of `predict_customers`;
* **score**, in the engine: a function holding the fitted models maps each batch of every
  customer's features through `score` → `explain` → `prediction_table` (and the caller's `finish`,
  the call effect), and the engine writes customer_predictions from there (`Store.create_mapped`).
  Every figure of a customer depends on that customer's row and the models only, so a batch gives
  what the whole table gives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import ibis
import pyarrow as pa

from kizuna._errors import Phrase
from kizuna.analytics import AnalysisSettings
from kizuna.prediction._features import MODEL_COLUMNS, customer_features
from kizuna.prediction._predict import (
    Features,
    Fits,
    Predictions,
    _with_states,
    fit_models,
    read_features,
    scored_rows,
)

__all__ = ["SAMPLE_CUSTOMERS", "customer_sample", "predict_in_engine"]

# At most this many customers' rows come to this process to fit the models on: enough for BG/NBD's
# four parameters, Gamma-Gamma's three and the churn model (which calibrates on as many), whatever the
# number of customers.
SAMPLE_CUSTOMERS = 200_000

Create = Callable[[ibis.Table, Callable[[pa.RecordBatch], pa.Table], ibis.Schema], ibis.Table]


def customer_sample(tables: dict[str, ibis.Table], every: int) -> dict[str, ibis.Table]:
    """`tables` with only the rows of one customer in `every` (by a hash of the id: the same customers
    in every table and every run on one engine); `tables` themselves when `every` is 1."""
    if every <= 1:
        return tables
    return {name: table.filter(table.customer_id.hash() % every == 0) if "customer_id" in table.columns else table
            for name, table in tables.items()}


def predict_in_engine(
    tables: dict[str, ibis.Table], as_of: dt.date, *, create: Create,
    finish: Callable[[pa.Table, pa.Table], pa.Table] | None = None, sample_customers: int = SAMPLE_CUSTOMERS,
    horizon_days: int = 90, clv_horizon_days: int = 365, discount_rate: float = 0.1, gross_margin_rate: float = 0.4,
    analysis: AnalysisSettings | None = None,
) -> Predictions:
    """Fit on a sample here, score every customer in the engine: `create(rows, function, schema)` writes
    the table (`Store.create_mapped` bound to customer_predictions).

    `finish(predictions, features)` adds columns to each batch (the call effect). The `Predictions`
    returned hold the models and, as `table` and `features`, the sample's rows (a note says so when
    the sample is not everyone).
    """
    customers = int(tables["customers"].count().to_pyarrow().as_py())
    every = max(1, -(-customers // sample_customers))
    sample = customer_sample(tables, every)
    features = read_features(sample, as_of, analysis)
    fits = fit_models(sample, as_of, features, horizon_days=horizon_days, analysis=analysis)

    def scored(batch: pa.RecordBatch | pa.Table, finish=finish) -> pa.Table:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        return _scored(table, fits, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                       discount_rate=discount_rate, gross_margin_rate=gross_margin_rate, finish=finish)

    # the sample's own rows, scored here: the figures the caller prints (PREDICTION_COLUMNS, as
    # `predict_customers` gives them), and the stored table's schema
    rows = scored(features.table, finish=None)
    stored = finish(rows, features.table) if finish is not None else rows
    create(_with_states(customer_features(tables, as_of), tables, as_of, analysis), scored,
           ibis.Schema.from_pyarrow(stored.schema))
    notes = list(fits.notes)
    if every > 1:
        notes.append(Phrase.of("note.fitted_on_sample", sample=f"{features.table.num_rows:,}",
                               customers=f"{customers:,}", every=f"{every:,}"))
    return Predictions(as_of, horizon_days, clv_horizon_days, rows, fits.beta_geo, fits.gamma_gamma, fits.churn,
                       fits.shifted_beta_geo, fits.training_customers, features.repeat_buyers, features.table, notes,
                       fits.problems)


def _scored(table: pa.Table, fits: Fits, as_of: dt.date, *, horizon_days: int, clv_horizon_days: int,
            discount_rate: float, gross_margin_rate: float,
            finish: Callable[[pa.Table, pa.Table], pa.Table] | None) -> pa.Table:
    """Stages 3 to 5 of `predict_customers`, composed as there, on some customers' features (the counts are
    not needed)."""
    model = (table[c].to_numpy(zero_copy_only=False).astype(float) for c in MODEL_COLUMNS)
    features = Features(table, pa.table({}), *model)
    rows, _ = scored_rows(features, fits, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                          discount_rate=discount_rate, gross_margin_rate=gross_margin_rate)
    return finish(rows, table) if finish is not None else rows
