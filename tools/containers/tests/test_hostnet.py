"""Host-network rewrites of the rendered dev overlay: what changes, and only that."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from libs import inventory
from tools.containers.hostnet import HostNetwork, Rewrite, for_host_network
from tools.containers.objects import ManifestError, Rendered
from tools.containers.spec import ContainerSpec
from tools.containers.translate import service_specs

SERVICES = inventory.load().names()
# Moved ports, unlike any the manifests use: 41001, 41002, ... in the inventory's order.
PORTS = {svc: {"grpc": 41001 + i, "metrics": 42001 + i} for i, svc in enumerate(SERVICES)}
PG = "127.0.0.1:45432"


def _adjusted(
    dev: Rendered,
) -> tuple[dict[str, ContainerSpec], dict[str, ContainerSpec], list[Rewrite]]:
    """(as rendered, adjusted for the host network, the rewrites)."""
    specs = service_specs(dev, SERVICES)
    return specs, *for_host_network(dev, specs, HostNetwork(PORTS, {"postgres": PG}))


def test_cluster_addresses_point_at_the_moved_ports(dev: Rendered) -> None:
    _, specs, _ = _adjusted(dev)
    users, auth = PORTS["usersvc"]["grpc"], PORTS["authsvc"]["grpc"]
    assert specs["paymentsvc"].env_value("USERSVC_ADDR") == f"127.0.0.1:{users}"
    assert specs["paymentsvc"].env_value("AUTHSVC_ADDR") == f"127.0.0.1:{auth}"
    assert specs["usersvc"].env_value("AUTHSVC_ADDR") == f"127.0.0.1:{auth}"
    for spec in specs.values():
        assert not any(".svc" in value for _, value in spec.env), spec.name


@pytest.mark.parametrize("svc", SERVICES)
def test_database_url_keeps_user_password_and_database(dev: Rendered, svc: str) -> None:
    before, after, _ = _adjusted(dev)
    old = urlsplit(before[svc].env_value("DATABASE_URL"))
    new = urlsplit(after[svc].env_value("DATABASE_URL"))
    assert f"{new.hostname}:{new.port}" == PG
    assert (new.scheme, new.username, new.password, new.path) == (
        old.scheme,
        old.username,
        old.password,
        old.path,
    )


@pytest.mark.parametrize("svc", SERVICES)
def test_ports_move_with_their_env_vars_and_probes(dev: Rendered, svc: str) -> None:
    _, specs, _ = _adjusted(dev)
    spec = specs[svc]
    assert spec.ports == PORTS[svc]
    assert spec.env_value("GRPC_PORT") == str(PORTS[svc]["grpc"])
    assert spec.env_value("METRICS_PORT") == str(PORTS[svc]["metrics"])
    assert {p.port for p in spec.probes.values()} == {PORTS[svc]["grpc"]}


def test_every_change_is_listed_and_nothing_else_changes(dev: Rendered) -> None:
    before, after, rewrites = _adjusted(dev)
    listed = {(r.service, r.what) for r in rewrites}
    for svc in SERVICES:
        for (key, old), (key2, new) in zip(before[svc].env, after[svc].env, strict=True):
            assert key == key2
            assert (old != new) == ((svc, f"env {key}") in listed), (svc, key)
        for kind in before[svc].probes:
            assert (svc, f"{kind} probe port") in listed
        assert before[svc].volumes == after[svc].volumes
        assert (before[svc].user, before[svc].read_only_root) == (
            after[svc].user,
            after[svc].read_only_root,
        )


def test_unchosen_ports_stay_and_produce_no_rewrite(dev: Rendered) -> None:
    specs = service_specs(dev, SERVICES)
    same = {svc: {"grpc": spec.ports["grpc"]} for svc, spec in specs.items()}
    after, rewrites = for_host_network(dev, specs, HostNetwork(same, {"postgres": PG}))
    # Only the cluster addresses: the ports were chosen as the manifest has them.
    assert {r.what for r in rewrites} == {
        "env DATABASE_URL",
        "env USERSVC_ADDR",
        "env AUTHSVC_ADDR",
    }
    assert after["usersvc"].env_value("METRICS_PORT") == "9090"


def test_a_service_without_an_address_is_refused(dev: Rendered) -> None:
    specs = service_specs(dev, SERVICES)
    with pytest.raises(ManifestError, match="Service postgres selects no container"):
        for_host_network(dev, specs, HostNetwork(PORTS, {}))
