"""Bad input raises a clear ValueError or TypeError that names the offending argument."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh, WeightedSum
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

Y = np.array([0.5, 1.0, 2.0, 3.0])
Z = np.array([0.1, 0.2, 0.3, 0.4])
REL = np.array([0.0, 1.0, 2.0, 1.0])
GROUP = [1, 3]
NAN, INF = float("nan"), float("inf")


def with_value(array, index, value):
    out = np.array(array, dtype=np.float64)
    out[index] = value
    return out


def scalar(y=Y, z=Z, w=None, link=None, target="score"):
    return lambda: SelectiveLoss(link, target=target).bind(y, w).gradient_hessian(z)


def listwise(y=REL, z=Z, group=GROUP, sw=None, gw=None, **kw):
    return lambda: ListwiseLoss(**kw).bind(y, group, sw, gw).gradient_hessian(z)


def pairwise(y=REL, z=Z, group=GROUP, sw=None, gw=None, **kw):
    return lambda: PairwiseLoss(**kw).bind(y, group, sw, gw).gradient_hessian(z)


def multiclass(y=(0, 1, 2, 1), z=None, n_classes=3, sw=None):
    z = np.zeros((4, 3)) if z is None else z
    return lambda: MulticlassLoss().bind(y, n_classes, sw).gradient_hessian(z)


CASES = {
    # NaN / inf in labels, predictions, weights
    "nan-label": (scalar(y=with_value(Y, 1, NAN)), ValueError, "y_true"),
    "inf-label": (scalar(y=with_value(Y, 0, -INF)), ValueError, "y_true"),
    "nan-prediction": (scalar(z=with_value(Z, 2, NAN)), ValueError, "raw_prediction"),
    "inf-prediction": (scalar(z=with_value(Z, 2, INF)), ValueError, "raw_prediction"),
    "nan-weight": (scalar(w=with_value(np.ones(4), 3, NAN)), ValueError, "sample_weight"),
    "inf-weight": (scalar(w=with_value(np.ones(4), 3, INF)), ValueError, "sample_weight"),
    "nan-relevance": (listwise(y=with_value(REL, 0, NAN)), ValueError, "y_true"),
    "inf-listwise-prediction": (listwise(z=with_value(Z, 1, INF)), ValueError, "raw_prediction"),
    "nan-pairwise-prediction": (pairwise(z=with_value(Z, 1, NAN)), ValueError, "raw_prediction"),
    "nan-group-weight": (listwise(gw=[1.0, NAN]), ValueError, "group_weight"),
    "nan-multiclass-prediction": (multiclass(z=with_value(np.zeros((4, 3)), (1, 1), NAN)), ValueError,
                                  "raw_prediction"),
    # negative weights
    "negative-weight": (scalar(w=[1.0, -0.5, 1.0, 1.0]), ValueError, "sample_weight"),
    "negative-listwise-weight": (listwise(sw=[1.0, -0.5, 1.0, 1.0]), ValueError, "sample_weight"),
    "negative-group-weight": (pairwise(gw=[1.0, -2.0]), ValueError, "group_weight"),
    "negative-multiclass-weight": (multiclass(sw=[1.0, -1.0, 1.0, 1.0]), ValueError, "sample_weight"),
    "all-zero-weight": (scalar(w=np.zeros(4)), ValueError, "sample_weight"),
    # mismatched lengths
    "short-weight": (scalar(w=np.ones(3)), ValueError, "sample_weight"),
    "short-prediction": (scalar(z=Z[:3]), ValueError, "raw_prediction"),
    "long-listwise-prediction": (listwise(z=np.zeros(5)), ValueError, "raw_prediction"),
    "short-listwise-weight": (listwise(sw=np.ones(5)), ValueError, "sample_weight"),
    "short-group-weight": (listwise(gw=[1.0, 1.0, 1.0]), ValueError, "group_weight"),
    "short-multiclass-weight": (multiclass(sw=np.ones(3)), ValueError, "sample_weight"),
    # groups
    "groups-sum-short": (listwise(group=[1, 2]), ValueError, "group"),
    "groups-sum-long": (pairwise(group=[2, 3]), ValueError, "group"),
    "group-zero-size": (listwise(group=[0, 4]), ValueError, "group"),
    "group-negative-size": (pairwise(group=[-1, 5]), ValueError, "group"),
    "group-fractional-size": (listwise(group=[1.5, 2.5]), ValueError, "group"),
    "group-missing": (listwise(group=None), ValueError, "group"),
    "group-strings": (listwise(group=["1", "3"]), TypeError, "group"),
    # relevance and gains
    "negative-relevance": (listwise(y=[0.0, -1.0, 2.0, 1.0]), ValueError, "y_true"),
    "negative-pairwise-relevance": (pairwise(y=[0.0, -1.0, 2.0, 1.0]), ValueError, "y_true"),
    "gain-overflow": (listwise(y=[0.0, 2000.0, 1.0, 1.0]), ValueError, "gain"),
    "gain-sum-overflow": (listwise(y=[0.0, 1023.5, 1023.5, 1.0], gain="exponential"), ValueError, "gain"),
    "bad-gain-name": (listwise(gain="square"), ValueError, "gain"),
    # probabilities (multi-class rows; link targets)
    "probability-above-one": (multiclass(y=[[1.2, -0.2, 0.0]] * 4), ValueError, "y_true"),
    "probability-row-sum": (multiclass(y=[[0.5, 0.4, 0.0]] * 4), ValueError, "y_true"),
    "probability-columns-vs-n-classes": (multiclass(y=[[0.5, 0.5, 0.0]] * 4, n_classes=4), ValueError, "n_classes"),
    "class-label-beyond-n-classes": (multiclass(y=[0, 1, 3, 1]), ValueError, "n_classes"),
    "class-label-fractional": (multiclass(y=[0, 1.5, 2, 1]), ValueError, "y_true"),
    "class-label-negative": (multiclass(y=[0, -1, 2, 1]), ValueError, "y_true"),
    "link-target-above-sigmoid-range": (scalar(y=[0.2, 1.5, 0.5, 0.0], link=0.25 * Sigmoid(), target="link"),
                                        ValueError, "y_true"),
    "link-target-below-exp-range": (scalar(y=[0.0, -3.0, 1.0, 2.0], link=Exp(0.0, 2.0), target="link"),
                                    ValueError, "y_true"),
    "link-target-at-open-exp-end": (scalar(y=[0.0, -2.0, 1.0, 2.0], link=Exp(0.0, 2.0), target="link"),
                                    ValueError, "y_true"),
    # empty input
    "empty-labels": (scalar(y=[], z=[]), ValueError, "y_true"),
    "empty-predictions": (scalar(z=[]), ValueError, "raw_prediction"),
    "empty-listwise": (listwise(y=[], z=[], group=[]), ValueError, "y_true"),
    "empty-group": (listwise(group=[]), ValueError, "group"),
    # wrong dtypes
    "string-labels": (scalar(y=np.array(["a", "b", "c", "d"])), TypeError, "y_true"),
    "object-labels": (scalar(y=np.array([1.0, None, 2.0, 3.0], dtype=object)), TypeError, "y_true"),
    "complex-labels": (scalar(y=Y + 1j), TypeError, "y_true"),
    "complex-predictions": (scalar(z=Z + 0j), TypeError, "raw_prediction"),
    "string-predictions": (listwise(z=np.array(["1", "2", "3", "4"])), TypeError, "raw_prediction"),
    "object-weights": (scalar(w=np.array([1, 2, 3, None], dtype=object)), TypeError, "sample_weight"),
    "none-labels": (scalar(y=None), TypeError, "y_true"),
    # raw_prediction of the wrong shape
    "prediction-2d-for-scalar": (scalar(z=Z[:, None]), ValueError, "raw_prediction"),
    "prediction-1d-for-multiclass": (multiclass(z=np.zeros(12)), ValueError, "raw_prediction"),
    "prediction-wrong-class-count": (multiclass(z=np.zeros((4, 4))), ValueError, "raw_prediction"),
    "prediction-wrong-row-count": (multiclass(z=np.zeros((3, 3))), ValueError, "raw_prediction"),
    "labels-2d-for-scalar": (scalar(y=Y[:, None]), ValueError, "y_true"),
    # loss options
    "bad-target": (lambda: SelectiveLoss(target="probability"), ValueError, "target"),
    "bad-listwise-target": (lambda: ListwiseLoss(target="labels"), ValueError, "target"),
    "bad-hess": (lambda: ListwiseLoss(hess="newton"), ValueError, "hess"),
    "negative-hess-min": (lambda: SelectiveLoss(hess_min=-1.0), ValueError, "hess_min"),
    "nan-hess-min": (lambda: MulticlassLoss(hess_min=NAN), ValueError, "hess_min"),
    "string-hess-min": (lambda: PairwiseLoss(hess_min="0.1"), TypeError, "hess_min"),
    "zero-pairs-per-item": (lambda: PairwiseLoss(pairs_per_item=0), ValueError, "pairs_per_item"),
    "float-pairs-per-item": (lambda: PairwiseLoss(pairs_per_item=2.5), TypeError, "pairs_per_item"),
    # the threads a kernel call runs on: an int >= 1, or -1 for every core
    "n-threads-zero": (lambda: SelectiveLoss().gradient_hessian(Y, Z, n_threads=0), ValueError, "n_threads"),
    "n-threads-minus-two": (lambda: ListwiseLoss().bind(REL, GROUP).gradient_hessian(Z, n_threads=-2), ValueError,
                            "n_threads"),
    "n-threads-float": (lambda: PairwiseLoss().bind(REL, GROUP).loss(Z, n_threads=1.5), TypeError, "n_threads"),
    "n-threads-bool": (lambda: MulticlassLoss().bind((0, 1, 2, 1), 3).mean_loss(np.zeros((4, 3)), n_threads=True),
                       TypeError, "n_threads"),
    "n-threads-string": (lambda: SelectiveLoss().loss(Y, Z, n_threads="all"), TypeError, "n_threads"),
    "link-not-a-link": (lambda: SelectiveLoss(link=lambda z: z), TypeError, "link"),
    "transform-not-a-link": (lambda: ListwiseLoss(transform="sigmoid"), TypeError, "transform"),
}

LINK_CASES = {
    # invalid link parameters
    "sigmoid-zero-scale": (lambda: Sigmoid(0.0, 0.0), ValueError, "scale"),
    "sigmoid-negative-scale": (lambda: Sigmoid(0.0, -1.0), ValueError, "scale"),
    "sinh-zero-scale": (lambda: Sinh(1.0, 0.0), ValueError, "scale"),
    "sinh-negative-scale": (lambda: Sinh(1.0, -2.0), ValueError, "scale"),
    "exp-zero-scale": (lambda: Exp(0.0, 0.0), ValueError, "scale"),
    "nan-center": (lambda: Sigmoid(NAN, 1.0), ValueError, "center"),
    "inf-center": (lambda: Exp(INF, 1.0), ValueError, "center"),
    "inf-scale": (lambda: Sinh(0.0, INF), ValueError, "scale"),
    "string-center": (lambda: Sinh("0", 1.0), TypeError, "center"),
    "none-scale": (lambda: Exp(0.0, None), TypeError, "scale"),
    "bool-scale": (lambda: Sigmoid(0.0, True), TypeError, "scale"),
    "complex-center": (lambda: Sigmoid(1j, 1.0), TypeError, "center"),
    "knots-not-increasing": (lambda: PiecewiseLinear((0.0, 0.0), (1.0, 1.0, 1.0)), ValueError, "knots"),
    "knots-decreasing": (lambda: PiecewiseLinear((1.0, 0.0), (1.0, 1.0, 1.0)), ValueError, "knots"),
    "no-knots": (lambda: PiecewiseLinear((), (1.0,)), ValueError, "knot"),
    "slope-zero": (lambda: PiecewiseLinear((0.0,), (1.0, 0.0)), ValueError, "slopes"),
    "slope-negative": (lambda: PiecewiseLinear((0.0,), (-1.0, 1.0)), ValueError, "slopes"),
    "slope-count": (lambda: PiecewiseLinear((0.0, 1.0), (1.0, 2.0)), ValueError, "slopes"),
    "string-knot": (lambda: PiecewiseLinear(("a",), (1.0, 1.0)), TypeError, "knots"),
    "nan-knot": (lambda: PiecewiseLinear((NAN,), (1.0, 1.0)), ValueError, "knots"),
    "zero-weight": (lambda: 0 * Sigmoid(), ValueError, "weight"),
    "negative-weight": (lambda: -1.0 * Identity(), ValueError, "weight"),
    "negative-weight-in-sum": (lambda: Identity() + (-2.0) * Sinh(), ValueError, "weight"),
    "nan-weight": (lambda: NAN * Exp(), ValueError, "weight"),
    "string-weight": (lambda: "2" * Sigmoid(), TypeError, "Sigmoid"),
    "weighted-sum-zero-weight": (lambda: WeightedSum(((0.0, Identity()),)), ValueError, "weight"),
    "weighted-sum-empty": (lambda: WeightedSum(()), ValueError, "term"),
    "weighted-sum-not-a-link": (lambda: WeightedSum(((1.0, "sigmoid"),)), TypeError, "terms"),
    "add-a-number": (lambda: Identity() + 1.0, TypeError, "Identity"),
    "inverse-outside-range": (lambda: Sigmoid().inverse(np.array([5.0])), ValueError, "range"),
}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize(("case", "error", "name"), list(CASES.values()), ids=list(CASES))
def test_bad_loss_input_raises_naming_the_argument(case, error, name):
    with pytest.raises(error, match=name):
        case()


@pytest.mark.parametrize(("case", "error", "name"), list(LINK_CASES.values()), ids=list(LINK_CASES))
def test_bad_link_parameters_raise_naming_the_parameter(case, error, name):
    with pytest.raises(error, match=name):
        case()


def test_link_target_allows_the_closed_ends_of_a_sigmoid_range():
    """0 and 1 are valid targets for 0.25 * Sigmoid() (the logistic loss); only outside values fail."""
    grad, _ = SelectiveLoss(0.25 * Sigmoid(), target="link").gradient_hessian([0.0, 1.0], [0.0, 0.0])
    np.testing.assert_allclose(grad, [0.5, -0.5])


def test_bad_preallocated_outputs():
    bound = SelectiveLoss().bind(Y)
    with pytest.raises(ValueError, match="grad_out"):
        bound.gradient_hessian(Z, grad_out=np.empty(3))
    with pytest.raises(ValueError, match="hess_out"):
        bound.gradient_hessian(Z, hess_out=np.empty((4, 2))[:, 0])


@pytest.mark.parametrize(("n_threads", "dtype"), [(1, np.float64), (1, np.float32), (2, np.float32)],
                         ids=["serial-float64", "serial-float32", "threaded-float32"])
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_kernels_catch_a_non_finite_score_in_any_tile(n_threads, dtype, bad):
    """The gradient kernels check finiteness themselves, tile by tile and group by group: a bad score
    in a late chunk, behind finite ones, is still a clear error naming its index."""
    rng = np.random.default_rng(0)
    n = 50_000  # more than one chunk of the scalar kernel
    index = 41_234
    z = rng.normal(size=n).astype(dtype)
    z[index] = bad
    scalar_loss = SelectiveLoss(Identity() + 9 * Sigmoid(1.0, 0.5)).bind(rng.normal(size=n))
    listwise_loss = ListwiseLoss(Identity() + 4 * Sigmoid(2.0, 0.5)).bind(
        rng.integers(0, 5, size=n).astype(np.float64), np.full(n // 100, 100))
    for bound in (scalar_loss, listwise_loss):
        with pytest.raises(ValueError, match=f"raw_prediction must be finite: 1 .*index {index}"):
            bound.gradient_hessian(z, n_threads=n_threads)
        z_ok = np.where(np.isfinite(z), z, 0.0).astype(dtype)
        grad, hess = bound.gradient_hessian(z_ok, n_threads=n_threads)
        assert np.isfinite(grad).all() and np.isfinite(hess).all()


@pytest.mark.parametrize("link", [Sinh(), Exp(), Exp(0.0, -1.0), Identity() + Sinh(0.0, 0.5)], ids=repr)
def test_labels_at_which_the_link_overflows_are_refused(link):
    """grad = h(z) - h(y) cannot be computed where h(y) overflows float64 (it would be inf - inf). The
    engines hold float32 labels, at which no link overflows, so this is a direct loss's (float64) case."""
    y = np.array([0.5, 1e300 if link.range[1] == np.inf else -1e300, 2.0, 3.0])
    with pytest.raises(ValueError, match="y_true: the link .* overflows float64 at 1 label"):
        SelectiveLoss(link).bind(y)
    # the same labels with a link that stays finite there are accepted
    SelectiveLoss(Identity() + Sigmoid()).bind(y)


