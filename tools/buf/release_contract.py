"""Records the wire contract of a release, for buf breaking to hold later changes to.

    tools/bazel run //tools/buf:release_contract -- v0.2.0

Writes protos/released/<tag>.json (a buf image of protos/, without source info, pretty
printed so a release's review shows what the contract is) and removes the previous one:
git keeps the history, the tests need only the last release. A breaking change since the
previous release is refused. Then commit and tag, as the command prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from tools.buf import workspace
from tools.buf.runner import Buf

TAG = re.compile(r"v\d+\.\d+\.\d+")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("buf", help="the buf binary (given by the BUILD target)")
    parser.add_argument("tag", help="the release tag, vMAJOR.MINOR.PATCH")
    args = parser.parse_args()
    if not TAG.fullmatch(args.tag):
        parser.error(f"tag {args.tag!r} is not of the form v1.2.3")
    checkout = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not checkout:
        parser.error("run it with `tools/bazel run`, which says where the workspace is")
    root = Path(checkout)
    released = root / "protos" / "released"
    previous = sorted(released.glob("*.json"))

    with tempfile.TemporaryDirectory() as tmp:
        buf = Buf(Path(args.buf).resolve(), Path(tmp) / "cache")
        # `bazel run` starts the tool in its runfiles, where google/api is.
        contract = workspace.stage(
            Path(tmp) / "ws",
            buf_yaml=root / "buf.yaml",
            protos=root / "protos",
            google_api=Path.cwd() / "tools" / "buf" / workspace.GOOGLE_API,
        )
        for old in previous:
            checked = buf("breaking", workspace.CONTRACT, "--against", str(old), cwd=contract)
            if checked.returncode != 0:
                print(
                    f"refused: the contract breaks {old.stem}:\n{checked.output}", file=sys.stderr
                )
                return 1
        raw = Path(tmp) / "image.json"
        # Only protos/ is the contract; google/api comes along as an import, as
        # google/protobuf's types do.
        built = buf(
            "build", workspace.CONTRACT, "--exclude-source-info", "-o", str(raw), cwd=contract
        )
        if built.returncode != 0:
            print(f"buf build failed:\n{built.output}", file=sys.stderr)
            return 1
        image = json.loads(raw.read_text())
    target = released / f"{args.tag}.json"
    target.write_text(json.dumps(image, indent=1, sort_keys=True) + "\n")
    for old in previous:
        if old != target:
            old.unlink()
    print(f"wrote {target.relative_to(root)}; now:")
    print(f"  git add protos/released && git commit -m 'Release {args.tag}'")
    print(f"  git tag {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
