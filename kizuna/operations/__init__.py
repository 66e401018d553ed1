"""Operational records (send ledger, consents, surveys, webhook events, users) and the signed
links messages carry; SQLite in WAL mode, so `kizuna run` and `kizuna serve` write at once."""

from kizuna.operations._links import SURVEY_DAYS, InvalidLink, Links
from kizuna.operations._store import OPERATIONS_FILE, Operations, now_ts

__all__ = ["OPERATIONS_FILE", "SURVEY_DAYS", "InvalidLink", "Links", "Operations", "now_ts"]
