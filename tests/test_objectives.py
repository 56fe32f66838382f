"""Engine adapters: parity with the engines' built-in objectives, weights, groups, initial scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from selboost import Identity, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss, Sigmoid
from selboost.metrics import ndcg
from selboost.engines.lightgbm import LightGBMObjective, LightGBMSklearnObjective
from selboost.engines.xgboost import XGBoostObjective
from selboost.objectives import lightgbm_objective, set_init_score, xgboost_objective

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

ROUNDS = 15
XGB_PARAMS = {"max_depth": 4, "eta": 0.3, "nthread": 1, "tree_method": "hist", "verbosity": 0}
LGB_PARAMS = {"num_leaves": 15, "learning_rate": 0.3, "verbose": -1, "num_threads": 1,
              "force_row_wise": True, "deterministic": True, "metric": "None"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 1500
    X = rng.normal(size=(n, 5))
    y = 2.0 * X[:, 0] + np.sin(3 * X[:, 1]) + 0.3 * rng.normal(size=n) + 3.0
    return X, y


@pytest.fixture(scope="module")
def lambdarank():
    """{split: (X, relevance, group sizes)} of the LightGBM lambdarank sample bundled in selboost/data."""
    from selboost.datasets import load_bundled_sets

    return {split: (s.X, s.y, s.group) for split, s in load_bundled_sets().items()}


# ---------------------------------------------------------------- parity with built-in objectives


def test_identity_link_reproduces_xgboost_squarederror(data):
    X, y = data
    builtin = xgb.DMatrix(X, label=y, base_margin=np.full(len(y), y.mean()))
    b1 = xgb.train({**XGB_PARAMS, "objective": "reg:squarederror"}, builtin, ROUNDS)
    dtrain = xgb.DMatrix(X, label=y)
    objective = xgboost_objective(SelectiveLoss(Identity()))
    init = set_init_score(dtrain, objective.loss)
    assert init == pytest.approx(y.mean(), rel=1e-6)
    b2 = xgb.train(XGB_PARAMS, dtrain, ROUNDS, obj=objective)
    np.testing.assert_allclose(b2.predict(dtrain), b1.predict(builtin), rtol=2e-6, atol=2e-6)


def test_identity_link_reproduces_lightgbm_regression(data):
    X, y = data
    b1 = lgb.train({**LGB_PARAMS, "objective": "regression"}, lgb.Dataset(X, y), ROUNDS)
    dtrain = lgb.Dataset(X, y)
    init = set_init_score(dtrain, SelectiveLoss(Identity()))
    b2 = lgb.train({**LGB_PARAMS, "objective": lightgbm_objective(SelectiveLoss(Identity()))}, dtrain, ROUNDS)
    # LightGBM's own regression starts at the mean (boost_from_average); the custom objective starts at
    # the init_score, which LightGBM does not add at prediction
    np.testing.assert_allclose(b2.predict(X, raw_score=True) + init, b1.predict(X), rtol=2e-6, atol=2e-6)


def test_weighted_identity_matches_weighted_builtin(data):
    X, y = data
    w = np.random.default_rng(1).uniform(0.2, 3.0, size=len(y))
    mean = np.average(y, weights=w)
    b1 = xgb.train({**XGB_PARAMS, "objective": "reg:squarederror"},
                   xgb.DMatrix(X, label=y, weight=w, base_margin=np.full(len(y), mean)), ROUNDS)
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    assert set_init_score(dtrain, SelectiveLoss()) == pytest.approx(mean, rel=1e-6)
    b2 = xgb.train(XGB_PARAMS, dtrain, ROUNDS, obj=xgboost_objective(SelectiveLoss()))
    np.testing.assert_allclose(b2.predict(dtrain), b1.predict(xgb.DMatrix(X, base_margin=np.full(len(y), mean))),
                               rtol=2e-6, atol=2e-6)
    l1 = lgb.train({**LGB_PARAMS, "objective": "regression"}, lgb.Dataset(X, y, weight=w), ROUNDS)
    dset = lgb.Dataset(X, y, weight=w)
    init = set_init_score(dset, SelectiveLoss())
    l2 = lgb.train({**LGB_PARAMS, "objective": lightgbm_objective(SelectiveLoss())}, dset, ROUNDS)
    np.testing.assert_allclose(l2.predict(X, raw_score=True) + init, l1.predict(X), rtol=2e-6, atol=2e-6)


def test_sigmoid_link_reproduces_logistic_objectives(data):
    X, y = data
    label = (y > 3.5).astype(np.float64)
    # hess_min at XGBoost's own floor (1e-16): the default 1e-6 would differ on saturated rows
    loss = SelectiveLoss(0.25 * Sigmoid(), target="link", hess_min=1e-16)
    builtin = xgb.DMatrix(X, label=label)
    init = set_init_score(builtin, loss)
    assert init == pytest.approx(np.log(label.mean() / (1 - label.mean())), rel=1e-9)
    b1 = xgb.train({**XGB_PARAMS, "objective": "binary:logistic"}, builtin, ROUNDS)
    dtrain = xgb.DMatrix(X, label=label)
    set_init_score(dtrain, loss)
    b2 = xgb.train(XGB_PARAMS, dtrain, ROUNDS, obj=xgboost_objective(loss))
    np.testing.assert_allclose(b2.predict(dtrain, output_margin=True), b1.predict(builtin, output_margin=True),
                               rtol=1e-5, atol=1e-5)

    l1 = lgb.train({**LGB_PARAMS, "objective": "binary"}, lgb.Dataset(X, label), ROUNDS)
    dset = lgb.Dataset(X, label)
    init = set_init_score(dset, loss)
    l2 = lgb.train({**LGB_PARAMS, "objective": lightgbm_objective(loss)}, dset, ROUNDS)
    np.testing.assert_allclose(l2.predict(X, raw_score=True) + init, l1.predict(X, raw_score=True),
                               rtol=1e-6, atol=1e-6)


def _classes(y):
    return np.digitize(y, [2.0, 3.5, 4.5]).astype(np.float64)


def test_multiclass_reproduces_xgboost_softprob_with_hess_scale_2(data):
    """XGBoost's softprob hessian is 2 p (1 - p) (src/objective/multiclass_obj.cu), twice the
    Gauss-Newton p (1 - p) of MulticlassLoss: hess_scale=2 reproduces it."""
    X, y = data
    label, k = _classes(y), 4
    loss = MulticlassLoss(hess_min=1e-16)
    builtin = xgb.DMatrix(X, label=label)
    init = set_init_score(builtin, loss, n_classes=k)
    assert init.shape == (k,)
    b1 = xgb.train({**XGB_PARAMS, "objective": "multi:softprob", "num_class": k}, builtin, ROUNDS)
    dtrain = xgb.DMatrix(X, label=label)
    set_init_score(dtrain, loss, init=init)
    b2 = xgb.train({**XGB_PARAMS, "num_class": k}, dtrain, ROUNDS, obj=xgboost_objective(loss, hess_scale=2.0))
    raw1, raw2 = b1.predict(builtin, output_margin=True), b2.predict(dtrain, output_margin=True)
    assert raw2.shape == (len(y), k)
    np.testing.assert_allclose(raw2, raw1, rtol=1e-5, atol=1e-5)
    # without the factor the trees differ: the scale is a real difference, not noise
    b3 = xgb.train({**XGB_PARAMS, "num_class": k}, dtrain, ROUNDS, obj=xgboost_objective(loss))
    assert np.abs(b3.predict(dtrain, output_margin=True) - raw1).max() > 1e-2


def test_multiclass_reproduces_lightgbm_multiclass_with_hess_scale_k_over_k_minus_1(data):
    """LightGBM's multiclass hessian is k / (k - 1) p (1 - p) (src/objective/multiclass_objective.hpp)."""
    X, y = data
    label, k = _classes(y), 4
    loss = MulticlassLoss(hess_min=1e-16)
    l1 = lgb.train({**LGB_PARAMS, "objective": "multiclass", "num_class": k}, lgb.Dataset(X, label), ROUNDS)
    dset = lgb.Dataset(X, label)
    # LightGBM starts each class at log(frequency); any per-row shift is the same softmax, but the
    # raw scores match exactly only from the same constant
    freq = np.bincount(label.astype(int), minlength=k) / len(label)
    init = set_init_score(dset, loss, init=np.log(freq))
    l2 = lgb.train({**LGB_PARAMS, "num_class": k, "objective": lightgbm_objective(loss, hess_scale=k / (k - 1))},
                   dset, ROUNDS)
    np.testing.assert_allclose(l2.predict(X, raw_score=True) + init, l1.predict(X, raw_score=True),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- groups and weights


def _ranking(n_groups=40, size=12, seed=0):
    rng = np.random.default_rng(seed)
    n = n_groups * size
    X = rng.normal(size=(n, 4))
    y = np.clip(np.round(X[:, 0] + 0.5 * rng.normal(size=n) + 1.5), 0, 4)
    return X, y, np.full(n_groups, size)


@pytest.mark.parametrize("loss", [ListwiseLoss(), PairwiseLoss(pairs_per_item=4)], ids=["listwise", "pairwise"])
def test_xgboost_group_weights_are_per_group(loss):
    X, y, group = _ranking()
    gw = np.random.default_rng(2).uniform(0.5, 2.0, size=group.size)
    dtrain = xgb.DMatrix(X, label=y, group=group, weight=gw)
    z = np.random.default_rng(3).normal(size=len(y)).astype(np.float32)
    grad, hess = xgboost_objective(loss)(z, dtrain)
    expected_g, expected_h = loss.gradient_hessian(y, z.astype(np.float64), group, group_weight=gw)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, expected_g, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hess, expected_h, rtol=1e-6, atol=1e-7)


