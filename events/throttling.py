"""The rate limit of event intake.

Intake is authenticated only by the project token, which every browser using the SDK can read, so
anyone can send to it. Requests are counted per client address (behind proxies, set NUM_PROXIES so
the address comes from X-Forwarded-For) before the body is read, so a flood costs a cache lookup
per request, not a decompression and a parse.
"""

import logging

from django.conf import settings
from django.http import HttpRequest
from rest_framework import throttling

logger = logging.getLogger(__name__)


class EventIntakeThrottle(throttling.SimpleRateThrottle):
    scope = "event_intake"

    def get_rate(self) -> str | None:
        return settings.EVENT_INTAKE_RATE or None

    def get_cache_key(self, request: HttpRequest, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: HttpRequest, view: object) -> bool:
        if not settings.RATE_LIMIT_ENABLED:
            return True
        try:
            return super().allow_request(request, view)
        except Exception:
            # The counters are an accelerator's data: without them intake stays open rather than down.
            logger.warning(
                "Event intake rate limit unavailable (cache error); request let through", exc_info=True
            )
            return True


def event_intake_allowed(request: HttpRequest) -> tuple[bool, int | None]:
    """Whether this client may send another intake request now, and if not, in how many seconds."""
    throttle = EventIntakeThrottle()
    if throttle.allow_request(request, None):
        return True, None
    wait = throttle.wait()
    return False, max(1, int(wait)) if wait is not None else None
