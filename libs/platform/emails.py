"""Email addresses: the one policy for what is accepted and when two addresses are the same.

Every place that compares emails uses `canonical()` (through `parse()`): uniqueness in
users_db (a unique index on the stored canonical form), the login lookup, and authsvc's
login throttling keys. Before this, each place had its own idea (Python's `lower()` in the
throttle, PostgreSQL's `lower()` under the C locale, A-Z only, in the database), and an
attacker could register `Kim@x.io` spelled with the Kelvin sign as a second account that
shared the victim's throttle entry.

The canonical form is Unicode NFKC_Casefold, computed as NFKC(casefold(NFKC(s))): NFKC
folds compatibility look-alikes (full-width letters, the Kelvin sign, ligatures) and
composes decomposed characters; casefold is full Unicode caseless matching (so `ß` and `ss`
are the same address, stricter than `lower()`); the final NFKC undoes what casefold can
decompose. The address as typed (trimmed) is what is stored and shown.

Stricter than NFKC_Casefold alone, `parse()` refuses characters no one types into an email
address on purpose and that make two addresses look alike or reorder what is shown:
control characters (Cc), format characters (Cf: bidi overrides and embeddings such as
U+202E, zero-width spaces and joiners, the soft hyphen, BOM), surrogates (Cs), private-use
(Co) and unassigned code points (Cn). Refusing unassigned code points also keeps canonical
forms stable: Unicode promises that normalization and case folding of assigned characters
never change, so a stored canonical form stays right when Python's Unicode tables grow.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from libs.platform.errors import InvalidArgument

MAX_LENGTH = 254
# Deliberately loose: deliverability is proven by sending mail, not by a regex. Checked on
# the canonical form, the one that is compared: NFKC turns a full-width `＠` into `@`.
_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# Unicode general categories refused anywhere in an address (see the module docstring).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass(frozen=True)
class Email:
    address: str  # as given, trimmed: what is stored and shown
    canonical: str  # what uniqueness, login and throttling compare


def canonical(address: str) -> str:
    """NFKC_Casefold of the trimmed address (no validation: see parse())."""
    nfkc = unicodedata.normalize("NFKC", address.strip())
    return unicodedata.normalize("NFKC", nfkc.casefold())


def refused_character(address: str) -> str | None:
    """The first character the policy refuses, as 'U+XXXX', or None."""
    for ch in address:
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def problem(address: str) -> str | None:
    """Why `address` (already trimmed) is not acceptable, or None when it is."""
    if not address:
        return "is required"
    if len(address) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    bad = refused_character(address)
    if bad is not None:
        return (
            f"must not contain control, invisible, bidirectional-formatting or unassigned "
            f"characters (found {bad})"
        )
    folded = canonical(address)
    if len(folded) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters once normalized"
    if not _SHAPE.match(folded):
        return "is not a valid email address"
    return None


def parse(value: str, field: str = "email") -> Email:
    """Validate an address from a request; InvalidArgument naming `field` if it is refused."""
    address = value.strip()
    reason = problem(address)
    if reason is not None:
        raise InvalidArgument.field(field, reason)
    return Email(address, canonical(address))
