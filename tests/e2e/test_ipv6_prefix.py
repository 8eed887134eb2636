"""IPv6 callers are limited per /64, the block one subscriber holds: a second address of the
same /64 meets the first one's spent limits, an address of another /64 does not. Run in a
network namespace of the test's own (netns.py), against a real usersvc and PostgreSQL."""

from __future__ import annotations

import pytest

from . import netns

EXHAUSTED = "RESOURCE_EXHAUSTED"


def test_signup_and_health_limits_hold_a_whole_64() -> None:
    why_not = netns.why_not()
    if why_not is not None:
        pytest.skip(why_not)
    seen = netns.outcomes_from_ipv6_callers()
    print(seen)
    assert seen["signup first"] == ["OK"] * netns.SIGNUP_BURST + [EXHAUSTED]
    assert seen["signup same /64"] == [EXHAUSTED]
    assert seen["signup other /64"] == ["OK"]
    assert seen["health first"] == ["OK"] * netns.HEALTH_BURST + [EXHAUSTED]
    assert seen["health same /64"] == [EXHAUSTED]
    assert seen["health other /64"] == ["OK"]
