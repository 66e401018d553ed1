"""A workspace: a folder with kizuna.toml, the store, and the rejects of past imports."""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from kizuna import analytics
from kizuna._errors import KizunaError, NoDataError, Phrase, WorkspaceError
from kizuna.exporting import check_output, export_segment
from kizuna.operations import OPERATIONS_FILE, Links, Operations
from kizuna.settings import FIRST_DAY, HORIZON_DAYS, LAST_DAY, SETTINGS_FILE, RankRule, require_workspace
from kizuna.store import (
    TABLES,
    Store,
    cluster_by_customer,
    create_list_rows,
    index_by_customer,
    kept_statements,
    replace_list_columns,
)
from kizuna.workspace._outreach import Outreach
from kizuna.workspace._settings import Settings

if TYPE_CHECKING:  # prediction loads scikit-learn: only the commands that predict pay for it
    from kizuna.importing import ColumnMapping, ImportSummary  # the importer loads with the first import
    from kizuna.prediction import Backtest, CallBacktest, CallList, Predictions
    from kizuna.reporting import ReportFigures
    from kizuna.scenarios import RunContext

__all__ = ["Workspace"]

STORE_FILE = "kizuna.duckdb"
SCORES = "customer_scores"
SUMMARY = "_kizuna_order_summary"
PREDICTIONS = "customer_predictions"
MEMBERS = "_kizuna_list_members"  # the customer lists' rows (`_write_views`)
OVERVIEW = "_kizuna_overview"  # the overview's figures of the last analysis
# the tables a customer page reads by customer id, kept in customer order (`cluster_by_customer`)
CUSTOMER_TABLES = ("customers", "orders", "nps_answers", "support_contacts", "events", "calls")
# of those, the ones with about one row per customer, which a zone map alone does not narrow enough
# (`index_by_customer`), and the events and support contacts, whose customer ids a zone map leaves to be
# compared one by one in a whole row group (compressed text); the orders, by far the largest, keep their zone maps
INDEXED_BY_CUSTOMER = ("customers", "nps_answers", "events", "support_contacts", SCORES)
# What kizuna keeps in a workspace folder besides kizuna.toml and the store; an export never
# writes over them (nor inside the folders).
# the SQL the last `analyze` ran, kept so that the next one with the same settings, day and tables need not
# compile it (`kizuna.store.kept_statements`)
STATEMENTS_FILE = ".kizuna-statements.json"
WORKSPACE_ENTRIES = ("rejects", "spark-warehouse", "spark-metastore", "derby.log", OPERATIONS_FILE, ".kizuna-run.lock",
                     OPERATIONS_FILE + "-wal", OPERATIONS_FILE + "-shm", "scenarios", "outbox", "segments", "campaigns",
                     STATEMENTS_FILE)


