from __future__ import annotations

import pytest

from tools.containers import quantity


@pytest.mark.parametrize(
    ("text", "cpus"), [("500m", 0.5), ("1", 1.0), ("1.5", 1.5), ("250m", 0.25), (2, 2.0)]
)
def test_cpus(text: str, cpus: float) -> None:
    assert quantity.cpus(text) == cpus


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256Mi", 256 * 2**20),
        ("64Mi", 64 * 2**20),
        ("1Gi", 2**30),
        ("128M", 128 * 10**6),
        ("1k", 1000),
    ],
)
def test_memory(text: str, size: int) -> None:
    assert quantity.memory_bytes(text) == size


@pytest.mark.parametrize("bad", ["", "1Xi", "Mi", "1e3", "-1"])
def test_refuses_what_it_does_not_understand(bad: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        quantity.parse(bad)
