"""The one place where a cluster-only setting is changed so the containers run on one host.

The engine here has no bridge network, so every container shares the host's network
(`--network host`). Two things in the manifests only work inside a cluster, and are
rewritten here, each change returned as a Rewrite so callers print them:

- Cluster DNS names (`usersvc.micro.svc:50051`, `postgres.micro.svc:5432`) in env values
  become 127.0.0.1 and the port that actually serves: the port a container of ours listens
  on (found through the Service's selector and targetPort), or the address the caller gives
  for a Service it runs itself (PostgreSQL).
- Ports: in a cluster each pod has its own network, so every service can listen on
  metrics port 9090; on one host they would collide. A port the caller moves changes the
  env var the service reads it from (PORT_ENV) and every probe that names it.

Nothing else is changed: user, password and database name in DATABASE_URL stay as the
manifest has them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.containers.objects import ManifestError, Rendered
from tools.containers.spec import ContainerSpec, Probe

LOOPBACK = "127.0.0.1"
# The env var each named container port is read from (libs/platform: the services' settings).
PORT_ENV = {"grpc": "GRPC_PORT", "metrics": "METRICS_PORT"}
_PORT_OF_ENV = {var: name for name, var in PORT_ENV.items()}
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
# <service>.<namespace>.svc[.cluster.local][:port]
_CLUSTER_ADDRESS = re.compile(rf"\b({_LABEL})\.({_LABEL})\.svc(?:\.cluster\.local)?(?::(\d+))?")


@dataclass(frozen=True)
class Rewrite:
    service: str
    what: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.service}: {self.what}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class HostNetwork:
    """What the caller chose for this host."""

    # Service -> port name -> port on the host; a name left out keeps the manifest's port.
    ports: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Service name -> host:port, for Services the caller runs itself (not as containers here).
    external: Mapping[str, str] = field(default_factory=dict)


def _backing_container(
    rendered: Rendered, service: dict[str, Any], specs: Mapping[str, ContainerSpec]
) -> str | None:
    """The spec whose Deployment's pods the Service selects, if it is one of ours."""
    selector = service["spec"].get("selector") or {}
    for deployment in rendered.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        if name in specs and selector and selector.items() <= labels.items():
            return str(name)
    return None


def _target_port_name(service: dict[str, Any], port: int, spec: ContainerSpec) -> str:
    for p in service["spec"]["ports"]:
        if int(p["port"]) == port:
            target = p.get("targetPort", port)
            if isinstance(target, str):
                return target
            for name, number in spec.ports.items():
                if number == int(target):
                    return name
    raise ManifestError(f"Service {service['metadata']['name']} has no port {port} for {spec.name}")


class _Resolver:
    def __init__(
        self,
        rendered: Rendered,
        specs: Mapping[str, ContainerSpec],
        new_ports: Mapping[str, Mapping[str, int]],
        external: Mapping[str, str],
    ) -> None:
        self.rendered = rendered
        self.specs = specs
        self.new_ports = new_ports
        self.external = external

    def address(self, match: re.Match[str]) -> str:
        name, namespace, port = match.group(1), match.group(2), match.group(3)
        if port is None:
            raise ManifestError(f"{match.group(0)}: a cluster address needs an explicit port")
        if name in self.external:
            return self.external[name]
        service = self.rendered.get("Service", name)
        if service["metadata"].get("namespace", namespace) != namespace:
            raise ManifestError(f"{match.group(0)}: Service {name} is not in {namespace}")
        backing = _backing_container(self.rendered, service, self.specs)
        if backing is None:
            raise ManifestError(
                f"{match.group(0)}: Service {name} selects no container run here; "
                "give its address in HostNetwork.external"
            )
        port_name = _target_port_name(service, int(port), self.specs[backing])
        host_port = self.new_ports[backing].get(port_name, self.specs[backing].ports[port_name])
        return f"{LOOPBACK}:{host_port}"


def _moved_ports(spec: ContainerSpec, chosen: Mapping[str, int]) -> list[Rewrite]:
    unknown = chosen.keys() - spec.ports.keys()
    if unknown:
        raise ManifestError(f"{spec.name} has no port named {sorted(unknown)}")
    return [
        Rewrite(spec.name, f"port {name}", str(spec.ports[name]), str(port))
        for name, port in chosen.items()
        if port != spec.ports[name]
    ]


def _env(
    spec: ContainerSpec, chosen: Mapping[str, int], resolver: _Resolver
) -> tuple[list[tuple[str, str]], list[Rewrite]]:
    env: list[tuple[str, str]] = []
    rewrites: list[Rewrite] = []
    for key, value in spec.env:
        new = _CLUSTER_ADDRESS.sub(resolver.address, value)
        port_name = _PORT_OF_ENV.get(key)
        if port_name is not None and port_name in chosen:
            if value != str(spec.ports[port_name]):
                raise ManifestError(
                    f"{spec.name}: {key}={value} but container port {port_name} is "
                    f"{spec.ports[port_name]}: the manifest disagrees with itself"
                )
            new = str(chosen[port_name])
        if new != value:
            rewrites.append(Rewrite(spec.name, f"env {key}", value, new))
        env.append((key, new))
    for port_name, port in chosen.items():
        var = PORT_ENV.get(port_name)
        if var is None:
            raise ManifestError(f"{spec.name}: no known env var sets port {port_name}")
        if all(key != var for key, _ in env):
            # Unset in the manifest: the service used its default, the manifest's port.
            env.append((var, str(port)))
            rewrites.append(Rewrite(spec.name, f"env {var}", "(unset)", str(port)))
    return env, rewrites


def _probes(
    spec: ContainerSpec, chosen: Mapping[str, int]
) -> tuple[dict[str, Probe], list[Rewrite]]:
    """Each probe follows the port it names, if that port moved."""
    by_old_port = {spec.ports[n]: port for n, port in chosen.items()}
    probes: dict[str, Probe] = {}
    rewrites: list[Rewrite] = []
    for kind, probe in spec.probes.items():
        port = by_old_port.get(probe.port, probe.port)
        if port != probe.port:
            rewrites.append(Rewrite(spec.name, f"{kind} probe port", str(probe.port), str(port)))
        probes[kind] = dataclasses.replace(probe, port=port)
    return probes, rewrites


def for_host_network(
    rendered: Rendered, specs: Mapping[str, ContainerSpec], host: HostNetwork
) -> tuple[dict[str, ContainerSpec], list[Rewrite]]:
    """The specs with every cluster-only setting replaced, and the list of replacements."""
    resolver = _Resolver(rendered, specs, host.ports, host.external)
    out: dict[str, ContainerSpec] = {}
    rewrites: list[Rewrite] = []
    for name, spec in specs.items():
        chosen = host.ports.get(name, {})
        env, env_rewrites = _env(spec, chosen, resolver)
        probes, probe_rewrites = _probes(spec, chosen)
        rewrites += _moved_ports(spec, chosen) + env_rewrites + probe_rewrites
        out[name] = dataclasses.replace(
            spec, env=tuple(env), ports={**spec.ports, **chosen}, probes=probes
        )
    return out, rewrites