class Workspace(Outreach):  # saved segments and campaigns: _outreach.py
    """The Python API under the CLI and the web app.

    >>> ws = Workspace.init("shop")                              # doctest: +SKIP
    >>> ws.import_file("customers", "customers.csv")             # doctest: +SKIP
    """

    def __init__(self, path: Path, settings: Settings, store: Store) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self._operations: Operations | None = None

    @classmethod
    def init(cls, path: Path | str, *, store_url: str = "", exist_ok: bool = False,
             settings: Settings | None = None) -> Workspace:
        """Create the folder, a kizuna.toml (default settings unless given), and the store."""
        path = Path(path)
        _create_folder(path, store_url=store_url, exist_ok=exist_ok, settings=settings)
        return cls.open(path)

    @classmethod
    def open(cls, path: Path | str = ".", *, store_url: str | None = None, create: bool = True,
             read_only: bool = False) -> Workspace:
        """Open an existing workspace; `store_url` overrides [store] url for this session.

        `create=False` (for commands that only read) refuses a DuckDB file named by `store_url`
        or [store] url that does not exist, instead of creating an empty store there; the
        workspace's own kizuna.duckdb is created either way. `read_only` opens the DuckDB
        store for reading, beside other readers (the web app, `kizuna run`).
        """
        path = Path(path)
        settings = _load_settings(path)
        ws = cls(path, settings, _connect(path, settings, store_url, create=create, read_only=read_only))
        if not read_only:  # guests' keyed ids, once; a compaction an erasure was stopped before
            from kizuna.workspace._forget import upkeep

            try:
                upkeep(ws)
            except BaseException:
                ws.close()
                raise
        return ws

    def close(self) -> None:
        self.store.close()
        if self._operations is not None:
            self._operations.close()

    # -- operational records ------------------------------------------------------------
    @property
    def operations(self) -> Operations:
        """The send ledger, consents, surveys, webhook events and users: SQLite beside the store, or
        the PostgreSQL database of [operations] url."""
        if self._operations is None:
            self._operations = Operations.open(self.settings.operations.url, self.path)
        return self._operations

    @property
    def links(self) -> Links:
        """The signed unsubscribe and survey links of this workspace ([web] public_url)."""
        return Links(self.settings.web.public_url, self.operations.secret())

    def merge_survey_answers(self) -> int:
        """Copy the survey answers given through the web app into nps_answers; how many.

        Idempotent: a merge interrupted after the store's write and before the marks is done
        again, replacing the same rows (nps_answers is keyed by customer and answer time).
        """
        answers = self.operations.unmerged_answers()
        if not answers:
            return 0
        rows = _answer_rows(answers, self.settings.business.timezone)
        self.store.upsert_rows("nps_answers", rows, key=("customer_id", "answered_at"))
        self.operations.mark_merged(a["ref"] for a in answers)
        return len(answers)

    def save_settings(self, settings: Settings) -> None:
        """Write `settings` to kizuna.toml (comments are rewritten) and use them from now on."""
        (self.path / SETTINGS_FILE).write_text(settings.to_toml(), encoding="utf-8")
        self.settings = settings

    def suggest_ranks(self, as_of: dt.date | None = None, *,
                      shares: tuple[float, ...] | None = None) -> analytics.RankSuggestion:
        """RFM rank thresholds from this store's own customers (`kizuna.analytics.suggest_ranks`)."""
        as_of = self.as_of(as_of)
        with self.store.engine_errors():
            return analytics.suggest_ranks(self.tables(), self.settings.analysis, as_of,
                                           shares or analytics.RANK_SHARES)

    def write_rank_rules(self, rules: tuple[RankRule, ...]) -> None:
        """Write `rules` as [analysis] rfm_ranks into kizuna.toml and use them from now on; the rest of
        the file, its comments included, stays as it is (the next `kizuna analyze` ranks by them)."""
        import json

        import tomlkit

        rows = "".join(f"  {{ label = {json.dumps(r.label, ensure_ascii=False)}, max_recency_days = "
                       f"{r.max_recency_days}, min_orders = {r.min_orders}, min_revenue = {r.min_revenue} }},\n"
                       for r in rules)  # one a line, as `kizuna init` writes them
        value = tomlkit.parse(f"rfm_ranks = [\n{rows}]\n")["rfm_ranks"]
        self.settings = _write_setting(self.path / SETTINGS_FILE, "analysis", "rfm_ranks", value)

    def as_of(self, override: dt.date | None = None) -> dt.date:
        """The day reports are computed as of: `override`, else the as_of setting, else today."""
        day = self.settings.as_of_date(self.check_day(override))
        self.check_day(day)  # [analysis] as_of too
        return day

    @staticmethod
    def check_day(day: dt.date | None) -> dt.date | None:
        """`day`, if kizuna can compute on it (1900-01-01 … 2999-12-31); a one-line error otherwise."""
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise KizunaError.keyed("error.day_out_of_range", day=str(day), first=str(FIRST_DAY), last=str(LAST_DAY))
        return day

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- importing --------------------------------------------------------------------
    def import_file(
        self,
        kind: str | None,
        path: Path | str | None = None,
        *,
        mapping: Path | str | ColumnMapping | None = None,
        encoding: str | None = None,
        sheet: str | None = None,
        header_row: int | None = None,
        platform: str | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
        lang: str | None = None,
    ) -> ImportSummary:
        """Import one file; see `kizuna.importing.import_file`.

        `kind` None (or the file alone: ``ws.import_file("orders_export.csv")``) tells the
        kind and the platform export from the headers; `platform` ("BASE", "ec-cube2" …) names the
        export instead. `lang`: of the rejects file (default [business] lang).
        """
        from kizuna.importing import import_file

        if path is None:
            kind, path = None, kind
        with self.store.engine_errors():
            summary = import_file(self.store, kind, path, mapping=_mapping(mapping), encoding=encoding, sheet=sheet,
                                  header_row=header_row, platform=platform, on_progress=on_progress,
                                  on_phase=on_phase, **self._import_options(lang))
            self._refresh_list_contacts([summary])
        return summary

    def _import_options(self, lang: str | None = None) -> dict[str, Any]:
        """What every import into this workspace uses: its time zone, rejects folder, batch size, guest key and
        the language of the rejects (`lang`, else [business] lang)."""
        return {"timezone": self.settings.business.timezone, "rejects_dir": self.path / "rejects",
                "batch_rows": self.settings.importing.batch_rows, "guest_key": self.operations.secret(),
                "lang": lang or self.settings.business.lang}

    def import_folder(
        self,
        folder: Path | str,
        *,
        mapping: Path | str | ColumnMapping | None = None,
        platform: str | None = None,
        on_file: Callable[[str, Path], None] | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
        lang: str | None = None,
    ) -> list[ImportSummary]:
        """Import every export in `folder`, referenced kinds first (customers, products, orders, …).

        Each file's kind is told from its headers before the first import starts;
        `on_file(kind, path)` is called as each file begins.
        """
        from kizuna.importing import import_folder

        with self.store.engine_errors():
            summaries = import_folder(self.store, folder, mapping=_mapping(mapping), platform=platform,
                                      on_file=on_file, on_progress=on_progress, on_phase=on_phase,
                                      **self._import_options(lang))
            self._refresh_list_contacts(summaries)
        return summaries

    def _refresh_list_contacts(self, summaries: list[ImportSummary]) -> None:
        """The lists' rows keep each customer's name, e-mail and phone (`analytics.LIST_CONTACTS`): after an
        import that changed customers already on the lists, they are written again, so that a list never
        shows an old phone (a customer added has no scores yet, and is on no list until `analyze`)."""
        changed = any((counts := summary.tables.get("customers")) and counts.updated for summary in summaries)
        if changed and self.store.has_table(MEMBERS):
            self._write_views()

    def tables(self, store: Store | None = None) -> dict[str, ibis.Table]:
        """The canonical tables as Ibis expressions, for the analytics (of `store`, else of the workspace's)."""
        return {name: (store or self.store).table(name) for name in TABLES}

    # -- analytics --------------------------------------------------------------------
    def analyze(self, as_of: dt.date | None = None) -> int:
        """Build `customer_scores` in the store as of `as_of` (see `as_of`); returns its number of rows.

        The orders are read once, into a per-customer summary; everything else is computed
        from that summary and the small tables, in the engine.
        """
        as_of = self.as_of(as_of)
        tables = self.tables()
        settings = self.settings.analysis
        summary = analytics.order_summary(tables["orders"], analytics.AsOf(as_of), settings.rfm_window_days)
        margin = self.settings.business.gross_margin_rate
        with self.store.engine_errors(), kept_statements(self.path / STATEMENTS_FILE):
            with self.store.transaction():
                self.store.create_from_intermediate(
                    SCORES, (SUMMARY, summary),
                    lambda stored: analytics.customer_scores(tables, settings, as_of, gross_margin_rate=margin,
                                                             summary=stored, lost_reasons=self.settings.lost_reasons),
                    categories=analytics.score_categories(settings),
                )
                self._write_views(as_of)
            cluster_by_customer(self.store, [*CUSTOMER_TABLES, SCORES])
            index_by_customer(self.store, INDEXED_BY_CUSTOMER)
        return self.store.count(SCORES)

    def _write_views(self, as_of: dt.date | None = None) -> None:
        """What the web app reads per request, written in the transaction of the scores or predictions it
        comes from: the lists' rows (`analytics.list_members`) and, after `analyze` (`as_of` given), the
        overview's figures (`analytics.overview_from_orders`, `overview_from_scores`)."""
        if not self.store.has_table(SCORES):
            return
        scores = self.store.table(SCORES)
        predictions = self.store.table(PREDICTIONS) if self.store.has_table(PREDICTIONS) else None
        members = analytics.list_members(scores, predictions, self.store.table("customers"))
        settings = self.settings.analysis
        # the orders' figures read nothing this transaction writes: on DuckDB they are worked out on a
        # connection of their own while the lists' rows are written, each leaving the other's core free at times
        overview = (self.store.beside(lambda store: self._overview_from_orders(store, as_of)) if as_of is not None
                    else contextlib.nullcontext(lambda: None))
        with overview as from_orders:
            # in matrix-cell order (DuckDB stores the rows as written): a cell's page reads a range; with each
            # row's place in every order a list sorts by (DuckDB), a page of any list is a range read; within
            # an R × F cell by LTV, so that the first pages in the default order lie in few runs of rows
            create_list_rows(self.store, MEMBERS, members, analytics.MEMBER_SORTS,
                             order=["matrix_cell", "r_score", "f_score", "ltv_revenue"],
                             categories=analytics.score_categories(settings))
            figures = from_orders()
        if figures is not None:
            figures |= analytics.overview_from_scores(scores, settings)
            self.store.create(OVERVIEW, analytics.overview_rows(figures))

    def _overview_from_orders(self, store: Store, as_of: dt.date) -> dict[str, Any] | None:
        """The overview's figures from the orders of `store` as of `as_of`; None without orders."""
        if not store.count("orders"):
            return None
        return analytics.overview_from_orders(self.tables(store), self.settings.analysis, as_of)

    def _write_list_predictions(self) -> None:
        """The lists' rows with the new predictions: their prediction columns alone where the store can
        replace them (the rest is as `analyze` and the last import of customers wrote it), else whole."""
        if not (self.store.has_table(MEMBERS) and replace_list_columns(
                self.store, MEMBERS, analytics.list_predictions(self.store.table(PREDICTIONS)),
                analytics.PREDICTION_SORTS)):
            self._write_views()

    def scores(self) -> ibis.Table:
        """The `customer_scores` table written by the last `analyze`."""
        if not self.store.has_table(SCORES):
            raise NoDataError(Phrase.of("error.customer_scores"), Phrase.of("error.run_analyze_first"))
        return self.store.table(SCORES)

    def scores_as_of(self) -> dt.date | None:
        value = self.scores().as_of.max().to_pyarrow().as_py()
        return value

    def kpis(self, as_of: dt.date | None = None, *, start: dt.date | None = None,
             by: str = "month") -> analytics.KpiReport:
        """The KPI report of docs/measures.md §1 for `start` … `as_of` (default: the year up to `as_of`)."""
        as_of, start = self.as_of(as_of), self.check_day(start)
        if self.store.count("orders") == 0:
            raise NoDataError(Phrase.of("orders"), Phrase.of("error.run_orders_first"))
        with self.store.engine_errors():
            return analytics.kpi_report(
                self.tables(), as_of, start=start, by=by,
                nps_validity_days=self.settings.analysis.nps_validity_days,
                f2_window_days=self.settings.analysis.f2_window_days,
            )

    def kpi_comparison(self, period: analytics.Period) -> analytics.KpiComparison:
        """The KPIs of `period` beside the previous period's and the same period last year's, with their
        changes (docs/measures.md#kpi-compare; `kizuna kpi --compare`, the overview's tiles, `kizuna report`)."""
        for day in (period.start, period.end, period.previous().start, period.last_year().start):
            self.check_day(day)
        if self.store.count("orders") == 0:
            raise NoDataError(Phrase.of("orders"), Phrase.of("error.run_orders_first"))
        with self.store.engine_errors():
            return analytics.kpi_comparison(self.tables(), period,
                                            nps_validity_days=self.settings.analysis.nps_validity_days)

    def segments(self, only: Collection[str] | None = None) -> dict[str, pa.Table]:
        """The NPS × LTV matrix, the RFM rank table, the named RFM segments and the lifecycle states
        (the last when `customer_scores` has them: analysed by this kizuna); `only`: those of them."""
        scores = self.scores()
        ranks = tuple(r.label for r in self.settings.analysis.rfm_ranks)
        tables = {"matrix": lambda: analytics.matrix_table(scores),
                  "ranks": lambda: analytics.rank_table(scores, ranks),
                  "rfm_segments": lambda: analytics.rfm_segment_table(scores)}
        if "lifecycle_state" in scores.columns:
            tables["lifecycle"] = lambda: analytics.lifecycle_table(scores)
        with self.store.engine_errors():
            return {name: table() for name, table in tables.items() if only is None or name in only}

    def segment(self, segment: str) -> ibis.Table:
        """The customers of a segment (cell, rank, named segment or flag, by id or label) with
        contact details, LTV, last order and NPS, best LTV first."""
        return analytics.segment_members(self.scores(), self.store.table("customers"), segment)[1]

    def migration(self, from_day: dt.date, to_day: dt.date, *, by: str = "cell") -> pa.Table:
        """Customers per (segment at `from_day`, segment at `to_day`): the segment migration of docs/measures.md §2.

        `by` is "cell" (NPS × LTV matrix) or "rank" (RFM rank, ids `rank_<label>`); both days are
        computed as of their end with this workspace's settings, whatever the last `analyze`.
        Columns from_segment, to_segment, customers; `from_segment` "new" for customers who were
        not customers yet at `from_day`. `kizuna.analytics.migration_headline(table)` gives the
        headline figures (churn candidates → loyal).
        """
        from_day, to_day = self.check_day(from_day), self.check_day(to_day)
        if self.store.count("orders") == 0:
            raise NoDataError(Phrase.of("orders"), Phrase.of("error.run_orders_first"))
        with self.store.engine_errors():
            return analytics.segment_migration(self.tables(), self.settings.analysis, from_day, to_day, by=by)

    def export_segment(self, segment: str, path: Path | str | None, *, fmt: str = "csv", lang: str = "ja") -> int:
        """Write the customer list of a segment (cell, rank, named segment or flag); `path` None:
        csv on standard output. A workbook's title row names [business] name and the scores' as-of day.

        The output path is checked before anything is computed: not a folder, somewhere one
        can write, and not one of the workspace's own files (its store, kizuna.toml, rejects).
        """
        out = check_output(path, fmt, self._own_files())
        predictions = self.store.table(PREDICTIONS) if self.store.has_table(PREDICTIONS) else None
        with self.store.engine_errors():
            return export_segment(self.scores(), self.store.table("customers"), segment, out, fmt, lang,
                                  predictions=predictions, as_of=self.scores_as_of(),
                                  business=self.settings.business.name)

    def _own_files(self) -> list[Path]:
        """What kizuna keeps in the workspace (and the store's files): no export writes over them."""
        return [self.path / SETTINGS_FILE, *(self.path / e for e in WORKSPACE_ENTRIES), *self.store.files()]

    # -- prediction ---------------------------------------------------------------------
    def predict(self, as_of: dt.date | None = None, *, horizon_days: int | None = None) -> Predictions:
        """Fit the models of docs/measures.md §3 on the data up to `as_of` and store `customer_predictions`.

        One row per customer who has ordered: P(alive), expected orders and next order date,
        expected order value, CLV, churn risk with its three main reasons (ja and en; for customers who
        have not left), value at risk; see `kizuna.prediction.predict_customers`. Horizons and rates are [prediction]
        settings; `horizon_days` overrides the churn horizon for this call. With the call outcomes
        known by then, the effect of a call too (`kizuna.prediction.call_uplift`: uplift and value kept
        by calling, once [calls] min_outcomes of them exist).
        """
        from kizuna.prediction import boosting_threads, call_uplift, predict_customers, with_call_uplift

        as_of = self.as_of(as_of)
        if self.store.count("orders") == 0:
            raise NoDataError(Phrase.of("orders"), Phrase.of("error.run_orders_first"))
        settings = self.settings
        if self.store.distributed:  # fitted here on a sample, every customer scored in the engine (docs/spark.md)
            return self._predict_in_engine(as_of, self._horizon(horizon_days))
        # the engine's threads, as the boosting's, the cores other processes leave free
        with self.store.engine_errors(), self.store.threads(boosting_threads()):
            result = predict_customers(
                self.tables(), as_of, horizon_days=self._horizon(horizon_days),
                clv_horizon_days=settings.prediction.clv_horizon_days, discount_rate=settings.prediction.discount_rate,
                gross_margin_rate=settings.business.gross_margin_rate, analysis=settings.analysis,
            )
            calls = settings.calls
            uplift = call_uplift(self.tables(), as_of, secret=self.operations.secret(),
                                 holdout_share=calls.holdout_share, min_outcomes=calls.min_outcomes,
                                 horizon_days=result.horizon_days, cooldown_days=calls.cooldown_days,
                                 analysis=settings.analysis)
            result.notes.extend([uplift.problem] if uplift.problem else [])
            result.notes.extend(uplift.notes)
            self.store.drop_cache()  # the orders read for the features: the writes' memory on top of less
            with self.store.transaction():
                # in customer order as written: `cluster_by_customer` then finds nothing to rewrite
                self.store.create_in_order(PREDICTIONS, with_call_uplift(result.table, result.features, uplift),
                                           by=["customer_id"])
                self._write_list_predictions()
            cluster_by_customer(self.store, [PREDICTIONS])
            index_by_customer(self.store, [PREDICTIONS])
        return result

    def _predict_in_engine(self, as_of: dt.date, horizon_days: int) -> Predictions:
        import functools

        from kizuna.prediction import call_uplift, predict_in_engine, with_call_uplift

        settings, calls = self.settings, self.settings.calls
        with self.store.engine_errors():
            uplift = call_uplift(self.tables(), as_of, secret=self.operations.secret(),
                                 holdout_share=calls.holdout_share, min_outcomes=calls.min_outcomes,
                                 horizon_days=horizon_days, cooldown_days=calls.cooldown_days,
                                 analysis=settings.analysis)
            result = predict_in_engine(
                self.tables(), as_of, create=functools.partial(self.store.create_mapped, PREDICTIONS),
                finish=functools.partial(with_call_uplift, fit=uplift), horizon_days=horizon_days,
                clv_horizon_days=settings.prediction.clv_horizon_days, discount_rate=settings.prediction.discount_rate,
                gross_margin_rate=settings.business.gross_margin_rate, analysis=settings.analysis,
            )
            self._write_views()  # the lists' rows with the new predictions
        result.notes.extend([uplift.problem] if uplift.problem else [])
        result.notes.extend(uplift.notes)
        return result

    def _horizon(self, days: int | None) -> int:
        """`days`, or the [prediction] setting; held to the setting's own range."""
        if days is None:
            return self.settings.prediction.horizon_days
        low, high = HORIZON_DAYS
        if not low <= days <= high:
            raise KizunaError.keyed("error.horizon_out_of_range", days=days, low=low, high=f"{high:,}")
        return days

    def predictions(self) -> ibis.Table:
        """The `customer_predictions` table written by the last `predict` (joins customer_scores on customer_id)."""
        if not self.store.has_table(PREDICTIONS):
            raise NoDataError(Phrase.of("error.customer_predictions"), Phrase.of("error.run_predict_first"))
        return self.store.table(PREDICTIONS)

    def backtest(self, as_of: dt.date, *, horizon_days: int | None = None, report_dir: Path | str | None = None,
                 lang: str = "ja") -> tuple[Backtest, Path]:
        """Calibrate on the data up to `as_of`, predict the next `horizon_days`, compare with what happened.

        Writes the report as JSON and the calibration/holdout chart as PNG into `report_dir`
        (default: the workspace's reports/ folder); returns the figures and the chart's path.
        """
        from kizuna.prediction import backtest_report

        as_of = self.check_day(as_of)
        settings = self.settings
        folder = report_dir if report_dir is not None else self.path / "reports"
        with self.store.engine_errors():
            return backtest_report(
                self.tables(), as_of, folder, horizon_days=self._horizon(horizon_days),
                clv_horizon_days=settings.prediction.clv_horizon_days, discount_rate=settings.prediction.discount_rate,
                gross_margin_rate=settings.business.gross_margin_rate, lang=lang,
                capacity=settings.prediction.call_capacity, analysis=settings.analysis,
            )

    def call_backtest(self, as_of: dt.date, *, horizon_days: int | None = None) -> CallBacktest:
        """The keep list's rankings (by the effect of a call, by value at risk, at random) judged on the
        calls recorded after `as_of`, with the uplift model of the outcomes known by then
        (`kizuna.prediction.call_backtest`: Qini coefficient, uplift at capacity)."""
        from kizuna.prediction import call_backtest

        as_of = self.check_day(as_of)
        settings = self.settings
        with self.store.engine_errors():
            return call_backtest(
                self.tables(), as_of, secret=self.operations.secret(), holdout_share=settings.calls.holdout_share,
                horizon_days=self._horizon(horizon_days), clv_horizon_days=settings.prediction.clv_horizon_days,
                discount_rate=settings.prediction.discount_rate, capacity=settings.prediction.call_capacity,
                cooldown_days=settings.calls.cooldown_days, analysis=settings.analysis,
            )

    def priority(self, capacity: int | None = None, *, kind: str = "keep") -> pa.Table:
        """The calls of the day's `kind` list ("keep" or "winback"; see `call_lists`)."""
        return self.call_lists(capacity, kind=kind).calls

    def call_lists(self, capacity: int | None = None, *, kind: str = "keep") -> CallList:
        """The day's call list (`kizuna.prediction.call_lists`): at most `capacity` (default [prediction]
        call_capacity) customers with a telephone number, none called within [calls] cooldown_days, each
        with contact details, segment, reasons and a `suggested_action`; those without a number on the
        e-mail / DM list; the call holdout ([calls] holdout_share) left uncalled. The keep list ranks by
        the value kept by calling once [calls] min_outcomes call outcomes are known. Segments come from
        the last `analyze`, when there is one."""
        from kizuna.prediction import CallRules, call_lists, in_call_holdout

        scores = self.scores() if self.store.has_table(SCORES) else None
        settings = self.settings
        calls = self.store.table("calls") if self.store.has_table("calls") else None
        secret, share = self.operations.secret(), settings.calls.holdout_share
        with self.store.engine_errors():
            return call_lists(self.predictions(), self.store.table("customers"), scores, as_of=self.as_of(),
                              kind=kind, rules=CallRules.of(settings.prediction, settings.calls,
                                                            capacity),
                              calls=calls, winback_days=settings.prediction.winback_days,
                              holdout=(lambda customer: in_call_holdout(customer, secret, share)) if share else None,
                              min_outcomes=settings.calls.min_outcomes)

    def write_priority(self, path: Path | str | None, *, fmt: str = "csv", lang: str = "ja",
                       capacity: int | None = None, kind: str = "keep", lists: CallList | None = None) -> int:
        """Write the call list to a CSV or .xlsx file for the contact centre (`path` None: csv on standard
        output); returns its rows. `lists`: the day's list when already computed (`call_lists`)."""
        from kizuna.prediction import write_call_list

        out = check_output(path, fmt, self._own_files(), unknown="error.file_format_unknown")
        lists = lists or self.call_lists(capacity, kind=kind)
        return write_call_list(lists.calls, out, fmt, lang, as_of=lists.as_of, business=self.settings.business.name,
                               kind=lists.kind)

    def counts(self) -> dict[str, int]:
        """Rows per canonical table."""
        return {name: self.store.count(name) for name in TABLES}

    # -- privacy ----------------------------------------------------------------------
    def forget(self, customer_id: str):
        """Erase a customer's personal data everywhere kizuna keeps it (個人情報保護法), keeping the figures."""
        from kizuna.workspace._forget import forget_customer

        return forget_customer(self, customer_id)

    # -- scenarios (docs/measures.md §4-§5) ---------------------------------------------------------
    def scenarios(self) -> list:
        """The scenarios in the workspace's scenarios/ folder, checked (ScenarioError names file and line)."""
        from kizuna.scenarios import SCENARIO_FOLDER, load_scenarios

        folder = self.path / SCENARIO_FOLDER
        return load_scenarios(folder) if folder.is_dir() else []

    def run_context(self) -> RunContext:
        """What a scenario run works with: the store, the operational records, the settings, the
        public links, and the folders it reads and writes (see `kizuna.scenarios.RunContext`)."""
        from kizuna.scenarios import OUTBOX, SCENARIO_FOLDER, RunContext

        return RunContext(store=self.store, operations=self.operations, settings=self.settings, links=self.links,
                          home=self.path, scenarios_dir=self.path / SCENARIO_FOLDER, outbox=self.path / OUTBOX)

    def run(self, as_of: dt.date | None = None, *, now: dt.datetime | None = None, dry_run: bool = False,
            only: str | None = None, transports=None, release_store: bool = False, lang: str | None = None,
            progress=None, as_if_on: bool = False):
        """Evaluate every scenario switched on and deliver what is due, with the campaigns due (see
        `kizuna.scenarios.run_scenarios`; `as_if_on`, dry: the paused and off ones too, as if switched on today)."""
        from kizuna.scenarios import run_scenarios, with_campaigns

        return run_scenarios(self.run_context(), as_of=self.as_of(as_of), now=now, dry_run=dry_run, only=only,
                             transports=transports, release_store=release_store, lang=lang, progress=progress,
                             as_if_on=as_if_on, campaigns=with_campaigns)

    def results(self, name: str | None = None, *, as_of: dt.date | None = None, lang: str = "ja") -> list[dict]:
        """Per scenario and step: due, sent, delivered, failed, deferred, suppressed; the uplift."""
        from kizuna.operations import Ledger
        from kizuna.scenarios import CAMPAIGN_PREFIX, scenario_results

        day = self.check_day(as_of)
        rows = scenario_results(self.scenarios(), ledger=Ledger(self.operations), store=self.store,
                                settings=self.settings, name=name, as_of=day, lang=lang)
        # a campaign's ledger rows are under "campaign:NAME": counted the same way, then measured per variant
        if name is not None:
            rows += scenario_results([], ledger=Ledger(self.operations), store=self.store, settings=self.settings,
                                     name=CAMPAIGN_PREFIX + name, as_of=day, lang=lang)
        campaigns = [r for r in rows if r["scenario"].startswith(CAMPAIGN_PREFIX)]
        rows = [r for r in rows if not r["scenario"].startswith(CAMPAIGN_PREFIX)]
        return rows + (self.campaign_results(campaigns, as_of=day, lang=lang) if campaigns else [])

    def call_results(self, *, as_of: dt.date | None = None, since: dt.date | None = None) -> dict[str, Any]:
        """What the calls teach (`kizuna.scenarios.call_results`): the kept rate per talk script and the
        kept rate of the customers called against the call holdout's."""
        from kizuna.scenarios import call_results

        with self.store.engine_errors():
            return call_results(self.tables(), secret=self.operations.secret(),
                                share=self.settings.calls.holdout_share, analysis=self.settings.analysis,
                                as_of=self.as_of(as_of), since=self.check_day(since))

    def preview(self, name: str, customer_id: str, *, step: int = 1, as_of: dt.date | None = None,
                lang: str | None = None) -> dict[str, str]:
        """One step's message for one customer, rendered as it would be sent (nothing is recorded)."""
        from kizuna.scenarios import preview_message

        return preview_message(self.run_context(), self.scenarios(), name, customer_id, step=step,
                               as_of=self.as_of(as_of), lang=lang)

    def scenario_states(self) -> list:
        """Each scenario with its state (on, paused, off) and who switched it when (`ScenarioState`)."""
        from kizuna.scenarios import scenario_states

        return scenario_states(self.operations, self.scenarios())

    def switch_scenario(self, name: str, state: str, *, user: str):
        """Switch a scenario on, paused or off as `user`, with an audit line (`kizuna.scenarios.switch_scenario`)."""
        from kizuna.scenarios import switch_scenario

        return switch_scenario(self.operations, self.scenarios(), name, state, user=user, today=self.as_of())

    def send_test(self, name: str, *, user: str, step: int = 1, customer_id: str | None = None,
                  email: str | None = None, line_user_id: str | None = None, as_of: dt.date | None = None,
                  lang: str | None = None, transports=None):
        """Send one step, rendered for a customer, to the operator's own address, marked as a test and
        outside the ledger (`kizuna.scenarios.send_test`)."""
        from kizuna.scenarios import send_test

        return send_test(self.run_context(), self.scenarios(), name, user=user, step=step, customer_id=customer_id,
                         email=email, line_user_id=line_user_id, as_of=self.as_of(as_of), lang=lang,
                         transports=transports)

    # -- the manager's report ----------------------------------------------------------------------
    def report_figures(self, period: analytics.Period | None = None, *, lang: str = "ja") -> ReportFigures:
        """What `kizuna report` shows for `period` (default: the last full month before the as-of date): the
        KPIs and their changes, the matrix and its moves, the lost, the value at risk of the last
        `predict`, the scenarios' results (in `lang`) and the call centre's (`kizuna.reporting.report_figures`)."""
        from kizuna.reporting import report_figures

        period = period or analytics.Period.month_before(self.as_of())
        for day in (period.start - dt.timedelta(days=1), period.end, period.last_year().start):
            self.check_day(day)
        if self.store.count("orders") == 0:
            raise NoDataError(Phrase.of("orders"), Phrase.of("error.run_orders_first"))
        settings = self.settings
        has = self.store.has_table
        rows = self.results(as_of=period.end, lang=lang)
        with self.store.engine_errors():
            return report_figures(
                self.tables(), period=period, analysis=settings.analysis,
                predictions=self.store.table(PREDICTIONS) if has(PREDICTIONS) else None,
                scores=self.store.table(SCORES) if has(SCORES) else None,
                scenario_rows=rows, high_risk=settings.prediction.high_risk,
            )

    def write_report(self, figures: ReportFigures, folder: Path | str | None = None, *, lang: str = "ja",
                     pdf: bool = True) -> list[Path]:
        """Write the report as report-YYYY-MM.html and (`pdf`) .pdf into `folder` (default reports/); the files."""
        from kizuna.reporting import print_pdf, write_html

        folder = Path(folder) if folder is not None else self.path / "reports"
        html = write_html(figures, folder, lang)
        if not pdf:
            return [html]
        return [html, print_pdf(html, html.with_suffix(".pdf"), chromium=self.settings.report.chromium)]

    def check_report_mail(self) -> None:
        """Refuse at once (one line naming the setting) when `mail_report` could not send: no [report]
        recipients, or no [email] server or sender."""
        from kizuna.reporting import mail_transport

        mail_transport(self.settings.report.recipients, self.settings.email, self.path).close()

    def mail_report(self, figures: ReportFigures, files: list[Path], *, lang: str = "ja") -> list[str]:
        """E-mail the report's files to [report] recipients through [email]'s SMTP server; who got it."""
        from kizuna.reporting import mail_report

        return mail_report(figures, files, recipients=self.settings.report.recipients, settings=self.settings.email,
                           workspace=self.path, lang=lang)


