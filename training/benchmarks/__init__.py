"""Ranking and scoring: metrics, baseline rankers, the checkpoint ranker, the `rank`/`evaluate` commands,
and the benchmark commands that rewrite docs/results.md (baselines, trained runs, ablations)."""
