"""Metrics: NDCG against scikit-learn and the engines, region errors, engine callables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

import reference as R
from selboost import Identity, ListwiseLoss, MulticlassLoss, SelectiveLoss, Sigmoid
from selboost.metrics import (
    NDCG,
    LossMetric,
    RegionError,
    lightgbm_metric,
    loss_value,
    ndcg,
    ndcg_per_query,
    region_mae,
    region_rmse,
    xgboost_metric,
)
from selboost.objectives import lightgbm_objective, set_init_score, xgboost_objective

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")


def _queries(n_groups=25, size=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n_groups * size).astype(np.float64)
    y[:size] = 0.0  # one query with no relevant document
    score = rng.normal(size=y.size)
    return y, score, np.full(n_groups, size)


@pytest.mark.parametrize("k", [None, 1, 3, 10])
def test_ndcg_matches_sklearn_where_conventions_agree(k):
    y, score, group = _queries()
    n, size = group.size, group[0]
    ours = ndcg_per_query(y, score, group, k=k, no_relevant="zero", gain="linear")
    theirs = [ndcg_score(y[i * size:(i + 1) * size][None], score[i * size:(i + 1) * size][None], k=k)
              for i in range(n)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    # exponential gain = scikit-learn on 2^r - 1
    exp = ndcg(y, score, group, k=k, no_relevant="zero")
    assert exp == pytest.approx(ndcg_score((2.0 ** y - 1).reshape(n, size), score.reshape(n, size), k=k))


def test_no_relevant_conventions():
    y, score, group = _queries()
    per_one = ndcg_per_query(y, score, group, k=5, no_relevant="one")
    per_zero = ndcg_per_query(y, score, group, k=5, no_relevant="zero")
    assert per_one[0] == 1.0 and per_zero[0] == 0.0
    np.testing.assert_array_equal(per_one[1:], per_zero[1:])
    assert ndcg(y, score, group, 5) - ndcg(y, score, group, 5, "zero") == pytest.approx(1.0 / group.size)


def test_ndcg_of_ideal_order_is_one_and_ties_are_stable():
    y = np.array([3.0, 0.0, 1.0, 2.0])
    assert ndcg(y, y, [4], k=None) == pytest.approx(1.0)
    # all scores tied: input order is the ranking (stable sort)
    tied = ndcg(y, np.zeros(4), [4], k=None)
    dcg = sum((2**r - 1) / np.log2(i + 2) for i, r in enumerate(y))
    idcg = sum((2**r - 1) / np.log2(i + 2) for i, r in enumerate(sorted(y, reverse=True)))
    assert tied == pytest.approx(dcg / idcg)


def test_tie_conventions_by_hand():
    # gains 3, 0, 1; the first two documents tie
    y, score = np.array([2.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0])
    d1, d2 = 1.0 / np.log2(3.0), 1.0 / np.log2(4.0)
    ideal = 3.0 + 1.0 * d1
    expected = {"order": (3.0 + 1.0 * d2) / ideal,               # input order: [3, 0, 1]
                "pessimistic": (0.0 + 3.0 * d1 + 1.0 * d2) / ideal,  # least relevant first: [0, 3, 1]
                "average": (1.5 * (1.0 + d1) + 1.0 * d2) / ideal}   # the tied pair shares 1 + d1
    for ties, value in expected.items():
        assert ndcg(y, score, [3], k=None, ties=ties) == pytest.approx(value, rel=1e-15)
    # k=1 cuts inside the tied run: the run's mean gain times the one discount it keeps
    assert ndcg(y, score, [3], k=1, ties="average") == pytest.approx(1.5 / 3.0, rel=1e-15)
    with pytest.raises(ValueError, match="ties"):
        ndcg(y, score, [3], ties="random")


def test_no_relevant_conventions_by_hand():
    y = np.array([0.0, 0.0, 1.0, 0.0])  # query 0 has no relevant document; query 1 is ranked worst first
    score = np.array([0.5, 0.1, 0.0, 1.0])
    second = (1.0 / np.log2(3.0)) / 1.0
    np.testing.assert_allclose(ndcg_per_query(y, score, [2, 2], no_relevant="one"), [1.0, second])
    np.testing.assert_allclose(ndcg_per_query(y, score, [2, 2], no_relevant="zero"), [0.0, second])
    skipped = ndcg_per_query(y, score, [2, 2], no_relevant="skip")
    assert np.isnan(skipped[0]) and skipped[1] == pytest.approx(second)
    assert ndcg(y, score, [2, 2], no_relevant="one") == pytest.approx((1.0 + second) / 2)
    assert ndcg(y, score, [2, 2], no_relevant="zero") == pytest.approx(second / 2)
    assert ndcg(y, score, [2, 2], no_relevant="skip") == pytest.approx(second)
    assert np.isnan(ndcg(y[:2], score[:2], [2], no_relevant="skip"))  # nothing left to average


@pytest.mark.parametrize("k", [None, 1, 3, 5, 10])
def test_tied_ndcg_matches_sklearn(k):
    """scikit-learn averages ties and counts a query with no relevant document as 0."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 15, size=60)
    y = rng.integers(0, 4, size=sizes.sum()).astype(float)
    y[:sizes[0]] = 0.0
    score = rng.integers(0, 5, size=sizes.sum()).astype(float)  # many ties
    pointer = np.concatenate([[0], np.cumsum(sizes)])
    linear = ndcg_per_query(y, score, sizes, k=k, no_relevant="zero", gain="linear", ties="average")
    exponential = ndcg_per_query(y, score, sizes, k=k, no_relevant="zero", ties="average")
    for q in range(sizes.size):
        yq, sq = y[pointer[q]:pointer[q + 1]], score[pointer[q]:pointer[q + 1]]
        if yq.size == 1:  # scikit-learn refuses single-document queries
            continue
        assert linear[q] == pytest.approx(ndcg_score([yq], [sq], k=k), abs=1e-12)
        assert exponential[q] == pytest.approx(ndcg_score([2.0 ** yq - 1], [sq], k=k), abs=1e-12)


