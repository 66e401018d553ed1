"""The report by e-mail to the shop's own people: the key figures in the text, the PDF and the HTML attached.

An operator's e-mail, not a customer's message: it goes through the workspace's SMTP server
([email]) but not through the send ledger, and carries no unsubscribe footer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from kizuna._errors import WorkspaceError
from kizuna.delivery import SenderIdentity, SmtpTransport
from kizuna.i18n import change_text, label, money
from kizuna.reporting._figures import ReportFigures
from kizuna.reporting._present import period_label

if TYPE_CHECKING:
    from kizuna.delivery import EmailSettings

__all__ = ["compose_report_email", "mail_report", "mail_transport", "report_text"]

_YEN = ("revenue", "aov", "mean_ltv")
_SHARES = ("repeat_rate", "subscription_churn")


def _value(key: str, value: float | None, lang: str) -> str:
    if value is None:
        return "—"
    if key in _YEN:
        return money(value, lang)
    if key in _SHARES:
        return f"{100 * value:.1f}%"
    return f"{value:,.1f}" if key in ("nps", "purchase_frequency") else f"{value:,.0f}"


def report_text(figures: ReportFigures, lang: str = "ja") -> str:
    """The e-mail's text: what is attached, and every KPI with its two changes."""
    month = "_month" if figures.period.months == 1 else ""
    period = period_label(figures.period, lang)
    lines = [label("report.mail_intro", lang).format(period=period), ""]
    for row in figures.comparison.rows:
        lines.append(label("report.mail_line", lang).format(
            name=label(row["key"], lang), value=_value(row["key"], row["value"], lang),
            previous=label(f"kpi_previous{month}_change", lang), change=change_text(row["previous_change"], row["unit"],
                                                                                   lang),
            last_year=label(f"kpi_last_year{month}_change", lang),
            year_change=change_text(row["last_year_change"], row["unit"], lang)))
    return "\n".join(lines) + "\n"


def compose_report_email(figures: ReportFigures, files: Sequence[Path], identity: SenderIdentity, recipient: str, *,
                         lang: str = "ja", now: dt.datetime | None = None) -> bytes:
    """The e-mail to `recipient`: From the shop's sender, the text of `report_text`, `files` attached (a .pdf
    as application/pdf, a .html as text/html)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = email.utils.formataddr((identity.name, identity.address))
    message["To"] = recipient
    message["Subject"] = label("report.title", lang).format(period=period_label(figures.period, lang))
    message["Date"] = email.utils.format_datetime(now or dt.datetime.now(dt.UTC))
    message["Message-ID"] = email.utils.make_msgid(domain=identity.domain)
    message.set_content(report_text(figures, lang))
    for path in files:
        if path.suffix == ".pdf":
            message.add_attachment(path.read_bytes(), maintype="application", subtype="pdf", filename=path.name)
        else:  # the report's HTML, UTF-8 as written
            message.add_attachment(path.read_bytes(), maintype="text", subtype="html", filename=path.name,
                                   params={"charset": "utf-8"})
    return message.as_bytes()


def mail_transport(recipients: Sequence[str], settings: EmailSettings, workspace: Path,
                   lang: str = "ja") -> SmtpTransport:
    """The transport the report goes by (not yet connected): WorkspaceError when there is nobody to send to
    ([report] recipients), EmailSettingsError when [email] lacks its server or sender — checked before the
    report is computed, so that a mistake costs nothing."""
    if not recipients:
        raise WorkspaceError('nobody to send the report to: set [report] recipients = ["manager@example.jp"] in '
                             "kizuna.toml.")
    return SmtpTransport.from_settings(settings, workspace, lang=lang)


def mail_report(figures: ReportFigures, files: Sequence[Path], *, recipients: Sequence[str], settings: EmailSettings,
                workspace: Path, lang: str = "ja") -> list[str]:
    """Send the report to each of `recipients` through the [email] SMTP server; the addresses it went to.

    Nothing is sent when `mail_transport` refuses the settings; a refusal by the server is a DeliveryError.
    """
    sent = []
    with mail_transport(recipients, settings, workspace, lang) as transport:
        for recipient in recipients:
            transport.send_bytes(recipient, compose_report_email(figures, files, transport.identity, recipient,
                                                                 lang=lang))
            sent.append(recipient)
    return sent
