"""Query encoder latency: ONNX Runtime vs PyTorch eager, batch 1 and 8, 1 and 2 threads.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encoder.py [--model CHECKPOINT] [--runs 200]

Without --model it builds EIGML's default config (MiniLM text encoder, dim 256, learned knowledge, EIKS)
with untrained heads: latency does not depend on the weights. Each timing is one `QueryEncoder.encode`
call on 3-turn dialogues, tokenisation included, after a warm-up; p50/p99 over --runs calls,
the two backends' calls alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eigml.dialogue import Dialogue, Turn
from eigml.export import QueryEncoder, export_query_encoder
from eigml.paths import Paths

TURNS = [
    ("guess who just got the job offer from the design studio?", "no way!! you've been waiting for weeks, congrats!",
     "thanks, I start on Monday and I'm already nervous"),
    ("did you finish the report?", "not yet, my laptop crashed and I lost half of it",
     "oh no, do you want me to tell the boss?"),
    ("the concert got cancelled", "seriously? we drove three hours for this", "I know, I'm so annoyed"),
    ("happy birthday!!", "aww thank you, I didn't think anyone remembered", "of course we did, cake later?"),
    ("my cat knocked the christmas tree over again", "hahaha that cat is a menace", "he looks so proud of himself"),
    ("are we still on for dinner?", "yes, 7pm at the thai place", "perfect, see you there"),
    ("I think I failed the exam", "don't say that, results aren't out yet", "I left two questions blank"),
    ("look at this view from the top", "wow that's incredible, how long was the hike?", "about five hours, worth it"),
]


def dialogues(batch_size: int) -> list[Dialogue]:
    return [Dialogue(tuple(Turn("AB"[i % 2], text) for i, text in enumerate(TURNS[n % len(TURNS)])), responder="B")
            for n in range(batch_size)]


def load_model(checkpoint: Path | None, models_dir: Path):
    if checkpoint is not None:
        from eigml.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint, models_dir=models_dir)
    from eigml.model.config import ModelConfig
    from eigml.model.eigml import EIGML

    model = EIGML(ModelConfig.model_validate({}), intention_labels=("inform", "question", "directive", "commissive"),
                  models_dir=models_dir).eval()
    model.version = "bench-untrained"
    return model


def time_calls(encoders: dict[str, QueryEncoder], batch: list[Dialogue], runs: int,
               warmup: int) -> dict[str, list[float]]:
    """Seconds per `encode` call for each encoder; calls alternate so background load hits both alike."""
    for encoder in encoders.values():
        for _ in range(warmup):
            encoder.encode(batch)
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(runs):
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(batch)
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="EIGML checkpoint (default: untrained default)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    model = load_model(args.model, Paths.from_env().cache_dir / "models")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        onnx_path = export_query_encoder(model, Path(tmp) / "query.onnx")
        print(f"exported in {time.perf_counter() - start:.1f} s; load average {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} cpus ({platform.processor() or platform.machine()})", file=sys.stderr)
        for threads in args.threads:
            torch.set_num_threads(threads)  # PyTorch's count is process-wide
            encoders = {"torch": QueryEncoder(model, backend="torch"),
                        "onnx": QueryEncoder(model, onnx_path, backend="onnx", threads=threads)}
            for batch_size in args.batch_sizes:
                batch = dialogues(batch_size)
                for backend, seconds in time_calls(encoders, batch, args.runs, args.warmup).items():
                    ms = np.array(seconds) * 1e3
                    rows.append({"backend": backend, "threads": threads, "batch": batch_size,
                                 "p50_ms": round(float(np.percentile(ms, 50)), 2),
                                 "p99_ms": round(float(np.percentile(ms, 99)), 2), "runs": args.runs})
                    print(json.dumps(rows[-1]), file=sys.stderr)
    print("| backend | threads | batch | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['threads']} | {r['batch']} | {r['p50_ms']} | {r['p99_ms']} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
