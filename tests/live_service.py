"""`python -m service` as a real process on the tiny fixtures, for tests that need a server on a port
(a browser, a Prometheus): builds an index, starts this checkout's code on a free loopback port, waits
for /readyz, and stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_service(index_root: Path, checkpoint: Path, catalog: Path, cache_dir: Path) -> Iterator[str]:
    """Yields the base URL of a ready server; builds the index at `index_root` (a fresh folder) first."""
    from eigml.catalog import load_catalog
    from eigml.checkpoint import load_checkpoint
    from index.build import build_index

    model = load_checkpoint(checkpoint, models_dir=cache_dir / "models")
    build_index(model, load_catalog(catalog), index_root, feature_cache=cache_dir / "features", device="cpu",
                progress=False)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "STICKERS_MODEL": str(checkpoint), "STICKERS_INDEX": str(index_root),
           "STICKERS_CATALOG": str(catalog), "STICKERS_CACHE_DIR": str(cache_dir), "STICKERS_ENCODER_BACKEND": "torch",
           "STICKERS_THREADS": "1", "STICKERS_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1"}
    env.pop("STICKERS_REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
