"""Micro-batching with load shedding: concurrent requests share one model call, in `workers` worker threads.

`submit` puts a request on a bounded queue (full: `Overloaded` at once, a 429 with Retry-After) and awaits
its result. Each of `workers` asyncio tasks (default 1) takes what is queued, up to `max_batch`, and runs
`process(batch)` in an executor thread of its own, never on the event loop; with two or more, a batch is
computed while the next one is gathered and started on another core (`process` must be thread-safe). It waits up to `wait_seconds` for a batch to grow only
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
                 queue_timeout_seconds: float = 5.0, max_restarts: int = 100, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.process = process
        self.workers = workers
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.queue_timeout_seconds = queue_timeout_seconds
        self.max_restarts = max_restarts
        self.metrics = metrics
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model")
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()  # workers with a batch in their thread
        self._stopping = False
        self._restarts = 0

    def start(self) -> None:
        self._tasks = [self._spawn() for _ in range(self.workers)]

    def _spawn(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")
        task.add_done_callback(self._on_worker_done)
        return task

    @property
    def alive(self) -> bool:
        """Whether every worker is running (readiness: a replica whose worker is gone cannot answer)."""
        return bool(self._tasks) and all(not t.done() for t in self._tasks) and not self._stopping

    def _on_worker_done(self, task: asyncio.Task[None]) -> None:
        self._busy.discard(task)
        if self._stopping or task not in self._tasks:
            return
        error = None if task.cancelled() else task.exception()
        log.error("the model worker died (%r)", error)
        if self._restarts >= self.max_restarts:
            log.error("the model worker died %d times; not restarting it (/readyz says 503)", self._restarts)
            return
        self._restarts += 1
        self.metrics.worker_restarts.inc()
        self._tasks[self._tasks.index(task)] = self._spawn()

    async def stop(self) -> None:
        """Stop taking batches, let the batches in the threads finish and deliver their results, then fail
        what is still queued (503) and shut the threads down."""
        self._stopping = True
        busy = [t for t in self._tasks if t in self._busy and not t.done()]
        if busy:  # a busy worker delivers its batch, sees `_stopping` and returns (or dies: then it is done)
            await asyncio.wait(busy)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
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
        me = asyncio.current_task()
        assert me is not None
        last_size = 0
        while not self._stopping:
            batch = [await self._queue.get()]
            batch += self._drain(self.max_batch - len(batch))
            if last_size > 1 and self.wait_seconds > 0:
                deadline = time.perf_counter() + self.wait_seconds
                while len(batch) < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), left))
                    except TimeoutError:
                        break
                    batch += self._drain(self.max_batch - len(batch))
            self.metrics.queue_depth.set(self._queue.qsize())
            live = self._live(batch)
            last_size = len(live)
            if not live:
                continue
            self.metrics.batch_size.observe(len(live))
            self._busy.add(me)
            try:
                in_thread = loop.run_in_executor(self._executor, self._process_isolated, [p.item for p in live])
                outcomes = await asyncio.shield(in_thread)
            except BaseException as error:  # the worker itself dies (or is cancelled): fail its batch, not hang it
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(RuntimeError(f"the model worker died: {error!r}"))
                raise
            finally:
                self._busy.discard(me)
            for pending, outcome in zip(live, outcomes, strict=True):
                if pending.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)

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
