"""EIGML, the inference core: dialogue and label types, the catalogue reader, the model and its encoders,
the checkpoint format, the query-encoder export and the one rerank function (`eigml.rerank`).
It imports nothing from `training`, `index` or `service` (tests/core/test_boundaries.py checks)."""

__version__ = "0.1.0"
