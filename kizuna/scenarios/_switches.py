"""Scenario switches: on, paused or off, obeyed by every `kizuna run` (docs/measures.md#switches).

A scenario's state is kept in the operational records (``scenario_switches``), not in its YAML
file. Why there: they are what cron's `kizuna run`, every web server and the command line share
for certain — with ``[operations] url`` several web servers and a cron host share one database,
while each host may have its own checkout of `scenarios/`, so a web server writing the file would
switch the scenario on its own host only; a web app writing files into a git checkout would also
leave changes that nobody committed and that the next `git pull` collides with. A switch carries
who changed it and when, and the day it came back on, which a YAML field would not hold without
turning every click into a commit. The file keeps the last word in one direction: `enabled:
false` there is off whatever was switched, so that git can always stop a scenario; a scenario
never switched is on, as its file says.

========  ======================================================================================
state     what `kizuna run` does
========  ======================================================================================
on        evaluates its occasions and sends what is due, as always
paused    neither evaluates nor sends it; its messages already enrolled (a later step, a
          deferred message) wait in the ledger and go when it is switched on again
off       neither evaluates nor sends it; switching it off cancels its messages that never went
          (scheduled, deferred: `cancelled`, note "switched off"), so that switching it on again
          starts afresh and sends no step of an old occasion
========  ======================================================================================

Paused or off, its occasions are **not caught up**: once it is on again, a dated trigger's
catch-up window (`catch_up_days`) starts on the day it was switched on, and an entering trigger
(segment, lapse, churn_risk) takes the members of the first run after it as they are, so that
customers who entered while it was paused are not written to late. Messages in flight (a killed
run's `sending`, a `resend`) are left as they are and settled when it is on again. A run that is
sending while a scenario is switched off may still send what it had already picked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kizuna._errors import KizunaError
from kizuna.operations import (
    SWITCH_STATES,
    Operations,
    SwitchRecord,
    now_ts,
    record_audit,
    record_switch,
    switch_records,
)
from kizuna.scenarios._model import Scenario, Trigger

__all__ = ["ENTERING_TRIGGERS", "SWITCH_STATES", "ScenarioState", "running_scenarios", "scenario_states",
           "switch_scenario"]

ENTERING_TRIGGERS = ("segment", "lapse", "churn_risk")  # occasions: who entered since the last run
CANCEL_NOTE = "switched off"


@dataclass(frozen=True)
class ScenarioState:
    """One scenario and its state: `state` is what `kizuna run` obeys (on, paused, off); `in_file`
    False when its file says `enabled: false` (then it is off, and only the file can change that);
    `changed_by` / `changed_ts` (unix seconds) the last switch, None when never switched;
    `cancelled` the messages that switch cancelled (switching off)."""

    scenario: Scenario
    state: str
    in_file: bool = True
    changed_by: str | None = None
    changed_ts: int | None = None
    cancelled: int = 0

    @property
    def name(self) -> str:
        return self.scenario.name


def scenario_states(operations: Operations, scenarios: Sequence[Scenario]) -> list[ScenarioState]:
    """Every scenario of `scenarios` with its state, in their order."""
    records = switch_records(operations)
    return [_state(s, records.get(s.name)) for s in scenarios]


def _state(scenario: Scenario, record: SwitchRecord | None) -> ScenarioState:
    switched = record.state if record is not None else "on"
    return ScenarioState(scenario, switched if scenario.enabled else "off", scenario.enabled,
                         record.changed_by if record else None, record.changed_ts if record else None)


def _find(scenarios: Sequence[Scenario], name: str) -> Scenario:
    found = next((s for s in scenarios if s.name == name), None)
    if found is None:
        raise KizunaError.keyed("switch.no_scenario", name=name, known=", ".join(s.name for s in scenarios) or "-")
    return found


def switch_scenario(operations: Operations, scenarios: Sequence[Scenario], name: str, state: str, *, user: str,
                    today: dt.date, at: int | None = None) -> ScenarioState:
    """Switch the scenario `name` to `state` (on, paused, off) as `user`, on the business day `today`
    (the day from which a scenario switched on catches up); one audit line. Switching to the state it
    is in changes nothing and records nothing."""
    if state not in SWITCH_STATES:
        raise KizunaError.keyed("switch.bad_state", state=state, states=", ".join(SWITCH_STATES))
    scenario = _find(scenarios, name)
    if not scenario.enabled:
        raise KizunaError.keyed("switch.off_in_file", name=name, path=str(scenario.path))
    record = switch_records(operations).get(name)
    if _state(scenario, record).state == state:
        return _state(scenario, record)
    at = now_ts() if at is None else at
    fresh_from, baseline = (record.fresh_from, record.baseline) if record is not None else (None, False)
    if state == "on":  # back on after a pause or off: from today, nothing of the time between
        fresh_from, baseline = today.isoformat(), scenario.trigger.kind in ENTERING_TRIGGERS
    new = SwitchRecord(name, state, user, at, fresh_from, baseline)
    cancelled = record_switch(operations, new, cancel_note=CANCEL_NOTE if state == "off" else None)
    record_audit(operations, user, f"scenario.{state}", name, cancelled if state == "off" else None, at=at)
    return dataclasses.replace(_state(scenario, new), cancelled=cancelled)


def running_scenarios(operations: Operations, scenarios: Mapping[str, Scenario], *, as_of: dt.date,
                      only: str | None = None, as_if_on: bool = False, timezone: str = "UTC",
                      ) -> tuple[dict[str, Scenario], set[str]]:
    """What a run as of `as_of` evaluates and sends, of the enabled `scenarios`: (name -> scenario, its
    trigger's catch-up narrowed to the day it was switched on again; the names whose entering trigger
    takes its members as they are this time). `as_if_on`: the paused and off ones as if switched on
    on `as_of` (what the web app shows they would do). `only` must be among them (its error names who
    switched it and when, in `timezone`)."""
    records = switch_records(operations)
    running: dict[str, Scenario] = {}
    baseline: set[str] = set()
    for name, scenario in scenarios.items():
        record = records.get(name)
        fresh = dt.date.fromisoformat(record.fresh_from) if record is not None and record.fresh_from else None
        takes = record is not None and record.baseline
        if record is not None and record.state != "on":
            if not as_if_on:
                continue
            fresh, takes = as_of, True
        running[name] = _not_caught_up(scenario, fresh, as_of)
        if takes and scenario.trigger.kind in ENTERING_TRIGGERS:
            baseline.add(name)
    if only is not None and only not in running:
        record = records[only]
        at = dt.datetime.fromtimestamp(record.changed_ts, zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
        raise KizunaError.keyed(f"switch.run_{record.state}", name=only, by=record.changed_by, at=at)
    return running, baseline


def _not_caught_up(scenario: Scenario, fresh: dt.date | None, as_of: dt.date) -> Scenario:
    """`scenario` with its catch-up window starting no earlier than `fresh`, the day it came back on."""
    params = scenario.trigger.params
    if fresh is None or "catch_up_days" not in params:
        return scenario
    days = max(0, (as_of - fresh).days)
    if days >= params["catch_up_days"]:
        return scenario
    return dataclasses.replace(scenario, trigger=Trigger(scenario.trigger.kind, {**params, "catch_up_days": days}))
