"""mypy over one package's Python files, as a cached test (typecheck_test in defs.bzl)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import api


def main() -> int:
    config, *files = sys.argv[1:]
    workspace = os.path.abspath(Path.cwd())
    # The test's deps put every import root on sys.path. Those inside the workspace (the
    # generated proto stubs, `imports` of py_grpc_library) are our code: mypy reads them
    # through MYPYPATH. The rest are installed distributions: mypy finds them itself from
    # this interpreter's sys.path and holds them to PEP 561 (py.typed or a stubs package).
    ours = [
        path
        for path in map(os.path.abspath, sys.path)
        if path.startswith(workspace + os.sep) and Path(path).is_dir()
    ]
    os.environ["MYPYPATH"] = os.pathsep.join(ours)
    cache = Path(os.environ["TEST_TMPDIR"]) / "mypy-cache"
    stdout, stderr, status = api.run(["--config-file", config, "--cache-dir", str(cache), *files])
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
