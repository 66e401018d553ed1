"""Scenario switches as the operational records keep them (table ``scenario_switches``), and the
operators' own addresses for test sends (table ``user_contacts``).

What a state means for a run is `kizuna.scenarios`' (its switches module); here is only how a
switch is written: in one transaction with what it does to the ledger (switched off: the
scenario's messages that never went are cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kizuna.operations._store import Operations, now_ts

__all__ = ["SWITCH_STATES", "SwitchRecord", "record_switch", "set_user_contact", "switch_records", "take_baselines",
           "user_contact"]

SWITCH_STATES = ("on", "paused", "off")
_UNSENT = "('scheduled', 'deferred')"  # never went: cancelled when the scenario is switched off


@dataclass(frozen=True)
class SwitchRecord:
    """The last switch of one scenario: its state, who switched it and when (unix seconds), the day
    it was last switched on again (`fresh_from`, YYYY-MM-DD) and whether the next run takes an
    entering trigger's members as they are (`baseline`)."""

    scenario: str
    state: str
    changed_by: str
    changed_ts: int
    fresh_from: str | None = None
    baseline: bool = False

    @classmethod
    def from_row(cls, row: Any) -> SwitchRecord:
        return cls(row["scenario"], row["state"], row["changed_by"], int(row["changed_ts"]), row["fresh_from"],
                   bool(row["baseline"]))


def switch_records(ops: Operations) -> dict[str, SwitchRecord]:
    """scenario -> its last switch, for every scenario ever switched."""
    rows = ops.query("SELECT scenario, state, changed_by, changed_ts, fresh_from, baseline FROM scenario_switches")
    return {row["scenario"]: SwitchRecord.from_row(row) for row in rows}


def record_switch(ops: Operations, record: SwitchRecord, *, cancel_note: str | None = None) -> int:
    """Keep `record` as its scenario's switch; with `cancel_note`, cancel in the same transaction the
    scenario's messages that never went (scheduled, deferred), noting why. Returns the rows cancelled."""
    with ops.write() as db:
        db.execute(
            "INSERT INTO scenario_switches VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scenario) DO UPDATE SET "
            "state = excluded.state, changed_by = excluded.changed_by, changed_ts = excluded.changed_ts, "
            "fresh_from = excluded.fresh_from, baseline = excluded.baseline",
            (record.scenario, record.state, record.changed_by, record.changed_ts, record.fresh_from,
             int(record.baseline)))
        if cancel_note is None:
            return 0
        return db.execute(f"UPDATE deliveries SET status = 'cancelled', note = ?, updated_ts = ? "
                          f"WHERE scenario = ? AND status IN {_UNSENT}",
                          (cancel_note, now_ts(), record.scenario)).rowcount


def take_baselines(ops: Operations, scenarios: list[str]) -> None:
    """The entering triggers of `scenarios` have taken their members as they were: from now on, those
    who enter are occasions again."""
    with ops.write() as db:
        db.executemany("UPDATE scenario_switches SET baseline = 0 WHERE scenario = ?", [(s,) for s in scenarios])


def user_contact(ops: Operations, name: str) -> dict[str, str | None]:
    """The user's own e-mail address and LINE user id (None when not given)."""
    rows = ops.query("SELECT email, line_user_id FROM user_contacts WHERE name = ?", (name,))
    row = rows[0] if rows else None
    return {"email": row["email"] if row else None, "line_user_id": row["line_user_id"] if row else None}


def set_user_contact(ops: Operations, name: str, *, email: str | None, line_user_id: str | None) -> None:
    """Keep the user's own addresses for test sends (None or "" forgets one)."""
    with ops.write() as db:
        db.execute("INSERT INTO user_contacts VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                   "email = excluded.email, line_user_id = excluded.line_user_id",
                   (name, email or None, line_user_id or None))
