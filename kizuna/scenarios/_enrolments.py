"""Stage 1 and 2 of `kizuna run` in columns: the enrolments of a scenario's occasions as one Arrow table.

A run at a million customers finds a million occasions or more (a segment's members, the orders of
the catch-up days). The customers' control groups are worked out by the engine with the occasions
(`group_column`), and what stage 2 reads of them becomes `ENROLMENT_SCHEMA` rows in a few vectorised
passes (`enrolment_rows`); Python objects are made only for the rows a step goes on with: the new
enrolments a real run records, the rows a dry run finds due. The values are those of the per-row
definitions they replace (`group_of`, `local_to_unix`): same keys, same groups, same instants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import zoneinfo
from collections.abc import Iterator

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kizuna.operations import Delivery, DueRow, Enrolment
from kizuna.scenarios._model import Scenario
from kizuna.store import salted_digest

__all__ = ["DUE_SCHEMA", "ENROLMENT_SCHEMA", "Groups", "due_rows", "due_table", "enrolment_rows", "enrolments",
           "group_column", "group_of", "local_to_unix", "new_due", "share_bound", "unix_to_local_day"]

ENROLMENT_SCHEMA = pa.schema([
    ("key", pa.string()), ("scenario", pa.string()), ("step", pa.int64()), ("customer_id", pa.string()),
    ("occasion", pa.string()), ("occasion_ts", pa.int64()), ("detail", pa.string()), ("channel", pa.string()),
    ("grp", pa.string()), ("transactional", pa.bool_()), ("due_ts", pa.int64()),
])
# The rows to act on, as the ledger gives them (`DueRow`): what a run holds of every message due at once.
DUE_SCHEMA = pa.schema([
    ("key", pa.string()), ("ref", pa.string()), ("scenario", pa.string()), ("step", pa.int64()),
    ("customer_id", pa.string()), ("occasion", pa.string()), ("occasion_ts", pa.int64()), ("detail", pa.string()),
    ("channel", pa.string()), ("transactional", pa.bool_()), ("due_ts", pa.int64()), ("status", pa.string()),
    ("batch", pa.string()), ("attempts", pa.int64()),
])
_DAY_US = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1)
_DUE_FIELDS = tuple(f.name for f in dataclasses.fields(Delivery))


def _share(salt: bytes, customer_id: str) -> float:
    digest = hashlib.sha256(salt + customer_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _salt(*parts: str) -> bytes:
    return "\0".join((*parts, "")).encode()


def group_of(customer_id: str, scenario: str, *, secret: str, holdout: float, global_control: float) -> str:
    """treated, holdout or global_control: stable for a customer whatever the day or the run.

    A hash of the customer id (with the workspace secret, for the global group; with the
    scenario's name, for its holdout) read as a number in [0, 1).
    """
    if _share(_salt("global", secret), customer_id) < global_control:
        return "global_control"
    if _share(_salt("scenario", scenario), customer_id) < holdout:
        return "holdout"
    return "treated"


class Groups:
    """`group_of` for many customers: the global control group is hashed once per customer and run,
    and no hash is taken for a share of 0 (no number in [0, 1) is below it)."""

    def __init__(self, secret: str, global_control: float) -> None:
        self._global = _salt("global", secret)
        self.global_control = global_control
        self._in_global: dict[str, bool] = {}

    def of(self, customer_ids: list[str], scenario: str, holdout: float) -> list[str]:
        """The group of each of `customer_ids` in `scenario` (with its holdout share), in order."""
        known = self._in_global
        own = _salt("scenario", scenario)
        result = []
        for customer in customer_ids:
            in_global = known.get(customer)
            if in_global is None:
                in_global = known[customer] = (self.global_control > 0
                                               and _share(self._global, customer) < self.global_control)
            if in_global:
                result.append("global_control")
            elif holdout > 0 and _share(own, customer) < holdout:
                result.append("holdout")
            else:
                result.append("treated")
        return result


def share_bound(share: float) -> str | None:
    """The 16 hex digits B such that a digest prefix p (16 lowercase hex digits) has
    ``int(p, 16) / 2**64 < share`` exactly when p < B; None when every p is below (a share past 1).

    >>> share_bound(0.0), share_bound(0.5), share_bound(2.0)
    ('0000000000000000', '8000000000000000', None)
    """
    low, high = 0, 2**64  # the least x with x / 2**64 >= share, as Python divides (monotone in x)
    while low < high:
        middle = (low + high) // 2
        if middle / 2**64 >= share:
            high = middle
        else:
            low = middle + 1
    return None if low == 2**64 else format(low, "016x")


def group_column(customer_id: ibis.Value, scenario: str, *, secret: str, holdout: float,
                 global_control: float) -> ibis.Value:
    """`group_of` as an expression the engine works out: the same SHA-256 shares, compared as hex digits."""

    def below(salt: bytes, share: float) -> ibis.Value:
        if share <= 0:  # no number in [0, 1) is below it: no hash taken
            return ibis.literal(False)
        bound = share_bound(share)
        return ibis.literal(True) if bound is None else salted_digest(customer_id, salt) < bound

    return ibis.cases((below(_salt("global", secret), global_control), "global_control"),
                      (below(_salt("scenario", scenario), holdout), "holdout"), else_="treated")


def enrolment_rows(scenario: Scenario, found: pa.Table, zone: zoneinfo.ZoneInfo) -> pa.Table:
    """`ENROLMENT_SCHEMA` rows of `found` (customer_id, occasion, occasion_at, detail, step, grp: an
    occasion's step with the customer's group, as the engine gave them), in `found`'s order."""
    if not found.num_rows:
        return ENROLMENT_SCHEMA.empty_table()
    steps = {s.number: s for s in scenario.steps}
    waits = dict(zip(steps, (np.cumsum([s.wait_days for s in steps.values()]) * 86_400).tolist(), strict=True))
    step = found.column("step").combine_chunks().cast(pa.int64())
    numbers = pa.array(list(steps), pa.int64())
    at = pc.index_in(step, value_set=numbers)

    def per_step(values: list, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(at)

    customer = found.column("customer_id").combine_chunks().cast(pa.string())
    occasion = found.column("occasion").combine_chunks().cast(pa.string())
    occasion_ts = local_to_unix(found.column("occasion_at"), zone)
    prefix = per_step([f"{scenario.name}/{n}/" for n in steps], pa.string())
    return pa.table({
        "key": pc.binary_join_element_wise(prefix, customer, "/", occasion, ""),
        "scenario": pa.array([scenario.name] * found.num_rows, pa.string()),
        "step": step,
        "customer_id": customer,
        "occasion": occasion,
        "occasion_ts": occasion_ts,
        "detail": found.column("detail").combine_chunks().cast(pa.string()),
        "channel": per_step([s.channel for s in steps.values()], pa.string()),
        "grp": found.column("grp").combine_chunks().cast(pa.string()),
        "transactional": per_step([s.transactional for s in steps.values()], pa.bool_()),
        "due_ts": pc.add(occasion_ts, per_step(list(waits.values()), pa.int64())),
    }, schema=ENROLMENT_SCHEMA)


def _day_offsets(days: np.ndarray, offset_at) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct day number: (its UTC offset in microseconds, whether it is the same all day);
    `offset_at(naive datetime)` is the zone's offset at that moment. A day whose first and last
    moments differ holds a transition: its rows are converted one by one."""
    offsets = np.zeros(len(days), np.int64)
    steady = np.ones(len(days), bool)
    for n, day in enumerate(days.tolist()):
        start = _EPOCH + dt.timedelta(days=day)
        first, last = offset_at(start), offset_at(start + dt.timedelta(days=1, microseconds=-1))
        offsets[n] = first // dt.timedelta(microseconds=1)
        steady[n] = first == last
    return offsets, steady


def _truncated_seconds(us: np.ndarray) -> np.ndarray:
    # int() of a float number of seconds rounds toward zero, also before 1970
    return np.where(us >= 0, us // 1_000_000, -((-us) // 1_000_000))


def local_to_unix(local: pa.Array | pa.ChunkedArray, zone: zoneinfo.ZoneInfo) -> pa.Array:
    """Unix seconds of local wall-clock timestamps (no nulls), as
    `int(t.replace(tzinfo=zone).timestamp())` gives them one by one (an ambiguous or missing
    local time resolved as Python resolves it)."""
    us = np.asarray(pc.cast(local, pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    if not len(us):
        return pa.array([], pa.int64())
    days, index = np.unique(us // _DAY_US, return_inverse=True)
    offsets, steady = _day_offsets(days, lambda t: t.replace(tzinfo=zone).utcoffset())
    result = _truncated_seconds(us - offsets[index])
    for n in np.flatnonzero(~steady[index]).tolist():
        moment = _EPOCH + dt.timedelta(microseconds=int(us[n]))
        result[n] = int(moment.replace(tzinfo=zone).timestamp())
    return pa.array(result, pa.int64())


def unix_to_local_day(seconds: pa.Array | pa.ChunkedArray, zone: zoneinfo.ZoneInfo) -> pa.Array:
    """The local dates (date32) of Unix seconds, as `dt.datetime.fromtimestamp(s, zone).date()`."""
    s = np.asarray(pc.cast(seconds, pa.int64()).to_numpy(zero_copy_only=False), np.int64)
    if not len(s):
        return pa.array([], pa.date32())
    days, index = np.unique(s // 86_400, return_inverse=True)
    offsets, steady = _day_offsets(days, lambda t: t.replace(tzinfo=dt.UTC).astimezone(zone).utcoffset())
    local_days = (s * 1_000_000 + offsets[index]) // _DAY_US
    for n in np.flatnonzero(~steady[index]).tolist():
        local_days[n] = (dt.datetime.fromtimestamp(int(s[n]), zone).date() - _EPOCH.date()).days
    return pa.array(local_days.astype(np.int32), pa.date32())


def _refs(n: int) -> Iterator[str]:
    # a random 32-hex id per row, as secrets.token_hex(16) makes them, drawn at once
    text = os.urandom(16 * n).hex()
    return (text[i:i + 32] for i in range(0, 32 * n, 32))


def _records(table: pa.Table, names: tuple[str, ...]) -> Iterator[dict]:
    columns = [table.column(name).to_pylist() for name in names]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def enrolments(table: pa.Table, batch_rows: int = 100_000) -> Iterator[Enrolment]:
    """`ENROLMENT_SCHEMA` rows as `Enrolment`s, each with a new random ref (what the ledger records), made a
    batch of rows at a time as they are taken."""
    names = (*(n for n in _DUE_FIELDS if n != "ref"), "grp")
    for start in range(0, table.num_rows, batch_rows):
        part = table.slice(start, batch_rows)
        yield from (Enrolment(ref=ref, **record) for ref, record in zip(_refs(part.num_rows), _records(part, names),
                                                                         strict=True))


def new_due(table: pa.Table) -> pa.Table:
    """`ENROLMENT_SCHEMA` rows as `DUE_SCHEMA` rows as the ledger would give them once enrolled (a dry run's):
    a new random ref each, scheduled, never tried."""
    n = table.num_rows
    columns = {name: table.column(name) for name in DUE_SCHEMA.names if name in ENROLMENT_SCHEMA.names}
    return pa.table({**columns, "ref": pa.array(list(_refs(n)), pa.string()),
                     "status": pa.array(["scheduled"] * n, pa.string()), "batch": pa.nulls(n, pa.string()),
                     "attempts": pa.array([0] * n, pa.int64())}).select(DUE_SCHEMA.names).cast(DUE_SCHEMA)


def due_table(rows: list[DueRow]) -> pa.Table:
    """`DueRow`s as `DUE_SCHEMA` rows, in their order."""
    return pa.table({name: pa.array([getattr(r, name) for r in rows], DUE_SCHEMA.field(name).type)
                     for name in DUE_SCHEMA.names}, schema=DUE_SCHEMA)


def due_rows(table: pa.Table) -> list[DueRow]:
    """`DUE_SCHEMA` rows as `DueRow`s, in their order."""
    return [DueRow(**record) for record in _records(table, tuple(DUE_SCHEMA.names))]
