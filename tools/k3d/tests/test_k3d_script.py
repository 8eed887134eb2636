"""Behaviour of tools/k3d/k3d.sh, driven through recording stand-ins for k3d, kubectl and bazel.

The stand-ins are small Python programs written into a temporary directory: each appends
its argv (as one JSON line) to a log and acts just enough like the real tool for the
script to go on (a state directory says whether the cluster "exists"). The script runs
from a copy of the repository layout in a temporary directory, so a stand-in bazel can
"build" tarballs without touching the real tree.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libs import inventory
from tools.pytest.workspace import workspace_root

# The script's lists are generated from the inventory (//tools/inventory:sync_test checks it).
SERVICES = list(inventory.load().names())
PORTS = {s.name: s.port for s in inventory.services()}
CONTEXT = ["--context", "k3d-dev"]
# Names hidden from the script's PATH so that only the stand-ins can answer.
REAL_TOOLS = {"k3d", "kubectl", "bazel", "bazelisk", "kustomize"}

REPO_ROOT = workspace_root("tools/k3d/k3d.sh", __file__)
SCRIPT = REPO_ROOT / "tools/k3d/k3d.sh"

STUB_COMMON = """\
import json, os, sys, time
log, state = os.environ["STUB_LOG"], os.environ["STUB_STATE"]
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(log, "a") as f:
    f.write(json.dumps([name, *args]) + "\\n")
def exists(flag):
    return os.path.exists(os.path.join(state, flag))
"""

K3D_STUB = """
if args[:2] == ["cluster", "list"]:
    if exists("cluster-" + args[2]):
        print("NAME   SERVERS   AGENTS   LOADBALANCER")
        print(args[2] + "    1/1       0/0      true")
    else:
        sys.exit("FATA[0000] failed to get cluster " + args[2] + ": No nodes found")
elif args[:2] == ["cluster", "create"]:
    open(os.path.join(state, "cluster-" + args[2]), "w").close()
    print("INFO[0010] Cluster '" + args[2] + "' created successfully!")
elif args[:2] == ["cluster", "delete"]:
    os.remove(os.path.join(state, "cluster-" + args[2]))
    print("INFO[0002] Successfully deleted cluster " + args[2] + "!")
elif args[:2] == ["image", "import"]:
    if not os.path.isfile(args[2]):
        sys.exit("FATA[0000] no such file " + args[2])
    print("INFO[0003] Successfully imported 1 image(s) into 1 cluster(s)")
else:
    sys.exit("k3d stand-in: unexpected " + repr(args))
"""

KUBECTL_STUB = """
if args[:2] != ["--context", "k3d-dev"]:
    sys.exit("kubectl stand-in: refusing a call without --context k3d-dev")
rest = args[2:]
if rest[:1] == ["cluster-info"]:
    if not exists("cluster-dev") or exists("api-down"):
        sys.exit("The connection to the server 0.0.0.0:6443 was refused")
    print("Kubernetes control plane is running at https://0.0.0.0:6443")
elif "port-forward" in rest:
    with open(os.path.join(state, "forward-pids"), "a") as f:
        f.write(str(os.getpid()) + "\\n")
    port = rest[-1].split(":")[0]
    print("Forwarding from 127.0.0.1:" + port + " -> " + port, flush=True)
    time.sleep(60)
else:
    print("ok")
"""

BAZEL_STUB = """
if args[:1] != ["build"]:
    sys.exit("bazel stand-in: unexpected " + repr(args))
for target in args[1:]:
    package, rule = target[2:].split(":")
    # Like bazel: the image_tarball filegroup's file is the oci_load's output.
    out = os.path.join("bazel-bin", package, rule.replace("_tarball", "_load"), "tarball.tar")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out, "w").close()
"""


@pytest.fixture(scope="session")
def system_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything on the caller's PATH except the real tools the stand-ins replace."""
    out = tmp_path_factory.mktemp("sysbin")
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = out / entry.name
            if entry.name in REAL_TOOLS or target.exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    assert (out / "bash").exists(), "bash must be on PATH to run tools/k3d/k3d.sh"
    return out


