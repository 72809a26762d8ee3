"""EIGML sticker recommendation: data, catalogue, model, training and evaluation."""

__version__ = "0.1.0"
