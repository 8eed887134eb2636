"""Email addresses: the one policy for what is accepted and when two addresses are the same.

Every place that compares emails uses `canonical()` (through `parse()`): uniqueness in
users_db (a unique index on the stored canonical form), the login lookup, and authsvc's
login throttling keys. Before that, each place had its own idea (Python's `lower()` in the
throttle, PostgreSQL's `lower()` under the C locale in the database), and an attacker could
register `Kim@x.io` spelled with the Kelvin sign as a second account that shared the
victim's throttle entry.

The canonical form follows the standards for each half of the address, split at its one `@`:

* The local part is enforced with the PRECIS UsernameCaseMapped profile (RFC 8265, on
  RFC 8264's IdentifierClass; the precis-i18n library): full-width and half-width forms
  become their ordinary characters, letters are lower-cased (Unicode toLowerCase, which
  still takes the Kelvin sign to `k`) and the result is NFC, so `ÄLICE`, `älice` composed
  or decomposed, and `ｋｉｍ` are one address each. There is no case folding and no NFKC:
  those merged different mailboxes (`straße` and `strasse`, `ς` and `σ` are different
  strings to every mail server). Characters NFKC would have turned into other letters
  (`²`, the `ﬁ` ligature, `™`), symbols (U+2800, a blank-looking braille pattern), spaces
  and invisible (default-ignorable) code points are refused instead of folded: `a²@x.io`
  can be neither merged with `a2@x.io` nor registered as a second, identical-looking one.
* The domain is processed by UTS 46 (IDNA2008 with its compatibility mapping, the idna
  library, STD3 rules: letters, digits and hyphens) and kept as its A-label: `münchen.de`,
  `MÜNCHEN.DE` and `xn--mnchen-3ya.de` are one host and so one mailbox. The A-label is the
  canonical form because it is the one every spelling maps to (a U-label can still need
  mapping, an A-label cannot), it is what DNS and mail servers without SMTPUTF8 use, and
  it is ASCII, so the database compares it exactly under any collation. UTS 46 is
  non-transitional, as IDNA2008 wants: `straße.de` is not `strasse.de`. Its mappings of
  compatibility characters (`x².io` is `x2.io`) are kept, since resolvers apply them too:
  in a domain those are one name.

Refused anywhere in an address, before those rules: control characters (Cc), format
characters (Cf: bidi overrides and embeddings such as U+202E, zero-width spaces and
joiners, the soft hyphen, BOM), surrogates (Cs), private use (Co), unassigned code points
(Cn), and default-ignorable code points, which render as nothing (the combining grapheme
joiner U+034F, variation selectors such as U+FE0F, the Hangul filler U+3164). UTS 46 would
drop some of those from a domain silently; refusing them keeps the stored address equal to
what a person sees. Refusing unassigned code points also keeps canonical forms stable:
normalization and case mapping of assigned characters never change between Unicode
versions, so a stored canonical form stays right when the tables grow.

What is stored and shown is the address as typed, trimmed and width-mapped (a full-width
`＠` or `ｋ` becomes `@` or `k`, everything else stays as typed): the address the rules
judged, without full-width forms that only look like an address.

Different strings that look the same (Cyrillic `а` in `аdmin@x.io`) stay different here:
usersvc refuses a sign-up or email change whose UTS 39 skeleton matches an existing
account's (services/usersvc/lookalikes.py; it needs ICU, which no other service carries).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import idna
import precis_i18n

from libs.platform.errors import InvalidArgument

MAX_LENGTH = 254
# Deliberately loose: deliverability is proven by sending mail, not by a regex. Checked
# after width mapping, so a full-width `＠` counts as the one `@` (or as a second one).
_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")
# Unicode general categories refused anywhere in an address (see the module docstring).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_LOCAL = precis_i18n.get_profile("UsernameCaseMapped")
INVALID = "is not a valid email address"


@dataclass(frozen=True)
class Email:
    address: str  # trimmed and width-mapped: what is stored and shown
    canonical: str  # what uniqueness, login and throttling compare

    @property
    def canonical_unicode(self) -> str:
        """The canonical form with its domain as U-labels (`a@münchen.de`).

        For look-alike checks: a Cyrillic letter in a domain shows in its U-label, while
        its A-label (`xn--...`) looks like nothing in particular.
        """
        local, domain = self.canonical.rsplit("@", 1)
        return f"{local}@{idna.decode(domain)}"


class _Refused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def width_mapped(address: str) -> str:
    """Full-width and half-width characters as their ordinary forms (PRECIS width mapping)."""
    return _LOCAL.width_mapping_rule(address)


def _code_point(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _local_part(local: str) -> str:
    try:
        return _LOCAL.enforce(local)
    except UnicodeEncodeError as exc:
        # precis-i18n names the rule (DISALLOWED/<rule>) and where, in the mapped string.
        rule = exc.reason.rpartition("/")[2]
        found = exc.object[exc.start] if 0 <= exc.start < len(exc.object) else ""
        if rule == "bidi_rule":
            reason = (
                "must not mix right-to-left and left-to-right text before the @ in a way "
                "that displays ambiguously"
            )
        elif not found:
            reason = INVALID
        elif rule == "has_compat":
            reason = (
                f"must not contain {_code_point(found)} before the @: it is a compatibility "
                "form (a ligature, superscript, symbol or similar); type the plain characters"
            )
        else:
            reason = (
                f"must not contain {_code_point(found)} before the @: only letters, digits "
                "and printable ASCII symbols are allowed there"
            )
        raise _Refused(reason) from None


def _domain(domain: str) -> str:
    try:
        ascii_form = idna.encode(domain, uts46=True, std3_rules=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and the codecs' own errors
        code_point = getattr(exc, "codepoint", None)
        # Only a character the person typed is worth naming: one decoded from a broken
        # `xn--` label is not.
        if isinstance(code_point, int) and chr(code_point) in domain:
            raise _Refused(
                f"must not contain U+{code_point:04X} in the domain (after the @): a domain "
                "has letters, digits and hyphens"
            ) from None
        raise _Refused(f"{INVALID}: the part after the @ is not a valid domain name") from None
    # A mail domain has at least two labels and no root dot (as before: `localhost` and
    # `x.io.` are refused).
    if "." not in ascii_form or ascii_form.endswith("."):
        raise _Refused(INVALID)
    return ascii_form


def _standard_form(address: str) -> str:
    """The canonical form of a trimmed address with no refused character, or _Refused."""
    mapped = width_mapped(address)
    if not _SHAPE.match(mapped):
        raise _Refused(INVALID)
    local, domain = mapped.split("@")
    return f"{_local_part(local)}@{_domain(domain)}"


def legacy_canonical(address: str) -> str:
    """NFKC_Casefold, the canonical form before the standards-based one.

    Kept for addresses stored before it that its rules refuse (`ﬁle@x.io`): such rows
    keep this form (migration 0004), and canonical() falls back to it for them.
    """
    nfkc = unicodedata.normalize("NFKC", address.strip())
    return unicodedata.normalize("NFKC", nfkc.casefold())


def canonical(address: str) -> str:
    """The canonical form of an address (validation: see parse()).

    Never fails: for an address the policy refuses, which can only be one stored before it,
    the legacy form, which is what such a row keeps as its canonical form. authsvc relies
    on that: it derives the throttle key of the account a login proved from the stored
    address.
    """
    folded, _ = _judge(address.strip())
    return folded if folded is not None else legacy_canonical(address)


def refused_character(address: str) -> str | None:
    """The first character refused anywhere (see the module docstring), as 'U+XXXX', or None."""
    ucd = _LOCAL.base.ucd
    for ch in address:
        if unicodedata.category(ch) in REFUSED_CATEGORIES or ucd.default_ignorable(ord(ch)):
            return _code_point(ch)
    return None


def _judge(address: str) -> tuple[str, None] | tuple[None, str]:
    """(canonical form, None) for an acceptable trimmed address, else (None, the reason)."""
    if not address:
        return None, "is required"
    if len(address) > MAX_LENGTH:
        return None, f"must be at most {MAX_LENGTH} characters"
    bad = refused_character(address)
    if bad is not None:
        return None, (
            f"must not contain control, invisible, bidirectional-formatting or unassigned "
            f"characters (found {bad})"
        )
    try:
        folded = _standard_form(address)
    except _Refused as exc:
        return None, exc.reason
    if len(folded) > MAX_LENGTH:
        return None, f"must be at most {MAX_LENGTH} characters once normalized"
    return folded, None


def problem(address: str) -> str | None:
    """Why `address` (already trimmed) is not acceptable, or None when it is."""
    return _judge(address)[1]


def parse(value: str, field: str = "email") -> Email:
    """Validate an address from a request; InvalidArgument naming `field` if it is refused."""
    address = value.strip()
    folded, reason = _judge(address)
    if folded is None:
        raise InvalidArgument.field(field, reason or INVALID)
    return Email(width_mapped(address), folded)