class Sandbox:
    def __init__(self, tmp: Path, system_bin: Path):
        self.repo = tmp / "repo"
        self.stubs = tmp / "stubs"
        self.state = tmp / "state"
        self.log = tmp / "calls.jsonl"
        self.system_bin = system_bin
        for d in (self.repo / "tools/k3d", self.stubs, self.state):
            d.mkdir(parents=True)
        shutil.copy(SCRIPT, self.repo / "tools/k3d/k3d.sh")
        (self.repo / "tools/k3d/k3d.sh").chmod(0o755)
        for overlay in ("dev", "prod"):
            d = self.repo / "deploy/kustomize/overlays" / overlay
            d.mkdir(parents=True)
            (d / "kustomization.yaml").write_text("resources: []\n")
        for name, body in (("k3d", K3D_STUB), ("kubectl", KUBECTL_STUB), ("bazel", BAZEL_STUB)):
            path = self.stubs / name
            path.write_text(f"#!{sys.executable}\n{STUB_COMMON}{body}")
            path.chmod(0o755)

    def cluster_exists(self) -> None:
        (self.state / "cluster-dev").touch()

    def env(self, hide: tuple[str, ...] = ()) -> dict[str, str]:
        stub_dir = self.state.parent / "visible-stubs"
        shutil.rmtree(stub_dir, ignore_errors=True)
        stub_dir.mkdir()
        for name in ("k3d", "kubectl"):
            if name not in hide:
                (stub_dir / name).symlink_to(self.stubs / name)
        env = {
            "PATH": f"{stub_dir}{os.pathsep}{self.system_bin}",
            "HOME": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state),
            "BAZEL": str(self.stubs / "bazel"),
        }
        return env

    def run(
        self, *args: str, hide: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """tools/k3d/k3d.sh ARGS with the stand-ins, plus `env` (e.g. IMAGE_ARCH)."""
        return subprocess.run(  # noqa: S603 - the script under test, with fixed arguments
            [str(self.repo / "tools/k3d/k3d.sh"), *args],
            check=False,
            env={**self.env(hide), **(env or {})},
            cwd=self.state,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def tarball(self, svc: str, arch: str = "") -> str:
        load = f"image_load_{arch or ARCH}"
        return str(self.repo / "bazel-bin/services" / svc / load / "tarball.tar")


@pytest.fixture
def sandbox(tmp_path: Path, system_bin: Path) -> Sandbox:
    return Sandbox(tmp_path, system_bin)


# The variant tools/k3d/k3d.sh picks without IMAGE_ARCH: this machine's CPU.
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]

CLUSTER_CHECK = [["k3d", "cluster", "list", "dev"], ["kubectl", *CONTEXT, "cluster-info"]]
CREATE = [
    "k3d", "cluster", "create", "dev",
    "--k3s-arg", "--disable=traefik@server:0",
    "--k3s-arg", "--disable=servicelb@server:0",
]  # fmt: skip


def restart_calls() -> list[list[str]]:
    restarts = [
        ["kubectl", *CONTEXT, "-n", "micro", "rollout", "restart", f"deployment/{s}"]
        for s in SERVICES
    ]
    statuses = [
        [
            "kubectl",
            *CONTEXT,
            "-n",
            "micro",
            "rollout",
            "status",
            f"deployment/{s}",
            "--timeout=180s",
        ]
        for s in SERVICES
    ]
    return restarts + statuses


def test_script_is_executable_bash_with_strict_mode():
    text = SCRIPT.read_text()
    assert os.access(SCRIPT, os.X_OK), "tools/k3d/k3d.sh must be executable"
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


def test_up_on_fresh_machine_creates_cluster(sandbox: Sandbox):
    result = sandbox.run("up")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [["k3d", "cluster", "list", "dev"], CREATE]


def test_up_when_cluster_exists_does_not_create_again(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("up")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [["k3d", "cluster", "list", "dev"]]
    assert "already exists" in result.stderr


def test_up_twice_creates_once(sandbox: Sandbox):
    assert sandbox.run("up").returncode == 0
    assert sandbox.run("up").returncode == 0
    assert [c for c in sandbox.calls() if c[:3] == ["k3d", "cluster", "create"]] == [CREATE]


def test_down_deletes_existing_cluster(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("down")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        ["k3d", "cluster", "list", "dev"],
        ["k3d", "cluster", "delete", "dev"],
    ]


def test_down_without_cluster_is_a_no_op(sandbox: Sandbox):
    result = sandbox.run("down")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [["k3d", "cluster", "list", "dev"]]


def test_build_runs_bazel_from_env_on_every_image_tarball(sandbox: Sandbox):
    result = sandbox.run("build")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        ["bazel", "build", *[f"//services/{s}:image_tarball_{ARCH}" for s in SERVICES]]
    ]
    # The stand-in writes relative to its working directory: the build ran at the repo root.
    for svc in SERVICES:
        assert Path(sandbox.tarball(svc)).is_file()


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_build_and_import_take_the_variant_image_arch_names(sandbox: Sandbox, arch: str):
    sandbox.cluster_exists()
    for command in ("build", "import"):
        result = sandbox.run(command, env={"IMAGE_ARCH": arch})
        assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        ["bazel", "build", *[f"//services/{s}:image_tarball_{arch}" for s in SERVICES]],
        *CLUSTER_CHECK,
        *[["k3d", "image", "import", sandbox.tarball(s, arch), "-c", "dev"] for s in SERVICES],
    ]


