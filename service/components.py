"""The heavy objects a replica serves with, loaded once (at startup, in a thread) and injected into the app.

`load_components(settings, ...)` reads the checkpoint, the query encoder (ONNX Runtime when exported,
else PyTorch), the index version Redis names (else the root's CURRENT) and picks the cache. Tests build
`Components` from objects they already hold with `assemble`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from eigml.dialogue import Dialogue, Turn
from eigml.model.eigml import EIGML
from service.cache import CheckedCache, MemoryCache, RedisCache, connect_redis
from service.encodings import encoding_layout, encoding_rows
from service.index_sync import IndexSync
from service.indexes import BuildIndex, LoadIndex
from service.metrics import ServiceMetrics
from service.recommender import QueryCache, QueryEncoderLike, Recommender, SearchIndex
from service.settings import Settings

log = logging.getLogger(__name__)
WARM_UP = Dialogue((Turn("A", "hello, how are you?"), Turn("B", "great, thanks!")))


@dataclass
class Components:
    metrics: ServiceMetrics
    recommender: Recommender
    load_index: LoadIndex  # (root, version | None) -> index, for reloads
    build_index: BuildIndex  # (root) -> version: rebuild from the catalogue, publish under root


def make_cache(settings: Settings, metrics: ServiceMetrics, encoder: QueryEncoderLike) -> QueryCache:
    """Redis (shared, so every value is checked against this model's encoding layout) or in-process."""
    if settings.redis_url:
        client = connect_redis(settings.redis_url, settings.redis_timeout_seconds, settings.redis_auth)
        redis_cache = RedisCache(client, settings.redis_prefix, settings.cache_ttl_seconds, metrics)
        layout = encoding_layout(encoding_rows(encoder.encode([WARM_UP]))[0])
        return CheckedCache(redis_cache, layout, metrics)
    return MemoryCache(settings.cache_entries, settings.cache_ttl_seconds, metrics)


def default_load_index(root: Path, version: str | None) -> SearchIndex:
    from index.search import load_index

    return load_index(root, version)


def default_build_index(settings: Settings, model: EIGML) -> BuildIndex:
    """Rebuilds with the loaded model from the configured catalogue (image features cached on disk).

    The new version keeps what the CURRENT one serves: its packs (a pack removed with `--remove-pack`,
    e.g. a licence takedown, stays out), its factory and search settings (IVF/HNSW, nprobe). Only an empty
    root is built from every pack with `settings.index_factory`.
    """
    def build(root: Path) -> str:
        from eigml.catalog import load_catalog
        from index.build import build_index, update_index
        from index.store import current_version

        catalog = load_catalog(settings.catalog)
        if current_version(root) is None:
            return build_index(model, catalog, root, factory=settings.index_factory,
                               device=settings.reindex_device, feature_cache=settings.feature_cache,
                               publish=True, progress=False)
        return update_index(model, catalog, root, allow_model_change=True, device=settings.reindex_device,
                            feature_cache=settings.feature_cache, publish=True, progress=False)

    return build


def assemble(settings: Settings, metrics: ServiceMetrics, model: EIGML, encoder: QueryEncoderLike,
             index: SearchIndex, *, load_index: LoadIndex = default_load_index,
             build_index: BuildIndex | None = None) -> Components:
    """Components from loaded objects; MismatchError when the index was built with another model."""
    recommender = Recommender(model, encoder, index, candidates=settings.candidates,
                              cache=make_cache(settings, metrics, encoder), on_stage=metrics.observe_stage,
                              diversity=settings.diversity, one_per_emoji=settings.one_per_emoji)
    return Components(metrics=metrics, recommender=recommender, load_index=load_index,
                      build_index=build_index or default_build_index(settings, model))


def load_startup_index(settings: Settings, sync: IndexSync | None,
                       load_index: LoadIndex = default_load_index) -> SearchIndex:
    """The version Redis names when this replica has it, else the root's CURRENT."""
    version = sync.current_version() if sync is not None else None
    if version is not None:
        try:
            return load_index(settings.index, version)
        except (OSError, LookupError, ValueError) as error:  # index.store.IndexStoreError is a ValueError
            log.warning("redis names index %s, which is not loadable here (%s); loading CURRENT", version, error)
    return load_index(settings.index, None)


def load_components(settings: Settings, metrics: ServiceMetrics, sync: IndexSync | None = None) -> Components:
    from eigml.checkpoint import load_checkpoint
    from eigml.export import QueryEncoder

    model = load_checkpoint(settings.model, models_dir=settings.models_dir)
    encoder = QueryEncoder(model, settings.resolved_onnx_path, settings.encoder_backend, settings.threads)
    index = load_startup_index(settings, sync)
    # one request through a throwaway recommender (no cache, no metrics): lazy initialisation in the
    # encoder runtime and torch happens now, before /readyz says ready, not in the first user's request
    Recommender(model, encoder, index, candidates=settings.candidates).recommend(WARM_UP, top_k=1)
    log.info("model %s (%s encoder), index %s with %d stickers", model.version, encoder.backend, index.version,
             len(index))
    return assemble(settings, metrics, model, encoder, index)
