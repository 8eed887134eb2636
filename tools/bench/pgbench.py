"""PostgreSQL's own rate for the services' queries: pgbench with custom scripts.

The SQL mirrors services/usersvc/store.py (UserStore.get) and services/paymentsvc/store.py
(PaymentStore.create, the INSERT ... ON CONFLICT DO NOTHING RETURNING); keep them in step.
Prepared statements, like asyncpg's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from libs.platform.testing.postgres import find_bindir
from tools.bench.load import PointResult, percentile

SCRIPTS = {
    "GetUser": (
        "users_db",
        "SELECT id, email, display_name, created_at, updated_at FROM users WHERE id = :uid;\n",
    ),
    "CreatePayment": (
        "payments_db",
        (
            "INSERT INTO payments (id, user_id, amount, currency, status, description, "
            "idempotency_key, request_hash) VALUES (gen_random_uuid(), :uid, 1250, 'USD', "
            "'COMPLETED', 'bench', gen_random_uuid()::text, :hash) "
            "ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL "
            "DO NOTHING RETURNING id, user_id, amount, currency, status, description, "
            "idempotency_key, request_hash, created_at;\n"
        ),
    ),
}


def pgbench_path() -> str:
    try:
        candidate = find_bindir() / "pgbench"
        if candidate.exists():
            return str(candidate)
    except RuntimeError:
        pass
    found = shutil.which("pgbench")
    if not found:
        raise RuntimeError("pgbench not found (install postgresql-client or set MICRO_PG_BINDIR)")
    return found


def run_pgbench(
    dsn: str, query: str, concurrency: int, duration_s: float, user_id: str
) -> PointResult:
    _, sql = SCRIPTS[query]
    with tempfile.TemporaryDirectory(prefix="micro-pgbench-") as tmp:
        script = Path(tmp) / "script.sql"
        script.write_text(sql)
        argv = [
            pgbench_path(),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={concurrency}",
            f"--jobs={min(concurrency, os.cpu_count() or 1)}",
            f"--time={max(1, round(duration_s))}",
            f"--file={script}",
            f"--define=uid={user_id}",
            f"--define=hash={'0' * 64}",
            "--log",
            f"--log-prefix={tmp}/txn",
            dsn,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tmp)  # noqa: S603
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        latencies: list[float] = []
        for log in Path(tmp).glob("txn*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3:
                    latencies.append(int(fields[2]) / 1000)
    tps = 0.0
    for line in proc.stdout.splitlines():
        if line.startswith("tps ="):
            tps = float(line.split()[2])
    latencies.sort()
    failed = 0
    for line in proc.stdout.splitlines():
        if line.startswith("number of failed transactions:"):
            failed = int(line.split(":")[1].split()[0])
    return PointResult(
        calls=len(latencies),
        errors={"failed": failed} if failed else {},
        rate=tps,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
    )
