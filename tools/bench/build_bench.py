#!/usr/bin/env python3
"""Build benchmark: cold, warm-repository, no-op, one-file-changed and cache-backed builds.

    python3 tools/bench/build_bench.py [--out BENCHMARKS.md] [--target //...]

Runs on the host (it drives tools/bazel itself, so it cannot be a Bazel target). It works on
a snapshot copy of the working tree under /tmp with its own output bases, so it never
touches the shared Bazel server, its caches or anyone's files; it starts a second, empty
remote cache (tools/remote_cache/serve.sh on another port) to measure cache hits honestly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sections import replace_section  # type: ignore[import-not-found]  # host-run: its folder is sys.path[0]

REPO = Path(__file__).resolve().parents[2]
CHANGED_FILE = "services/paymentsvc/service.py"
PROCESSES = re.compile(r"INFO: (\d+) process(?:es)?(?:: (.*))?\.")
FAILED_TESTS = re.compile(r"(\d+) tests? FAILED")


@dataclass
class Result:
    name: str
    what: str
    wall_s: float
    exit_code: int
    processes: str
    hits: int | None = None
    hit_rate: float | None = None
    failed_tests: int = 0


def snapshot(dest: Path) -> None:
    """Copy tracked and untracked-but-not-ignored files: what a fresh clone would build."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.exists() or src.is_dir():
            continue  # deleted in the working tree, or a submodule
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def parse_processes(log: str) -> tuple[str, int | None, float | None]:
    """Bazel's summary line, the number of cache hits and hits / non-internal processes.

    Failed tests are excluded from the denominator: Bazel never caches a failing result,
    so they run again whatever the cache holds.
    """
    failed = FAILED_TESTS.findall(log)
    failed_tests = int(failed[-1]) if failed else 0
    matches = PROCESSES.findall(log)
    if not matches:
        return "", None, None
    total_s, detail = matches[-1]
    total = int(total_s)
    parts = {
        kind.strip(): int(n)
        for n, kind in (p.strip().split(" ", 1) for p in (detail or "").split(",") if p.strip())
    }
    internal = parts.get("internal", 0)
    hits = sum(n for kind, n in parts.items() if "cache hit" in kind)
    cacheable = total - internal - failed_tests
    rate = hits / cacheable if cacheable else None
    return f"{total_s} processes: {detail}", hits, rate


def misses(execlog: Path) -> list[str]:
    """Spawns that ran instead of coming from the cache, from --execution_log_json_file."""
    if not execlog.exists():
        return []
    text, pos, out = execlog.read_text(), 0, []
    decoder = json.JSONDecoder()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        spawn, pos = decoder.raw_decode(text, pos)
        if not spawn.get("remoteCacheHit") and spawn.get("remotable", True):
            out.append(f"{spawn.get('mnemonic', '?')} {spawn.get('targetLabel', '?')}")
    return sorted(out)


