"""The important-region link and loss (``selboost.regions``) and the region metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.model_selection import GridSearchCV

from selboost import (RegionDetection, RegionError, RegionLoss, SelectiveLoss, SelectiveRegressor, region_link,
                      xgboost_objective)
from selboost.links import PiecewiseLinear, Sigmoid, WeightedSum
from selboost.metrics import region_f1, region_mae, region_precision, region_recall, region_rmse
from selboost.regions import region_bounds, weighted_quantile


# ---------------------------------------------------------------- the link's sensitivity


@pytest.mark.parametrize("strength", [0.2, 3.0, 50.0])
def test_piecewise_region_has_exactly_the_asked_sensitivity(strength):
    link = region_link(-1.0, 2.5, strength=strength)
    inside = np.linspace(-1.0, 2.49, 50)
    outside = np.concatenate([np.linspace(-30.0, -1.01, 25), np.linspace(2.5 + 1e-9, 40.0, 25)])
    assert np.all(link.dh(inside) == strength)
    assert np.all(link.dh(outside) == 1.0)
    # the loss near a target: strength (inside) or 1 (outside) times square loss, exactly
    loss = SelectiveLoss(link, hess_min=0.0)
    for y, factor in ((0.5, strength), (10.0, 1.0), (-5.0, 1.0)):
        z = y + np.array([-0.3, 0.2])
        np.testing.assert_allclose(loss.loss(np.full(2, y), z), factor * 0.5 * (z - y) ** 2, rtol=1e-12)


def test_one_sided_regions():
    above = region_link(3.0, None, strength=5.0)
    below = region_link(None, 3.0, strength=5.0)
    z = np.array([-100.0, 2.9, 3.1, 1e4])
    np.testing.assert_array_equal(above.dh(z), [1.0, 1.0, 5.0, 5.0])
    np.testing.assert_array_equal(below.dh(z), [5.0, 5.0, 1.0, 1.0])
    assert region_bounds(3.0, None) == (3.0, np.inf) and region_bounds(None, 3.0) == (-np.inf, 3.0)


@pytest.mark.parametrize(("strength", "width"), [(10.0, 0.5), (2.0, 0.4), (100.0, 1.0), (10.0, None), (1e4, None)])
def test_smooth_region_sensitivity_within_the_stated_tolerance(strength, width):
    low, high = 0.0, 20.0
    link = region_link(low, high, strength=strength, shape="smooth", width=width)
    width = 2.0 if width is None else width  # the default: a tenth of the region
    assert isinstance(link, WeightedSum)
    z = np.linspace(-20.0, 30.0, 5001)
    # h' = 1 + (strength - 1) P(z) / P(middle) within 1 % of (strength - 1)
    P = expit((z - low) / width) - expit((z - high) / width)  # noqa: N806
    middle = expit(10.0 / width) - expit(-10.0 / width)
    plateau = 1.0 + (strength - 1.0) * P / middle
    assert np.max(np.abs(link.dh(z) - plateau)) < 0.01 * (strength - 1.0)
    # the asked sensitivity in the middle, and nowhere more than 0.1 % above it (README)
    np.testing.assert_allclose(link.dh(np.array([10.0])), strength, rtol=1e-12)
    assert np.max(link.dh(z)) <= 1.001 * strength
    # 6 widths from every edge: within 1.5 % of (strength - 1) of strength inside, of 1 outside
    far_inside = (z > low + 6 * width) & (z < high - 6 * width)
    far_outside = (z < low - 6 * width) | (z > high + 6 * width)
    assert np.max(np.abs(link.dh(z[far_inside]) - strength), initial=0.0) < 0.015 * (strength - 1.0)
    assert np.max(np.abs(link.dh(z[far_outside]) - 1.0)) < 0.015 * (strength - 1.0)
    # at an edge: half way
    np.testing.assert_allclose(link.dh(np.array([low])), 1.0 + 0.5 * (strength - 1.0), atol=0.01 * (strength - 1.0))


@pytest.mark.parametrize("strength", [1.5, 10.0, 1e4])
@pytest.mark.parametrize(("low", "high"), [(2.0, 4.0), (-1.0, 0.5)])
def test_smooth_region_default_width_reaches_the_asked_sensitivity(low, high, strength):
    """README: the default smooth region's sensitivity is the asked strength in its middle, within 1 %
    of it over the middle fifth, and never 0.1 % above it."""
    link = region_link(low, high, strength=strength, shape="smooth")
    middle = 0.5 * (low + high)
    fifth = np.linspace(middle - 0.1 * (high - low), middle + 0.1 * (high - low), 201)
    np.testing.assert_allclose(link.dh(np.array([middle])), strength, rtol=1e-12)
    assert np.all(np.abs(link.dh(fifth) - strength) <= 0.01 * strength)
    assert np.max(link.dh(np.linspace(low - 1.0, high + 1.0, 2001))) <= 1.001 * strength


def test_smooth_region_default_width_and_its_terms():
    link = region_link(2.0, 4.0, strength=10.0, shape="smooth")
    sigmoids = [term for _, term in link.terms if isinstance(term, Sigmoid)]
    assert len(sigmoids) == 7 and all(term.scale == pytest.approx(0.2) for term in sigmoids)
    assert region_link(2.0, 4.0, strength=1.0, shape="smooth").dh(np.array([3.0]))[0] == 1.0


def test_region_link_gradients_match_finite_differences(rng):
    for link in (region_link(1.0, 3.0, strength=7.0, shape="smooth"), region_link(1.0, 3.0, strength=7.0)):
        loss = SelectiveLoss(link, hess_min=0.0)
        y = rng.uniform(-2.0, 6.0, 200)
        z = rng.uniform(-2.0, 6.0, 200)
        z = z[np.abs(z - 1.0) > 1e-3]
        z = z[np.abs(z - 3.0) > 1e-3]
        y = y[: z.size]
        bound = loss.bind(y)
        grad, hess = bound.gradient_hessian(z)
        step = 1e-6
        numeric = (bound.loss(z + step) - bound.loss(z - step)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)
        numeric_hess = (bound.gradient_hessian(z + step)[0] - bound.gradient_hessian(z - step)[0]) / (2 * step)
        np.testing.assert_allclose(hess, numeric_hess, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- invalid regions


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"strength": 2.0}, ValueError, "give low, high or both"),
    ({"low": 3.0, "high": 1.0, "strength": 2.0}, ValueError, "low < high"),
    ({"low": 1.0, "high": 1.0, "strength": 2.0}, ValueError, "low < high"),
    ({"low": np.nan, "strength": 2.0}, ValueError, "finite"),
    ({"low": np.inf, "strength": 2.0}, ValueError, "finite"),
    ({"low": "1", "strength": 2.0}, TypeError, "low"),
    ({"low": 1.0, "strength": 0.0}, ValueError, "strength"),
    ({"low": 1.0, "strength": -2.0}, ValueError, "strength"),
    ({"low": 1.0, "strength": np.inf}, ValueError, "strength"),
    ({"low": 1.0, "strength": True}, TypeError, "strength"),
    ({"low": 1.0, "strength": 2.0, "shape": "round"}, ValueError, "shape"),
    ({"low": 1.0, "strength": 2.0, "shape": "smooth"}, ValueError, "both low and high"),
    ({"low": 1.0, "high": 2.0, "strength": 0.5, "shape": "smooth"}, ValueError, "strength >= 1"),
    ({"low": 1.0, "high": 2.0, "strength": 2.0, "width": 0.1}, ValueError, "width"),
    ({"low": 1.0, "high": 2.0, "strength": 2.0, "shape": "smooth", "width": 0.0}, ValueError, "width"),
    ({"low": 0.0, "high": 100.0, "strength": 2.0, "shape": "smooth", "width": 0.1}, ValueError, "too small"),
    ({"low": 0.5, "high": 1.5, "strength": 2.0, "quantiles": True, "y": [1.0, 2.0]}, ValueError, r"\[0, 1\]"),
    ({"low": 0.5, "strength": 2.0, "quantiles": True}, ValueError, "training targets"),
    ({"low": 0.5, "strength": 2.0, "quantiles": True, "y": [1.0, np.nan]}, ValueError, "finite"),
    ({"low": 0.2, "high": 0.8, "strength": 2.0, "quantiles": True, "y": [1.0] * 10}, ValueError, "tied"),
    ({"low": 0.5, "strength": 2.0, "quantiles": "yes"}, TypeError, "quantiles"),
])
def test_invalid_regions_are_refused_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        region_link(**kwargs)
    kwargs.pop("y", None)
    if kwargs.get("quantiles") is not True or error is TypeError:
        with pytest.raises((TypeError, ValueError)):
            RegionLoss(**kwargs)


# ---------------------------------------------------------------- quantiles and the estimators


def test_quantile_regions_are_resolved_once_on_the_training_targets(rng):
    y_train = rng.exponential(10.0, 2000)
    loss = RegionLoss(0.9, quantiles=True, strength=10.0)
    with pytest.raises(ValueError, match="resolve it on the training targets"):
        loss.bind(y_train)
    resolved = loss.resolve(y_train)
    threshold = float(np.quantile(y_train, 0.9, method="inverted_cdf"))
    assert resolved.bounds == (threshold, np.inf)
    assert isinstance(resolved.link, PiecewiseLinear) and resolved.link.knots == (threshold,)
    assert loss.quantiles and loss.low == 0.9  # the user's loss is unchanged

    X = np.column_stack([y_train + rng.normal(0, 3.0, y_train.size), rng.normal(size=y_train.size)])
    model = SelectiveRegressor(loss, n_estimators=5, eval_metric=RegionError(threshold, None))
    X_eval, y_eval = X[:300] * 2.0, y_train[:300] * 2.0  # other targets: they must not move the region
    model.fit(X, y_train, eval_set=[(X_eval, y_eval)])
    assert model.loss_.bounds == (threshold, np.inf)
    assert model.loss is loss and loss.quantiles


def test_weighted_quantiles_count_a_weight_of_two_as_two_rows(rng):
    y = rng.normal(size=101)
    weight = rng.integers(0, 4, size=101).astype(float)
    repeated = np.repeat(y, weight.astype(int))
    for level in (0.0, 0.1, 0.5, 0.9, 0.97, 1.0):
        assert weighted_quantile(y, level, weight) == np.quantile(repeated, level, method="inverted_cdf")
        assert weighted_quantile(y, level) == np.quantile(y, level, method="inverted_cdf")
    loss = RegionLoss(0.2, 0.8, quantiles=True)
    assert loss.resolve(y, weight).bounds == loss.resolve(repeated).bounds
    with pytest.raises(ValueError, match="weight"):
        loss.resolve(y, np.zeros(101))


def test_region_strength_is_grid_searchable(rng):
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + 0.3 * rng.normal(size=400)
    search = GridSearchCV(SelectiveRegressor(RegionLoss(0.8, quantiles=True), n_estimators=5),
                          {"loss__strength": [1.0, 20.0]}, cv=2).fit(X, y)
    assert search.best_params_["loss__strength"] in (1.0, 20.0)
    assert search.best_estimator_.loss.strength == search.best_params_["loss__strength"]


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_region_loss_sharpens_the_fit_inside_the_region(engine, rng):
    # a model too small to fit everything: one split per tree, few rounds
    X = rng.uniform(-3.0, 3.0, size=(3000, 2))
    y = np.sin(2.0 * X[:, 0]) * 3.0 + X[:, 1]
    lo, hi = 1.0, 4.0
    common = dict(engine=engine, n_estimators=30, max_depth=1, num_leaves=2, learning_rate=0.3)
    plain = SelectiveRegressor(**common).fit(X, y)
    region = SelectiveRegressor(RegionLoss(lo, hi, strength=20.0), **common).fit(X, y)
    assert region_rmse(y, region.predict(X), lo, hi) < 0.9 * region_rmse(y, plain.predict(X), lo, hi)
    assert region_rmse(y, region.predict(X), lo, hi, rows="outside") > region_rmse(y, plain.predict(X), lo, hi,
                                                                                    rows="outside")


def test_region_loss_as_a_raw_xgboost_objective(rng):
    import xgboost as xgb

    X = rng.normal(size=(500, 2))
    y = X[:, 0] * 2.0
    loss = RegionLoss(0.9, quantiles=True, strength=5.0)
    with pytest.raises(ValueError, match="resolve"):
        xgb.train({"verbosity": 0}, xgb.DMatrix(X, y), 2, obj=xgboost_objective(loss))
    booster = xgb.train({"verbosity": 0}, xgb.DMatrix(X, y), 5, obj=xgboost_objective(loss.resolve(y)))
    assert np.unique(booster.predict(xgb.DMatrix(X))).size > 1


def test_region_loss_as_a_raw_lightgbm_objective(rng):
    import lightgbm as lgb

    from selboost import lightgbm_objective

    X = rng.normal(size=(500, 2))
    y = X[:, 0] * 2.0
    loss = RegionLoss(0.9, quantiles=True, strength=5.0)

    def train(objective):
        data = lgb.Dataset(X, y, params={"feature_pre_filter": False, "verbose": -1})
        return lgb.train({"objective": objective, "verbose": -1}, data, 5)

    with pytest.raises(ValueError, match="resolve"):
        train(lightgbm_objective(loss))
    assert np.unique(train(lightgbm_objective(loss.resolve(y))).predict(X, raw_score=True)).size > 1


# ---------------------------------------------------------------- metrics


Y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
PRED = np.array([0.0, 2.5, 2.0, 3.5, 1.0, 5.0])


def test_region_errors_by_hand():
    # region [2, 4]: targets 2, 3, 4 inside (rows 2-4); predictions 2.5, 2, 3.5 inside (rows 1-3)
    assert region_rmse(Y, PRED, 2, 4) == pytest.approx(np.sqrt((0.0 + 0.25 + 9.0) / 3))
    assert region_rmse(Y, PRED, 2, 4, rows="outside") == pytest.approx(np.sqrt(2.25 / 3))
    assert region_rmse(Y, PRED, 2, 4, rows="either") == pytest.approx(np.sqrt((2.25 + 0.0 + 0.25 + 9.0) / 4))
    assert region_mae(Y, PRED, 2, 4, rows="either") == pytest.approx((1.5 + 0.0 + 0.5 + 3.0) / 4)
    weight = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0])
    assert region_rmse(Y, PRED, 2, 4, weight, rows="either") == pytest.approx(
        np.sqrt((2 * 2.25 + 0.0 + 0.25 + 3 * 9.0) / 7))
    assert region_rmse(Y, PRED, None, 1.0) == pytest.approx(np.sqrt(2.25 / 2))


def test_region_detection_by_hand():
    # true inside {2, 3, 4}, predicted inside {1, 2, 3}: 2 hits, 1 false alarm, 1 miss
    assert region_precision(Y, PRED, 2, 4) == pytest.approx(2 / 3)
    assert region_recall(Y, PRED, 2, 4) == pytest.approx(2 / 3)
    assert region_f1(Y, PRED, 2, 4) == pytest.approx(2 / 3)
    weight = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0])  # false alarm weighs 2, miss 3
    precision, recall = 2 / 4, 2 / 5
    assert region_precision(Y, PRED, 2, 4, weight) == pytest.approx(precision)
    assert region_recall(Y, PRED, 2, 4, weight) == pytest.approx(recall)
    assert region_f1(Y, PRED, 2, 4, weight) == pytest.approx(2 * precision * recall / (precision + recall))
    nothing_inside = np.full(6, 10.0)
    assert region_precision(Y, nothing_inside, 2, 4) == 0.0 and region_f1(Y, nothing_inside, 2, 4) == 0.0


def test_region_metric_objects_and_their_errors():
    assert RegionError(2, 4, rows="either").name == "region_rmse_either"
    assert RegionError(2, 4)(Y, PRED) == pytest.approx(region_rmse(Y, PRED, 2, 4))
    assert RegionDetection(2, 4, score="recall")(Y, PRED) == pytest.approx(2 / 3)
    assert RegionDetection(2, 4).higher_is_better and not RegionError(2, 4).higher_is_better
    with pytest.raises(ValueError, match="no target lies"):
        region_rmse(Y, PRED, 10, 20)
    with pytest.raises(ValueError, match="every target lies"):
        region_rmse(Y, PRED, -1, 10, rows="outside")
    with pytest.raises(ValueError, match="rows"):
        RegionError(2, 4, rows="all")
    with pytest.raises(ValueError, match="score"):
        RegionDetection(2, 4, score="accuracy")
    with pytest.raises(ValueError, match="finite"):
        region_f1(Y, np.where(PRED > 3, np.nan, PRED), 2, 4)
    with pytest.raises(ValueError, match="rows"):
        region_precision(Y, PRED[:3], 2, 4)
    with pytest.raises(ValueError, match="lo <= hi"):
        region_recall(Y, PRED, 4, 2)


def test_region_metrics_drive_engine_early_stopping(rng):
    X = rng.normal(size=(600, 2))
    y = X[:, 0] * 3.0
    model = SelectiveRegressor(n_estimators=200, early_stopping_rounds=5,
                               eval_metric=RegionDetection(2.0, None)).fit(X, y, eval_set=[(X, y)])
    history = model.evals_result_["validation_0"]["region_f1"]
    assert len(history) >= 6 and model.best_score_ == pytest.approx(max(history))


@pytest.mark.parametrize(("low", "high", "width"), [(2.0, 4.0, None), (-3.0, 1.0, 0.5), (10.0, 11.0, 0.05)])
def test_plot_link_default_range_holds_the_whole_smooth_region(low, high, width):
    """The default range of plot-link reaches 5 widths beyond both edges of a smooth region, where the
    sensitivity is back within 1 % of (strength - 1) of 1."""
    from selboost.bench.plot_link import _default_span

    link = region_link(low, high, strength=10.0, shape="smooth", width=width)
    width = 0.1 * (high - low) if width is None else width
    lo, hi = _default_span(link)
    assert lo <= low - 5.0 * width and hi >= high + 5.0 * width
    assert np.all(np.abs(link.dh(np.array([lo, hi])) - 1.0) < 0.01 * 9.0)


def test_plot_link_draws_a_region(tmp_path):
    from selboost.bench.plot_link import parse_link
    from selboost.cli import main

    assert parse_link("region(2, 4, strength=10, shape=smooth)") == region_link(2.0, 4.0, strength=10.0,
                                                                                 shape="smooth")
    assert parse_link("region(low=3, strength=5)") == region_link(3.0, None, strength=5.0)
    assert parse_link("region(none, 3, 5)") == region_link(None, 3.0, strength=5.0)
    out = tmp_path / "region.png"
    assert main(["plot-link", "--link", "region(2, 4, strength=10, shape=smooth)", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["plot-link", "--link", "region(2, 4)", "--out", str(out)])


def test_a_quantile_region_that_ties_make_hold_every_target_is_a_warning():
    """95 % zeros: the top decile's lower end resolves to 0.0, and the closed region [0, inf) holds
    every row; it, and any region holding more than twice the asked share, is a warning."""
    y = np.zeros(200)
    y[:10] = np.arange(1.0, 11.0)
    with pytest.warns(UserWarning, match="holds every training target"):
        RegionLoss(0.9, quantiles=True).resolve(y)
    y = np.r_[np.zeros(60), np.arange(140.0)]  # 61 zeros: the lowest decile's top end is 0.0
    with pytest.warns(UserWarning, match=r"holds 30\.5% of the training targets"):
        RegionLoss(None, 0.1, quantiles=True).resolve(y)
