"""Where shared benchmark data and caches live. Read from the environment once, at the entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    data_dir: Path  # the shared benchmark data (../shared/data); may not exist on a user's machine
    cache_dir: Path  # npm packs, built catalogues, feature caches; outside the clone so CI reuses it

    @property
    def srs_dir(self) -> Path:
        return self.data_dir / "srs"

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            data_dir=Path(os.environ.get("STICKERS_DATA_DIR", "../shared/data")).expanduser(),
            cache_dir=Path(os.environ.get("STICKERS_CACHE_DIR", "~/.cache/stickers")).expanduser(),
        )
