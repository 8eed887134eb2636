"""Closed-loop gRPC load from h2load (nghttp2's C HTTP/2 client): one measurement point.

h2load speaks HTTP/2, not gRPC: it POSTs the same length-prefixed message on every stream
and sees HTTP 200 even for a failed call, because grpc-status travels in the trailers. So
the call outcomes come from the server's own counters (grpc_server_handled_total on each
worker's /metrics), read before and after the point; h2load supplies the count and the
latencies of the measured window (--log-file).
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from payment.v1 import payment_pb2
from tools.bench.load import PointResult, percentile
from user.v1 import user_pb2

SERVICES = {"GetUser": "user.v1.UserService", "CreatePayment": "payment.v1.PaymentService"}
MAX_CONNECTIONS = 16
# h2load stops by closing its connections; the server then finishes (or cancels) the calls
# that were in flight. Its counters are read once they stop moving.
SETTLE_POLL_S = 0.1
SETTLE_TIMEOUT_S = 10.0
_SUMMARY = re.compile(r"requests: \d+ total, \d+ started, (?P<done>\d+) done,")
_STARTED = re.compile(r"requests: \d+ total, (?P<started>\d+) started,")


class MetricsUnavailable(RuntimeError):
    """The server's call counters could not be read: gRPC errors would go unseen."""


@dataclass(frozen=True)
class Shape:
    connections: int
    streams: int  # concurrent streams per connection

    @property
    def concurrency(self) -> int:
        return self.connections * self.streams


def shape(concurrency: int) -> Shape:
    """Connections x streams for `concurrency` calls in flight.

    Several connections, so that server processes sharing the port (WORKERS) all get some;
    exactly `concurrency` when it has a divisor up to MAX_CONNECTIONS, else rounded up.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    if concurrency <= MAX_CONNECTIONS:
        return Shape(concurrency, 1)
    for connections in range(MAX_CONNECTIONS, 1, -1):
        if concurrency % connections == 0:
            return Shape(connections, concurrency // connections)
    return Shape(MAX_CONNECTIONS, math.ceil(concurrency / MAX_CONNECTIONS))


def request(method: str, user_id: str) -> Message:
    if method == "GetUser":
        return user_pb2.GetUserRequest(user_id=user_id)
    if method == "CreatePayment":
        # No idempotency key: every call with this one body is a new payment (an INSERT).
        return payment_pb2.CreatePaymentRequest(
            user_id=user_id, amount=1250, currency="USD", description="bench"
        )
    raise ValueError(f"h2load cannot send {method}; known: {', '.join(SERVICES)}")


def grpc_frame(message: Message) -> bytes:
    """The gRPC wire form of one request: uncompressed flag, 4-byte big-endian length."""
    body = message.SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


def samples(urls: Sequence[str]) -> Iterator[Sample]:
    """Every sample of every server's /metrics as it reads now, one worker after another:
    what the bench's counters, gauges and stall figures are all summed from."""
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own http URL
                text = resp.read().decode()
        except OSError as exc:
            raise MetricsUnavailable(f"cannot read {url}: {exc!r}") from exc
        for family in text_string_to_metric_families(text):
            yield from family.samples


def scrape(urls: Sequence[str], grpc_method: str) -> Counter[str]:
    """Calls the server completed for `grpc_method` by status code, summed over workers."""
    counts: Counter[str] = Counter()
    for sample in samples(urls):
        if (
            sample.name == "grpc_server_handled_total"
            and sample.labels.get("grpc_method") == grpc_method
        ):
            counts[sample.labels["grpc_code"]] += int(sample.value)
    return counts


def settled(urls: Sequence[str], grpc_method: str) -> Counter[str]:
    counts = scrape(urls, grpc_method)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        again = scrape(urls, grpc_method)
        if again == counts:
            return counts
        counts = again
    raise RuntimeError(f"{grpc_method}: counts still moving after {SETTLE_TIMEOUT_S} s")


