"""The raw engine paths (``set_init_score``, ``xgboost_objective``, ``lightgbm_objective`` on the engines'
own data objects): bad initial scores, small LightGBM Datasets, and labels the engines would alter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selboost import Identity, ListwiseLoss, MulticlassLoss, SelectiveLoss
from selboost.cli import main
from selboost.objectives import lightgbm_objective, set_init_score, xgboost_objective

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

QUIET = {"verbose": -1, "num_threads": 1, "deterministic": True, "force_row_wise": True}


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


# ---------------------------------------------------------------- small LightGBM Datasets


def test_a_20_row_dataset_pre_filters_every_feature_and_the_custom_objective_aborts_without_set_init_score():
    """The engine fact behind ``set_init_score``'s ``feature_pre_filter=False``: with the default
    ``min_data_in_leaf=20`` no split of 20 rows is allowed, so the pre-filter drops every feature. The
    built-in objective then trains a constant model; the custom one aborts, because ``Booster.update``
    resets the booster's parameters (``objective="none"``) and LightGBM's ``ResetConfig`` refuses a
    Dataset with no feature."""
    X, y = _regression(20)
    dset = lgb.Dataset(X, y, params={"verbose": -1})
    lgb.train({"objective": "regression", **QUIET}, dset, 3)
    assert all(dset.feature_num_bin(i) == 0 for i in range(X.shape[1]))
    with pytest.raises(lgb.basic.LightGBMError, match="num_features"):
        lgb.train({"objective": lightgbm_objective(SelectiveLoss(Identity())), **QUIET},
                  lgb.Dataset(X, y, params={"verbose": -1}), 3)


@pytest.mark.parametrize("train_params", [{}, {"min_data_in_leaf": 3}])
def test_lightgbm_objective_trains_on_a_20_row_dataset_like_the_builtin(train_params):
    """The README's raw pattern on 20 rows with default parameters, against LightGBM's ``regression``:
    the same constant model with the defaults, the same trees once a split is allowed."""
    X, y = _regression(20)
    loss = SelectiveLoss(Identity())
    builtin = lgb.train({"objective": "regression", **QUIET, **train_params}, lgb.Dataset(X, y), 5)
    dset = lgb.Dataset(X, y)
    init = set_init_score(dset, loss)
    booster = lgb.train({"objective": lightgbm_objective(loss), **QUIET, **train_params}, dset, 5)
    assert init == pytest.approx(y.mean(), rel=1e-12)
    np.testing.assert_allclose(booster.predict(X, raw_score=True) + init, builtin.predict(X), rtol=1e-6, atol=1e-6)
    if train_params:
        assert np.ptp(builtin.predict(X)) > 0.5  # real splits, not only the constant


@pytest.mark.parametrize("where", ["dataset", "train"])
def test_without_set_init_score_the_documented_feature_pre_filter_is_enough(where):
    X, y = _regression(20)
    loss = SelectiveLoss(Identity())
    dset = lgb.Dataset(X, y, params={"feature_pre_filter": False} if where == "dataset" else None)
    params = {"objective": lightgbm_objective(loss), **QUIET, "min_data_in_leaf": 3}
    if where == "train":
        params["feature_pre_filter"] = False
    booster = lgb.train(params, dset, 5)
    assert np.ptp(booster.predict(X, raw_score=True)) > 0.5


def test_xgboost_objective_trains_on_20_rows():
    X, y = _regression(20)
    loss = SelectiveLoss(Identity())
    dtrain = xgb.DMatrix(X, label=y)
    init = set_init_score(dtrain, loss)
    booster = xgb.train({"nthread": 1, "verbosity": 0}, dtrain, 5, obj=xgboost_objective(loss))
    assert np.abs(booster.predict(dtrain) - y).mean() < np.abs(init - y).mean()


def test_lightgbm_objective_trains_on_a_tiny_ranking_dataset_with_a_validation_set():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(18, 4))
    y = rng.integers(0, 3, size=18).astype(float)
    group = [6, 6, 6]
    loss = ListwiseLoss()
    dtrain = lgb.Dataset(X, y, group=group)
    dvalid = lgb.Dataset(X, y, group=group, reference=dtrain)
    init = set_init_score(dtrain, loss)
    set_init_score(dvalid, loss, init=init)
    booster = lgb.train({"objective": lightgbm_objective(loss), **QUIET, "metric": "ndcg"}, dtrain, 3,
                        valid_sets=[dvalid])
    # no split is allowed on 6-row queries under the defaults: LightGBM stops after one constant tree
    assert booster.current_iteration() >= 1
    assert np.isfinite(booster.predict(X, raw_score=True)).all()


def test_set_init_score_keeps_a_feature_pre_filter_the_user_chose():
    X, y = _regression(200)
    dset = lgb.Dataset(X, y, params={"feature_pre_filter": True, "verbose": -1})
    set_init_score(dset, SelectiveLoss(Identity()))
    assert dset.params["feature_pre_filter"] is True


def test_set_init_score_on_a_constructed_dataset_without_features_says_what_to_set():
    X, y = _regression(20)
    dset = lgb.Dataset(X, y, params={"verbose": -1}).construct()
    with pytest.raises(ValueError, match=r"feature_pre_filter.*False"):
        set_init_score(dset, SelectiveLoss(Identity()))


def test_set_init_score_on_a_constructed_dataset_with_features_still_works():
    X, y = _regression(200)
    dset = lgb.Dataset(X, y, params={"verbose": -1}).construct()
    assert set_init_score(dset, SelectiveLoss(Identity())) == pytest.approx(y.mean(), rel=1e-6)


def _write_letor(path, n_queries, rng):
    lines = []
    for q in range(n_queries):
        for _ in range(6):
            rel = int(rng.integers(0, 3))
            features = rng.random(4) + 0.3 * rel
            lines.append(f"{rel} qid:{q + 1} " + " ".join(f"{i + 1}:{v:.4f}" for i, v in enumerate(features)))
    path.write_text("\n".join(lines) + "\n")


def test_bench_on_a_tiny_letor_directory(tmp_path):
    """18 training rows: LightGBM's pre-filter would drop every feature of the training split."""
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny"
    data.mkdir()
    for name in ("train", "vali", "test"):
        _write_letor(data / f"{name}.txt", 3, rng)
    out = tmp_path / "res"
    methods = "lgb lambdarank,lgb selboost softmax,lgb selboost pairwise"
    assert main(["bench", "--data", str(data), "--rounds", "3", "--patience", "2", "--threads", "1",
                 "--no-progress", "--methods", methods, "--out", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    assert list(document["results"]) == methods.split(",")


# ---------------------------------------------------------------- labels the engines alter


def _labels_with(bad, n=36, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, 3, size=n).astype(np.float64)
    y[5] = bad
    return X, y, np.full(n // 6, 6)


LOSSES = [pytest.param(SelectiveLoss(Identity()), id="selective"), pytest.param(ListwiseLoss(), id="listwise")]
BAD_LABELS = [pytest.param(np.nan, id="nan"), pytest.param(np.inf, id="inf"), pytest.param(-np.inf, id="-inf")]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bad", BAD_LABELS)
@pytest.mark.parametrize("init", [None, 0.0])
def test_set_init_score_rejects_a_non_finite_label_of_an_unconstructed_dataset(loss, bad, init):
    X, y, group = _labels_with(bad)
    dset = lgb.Dataset(X, y, group=group)
    with pytest.raises(ValueError, match=r"y_true must be finite and within float32's range.*1 value\(s\) are not, first at flat index 5"):
        set_init_score(dset, loss, init=init)
    assert dset.init_score is None


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e39 to float32
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e39])
def test_lightgbm_objective_rejects_a_label_lightgbm_clamped_to_1e38(loss, bad):
    """Without ``set_init_score`` the objective first sees the labels after construction, where LightGBM
    has stored an infinite label (or one beyond float32) as +-1e38: the objective refuses it."""
    X, y, group = _labels_with(bad)
    dset = lgb.Dataset(X, y, group=group, params={"feature_pre_filter": False, "verbose": -1})
    with pytest.raises(ValueError, match=r"y_true must be finite and within float32's range.*1 value\(s\) are not, first at flat index 5"):
        lgb.train({"objective": lightgbm_objective(loss), **QUIET}, dset, 2)


def test_lightgbm_stores_a_nan_label_as_zero_after_construction():
    """The engine fact behind the one case selboost cannot catch (documented in ``lightgbm_objective``):
    once a Dataset is constructed its NaN label is a 0 and the user's array is gone."""
    X, y, _ = _labels_with(np.nan)
    dset = lgb.Dataset(X, y, params={"verbose": -1}).construct()
    assert dset.get_label()[5] == 0.0
    assert dset.label is not y


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bad", BAD_LABELS)
def test_xgboost_refuses_a_non_finite_label_before_the_objective(loss, bad):
    """A DMatrix never holds a NaN or infinite label (XGBoost refuses it on every way in), so the raw
    XGBoost path cannot train on one; were it ever kept, the objective's bind would refuse it."""
    X, y, group = _labels_with(bad)
    with pytest.raises(xgb.core.XGBoostError, match="Label contains NaN, infinity"):
        xgb.DMatrix(X, label=y, group=group)
    dtrain = xgb.DMatrix(X, group=group)
    with pytest.raises(xgb.core.XGBoostError, match="Label contains NaN, infinity"):
        dtrain.set_label(y)
    with pytest.raises(xgb.core.XGBoostError, match="Label contains NaN, infinity"):
        dtrain.set_float_info("label", y)
    # the label the objective reads is the finite one set before
    dtrain.set_label(np.where(np.isfinite(y), y, 1.0))
    xgb.train({"nthread": 1, "verbosity": 0}, dtrain, 2, obj=xgboost_objective(loss))


@pytest.mark.parametrize("bad", [pytest.param(np.nan, id="nan"), pytest.param(np.inf, id="inf")])
def test_set_init_score_rejects_a_non_finite_weight_of_an_unconstructed_dataset(bad):
    X, y, _ = _labels_with(0.0)
    weight = np.ones(len(y))
    weight[7] = bad
    dset = lgb.Dataset(X, y, weight=weight)
    with pytest.raises(ValueError, match=r"weight must be finite and within float32's range.*first at flat index 7"):
        set_init_score(dset, SelectiveLoss())


def test_lightgbm_objective_rejects_a_weight_lightgbm_clamped_to_1e38():
    """After construction LightGBM holds an infinite weight as 1e38, which would make every prediction
    follow that one row: the objective refuses it as the infinite weight it was."""
    X, y, _ = _labels_with(0.0)
    weight = np.ones(len(y))
    weight[7] = np.inf
    dset = lgb.Dataset(X, y, weight=weight, params={"feature_pre_filter": False, "verbose": -1})
    with pytest.raises(ValueError, match=r"weight must be finite and within float32's range.*first at flat index 7"):
        lgb.train({"objective": lightgbm_objective(SelectiveLoss()), **QUIET}, dset, 2)


def test_per_group_weights_on_a_lightgbm_dataset_are_a_clear_error():
    """LightGBM's weights are per row; one weight per query group (XGBoost's convention) is refused
    with the counts, before LightGBM sees it."""
    X, y, group = _labels_with(0.0)
    dset = lgb.Dataset(X, y, group=group, weight=np.full(group.size, 2.0))
    with pytest.raises(ValueError, match=f"{group.size} weights for {len(y)} rows: LightGBM's weights are per row"):
        set_init_score(dset, ListwiseLoss())
