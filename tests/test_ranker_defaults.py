"""SelectiveRanker's defaults learn on every layout: one large query, tiny groups, few rows; a setting
that cannot learn is named in a warning at fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xgboost as xgb

from selboost import ListwiseLoss, SelectiveRanker, xgboost_objective
from selboost.metrics import ndcg


def _synthetic(n_rows, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 10))
    y = np.clip(np.round(1.2 * X[:, 0] + 0.8 * X[:, 1] * X[:, 2] + 0.7 * rng.normal(size=n_rows)), 0, 4)
    return X, y


def _random_order_ndcg(y, group, rng, draws=20):
    return float(np.mean([ndcg(y, rng.random(y.size), group, k=10) for _ in range(draws)]))


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_one_query_of_3000_rows_is_learned(engine):
    """The softmax's hessians of one query sum to < 1: without the group scale XGBoost's min_child_weight
    = 1 allows no split (a constant model). The default ranker is not constant and beats random order."""
    X, y = _synthetic(3000, 1)
    X_test, y_test = _synthetic(3000, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults must not warn
        ranker = SelectiveRanker(engine=engine, n_estimators=10).fit(X, y, group=[3000])
    scores = ranker.predict(X_test)
    assert np.unique(scores).size > 10
    random_order = _random_order_ndcg(y_test, [3000], np.random.default_rng(0))
    assert ranker.score(X_test, y_test, group=[3000]) > random_order + 0.3


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("size", [1, 2, 10])
def test_tiny_groups_and_few_rows_are_learned(engine, size):
    X, y = _synthetic(120 if size > 1 else 60, 3)
    group = np.full(X.shape[0] // size, size)
    ranker = SelectiveRanker(engine=engine, n_estimators=10).fit(X, y, group=group)
    assert np.unique(ranker.predict(X)).size > 1 or size == 1
    if size > 1:
        assert ranker.score(X, y, group=group) > _random_order_ndcg(y, group, np.random.default_rng(0))


def test_a_leaf_minimum_no_query_reaches_is_named_at_fit():
    X, y = _synthetic(3000, 1)
    with pytest.warns(UserWarning, match="min_child_weight below 0.99"):
        SelectiveRanker(ListwiseLoss(group_scale=None), n_estimators=2).fit(X, y, group=[3000])
    with pytest.warns(UserWarning, match="min_child_weight"):
        SelectiveRanker(min_child_weight=50.0, n_estimators=2).fit(X, y, group=[3000])


def test_group_scale_weighs_every_group_of_n_rows_by_log2_of_1_plus_n():
    rng = np.random.default_rng(4)
    sizes = np.array([3, 40])
    y = rng.integers(0, 4, size=sizes.sum()).astype(float)
    z = rng.normal(size=sizes.sum())
    plain = ListwiseLoss(group_scale=None).bind(y, sizes)
    grad, hess = plain.gradient_hessian(z)
    factor = np.repeat([2.0, np.log2(41.0)], sizes)  # log2(1 + 3), log2(1 + 40)
    for loss, expected in ((ListwiseLoss(), factor), (ListwiseLoss(group_scale=2.5), 2.5)):
        bound = loss.bind(y, sizes, sample_weight=np.full(sizes.sum(), 2.0))
        scaled_grad, scaled_hess = bound.gradient_hessian(z)
        np.testing.assert_allclose(scaled_grad, 2.0 * expected * grad, rtol=1e-12)
        np.testing.assert_allclose(scaled_hess, 2.0 * expected * hess, rtol=1e-12)
        per_group = np.array([2.0, np.log2(41.0)]) if loss.group_scale == 'auto' else 2.5
        np.testing.assert_allclose(bound.loss(z), 2.0 * per_group * plain.loss(z), rtol=1e-12)
    for bad, error in (("big", TypeError), (0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError), (True, TypeError)):
        with pytest.raises(error, match="group_scale"):
            ListwiseLoss(group_scale=bad)


def test_raw_xgboost_objective_learns_one_large_query_with_xgboost_defaults():
    X, y = _synthetic(3000, 1)
    dtrain = xgb.DMatrix(X, label=y, group=[3000])
    booster = xgb.train({"base_score": 0.0, "nthread": 2}, dtrain, 5, obj=xgboost_objective(ListwiseLoss()))
    assert np.unique(booster.predict(dtrain, output_margin=True)).size > 10
