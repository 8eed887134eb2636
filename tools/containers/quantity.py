"""Kubernetes resource quantities ("500m", "256Mi", "1.5") as numbers docker understands."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|m|k|M|G|T|)")


def parse(quantity: str | float) -> Decimal:
    """The value of a quantity: "500m" -> 0.5, "256Mi" -> 268435456."""
    text = str(quantity).strip()
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"not a Kubernetes quantity this tool understands: {quantity!r}")
    number, suffix = match.groups()
    return Decimal(number) * _SUFFIXES[suffix]


def cpus(quantity: str | float) -> float:
    """CPU cores, for `docker run --cpus`."""
    return float(parse(quantity))


def memory_bytes(quantity: str | float) -> int:
    """Bytes, for `docker run --memory` and a tmpfs size; a fraction of a byte rounds up."""
    value = parse(quantity)
    return int(value.to_integral_value(rounding="ROUND_CEILING"))
