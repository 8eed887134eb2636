"""The bench's own pieces against real processes: WORKERS serving, the load generators,
stack summaries and the report sections."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import math
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from libs.platform.testing.launch import wait_healthy
from libs.platform.testing.net import free_port, free_port_block
from libs.platform.testing.postgres import create_database
from payment.v1 import payment_pb2, payment_pb2_grpc
from tools.bench import h2load, overload_report, profile
from tools.bench.h2load import H2Load, MetricsUnavailable
from tools.bench.load import LoadGenerator, percentile
from tools.bench.openloop import OpenLoopGenerator, OpenWorkerResult, combine
from tools.bench.overload import (
    PROTECTED,
    UNPROTECTED,
    Ledger,
    OpenRow,
    check_ledger,
    parse_arm,
)
from tools.bench.sections import replace_section
from tools.bench.serving import Served
from tools.bench.serving import scrape as _scrape
from tools.bench.serving import serving as _serving
from tools.bench.serving import start as _start
from user.v1 import user_pb2, user_pb2_grpc


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


def test_each_worker_serves_its_own_metrics_port() -> None:
    port, metrics_port = free_port(), free_port_block(2)
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
            token="t",
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
    # With VERIFY_TOKENS the empty server requires a token; a call without one is refused
    # (UNAUTHENTICATED) before the token issuer would be asked, so none needs to run.
    with _serving(1, {"VERIFY_TOKENS": "true"}) as served:
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
    assert p.top_self[0][0] == "fetchrow (asyncpg/connection.py:9)"
    assert p.top_self[0][1] == pytest.approx(0.6)


def test_replace_section_keeps_the_other_tools_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    replace_section(out, "runtime", "run 1")
    replace_section(out, "build", "build 1")
    replace_section(out, "runtime", "run 2")
    text = out.read_text()
    assert "run 2" in text and "run 1" not in text and "build 1" in text
    assert text.index("runtime:begin") < text.index("build:begin")


def test_the_chain_serves_create_payment_by_calling_the_next_hop() -> None:
    with (
        _serving(1) as back,
        _serving(1, {"CHAIN_TO": back.addr}) as front,
        grpc.insecure_channel(front.addr) as channel,
    ):
        pay = payment_pb2_grpc.PaymentServiceStub(channel)
        for _ in range(3):
            resp = pay.CreatePayment(payment_pb2.CreatePaymentRequest(user_id="u"), timeout=5)
            assert resp.status == payment_pb2.PAYMENT_STATUS_COMPLETED
        assert h2load.scrape(back.metrics_urls, "/user.v1.UserService/GetUser") == {"OK": 3}
        assert h2load.scrape(front.metrics_urls, "/payment.v1.PaymentService/CreatePayment") == {
            "OK": 3
        }


def test_open_loop_driver_sends_on_its_schedule_and_times_each_call() -> None:
    # Shedding off: on a busy machine the server could otherwise refuse a few.
    with _serving(1, {"OVERLOAD_SHEDDING": "false"}) as served:
        sampler = OpenLoopGenerator(processes=2)
        try:
            point = sampler.run(
                "GetUser", served.addr, 100, duration_s=1.0, warmup_s=0.2, user_id="u"
            )
        finally:
            sampler.close()
    assert point.sent == 100  # exactly the schedule: 100/s for 1 s, warm-up not counted
    assert (point.ok, point.shed, point.errors) == (100, 0, {})
    assert 0 < point.ok_p50_ms <= point.ok_p99_ms
    assert math.isnan(point.shed_p50_ms)  # nothing shed, so no shed latency


def test_open_loop_keeps_shed_answers_apart() -> None:
    served = OpenWorkerResult(sent=4, ok_ms=[1.0, 2.0], shed_ms=[0.5, 0.7], acked=["a", "b"])
    more = OpenWorkerResult(sent=2, ok_ms=[3.0], errors=Counter(DEADLINE_EXCEEDED=1))
    served.wall_s = more.wall_s = 2.0
    served.cpu_s, more.cpu_s = 0.5, 0.3
    point = combine([served, more], rate=3.0, duration_s=2.0)
    assert (point.sent, point.ok, point.shed) == (6, 3, 2)
    assert point.errors == {"DEADLINE_EXCEEDED": 1}
    assert (point.ok_p50_ms, point.shed_p99_ms) == (2.0, 0.7)
    assert point.goodput == 1.5
    assert point.client_cpu == pytest.approx(0.4)
    assert point.acked == ["a", "b"]


def test_h2load_rate_mode_starts_calls_on_schedule() -> None:
    with _serving(1, {"OVERLOAD_SHEDDING": "false"}) as served:
        window = h2load.run_rate(
            _h2load(), "GetUser", served.addr, 200, duration_s=1.0, warmup_s=0.2, user_id="u"
        )
    # 200/s for 1 s: a few late on a loaded machine, or one early per connection (each
    # connection's schedule rounds its first call).
    assert 160 <= window.started <= 200 + h2load.RATE_CONNECTIONS
    assert len(window.latencies_ms) >= 150
    assert window.latencies_ms == sorted(window.latencies_ms)
    # Spread out, as a fixed rate means (5 ms apart on average here), not in bursts: with
    # every connection in one h2load, about 9 in 10 calls started within 0.2 ms of the
    # previous one.
    gaps = [b - a for a, b in itertools.pairwise(window.starts_us)]
    assert sum(g < 200 for g in gaps) < len(gaps) / 2


def _open_row(method: str, share: float, shed_ms: list[float], arm: str = PROTECTED) -> OpenRow:
    # 100 sampled calls: all OK up to the peak, then 1/share of them (fewer in other arms).
    ok = 100 if share <= 1 else int(100 / share * (1 if arm == PROTECTED else 0.8))
    sample = combine(
        [OpenWorkerResult(sent=100, ok_ms=[5.0 * share] * ok, shed_ms=shed_ms)],
        rate=100 * share,
        duration_s=1.0,
    )
    return OpenRow(
        method=method,
        share=share,
        peak=1000.0,
        offered=1000 * share,
        started=1000 * share,
        goodput=min(1000.0, 1000 * share),
        shed=max(0.0, 1000 * share - 1000),
        errors={},
        answered_ok=1000,
        sample=sample,
        all_p99_ms=10.0,
        limit=40,
        shed_by={"queue": 3, "limit": 1},
        arm=arm,
    )


def test_open_loop_section_states_each_goal_and_links_the_plot(tmp_path: Path) -> None:
    rows = [
        _open_row(m, s, [0.5] if s > 1 else [])
        for m in ("GetUser", "CreatePayment")
        for s in (0.4, 0.8, 2.0)
    ]
    rows += [_open_row("GetUser", s, [], arm=UNPROTECTED) for s in (0.4, 0.8, 2.0)]
    rows += [_open_row("GetUser", s, [], arm="stream bound") for s in (0.4, 2.0)]
    ledger = Ledger(acked=10, acked_found=10, shed=3, acknowledged_total=50, rows_added=50)
    text = overload_report.render(
        rows,
        ledger,
        started="now",
        workers=2,
        duration_s=5,
        warmup_s=1,
        plot="tools/bench/results/openloop.png",
    )
    assert (
        "GetUser up to 80% of the peak: OK within the deadline >= 99% of offered: worst "
        "100.0% at 40%: **met**; admitted p99 < 20 ms: worst 4.0 ms at 80%: **met**." in text
    )
    assert (
        "CreatePayment at 200% of the peak (2,000/s offered): OK within the deadline 1,000/s "
        "= 100% of the peak (goal >= 90%: **met**)." in text
    )
    assert "below the unprotected arm at: none (**met**)" in text
    assert "carries a 1 s deadline" in text
    assert "lost or duplicated: of the sample's 10 acknowledged payments 10 are in" in text
    assert "![p50/p99 of admitted calls and goodput against offered load]" in text
    assert "| 200% | GetUser | 100% | 80% | 80% |" in text
    assert "| 80% | GetUser | 80% | 80% | - |" in text
    assert (
        "### GetUser, unprotected (OVERLOAD_SHEDDING=false, GRPC_MAX_CONCURRENT_STREAMS=0)" in text
    )
    assert "### GetUser, stream bound" in text
    png = tmp_path / "openloop.png"
    overload_report.draw(rows, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_arms_are_named_settings() -> None:
    assert parse_arm("stream bound:GRPC_MAX_CONCURRENT_STREAMS=4,OVERLOAD_SHEDDING=false") == (
        "stream bound",
        {"GRPC_MAX_CONCURRENT_STREAMS": "4", "OVERLOAD_SHEDDING": "false"},
    )
    with pytest.raises(argparse.ArgumentTypeError):
        parse_arm("no settings")


def test_open_loop_calls_carry_the_deadline_on_the_wire(tmp_path: Path) -> None:
    argv = H2Load("h2load").argv(
        "http://127.0.0.1:1/x.Y/Z",
        tmp_path / "body",
        tmp_path / "log",
        h2load.Shape(1, 1),
        duration_s=1,
        warmup_s=0,
        token="",
        deadline_s=1.0,
    )
    assert "--header=grpc-timeout: 1000m" in argv


async def test_ledger_finds_each_acknowledged_payment_once(pg_admin_dsn: str) -> None:
    url = await create_database(pg_admin_dsn)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE payments (idempotency_key text)")
        await conn.executemany(
            "INSERT INTO payments VALUES ($1)", [("a",), ("b",), ("b",), ("x",), ("u",)]
        )
    finally:
        await conn.close()
    sample = combine(
        [OpenWorkerResult(acked=["a", "b", "c"], shed_keys=["x", "y"], unknown_keys=["u", "v"])],
        rate=1.0,
        duration_s=1.0,
    )
    row = dataclasses.replace(_open_row("CreatePayment", 1.0, []), sample=sample, answered_ok=3)
    ledger = await asyncio.to_thread(check_ledger, url, [row], 0)
    assert (ledger.acked, ledger.acked_found, ledger.duplicates) == (3, 2, 1)
    assert (ledger.shed, ledger.shed_written) == (2, 1)
    assert (ledger.unknown, ledger.unknown_written) == (2, 1)
    assert (ledger.acknowledged_total, ledger.rows_added) == (3, 5)
    assert not ledger.holds  # "c" lost, "b" twice, shed "x" written
