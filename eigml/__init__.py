"""EIGML, the inference core: dialogue and label types, the catalogue reader, the model and its encoders,
the checkpoint format and the query-encoder export. It imports nothing from `training`, `index` or `service`."""

__version__ = "0.1.0"
