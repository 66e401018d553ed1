"""Customer master data: Japanese names with kana, contact details, addresses and opt-ins.

E-mail domains are the ones reserved for examples (example.com, example.jp …), so a
demo list exported by mistake reaches nobody.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kizuna.demo._arrow import join, numbered, pick, stamps, text
from kizuna.demo._catalog import BUILDINGS, GIVEN_FEMALE, GIVEN_MALE, PLACES, SURNAMES, TOWNS
from kizuna.demo._simulate import Business

__all__ = ["customer_ids", "customers_table", "ids_of"]

DOMAINS = ("example.jp", "example.ne.jp", "example.co.jp", "example.com")


def customer_ids(n: int) -> pa.Array:
    """C0000001, C0000002, … in order of sign-up."""
    return ids_of(np.arange(n))


def ids_of(customers: np.ndarray) -> pa.Array:
    """The customer ids of customer indexes (0 -> C0000001), built directly rather than looked up."""
    return numbered("C", np.asarray(customers) + 1, 7)


def customers_table(b: Business, rng: np.random.Generator, as_of: dt.date) -> pa.Table:
    n = len(b.people.signup)
    # Surnames follow a Zipf-like curve, as in Japan (佐藤 and 鈴木 far ahead of the rest).
    weights = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.7
    surname = rng.choice(len(SURNAMES), n, p=weights / weights.sum())
    female = rng.random(n) < 0.62
    given_list = GIVEN_FEMALE + GIVEN_MALE
    given = np.where(female, rng.integers(0, len(GIVEN_FEMALE), n),
                     len(GIVEN_FEMALE) + rng.integers(0, len(GIVEN_MALE), n))

    def part(rows: tuple[tuple[str, str, str], ...], index: np.ndarray, field: int) -> pa.Array:
        return pick([r[field] for r in rows], index)

    name = join(part(SURNAMES, surname, 0), "\u3000", part(given_list, given, 0))
    kana = join(part(SURNAMES, surname, 1), "\u3000", part(given_list, given, 1))
    has_email = rng.random(n) < 0.97
    email = join(part(given_list, given, 2), ".", part(SURNAMES, surname, 2), text(np.arange(1, n + 1)),
                 "@", pick(DOMAINS, rng.choice(len(DOMAINS), n, p=[.4, .3, .1, .2])))
    email = pc.if_else(pa.array(has_email), email, pa.scalar(None, pa.string()))
    has_phone = rng.random(n) < 0.9
    phone = join(pick(("090", "080", "070"), rng.choice(3, n, p=[.5, .4, .1])), "-",
                 _digits(rng, n, 4), "-", _digits(rng, n, 4))

    place_weights = np.array([w for _, _, w in PLACES], dtype=float)
    place = rng.choice(len(PLACES), n, p=place_weights / place_weights.sum())
    postal = join(pick([prefix for _, prefix, _ in PLACES], place), "-", _digits(rng, n, 4))
    building = rng.random(n) < 0.35
    room = join(" ", pick(BUILDINGS, rng.integers(0, len(BUILDINGS), n)), " ",
                text(rng.integers(1, 9, n) * 100 + rng.integers(1, 12, n)), "号室")
    address = join(
        pick([city for city, _, _ in PLACES], place), pick(TOWNS, rng.integers(0, len(TOWNS), n)),
        text(rng.integers(1, 6, n)), "丁目", text(rng.integers(1, 30, n)), "-", text(rng.integers(1, 20, n)),
        pc.if_else(pa.array(building), room, ""),
    )

    has_line = rng.random(n) < 0.4
    line_id = join("U", _hex32(rng, n))
    # A LINE friend who blocks the account is an opt-out; no LINE id, nothing to say.
    line_opt_in = np.where(has_line, rng.random(n) < 0.88, False)
    email_opt_in = rng.random(n) < 0.85
    ages = rng.uniform(24, 78, n)
    birthday_days = (as_of - dt.date(1970, 1, 1)).days - (ages * 365.25).astype(np.int64)
    has_birthday = rng.random(n) < 0.75
    return pa.table({
        "customer_id": customer_ids(n),
        "name": name,
        "name_kana": kana,
        "email": email,
        "phone": pc.if_else(pa.array(has_phone), phone, pa.scalar(None, pa.string())),
        "line_user_id": pc.if_else(pa.array(has_line), line_id, pa.scalar(None, pa.string())),
        "postal_code": postal,
        "address": address,
        "signed_up_at": stamps(b.people.signup),
        "email_opt_in": pa.array(email_opt_in, mask=~has_email),
        "line_opt_in": pa.array(line_opt_in, mask=~has_line),
        "dm_opt_in": pa.array(rng.random(n) < 0.55),
        "birthday": pa.array(birthday_days.astype(np.int32), pa.date32(), mask=~has_birthday),
    })


def _digits(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    return pc.utf8_lpad(text(rng.integers(0, 10**width, n)), width, "0")


def _hex32(rng: np.random.Generator, n: int) -> pa.Array:
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8).tobytes().hex().encode("ascii")
    return pa.array(np.frombuffer(raw, dtype="S32")).cast(pa.string())
