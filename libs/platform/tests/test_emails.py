from __future__ import annotations

import pytest

from libs.platform import emails
from libs.platform.errors import InvalidArgument


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Kim@x.io", "\u212aim@x.io"),  # Kelvin sign
        ("\u00e4lice@x.io", "\u00c4LICE@x.io"),  # non-ASCII case
        ("\u00e4lice@x.io", "a\u0308lice@x.io"),  # composed vs decomposed
        ("kim@x.io", "\uff4b\uff49\uff4d@x.io"),  # full-width letters
        ("kim@x.io", "kim\uff20x\uff0eio"),  # full-width @ and .
        ("strasse@x.io", "stra\u00dfe@x.io"),  # full case folding, not lower()
        ("file@x.io", "\ufb01le@x.io"),  # ligature
        (" ann@x.io ", "ANN@X.IO"),
    ],
)
def test_lookalikes_share_one_canonical_form(a: str, b: str) -> None:
    assert emails.parse(a).canonical == emails.parse(b).canonical


def test_the_typed_address_is_kept() -> None:
    parsed = emails.parse("  \u212aim@X.io ")
    assert parsed.address == "\u212aim@X.io"
    assert parsed.canonical == "kim@x.io"


def test_distinct_addresses_stay_distinct() -> None:
    assert emails.canonical("ann@x.io") != emails.canonical("anne@x.io")
    # Dotted capital I folds to i + combining dot, which is not plain i.
    assert emails.canonical("\u0130@x.io") != emails.canonical("i@x.io")


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x07",
        "\x7f",
        "\u202e",
        "\u202d",
        "\u2067",
        "\u200b",
        "\u200c",
        "\u2060",
        "\ufeff",
        "\u00ad",
        "\U000e0020",
        "\ue000",
        "\U000effff",
    ],
    ids=lambda c: f"U+{ord(c):04X}",
)
def test_invisible_characters_are_refused_naming_the_field(char: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        emails.parse(f"ad{char}min@x.io", "new_email")
    (violation,) = info.value.violations
    assert violation.field == "new_email"
    assert f"U+{ord(char):04X}" in violation.description


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "required"),
        ("   ", "required"),
        ("not-an-email", "not a valid email"),
        ("a@b@c.io", "not a valid email"),
        ("a@b.c\uff20d.io", "not a valid email"),  # a second @, once normalized
        ("a b@c.io", "not a valid email"),
        ("a@b.c" + "x" * 260, "at most 254"),
        # Within 254 as typed, longer once normalized (U+FDFA expands to 18 characters).
        ("\ufdfa" * 20 + "@x.io", "once normalized"),
    ],
)
def test_malformed_addresses(value: str, fragment: str) -> None:
    assert fragment in (emails.problem(value.strip()) or "")
    with pytest.raises(InvalidArgument):
        emails.parse(value)
