"""Compile the kernels that a deployment's fits will use into Numba's on-disk cache, ahead of time.

``selboost warmup`` fits a tiny model with each loss on each installed engine, through the estimators,
so that it compiles exactly what a fit compiles: the loss bound to float64 labels, the rounds on the
engine's score dtype (float32 for XGBoost, float64 for LightGBM), the default evaluation metric. A fresh
process then loads the machine code from the cache instead of compiling it.

Numba keeps its cache next to selboost's sources, or, where that folder is read-only, in a user cache
folder; ``NUMBA_CACHE_DIR`` puts it elsewhere (a container image's layer, a CI cache, a folder the
Dask workers share). Warm up with the same ``NUMBA_CACHE_DIR`` the fits will run with.
"""

from __future__ import annotations

import time

import numpy as np

#: what ``selboost warmup`` compiles without ``--losses``: the estimators' default losses
DEFAULT_LOSSES = ("selective", "binary", "multiclass", "listwise")

_KINDS = ("selective", "binary", "multiclass", "listwise", "pairwise")


def parse_loss(text):
    """A loss and the estimator class that fits it, from ``kind`` or ``kind:link``: ``kind`` one of
    selective, binary, multiclass, listwise, pairwise; ``link`` in the grammar of ``selboost
    plot-link`` (``"selective:identity + 9*sigmoid(2, 0.5)"``). Without a link: the estimators'
    default for that kind."""
    from selboost import (Identity, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveClassifier,
                          SelectiveLoss, SelectiveRanker, SelectiveRegressor, Sigmoid)
    from selboost.bench.plot_link import parse_link

    kind, _, link_text = text.partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS:
        raise ValueError(f"--losses: unknown loss kind {kind!r} in {text!r} (known: {', '.join(_KINDS)})")
    link = parse_link(link_text) if link_text.strip() else None
    if kind == "selective":
        return SelectiveLoss(link or Identity()), SelectiveRegressor
    if kind == "binary":
        return SelectiveLoss(link or 0.25 * Sigmoid(), target="link"), SelectiveClassifier
    if kind == "multiclass":
        return MulticlassLoss(link), SelectiveClassifier
    if kind == "listwise":
        return ListwiseLoss(link), SelectiveRanker
    return PairwiseLoss(link), SelectiveRanker


def _tiny_data(estimator_class, loss, rng):
    """Training data small enough that the fit costs nothing next to compilation."""
    from selboost import MulticlassLoss, SelectiveClassifier, SelectiveRanker

    X = rng.normal(size=(60, 3))
    if estimator_class is SelectiveRanker:
        return X, rng.integers(0, 3, size=60).astype(np.float64), {"group": np.full(6, 10)}
    if estimator_class is SelectiveClassifier:
        n_classes = 3 if isinstance(loss, MulticlassLoss) else 2
        return X, rng.integers(0, n_classes, size=60), {}
    return X, X[:, 0] + rng.normal(size=60), {}


def warm_up(losses=DEFAULT_LOSSES, engines=None, report=print):
    """Fit each loss (``parse_loss`` text) on each engine (default: every installed one) for two
    rounds, reporting what was compiled and how long it took; returns the total seconds."""
    import importlib.util

    from selboost.engines import ENGINE_NAMES, get_engine

    engines = [name for name in (engines or ENGINE_NAMES) if importlib.util.find_spec(get_engine(name).package)]
    if not engines:
        raise ValueError("no engine installed: pip install xgboost and/or lightgbm")
    parsed = [(text, *parse_loss(text)) for text in losses]
    rng = np.random.default_rng(0)
    total = 0.0
    for text, loss, estimator_class in parsed:
        X, y, fit_params = _tiny_data(estimator_class, loss, rng)
        for engine in engines:
            start = time.perf_counter()
            estimator_class(loss, engine=engine, n_estimators=2).fit(X, y, **fit_params)
            seconds = time.perf_counter() - start
            total += seconds
            report(f"{engine:<9} {seconds:5.2f} s  {loss!r}")
    return total


def cache_location():
    """Where Numba writes selboost's cache in this process."""
    import os

    from numba.core.config import CACHE_DIR

    from selboost import _kernels

    return CACHE_DIR or os.path.join(os.path.dirname(_kernels.__file__), "__pycache__") + \
        " (or a user cache folder if that one is read-only)"
