"""Redis carries the current index version and tells every replica when it changes.

Key `<prefix>index:version` holds the version every replica should serve; a message on channel
`<prefix>index` (the version as its body) makes each replica load it. A replica that was cut off catches
up when it subscribes again (it reads the key). Redis is an optimisation: when it is down, replicas keep
serving what they have, errors are counted, and the listener reconnects with a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class IndexSync:
    def __init__(self, url: str, prefix: str, metrics: ServiceMetrics, *, timeout_seconds: float = 0.5,
                 max_backoff_seconds: float = 5.0) -> None:
        import redis

        self.url = url
        self.channel = f"{prefix}index"
        self.version_key = f"{prefix}index:version"
        self.metrics = metrics
        self.max_backoff_seconds = max_backoff_seconds
        # blocking client for the key and PUBLISH (called from threads); the listener has its own connection
        self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout_seconds,
                                                 socket_connect_timeout=timeout_seconds)
        self._task: asyncio.Task[None] | None = None
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
        """Record `version` as current and announce it; False (counted, logged) when Redis is down."""
        try:
            self._client.set(self.version_key, version)
            self._client.publish(self.channel, version)
        except Exception as error:
            self._failed(f"publish index version {version}", error)
            return False
        return True

    def _failed(self, what: str, error: Exception) -> None:
        self.metrics.sync_errors.inc()
        log.warning("redis: could not %s (%s: %s)", what, type(error).__name__, error)

    # ---- listener (event loop) --------------------------------------------------------------------
    def start(self, on_version: Callable[[str], Awaitable[None]]) -> None:
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
            client = aioredis.Redis.from_url(self.url)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                backoff = 0.1
                current = await client.get(self.version_key)  # anything published while we were away
                if current is not None:
                    await on_version(current.decode() if isinstance(current, bytes) else str(current))
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        await on_version(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed("listen for index versions", error)
            finally:
                self.subscribed.clear()
                await _close_quietly(pubsub, client)
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, self.max_backoff_seconds)


async def _close_quietly(pubsub: Any, client: Any) -> None:
    for closable in (pubsub, client):
        try:
            await closable.aclose()
        except Exception:  # closing a connection to a dead server may fail; nothing to do about it
            pass
