"""Caches of dialogue encodings (bytes by key, with a TTL): in-process LRU, or Redis shared by replicas.

Both implement `service.recommender.QueryCache`. Redis is an optimisation: any Redis failure is a miss
plus `stickers_cache_errors_total`, never an error for the request; after a failure Redis is left alone
for `cooldown_seconds` so a dead server costs one timeout, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from service.encodings import check_encoding
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class MemoryCache:
    """Thread-safe LRU with a TTL; `max_entries=0` stores nothing."""

    def __init__(self, max_entries: int, ttl_seconds: float, metrics: ServiceMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.metrics = metrics
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self.clock()
        out: list[bytes | None] = []
        with self._lock:
            for key in keys:
                item = self._items.get(key)
                if item is not None and item[0] <= now:
                    del self._items[key]
                    item = None
                if item is not None:
                    self._items.move_to_end(key)
                out.append(item[1] if item is not None else None)
        hits = sum(v is not None for v in out)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(out) - hits)
        return out

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if self.max_entries <= 0:
            return
        expires = self.clock() + self.ttl_seconds
        with self._lock:
            for key, value in items.items():
                self._items[key] = (expires, value)
                self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class RedisCache:
    """Redis GET/SET EX under `<prefix>query:<key>`; fails open."""

    def __init__(self, client: Any, prefix: str, ttl_seconds: int, metrics: ServiceMetrics,
                 cooldown_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client  # a synchronous redis.Redis: calls run in the model worker thread
        self.prefix = f"{prefix}query:"
        self.ttl_seconds = ttl_seconds
        self.metrics = metrics
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self._down_until = 0.0

    def _available(self) -> bool:
        return self.clock() >= self._down_until

    def _failed(self, operation: str, error: Exception) -> None:
        self.metrics.cache_errors.inc()
        if self._available():
            log.warning("redis %s failed (%s: %s); answering without the cache for %.1f s",
                        operation, type(error).__name__, error, self.cooldown_seconds)
        self._down_until = self.clock() + self.cooldown_seconds

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        out: list[bytes | None] = [None] * len(keys)
        if keys and self._available():
            try:
                out = list(self.client.mget([self.prefix + k for k in keys]))
            except Exception as error:  # any client or connection error: a miss, counted
                self._failed("get", error)
        hits = sum(v is not None for v in out)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(out) - hits)
        return out

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items or not self._available():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(self.prefix + key, value, ex=self.ttl_seconds)
            pipe.execute()
        except Exception as error:
            self._failed("set", error)


class QueryCacheLike(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def put_many(self, items: Mapping[str, bytes]) -> None: ...


class CheckedCache:
    """A cache whose values are checked against the model's encoding layout before use (`check_encoding`).

    A shared store can hold anything: a value of another model, a damaged one, or one written by whoever
    reached Redis. One that fails the checks is a miss (so it is recomputed and overwritten) and counts in
    `stickers_cache_invalid_total`; it never reaches the model, so it can neither fail the batch nor choose
    the hits with a wrong shape.
    """

    def __init__(self, inner: QueryCacheLike, layout: Mapping[str, int], metrics: ServiceMetrics) -> None:
        self.inner = inner
        self.layout = dict(layout)
        self.metrics = metrics

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        out = self.inner.get_many(keys)
        for i, value in enumerate(out):
            if value is None:
                continue
            try:
                check_encoding(value, self.layout)
            except ValueError as error:
                self.metrics.cache_invalid.inc()
                log.warning("cached dialogue encoding refused (%s); recomputing it", error)
                out[i] = None
        return out

    def put_many(self, items: Mapping[str, bytes]) -> None:
        self.inner.put_many(items)


def connect_redis(url: str, timeout_seconds: float, auth: Mapping[str, str] | None = None) -> Any:
    """A synchronous client with short timeouts; connecting happens lazily, on first use.

    `url` may carry credentials (redis://user:password@host) and TLS (rediss://); `auth` (username,
    password) given apart from it wins, so a password can come from a secret instead of the URL.
    """
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
                                health_check_interval=0, **dict(auth or {}))