def test_build_refuses_an_unknown_image_arch(sandbox: Sandbox):
    result = sandbox.run("build", env={"IMAGE_ARCH": "riscv64"})
    assert result.returncode != 0
    assert "IMAGE_ARCH=amd64 or IMAGE_ARCH=arm64" in result.stderr
    assert sandbox.calls() == []


def test_build_with_missing_bazel_names_the_override(sandbox: Sandbox):
    result = sandbox.run("build", env={"BAZEL": str(sandbox.state / "no-such-bazel")})
    assert result.returncode != 0
    assert "BAZEL=" in result.stderr
    assert sandbox.calls() == []


def test_deploy_is_build_import_apply_restart_in_order(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("deploy")
    assert result.returncode == 0, result.stderr
    overlay = str(sandbox.repo / "deploy/kustomize/overlays/dev")
    assert sandbox.calls() == [
        *CLUSTER_CHECK,
        ["bazel", "build", *[f"//services/{s}:image_tarball_{ARCH}" for s in SERVICES]],
        *[["k3d", "image", "import", sandbox.tarball(s), "-c", "dev"] for s in SERVICES],
        ["kubectl", *CONTEXT, "apply", "-k", overlay],
        *restart_calls(),
    ]


def test_deploy_without_cluster_fails_before_building(sandbox: Sandbox):
    result = sandbox.run("deploy")
    assert result.returncode != 0
    assert "k3d cluster 'dev' does not exist" in result.stderr
    assert "tools/k3d/k3d.sh up" in result.stderr
    assert sandbox.calls() == [["k3d", "cluster", "list", "dev"]]


def test_import_without_build_fails_and_imports_nothing(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("import")
    assert result.returncode != 0
    assert "tools/k3d/k3d.sh build" in result.stderr
    assert sandbox.calls() == CLUSTER_CHECK


def test_import_loads_each_tarball_into_dev(sandbox: Sandbox):
    sandbox.cluster_exists()
    for svc in SERVICES:
        Path(sandbox.tarball(svc)).parent.mkdir(parents=True)
        Path(sandbox.tarball(svc)).touch()
    result = sandbox.run("import")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        *CLUSTER_CHECK,
        *[["k3d", "image", "import", sandbox.tarball(s), "-c", "dev"] for s in SERVICES],
    ]


@pytest.mark.parametrize(("args", "overlay"), [((), "dev"), (("dev",), "dev"), (("prod",), "prod")])
def test_apply_uses_the_named_overlay(sandbox: Sandbox, args: tuple[str, ...], overlay: str):
    sandbox.cluster_exists()
    result = sandbox.run("apply", *args)
    assert result.returncode == 0, result.stderr
    path = str(sandbox.repo / "deploy/kustomize/overlays" / overlay)
    assert sandbox.calls() == [*CLUSTER_CHECK, ["kubectl", *CONTEXT, "apply", "-k", path]]


def test_apply_unknown_overlay_fails_without_applying(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("apply", "staging")
    assert result.returncode != 0
    assert "no overlay 'staging'" in result.stderr
    assert sandbox.calls() == CLUSTER_CHECK


def test_restart_restarts_all_then_waits_for_all(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("restart")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [*CLUSTER_CHECK, *restart_calls()]


def test_status_lists_pods_and_services(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("status")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        *CLUSTER_CHECK,
        ["kubectl", *CONTEXT, "get", "pods,svc", "-n", "micro"],
    ]


def test_logs_follows_the_deployment(sandbox: Sandbox):
    sandbox.cluster_exists()
    result = sandbox.run("logs", "paymentsvc")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == [
        *CLUSTER_CHECK,
        ["kubectl", *CONTEXT, "logs", "-n", "micro", "deployment/paymentsvc", "-f"],
    ]


@pytest.mark.parametrize("args", [(), ("postgres",)])
def test_logs_rejects_missing_or_unknown_service(sandbox: Sandbox, args: tuple[str, ...]):
    sandbox.cluster_exists()
    result = sandbox.run("logs", *args)
    assert result.returncode != 0
    assert " ".join(SERVICES) in result.stderr
    assert [c for c in sandbox.calls() if "logs" in c] == []


@pytest.mark.parametrize(
    "command", ["up", "down", "import", "apply", "restart", "status", "deploy"]
)
def test_missing_k3d_is_a_clear_error(sandbox: Sandbox, command: str):
    sandbox.cluster_exists()
    result = sandbox.run(command, hide=("k3d",))
    assert result.returncode != 0
    assert "k3d not found on PATH: install k3d v5 (https://k3d.io)" in result.stderr
    assert sandbox.calls() == []


@pytest.mark.parametrize("command", ["apply", "restart", "status", "deploy", "port-forward"])
def test_missing_kubectl_is_a_clear_error(sandbox: Sandbox, command: str):
    sandbox.cluster_exists()
    result = sandbox.run(command, hide=("kubectl",))
    assert result.returncode != 0
    assert "kubectl not found on PATH: install kubectl" in result.stderr
    assert sandbox.calls() == []


@pytest.mark.parametrize("command", ["import", "apply", "restart", "status", "port-forward"])
def test_missing_cluster_is_a_clear_error(sandbox: Sandbox, command: str):
    result = sandbox.run(command)
    assert result.returncode != 0
    assert "k3d cluster 'dev' does not exist: create it with 'tools/k3d/k3d.sh up'" in result.stderr
    assert sandbox.calls() == [["k3d", "cluster", "list", "dev"]]


def test_stopped_cluster_says_how_to_start_it(sandbox: Sandbox):
    sandbox.cluster_exists()
    (sandbox.state / "api-down").touch()
    result = sandbox.run("apply")
    assert result.returncode != 0
    assert "k3d cluster start dev" in result.stderr
    assert sandbox.calls() == CLUSTER_CHECK


@pytest.mark.parametrize(
    "stop",
    [
        # A terminal's Ctrl-C reaches the whole foreground process group.
        pytest.param(lambda pid: os.killpg(pid, signal.SIGINT), id="ctrl-c"),
        # A parent stopping the script signals it alone; the forwards must not outlive it.
        pytest.param(lambda pid: os.kill(pid, signal.SIGTERM), id="term-to-script"),
    ],
)
def test_port_forward_forwards_all_until_stopped(sandbox: Sandbox, stop):
    sandbox.cluster_exists()
    pid_file = sandbox.state / "forward-pids"
    proc = subprocess.Popen(  # noqa: S603 - the script under test, with fixed arguments
        [str(sandbox.repo / "tools/k3d/k3d.sh"), "port-forward"],
        env=sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pid_file.exists() and len(pid_file.read_text().split()) == len(SERVICES):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the port-forwards did not start")
        assert proc.poll() is None, "port-forward must keep running until interrupted"
        forwards = [c for c in sandbox.calls() if "port-forward" in c]
        assert sorted(forwards) == sorted(
            ["kubectl", *CONTEXT, "-n", "micro", "port-forward", f"svc/{s}", f"{p}:{p}"]
            for s, p in PORTS.items()
        )
        stop(proc.pid)
        proc.communicate(timeout=20)
        pids = [int(p) for p in pid_file.read_text().split()]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "stopping the script must stop every port-forward"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        # Leave no stand-in behind when the script failed to stop them.
        for pid in (int(p) for p in pid_file.read_text().split()) if pid_file.exists() else ():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped-but-unwaited child would still answer; read its state to tell zombies apart.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_help_lists_every_command(sandbox: Sandbox):
    result = sandbox.run("help")
    assert result.returncode == 0
    for command in (
        "up",
        "down",
        "build",
        "import",
        "apply",
        "restart",
        "status",
        "logs",
        "port-forward",
        "deploy",
    ):
        assert f"\n  {command} " in result.stdout
    assert sandbox.calls() == []


def test_unknown_command_fails_with_usage(sandbox: Sandbox):
    result = sandbox.run("frobnicate")
    assert result.returncode != 0
    assert "unknown command 'frobnicate'" in result.stderr
    assert "Usage:" in result.stderr
