"""The contract follows buf's style guide (STANDARD lint, configured in buf.yaml)."""

from __future__ import annotations

from pathlib import Path

from tools.buf.runner import Buf


def test_contract_passes_buf_lint(buf: Buf, contract: Path) -> None:
    result = buf("lint", cwd=contract)
    assert result.returncode == 0, f"buf lint:\n{result.output}"


def test_lint_reports_a_style_violation(buf: Buf, contract: Path) -> None:
    # Guards the guard: a lint that silently checked nothing would pass above too.
    proto = contract / "protos" / "user" / "v1" / "user.proto"
    proto.write_text(proto.read_text() + "\nmessage user_note {\n  string Text = 1;\n}\n")
    result = buf("lint", cwd=contract)
    assert result.returncode != 0
    assert 'Message name "user_note" should be PascalCase' in result.output
    assert 'Field name "Text" should be lower_snake_case' in result.output