def test_lightgbm_weights_are_per_row():
    X, y, group = _ranking()
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(y))
    dset = lgb.Dataset(X, y, group=group, weight=w)
    z = np.random.default_rng(3).normal(size=len(y))
    grad, hess = lightgbm_objective(ListwiseLoss())(z, dset)
    expected_g, expected_h = ListwiseLoss().gradient_hessian(y, z, group, sample_weight=w)
    np.testing.assert_allclose(grad, expected_g, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hess, expected_h, rtol=1e-6, atol=1e-7)


def test_bound_once_and_buffers_reused():
    X, y, group = _ranking()
    dtrain = xgb.DMatrix(X, label=y, group=group)
    objective = xgboost_objective(ListwiseLoss())
    z = np.zeros(len(y), dtype=np.float32)
    g1, h1 = objective(z, dtrain)
    bound = objective.bind(dtrain)
    g2, h2 = objective(z + 1, dtrain)
    assert objective.bind(dtrain) is bound
    assert g1 is g2 and h1 is h2 and g1.dtype == np.float32


@pytest.mark.parametrize("make", [xgboost_objective, lightgbm_objective, XGBoostObjective, LightGBMObjective,
                                  LightGBMSklearnObjective])
def test_objective_defaults_to_one_thread_and_can_override(make):
    """The engines' threads occupy the cores during a round: the kernels run on 1 thread unless asked."""
    loss = SelectiveLoss()
    state = dict(vars(loss))
    assert make(loss).n_threads == 1
    objective = make(loss, n_threads=-1)
    assert objective.n_threads == -1
    assert objective.loss is loss  # used as it is, not copied
    assert vars(loss) == state  # and not modified
    for bad, error in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n_threads"):
            make(loss, n_threads=bad)


