"""What a scenario run works with, opened and wired by the workspace (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kizuna.delivery import DeliverySettings, EmailSettings, LineSettings
from kizuna.operations import Links, Operations
from kizuna.scenarios._costs import CostSettings
from kizuna.settings import BusinessSettings
from kizuna.store import TABLES

if TYPE_CHECKING:  # the engine loads on first use
    import ibis

    from kizuna.store import Store

__all__ = ["OUTBOX", "RUN_LOCK", "SCENARIO_FOLDER", "RunContext", "RunSettings", "canonical_tables"]

SCENARIO_FOLDER = "scenarios"
OUTBOX = "outbox"
RUN_LOCK = ".kizuna-run.lock"


class RunSettings(Protocol):
    """The sections of the workspace's settings a scenario run reads (`kizuna.workspace.Settings` has them)."""

    @property
    def business(self) -> BusinessSettings: ...
    @property
    def delivery(self) -> DeliverySettings: ...
    @property
    def email(self) -> EmailSettings: ...
    @property
    def line(self) -> LineSettings: ...
    @property
    def costs(self) -> CostSettings: ...


@dataclass(frozen=True)
class RunContext:
    """The store, the operational records, the settings, the folders a run reads and writes, the links.

    `home` is the workspace folder: the run's lock file is there, and the DKIM key files of
    [email] are named relative to it.
    """

    store: Store
    operations: Operations
    settings: RunSettings
    links: Links
    home: Path
    scenarios_dir: Path
    outbox: Path

    @property
    def run_lock(self) -> Path:
        return self.home / RUN_LOCK

    def tables(self) -> dict[str, ibis.Table]:
        """The canonical tables as Ibis expressions."""
        return canonical_tables(self.store)


def canonical_tables(store: Store) -> dict[str, ibis.Table]:
    """The store's canonical tables as Ibis expressions."""
    return {name: store.table(name) for name in TABLES}