class Bench:
    def __init__(self, work: Path, target: str) -> None:
        self.work = work
        self.ws = work / "ws"
        self.target = target
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def bazel(self, name: str, what: str, output_base: Path, *flags: str) -> Result:
        argv = [
            str(self.ws / "tools/bazel"),
            f"--output_base={output_base}",
            "test",
            self.target,
            "--test_output=errors",
            *flags,
        ]
        print(f"[build_bench] {name}: {' '.join(argv[1:])}", flush=True)
        start = time.monotonic()
        proc = subprocess.run(  # noqa: S603 - our own tools/bazel
            argv, cwd=self.ws, capture_output=True, text=True, check=False
        )
        wall = time.monotonic() - start
        log = proc.stdout + proc.stderr
        (self.logs / f"{name}.log").write_text(log)
        processes, hits, rate = parse_processes(log)
        failed = FAILED_TESTS.findall(log)
        failed_tests = int(failed[-1]) if failed else 0
        print(
            f"[build_bench] {name}: {wall:.1f}s exit={proc.returncode} {processes} "
            f"failed tests={failed_tests}",
            flush=True,
        )
        return Result(name, what, wall, proc.returncode, processes, hits, rate, failed_tests)

    def shutdown(self, output_base: Path) -> None:
        subprocess.run(  # noqa: S603
            [str(self.ws / "tools/bazel"), f"--output_base={output_base}", "shutdown"],
            cwd=self.ws,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(output_base, ignore_errors=True)


def serve_cache(action: str, data: Path, port: int) -> None:
    env = {**os.environ, "MICRO_REMOTE_CACHE_DIR": str(data), "MICRO_REMOTE_CACHE_PORT": str(port)}
    subprocess.run(  # noqa: S603
        [str(REPO / "tools/remote_cache/serve.sh"), action], env=env, check=action == "start"
    )


def render(results: list[Result], target: str, started: dt.datetime, machine: str) -> str:
    rows = "\n".join(
        f"| {r.name} | {r.what} | {r.wall_s:.1f} | {r.exit_code} ({r.failed_tests}) | "
        f"{'' if r.hit_rate is None else f'{r.hit_rate:.1%} ({r.hits})'} | {r.processes} |"
        for r in results
    )
    return f"""## Build and cache

`tools/bazel test {target}` on a snapshot of the working tree, {started:%Y-%m-%d %H:%M} UTC,
{machine}. Rerun: `python3 tools/bench/build_bench.py --out BENCHMARKS.md` (on the host,
about 10-15 minutes; it uses its own output bases and a second, empty remote cache).
Wall time includes starting a new Bazel server where the output base is new, and running
every test whose result is not cached. Exit code 3 means some tests failed (the working
tree had other engineers' changes in progress); Bazel never caches a failing test, so
those are left out of the hit rate's denominator (cacheable = processes - internal -
failed tests).

| run | what | wall s | exit (failed tests) | cache hits / cacheable actions | Bazel's process summary |
| --- | --- | ---: | ---: | ---: | --- |
{rows}
"""


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({cpu})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--target", default="//...")
    parser.add_argument("--work", type=Path, default=Path("/tmp/micro-build-bench"))  # noqa: S108 - documented scratch dir
    parser.add_argument("--cache-port", type=int, default=9093)
    parser.add_argument("--skip-cold", action="store_true", help="skip the empty-repo-cache run")
    args = parser.parse_args(argv)

    started = dt.datetime.now(dt.UTC)
    shutil.rmtree(args.work, ignore_errors=True)
    bench = Bench(args.work, args.target)
    snapshot(bench.ws)
    cache_dir = args.work / "remote-cache"
    remote = f"--remote_cache=http://127.0.0.1:{args.cache_port}"
    # Identical flags for the three runs on one output base, so the no-op stays a no-op.
    warm_flags = ("--disk_cache=", "--config=remote-cache", remote)
    results: list[Result] = []
    missed: list[str] = []
    serve_cache("start", cache_dir, args.cache_port)
    try:
        if not args.skip_cold:
            ob = args.work / "ob-cold"
            results.append(
                bench.bazel(
                    "cold",
                    "new output base, empty repository cache (downloads wheels), no disk cache",
                    ob,
                    f"--repository_cache={args.work / 'repo-empty'}",
                    "--disk_cache=",
                )
            )
            bench.shutdown(ob)
        ob = args.work / "ob-warm"
        results.append(
            bench.bazel(
                "warm-repo",
                "new output base, warm repository cache, no disk cache; fills the remote cache",
                ob,
                *warm_flags,
            )
        )
        results.append(bench.bazel("no-op", "same output base, nothing changed", ob, *warm_flags))
        changed = bench.ws / CHANGED_FILE
        # A comment above the imports: a real content change that ruff still accepts, so the
        # rerun tests pass (a trailing comment would fail the package's lint test).
        text = changed.read_text()
        marker = "from __future__ import annotations\n"
        changed.write_text(text.replace(marker, "# build_bench: one-file change\n" + marker, 1))
        results.append(
            bench.bazel("one-file", f"same output base, `{CHANGED_FILE}` edited", ob, *warm_flags)
        )
        bench.shutdown(ob)
        ob = args.work / "ob-remote"
        execlog = args.work / "remote-cache-execlog.json"
        results.append(
            bench.bazel(
                "remote-cache",
                "new output base, no disk cache, remote cache warm from the runs above",
                ob,
                "--disk_cache=",
                "--config=remote-cache",
                remote,
                f"--execution_log_json_file={execlog}",
            )
        )
        missed = misses(execlog)
        bench.shutdown(ob)
    finally:
        serve_cache("stop", cache_dir, args.cache_port)
    body = render(results, args.target, started, machine())
    if missed:
        body += "\nActions the remote-cache run executed instead of fetching:\n\n" + "\n".join(
            f"- `{m}`" for m in missed
        )
    replace_section(args.out, "build", body)
    print(f"[build_bench] wrote {args.out}; logs in {bench.logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