def test_threaded_objective_equals_the_serial_one():
    from selboost._kernels import GROUPS_PER_CHUNK

    X, y, group = _ranking(n_groups=3 * GROUPS_PER_CHUNK + 5)  # more groups than one chunk: really threaded
    dtrain = xgb.DMatrix(X, label=y, group=group)
    z = np.random.default_rng(1).normal(size=len(y)).astype(np.float32)
    loss = ListwiseLoss(Identity() + Sigmoid())
    serial = [a.copy() for a in xgboost_objective(loss)(z, dtrain)]
    threaded = xgboost_objective(loss, n_threads=2)(z, dtrain)
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)


def test_listwise_without_groups_is_a_clear_error():
    X, y, _ = _ranking()
    with pytest.raises(ValueError, match="needs query groups"):
        xgboost_objective(ListwiseLoss())(np.zeros(len(y), np.float32), xgb.DMatrix(X, label=y))
    with pytest.raises(ValueError, match="needs query groups"):
        lightgbm_objective(ListwiseLoss())(np.zeros(len(y)), lgb.Dataset(X, y))


def test_groups_that_do_not_match_the_rows_are_an_error():
    X, y, group = _ranking()
    with pytest.raises(ValueError, match="sum to"):
        lightgbm_objective(ListwiseLoss())(np.zeros(len(y)), lgb.Dataset(X, y, group=group[:-1]))


def test_bad_arguments():
    with pytest.raises(TypeError, match="loss"):
        xgboost_objective("squared")
    with pytest.raises(ValueError, match="hess_scale"):
        xgboost_objective(SelectiveLoss(), hess_scale=0.0)
    with pytest.raises(TypeError, match="DMatrix"):
        xgboost_objective(SelectiveLoss())(np.zeros(3), np.zeros(3))


