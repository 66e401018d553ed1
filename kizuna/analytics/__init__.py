"""Measures and segments of docs/measures.md §1-§2 as Ibis expressions, on any engine."""

from kizuna.analytics._base import DETRACTOR_MAX, PASSIVE_MAX, AsOf, counted_orders, latest_nps, nps_class, nps_class_of
from kizuna.analytics._dashboard import (
    LIST_CONTACTS,
    TREND_MONTHS,
    list_members,
    list_predictions,
    monthly_ltv,
    monthly_nps,
    overview_from_rows,
    overview_rows,
    rf_grid,
)
from kizuna.analytics._kpi import (
    COMPARED_KPIS,
    LOWER_IS_BETTER,
    POINT_KPIS,
    KpiComparison,
    Period,
    kpi_comparison,
    lost_by_reason,
    nps_summary,
    period_kpis,
    top_share,
)
from kizuna.analytics._lifecycle import KEEP_STATES, LIFECYCLE_STATES, LOST_STATES, lifecycle_states
from kizuna.analytics._members import (
    MEMBER_SORTS,
    PAGE_COLUMNS,
    PREDICTION_SORTS,
    MemberPage,
    MemberQuery,
    member_list,
    member_page,
)
from kizuna.analytics._migration import (
    NEW,
    migration_headline,
    migration_label,
    migration_order,
    migration_sankey_svg,
    segment_migration,
)
from kizuna.analytics._overview import overview_from_orders, overview_from_scores
from kizuna.analytics._ranks import (
    RANK_SHARES,
    RANK_SUGGESTION_COLUMNS,
    RankSuggestion,
    nice_yen,
    nice_yen_below,
    rank_expression,
    suggest_ranks,
)
from kizuna.analytics._reports import (
    LTV_BUCKETS,
    KpiReport,
    cohort_retention,
    concentration_curve,
    f2_conversion,
    kpi_by,
    kpi_report,
    ltv_distribution,
    nps_by_channel,
    subscription_churn,
)
from kizuna.analytics._scores import (
    MATRIX_CELLS,
    RFM_SEGMENTS,
    customer_scores,
    order_summary,
    quintile,
    score_categories,
)
from kizuna.analytics._segments import (
    EXPORT_COLUMNS,
    LIFECYCLE_SEGMENTS,
    PREDICTION_EXPORT_COLUMNS,
    SEGMENTS,
    lifecycle_table,
    matrix_table,
    rank_table,
    rfm_segment_table,
    segment_filter,
    segment_members,
)
from kizuna.analytics._settings import AnalysisSettings, LostReasonSettings

__all__ = [
    "AnalysisSettings", "LostReasonSettings",
    "RANK_SHARES", "RANK_SUGGESTION_COLUMNS", "RankSuggestion", "nice_yen", "nice_yen_below", "rank_expression",
    "suggest_ranks",
    "KEEP_STATES", "LIFECYCLE_STATES", "LOST_STATES", "lifecycle_states",
    "EXPORT_COLUMNS", "LIFECYCLE_SEGMENTS", "PREDICTION_EXPORT_COLUMNS", "SEGMENTS", "lifecycle_table", "matrix_table",
    "rank_table", "rfm_segment_table",
    "segment_filter", "segment_members",
    "LTV_BUCKETS", "MATRIX_CELLS", "RFM_SEGMENTS", "AsOf", "KpiReport", "cohort_retention",
    "concentration_curve", "counted_orders", "customer_scores", "f2_conversion", "kpi_by", "kpi_report",
    "latest_nps", "ltv_distribution", "nps_by_channel", "nps_class", "nps_summary", "order_summary",
    "quintile", "score_categories", "subscription_churn", "top_share",
    "DETRACTOR_MAX", "PASSIVE_MAX", "nps_class_of", "TREND_MONTHS", "monthly_ltv", "monthly_nps", "rf_grid",
    "LIST_CONTACTS", "list_members", "list_predictions", "overview_from_orders", "overview_from_rows",
    "overview_from_scores", "overview_rows",
    "MEMBER_SORTS", "PAGE_COLUMNS", "PREDICTION_SORTS", "MemberPage", "MemberQuery", "member_list", "member_page",
    "COMPARED_KPIS", "LOWER_IS_BETTER", "POINT_KPIS", "KpiComparison", "Period", "kpi_comparison", "lost_by_reason",
    "period_kpis",
    "NEW", "migration_headline", "migration_label", "migration_order", "migration_sankey_svg", "segment_migration",
]
