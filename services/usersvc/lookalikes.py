"""Look-alike email addresses: UTS 39 skeletons, computed by ICU.

Two addresses whose canonical forms differ (libs/platform/emails.py) are still two
accounts. When they look the same (`admin@x.io` and `аdmin@x.io` with a Cyrillic `а`,
`bob@x.io` and `bσb@x.io`), the second is what a phisher registers, so usersvc refuses a
sign-up or email change whose skeleton matches an existing account's, with the answer an
existing address gets. UTS 39's skeleton maps each character to the prototype of its
confusable set (confusables.txt) between two NFDs; two strings are confusable when their
skeletons are equal.

It also maps letters within one script that look alike (`rn` and `m`, `1` and `l`), so
`kim@x.io` and `kirn@x.io` are one skeleton: the second is refused. That is the standard's
intent (`rnicrosoft` is a classic), and the price is that a rare honest pair cannot both
sign up at one domain.

ICU's SpoofChecker is the reference implementation, with the Unicode Consortium's data
(ICU 77: Unicode 16, the version of the build's Python). PyICU publishes no wheels, so
the dependency is pyicu-wheels, its build with ICU inside. The obvious pure-Python
candidate, confusable-homoglyphs (3.3.1), only lists the characters each character may
be confused with and tests one string for mixed scripts: it computes no skeleton, so it
cannot say whether two whole addresses look alike, and approximating one from its tables
would be a home-made algorithm over someone else's data.

Skeletons are stored (users.email_skeleton) and only compared, never shown. A newer ICU
can map a few characters differently; the lock file pins it, and adopting a new one means
recomputing the column, as migration 0004 computed it.
"""

from __future__ import annotations

import icu

from libs.platform import emails
from libs.platform.errors import InvalidArgument

# Immutable once made; ICU's skeleton computation only reads it.
_CHECKER = icu.SpoofChecker()


def skeleton(text: str) -> str:
    # The first argument, a type, is ignored since ICU 58 (one skeleton for all cases).
    return str(_CHECKER.getSkeleton(0, text))


def of(email: emails.Email) -> str:
    """The skeleton of an address accepted by emails.parse().

    Of its canonical form (lower case already, so only shapes are left to compare) with
    the domain as U-labels, where a look-alike letter in a domain is visible.
    """
    return skeleton(email.canonical_unicode)


def of_stored(address: str) -> str:
    """The skeleton of an address as stored, which may predate the current rules.

    One the rules refuse (stored before them) is judged by its legacy canonical form, the
    form its row keeps (migration 0004).
    """
    try:
        return of(emails.parse(address))
    except InvalidArgument:
        return skeleton(emails.legacy_canonical(address))