def _create_folder(path: Path, *, store_url: str, exist_ok: bool, settings: Settings | None) -> None:
    """The workspace folder with its kizuna.toml (`settings`, else the defaults; `store_url` as [store]
    url) and the example scenarios; a one-line `WorkspaceError` when it cannot be made."""
    settings_path = path / SETTINGS_FILE
    if path.exists() and not path.is_dir():
        raise WorkspaceError.keyed("error.workspace_is_file", path=str(path))
    if settings_path.exists() and not exist_ok:
        raise WorkspaceError.keyed("error.workspace_exists", path=str(path), file=SETTINGS_FILE)
    Store.check_url(store_url or (settings.store.url if settings else ""))  # before writing the file
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError.keyed("error.folder_not_created", path=str(path), problem=exc.strerror) from None
    if not settings_path.exists():
        settings = settings or Settings()
        if store_url:
            settings = settings.replace(store={"url": store_url})
        settings_path.write_text(settings.to_toml(), encoding="utf-8")
    _install_example_scenarios(path)


def _write_setting(path: Path, section: str, key: str, value: Any) -> Settings:
    """Set `key` of [section] in the kizuna.toml at `path`, keeping every other line; the settings it now holds."""
    import tomllib

    import tomlkit

    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    if section not in document:
        document.add(section, tomlkit.table())
    document[section][key] = value  # type: ignore[index]
    text = tomlkit.dumps(document)
    settings = Settings.from_dict(tomllib.loads(text), source=str(path))  # checked before it is written
    path.write_text(text, encoding="utf-8")
    return settings