@dataclass(frozen=True)
class Window:
    """What h2load saw in the measured window."""

    statuses: Counter[int]  # HTTP status per request; -1 for a failed stream
    latencies_ms: list[float]  # of the 2xx responses, sorted

    @property
    def answered(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def errors(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for status, n in self.statuses.items():
            if status == -1:
                out["h2load stream error"] += n
            elif not 200 <= status < 300:
                out[f"HTTP {status}"] += n
        return out


def read_log(path: Path, done: int) -> Window:
    """Parse --log-file: start (us since epoch), HTTP status, us until the response ended."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lines = path.read_text().splitlines()
    for line in lines:
        _, status, micros = line.split("\t")[:3]
        statuses[int(status)] += 1
        if 200 <= int(status) < 300:
            latencies.append(int(micros) / 1000)
    # The log holds exactly the requests of the measured window; anything else means its
    # format or meaning changed under us.
    if len(lines) != done:
        raise RuntimeError(f"h2load logged {len(lines)} requests but reported {done} done")
    latencies.sort()
    return Window(statuses, latencies)


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class H2Load:
    path: str  # the h2load binary

    def version(self) -> str:
        out = subprocess.run(  # noqa: S603 - our h2load binary
            [self.path, "--version"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def argv(
        self,
        url: str,
        body: Path,
        log: Path,
        s: Shape,
        *,
        duration_s: float,
        warmup_s: float,
        token: str,
        deadline_s: float | None = None,
    ) -> list[str]:
        auth = [f"--header=authorization: Bearer {token}"] if token else []
        # gRPC's deadline on the wire (milliseconds): the server's core drops the call once
        # it has passed, as it would a real client's.
        if deadline_s is not None:
            ms = deadline_s * 1000
            timeout = f"{round(ms)}m" if ms >= 1 else f"{max(1, round(ms * 1000))}u"
            auth.append(f"--header=grpc-timeout: {timeout}")
        return [
            self.path,
            f"--clients={s.connections}",
            f"--max-concurrent-streams={s.streams}",
            "--threads=1",
            f"--duration={_duration(duration_s)}",
            *([f"--warm-up-time={_duration(warmup_s)}"] if warmup_s > 0 else []),
            f"--data={body}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            *auth,
            f"--log-file={log}",
            url,
        ]

    def run(
        self,
        method: str,
        target: str,
        concurrency: int,
        *,
        duration_s: float,
        warmup_s: float,
        user_id: str,
        metrics_urls: Sequence[str],
        # Unused, Login's: h2load cannot send Login (request() refuses it).
        email: str = "",
        password: str = "",
        token: str = "",
    ) -> PointResult:
        frame = grpc_frame(request(method, user_id))
        grpc_method = f"/{SERVICES[method]}/{method}"
        s = shape(concurrency)
        before = scrape(metrics_urls, grpc_method)
        with tempfile.TemporaryDirectory(prefix="micro-h2load-") as tmp:
            body, log = Path(tmp) / "request.bin", Path(tmp) / "requests.tsv"
            body.write_bytes(frame)
            url = f"http://{target}{grpc_method}"
            argv = self.argv(
                url, body, log, s, duration_s=duration_s, warmup_s=warmup_s, token=token
            )
            done = run_argv(argv, timeout_s=warmup_s + duration_s + 60)
            window = read_log(log, done)
        after = settled(metrics_urls, grpc_method)
        return point_result(window, after - before, duration_s, s.concurrency)


@dataclass(frozen=True)
class RateWindow:
    """What h2load saw in an open-loop window: calls started and every answer's time."""

    started: int
    latencies_ms: list[float]  # of every answer, failed gRPC calls included (HTTP 200)
    starts_us: list[int]  # when each answered call started (us since the epoch), sorted


# Open loop: streams each connection may keep open at once. h2load sends a call on its
# schedule only while a stream is free (otherwise it sends the late ones in a burst when
# one frees up), so this is set far above what any point here keeps in flight.
RATE_CONNECTIONS = 16
RATE_STREAMS = 256
# h2load's rate mode sends a connection's due calls on a timer of at least 10 ms (nghttp2
# src/h2load.cc, Client::connect: `rps_watcher.repeat = max(0.01, 1 / rps)`), and the
# connections of one h2load start their timers together: 16 connections in one process
# offered their calls in bursts of 16 every tick, which queue behind each other even on an
# idle server (measured: p50 5.1 ms at 340/s against an empty handler, 89% of calls started
# within 0.2 ms of the one before). h2load spreads connections out only with --rate, which
# it refuses together with --duration; so each connection gets an h2load of its own, and
# they start a fraction of a tick apart.
MIN_RPS_TICK_S = 0.01


def run_rate(
    h2: H2Load,
    method: str,
    target: str,
    rate: float,
    *,
    duration_s: float,
    warmup_s: float,
    user_id: str,
    token: str = "",
    deadline_s: float | None = None,
) -> RateWindow:
    """`rate` calls per second on a fixed schedule (h2load --rps), whatever the answers,
    each with `deadline_s` as its gRPC deadline when given.

    Not an openloop.OpenLoopDriver: h2load's answers carry no gRPC status, so this returns
    only what h2load saw, which overload.measure completes with the servers' counters."""
    frame = grpc_frame(request(method, user_id))
    url = f"http://{target}/{SERVICES[method]}/{method}"
    per_connection = rate / RATE_CONNECTIONS
    stagger_s = max(MIN_RPS_TICK_S, 1 / per_connection) / RATE_CONNECTIONS
    with tempfile.TemporaryDirectory(prefix="micro-h2load-") as tmp:
        body = Path(tmp) / "request.bin"
        body.write_bytes(frame)
        procs: list[tuple[subprocess.Popen[str], Path]] = []
        try:
            for i in range(RATE_CONNECTIONS):
                log = Path(tmp) / f"requests-{i}.tsv"
                argv = h2.argv(
                    url,
                    body,
                    log,
                    Shape(1, RATE_STREAMS),
                    duration_s=duration_s,
                    warmup_s=warmup_s,
                    token=token,
                    deadline_s=deadline_s,
                )
                argv.insert(-1, f"--rps={per_connection:.3f}")
                procs.append(
                    (
                        subprocess.Popen(  # noqa: S603 - our h2load binary and arguments
                            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                        ),
                        log,
                    )
                )
                time.sleep(stagger_s)
            started, latencies, starts = 0, [], []
            for proc, log in procs:
                out, err = proc.communicate(timeout=warmup_s + duration_s + 60)
                started += int(_summary(_STARTED, proc.returncode, out, err)["started"])
                for line in log.read_text().splitlines():
                    start, _, micros = line.split("\t")[:3]
                    starts.append(int(start))
                    latencies.append(int(micros) / 1000)
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return RateWindow(started, sorted(latencies), sorted(starts))


def run_argv(argv: list[str], timeout_s: float) -> int:
    """Run h2load; returns the number of requests it completed in the measured window."""
    proc = subprocess.run(  # noqa: S603 - our h2load binary and arguments
        argv, capture_output=True, text=True, check=False, timeout=timeout_s
    )
    return int(_summary(_SUMMARY, proc.returncode, proc.stdout, proc.stderr)["done"])


def _summary(pattern: re.Pattern[str], returncode: int, out: str, err: str) -> re.Match[str]:
    """The summary line of a finished h2load, or why there is none."""
    found = pattern.search(out)
    if returncode != 0 or found is None:
        raise RuntimeError(f"h2load failed ({returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    return found


def point_result(
    window: Window, delta: Counter[str], duration_s: float, in_flight: int
) -> PointResult:
    """Combine h2load's window with the server's counts over the whole point (`delta`)."""
    # The server counts CANCELLED only when the caller cancels (libs/platform/observability.py)
    # and h2load cancels only the calls still in flight when it stops: up to `in_flight` of
    # them are the end of the run, not failures.
    delta = delta - Counter(CANCELLED=min(delta["CANCELLED"], in_flight))
    # Warm-up included: every gRPC error seen is reported, and none is counted as a call.
    grpc_errors = Counter({code: n for code, n in delta.items() if code != "OK" and n > 0})
    calls = max(0, window.answered - grpc_errors.total())
    # The server counts a call before it answers, so it counted at least every OK call
    # h2load saw. Fewer means answers it never counted (a method it does not serve, a body
    # it cannot decode): failures the counters cannot name.
    if delta["OK"] < calls:
        raise RuntimeError(
            f"h2load got {calls} answers but the server counted {delta['OK']} OK calls "
            f"({dict(delta)}): the calls failed outside its metrics"
        )
    # h2load cannot tell a failed call's time from a good one's: with some errors the
    # percentiles mix both; with no good call at all there is no latency to report.
    latencies = window.latencies_ms if calls else []
    return PointResult(
        calls=calls,
        errors=dict(window.errors() + grpc_errors),
        rate=calls / duration_s,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
    )
