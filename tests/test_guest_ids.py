"""Guests' ids (buyers without a member id): a keyed hash of the e-mail or phone with the
workspace secret, not a plain SHA-256 that gives a phone number back by brute force; a workspace
made before is moved to them once, store and ledger alike, and a re-import finds the same
customers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kizuna.importing import guest_id, import_file
from kizuna.workspace import Workspace

from factories import write

ORDERS = (
    "order_id,customer_id,ordered_at,amount,email,phone\n"
    "O1,,2026-01-05,1200,Hana@Example.jp,\n"          # a guest by e-mail
    "O2,,2026-02-06,3400,hana@example.jp ,080-1111-2222\n"  # the same guest
    "O3,,2026-03-07,5600,,090-3333-4444\n"            # a guest by phone only
    "O4,K1,2026-03-08,7800,taro@example.jp,\n"        # a member
)


def unsalted(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:16]


def customer_ids(ws: Workspace) -> list[str]:
    return sorted(r["customer_id"] for r in ws.store.table("customers").select("customer_id").to_pyarrow().to_pylist())


def orders(ws: Workspace) -> list[tuple[str, str]]:
    rows = ws.store.table("orders").select("order_id", "customer_id").to_pyarrow().to_pylist()
    return sorted((r["order_id"], r["customer_id"]) for r in rows)


@pytest.mark.slow
def test_a_guest_id_is_keyed_with_the_workspace_secret(tmp_path: Path) -> None:
    source = write(tmp_path / "orders.csv", ORDERS)
    found = []
    for name in ("a", "b"):
        with Workspace.init(tmp_path / name) as ws:
            assert ws.import_file("orders", source).added == 4
            secret = ws.operations.secret()
            mail, phone = guest_id("hana@example.jp", key=secret), guest_id(None, "09033334444", key=secret)
            assert orders(ws) == [("O1", mail), ("O2", mail), ("O3", phone), ("O4", "K1")]
            # not the digest anyone can recompute from a phone number
            assert mail != unsalted("m-", "hana@example.jp") and phone != unsalted("t-", "09033334444")
            assert mail.startswith("m-") and phone.startswith("t-") and len(mail) == len(phone) == 18
            found.append((mail, phone))
    assert found[0][0] != found[1][0] and found[0][1] != found[1][1]  # two workspaces, two secrets


@pytest.mark.slow
def test_an_old_workspace_moves_to_keyed_ids_once_and_a_reimport_adds_no_one(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    source = write(tmp_path / "orders.csv", ORDERS)
    old_mail, old_phone = unsalted("m-", "hana@example.jp"), unsalted("t-", "09033334444")
    with Workspace.init(folder) as ws:
        # what kizuna before the keyed ids stored: the importer without a key
        import_file(ws.store, "orders", source, rejects_dir=folder / "rejects")
        assert orders(ws) == [("O1", old_mail), ("O2", old_mail), ("O3", old_phone), ("O4", "K1")]
        ws.analyze()
        ops = ws.operations
        with ops.write() as db:  # the ledger of a run, an opt-out and a survey link of the old ids
            for n, customer in enumerate((old_mail, old_phone, "K1")):
                db.execute(
                    "INSERT INTO deliveries (key, ref, scenario, step, customer_id, occasion, occasion_ts, channel, "
                    "grp, status, due_ts, created_ts, updated_ts) VALUES (?, ?, 'thanks', 1, ?, ?, 0, 'dm', "
                    "'treated', 'sent', 0, 0, 0)",
                    (f"thanks/1/{customer}/order:O{n}", f"ref{n}", customer, f"order:O{n}"))
            db.execute("DELETE FROM meta WHERE key LIKE 'guest ids keyed %'")  # kizuna before kept no such record
        ops.set_consent("email", old_mail, False, source="unsubscribe")
        ops.survey_link(old_phone, "delivery")
        secret = ops.secret()
    new_mail, new_phone = guest_id("hana@example.jp", key=secret), guest_id(None, "090-3333-4444", key=secret)

    with Workspace.open(folder) as ws:  # moved once, everywhere
        assert orders(ws) == [("O1", new_mail), ("O2", new_mail), ("O3", new_phone), ("O4", "K1")]
        assert customer_ids(ws) == sorted(["K1", new_mail, new_phone])
        assert sorted(r["customer_id"] for r in ws.scores().select("customer_id").to_pyarrow().to_pylist()) == \
            customer_ids(ws)
        ops = ws.operations
        assert sorted(r["key"] for r in ops.query("SELECT key FROM deliveries")) == sorted([
            f"thanks/1/{new_mail}/order:O0", f"thanks/1/{new_phone}/order:O1", "thanks/1/K1/order:O2"])
        assert ops.consent("email", new_mail) is False and ops.consent("email", old_mail) is None
        assert ops.query("SELECT customer_id FROM survey_links")[0]["customer_id"] == new_phone
        again = ws.import_file("orders", source)  # the same customers: nothing added
        assert (again.added, again.updated, again.unchanged) == (0, 0, 4)
        assert customer_ids(ws) == sorted(["K1", new_mail, new_phone])
        # once: an id that looks old, stored after the move, is left alone
        import_file(ws.store, "orders", write(tmp_path / "late.csv", "order_id,customer_id,ordered_at,amount,email\n"
                                              "O9,,2026-04-01,100,late@example.jp\n"), rejects_dir=folder / "rejects")
    old_late = unsalted("m-", "late@example.jp")
    with Workspace.open(folder) as ws:
        assert old_late in customer_ids(ws)
    data = (folder / "kizuna.duckdb").read_bytes() + (folder / "kizuna-ops.sqlite3").read_bytes()
    assert old_mail.encode() not in data and old_phone.encode() not in data  # compacted away
