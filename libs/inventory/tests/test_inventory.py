from __future__ import annotations

import pytest

from libs import inventory
from libs.inventory import InventoryError, parse


def entry(port: int, db: str, proto: str, calls: list[str] | None = None) -> dict[str, object]:
    return {"port": port, "database": db, "proto": proto, "calls": calls or []}


def test_the_built_inventory_loads_in_its_order() -> None:
    loaded = inventory.load()
    assert loaded.names()[:3] == ("usersvc", "paymentsvc", "authsvc")
    assert inventory.service("usersvc").local_address == f"localhost:{loaded.get('usersvc').port}"


def test_trust_follows_calls() -> None:
    inv = parse(
        {
            "asvc": entry(50001, "a_db", "a", ["bsvc"]),
            "bsvc": entry(50002, "b_db", "b", ["asvc"]),
            "csvc": entry(50003, "c_db", "c", ["asvc"]),
        }
    )
    assert inv.callers_of("asvc") == ("bsvc", "csvc")
    assert inv.callers_of("csvc") == ()
    assert [s.name for s in inv.callers()] == ["asvc", "bsvc", "csvc"]
    assert inv.get("csvc").env_prefix == "CSVC"
    with pytest.raises(KeyError, match="'dsvc' is not in services/inventory.bzl"):
        inv.get("dsvc")


def test_every_contradiction_is_reported_at_once() -> None:
    with pytest.raises(InventoryError) as info:
        parse(
            {
                "asvc": entry(50001, "a_db", "a", ["nosvc"]),
                "bsvc": entry(50001, "a_db", "b", ["bsvc"]),
                "Bad-Name": entry(80, "x; drop", "c"),
            }
        )
    msg = str(info.value)
    assert "'asvc' calls 'nosvc', which is not in the inventory" in msg
    assert "'bsvc' and 'asvc' share the port 50001" in msg
    assert "'bsvc' and 'asvc' share the database 'a_db'" in msg
    assert "'bsvc' calls itself" in msg
    assert "'Bad-Name': a service name is lower-case" in msg
    assert "port 80 is outside" in msg
    assert "database 'x; drop' is not a plain identifier" in msg


def test_an_entry_without_its_facts_is_refused() -> None:
    with pytest.raises(InventoryError, match="port, database and proto are required"):
        parse({"asvc": {"port": 50001}})


def test_the_token_issuer_is_found_by_its_fact_not_its_name() -> None:
    assert inventory.token_issuer().name == "authsvc"
    issuing = {**entry(50002, "b_db", "b"), "issues_tokens": True}
    inv = parse({"asvc": entry(50001, "a_db", "a"), "bsvc": issuing})
    assert inv.token_issuer().name == "bsvc"
    with pytest.raises(KeyError, match="issues_tokens"):
        parse({"asvc": entry(50001, "a_db", "a")}).token_issuer()
    with pytest.raises(InventoryError, match="only one service issues tokens"):
        parse({"asvc": {**entry(50001, "a_db", "a"), "issues_tokens": True}, "bsvc": issuing})
