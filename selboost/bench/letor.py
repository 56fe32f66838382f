"""Deprecated: the data API moved to ``selboost.datasets``; this module re-exports it."""

from __future__ import annotations

import warnings

from selboost.datasets import Fold, RankingSet, load_bundled, load_bundled_sets, load_folds, read_letor, split_by_query

__all__ = ["RankingSet", "Fold", "load_bundled_sets", "read_letor", "load_folds", "load_bundled", "split_by_query"]

warnings.warn("selboost.bench.letor is deprecated: import from selboost.datasets", FutureWarning, stacklevel=2)
