"""Redis carries the current index version and tells every replica when it changes.

Key `<prefix>index:version` holds the version every replica should serve; a message on channel
`<prefix>index` (the version as its body) makes each replica load it. A replica that was cut off catches
up when it subscribes again (it reads the key). Redis is an optimisation: when it is down, replicas keep
serving what they have, errors are counted, and the listener reconnects with a backoff.

What makes that hold when Redis is down or the network drops packets:
- a version published while Redis is unreachable is kept and published again as soon as the listener is
  back (before it reads the key), so a reconnect never rolls this replica back to the stale key;
- a version announced before its files reached this replica's disk is retried every `retry_seconds`
  until it loads or a newer one is announced;
- the subscription is checked every `health_check_seconds` (a PING on the subscribed connection must be
  answered, TCP keepalive on, the key read again to catch a lost message); a silent connection is
  dropped and reconnected, and counted in `stickers_index_sync_errors_total`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class IndexSync:
    def __init__(self, url: str, prefix: str, metrics: ServiceMetrics, *, auth: Mapping[str, str] | None = None,
                 timeout_seconds: float = 0.5, max_backoff_seconds: float = 5.0, health_check_seconds: float = 5.0,
                 retry_seconds: float = 1.0) -> None:
        import redis

        self.url = url
        self.auth: dict[str, Any] = dict(auth or {})
        self.channel = f"{prefix}index"
        self.version_key = f"{prefix}index:version"
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.health_check_seconds = health_check_seconds
        self.retry_seconds = retry_seconds
        # blocking client for the key and PUBLISH (called from threads); the listener has its own connection
        self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                                 socket_connect_timeout=timeout_seconds, **self.auth)
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._unpublished: str | None = None  # published here while Redis was down: to publish again
        self._wanted: str | None = None  # announced but not loadable yet: retried
        self.subscribed = asyncio.Event()  # set while the listener is subscribed (tests wait on it)

    # ---- blocking side (threads) ----------------------------------------------------------------------
    def current_version(self) -> str | None:
        """The version Redis says replicas should serve; None when unset or Redis is unreachable."""
        try:
            value = self._client.get(self.version_key)
        except Exception as error:
            self._failed("read the index version", error)
            return None
        return value.decode() if isinstance(value, bytes) else value

    def publish(self, version: str) -> bool:
        """Record `version` as current and announce it; False (counted, logged) when Redis is down, and then
        it is published again when the listener is back."""
        with self._lock:
            self._unpublished = version
        try:
            self._client.set(self.version_key, version)
            self._client.publish(self.channel, version)
        except Exception as error:
            self._failed(f"publish index version {version} (will retry when Redis is back)", error)
            return False
        with self._lock:
            if self._unpublished == version:
                self._unpublished = None
        return True

    def publish_pending(self) -> None:
        """Publish the version `publish` could not; raises if Redis is still down."""
        with self._lock:
            version = self._unpublished
        if version is None:
            return
        self._client.set(self.version_key, version)
        self._client.publish(self.channel, version)
        with self._lock:
            if self._unpublished == version:
                self._unpublished = None
        log.info("redis: published index version %s, kept while Redis was down", version)

    @property
    def unpublished(self) -> str | None:
        return self._unpublished

    def _failed(self, what: str, error: Exception) -> None:
        self.metrics.sync_errors.inc()
        log.warning("redis: could not %s (%s: %s)", what, type(error).__name__, error)

    # ---- listener (event loop) --------------------------------------------------------------------
    def start(self, on_version: Callable[[str], Awaitable[None]]) -> None:
        """Follow announced versions with `on_version`, which raises when a version cannot be loaded (yet)."""
        self._task = asyncio.get_running_loop().create_task(self._listen(on_version), name="index-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._client.close()

    async def _listen(self, on_version: Callable[[str], Awaitable[None]]) -> None:
        import redis.asyncio as aioredis

        backoff = 0.1
        while True:
            _raise_if_cancelling()
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=self.timeout_seconds,
                                             socket_keepalive=True, **self.auth)
            pubsub = client.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self.timeout_seconds * 4)
                # ours first: a version published while Redis was down beats the stale key
                await asyncio.to_thread(self.publish_pending)
                self.subscribed.set()
                backoff = 0.1
                await self._follow_key(client, on_version)  # anything published while we were away
                await self._receive(client, pubsub, on_version)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed("listen for index versions", error)
            finally:
                self.subscribed.clear()
                await _close_quietly(pubsub, client)
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, self.max_backoff_seconds)

    async def _receive(self, client: Any, pubsub: Any, on_version: Callable[[str], Awaitable[None]]) -> None:
        """Messages until the connection fails or goes silent (raises)."""
        loop = asyncio.get_running_loop()
        heard = next_check = loop.time()
        ping_sent: float | None = None
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True,
                                               timeout=min(self.retry_seconds, self.health_check_seconds))
            _raise_if_cancelling()
            now = loop.time()
            if message is not None:
                heard, ping_sent = now, None
                if message.get("type") == "message":
                    await self._follow(_text(message["data"]), on_version)
            if ping_sent is not None and now - ping_sent > self.timeout_seconds + self.retry_seconds:
                raise TimeoutError(f"no answer to PING on the subscription for {now - heard:.1f} s")
            if now >= next_check:
                next_check = now + self.health_check_seconds
                if ping_sent is None:
                    ping_sent = now
                    await asyncio.wait_for(pubsub.ping("stickers-keepalive"), self.timeout_seconds)
                await asyncio.to_thread(self.publish_pending)
                await self._follow_key(client, on_version)
            elif self._wanted is not None:
                await self._follow(self._wanted, on_version)

    async def _follow_key(self, client: Any, on_version: Callable[[str], Awaitable[None]]) -> None:
        current = await asyncio.wait_for(client.get(self.version_key), self.timeout_seconds)
        if current is not None:
            await self._follow(_text(current), on_version)

    async def _follow(self, version: str, on_version: Callable[[str], Awaitable[None]]) -> None:
        """Load `version`; if it fails, keep it as wanted (retried until it loads or another is announced)."""
        try:
            await on_version(version)
        except Exception as error:
            if self._wanted != version:
                log.warning("index %s announced on redis is not loadable yet (%s); retrying every %.1f s",
                            version, error, self.retry_seconds)
            self._wanted = version
            self.metrics.sync_errors.inc()
            return
        self._wanted = None


def _raise_if_cancelling() -> None:
    """Raise CancelledError when this task was asked to stop. A library's read timeout can swallow the
    cancellation: in CPython 3.11, an `asyncio.timeout` that expires as the task is cancelled turns the
    CancelledError into its TimeoutError, redis-py answers "no message", and without this check the
    listener would go on forever while shutdown waits for it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _close_quietly(pubsub: Any, client: Any) -> None:
    for closable in (pubsub, client):
        try:
            await asyncio.wait_for(closable.aclose(), 1.0)  # a dead peer must not hold the reconnect up
        except Exception:  # closing a connection to a dead server may fail; nothing to do about it
            pass
