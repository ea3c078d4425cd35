"""Per-key rate limits (PostHog's burst and sustained throttles).

Only requests authenticated with a personal API key are throttled, keyed by the key itself, so one
noisy integration cannot starve another. Rates are read from settings on each request so they can
be changed by environment (and in tests) without re-importing anything.

Each limit is a sliding-window counter in the cache: one counter per key and period-long window,
incremented per request, and the request is allowed while this window's count plus the previous
window's count weighted by how much of it still overlaps the last period stays within the limit.
That is two small cache operations per request, instead of DRF's list of timestamps, which grows to
the limit (4 800 for the sustained rate) and is rewritten whole on every request. The weighting
assumes the previous window's requests were spread evenly, so the limit is approximate within a
period, but there is no burst of twice the limit at a window's edge. As with DRF, a refused request
is not counted.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from rest_framework import throttling
from rest_framework.request import Request

from accounts.models import PersonalAPIKey

if TYPE_CHECKING:
    from rest_framework.views import APIView


PERIOD_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}


def parse_rate(rate: str) -> tuple[int, int]:
    """`"480/minute"` → (480, 60), read as DRF reads rates (the period's first letter counts)."""
    count, _, period = rate.partition("/")
    return int(count), PERIOD_SECONDS[period.strip()[0]]


class PersonalAPIKeyThrottle(throttling.BaseThrottle):
    scope: str
    rate_setting: str
    wait_seconds: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not settings.RATE_LIMIT_ENABLED or not isinstance(request.auth, PersonalAPIKey):
            return True
        limit, period = parse_rate(getattr(settings, self.rate_setting))
        now = time.time()
        window, into_window = divmod(now, period)
        key = f"throttle:{self.scope}:{request.auth.pk}:{period}:"
        current = _count_request(f"{key}{int(window)}", timeout=2 * period + 1)
        previous = cache.get(f"{key}{int(window) - 1}") or 0
        if current + previous * (1 - into_window / period) <= limit:
            return True
        with contextlib.suppress(ValueError):  # the counter expired meanwhile: nothing to take back
            cache.decr(f"{key}{int(window)}")
        self.wait_seconds = period - into_window
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


def _count_request(key: str, *, timeout: int) -> int:
    """Add one to the window's counter, creating it (with its expiry) on the window's first request."""
    try:
        return cache.incr(key)
    except ValueError:
        if cache.add(key, 1, timeout):
            return 1
        return cache.incr(key)


class PersonalAPIKeyBurstThrottle(PersonalAPIKeyThrottle):
    scope = "burst"
    rate_setting = "THROTTLE_BURST_RATE"


class PersonalAPIKeySustainedThrottle(PersonalAPIKeyThrottle):
    scope = "sustained"
    rate_setting = "THROTTLE_SUSTAINED_RATE"
