"""SelectiveRanker's defaults learn on every layout: one large query, tiny groups, few rows; a setting
that cannot learn is named in a warning at fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xgboost as xgb

from selboost import Identity, ListwiseLoss, SelectiveRanker, xgboost_objective
from selboost.losses import auto_group_scale, plain_softmax_start_hessian
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
    with pytest.warns(UserWarning, match="min_child_weight below 0.49"):  # half the query's 0.9997
        SelectiveRanker(ListwiseLoss(group_scale=None), n_estimators=2).fit(X, y, group=[3000])
    with pytest.warns(UserWarning, match="min_child_weight"):
        SelectiveRanker(min_child_weight=50.0, n_estimators=2).fit(X, y, group=[3000])
    # under "auto" a flat transform still offers too little: temperature 10 offers 32 / 100
    with pytest.warns(UserWarning, match="min_child_weight below 0.16.*lower temperature"):
        SelectiveRanker(ListwiseLoss(0.1 * Identity()), n_estimators=2).fit(X, y, group=[3000])


def _start_hessians(bound, pointer):
    hess = bound.gradient_hessian(np.zeros(pointer[-1]))[1]
    return np.add.reduceat(hess, pointer[:-1])


@pytest.mark.parametrize("sizes", [[3000], [10] * 300, [3, 40, 7]])
def test_auto_group_scale_makes_the_training_sets_start_hessian_32(sizes):
    """One weight for every group, chosen so that the whole set offers a hessian of 32 at the start:
    one query of 3,000 rows is weighed up (32), 300 queries of 10 rows down (about 0.12; log2(1 + n),
    the previous rule, weighed them up by 3.5 and left the engines' brake too weak for many queries)."""
    rng = np.random.default_rng(4)
    sizes = np.array(sizes)
    pointer = np.concatenate([[0], np.cumsum(sizes)])
    y = rng.integers(0, 3, size=sizes.sum()).astype(float)
    y[pointer[:-1]] = 1.0  # every group holds a relevant row
    plain = ListwiseLoss(group_scale=None).bind(y, sizes)
    auto = ListwiseLoss().bind(y, sizes)
    ratio = _start_hessians(auto, pointer) / _start_hessians(plain, pointer)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # the same weight for every group
    assert _start_hessians(auto, pointer).sum() == pytest.approx(32.0, rel=1e-12)
    expected = 32.0 / np.sum(1.0 - 1.0 / sizes)  # the softmax's start hessian of a group is 1 - 1/n
    assert ratio[0] == pytest.approx(expected, rel=1e-9)
    z = rng.normal(size=sizes.sum())
    np.testing.assert_allclose(auto.loss(z), ratio[0] * plain.loss(z), rtol=1e-12)
    # the total is measured without sample weights, which multiply on top
    weighted = ListwiseLoss().bind(y, sizes, sample_weight=np.full(sizes.sum(), 5.0))
    np.testing.assert_allclose(weighted.gradient_hessian(z)[0], 5.0 * auto.gradient_hessian(z)[0], rtol=1e-12)


def test_auto_group_scale_keeps_a_floor_for_large_data():
    """Beyond a plain-softmax start hessian of 1024 the weight stays at 1/32 and the total grows: a
    fixed total of 32 would cap the leaves that can hold XGBoost's leaf minimum however large the data."""
    sizes = np.full(3000, 4)  # H = 3000 * (1 - 1/4) = 2250
    pointer = np.concatenate([[0], np.cumsum(sizes)])
    y = np.tile([2.0, 1.0, 0.0, 0.0], sizes.size)
    plain = ListwiseLoss(group_scale=None).bind(y, sizes)
    auto = ListwiseLoss().bind(y, sizes)
    assert _start_hessians(plain, pointer).sum() == pytest.approx(2250.0, rel=1e-12)
    assert _start_hessians(auto, pointer).sum() == pytest.approx(2250.0 / 32.0, rel=1e-12)
    assert auto_group_scale(2250.0) == 1.0 / 32.0 and auto_group_scale(1024.0) == 1.0 / 32.0
    assert auto_group_scale(64.0) == 0.5 and auto_group_scale(0.0) is None


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_auto_group_scale_leaves_the_temperature_its_effect(temperature):
    """"auto" is measured on the plain softmax, phi(z) = z: the transform z / tau still multiplies the
    start hessians by 1 / tau^2, so that the temperature keeps setting how hard the engines' brake acts
    (measured on the transform, the weight would cancel it). A group without a relevant row offers
    nothing and is not counted."""
    rng = np.random.default_rng(5)
    sizes = np.array([5, 12, 30, 8])
    pointer = np.concatenate([[0], np.cumsum(sizes)])
    y = rng.integers(1, 3, size=sizes.sum()).astype(float)
    y[pointer[2]:pointer[3]] = 0.0  # the third group holds no relevant row
    loss = ListwiseLoss((1.0 / temperature) * Identity())
    total = _start_hessians(loss.bind(y, sizes), pointer).sum()
    plain_total = np.sum(1.0 - 1.0 / sizes[[0, 1, 3]])
    assert total == pytest.approx(32.0 / temperature**2, rel=1e-12)
    assert plain_softmax_start_hessian(loss.bind(y, sizes).q, pointer) == pytest.approx(plain_total, rel=1e-15)


def test_numeric_group_scale_weighs_every_group_by_that_number():
    rng = np.random.default_rng(4)
    sizes = np.array([3, 40])
    y = rng.integers(0, 4, size=sizes.sum()).astype(float)
    z = rng.normal(size=sizes.sum())
    plain = ListwiseLoss(group_scale=None).bind(y, sizes)
    grad, hess = plain.gradient_hessian(z)
    bound = ListwiseLoss(group_scale=2.5).bind(y, sizes, sample_weight=np.full(sizes.sum(), 2.0))
    scaled_grad, scaled_hess = bound.gradient_hessian(z)
    np.testing.assert_allclose(scaled_grad, 5.0 * grad, rtol=1e-12)
    np.testing.assert_allclose(scaled_hess, 5.0 * hess, rtol=1e-12)
    np.testing.assert_allclose(bound.loss(z), 5.0 * plain.loss(z), rtol=1e-12)
    for bad, error in (("big", TypeError), (0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError), (True, TypeError)):
        with pytest.raises(error, match="group_scale"):
            ListwiseLoss(group_scale=bad)


def test_raw_xgboost_objective_learns_one_large_query_with_xgboost_defaults():
    X, y = _synthetic(3000, 1)
    dtrain = xgb.DMatrix(X, label=y, group=[3000])
    booster = xgb.train({"base_score": 0.0, "nthread": 2}, dtrain, 5, obj=xgboost_objective(ListwiseLoss()))
    assert np.unique(booster.predict(dtrain, output_margin=True)).size > 10


def test_a_temperature_on_xgboost_is_the_brake_times_tau_squared():
    """The documented equivalence: the transform z / tau trains, in z / tau, the model that the plain
    softmax trains with reg_lambda and min_child_weight times tau^2; under "auto" the temperature still
    changes the model (the weight is measured on the plain softmax)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = np.clip(np.round(X[:, 0] + 0.5 * rng.normal(size=600)), 0, 3)
    dtrain = xgb.DMatrix(X, label=y, group=[30] * 20)
    tau = 2.0
    base = {"base_score": 0.0, "nthread": 1, "max_depth": 3, "eta": 0.3}

    def margins(loss, **params):
        booster = xgb.train({**base, **params}, dtrain, 20, obj=xgboost_objective(loss))
        return booster.predict(dtrain, output_margin=True)

    tempered = margins(ListwiseLoss((1.0 / tau) * Identity(), group_scale=None),
                       reg_lambda=1.0, min_child_weight=1.0)
    braked = margins(ListwiseLoss(Identity(), group_scale=None), reg_lambda=tau**2, min_child_weight=tau**2)
    np.testing.assert_allclose(tempered / tau, braked, rtol=1e-6, atol=1e-6)
    auto_tempered = margins(ListwiseLoss((1.0 / tau) * Identity())) / tau
    auto_plain = margins(ListwiseLoss(Identity()))
    assert np.abs(auto_tempered - auto_plain).max() > 0.1
