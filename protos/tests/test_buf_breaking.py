"""The contract only grows: nothing released, and nothing the original Go system's clients
use, may be renumbered, retyped, renamed or removed (buf breaking, FILE rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.buf.runner import Buf
from tools.buf.workspace import CONTRACT


def test_contract_keeps_the_last_release(buf: Buf, contract: Path, released_image: Path) -> None:
    result = buf("breaking", CONTRACT, "--against", str(released_image), cwd=contract)
    assert result.returncode == 0, f"breaks {released_image.stem}:\n{result.output}"


def test_contract_keeps_the_seed(buf: Buf, contract: Path, seed_protos: Path) -> None:
    result = buf("breaking", CONTRACT, "--against", str(seed_protos), cwd=contract)
    assert result.returncode == 0, f"breaks the seed's contract:\n{result.output}"


@pytest.mark.parametrize("baseline", ["released_image", "seed_protos"])
def test_renumbered_field_is_refused(
    buf: Buf, contract: Path, baseline: str, request: pytest.FixtureRequest
) -> None:
    proto = contract / "protos" / "payment" / "v1" / "payment.proto"
    text = proto.read_text()
    assert "  int64 amount = 2;" in text
    proto.write_text(text.replace("  int64 amount = 2;", "  int64 amount = 12;", 1))
    against = request.getfixturevalue(baseline)
    result = buf("breaking", CONTRACT, "--against", str(against), cwd=contract)
    assert result.returncode != 0
    assert 'field "2" with name "amount" on message "CreatePaymentRequest"' in result.output


def test_lost_field_presence_is_refused(buf: Buf, contract: Path, released_image: Path) -> None:
    # UpdateUser changes only the fields a caller sets: presence is part of the contract.
    proto = contract / "protos" / "user" / "v1" / "user.proto"
    proto.write_text(
        proto.read_text().replace("  optional string email = 2;", "  string email = 2;", 1)
    )
    result = buf("breaking", CONTRACT, "--against", str(released_image), cwd=contract)
    assert result.returncode != 0
    assert "changed cardinality" in result.output


@pytest.mark.parametrize("baseline", ["released_image", "seed_protos"])
def test_added_field_is_accepted(
    buf: Buf, contract: Path, baseline: str, request: pytest.FixtureRequest
) -> None:
    proto = contract / "protos" / "payment" / "v1" / "payment.proto"
    proto.write_text(
        proto.read_text().replace(
            "message GetPaymentRequest {", "message GetPaymentRequest {\n  string trace = 99;", 1
        )
    )
    against = request.getfixturevalue(baseline)
    result = buf("breaking", CONTRACT, "--against", str(against), cwd=contract)
    assert result.returncode == 0, result.output