@pytest.mark.parametrize("ties", ["order", "average", "pessimistic"])
@pytest.mark.parametrize("gain", ["exponential", "linear"])
def test_ndcg_matches_the_loop_reference(ties, gain):
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 12, size=50)
    y = rng.integers(0, 4, size=sizes.sum()).astype(float)
    score = rng.integers(0, 4, size=sizes.sum()).astype(float)
    pointer = np.concatenate([[0], np.cumsum(sizes)])
    for k in (None, 1, 3, 10):
        ours = ndcg_per_query(y, score, sizes, k=k, no_relevant="skip", gain=gain, ties=ties)
        for q in range(sizes.size):
            expected = R.ndcg_query(y[pointer[q]:pointer[q + 1]], score[pointer[q]:pointer[q + 1]], k, gain, ties)
            if expected is None:
                assert np.isnan(ours[q])
            else:
                assert ours[q] == pytest.approx(expected, abs=1e-13)


def test_ndcg_metric_conventions():
    y, score, group = _queries()
    weight = np.arange(1.0, group.size + 1)
    for no_relevant, name in (("one", "ndcg@5"), ("zero", "ndcg@5-"), ("skip", "ndcg@5-skip")):
        metric = NDCG(5, no_relevant=no_relevant, ties="average")
        assert metric.name == name
        assert metric(y, score, group) == pytest.approx(ndcg(y, score, group, 5, no_relevant, ties="average"))
    per_query = ndcg_per_query(y, score, group, 5, "skip")
    assert NDCG(5, "skip")(y, score, group, group_weight=weight) == pytest.approx(
        np.average(per_query[1:], weights=weight[1:]))
    assert repr(NDCG(3)) == "NDCG(k=3, no_relevant='one', gain='exponential')"
    with pytest.raises(ValueError, match="ties"):
        NDCG(ties="best")


def test_ndcg_matches_lightgbm_and_xgboost_builtin_metrics():
    rng = np.random.default_rng(1)
    n_groups, size = 60, 15
    X = rng.normal(size=(n_groups * size, 4))
    y = np.clip(np.round(X[:, 0] + rng.normal(size=len(X)) + 1), 0, 3)
    y[:size] = 0  # LightGBM and XGBoost's ndcg count such a query as 1
    group = np.full(n_groups, size)
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [5], "verbose": -1, "num_threads": 1}
    dset = lgb.Dataset(X, y, group=group)
    record = {}
    booster = lgb.train(params, dset, 5, valid_sets=[dset], valid_names=["train"],
                        callbacks=[lgb.record_evaluation(record)])
    ours = ndcg(y, booster.predict(X), group, k=5, no_relevant="one")
    assert ours == pytest.approx(record["train"]["ndcg@5"][-1], rel=1e-6)

    dtrain = xgb.DMatrix(X, label=y, group=group)
    result = {}
    b = xgb.train({"objective": "rank:ndcg", "eval_metric": ["ndcg@5", "ndcg@5-"], "nthread": 1}, dtrain, 5,
                  evals=[(dtrain, "train")], evals_result=result, verbose_eval=False)
    scores = b.predict(dtrain)
    assert ndcg(y, scores, group, k=5, no_relevant="one") == pytest.approx(result["train"]["ndcg@5"][-1], abs=1e-6)
    assert ndcg(y, scores, group, k=5, no_relevant="zero") == pytest.approx(result["train"]["ndcg@5-"][-1], abs=1e-6)


def test_ndcg_bad_input():
    y, score, group = _queries()
    with pytest.raises(ValueError, match="no_relevant"):
        ndcg(y, score, group, no_relevant="half")
    with pytest.raises(ValueError, match="sum to"):
        ndcg(y, score, group[:-1])
    with pytest.raises(ValueError, match="k must be"):
        ndcg(y, score, group, k=0)
    with pytest.raises(ValueError, match="score has"):
        ndcg(y, score[:-1], group)
    with pytest.raises(ValueError, match=">= 0"):
        ndcg(-y - 1, score, group)


