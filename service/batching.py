"""Micro-batching with load shedding: concurrent requests share one model call, in one worker thread.

`submit` puts a request on a bounded queue (full: `Overloaded` at once, a 429 with Retry-After) and awaits
its result. One asyncio task takes what is queued, up to `max_batch`, and runs `process(batch)` in a
single-thread executor, never on the event loop. It waits up to `wait_seconds` for a batch to grow only
when the previous batch held more than one request: under load that gathers bigger batches, and a lone
client (concurrency 1) never pays the wait. A batch that raises is retried one request at a time, so one
bad request fails alone.

Bounded in time as well as in size: a request still queued after `queue_timeout_seconds` is answered 429
instead of computed, and one whose caller gave up (its future cancelled, e.g. the client disconnected) is
dropped; both count in `stickers_abandoned_total`. If the worker task itself dies, the requests of its batch
fail with a 500 and it is restarted (`stickers_worker_restarts_total`); `alive` says whether one is running.
`stop` lets the batch in the thread finish and deliver its results, then fails what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.errors import NotReady, Overloaded
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    deadline: float  # time.monotonic() after which it is not worth computing


class MicroBatcher(Generic[T, R]):
    def __init__(self, process: Callable[[Sequence[T]], list[R]], *, max_batch: int, wait_seconds: float,
                 queue_size: int, retry_after_seconds: int, metrics: ServiceMetrics,
                 queue_timeout_seconds: float = 5.0, max_restarts: int = 100) -> None:
        self.process = process
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.queue_timeout_seconds = queue_timeout_seconds
        self.max_restarts = max_restarts
        self.metrics = metrics
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        self._in_thread: asyncio.Future[list[R | Exception]] | None = None  # the batch being computed
        self._stopping = False
        self._delivered = asyncio.Event()
        self._restarts = 0
        self._last_size = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")
        self._task.add_done_callback(self._on_worker_done)

    @property
    def alive(self) -> bool:
        """Whether the worker is running (readiness: a replica whose worker is gone cannot answer)."""
        return self._task is not None and not self._task.done() and not self._stopping

    def _on_worker_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task is not self._task:
            return
        error = None if task.cancelled() else task.exception()
        log.error("the model worker died (%r)", error)
        if self._restarts >= self.max_restarts:
            log.error("the model worker died %d times; not restarting it (/readyz says 503)", self._restarts)
            return
        self._restarts += 1
        self.metrics.worker_restarts.inc()
        self.start()

    async def stop(self) -> None:
        """Stop taking batches, let the batch in the thread finish and deliver its results, then fail what
        is still queued (503) and shut the thread down."""
        self._stopping = True
        if self._in_thread is not None and self._task is not None and not self._task.done():
            self._delivered.clear()
            # the worker sets it once the batch's results are handed out (or it dies: then it is done)
            delivered = asyncio.ensure_future(self._delivered.wait())
            await asyncio.wait({delivered, self._task}, return_when=asyncio.FIRST_COMPLETED)
            delivered.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(NotReady("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        if not self.alive:
            raise NotReady("the model worker is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, future, time.monotonic() + self.queue_timeout_seconds))
        except asyncio.QueueFull:
            self.metrics.rejected.inc()
            raise Overloaded(f"over capacity: {self._queue.maxsize} requests already waiting",
                             retry_after_seconds=self.retry_after_seconds) from None
        self.metrics.queue_depth.set(self._queue.qsize())
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            batch = [await self._queue.get()]
            batch += self._drain(self.max_batch - len(batch))
            if self._last_size > 1 and self.wait_seconds > 0:
                deadline = time.perf_counter() + self.wait_seconds
                while len(batch) < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), left))
                    except TimeoutError:
                        break
                    batch += self._drain(self.max_batch - len(batch))
            self.metrics.queue_depth.set(self._queue.qsize())
            live = self._live(batch)
            self._last_size = len(live)
            if not live:
                continue
            self.metrics.batch_size.observe(len(live))
            self._in_thread = loop.run_in_executor(self._executor, self._process_isolated, [p.item for p in live])
            try:
                outcomes = await asyncio.shield(self._in_thread)
            except BaseException as error:  # the worker itself dies (or is cancelled): fail its batch, not hang it
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(RuntimeError(f"the model worker died: {error!r}"))
                raise
            finally:
                self._in_thread = None
            for pending, outcome in zip(live, outcomes, strict=True):
                if pending.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
            self._delivered.set()

    def _live(self, batch: list[_Pending[T, R]]) -> list[_Pending[T, R]]:
        """The requests still worth computing: not cancelled (caller gone), not past their deadline."""
        now = time.monotonic()
        live = []
        for pending in batch:
            if pending.future.done():
                self.metrics.abandoned.labels(reason="disconnected").inc()
            elif pending.deadline < now:
                self.metrics.abandoned.labels(reason="deadline").inc()
                pending.future.set_exception(Overloaded(
                    f"waited over {self.queue_timeout_seconds:g} s in the queue", retry_after_seconds=self.retry_after_seconds))
            else:
                live.append(pending)
        return live

    def _drain(self, limit: int) -> list[_Pending[T, R]]:
        out: list[_Pending[T, R]] = []
        while len(out) < limit and not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def _process_isolated(self, items: list[T]) -> list[R | Exception]:
        """Runs in the worker thread: the batch, or each request alone when the batch fails."""
        try:
            results = self.process(items)
        except Exception as error:
            if len(items) == 1:
                return [error]
            log.warning("a batch of %d failed (%s); retrying one request at a time", len(items), error)
            out: list[R | Exception] = []
            for item in items:
                try:
                    out.extend(self.process([item]))
                except Exception as single_error:
                    out.append(single_error)
            return out
        return list(results)
