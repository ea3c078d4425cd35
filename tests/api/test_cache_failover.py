"""The Redis cache falls back to the process's memory while Redis fails, and says so in the log."""

import logging
import socket
import time

import pytest

from experiments_api.cache import FailoverRedisCache


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unreachable_redis() -> FailoverRedisCache:
    return FailoverRedisCache(
        f"redis://127.0.0.1:{closed_port()}/0",
        {"OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}},
    )


def test_every_operation_answers_from_memory_with_one_warning(unreachable_redis, caplog):
    with caplog.at_level(logging.WARNING, logger="experiments_api.cache"):
        assert unreachable_redis.get("missing") is None
        unreachable_redis.set("body", b"definitions", 60)
        assert unreachable_redis.get("body") == b"definitions"
        assert unreachable_redis.add("counter", 1, 60) is True
        assert unreachable_redis.incr("counter") == 2
        assert unreachable_redis.degraded is True
        assert unreachable_redis.redis_reachable() is False

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis cache unavailable" in warnings[0].getMessage()


def test_redis_is_left_alone_until_the_retry_interval_passes(unreachable_redis, monkeypatch):
    unreachable_redis.set("key", "value", 60)
    attempts = []
    connect = unreachable_redis._cache.get_client
    monkeypatch.setattr(
        unreachable_redis._cache,
        "get_client",
        lambda *args, **kwargs: attempts.append(1) or connect(*args, **kwargs),
    )
    assert unreachable_redis.get("key") == "value"
    assert attempts == []

    unreachable_redis._redis_skipped_until = time.monotonic() - 1
    assert unreachable_redis.get("key") == "value"
    assert attempts == [1]
    assert unreachable_redis.degraded is True
