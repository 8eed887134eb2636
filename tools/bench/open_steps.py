"""The runtime bench's open-loop step and the section it writes: GetUser and CreatePayment
offered shares of their closed-loop peaks in every arm, then the payments ledger. A step of
its own because it starts from the closed loop's peaks and drives other load (h2load's rate
mode beside an open-loop driver; overload.py measures a point)."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os

from tools.bench import model, overload, overload_report
from tools.bench.h2load import H2Load
from tools.bench.model import CALLS_PER_REQUEST, Row, Run, Session
from tools.bench.native_openloop import NativeOpenLoopDriver
from tools.bench.openloop import OpenLoopDriver, OpenLoopGenerator
from tools.bench.sections import replace_section


def _open_point(
    h2: H2Load,
    sampler: OpenLoopDriver,
    session: Session,
    *,
    method: str,
    server: str,
    peak: Row,
    share: float,
    arm: str,
) -> overload.OpenRow:
    system, args = session.system, session.args
    row = overload.measure(
        h2,
        sampler,
        method=method,
        target=system.addr(server),
        metrics_urls=system.metrics_urls(server),
        rate=share * peak.result.rate,
        share=share,
        peak=peak.result.rate,
        duration_s=args.open_loop_duration,
        warmup_s=args.open_loop_warmup,
        user_id=session.user_id,
        token=session.token,
        arm=arm,
        deadline_s=args.deadline,
        sample_share=args.open_loop_sample_share,
    )
    s = row.sample
    print(
        f"[bench] open {method:<14} {share:4.0%} {row.offered:7.0f}/s offered "
        f"{row.good_in_deadline:7.0f}/s ok in {args.deadline:g}s "
        f"{row.goodput:7.0f}/s ok {row.shed:7.0f}/s shed p50={s.ok_p50_ms:.1f} "
        f"p99={s.ok_p99_ms:.1f} shed p99={s.shed_p99_ms:.1f} limit={row.limit:.0f} "
        f"shed_by={row.shed_by} "
        f"errors={row.errors} client={dict(s.errors)} lag99={s.lag_p99_ms:.0f} "
        f"client_cpu={s.client_cpu:.2f} arm={arm} server_stalls={row.stalls}",
        flush=True,
    )
    return row


def open_loop(session: Session) -> tuple[list[overload.OpenRow], overload.Ledger | None]:
    """GetUser and CreatePayment at shares of their closed-loop peaks, then the ledger."""
    run, system, args = session.run, session.system, session.args
    h2 = session.drivers.c_client
    shares = [float(x) for x in args.open_loop.split(",") if x.strip()]
    if not shares:
        return [], None
    if h2 is None:
        run.notes.append("Open loop not measured: it needs h2load (nghttp2-client).")
        return [], None
    rows: list[overload.OpenRow] = []
    ledger_from = overload.count_rows(system.urls["paymentsvc"])
    sampler: OpenLoopDriver = (
        NativeOpenLoopDriver(args.open_loop_driver)
        if args.open_loop_driver
        else OpenLoopGenerator(args.client_processes)
    )
    try:
        for method, server in (("GetUser", "usersvc"), ("CreatePayment", "paymentsvc")):
            peak = model.peak(run.series(method))
            if peak is None:
                continue

            point = functools.partial(
                _open_point,
                h2,
                sampler,
                session,
                method=method,
                server=server,
                peak=peak,
            )
            rows += [point(share=x, arm=overload.PROTECTED) for x in shares]
            arms = args.open_loop_arm or list(overload.DEFAULT_ARMS)
            for arm, settings in arms if args.open_loop_compare else []:
                # The same shares in this arm, right after: what its settings change.
                involved = (server, *CALLS_PER_REQUEST.get(server, ()))
                saved = {name: dict(system.env[name]) for name in involved}
                for name in involved:
                    system.env[name].update(settings)
                    system.restart(name, args.workers)
                try:
                    rows += [point(share=x, arm=arm) for x in shares]
                finally:
                    for name in involved:
                        system.env[name].clear()
                        system.env[name].update(saved[name])
                        system.restart(name, args.workers)
    finally:
        sampler.close()
    payments = [r for r in rows if r.method == "CreatePayment"]
    ledger = (
        overload.check_ledger(system.urls["paymentsvc"], payments, ledger_from)
        if payments
        else None
    )
    if ledger is not None:
        print(f"[bench] ledger: {overload_report.ledger_line(ledger)}", flush=True)
    return rows, ledger


def write_section(
    rows: list[overload.OpenRow],
    ledger: overload.Ledger | None,
    run: Run,
    args: argparse.Namespace,
    started: dt.datetime,
) -> None:
    """The plot and the open-loop section of --out; left as they were when nothing was
    measured."""
    if not rows:
        return
    overload_report.draw(rows, args.plot)
    link = os.path.relpath(args.plot.resolve(), args.out.resolve().parent)
    section = overload_report.render(
        rows,
        ledger,
        started=f"{started:%Y-%m-%d %H:%M} UTC, the same run as the runtime section",
        workers=args.workers,
        duration_s=args.open_loop_duration,
        warmup_s=args.open_loop_warmup,
        plot=link,
        notes=run.open_notes,
        sample_share=args.open_loop_sample_share,
        native_driver=args.open_loop_driver is not None,
    )
    replace_section(args.out, "openloop", section)
    print(f"[bench] wrote {args.plot}", flush=True)
