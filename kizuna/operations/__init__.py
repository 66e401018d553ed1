"""Operational records (send ledger, consents, surveys, webhook events, users, web sessions, tracked
links and their clicks) and the signed links messages carry. One interface, `Operations`, on SQLite
in WAL mode (the default, a file in the workspace) or PostgreSQL (``[operations] url``), so that
`kizuna run` and `kizuna serve` write at once."""

from kizuna.operations._audit import audit_lines, record_audit
from kizuna.operations._clicks import AGENTS, Clicks, agent_class
from kizuna.operations._ledger import (
    MERGED,
    RECOVERABLE,
    WAITING,
    Delivery,
    DueRow,
    Enrolment,
    Ledger,
    rename_customers,
    retry_delay,
)
from kizuna.operations._links import CLICK_PATH, SURVEY_DAYS, InvalidLink, Links
from kizuna.operations._settings import OperationsSettings, WebSettings
from kizuna.operations._store import OPERATIONS_FILE, Operations, Transaction, now_ts
from kizuna.operations._switches import (
    SWITCH_STATES,
    SwitchRecord,
    record_switch,
    set_user_contact,
    switch_records,
    take_baselines,
    user_contact,
)

__all__ = ["AGENTS", "CLICK_PATH", "MERGED", "OPERATIONS_FILE", "RECOVERABLE", "SURVEY_DAYS", "WAITING", "Clicks",
           "Delivery", "DueRow", "Enrolment", "InvalidLink", "Ledger", "Links", "Operations", "OperationsSettings",
           "PostgresOperations", "SQLiteOperations", "Transaction", "WebSettings", "agent_class", "now_ts",
           "rename_customers", "retry_delay"]
__all__ += ["SWITCH_STATES", "SwitchRecord", "audit_lines", "record_audit", "record_switch", "set_user_contact",
            "switch_records", "take_baselines", "user_contact"]

_LAZY = {"SQLiteOperations": "_sqlite", "PostgresOperations": "_postgres"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kizuna.operations.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kizuna.operations' has no attribute {name!r}")
