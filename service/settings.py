"""The service's one typed config: class defaults < environment (`STICKERS_*`) < command-line flags.

Built once at the entry point (`python -m service`); everything below takes the `Settings` it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eigml.selection import DIVERSITY

EncoderBackend = Literal["auto", "onnx", "torch"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STICKERS_", extra="forbid", frozen=True)

    # artifacts
    model: Path = Field(description="EIGML checkpoint folder (model.json, text_encoder/, heads.safetensors)")
    index: Path = Field(default=Path("~/.cache/stickers/index").expanduser(),
                        description="index root: versions/<version>/ and the CURRENT pointer")
    catalog: Path = Field(default=Path("~/.cache/stickers/catalog/default").expanduser(),
                          description="sticker catalogue root: images are served from here and nowhere else")
    cache_dir: Path = Field(default=Path("~/.cache/stickers").expanduser(),
                            description="converted backbone weights (models/) and image features (features/)")
    onnx_path: Path | None = Field(default=None, description="exported query encoder; default MODEL/query_encoder.onnx")
    encoder_backend: EncoderBackend = "auto"  # auto: ONNX Runtime when the ONNX file exists, else PyTorch
    threads: int | None = Field(default=None, ge=1, description="torch / ONNX Runtime intra-op threads")

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = None  # None: every admin call is refused (401)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # the largest valid /recommend body is about 2 MB (32 turns of 2,000 chars and 1,000 excluded ids, every
    # char JSON-escaped as \uXXXX); anything over a few times that is refused with 413 before it is read
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="request body limit (413 beyond)")

    # pipeline
    candidates: int = Field(default=100, ge=50, le=10_000, description="retrieved per request, then reranked")
    diversity: float = Field(default=DIVERSITY, ge=0.0, le=1.0, description="served order's weight on covering "
                             "the dialogue's likely emotions (eigml.rerank.diverse_first); 0: the scores' order")
    one_per_emoji: bool = Field(default=True, description="at most one sticker of an emoji family (art styles, "
                                "genders, skin tones) in a top k while other stickers are left")
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=5.0, description="longest wait to grow a micro-batch")
    max_batch: int = Field(default=4, ge=1, le=256, description="most requests one worker computes at once; on CPU "
                           "a batch costs about its size times one request, so small batches keep the workers level "
                           "and the queue first in, first out (docs/performance.md); raise it for a GPU")
    workers: int = Field(default=1, ge=1, le=64, description="model worker threads, each computing one micro-batch "
                         "at a time (with `threads` intra-op threads each); workers x threads ~ cores")
    queue_size: int = Field(default=256, ge=1, description="requests waiting for the model; beyond it: 429")
    retry_after_seconds: int = Field(default=1, ge=1)
    queue_timeout_seconds: float = Field(default=5.0, gt=0.0, description="a request still queued after this "
                                         "long is answered 429 instead of computed (its client has likely left)")

    # cache and index sync
    # None: an in-process LRU cache, no pub/sub. redis://[user:password@]host:port/db, or rediss:// for TLS
    # (with ?ssl_ca_certs=/path/ca.pem&ssl_cert_reqs=required); the password may also come on its own:
    redis_url: str | None = None
    redis_username: str | None = None  # Redis 6 ACL user (AUTH username password)
    redis_password: SecretStr | None = None  # requirepass / the ACL user's password (STICKERS_REDIS_PASSWORD)
    redis_timeout_seconds: float = Field(default=0.05, gt=0.0)
    redis_health_check_seconds: float = Field(default=5.0, gt=0.0, description="how often the index-version "
                                              "subscription is PINGed; a silent one is reconnected")
    redis_prefix: str = "stickers:"  # keys: <prefix>query:<hash>, <prefix>index:version; channel <prefix>index
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    cache_entries: int = Field(default=10_000, ge=0, description="size of the in-process cache")

    # reindex
    index_factory: str = "Flat"
    reindex_device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("model", "index", "catalog", "cache_dir", "onnx_path")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def redis_auth(self) -> dict[str, str]:
        """Credentials given apart from the URL (they override the URL's), for `redis.Redis.from_url`."""
        auth = {}
        if self.redis_username:
            auth["username"] = self.redis_username
        if self.redis_password is not None:
            auth["password"] = self.redis_password.get_secret_value()
        return auth

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def feature_cache(self) -> Path:
        return self.cache_dir / "features"

    @property
    def resolved_onnx_path(self) -> Path:
        return self.onnx_path if self.onnx_path is not None else self.model / "query_encoder.onnx"
