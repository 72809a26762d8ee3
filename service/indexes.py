"""Index lifecycle on one replica: load a version and swap it in; rebuild from the catalogue in the background.

Blocking calls (run them in a thread). Reloads are serialised; the swap itself is one reference
assignment in `Recommender.swap_index`, so requests in flight finish on the index they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from service.errors import Conflict, ModelIndexMismatch, NotFound
from service.metrics import ServiceMetrics
from service.recommender import MismatchError, Recommender, SearchIndex

log = logging.getLogger(__name__)

LoadIndex = Callable[[Path, str | None], SearchIndex]  # (root, version or None for CURRENT) -> index
BuildIndex = Callable[[Path], str]  # (root) -> the new version, built and published under root
ReindexState = Literal["idle", "running", "done", "failed"]


@dataclass(frozen=True)
class ReindexStatus:
    state: ReindexState = "idle"
    version: str | None = None
    error: str | None = None
    started_at: float | None = None  # unix seconds
    finished_at: float | None = None


class IndexManager:
    def __init__(self, root: Path, recommender: Recommender, load_index: LoadIndex, build_index: BuildIndex,
                 metrics: ServiceMetrics, on_published: Callable[[str], object] | None = None) -> None:
        self.root = root
        self.recommender = recommender
        self.load_index = load_index
        self.build_index = build_index
        self.metrics = metrics
        self.on_published = on_published  # e.g. IndexSync.publish: tell the other replicas
        self._reload_lock = threading.Lock()
        self._reindex_lock = threading.Lock()
        self._status = ReindexStatus()
        self._thread: threading.Thread | None = None
        self._record(recommender.index)

    def _record(self, index: SearchIndex) -> None:
        self.metrics.set_index(index.version, index.model_version, len(index))

    @property
    def version(self) -> str:
        return self.recommender.index.version

    def reload(self, version: str | None = None) -> tuple[str, str]:
        """Load `version` (None: the root's CURRENT) and serve it; returns (previous, new) versions.

        Loading the version already served is a no-op. NotFound for a version that is not there,
        ModelIndexMismatch for an index built with another model.
        """
        with self._reload_lock:
            previous = self.recommender.index.version
            if version is not None and version == previous:
                return previous, previous
            try:
                index = self.load_index(self.root, version)
            except (OSError, LookupError, ValueError) as error:  # index.store.IndexStoreError is a ValueError
                self.metrics.index_reloads.labels(result="error").inc()
                raise NotFound(f"no index version {version or 'CURRENT'} under {self.root}: {error}") from None
            except Exception:
                self.metrics.index_reloads.labels(result="error").inc()
                raise
            if index.version == previous:
                return previous, previous
            try:
                self.recommender.swap_index(index)
            except MismatchError as error:
                self.metrics.index_reloads.labels(result="error").inc()
                raise ModelIndexMismatch(str(error)) from None
            self.metrics.index_reloads.labels(result="ok").inc()
            self._record(index)
            log.info("index %s -> %s (%d stickers)", previous, index.version, len(index))
            return previous, index.version

    # ---- background rebuild -----------------------------------------------------------------------
    @property
    def reindex_status(self) -> ReindexStatus:
        return self._status

    def start_reindex(self) -> ReindexStatus:
        """Rebuild from the catalogue in a background thread, then publish, reload and announce."""
        with self._reindex_lock:
            if self._status.state == "running":
                raise Conflict("a reindex is already running")
            self._status = ReindexStatus(state="running", started_at=time.time())
            self._thread = threading.Thread(target=self._reindex, name="reindex", daemon=True)
            self._thread.start()
            return self._status

    def wait_reindex(self, timeout_seconds: float | None = None) -> ReindexStatus:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_seconds)
        return self._status

    def _reindex(self) -> None:
        try:
            version = self.build_index(self.root)
            self.reload(version)
            if self.on_published is not None:
                self.on_published(version)
            status = replace(self._status, state="done", version=version)
        except Exception as error:
            log.exception("reindex failed")
            status = replace(self._status, state="failed", error=f"{type(error).__name__}: {error}")
        self._status = replace(status, finished_at=time.time())