def test_region_errors():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pred = np.array([0.5, 1.5, 1.0, 3.0, 10.0])
    assert region_rmse(y, pred, 1.0, 3.0) == pytest.approx(np.sqrt((0.25 + 1.0 + 0.0) / 3))
    assert region_mae(y, pred, 1.0, 3.0) == pytest.approx((0.5 + 1.0) / 3)
    w = np.array([1.0, 2.0, 1.0, 1.0, 5.0])
    assert region_rmse(y, pred, 1.0, 3.0, w) == pytest.approx(np.sqrt((2 * 0.25 + 1.0) / 4))
    assert region_rmse(y, pred, -np.inf, np.inf) == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)))
    with pytest.raises(ValueError, match="no target"):
        region_rmse(y, pred, 7.0, 8.0)
    with pytest.raises(ValueError, match="lo <= hi"):
        RegionError(3.0, 1.0)


def test_loss_value_is_the_weighted_mean_loss():
    rng = np.random.default_rng(0)
    y, z, w = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.5, 2, size=50)
    loss = SelectiveLoss(Identity() + 3 * Sigmoid(0.5, 0.3))
    assert loss_value(loss, y, z, sample_weight=w) == pytest.approx(loss.loss(y, z, w).sum() / w.sum())
    assert LossMetric(loss)(y, z, sample_weight=w) == pytest.approx(loss_value(loss, y, z, sample_weight=w))
    yl, group = rng.integers(0, 3, 50).astype(float), np.array([20, 30])
    assert loss_value(ListwiseLoss(), yl, z, group) == pytest.approx(ListwiseLoss().loss(yl, z, group).mean())
    labels = rng.integers(0, 3, 50)
    raw = rng.normal(size=(50, 3))
    assert loss_value(MulticlassLoss(), labels, raw) == pytest.approx(MulticlassLoss().loss(labels, raw).mean())


def test_engine_metric_callables_drive_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=600)
    Xv, yv = X[:200] + 0.05, y[:200]
    loss = SelectiveLoss()
    metric = RegionError(0.0, 2.0)

    dtrain, dvalid = xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)
    init = set_init_score(dtrain, loss)
    set_init_score(dvalid, loss, init=init)
    result = {}
    booster = xgb.train({"eta": 0.5, "nthread": 1, "disable_default_eval_metric": 1}, dtrain, 200,
                        evals=[(dvalid, "valid")], obj=xgboost_objective(loss), custom_metric=xgboost_metric(metric),
                        early_stopping_rounds=5, evals_result=result, verbose_eval=False)
    values = result["valid"]["region_rmse"]
    assert booster.best_iteration < 199 and len(values) < 200
    assert values[booster.best_iteration] == pytest.approx(min(values))
    expected = region_rmse(yv, booster.predict(dvalid, iteration_range=(0, len(values))), 0.0, 2.0)
    assert values[-1] == pytest.approx(expected, rel=1e-5)

    dtrain = lgb.Dataset(X, y)
    dvalid = lgb.Dataset(Xv, yv, reference=dtrain)
    init = set_init_score(dtrain, loss)
    set_init_score(dvalid, loss, init=init)
    record = {}
    booster = lgb.train({"objective": lightgbm_objective(loss), "learning_rate": 0.5, "verbose": -1,
                         "num_threads": 1, "metric": "None"}, dtrain, 200, valid_sets=[dvalid],
                        valid_names=["valid"], feval=lightgbm_metric(metric),
                        callbacks=[lgb.early_stopping(5, verbose=False), lgb.record_evaluation(record)])
    values = record["valid"]["region_rmse"]
    assert len(values) < 200
    # LightGBM returns the model cut at its best iteration (1-based)
    expected = region_rmse(yv, booster.predict(Xv, raw_score=True) + init, 0.0, 2.0)
    assert values[booster.best_iteration - 1] == pytest.approx(expected, rel=1e-6) == min(values)


def test_ndcg_metric_name_makes_xgboost_maximise():
    metric = NDCG(k=5)
    assert metric.name == "ndcg@5" and metric.higher_is_better
    assert NDCG(k=5, no_relevant="zero").name == "ndcg@5-"
    y, score, group = _queries()
    dmatrix = xgb.DMatrix(np.zeros((len(y), 1)), label=y, group=group)
    name, value = xgboost_metric(metric)(score.astype(np.float32), dmatrix)
    assert name == "ndcg@5" and value == pytest.approx(ndcg(y, score.astype(np.float32), group, k=5))
    dset = lgb.Dataset(np.zeros((len(y), 1)), y, group=group)
    name, value, higher = lightgbm_metric(metric)(score, dset)
    assert higher and value == pytest.approx(ndcg(y, score, group, k=5))
    with pytest.raises(TypeError, match="metric"):
        xgboost_metric("ndcg")