def _load_settings(path: Path) -> Settings:
    return Settings.load(require_workspace(path))


def _connect(path: Path, settings: Settings, store_url: str | None, *, create: bool, read_only: bool) -> Store:
    """The store of [store] url (`store_url` overrides it), else the workspace's own kizuna.duckdb."""
    url = store_url if store_url is not None else settings.store.url
    return Store.connect(url or str(path / STORE_FILE), home=path, memory_limit=settings.store.memory_limit,
                         create=(create or not url) and not read_only, read_only=read_only,
                         lock_wait=settings.store.lock_wait)


def _answer_rows(answers: list, timezone: str) -> pa.Table:
    """Survey answers as nps_answers rows; answered_at in local wall-clock time, as the store keeps times."""
    zone = zoneinfo.ZoneInfo(timezone)
    return pa.table({
        "customer_id": [a["customer_id"] for a in answers],
        "answered_at": pa.array(
            [dt.datetime.fromtimestamp(a["answered_ts"], zone).replace(tzinfo=None) for a in answers],
            pa.timestamp("us")),
        "score": pa.array([a["score"] for a in answers], pa.int64()),
        "comment": [a["comment"] for a in answers],
        "touchpoint": [a["touchpoint"] for a in answers],
    })


def _mapping(mapping: Path | str | ColumnMapping | None) -> ColumnMapping | None:
    """A column mapping given as a file, loaded."""
    from kizuna.importing import ColumnMapping

    if mapping is not None and not isinstance(mapping, ColumnMapping):
        return ColumnMapping.load(Path(mapping))
    return mapping


def _install_example_scenarios(path: Path) -> None:
    """A new workspace starts with the example scenarios of docs/measures.md §4 (ja + en), to edit or delete."""
    import shutil

    folder = path / "scenarios"
    if folder.exists():
        return
    examples = Path(__file__).resolve().parent.parent / "scenarios" / "examples"
    folder.mkdir()
    for example in sorted(examples.glob("*.yaml")):
        shutil.copyfile(example, folder / example.name)
