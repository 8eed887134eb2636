"""The bench's own pieces against real processes: WORKERS serving, the load generators,
stack summaries and the report sections."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from libs.platform.testing.launch import wait_healthy
from libs.platform.testing.net import free_port
from tools.bench import h2load, profile
from tools.bench.h2load import H2Load, MetricsUnavailable
from tools.bench.load import LoadGenerator, percentile
from tools.bench.sections import replace_section
from user.v1 import user_pb2, user_pb2_grpc

EMPTY_SERVER = os.environ.get("EMPTY_SERVER", "")


def _free_port_pair() -> int:
    """A port p with p + 1 free too (worker i serves metrics on METRICS_PORT + i)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port + 1))  # noqa: S104 - where the endpoint binds
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _start(
    workers: str, port: int, metrics_port: int = 0, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKERS": workers,
        "GRPC_PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
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


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[bytes]
    addr: str
    metrics_urls: list[str]


@contextlib.contextmanager
def _serving(workers: int, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    port, metrics_port = free_port(), _free_port_pair()
    proc = _start(str(workers), port, metrics_port, extra_env)
    urls = [f"http://127.0.0.1:{metrics_port + i}/metrics" for i in range(workers)]
    try:
        wait_healthy(f"127.0.0.1:{port}", proc)
        for i in range(workers):
            _scrape(metrics_port + i)  # every worker serves before the first measurement
        yield Served(proc, f"127.0.0.1:{port}", urls)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def two_workers() -> Iterator[Served]:
    with _serving(2) as served:
        yield served


def test_workers_share_one_port_and_stop_together(two_workers: Served) -> None:
    proc, addr = two_workers.proc, two_workers.addr
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
    port, metrics_port = free_port(), _free_port_pair()
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
    proc = _start("zero", free_port())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"WORKERS: must be an integer from 1 to 64" in err


def test_load_generator_measures_calls_from_separate_processes(two_workers: Served) -> None:
    load = LoadGenerator(processes=2)
    try:
        result = load.run(
            "GetUser",
            two_workers.addr,
            4,
            duration_s=0.5,
            warmup_s=0.1,
            user_id="u",
            token="t",  # noqa: S106
        )
    finally:
        load.close()
    assert result.errors == {}
    assert result.calls > 10
    assert result.rate == result.calls / 0.5
    assert 0 < result.p50_ms <= result.p99_ms


def _h2load() -> H2Load:
    # Not a skip: the Debian root installs h2load (nghttp2-client), so missing is a broken
    # environment, and a skipped test would hide that the bench falls back to Python.
    found = shutil.which("h2load")
    if found is None:
        pytest.fail(
            f"h2load is not on PATH ({os.environ.get('PATH')}); install nghttp2-client "
            "(tools/debian_root/packages.txt lists it for the Debian root)"
        )
    return H2Load(found)


def test_h2load_measures_calls_on_every_worker(two_workers: Served) -> None:
    result = _h2load().run(
        "GetUser",
        two_workers.addr,
        8,
        duration_s=1.0,
        warmup_s=0.2,
        user_id="u",
        metrics_urls=two_workers.metrics_urls,
    )
    assert result.errors == {}
    assert result.calls > 10
    assert result.rate == result.calls / 1.0
    assert 0 < result.p50_ms <= result.p99_ms


def test_h2load_counts_grpc_failures_as_errors_not_calls() -> None:
    # With AUTHSVC_ADDR set the empty server requires a token; a call without one is
    # refused (UNAUTHENTICATED) before authsvc would be asked, so none needs to run.
    with _serving(1, {"AUTHSVC_ADDR": f"127.0.0.1:{free_port()}"}) as served:
        result = _h2load().run(
            "GetUser",
            served.addr,
            2,
            duration_s=0.5,
            warmup_s=0.1,
            user_id="u",
            metrics_urls=served.metrics_urls,
        )
    assert result.calls == 0
    assert result.rate == 0
    assert math.isnan(result.p50_ms)  # no good call, so no latency
    assert set(result.errors) == {"UNAUTHENTICATED"}
    assert result.errors["UNAUTHENTICATED"] > 0


def test_h2load_refuses_answers_the_server_never_counted(two_workers: Served) -> None:
    # The empty server has no PaymentService: grpc answers UNIMPLEMENTED before any
    # interceptor runs, so its counters cannot show these failures.
    with pytest.raises(RuntimeError, match="failed outside its metrics"):
        _h2load().run(
            "CreatePayment",
            two_workers.addr,
            1,
            duration_s=0.3,
            warmup_s=0,
            user_id="u",
            metrics_urls=two_workers.metrics_urls,
        )


def test_h2load_fails_without_the_servers_metrics(two_workers: Served) -> None:
    with pytest.raises(MetricsUnavailable):
        _h2load().run(
            "GetUser",
            two_workers.addr,
            1,
            duration_s=0.3,
            warmup_s=0,
            user_id="u",
            metrics_urls=[f"http://127.0.0.1:{free_port()}/metrics"],
        )


@pytest.mark.parametrize(
    ("concurrency", "connections", "streams"),
    [(1, 1, 1), (8, 8, 1), (12, 12, 1), (32, 16, 2), (64, 16, 4), (18, 9, 2), (17, 16, 2)],
)
def test_h2load_shape_spreads_concurrency_over_connections(
    concurrency: int, connections: int, streams: int
) -> None:
    assert h2load.shape(concurrency) == h2load.Shape(connections, streams)


def _window(answered: int) -> h2load.Window:
    return h2load.Window(Counter({200: answered}), [1.0] * answered)


def test_h2load_leaves_out_the_calls_it_cancels_when_it_stops() -> None:
    # 8 in flight at the stop: 8 CANCELLED are the end of the run, a 9th is a failure.
    ended = h2load.point_result(_window(100), Counter(OK=120, CANCELLED=8), 1.0, 8)
    assert (ended.calls, ended.errors) == (100, {})
    more = h2load.point_result(_window(100), Counter(OK=120, CANCELLED=9), 1.0, 8)
    assert (more.calls, more.errors) == (99, {"CANCELLED": 1})


def test_grpc_frame_is_flag_length_message() -> None:
    frame = h2load.grpc_frame(user_pb2.GetUserRequest(user_id="abc"))
    assert frame == b"\x00\x00\x00\x00\x05\x0a\x03abc"


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
