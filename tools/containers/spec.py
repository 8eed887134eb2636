"""What one container needs to run as its Deployment describes it, engine-neutral.

Built from the rendered manifests (translate.py), adjusted for a shared host network
(hostnet.py), turned into `docker run` arguments (docker.py). Frozen: every change is a new
value, so an adjustment is always visible where it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Kubernetes' defaults for fields a manifest may leave out (core/v1 Pod and Probe).
DEFAULT_GRACE_SECONDS = 30
DEFAULT_PROBE_PERIOD = 10
DEFAULT_PROBE_TIMEOUT = 1
DEFAULT_PROBE_FAILURES = 3


@dataclass(frozen=True)
class Probe:
    """A gRPC health probe: grpc.health.v1 Check(service) on `port`, kubelet timing."""

    port: int
    service: str = ""
    initial_delay: float = 0
    period: float = DEFAULT_PROBE_PERIOD
    timeout: float = DEFAULT_PROBE_TIMEOUT
    failure_threshold: int = DEFAULT_PROBE_FAILURES


@dataclass(frozen=True)
class VolumeFile:
    """One key of a Secret or ConfigMap, as the kubelet writes it into the volume."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Volume:
    """A Secret or ConfigMap volume: its files, their mode, where the container sees them."""

    source: str  # "Secret/<name>" or "ConfigMap/<name>", for messages
    mount_path: str
    files: tuple[VolumeFile, ...]
    mode: int
    read_only: bool = True


@dataclass(frozen=True)
class Tmpfs:
    """An emptyDir: a fresh, writable directory that lives as long as the container."""

    mount_path: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """Everything `docker run` needs for one Deployment's (only) container."""

    name: str  # the Deployment's name, e.g. usersvc
    image: str  # as the manifest names it: usersvc:dev
    # In manifest order, values resolved (valueFrom, $(VAR)) as the kubelet would.
    env: tuple[tuple[str, str], ...]
    ports: dict[str, int]  # containerPort by port name: grpc, metrics
    user: int
    group: int
    # The pod's fsGroup: owns the volumes' files and is one of the process's groups.
    fs_group: int | None = None
    read_only_root: bool = False
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    volumes: tuple[Volume, ...] = ()
    tmpfs: tuple[Tmpfs, ...] = ()
    memory_bytes: int | None = None
    cpus: float | None = None
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    probes: dict[str, Probe] = field(default_factory=dict)  # startup, readiness, liveness

    def env_value(self, name: str) -> str:
        for key, value in self.env:
            if key == name:
                return value
        raise KeyError(f"{self.name} has no env var {name}")
