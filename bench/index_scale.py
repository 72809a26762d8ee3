"""How each FAISS option scales: 1M clustered unit vectors at the model's dimension (256).

    python bench/index_scale.py [--count 1000000] [--dim 256] [--nlist 4096] [--out docs/performance.md]
    python bench/index_scale.py --real INDEX_ROOT --model CHECKPOINT [--noise 0.5] ...   (real-like vectors)

Synthetic (default): random cluster centres with wide noise, a worst case (no low-dimensional structure).
Real-like (`--real`): the served index's own sticker vectors (CURRENT's visual.npy) replicated to --count,
each copy moved by Gaussian noise (--noise, relative to the unit vector's norm), so the 1M points have the
structure of the model's sticker space; the queries are real dialogue vectors (the probe set's dialogues and
licence-clean texts, encoded by --model), as the service searches with. Its results go between their own
markers (index-real), beside the synthetic section.

For each option: build time (training on a sample), memory (serialized index bytes and the process RSS
growth), p50/p99 latency of single-query search, and recall@100 against exact (Flat) search on held-out
queries. Results replace the section between the markers in --out. ~10 minutes on 2 cores at 1M.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from eigml.markdown import replace_section
from index.ann import DEFAULT_EF_SEARCH, MIN_NPROBE, NPROBE_FRACTION, new_index, search_parameters
from index.evaluate import clustered_unit_vectors, exact_search, neighbor_recall_at_k
from index.store import SearchSettings

START, END = "<!-- index-scale:start -->", "<!-- index-scale:end -->"
REAL_START, REAL_END = "<!-- index-real:start -->", "<!-- index-real:end -->"
REPO = Path(__file__).resolve().parents[1]
K = 100


@dataclass
class Row:
    option: str
    setting: str
    build_seconds: float
    index_mib: float
    rss_mib: float
    p50_ms: float
    p99_ms: float
    recall: float


def rss_mib() -> float:
    """Resident memory of this process, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latencies_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float]:
    """p50 and p99 of one query at a time, on one FAISS thread.

    A server searches one request per thread; OpenMP over a single query only adds waiting (on a busy
    2-core machine a 20k-row Flat search took 17 ms with 2 threads, 0.9 ms with 1).
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    times = []
    try:
        for q in queries:
            start = time.perf_counter()
            search(q[None, :])
            times.append((time.perf_counter() - start) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def build(factory: str, vectors: np.ndarray, train: np.ndarray, niter: int,
          quantizer_from: faiss.Index | None = None) -> tuple[faiss.Index, float, float]:
    """(index, build seconds, RSS growth MiB). IVF k-means runs `niter` iterations on `train`."""
    gc.collect()
    before, start = rss_mib(), time.perf_counter()
    index = new_index(factory, vectors.shape[1])
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.niter = niter
        if hasattr(faiss.downcast_index(ivf), "do_polysemous_training"):
            faiss.downcast_index(ivf).do_polysemous_training = False  # as index.ann does: slow, and unused
        if hasattr(faiss.downcast_index(ivf), "pq"):
            faiss.downcast_index(ivf).pq.cp.niter = niter
        if quantizer_from is not None:  # reuse trained centroids (the same coarse quantizer for IVF-PQ)
            centroids = faiss.try_extract_index_ivf(quantizer_from).quantizer.reconstruct_n(0, ivf.nlist)
            ivf.quantizer.add(centroids)
    if not index.is_trained:
        index.train(train)
    index.add(vectors)
    return index, time.perf_counter() - start, rss_mib() - before


def refine_parameters(index: faiss.Index, settings: SearchSettings, k_factor: float) -> faiss.SearchParameters:
    """IVF codes (PQ fast-scan, SQ8) with exact re-ranking: nprobe for the coarse lists, k_factor * k re-scored."""
    base = search_parameters(faiss.downcast_index(index).base_index, settings)
    return faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=base)


def measure(name: str, index: faiss.Index, settings: list[SearchSettings], build_s: float, rss: float,
            queries: np.ndarray, timed: np.ndarray, exact: np.ndarray, k_factor: float | None = None) -> list[Row]:
    index_mib = len(faiss.serialize_index(index)) / 2**20
    rows = []
    for s in settings:
        params = search_parameters(index, s) if k_factor is None else refine_parameters(index, s, k_factor)
        _, found = index.search(queries, K, params=params)
        p50, p99 = latencies_ms(lambda q, p=params: index.search(q, K, params=p), timed)
        label = (f"nprobe={s.nprobe}" if s.nprobe else f"efSearch={s.ef_search}" if s.ef_search else "exact")
        if k_factor is not None:
            label += f", k_factor={k_factor:g}"
        rows.append(Row(name, label, build_s, index_mib, rss, p50, p99, neighbor_recall_at_k(found, exact, K)))
        print(f"{name:16s} {label:12s} build {build_s:7.1f} s  index {index_mib:8.1f} MiB  rss +{rss:7.1f} MiB  "
              f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@{K} {rows[-1].recall:.4f}", file=sys.stderr, flush=True)
    return rows


def real_like_vectors(visual: np.ndarray, count: int, noise: float, seed: int = 0) -> np.ndarray:
    """(count, D) unit rows: the rows of `visual` repeated in turn, each copy moved by Gaussian noise of norm
    about `noise` (1.0 would put a copy ~45 degrees from its sticker)."""
    rng = np.random.default_rng(seed)
    n, dim = visual.shape
    out = np.empty((count, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, count, step):
        rows = np.arange(start, min(count, start + step)) % n
        block = visual[rows] + rng.standard_normal((len(rows), dim)).astype(np.float32) * np.float32(noise / np.sqrt(dim))
        out[start:start + len(rows)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def dialogue_queries(model_dir: Path, count: int) -> np.ndarray:
    """Retrieval vectors of real dialogues: the probe set, then licence-clean texts, encoded by the model."""
    import gzip
    import json

    import torch

    from eigml.checkpoint import load_checkpoint
    from eigml.dialogue import Dialogue, Turn
    from eigml.paths import Paths

    dialogues = []
    for line in (REPO / "probes" / "dialogues.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        dialogues.append(Dialogue(tuple(Turn(t["speaker"], t["text"]) for t in item["dialogue"]), item["responder"]))
    with gzip.open(REPO / "data" / "licence_clean" / "texts.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            if len(dialogues) >= count:
                break
            item = json.loads(line)
            dialogues.append(Dialogue((Turn("A", item["text"]),), "B"))
    model = load_checkpoint(model_dir, Paths.from_env().cache_dir / "models").eval()  # the converted encoder `make` cached
    with torch.inference_mode():
        parts = [model.encode_dialogues(dialogues[i:i + 64]).query for i in range(0, len(dialogues), 64)]
    return np.ascontiguousarray(torch.cat(parts).numpy(), dtype=np.float32)


def dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, queries) for the run: synthetic clusters, or the real-like replication of an index."""
    if args.real is None:
        data = clustered_unit_vectors(args.count + args.queries, args.dim, clusters=args.clusters, seed=0)
        return data[: args.count], data[args.count:]
    from index.store import read_version

    visual = np.ascontiguousarray(read_version(args.real).arrays.visual, dtype=np.float32)
    args.dim, args.stickers = visual.shape[1], len(visual)
    return real_like_vectors(visual, args.count, args.noise), dialogue_queries(args.model, args.queries)


