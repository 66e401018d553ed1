"""Operational records (send ledger, consents, surveys, webhook events, users) and the signed
links messages carry; SQLite in WAL mode, so `kizuna run` and `kizuna serve` write at once."""

from kizuna.operations._ledger import (
    RECOVERABLE,
    WAITING,
    Delivery,
    DueRow,
    Enrolment,
    Ledger,
    rename_customers,
    retry_delay,
)
from kizuna.operations._links import SURVEY_DAYS, InvalidLink, Links
from kizuna.operations._store import OPERATIONS_FILE, Operations, now_ts

__all__ = ["OPERATIONS_FILE", "RECOVERABLE", "SURVEY_DAYS", "WAITING", "Delivery", "DueRow", "Enrolment",
           "InvalidLink", "Ledger", "Links", "Operations", "now_ts", "rename_customers", "retry_delay"]
