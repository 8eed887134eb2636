"""Open-loop points: offered load at a share of the closed-loop peak, whatever the answers.

By default the Python open-loop driver (openloop.py) offers every call on its own fixed
schedule, each with a deadline that starts at its scheduled time, and records each one's
status and latency from then. That is what a user's client does, and it is the only way to
see a per-connection stream bound (GRPC_MAX_CONCURRENT_STREAMS) as users do: the client
queues calls beyond the bound, and they spend their deadline waiting. Its cost is CPU on
the cores the servers use.

With --open-loop-sample-share below 1, three sources make one point instead:

* h2load's rate mode (--rps; tools/bench/h2load.py) offers most of the calls: a C client
  costs the shared CPUs little. It sees every gRPC answer as HTTP 200, though, so it cannot
  tell a shed call from a served one, and it starts a call's clock and grpc-timeout only
  when the call leaves its queue (nghttp2's src/h2load.cc: rps_cb and the request time
  taken in before_frame_send_callback).
* the Python driver offers the rest, a sample, whose percentiles are reported.
* the servers' own counters (grpc_server_handled_total) count every answer by status code:
  goodput and shed rates are those counts over the point.

For CreatePayment the sample's idempotency keys are then looked up in payments_db (the
ledger check): every acknowledged payment must be there exactly once, and no shed one.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from tools.bench import h2load, stalls
from tools.bench.h2load import H2Load
from tools.bench.load import percentile
from tools.bench.openloop import DEFAULT_DEADLINE_S, OpenLoopDriver, OpenPoint

# The open loop's arms: the services as configured by default, and the same with no
# protection (UNPROTECTED_SETTINGS); bench.py may add others (--open-loop-arm).
PROTECTED = "protected"
UNPROTECTED = "unprotected"
SAMPLE_SHARE = 0.1  # when h2load offers the rest (--open-loop-sample-share below 1)
# No protection at all: neither the adaptive limit nor the per-connection stream bound.
UNPROTECTED_SETTINGS = {"OVERLOAD_SHEDDING": "false", "GRPC_MAX_CONCURRENT_STREAMS": "0"}
# The arms bench.py runs unless told otherwise: no protection (the reference the goals
# compare with), and each protection a service can turn on, since the defaults turn on
# neither (libs/platform/overload/README.md).
DEFAULT_ARMS: tuple[tuple[str, dict[str, str]], ...] = (
    (UNPROTECTED, UNPROTECTED_SETTINGS),
    ("adaptive limit", {"OVERLOAD_SHEDDING": "true"}),
    ("bound 16 refused", {"GRPC_MAX_CONCURRENT_STREAMS": "16", "GRPC_EXCESS_STREAMS": "refuse"}),
)
SAMPLE_MIN = 50.0  # calls/s: enough for a p99 over a few seconds
SHED = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class OpenRow:
    method: str
    share: float  # of the closed-loop peak
    peak: float  # the closed-loop peak, calls/s
    offered: float  # calls/s on the two schedules together
    started: float  # calls/s the load generators started in the measured window
    goodput: float  # OK answers/s (the servers' counters)
    shed: float  # RESOURCE_EXHAUSTED answers/s (the servers' counters)
    errors: dict[str, int]  # other codes (the servers' counters, whole point)
    answered_ok: int  # OK answers, warm-up included (the servers' counters)
    sample: OpenPoint
    all_p99_ms: float  # h2load: every answer, served and shed
    limit: float  # the servers' concurrency limits at the end, summed over workers
    shed_by: dict[str, int]  # refusals by reason (limit, queue), the servers' counters
    arm: str = PROTECTED
    deadline_s: float = DEFAULT_DEADLINE_S
    stalls: stalls.Stalls | None = None  # the servers' own, over the whole point

    @property
    def good_in_deadline(self) -> float:
        """OK answers within the deadline per second, counted conservatively: every started
        call at the success rate of the sample (whose client gives up at the deadline),
        but never more than the servers answered OK. The cap matters when the sample's
        calls fare better than h2load's: under a per-connection stream bound h2load's
        connections queue calls the sample's lightly loaded ones never do."""
        if not self.sample.sent:
            return float("nan")
        return min(self.goodput, self.started * self.sample.ok / self.sample.sent)


@dataclass
class Ledger:
    """The CreatePayment sample's keys against payments_db."""

    acked: int = 0
    acked_found: int = 0  # acknowledged keys with a row
    duplicates: int = 0  # keys with more than one row
    shed: int = 0
    shed_written: int = 0  # shed keys with a row (must be 0: a shed call never ran)
    unknown: int = 0  # failed otherwise (deadline, cancelled): the outcome is unknown
    unknown_written: int = 0
    acknowledged_total: int = 0  # OK answers to CreatePayment (servers' counters)
    rows_added: int = 0  # payments rows written meanwhile, all load generators
    points: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return (
            self.acked_found == self.acked
            and self.duplicates == 0
            and self.shed_written == 0
            and self.rows_added >= self.acknowledged_total
        )


