"""The bench's own pieces against real processes: WORKERS serving, the load generator,
stack summaries and the report sections."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from libs.platform.testing.launch import wait_healthy
from tools.bench import profile
from tools.bench.load import LoadGenerator, percentile
from tools.bench.sections import replace_section
from user.v1 import user_pb2, user_pb2_grpc

EMPTY_SERVER = os.environ.get("EMPTY_SERVER", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_pair() -> int:
    """A port p with p + 1 free too (worker i serves metrics on METRICS_PORT + i)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port + 1))  # noqa: S104 - where the endpoint binds
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _start(workers: str, port: int, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKERS": workers,
        "GRPC_PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(  # noqa: S603 - the empty_server binary from runfiles
        [str(Path(EMPTY_SERVER).resolve())], env=env, stderr=subprocess.PIPE
    )


def _answering_pids(addr: str, connections: int) -> set[str]:
    pids = set()
    options = [("grpc.use_local_subchannel_pool", 1)]
    for _ in range(connections):
        with grpc.insecure_channel(addr, options=options) as ch:
            resp = user_pb2_grpc.UserServiceStub(ch).GetUser(
                user_pb2.GetUserRequest(user_id="x"), timeout=5
            )
            pids.add(resp.display_name)
    return pids


@pytest.fixture
def two_workers():
    port = _free_port()
    proc = _start("2", port, _free_port_pair())
    try:
        wait_healthy(f"127.0.0.1:{port}", proc)
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_share_one_port_and_stop_together(two_workers) -> None:
    proc, addr = two_workers
    # The kernel hashes each new connection to one of the listening workers; with 40
    # connections the chance that all land on one of two workers is 2 * 2**-40.
    deadline = time.monotonic() + 20
    pids: set[str] = set()
    while len(pids) < 2 and time.monotonic() < deadline:
        pids |= _answering_pids(addr, 20)
    assert len(pids) == 2, pids
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    worker_pids = [int(p.split()[1]) for p in pids]
    for pid in worker_pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def _scrape(port: int) -> str:
    # A worker opens its endpoint once it serves; the other may still be starting.
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_each_worker_serves_its_own_metrics_port() -> None:
    port, metrics_port = _free_port(), _free_port_pair()
    proc = _start("2", port, metrics_port)
    try:
        wait_healthy(f"127.0.0.1:{port}", proc)
        pids = _answering_pids(f"127.0.0.1:{port}", 20)
        bodies = [_scrape(metrics_port), _scrape(metrics_port + 1)]
        assert all("health_serving 1.0" in body for body in bodies)
        # Every call is counted by the worker that answered it, on that worker's port.
        served = sum(
            float(line.rsplit(" ", 1)[1])
            for body in bodies
            for line in body.splitlines()
            if line.startswith("grpc_server_handled_total{")
        )
        assert served >= 20, (served, pids)
    finally:
        proc.kill()
        proc.wait()


def test_invalid_workers_is_a_config_error() -> None:
    proc = _start("zero", _free_port())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"WORKERS: must be an integer from 1 to 64" in err


def test_load_generator_measures_calls_from_separate_processes(two_workers) -> None:
    _, addr = two_workers
    load = LoadGenerator(processes=2)
    try:
        result = load.run("GetUser", addr, 4, duration_s=0.5, warmup_s=0.1, user_id="u", token="t")  # noqa: S106
    finally:
        load.close()
    assert result.errors == {}
    assert result.calls > 10
    assert result.rate == result.calls / 0.5
    assert 0 < result.p50_ms <= result.p99_ms


def test_percentile_picks_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN: no data is not zero latency


def test_summarize_attributes_samples_to_innermost_known_frame() -> None:
    loop = "run (asyncio/base_events.py:1)"
    lines = [
        f"{loop};handler (_main/services/x.py:5);fetchrow (site-packages/asyncpg/connection.py:9) 6",
        f"{loop};info (logging/__init__.py:2);dumps (json/encoder.py:3) 3",
        f"{loop} 1",
    ]
    stacks = "\n".join(lines)
    p = profile.summarize("svc", stacks)
    assert p.samples == 10
    shares = dict(p.categories)
    assert shares["asyncpg (queries, pool)"] == pytest.approx(0.6)
    assert shares["logging (JSON log line per call)"] == pytest.approx(0.3)
    assert shares["grpc.aio server / event loop"] == pytest.approx(0.1)
    assert p.top_self[0] == ("fetchrow (asyncpg/connection.py:9)", pytest.approx(0.6))


def test_replace_section_keeps_the_other_tools_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    replace_section(out, "runtime", "run 1")
    replace_section(out, "build", "build 1")
    replace_section(out, "runtime", "run 2")
    text = out.read_text()
    assert "run 2" in text and "run 1" not in text and "build 1" in text
    assert text.index("runtime:begin") < text.index("build:begin")
