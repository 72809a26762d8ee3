"""The micro-batcher: batches form under concurrency, a full queue is a fast Overloaded, failures stay alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from service.batching import MicroBatcher
from service.errors import Overloaded
from service.metrics import ServiceMetrics


def make(process, **kw) -> MicroBatcher[int, int]:  # type: ignore[no-untyped-def]
    options = dict(max_batch=8, wait_seconds=0.005, queue_size=64, retry_after_seconds=2, metrics=ServiceMetrics())
    options.update(kw)
    return MicroBatcher(process, **options)  # type: ignore[arg-type]


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    sizes: list[int] = []
    threads: set[str] = set()

    def double(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return [2 * i for i in items]

    async def main() -> list[int]:
        batcher = make(double)
        batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit(i) for i in range(40))))
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [2 * i for i in range(40)]
    assert max(sizes) == 8 and sum(sizes) == 40 and len(sizes) <= 6
    assert threads and all(name.startswith("model") for name in threads)  # never on the event loop thread


def test_lone_requests_do_not_wait_for_company() -> None:
    async def main() -> float:
        batcher = make(lambda items: list(items), wait_seconds=0.05)  # a wait would stand out
        batcher.start()
        try:
            await batcher.submit(0)
            start = time.perf_counter()
            for i in range(20):
                await batcher.submit(i)
            return (time.perf_counter() - start) / 20
        finally:
            await batcher.stop()

    assert asyncio.run(main()) < 0.02  # well under the batch wait: a lone request never waits


def test_full_queue_is_refused_at_once() -> None:
    release = threading.Event()

    def blocked(items: Sequence[int]) -> list[int]:
        release.wait(10)
        return list(items)

    async def main() -> None:
        metrics = ServiceMetrics()
        batcher = make(blocked, max_batch=1, queue_size=2, metrics=metrics)
        batcher.start()
        try:
            running = asyncio.ensure_future(batcher.submit(0))
            await asyncio.sleep(0.05)  # the worker holds item 0 in its thread
            queued = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
            await asyncio.sleep(0)
            start = time.perf_counter()
            with pytest.raises(Overloaded) as refused:
                await batcher.submit(3)
            assert time.perf_counter() - start < 0.05
            assert refused.value.retry_after_seconds == 2
            assert metrics.registry.get_sample_value("stickers_rejected_total") == 1
            assert metrics.registry.get_sample_value("stickers_queue_depth") == 2
            release.set()
            assert await running == 0 and await asyncio.gather(*queued) == [1, 2]
        finally:
            release.set()
            await batcher.stop()

    asyncio.run(main())


def test_a_failing_request_fails_alone() -> None:
    def picky(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 is unlucky")
        return list(items)

    async def main() -> list[object]:
        batcher = make(picky)
        batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13, 14)), return_exceptions=True))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert results[:2] == [11, 12] and results[3] == 14
    assert isinstance(results[2], ValueError)


def test_two_workers_compute_two_batches_at_once_and_stop_cleanly() -> None:
    """With workers=2 a second batch starts while the first is still in its thread; stop delivers both."""
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()

    def process(items):  # type: ignore[no-untyped-def]
        with lock:
            running.append(len(items))
        release.wait(5)
        return [i * 10 for i in items]

    async def main() -> tuple[int, list[int]]:
        batcher = make(process, max_batch=1, wait_seconds=0.0, workers=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(1))
        second = asyncio.ensure_future(batcher.submit(2))
        for _ in range(200):  # both batches in their threads at the same time
            if len(running) == 2:
                break
            await asyncio.sleep(0.01)
        concurrent = len(running)
        release.set()
        stopping = asyncio.ensure_future(batcher.stop())
        results = list(await asyncio.gather(first, second))
        await stopping
        return concurrent, results

    concurrent, results = asyncio.run(main())
    assert concurrent == 2 and results == [10, 20]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        make(lambda items: list(items), workers=0)


def test_a_burst_is_shared_by_both_workers_under_the_default_batch_size() -> None:
    """On CPU a batch costs about its size times one request: one worker taking a whole burst leaves the
    other core idle and every request of the burst waiting for the slowest batch (docs/performance.md)."""
    from service.settings import Settings

    sizes: list[tuple[str, int]] = []
    lock = threading.Lock()

    def process(items: Sequence[int]) -> list[int]:
        with lock:
            sizes.append((threading.current_thread().name, len(items)))
        time.sleep(0.002 * len(items))
        return [i + 1 for i in items]

    async def main() -> list[int]:
        batcher = make(process, max_batch=Settings.model_fields["max_batch"].default,
                       wait_seconds=Settings.model_fields["batch_wait_ms"].default / 1000, workers=2)
        batcher.start()  # the workers wait on the queue; the whole burst is queued before either wakes
        futures = [asyncio.ensure_future(batcher.submit(i)) for i in range(16)]
        results = list(await asyncio.gather(*futures))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == list(range(1, 17))
    assert len({name for name, _ in sizes}) == 2, sizes
    assert max(size for _, size in sizes) <= 8, sizes
