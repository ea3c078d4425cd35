"""Redis as an accelerator, never a single point of failure.

`FailoverRedisCache` is Django's Redis cache whose every operation falls back to a cache in the
process's own memory while Redis errors: throttle counters become per process and the flag
definitions body is rebuilt per process, but every request is still answered. After a failure the
process leaves Redis alone for `REDIS_RETRY_SECONDS` (so an outage costs one short timeout per
process per interval, not one per request), then tries again; each switch is logged as a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0
FALLBACK_OPERATIONS = (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
)


class FailoverRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._fallback = LocMemCache(f"redis-fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._redis_skipped_until = 0.0

    @property
    def degraded(self) -> bool:
        """True while this process answers from its own memory because Redis failed."""
        return time.monotonic() < self._redis_skipped_until

    def redis_reachable(self) -> bool:
        """One PING (bounded by the connection timeouts); a failure starts the fallback window."""
        try:
            self._cache.get_client(write=True).ping()
        except RedisError as error:
            self._redis_failed(error)
            return False
        self._redis_recovered()
        return True

    def _redis_failed(self, error: Exception) -> None:
        if not self.degraded:
            logger.warning(
                "Redis cache unavailable (%s): answering from this process's memory, retrying in %.0f s",
                error,
                REDIS_RETRY_SECONDS,
            )
        self._redis_skipped_until = time.monotonic() + REDIS_RETRY_SECONDS

    def _redis_recovered(self) -> None:
        if self._redis_skipped_until:
            logger.warning("Redis cache reachable again")
            self._redis_skipped_until = 0.0


def _failing_over(name: str) -> Callable[..., Any]:
    through_redis = getattr(RedisCache, name)

    def operation(self: FailoverRedisCache, *args: Any, **kwargs: Any) -> Any:
        if not self.degraded:
            try:
                result = through_redis(self, *args, **kwargs)
            except RedisError as error:
                self._redis_failed(error)
            else:
                self._redis_recovered()
                return result
        return getattr(self._fallback, name)(*args, **kwargs)

    operation.__name__ = name
    operation.__doc__ = through_redis.__doc__
    return operation


for _name in FALLBACK_OPERATIONS:
    setattr(FailoverRedisCache, _name, _failing_over(_name))
