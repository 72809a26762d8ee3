"""How the number of IVF lists changes recall@100 per share of the index scanned, on real-like vectors.

The 1M real-like set of bench/index_scale.py (each sticker vector of an index repeated with noise, queries
encoded from real dialogues); for each `NLIST:TRAIN:NITER` an IVF-Flat index (inner product) is trained and
searched at several nprobe. Prints recall@100 against exact search and the mean number of vectors scanned
per query, the quantity that sets single-query latency for IVF-Flat. Recall only: no timing (run it beside
other work if you like).

    python scripts/ivf_nlist_study.py --real INDEX_ROOT --model RUN/best 1024:100000:10 4096:100000:10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import index_scale  # noqa: E402  (bench/index_scale.py)

from index.evaluate import exact_search, neighbor_recall_at_k  # noqa: E402
from index.store import read_version  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help="index root whose sticker vectors are replicated")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint that encodes the query dialogues")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("configs", nargs="+", help="NLIST:TRAIN:NITER, e.g. 4096:100000:10")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    visual = np.ascontiguousarray(read_version(args.real).arrays.visual, dtype=np.float32)
    vectors = index_scale.real_like_vectors(visual, args.count, args.noise)
    queries = index_scale.dialogue_queries(args.model, args.queries)
    _, exact = exact_search(vectors, queries, 100)
    rng = np.random.default_rng(1)
    print("| nlist | k-means sample | nprobe | recall@100 | vectors scanned per query | share scanned |")
    print("|---:|---:|---:|---:|---:|---:|")
    for config in args.configs:
        nlist, ntrain, niter = (int(x) for x in config.split(":"))
        start = time.perf_counter()
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        ivf = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = niter
        ivf.train(vectors[np.sort(rng.choice(len(vectors), ntrain, replace=False))])
        ivf.add(vectors)
        sizes = np.array([ivf.invlists.list_size(i) for i in range(nlist)])
        print(f"nlist {nlist}: built in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        for nprobe in (n for n in args.nprobe if n <= nlist):
            ivf.nprobe = nprobe
            _, found = ivf.search(queries, 100)
            _, lists = quantizer.search(queries, nprobe)
            scanned = float(sizes[lists].sum(1).mean())
            print(f"| {nlist} | {ntrain} | {nprobe} | {neighbor_recall_at_k(found, exact, 100):.3f} | {scanned:,.0f} "
                  f"| {scanned / len(vectors):.2%} |", flush=True)


if __name__ == "__main__":
    main()
