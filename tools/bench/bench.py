"""Runtime benchmark: calls/s and latency of GetUser, CreatePayment and Login, against the
empty-handler, two-hop chain and pgbench ceilings (closed loop), then latency and goodput of
GetUser and CreatePayment against offered load (open loop); writes the runtime and open-loop
sections of BENCHMARKS.md and the open-loop plot.

    tools/bench/run.sh [--duration 3 --concurrency 1,8,32,64 --py-spy PATH]

Everything runs on loopback: a throwaway PostgreSQL, the three service binaries, bench-only
empty servers, and the load: h2load (tools/bench/h2load.py) for the empty handler, the chain,
GetUser and CreatePayment when it is installed (--load), Python client processes
(tools/bench/load.py) for Login and as the fallback. The open loop (tools/bench/overload.py)
comes from the C++ driver given with --open-loop-driver, which tools/bench/run.sh builds and
passes (native_openloop.py), or else from Python client processes (openloop.py), which
share the cores with the servers and run short of CPU above about half the peak.

This file only orders the steps: cli.py parses the flags, startup.py brings the system up,
closed_steps.py and open_steps.py measure, runtime_report.py (with machine.py) and
overload_report.py write the sections; model.py holds what they pass along.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from tools.bench import cli, closed_steps, open_steps, runtime_report, startup
from tools.bench.model import Run
from tools.bench.sections import replace_section


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(argv, __doc__.splitlines()[0])
    levels = cli.parse_levels(args.concurrency)
    started = dt.datetime.now(dt.UTC)
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    run = Run()
    h2 = startup.h2load_driver(run, args.load)
    system = startup.system_under_test(args)
    drivers = startup.load_drivers(h2, args)
    try:
        session = startup.start(run, system, drivers, args)
        closed_steps.main_series(session, levels)
        closed_steps.login(session)
        closed_steps.profiles(session, levels)
        # After main_series (its peaks set the offered loads), before other_workers restarts
        # the servers with other WORKERS.
        open_rows, ledger = open_steps.open_loop(session)
        closed_steps.other_workers(session, levels)
    finally:
        drivers.close()
        system.stop()
    run.notes.append(runtime_report.databases_note(args.durable))
    replace_section(args.out, "runtime", runtime_report.render(run, args, started, load_avg))
    open_steps.write_section(open_rows, ledger, run, args, started)
    print(f"[bench] wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
