"""Encoding caches: LRU + TTL in memory; Redis shared and failing open."""

from __future__ import annotations

from collections.abc import Callable

from service_helpers import REDIS_URL, needs_redis

from service.cache import MemoryCache, RedisCache, connect_redis
from service.metrics import ServiceMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_cache_expires_and_evicts_least_recently_used() -> None:
    clock, metrics = Clock(), ServiceMetrics()
    cache = MemoryCache(2, ttl_seconds=10, metrics=metrics, clock=clock)
    cache.put_many({"a": b"1", "b": b"2"})
    assert cache.get_many(["a"]) == [b"1"]  # a is now the most recent
    cache.put_many({"c": b"3"})
    assert cache.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    clock.now = 10.0
    assert cache.get_many(["a", "c"]) == [None, None]
    assert len(cache) == 0
    assert metrics.registry.get_sample_value("stickers_cache_hits_total") == 3
    assert metrics.registry.get_sample_value("stickers_cache_misses_total") == 3


@needs_redis
def test_redis_cache_shares_values_with_a_ttl(free_port: Callable[[], int]) -> None:
    metrics = ServiceMetrics()
    prefix = f"test-{free_port()}:"
    a = RedisCache(connect_redis(REDIS_URL, 0.5), prefix, 60, metrics)
    b = RedisCache(connect_redis(REDIS_URL, 0.5), prefix, 60, metrics)
    a.put_many({"k": b"value"})
    assert b.get_many(["k", "missing"]) == [b"value", None]
    assert 0 < a.client.ttl(f"{prefix}query:k") <= 60
    a.client.delete(f"{prefix}query:k")


def test_redis_cache_fails_open_and_counts(free_port: Callable[[], int]) -> None:
    clock, metrics = Clock(), ServiceMetrics()
    dead = RedisCache(connect_redis(f"redis://127.0.0.1:{free_port()}/0", 0.2), "x:", 60, metrics,
                      cooldown_seconds=1.0, clock=clock)
    assert dead.get_many(["a", "b"]) == [None, None]
    dead.put_many({"a": b"1"})  # within the cooldown: not even tried
    assert metrics.registry.get_sample_value("stickers_cache_errors_total") == 1
    clock.now = 2.0
    dead.put_many({"a": b"1"})
    assert metrics.registry.get_sample_value("stickers_cache_errors_total") == 2
    assert metrics.registry.get_sample_value("stickers_cache_misses_total") == 2


def test_memory_cache_of_size_zero_stores_nothing() -> None:
    cache = MemoryCache(0, 10, ServiceMetrics())
    cache.put_many({"a": b"1"})
    assert cache.get_many(["a"]) == [None]
