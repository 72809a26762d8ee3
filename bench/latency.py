"""Serving latency: a real HTTP client against `python -m service` on loopback, and the naive path.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/latency.py --model CHECKPOINT --index INDEX_ROOT \
        [--catalog DIR] [--onnx FILE] [--requests 400] [--seconds 40] [--out docs/performance.md]

1. Starts the service (uvicorn, one process) on a free loopback port with the given checkpoint, index and
   catalogue (default: the default catalogue, ~6,287 stickers), waits until /readyz says ready.
2. Closed loop at concurrency 1, 8 and 32 (httpx, asyncio): each level sends at most --requests requests
   or runs --seconds seconds, whichever ends first; every dialogue is different, so the encoding cache
   never answers. p50/p95/p99 latency, throughput, mean micro-batch size; the share of each stage at
   concurrency 1 comes from the service's own stage histogram (/metrics).
3. With the server stopped, in this process: the query encoder's batch-1 time (the floor) and the naive
   path: PyTorch eager `encode_dialogues` + the core's `rerank` over every sticker, no index, no batching
   (what `rank`'s checkpoint ranker does over all ids once its sticker encodings are cached).
Writes the tables between `<!-- latency:start -->` and `<!-- latency:end -->` in --out.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from eigml.markdown import replace_section

START, END = "<!-- latency:start -->", "<!-- latency:end -->"
STAGES = ("encode", "retrieve", "rerank")

OPENERS = ["hey", "are you there?", "guess what", "so about yesterday", "did you see the news?", "quick question",
           "you won't believe this", "how was your weekend?", "I need to tell you something", "ok listen"]
MIDDLES = ["what happened?", "tell me", "yes, go on", "no, what?", "I'm listening", "oh no, not again",
           "it was fine, why?", "sure, ask away", "haha what now", "I'm at work, make it quick"]
LASTS = ["I failed my driving test again", "we won the match!!!", "my dog died this morning", "he lied to me again",
         "I got the job!", "the concert got cancelled", "I can't believe you forgot my birthday",
         "thanks so much for the gift", "I'm so tired of this week", "look at this view from the top",
         "the cat knocked the tree over again", "I think I'm getting sick", "we're getting married!",
         "my flight is delayed six hours", "I finally finished the report", "someone stole my bike",
         "I passed the exam!", "the pizza was terrible", "I miss you", "see you tomorrow then"]


def unique_dialogues(count: int, seed: int) -> list[list[dict[str, str]]]:
    """`count` different 3-turn dialogues (10 x 10 x 20 combinations, then a numbered variant)."""
    combos = [(o, m, x) for o in OPENERS for m in MIDDLES for x in LASTS]
    random.Random(seed).shuffle(combos)
    out = []
    for n in range(count):
        o, m, x = combos[n % len(combos)]
        if n >= len(combos):
            x = f"{x} ({n // len(combos)})"
        out.append([{"speaker": "B", "text": o}, {"speaker": "A", "text": m}, {"speaker": "B", "text": x}])
    return out


def percentiles_ms(seconds: list[float]) -> tuple[float, float, float]:
    a = np.asarray(seconds) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


# ---- the server ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STICKERS_MODEL": str(args.model), "STICKERS_INDEX": str(args.index),
           "STICKERS_CATALOG": str(args.catalog), "STICKERS_CACHE_DIR": str(args.cache_dir),
           "STICKERS_ENCODER_BACKEND": args.backend, "STICKERS_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1"}
    if args.onnx is not None:
        env["STICKERS_ONNX_PATH"] = str(args.onnx)
    if args.threads is not None:
        env["STICKERS_THREADS"] = str(args.threads)
    env["STICKERS_WORKERS"] = str(args.workers)
    env.pop("STICKERS_REDIS_URL", None)  # the in-process cache: the bench measures the model path
    return subprocess.Popen([sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)], env=env)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        if server.poll() is not None:
            raise SystemExit(f"latency: the service exited with code {server.returncode} before it was ready")
        try:
            r = await client.get("/readyz")
            if r.status_code == 200:
                return dict(r.json())
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("latency: the service was not ready in time")
        await asyncio.sleep(0.25)


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await client.get("/metrics")).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def delta(after: dict[Any, float], before: dict[Any, float], name: str, **labels: str) -> float:
    def pick(values: dict[Any, float]) -> float:
        return sum(v for (n, ls), v in values.items() if n == name and set(labels.items()) <= set(ls))

    return pick(after) - pick(before)


@dataclass
class Level:
    concurrency: int
    latencies: list[float]
    errors: int
    seconds: float
    mean_batch: float
    stage_seconds: dict[str, float]  # summed over the level
    request_seconds: float  # the service's own summed /recommend time

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


async def run_level(client: httpx.AsyncClient, concurrency: int, dialogues: list[list[dict[str, str]]],
                    max_seconds: float) -> Level:
    before = await scrape(client)
    queue = list(reversed(dialogues))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal errors
        while queue and time.perf_counter() < deadline:
            body = {"dialogue": queue.pop(), "top_k": 5}
            start = time.perf_counter()
            r = await client.post("/recommend", json=body)
            if r.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    after = await scrape(client)
    batches = delta(after, before, "stickers_batch_size_count")
    return Level(concurrency=concurrency, latencies=latencies, errors=errors, seconds=seconds,
                 mean_batch=delta(after, before, "stickers_batch_size_sum") / max(batches, 1),
                 stage_seconds={s: delta(after, before, "stickers_stage_duration_seconds_sum", stage=s) for s in STAGES},
                 request_seconds=delta(after, before, "stickers_http_request_duration_seconds_sum",
                                       route="/recommend", status="200"))


async def measure_service(args: argparse.Namespace) -> tuple[dict[str, Any], list[Level]]:
    port = free_port()
    server = start_server(args, port)
    levels = []
    try:
        limits = httpx.Limits(max_connections=max(args.concurrency) + 4, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
            ready = await wait_ready(client, server, args.startup_seconds)
            print(f"latency: service ready: {ready}", file=sys.stderr)
            total = args.requests * len(args.concurrency) + args.warmup
            pool = unique_dialogues(total, args.seed)
            await run_level(client, 4, pool[: args.warmup], args.seconds)  # warm-up, not reported
            offset = args.warmup
            for concurrency in args.concurrency:
                level = await run_level(client, concurrency, pool[offset : offset + args.requests], args.seconds)
                offset += args.requests
                p50, p95, p99 = percentiles_ms(level.latencies)
                print(f"latency: concurrency {concurrency}: {len(level.latencies)} ok, {level.errors} errors, "
                      f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {level.throughput:.1f} req/s, "
                      f"mean batch {level.mean_batch:.1f}", file=sys.stderr)
                levels.append(level)
    finally:
        stop_server(server)
    return ready, levels


# ---- in process: encoder floor and the naive path ---------------------------------------------------------
def measure_in_process(args: argparse.Namespace, count: int, naive_count: int) -> dict[str, Any]:
    import torch

    from eigml.checkpoint import load_checkpoint
    from eigml.dialogue import Dialogue, Turn
    from eigml.export import QueryEncoder
    from eigml.rerank import best_first, rerank
    from index.search import load_index

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = load_checkpoint(args.model, models_dir=args.cache_dir / "models")
    onnx = args.onnx if args.onnx is not None else args.model / "query_encoder.onnx"
    encoder = QueryEncoder(model, onnx, args.backend, args.threads)
    index = load_index(args.index)
    stickers = index.encodings()
    everything = np.arange(len(index))
    pool = [Dialogue(tuple(Turn(t["speaker"], t["text"]) for t in d)) for d in unique_dialogues(count, args.seed + 1)]

    def timed(fn: Any, items: list[Dialogue]) -> list[float]:
        out = []
        for d in items:
            start = time.perf_counter()
            fn(d)
            out.append(time.perf_counter() - start)
        return out

    def naive(d: Dialogue) -> None:
        with torch.inference_mode():
            scores = rerank(model, model.encode_dialogues([d]), stickers, [everything])[0]
            best_first(everything, scores, 5)

    timed(lambda d: encoder.encode([d]), pool[:10])  # warm-up
    floor = timed(lambda d: encoder.encode([d]), pool)
    timed(naive, pool[:3])
    naive_times = timed(naive, pool[:naive_count])
    return {"floor": floor, "naive": naive_times, "backend": encoder.backend, "stickers": len(index),
            "model_version": model.version, "index_version": index.version}


# ---- report -------------------------------------------------------------------------------------------
def render(args: argparse.Namespace, ready: dict[str, Any], levels: list[Level], local: dict[str, Any]) -> str:
    by_c = {level.concurrency: level for level in levels}
    one = by_c.get(1, levels[0])
    p50_1, _, p99_1 = percentiles_ms(one.latencies)
    floor_p50 = percentiles_ms(local["floor"])[0]
    naive_p50, naive_p95, naive_p99 = percentiles_ms(local["naive"])
    lines = [START, "## Serving latency (bench/latency.py)", "",
             f"Command: `{' '.join(shlex.quote(a) for a in ['.venv/bin/python', 'bench/latency.py', *sys.argv[1:]])}`",
             "",
             f"Run {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs (shared with whatever else ran). Model `{ready.get('model_version')}`, index "
             f"`{ready.get('index_version')}` ({ready.get('stickers')} stickers), query encoder "
             f"{ready.get('encoder_backend')}, {args.workers} model worker(s) x {args.threads} thread(s), service "
             "defaults otherwise (100 candidates reranked, top_k 5). "
             "A closed loop of httpx clients on loopback; every dialogue differs, so the encoding cache never answers.",
             "", "| path | concurrency | requests | errors | p50 ms | p95 ms | p99 ms | throughput req/s | mean batch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for level in levels:
        p50, p95, p99 = percentiles_ms(level.latencies)
        lines.append(f"| service | {level.concurrency} | {len(level.latencies)} | {level.errors} | {p50:.1f} | "
                     f"{p95:.1f} | {p99:.1f} | {level.throughput:.1f} | {level.mean_batch:.1f} |")
    lines.append(f"| naive: PyTorch eager, full model over all {local['stickers']} stickers, no index, no batching "
                 f"(in process) | 1 | {len(local['naive'])} | 0 | {naive_p50:.1f} | {naive_p95:.1f} | {naive_p99:.1f} | "
                 f"{1000 / max(naive_p50, 1e-9):.1f} | 1 |")
    lines += ["", f"Query encoder floor (batch 1, {local['backend']}, tokenisation included, in process): "
              f"p50 {floor_p50:.1f} ms over {len(local['floor'])} dialogues.", ""]
    total = one.request_seconds
    if total > 0:
        shares = {s: one.stage_seconds[s] / total for s in STAGES}
        other = 1 - sum(shares.values())
        lines += ["Share of the service's own /recommend time at concurrency 1 (stage histogram sums over "
                  "request histogram sum):", "",
                  "| encode | retrieve | rerank | other (HTTP, JSON, queue hand-off) |", "|---:|---:|---:|---:|",
                  f"| {shares['encode']:.0%} | {shares['retrieve']:.0%} | {shares['rerank']:.0%} | {other:.0%} |", ""]
    speedup = naive_p50 / p50_1 if p50_1 else float("nan")
    ratio = by_c[32].throughput / one.throughput if 32 in by_c and one.throughput else float("nan")
    to_floor = p50_1 / floor_p50 if floor_p50 else float("nan")
    tail = p99_1 / p50_1 if p50_1 else float("nan")
    p99_32 = percentiles_ms(by_c[32].latencies)[2] if 32 in by_c else float("nan")
    errors_32 = by_c[32].errors if 32 in by_c else -1
    lines += ["Targets of issue 12 (ratios from this one run):", "",
              "| target | measured | met |", "|---|---:|:---:|",
              f"| concurrency 1: p50 <= 1.5x the encoder's batch-1 floor | {to_floor:.2f}x ({p50_1:.1f} / "
              f"{floor_p50:.1f} ms) | {'yes' if to_floor <= 1.5 else 'no'} |",
              f"| concurrency 1: p99 <= 2x p50 | {tail:.2f}x | {'yes' if tail <= 2 else 'no'} |",
              f"| concurrency 32: throughput >= 2.5x concurrency 1 | {ratio:.2f}x | {'yes' if ratio >= 2.5 else 'no'} |",
              f"| concurrency 32: p99 <= 300 ms, 0 errors | {p99_32:.0f} ms, {errors_32} errors | "
              f"{'yes' if p99_32 <= 300 and errors_32 == 0 else 'no'} |",
              "", f"Naive p50 / service p50 at concurrency 1: {speedup:.1f}x.", END]
    return "\n".join(lines)


def export_onnx(args: argparse.Namespace) -> Path:
    import tempfile

    from eigml.checkpoint import load_checkpoint
    from eigml.export import export_query_encoder

    model = load_checkpoint(args.model, models_dir=args.cache_dir / "models")
    path = Path(tempfile.mkdtemp(prefix="latency-onnx-")) / "query_encoder.onnx"
    export_query_encoder(model, path)
    print(f"latency: exported the query encoder to {path}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    from eigml.paths import Paths

    paths = Paths.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="EIGML checkpoint folder")
    parser.add_argument("--index", type=Path, required=True, help="index root (CURRENT is served)")
    parser.add_argument("--catalog", type=Path, default=paths.cache_dir / "catalog" / "default")
    parser.add_argument("--cache-dir", type=Path, default=paths.cache_dir)
    parser.add_argument("--build-index", action="store_true", help="build the index first when the root has none")
    parser.add_argument("--onnx", type=Path, default=None, help="exported query encoder (default MODEL/query_encoder.onnx)")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch / ONNX Runtime intra-op threads, server and floor (default 1: on a few shared "
                             "cores more threads oversubscribe them; 0: the libraries' defaults)")
    parser.add_argument("--export-onnx", action="store_true",
                        help="export the query encoder to a temporary file first when there is none")
    parser.add_argument("--workers", type=int, default=1, help="the service's model worker threads (STICKERS_WORKERS)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="most requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=40.0, help="most seconds per concurrency level")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--naive-requests", type=int, default=30)
    parser.add_argument("--startup-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    args = parser.parse_args(argv)
    if args.build_index:
        from index.store import current_version

        if current_version(args.index) is None:
            from eigml.catalog import load_catalog
            from eigml.checkpoint import load_checkpoint
            from index.build import build_index

            model = load_checkpoint(args.model, models_dir=args.cache_dir / "models")
            version = build_index(model, load_catalog(args.catalog), args.index,
                                  feature_cache=args.cache_dir / "features")
            print(f"latency: built index {version}", file=sys.stderr)
    if args.threads == 0:
        args.threads = None
    onnx = args.onnx if args.onnx is not None else args.model / "query_encoder.onnx"
    if args.export_onnx and not onnx.is_file():
        args.onnx = export_onnx(args)
    ready, levels = asyncio.run(measure_service(args))
    local = measure_in_process(args, count=max(50, args.naive_requests), naive_count=args.naive_requests)
    section = render(args, ready, levels, local)
    replace_section(args.out, section, START, END, "# Performance")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
