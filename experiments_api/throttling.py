"""Per-key rate limits (PostHog's burst and sustained throttles).

Only requests authenticated with a personal API key are throttled, keyed by the key itself, so one
noisy integration cannot starve another. Rates are read from settings on each request so they can
be changed by environment (and in tests) without re-importing anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework import throttling
from rest_framework.request import Request

from accounts.models import PersonalAPIKey

if TYPE_CHECKING:
    from rest_framework.views import APIView


class PersonalAPIKeyThrottle(throttling.SimpleRateThrottle):
    rate_setting: str

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not settings.RATE_LIMIT_ENABLED or not isinstance(request.auth, PersonalAPIKey):
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class PersonalAPIKeyBurstThrottle(PersonalAPIKeyThrottle):
    scope = "burst"
    rate_setting = "THROTTLE_BURST_RATE"


class PersonalAPIKeySustainedThrottle(PersonalAPIKeyThrottle):
    scope = "sustained"
    rate_setting = "THROTTLE_SUSTAINED_RATE"
