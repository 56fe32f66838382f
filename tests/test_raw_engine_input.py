"""The raw engine paths (``set_init_score``, ``xgboost_objective``, ``lightgbm_objective`` on the engines'
own data objects): bad initial scores, small LightGBM Datasets, and labels the engines would alter."""

from __future__ import annotations

import numpy as np
import pytest

from selboost import Identity, MulticlassLoss, SelectiveLoss
from selboost.objectives import set_init_score

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")


def _regression(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X[:, 0] + 0.1 * rng.normal(size=n) + 2.0


def _data(engine, X, y, group=None):
    if engine == "xgboost":
        return xgb.DMatrix(X, label=y, group=group)
    return lgb.Dataset(X, y, group=group)


def _margin(data):
    """The initial score set on ``data`` (None when there is none)."""
    if isinstance(data, xgb.DMatrix):
        margin = data.get_base_margin()
        return margin if margin.size else None
    return data.init_score


# ---------------------------------------------------------------- non-finite init


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("init", [float("nan"), float("inf"), -np.inf, np.float32("nan")])
def test_set_init_score_rejects_a_non_finite_scalar_init(engine, init):
    X, y = _regression(30)
    data = _data(engine, X, y)
    with pytest.raises(ValueError, match="init must be finite"):
        set_init_score(data, SelectiveLoss(Identity()), init=init)
    assert _margin(data) is None  # nothing was set


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_set_init_score_rejects_a_non_finite_entry_of_a_class_vector(engine, bad):
    X, _ = _regression(30)
    data = _data(engine, X, np.arange(30) % 3)
    with pytest.raises(ValueError, match="init must be finite: 1 NaN or infinite value.*index 1"):
        set_init_score(data, MulticlassLoss(), init=[0.0, bad, 0.0])
    assert _margin(data) is None


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("init", [None, 1.5, np.float32(1.5), np.array(1.5)])
def test_a_scalar_init_gives_a_float_and_one_margin_per_row(engine, init):
    X, y = _regression(30)
    data = _data(engine, X, y)
    returned = set_init_score(data, SelectiveLoss(Identity()), init=init)
    assert type(returned) is float
    assert np.shape(_margin(data)) == (30,)


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_set_init_score_rejects_a_non_numeric_init(engine):
    X, y = _regression(30)
    with pytest.raises(TypeError, match="init must hold real numbers"):
        set_init_score(_data(engine, X, y), SelectiveLoss(Identity()), init="zero")