def test_nan_labels_rejected_once_at_bind(data):
    X, y = data
    bad = y.copy()
    bad[5] = np.nan
    # XGBoost refuses NaN labels itself and LightGBM's constructed Dataset replaces them; a Dataset
    # not yet constructed hands them on, and the bind refuses them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dtrain = lgb.Dataset(X, bad)
    with pytest.raises(ValueError, match="finite"):
        lightgbm_objective(SelectiveLoss()).bind(dtrain)


def test_multiclass_teacher_probabilities_via_register(data):
    X, y = data
    k = 3
    logits = np.column_stack([y - 3, np.zeros_like(y), 3 - y])
    teacher = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = MulticlassLoss()
    dset = lgb.Dataset(X, np.argmax(teacher, axis=1).astype(float))
    objective = lightgbm_objective(loss)
    objective.register(dset, loss.bind(teacher, k))
    booster = lgb.train({**LGB_PARAMS, "num_class": k, "objective": objective}, dset, ROUNDS)
    raw = booster.predict(X, raw_score=True)
    student = np.exp(raw - raw.max(1, keepdims=True))
    student /= student.sum(1, keepdims=True)
    before = loss.loss(teacher, np.zeros((len(y), k))).mean()
    after = loss.loss(teacher, raw).mean()
    assert after < 0.5 * before
    dtrain = xgb.DMatrix(X)
    objective = xgboost_objective(loss)
    objective.register(dtrain, loss.bind(teacher, k))
    b = xgb.train({**XGB_PARAMS, "num_class": k, "base_score": [0.0] * k}, dtrain, ROUNDS, obj=objective)
    assert loss.loss(teacher, b.predict(dtrain, output_margin=True)).mean() < 0.5 * before


# ---------------------------------------------------------------- real ranking data


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_listwise_improves_ndcg_on_lambdarank_sample(lambdarank, engine):
    X, y, group = lambdarank["train"]
    Xt, yt, gt = lambdarank["test"]
    loss = ListwiseLoss()
    untrained = ndcg(yt, np.zeros(len(yt)), gt, k=10)
    if engine == "xgboost":
        dtrain = xgb.DMatrix(X, label=y, group=group)
        booster = xgb.train({**XGB_PARAMS, "eta": 0.1, "base_score": 0.0}, dtrain, 30,
                            obj=xgboost_objective(loss))
        scores = booster.predict(xgb.DMatrix(Xt))
    else:
        dtrain = lgb.Dataset(X, y, group=group)
        booster = lgb.train({**LGB_PARAMS, "learning_rate": 0.1, "objective": lightgbm_objective(loss)}, dtrain, 30)
        scores = booster.predict(Xt, raw_score=True)
    trained = ndcg(yt, scores, gt, k=10)
    assert trained > untrained + 0.05, (untrained, trained)


# ---------------------------------------------------------------- pickling and devices


def test_objective_pickles_without_its_bindings_and_still_trains(data):
    import pickle

    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    objective = xgboost_objective(SelectiveLoss(Identity() + 4 * Sigmoid(3.0, 0.5)))
    objective.bind(dtrain)
    copy = pickle.loads(pickle.dumps(objective))
    assert copy.loss == objective.loss or repr(copy.loss) == repr(objective.loss)
    a = xgb.train(XGB_PARAMS, dtrain, 5, obj=objective)
    b = xgb.train(XGB_PARAMS, xgb.DMatrix(X, label=y), 5, obj=copy)
    np.testing.assert_array_equal(a.predict(dtrain), b.predict(dtrain))


def test_float32_margins_give_the_float64_gradients(data):
    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    objective = xgboost_objective(SelectiveLoss(Identity() + 4 * Sigmoid(3.0, 0.5)))
    margins = (y + 0.5).astype(np.float32)
    grad32, hess32 = (a.copy() for a in objective(margins, dtrain))
    grad64, hess64 = objective(margins.astype(np.float64), dtrain)
    np.testing.assert_array_equal(grad32, grad64)
    np.testing.assert_array_equal(hess32, hess64)


def test_cuda_objective_without_a_gpu_is_a_clear_error():
    from selboost import cuda

    if cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(RuntimeError, match="selboost.cuda"):
        xgboost_objective(SelectiveLoss(), device="cuda")
    with pytest.raises(ValueError, match="device"):
        xgboost_objective(SelectiveLoss(), device="tpu")