def test_a_nan_query_id_is_refused_on_one_machine_and_on_dask():
    """A NaN id equals no other, not even itself: query 0 would split into groups [5, 1, 4] (32
    groups for 30), in fit and in score alike."""
    from selboost import SelectiveRanker

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    rel = rng.integers(0, 5, 300).astype(float)
    qid = np.repeat(np.arange(30), 10).astype(float)
    qid[5] = np.nan
    with pytest.raises(ValueError, match="qid must be finite: 1 NaN or infinite value.*index 5"):
        SelectiveRanker(n_estimators=2).fit(X, rel, qid=qid)
    model = SelectiveRanker(n_estimators=2).fit(X, rel, qid=np.repeat(np.arange(30), 10))
    with pytest.raises(ValueError, match="qid must be finite"):
        model.score(X, rel, qid=qid)
    da = pytest.importorskip("dask.array")
    from selboost.dask import check_query_partitions

    with pytest.raises(ValueError, match="qid must be finite"):
        check_query_partitions(da.from_array(qid, chunks=100))


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_misspelled_engine_params_are_named_in_a_warning(engine):
    """engine_params the engine would ignore (XGBoost's own validate_parameters; LightGBM's list of
    parameters and aliases) are named; the engine's real ones, aliases included, are not."""
    from selboost import SelectiveRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = X[:, 0]
    real = {"xgboost": {"gamma": 0.1, "max_bin": 64}, "lightgbm": {"min_gain_to_split": 0.1, "max_bin": 63}}
    with pytest.warns(UserWarning, match=rf"engine_params: {engine} does not use \['bogus', 'max_dept'\]"):
        SelectiveRegressor(engine=engine, n_estimators=2,
                           engine_params={"max_dept": 1, "bogus": 3, **real[engine]}).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SelectiveRegressor(engine=engine, n_estimators=2, engine_params=real[engine]).fit(X, y)


