"""The run's enrolments as columns (kizuna.scenarios._enrolments) give what the per-row definitions give."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pyarrow as pa
import pytest

from kizuna.scenarios import group_of
from kizuna.scenarios._enrolments import Groups, local_to_unix, unix_to_local_day


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_instants_are_those_python_gives_one_by_one(zone):
    tz = zoneinfo.ZoneInfo(zone)
    pick = random.Random(7)
    local = [dt.datetime(2021, 1, 1) + dt.timedelta(seconds=pick.randrange(4 * 365 * 86_400),
                                                    microseconds=pick.randrange(10**6)) for _ in range(3_000)]
    # moments a clock change skips or repeats, resolved as Python resolves them
    local += [dt.datetime(2024, 3, 31, 2, 30), dt.datetime(2024, 10, 27, 2, 30), dt.datetime(2024, 3, 10, 2, 30),
              dt.datetime(2024, 11, 3, 1, 30), dt.datetime(2024, 4, 7, 1, 45), dt.datetime(1969, 12, 31, 23, 59, 59, 1)]
    seconds = local_to_unix(pa.array(local, pa.timestamp("us")), tz).to_pylist()
    assert seconds == [int(t.replace(tzinfo=tz).timestamp()) for t in local]
    shifted = [s + pick.randrange(-7_200, 7_200) for s in seconds]
    days = unix_to_local_day(pa.array(shifted, pa.int64()), tz).to_pylist()
    assert days == [dt.datetime.fromtimestamp(s, tz).date() for s in shifted]


@pytest.mark.parametrize(("holdout", "global_control"), [(0.1, 0.05), (0.0, 0.0), (0.5, 0.0), (0.0, 0.3)])
def test_groups_are_group_of(holdout, global_control):
    ids = [f"C{n:05d}" for n in range(2_000)] + ["顧客-1", "C00001"]
    groups = Groups("secret", global_control)
    for scenario in ("thank-you", "win-back"):
        assert groups.of(ids, scenario, holdout) == [
            group_of(c, scenario, secret="secret", holdout=holdout, global_control=global_control) for c in ids]
