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
        ("kim@x.io", "kim@x\u3002io"),  # ideographic full stop between domain labels
        (" ann@x.io ", "ANN@X.IO"),
        ("a@m\u00fcnchen.de", "a@xn--mnchen-3ya.de"),  # U-label and its A-label
        ("a@m\u00fcnchen.de", "A@M\u00dcNCHEN.DE"),
        ("a@m\u00fcnchen.de", "a@XN--MNCHEN-3YA.DE"),
    ],
)
def test_spellings_of_one_address_share_one_canonical_form(a: str, b: str) -> None:
    assert emails.parse(a).canonical == emails.parse(b).canonical


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("stra\u00dfe@x.io", "strasse@x.io"),
        ("STRASSE@x.io", "stra\u00dfe@x.io"),
        ("a@stra\u00dfe.de", "a@strasse.de"),  # IDNA2008 keeps \u00df in domains too
        ("\u03c2@x.io", "\u03c3@x.io"),  # final and medial sigma
        ("a@\u03c2.gr", "a@\u03c3.gr"),
    ],
)
def test_different_mailboxes_stay_different(a: str, b: str) -> None:
    """NFKC + casefold merged these: two mailboxes, one account."""
    assert emails.parse(a).canonical != emails.parse(b).canonical


def test_domain_is_kept_as_its_a_label() -> None:
    parsed = emails.parse("Ann@M\u00fcnchen.DE")
    assert parsed.address == "Ann@M\u00fcnchen.DE"
    assert parsed.canonical == "ann@xn--mnchen-3ya.de"
    assert parsed.canonical_unicode == "ann@m\u00fcnchen.de"


@pytest.mark.parametrize(
    ("value", "code_point"),
    [
        ("a\u00b2@x.io", "U+00B2"),  # superscript two (NFKC: 2)
        ("\ufb01le@x.io", "U+FB01"),  # ligature (NFKC: fi)
        ("\u2122@x.io", "U+2122"),  # trade mark sign (NFKC: TM)
        ("\ufdfa@x.io", "U+FDFA"),  # one ligature, 18 characters under NFKC
    ],
)
def test_compatibility_characters_are_refused_not_merged(value: str, code_point: str) -> None:
    """NFKC turned them into other letters, merging `a\u00b2@` with `a2@`."""
    with pytest.raises(InvalidArgument) as info:
        emails.parse(value)
    (violation,) = info.value.violations
    assert violation.description.startswith(f"must not contain {code_point} before the @")
    assert "plain characters" in violation.description


@pytest.mark.parametrize(
    "char",
    ["\u034f", "\ufe0f", "\u3164", "\u2800"],
    ids=["U+034F", "U+FE0F", "U+3164", "U+2800"],
)
@pytest.mark.parametrize("where", ["ad{}min@x.io", "admin@pay{}pal.com"])
def test_invisible_marks_are_refused_in_both_parts(char: str, where: str) -> None:
    """A combining grapheme joiner, a variation selector, the Hangul filler and the blank
    braille pattern render as nothing: each made a second `admin@x.io` that looks the same."""
    with pytest.raises(InvalidArgument) as info:
        emails.parse(where.format(char))
    (violation,) = info.value.violations
    assert violation.description.startswith("must not contain")
    assert f"U+{ord(char):04X}" in violation.description


def test_full_width_at_is_stored_width_mapped() -> None:
    parsed = emails.parse("\uff4b\uff49\uff4d\uff20x\uff0eio")
    assert parsed.address == "kim@x.io"
    assert parsed.canonical == "kim@x.io"
    # Width mapping only: case and everything else stay as typed.
    assert emails.parse("Kim\uff20X.io").address == "Kim@X.io"


def test_canonical_of_a_stored_address_the_rules_refuse_is_the_legacy_form() -> None:
    # Such rows keep that form (migration 0004); authsvc derives throttle keys from it.
    assert emails.canonical("\ufb01le@x.io") == "file@x.io"
    assert emails.canonical(" \u212aim@X.io ") == "kim@x.io"
    assert emails.canonical("a@m\u00fcnchen.de") == "a@xn--mnchen-3ya.de"


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
        "\u034f",
        "\ufe0f",
        "\u3164",
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
        # Within 254 as typed, longer once normalized (lower-case U+0130 is 2 characters).
        ("\u0130" * 200 + "@x.io", "once normalized"),
        ("a@localhost", "not a valid email"),
        ("a@x.io.", "not a valid email"),
        ("a@-x.io", "not a valid domain name"),
        ("a@xn--abc.de", "not a valid domain name"),  # not Punycode of anything
        ("a@x_y.io", "U+005F in the domain"),
        ("a@[192.0.2.1]", "U+005B in the domain"),
    ],
)
def test_malformed_addresses(value: str, fragment: str) -> None:
    assert fragment in (emails.problem(value.strip()) or "")
    with pytest.raises(InvalidArgument):
        emails.parse(value)