def test_engine_none_names_the_engines():
    from selboost import SelectiveRegressor

    X = np.random.default_rng(0).normal(size=(20, 2))
    engines = r"\{'(xgboost|lightgbm)', '(xgboost|lightgbm)'\}"  # a set: in any order
    with pytest.raises(ValueError, match=rf"The 'engine' parameter of SelectiveRegressor must be a str among "
                                         rf"{engines}. Got None instead"):
        SelectiveRegressor(engine=None).fit(X, X[:, 0])


def _raw_train(engine, loss, X, y):
    """One round through the engine's own ``train`` with a selboost objective (``obj=`` / ``objective``)."""
    from selboost import lightgbm_objective, xgboost_objective

    if engine == "xgboost":
        import xgboost

        return xgboost.train({"nthread": 1}, xgboost.DMatrix(X, label=y), 1, obj=xgboost_objective(loss))
    import lightgbm

    return lightgbm.train({"objective": lightgbm_objective(loss), "verbose": -1, "num_threads": 1},
                          lightgbm.Dataset(X, label=y, params={"feature_pre_filter": False}), 1)


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_a_loss_whose_gradients_overflow_float32_is_refused(engine):
    """The engines take gradients and hessians as float32: a region strength beyond float32's range is
    refused at construction, and one whose start gradients exceed it (strength 1e38 times an error of
    up to 20) when training starts, through the estimators and the raw objectives alike. XGBoost squares
    a node's gradient sum in float32, so it refuses sums beyond 1.8e19 (strength 1e30 here), which
    LightGBM trains on. Each would otherwise train a wrong (here constant) model without a word."""
    from selboost import RegionLoss, SelectiveRegressor

    with pytest.raises(ValueError, match="strength must be at most float32's largest value"):
        RegionLoss(-0.5, 0.5, strength=1e300)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = 10.0 * X[:, 0]
    loss = RegionLoss(-5.0, 5.0, strength=1e38)
    message = r"gradients or hessians at the start scores exceed float32's range.*lower strength"
    with pytest.raises(ValueError, match=message):
        SelectiveRegressor(loss, engine=engine, n_estimators=1).fit(X, y)
    with pytest.raises(ValueError, match=message):
        _raw_train(engine, loss, X, y)
    steep = SelectiveRegressor(RegionLoss(-5.0, 5.0, strength=1e30), engine=engine, n_estimators=1)
    if engine == "xgboost":
        with pytest.raises(ValueError, match=r"gradients at the start scores sum to .*beyond 1.84e\+19, the most "
                                             r"XGBoost's split search can square in float32.*lower strength"):
            steep.fit(X, y)
        steep.set_params(loss=RegionLoss(-5.0, 5.0, strength=1e15))
    assert np.ptp(steep.fit(X, y).predict(X)) > 0


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_categorical_and_text_columns_are_named(engine):
    """The estimators take numeric features only: a categorical column (whose categories the engines' own
    estimators would split as categories, and which, with numeric categories, would otherwise train as
    numbers without a word) is refused by name in fit, eval_set and predict, with what to do; a text column
    is named too, and an object column of numbers still reads as numbers."""
    pd = pytest.importorskip("pandas")
    from selboost import SelectiveRegressor

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = X["a"].to_numpy()
    shop = X.assign(shop=pd.Categorical(rng.choice(["x", "y"], 60)), size=pd.Categorical(rng.choice([1.5, 2.5], 60)))
    model = SelectiveRegressor(engine=engine, n_estimators=1)
    with pytest.raises(TypeError, match=r"X: column\(s\) \['shop', 'size'\] are categorical.*get_dummies.*"
                                        r"enable_categorical=True"):
        model.fit(shop, y)
    with pytest.raises(TypeError, match=r"X: column\(s\) \['city'\] do not hold numbers"):
        model.fit(X.assign(city=rng.choice(["u", "v"], 60)), y)
    model.fit(X.assign(b=X["b"].astype(object)), y)
    with pytest.raises(TypeError, match=r"eval_set\[0\] X: column\(s\) \['b'\] are categorical"):
        model.fit(X, y, eval_set=[(X.assign(b=pd.Categorical(X["b"])), y)])
    with pytest.raises(TypeError, match=r"X: column\(s\) \['b'\] are categorical"):
        model.predict(X.assign(b=pd.Categorical(X["b"])))
