"""Training and evaluation on top of the `eigml` core: data (data/), the training loop (train.py), the
benchmarks and baselines (benchmarks/), the catalogue builder and the command-line recommender."""

__version__ = "0.1.0"