def parse_arm(text: str) -> tuple[str, dict[str, str]]:
    """An open-loop arm from the command line: 'NAME:K=V,K=V' -> (NAME, {K: V})."""
    name, _, settings = text.partition(":")
    pairs = [item.split("=", 1) for item in settings.split(",") if item.strip()]
    if not name.strip() or not pairs or any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return name.strip(), {k.strip(): v.strip() for k, v in pairs}


def gauge(urls: Sequence[str], name: str) -> float:
    return sum(s.value for s in h2load.samples(urls) if s.name == name)


def shed_reasons(urls: Sequence[str], grpc_method: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for s in h2load.samples(urls):
        if s.name == "overload_shed_total" and s.labels["grpc_method"] == grpc_method:
            counts[s.labels["reason"]] += int(s.value)
    return counts


def measure(
    h2: H2Load,
    sampler: OpenLoopDriver,
    *,
    method: str,
    target: str,
    metrics_urls: Sequence[str],
    rate: float,
    share: float,
    peak: float,
    duration_s: float,
    warmup_s: float,
    user_id: str,
    token: str,
    arm: str = PROTECTED,
    deadline_s: float = DEFAULT_DEADLINE_S,
    sample_share: float = SAMPLE_SHARE,
) -> OpenRow:
    """With `sample_share` >= 1 the Python driver offers every call and h2load none: each
    call's deadline then starts at its scheduled time even where a per-connection stream
    bound queues it in the client (h2load starts a call's clock, and its grpc-timeout, only
    when the call leaves its queue), at the cost of the driver's CPU on the shared cores."""
    grpc_method = f"/{h2load.SERVICES[method]}/{method}"
    before = h2load.scrape(metrics_urls, grpc_method)
    reasons_before = shed_reasons(metrics_urls, grpc_method)
    if sample_share >= 1:
        sample_rate = rate
    else:
        sample_rate = min(max(SAMPLE_MIN, rate * sample_share), rate / 2)
    start_at = time.time() + 1.5 + warmup_s  # the sampler's processes connect meanwhile
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sampled = pool.submit(
            sampler.run,
            method,
            target,
            sample_rate,
            duration_s=duration_s,
            warmup_s=warmup_s,
            user_id=user_id,
            token=token,
            start_at=start_at,
            deadline_s=deadline_s,
        )
        time.sleep(max(0.0, start_at - warmup_s - time.time()))
        stalls_before = stalls.scrape(metrics_urls)  # the schedules start: idle time left out
        window = (
            h2load.run_rate(
                h2,
                method,
                target,
                rate - sample_rate,
                duration_s=duration_s,
                warmup_s=warmup_s,
                user_id=user_id,
                token=token,
                deadline_s=deadline_s,
            )
            if rate > sample_rate
            else None
        )
        sample = sampled.result()
    counts = h2load.settled(metrics_urls, grpc_method) - before
    stalled = stalls.between(
        stalls_before, stalls.scrape(metrics_urls), time.time() - (start_at - warmup_s)
    )
    span = warmup_s + duration_s  # both schedules ran that long; the counts cover it all
    errors = {code: n for code, n in counts.items() if code not in ("OK", SHED) and n}
    return OpenRow(
        method=method,
        share=share,
        peak=peak,
        offered=rate,
        started=((window.started if window else 0) + sample.sent) / duration_s,
        goodput=counts["OK"] / span,
        shed=counts[SHED] / span,
        errors=errors,
        answered_ok=counts["OK"],
        sample=sample,
        # Without h2load, the driver's own: its admitted and shed p99s, the larger.
        all_p99_ms=(
            percentile(window.latencies_ms, 0.99)
            if window
            else max(sample.ok_p99_ms, sample.shed_p99_ms)
        ),
        limit=gauge(metrics_urls, "overload_concurrency_limit"),
        shed_by=dict(shed_reasons(metrics_urls, grpc_method) - reasons_before),
        arm=arm,
        deadline_s=deadline_s,
        stalls=stalled,
    )


async def _count_keys(url: str, keys: list[str]) -> Counter[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM payments "
            "WHERE idempotency_key = ANY($1::text[]) GROUP BY 1",
            keys,
        )
    finally:
        await conn.close()
    return Counter({r["idempotency_key"]: r["n"] for r in rows})


async def _count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM payments"))
    finally:
        await conn.close()


def count_rows(url: str) -> int:
    return asyncio.run(_count_rows(url))


def check_ledger(url: str, rows: Sequence[OpenRow], rows_before: int) -> Ledger:
    ledger = Ledger()
    acked = [k for r in rows for k in r.sample.acked]
    shed = [k for r in rows for k in r.sample.shed_keys]
    unknown = [k for r in rows for k in r.sample.unknown_keys]
    found = asyncio.run(_count_keys(url, acked + shed + unknown))
    ledger.acked, ledger.shed, ledger.unknown = len(acked), len(shed), len(unknown)
    ledger.acked_found = sum(1 for k in acked if found[k])
    ledger.duplicates = sum(1 for n in found.values() if n > 1)
    ledger.shed_written = sum(1 for k in shed if found[k])
    ledger.unknown_written = sum(1 for k in unknown if found[k])
    ledger.acknowledged_total = sum(r.answered_ok for r in rows)
    ledger.rows_added = count_rows(url) - rows_before
    return ledger
