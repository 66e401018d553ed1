"""The manager's report (`kizuna report`): a period's KPIs with their changes, the NPS × LTV matrix and its
moves, lost customers by reason, value at risk, the scenarios' and the call centre's results — one
self-contained HTML file, its PDF, and an e-mail to the shop's people; and the charts people read,
which the web app's pages draw with too.

It sits above `kizuna.scenarios` (it shows their results) and below the workspace, which gathers
the tables, settings and ledger rows it takes.
"""

from typing import TYPE_CHECKING

from kizuna._lazy import lazy_getattr
from kizuna.reporting._settings import ReportSettings

if TYPE_CHECKING:
    from kizuna.reporting._charts import bar_svg, flow_svg, interval_svg, lorenz_svg, money_axis, sparkline_svg
    from kizuna.reporting._figures import TREND_MONTHS, ReportFigures, report_figures, value_at_risk_summary
    from kizuna.reporting._html import render_html, report_name, write_html
    from kizuna.reporting._mail import compose_report_email, mail_report, mail_transport, report_text
    from kizuna.reporting._pdf import print_pdf, screenshot
    from kizuna.reporting._present import change_tone, period_label

__all__ = ["TREND_MONTHS", "ReportFigures", "ReportSettings", "bar_svg", "change_tone", "compose_report_email",
           "flow_svg", "interval_svg", "lorenz_svg", "mail_report", "mail_transport", "money_axis", "period_label",
           "print_pdf", "render_html", "report_figures", "report_name", "report_text", "screenshot", "sparkline_svg",
           "value_at_risk_summary", "write_html"]

# The report loads on first use (PEP 562): the workspace composes ReportSettings into its settings, and
# commands that write no report do not pay for its figures, templates and mail.
_LAZY = {name: module for module, names in {
    "_charts": ("bar_svg", "flow_svg", "interval_svg", "lorenz_svg", "money_axis", "sparkline_svg"),
    "_figures": ("TREND_MONTHS", "ReportFigures", "report_figures", "value_at_risk_summary"),
    "_html": ("render_html", "report_name", "write_html"),
    "_mail": ("compose_report_email", "mail_report", "mail_transport", "report_text"),
    "_pdf": ("print_pdf", "screenshot"),
    "_present": ("change_tone", "period_label"),
}.items() for name in names}


__getattr__ = lazy_getattr(__name__, _LAZY)
