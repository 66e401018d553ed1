"""Stage 1 and 2 of `kizuna run` in columns: the enrolments of a scenario's occasions as one Arrow table.

A run at a million customers finds a million occasions or more (a segment's members, the orders of
the catch-up days); built and compared with the ledger as columns, they cost a few vectorised
passes, and Python objects are made only for the rows a step goes on with: the new enrolments a
real run records, the rows a dry run finds due. The values are those of the per-row definitions
they replace (`group_of`, `local_to_unix`): same keys, same groups, same instants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import zoneinfo
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kizuna.operations import Delivery, DueRow, Enrolment
from kizuna.scenarios._model import Scenario

__all__ = ["ENROLMENT_SCHEMA", "Groups", "due_rows", "enrolment_table", "enrolments", "group_of", "local_to_unix",
           "unix_to_local_day"]

ENROLMENT_SCHEMA = pa.schema([
    ("key", pa.string()), ("scenario", pa.string()), ("step", pa.int64()), ("customer_id", pa.string()),
    ("occasion", pa.string()), ("occasion_ts", pa.int64()), ("detail", pa.string()), ("channel", pa.string()),
    ("grp", pa.string()), ("transactional", pa.bool_()), ("due_ts", pa.int64()),
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


def enrolment_table(scenario: Scenario, found: pa.Table, zone: zoneinfo.ZoneInfo, groups: Groups,
                    holdout: float) -> pa.Table:
    """`found`'s occasions (customer_id, occasion, occasion_at, detail) × `scenario`'s steps, as
    `ENROLMENT_SCHEMA` rows: an occasion's steps one after the other, the occasions in `found`'s
    order. The key is scenario / step / customer / occasion; a step is due its own and the
    earlier steps' wait_days after the occasion."""
    n, steps = found.num_rows, scenario.steps
    if not n:
        return ENROLMENT_SCHEMA.empty_table()
    k = len(steps)
    customers = found.column("customer_id").combine_chunks()
    at = local_to_unix(found.column("occasion_at"), zone)
    grp = pa.array(groups.of(customers.to_pylist(), scenario.name, holdout), pa.string())
    rows = pa.array(np.repeat(np.arange(n), k))  # each occasion once per step, in step order

    def each(values: list) -> np.ndarray:
        return np.tile(np.asarray(values), n)

    waits = np.cumsum([s.wait_days for s in steps]) * 86_400
    occasion = found.column("occasion").combine_chunks().take(rows)
    customer = customers.take(rows)
    occasion_ts = at.take(rows)
    return pa.table({
        "key": pc.binary_join_element_wise(pa.array(each([f"{scenario.name}/{s.number}/" for s in steps])),
                                           customer, "/", occasion, ""),
        "scenario": pa.array([scenario.name] * (n * k), pa.string()),
        "step": pa.array(each([s.number for s in steps]), pa.int64()),
        "customer_id": customer,
        "occasion": occasion,
        "occasion_ts": occasion_ts,
        "detail": found.column("detail").combine_chunks().cast(pa.string()).take(rows),
        "channel": pa.array(each([s.channel for s in steps]), pa.string()),
        "grp": grp.take(rows),
        "transactional": pa.array(each([s.transactional for s in steps]), pa.bool_()),
        "due_ts": pc.add(occasion_ts, pa.array(each(waits.tolist()), pa.int64())),
    }, schema=ENROLMENT_SCHEMA)


def _refs(n: int) -> Iterator[str]:
    # a random 32-hex id per row, as secrets.token_hex(16) makes them, drawn at once
    text = os.urandom(16 * n).hex()
    return (text[i:i + 32] for i in range(0, 32 * n, 32))


def _records(table: pa.Table, names: tuple[str, ...]) -> Iterator[dict]:
    columns = [table.column(name).to_pylist() for name in names]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def enrolments(table: pa.Table) -> list[Enrolment]:
    """`ENROLMENT_SCHEMA` rows as `Enrolment`s, each with a new random ref (what the ledger records)."""
    names = (*(n for n in _DUE_FIELDS if n != "ref"), "grp")
    return [Enrolment(ref=ref, **record) for ref, record in zip(_refs(table.num_rows), _records(table, names),
                                                                strict=True)]


def due_rows(table: pa.Table) -> list[DueRow]:
    """`ENROLMENT_SCHEMA` rows as `DueRow`s as the ledger would give them once enrolled (a dry run's)."""
    names = tuple(n for n in _DUE_FIELDS if n != "ref")
    return [DueRow(ref=ref, **record) for ref, record in zip(_refs(table.num_rows), _records(table, names),
                                                             strict=True)]
