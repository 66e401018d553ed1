"""Measures and segments of SPEC §1-§2 as Ibis expressions, on any engine."""

from kizuna.analytics._base import AsOf, counted_orders, latest_nps, nps_class
from kizuna.analytics._kpi import BasicKpis, basic_kpis, nps_summary, top_share
from kizuna.analytics._scores import MATRIX_CELLS, RFM_SEGMENTS, customer_scores, order_summary, quintile

__all__ = [
    "MATRIX_CELLS", "RFM_SEGMENTS", "customer_scores", "order_summary", "quintile",
    "AsOf", "BasicKpis", "basic_kpis", "counted_orders", "latest_nps", "nps_class", "nps_summary",
    "top_share",
]
