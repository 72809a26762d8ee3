"""`python -m service [--port 8000] ...`: serve the app with uvicorn.

Settings come from `STICKERS_*` environment variables (see `service.settings.Settings`); flags given here
override them. This is the entry point: the only place that reads the environment.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="EIGML checkpoint folder (STICKERS_MODEL)")
    parser.add_argument("--index", type=Path, help="index root (STICKERS_INDEX)")
    parser.add_argument("--catalog", type=Path, help="sticker catalogue (STICKERS_CATALOG)")
    parser.add_argument("--redis-url", help="redis://host:port/db (STICKERS_REDIS_URL); default: no Redis")
    parser.add_argument("--host", help="bind address (STICKERS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (STICKERS_PORT, default 8000)")
    parser.add_argument("--encoder-backend", choices=["auto", "onnx", "torch"], help="STICKERS_ENCODER_BACKEND")
    parser.add_argument("--threads", type=int, help="torch / ONNX Runtime threads (STICKERS_THREADS)")
    parser.add_argument("--workers", type=int, help="model worker threads (STICKERS_WORKERS, default 1)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="STICKERS_LOG_LEVEL")


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SystemExit(f"service: invalid settings (STICKERS_* environment or flags):\n{error}") from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.threads is not None:
        import faiss

        torch.set_num_threads(settings.threads)  # process-wide, so set here, once
        # one FAISS search over a few thousand vectors is faster single-threaded than paying OpenMP's sync
        faiss.omp_set_num_threads(settings.threads)
    # one process per replica: the model workers (threads) batch across requests; not uvicorn workers
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, workers=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
