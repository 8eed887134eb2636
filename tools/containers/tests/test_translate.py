"""The rendered dev overlay, translated: what each service's container would get."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from libs import inventory
from tools.containers.objects import Rendered
from tools.containers.spec import DEFAULT_GRACE_SECONDS
from tools.containers.translate import container_spec

SERVICES = inventory.load().names()
NONROOT = 65532
# usersvc runs three argon2id hashes at once (64 MiB each), so it gets more memory.
MEMORY_MIB = {"usersvc": 384}
DEFAULT_MEMORY_MIB = 256


def _deployment_container(dev: Rendered, svc: str) -> dict:
    return dev.get("Deployment", svc)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("svc", SERVICES)
def test_database_url_is_expanded_with_the_secret_the_deployment_names(
    dev: Rendered, svc: str
) -> None:
    spec = container_spec(dev, svc)
    ref = next(
        e["valueFrom"]["secretKeyRef"]
        for e in _deployment_container(dev, svc)["env"]
        if e["name"] == "DB_PASSWORD"
    )
    password = dev.data("Secret", ref["name"])[ref["key"]].decode()
    url = urlsplit(spec.env_value("DATABASE_URL"))
    assert "$(" not in spec.env_value("DATABASE_URL")
    assert (url.username, url.password) == (svc, password)
    assert spec.env_value("DB_PASSWORD") == password


@pytest.mark.parametrize("svc", SERVICES)
def test_image_user_and_hardening(dev: Rendered, svc: str) -> None:
    spec = container_spec(dev, svc)
    assert spec.image == f"{svc}:dev"
    assert (spec.user, spec.group, spec.fs_group) == (NONROOT, NONROOT, NONROOT)
    assert spec.read_only_root and spec.no_new_privileges
    assert spec.cap_drop == ("ALL",)
    (tmp,) = spec.tmpfs
    assert (tmp.mount_path, tmp.size_bytes) == ("/tmp", 64 * 2**20)  # noqa: S108 - the pod's path


@pytest.mark.parametrize("svc", SERVICES)
def test_limits_ports_and_grace(dev: Rendered, svc: str) -> None:
    spec = container_spec(dev, svc)
    assert (spec.memory_bytes, spec.cpus) == (MEMORY_MIB.get(svc, DEFAULT_MEMORY_MIB) * 2**20, 0.5)
    assert spec.ports == {"grpc": int(spec.env_value("GRPC_PORT")), "metrics": 9090}
    pod = dev.get("Deployment", svc)["spec"]["template"]["spec"]
    # The manifests leave it to Kubernetes' default; if one sets it, that value must win.
    assert spec.grace_seconds == pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)


@pytest.mark.parametrize("svc", SERVICES)
def test_probes_with_kubernetes_defaults_filled_in(dev: Rendered, svc: str) -> None:
    spec = container_spec(dev, svc)
    grpc_port = spec.ports["grpc"]
    startup, readiness, liveness = (spec.probes[k] for k in ("startup", "readiness", "liveness"))
    # startupProbe sets no timeoutSeconds: Kubernetes' 1 s applies.
    assert (startup.port, startup.service, startup.period, startup.timeout) == (
        grpc_port,
        "liveness",
        2,
        1,
    )
    assert startup.failure_threshold == 30
    assert (readiness.service, readiness.period, readiness.timeout) == ("", 5, 2)
    assert (liveness.service, liveness.period, liveness.failure_threshold) == ("liveness", 10, 3)


def test_secret_and_configmap_volumes(dev: Rendered) -> None:
    auth = {v.mount_path: v for v in container_spec(dev, "authsvc").volumes}
    signing = auth["/var/run/secrets/micro/authsvc"]
    assert signing.mode == 0o440 and signing.read_only
    assert [f.name for f in signing.files] == ["signing_key.pem"]
    assert signing.files[0].data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [f.name for f in auth["/var/run/secrets/micro/service"].files] == ["service_key.pem"]
    auth_trusted = auth["/etc/micro/trusted-service-keys"]
    assert auth_trusted.source.startswith("ConfigMap/authsvc-trusted-service-keys")
    assert [f.name for f in auth_trusted.files] == ["usersvc.pem"]
    users = {v.mount_path: v for v in container_spec(dev, "usersvc").volumes}
    assert set(users) == {"/var/run/secrets/micro/service", "/etc/micro/trusted-service-keys"}
    service_key = users["/var/run/secrets/micro/service"]
    assert service_key.source.startswith("Secret/usersvc-service-key")
    assert service_key.mode == 0o440 and service_key.read_only
    assert [f.name for f in service_key.files] == ["service_key.pem"]
    trusted = users["/etc/micro/trusted-service-keys"]
    assert trusted.source.startswith("ConfigMap/usersvc-trusted-service-keys")
    # No defaultMode in the manifest: Kubernetes' 0644.
    assert trusted.mode == 0o644
    assert [f.name for f in trusted.files] == ["authsvc.pem", "paymentsvc.pem"]