def run(args: argparse.Namespace) -> list[Row]:
    faiss.omp_set_num_threads(args.threads)
    t0 = time.perf_counter()
    vectors, queries = dataset(args)
    rng = np.random.default_rng(1)
    train = vectors[np.sort(rng.choice(args.count, min(args.count, args.train), replace=False))]
    timed = queries[: args.timed]
    print(f"data {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    _, exact = exact_search(vectors, queries, K)
    rows: list[Row] = []
    options = set(args.options.split(","))
    if "flat" in options:
        index, seconds, rss = build("Flat", vectors, train, args.niter)
        rows += measure("Flat", index, [SearchSettings()], seconds, rss, queries, queries[: args.timed_flat], exact)
        del index
    ivf_flat = None
    if options & {"ivf", "ivfpq", "ivfpqfs"}:
        ivf_flat, seconds, rss = build(f"IVF{args.nlist},Flat", vectors, train, args.niter)
        if "ivf" in options:
            rows += measure(f"IVF{args.nlist},Flat", ivf_flat, [SearchSettings(nprobe=n) for n in args.nprobe],
                            seconds, rss, queries, timed, exact)
    if "ivfpq" in options:
        index, seconds, rss = build(f"IVF{args.nlist},PQ32", vectors, train[: args.pq_train], args.niter,
                                    quantizer_from=ivf_flat)
        rows += measure(f"IVF{args.nlist},PQ32*", index, [SearchSettings(nprobe=n) for n in args.nprobe],
                        seconds, rss, queries, timed, exact)
        del index
    if "ivfpqfs" in options:  # 4-bit PQ codes scanned with SIMD, then the shortlist re-scored exactly
        factory = f"IVF{args.nlist},PQ{args.dim // 4}x4fs,RFlat"
        index, seconds, rss = build(factory, vectors, train, args.niter, quantizer_from=ivf_flat)
        for k_factor in args.k_factor:
            rows += measure(factory, index, [SearchSettings(nprobe=n) for n in args.nprobe], seconds, rss, queries,
                            timed, exact, k_factor=k_factor)
        del index
    if "ivfsq" in options:  # 8-bit scalar codes (a quarter of the bytes to scan), the shortlist re-scored exactly
        factory = f"IVF{args.nlist},SQ8,RFlat"
        index, seconds, rss = build(factory, vectors, train, args.niter, quantizer_from=ivf_flat)
        for k_factor in args.sq_k_factor:
            rows += measure(factory + ("*" if ivf_flat is not None else ""), index,
                            [SearchSettings(nprobe=n) for n in args.nprobe], seconds, rss, queries, timed, exact,
                            k_factor=k_factor)
        del index
    del ivf_flat
    if "hnsw" in options:
        index, seconds, rss = build(f"HNSW{args.hnsw_m}", vectors, train, args.niter)
        rows += measure(f"HNSW{args.hnsw_m}", index, [SearchSettings(ef_search=e) for e in args.ef_search],
                        seconds, rss, queries, timed, exact)
        del index
    print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rows


def render(rows: list[Row], args: argparse.Namespace, argv: list[str], seconds: float, load: float) -> str:
    command = " ".join(["python bench/index_scale.py", *argv])
    if args.real is not None:
        what = (f"{args.count:,} real-like unit vectors: the {args.stickers:,} sticker vectors of the index at "
                f"`{args.real}` (dim {args.dim}) each repeated about {args.count // args.stickers:,} times with "
                f"Gaussian noise of relative norm {args.noise:g}; queries: {args.queries:,} real dialogue vectors "
                f"(probe set and licence-clean texts encoded by `{args.model}`); ")
    else:
        what = (f"{args.count:,} clustered unit vectors (dim {args.dim}, {args.clusters:,} clusters), "
                f"{args.queries:,} held-out queries; ")
    lines = [
        REAL_START if args.real is not None else START,
        "## Index at scale (real-like vectors)" if args.real is not None else "## Index at scale (synthetic)",
        "",
        f"`{command}` — {what}"
        f"recall@{K} against exact search, latency of single-query search "
        f"on one FAISS thread ({args.timed} queries; {args.timed_flat} for Flat). IVF k-means: {args.niter} iterations on a "
        f"{args.train:,}-vector sample (PQ codebooks: {args.pq_train:,}). Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{args.threads} FAISS threads for building, load average {load:.2f} at the start, faiss {faiss.__version__}; "
        f"{seconds / 60:.1f} minutes in all.",
        "",
        "| option | query setting | build s | index MiB | RSS growth MiB | p50 ms | p99 ms | recall@100 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.option} | {r.setting} | {r.build_seconds:.1f} | {r.index_mib:.0f} | {r.rss_mib:.0f} | "
                     f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.recall:.3f} |")
    lines += ["", "\\* IVF-PQ and IVF-SQ8 reuse the IVF-Flat centroids, so their build time excludes k-means. "
              "Build and RSS are per option, not per query setting. The index's documented query defaults "
              f"(index/ann.py) are nprobe = max({MIN_NPROBE}, nlist / {NPROBE_FRACTION}) = "
              f"{min(args.nlist, max(MIN_NPROBE, args.nlist // NPROBE_FRACTION))} here and efSearch = {DEFAULT_EF_SEARCH}.", REAL_END if args.real is not None else END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--clusters", type=int, default=10_000, help="~100 vectors a cluster, like K")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries for recall")
    parser.add_argument("--timed", type=int, default=500, help="single queries timed per setting")
    parser.add_argument("--timed-flat", type=int, default=100, help="single queries timed for Flat (slow)")
    parser.add_argument("--nlist", type=int, default=4096)
    parser.add_argument("--train", type=int, default=100_000, help="k-means / PQ training sample")
    parser.add_argument("--pq-train", type=int, default=20_000, help="PQ codebook training sample")
    parser.add_argument("--niter", type=int, default=10, help="k-means iterations (IVF and PQ)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--options", default="flat,ivf,ivfpq,hnsw",
                        help="any of flat,ivf,ivfpq,ivfpqfs,ivfsq,hnsw")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--hnsw-m", type=int, default=32, help="HNSW links per node")
    parser.add_argument("--k-factor", type=float, nargs="+", default=[4, 64],
                        help="ivfpqfs: shortlist re-scored exactly, x k")
    parser.add_argument("--sq-k-factor", type=float, nargs="+", default=[2],
                        help="ivfsq: shortlist of k_factor * k SQ8 candidates re-scored exactly")
    parser.add_argument("--real", type=Path, help="index root: replicate its sticker vectors (real-like)")
    parser.add_argument("--model", type=Path, help="with --real: the checkpoint that encodes the query dialogues")
    parser.add_argument("--noise", type=float, default=0.5, help="with --real: relative noise of each copy")
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    args = parser.parse_args(argv)
    if args.real is not None and args.model is None:
        parser.error("--real needs --model (the query dialogues are encoded by it)")
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows = run(args)
    markers = (REAL_START, REAL_END) if args.real is not None else (START, END)
    replace_section(args.out, render(rows, args, argv, time.perf_counter() - start, load), *markers,
                    "# Performance")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
