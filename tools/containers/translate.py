"""A rendered Deployment (plus its Secrets and ConfigMaps) -> the ContainerSpec to run.

Only what a single host can honour is translated, and every field that would change how the
container behaves but has no translation here is refused (ManifestError), so a manifest
change can never be silently ignored by the container tests. Scheduling-only fields
(replicas, requests, affinity, labels) have no meaning on one host and are left out.
"""

from __future__ import annotations

from typing import Any

from tools.containers import envvars, quantity
from tools.containers.objects import ManifestError, Rendered
from tools.containers.spec import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_PROBE_FAILURES,
    DEFAULT_PROBE_PERIOD,
    DEFAULT_PROBE_TIMEOUT,
    ContainerSpec,
    Probe,
    Tmpfs,
    Volume,
    VolumeFile,
)

# Kubernetes' mode for Secret and ConfigMap volume files when defaultMode is absent.
DEFAULT_VOLUME_MODE = 0o644
PROBES = {"startupProbe": "startup", "readinessProbe": "readiness", "livenessProbe": "liveness"}
# Container fields that change what runs; none is used by the manifests today.
UNSUPPORTED_CONTAINER_FIELDS = ("command", "args", "envFrom", "lifecycle", "workingDir")


def _probe(container: str, kind: str, probe: dict[str, Any]) -> Probe:
    if "grpc" not in probe:
        raise ManifestError(f"{container}: {kind} is not a grpc probe: {sorted(probe)}")
    return Probe(
        port=int(probe["grpc"]["port"]),
        service=probe["grpc"].get("service", ""),
        initial_delay=probe.get("initialDelaySeconds", 0),
        period=probe.get("periodSeconds", DEFAULT_PROBE_PERIOD),
        timeout=probe.get("timeoutSeconds", DEFAULT_PROBE_TIMEOUT),
        failure_threshold=probe.get("failureThreshold", DEFAULT_PROBE_FAILURES),
    )


def _volume(
    rendered: Rendered, container: str, volume: dict[str, Any], mount: dict[str, Any]
) -> Volume | Tmpfs:
    if "subPath" in mount or "subPathExpr" in mount:
        raise ManifestError(f"{container}: subPath mounts are not supported")
    path = mount["mountPath"]
    if "emptyDir" in volume:
        limit = (volume["emptyDir"] or {}).get("sizeLimit")
        return Tmpfs(path, quantity.memory_bytes(limit) if limit is not None else None)
    for field, kind, name_field in (
        ("secret", "Secret", "secretName"),
        ("configMap", "ConfigMap", "name"),
    ):
        if field in volume:
            source = volume[field]
            if "items" in source:
                raise ManifestError(f"{container}: {field} volume items are not supported")
            name = source[name_field]
            files = tuple(
                VolumeFile(key, data) for key, data in sorted(rendered.data(kind, name).items())
            )
            return Volume(
                source=f"{kind}/{name}",
                mount_path=path,
                files=files,
                mode=source.get("defaultMode", DEFAULT_VOLUME_MODE),
                read_only=bool(mount.get("readOnly", False)),
            )
    raise ManifestError(f"{container}: unsupported volume {volume['name']}: {sorted(volume)}")


def _security(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Pod-level securityContext with the container's own settings taking precedence."""
    merged = {
        k: v
        for k, v in (pod.get("securityContext") or {}).items()
        if k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    }
    merged.update(container.get("securityContext") or {})
    return merged


def container_spec(rendered: Rendered, deployment: str) -> ContainerSpec:
    """The spec of the one container of Deployment `deployment`."""
    pod = rendered.get("Deployment", deployment)["spec"]["template"]["spec"]
    if pod.get("initContainers") or len(pod["containers"]) != 1:
        raise ManifestError(f"{deployment}: only pods of exactly one container are supported")
    (c,) = pod["containers"]
    for field in UNSUPPORTED_CONTAINER_FIELDS:
        if c.get(field):
            raise ManifestError(f"{deployment}: container field {field} is not supported")

    security = _security(pod, c)
    if "runAsUser" not in security or "runAsGroup" not in security:
        # The image's USER would apply, which the manifest cannot see: be explicit instead.
        raise ManifestError(f"{deployment}: runAsUser and runAsGroup must be set")
    user, group = int(security["runAsUser"]), int(security["runAsGroup"])
    if security.get("runAsNonRoot") and user == 0:
        raise ManifestError(f"{deployment}: runAsNonRoot with runAsUser 0 would never start")
    fs_group = (pod.get("securityContext") or {}).get("fsGroup")
    capabilities = security.get("capabilities") or {}
    if capabilities.get("add") or security.get("privileged"):
        raise ManifestError(f"{deployment}: added capabilities or privileged are not supported")
    seccomp = (security.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":
        # RuntimeDefault is what docker applies anyway; anything else would need a profile.
        raise ManifestError(f"{deployment}: seccompProfile {seccomp} is not supported")

    volumes_by_name = {v["name"]: v for v in pod.get("volumes", [])}
    volumes: list[Volume] = []
    tmpfs: list[Tmpfs] = []
    for mount in c.get("volumeMounts", []):
        made = _volume(rendered, deployment, volumes_by_name[mount["name"]], mount)
        if isinstance(made, Tmpfs):
            tmpfs.append(made)
        else:
            volumes.append(made)

    limits = (c.get("resources") or {}).get("limits") or {}
    return ContainerSpec(
        name=deployment,
        image=c["image"],
        env=envvars.resolve(c, rendered),
        ports={p["name"]: int(p["containerPort"]) for p in c.get("ports", [])},
        user=user,
        group=group,
        fs_group=int(fs_group) if fs_group is not None else None,
        read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
        cap_drop=tuple(capabilities.get("drop") or ()),
        # Kubernetes' default is true; only an explicit false maps to no-new-privileges.
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        volumes=tuple(volumes),
        tmpfs=tuple(tmpfs),
        memory_bytes=quantity.memory_bytes(limits["memory"]) if "memory" in limits else None,
        cpus=quantity.cpus(limits["cpu"]) if "cpu" in limits else None,
        grace_seconds=int(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)),
        probes={
            name: _probe(deployment, field, c[field])
            for field, name in PROBES.items()
            if field in c
        },
    )


def service_specs(rendered: Rendered, names: tuple[str, ...]) -> dict[str, ContainerSpec]:
    return {name: container_spec(rendered, name) for name in names}
