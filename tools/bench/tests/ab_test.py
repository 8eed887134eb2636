"""//tools/bench:ab's bookkeeping: arm order, the command it records, the medians."""

from __future__ import annotations

from tools.bench import ab, model
from tools.bench.load import PointResult


def row(series: str, rate: float, cpu: float) -> model.Row:
    return model.Row(series, 2, 32, PointResult(int(rate), {}, rate, 1.0, 2.0), cpu)


def test_arms_alternate_which_goes_first() -> None:
    assert ab._arm_order(3) == ["A", "B", "B", "A", "A", "B"]


def test_the_recorded_command_leaves_out_the_binaries_the_build_file_passes() -> None:
    argv = ["--usersvc", "u", "--empty=e", "--name", "x", "--a", "K=1", "--paymentsvc", "p"]
    assert ab._without_binaries(argv) == ["--name", "x", "--a", "K=1"]


def test_medians_per_arm_and_their_ratio() -> None:
    points = [
        ("A", 1, row("GetUser", 1000, 0.8)),
        ("B", 1, row("GetUser", 1500, 0.9)),
        ("B", 2, row("GetUser", 1300, 0.65)),
        ("A", 2, row("GetUser", 1200, 0.6)),
    ]
    table = ab.summarize(["GetUser"], [32], points)
    # Medians: A 1,100/s at 0.65 ms of CPU per call (0.8 and 0.5 ms), B 1,400/s at 0.55 ms
    # (0.6 and 0.5 ms).
    assert table[2] == "| GetUser | 32 | 1,100 | 1,400 | 1.27 | 0.650 | 0.550 | 0.85 |"


def test_shares_of_the_ceiling_per_arm() -> None:
    points = [
        ("A", 1, row("GetUser", 600, 1.0)),
        ("A", 1, row("empty handler", 1000, 1.0)),
        ("B", 1, row("GetUser", 900, 1.0)),
        ("B", 1, row("empty handler", 1000, 1.0)),
    ]
    assert ab._ceiling_shares([32], points) == [
        "- GetUser / empty handler at c=32: A 60%, B 90%",
        "",
    ]
