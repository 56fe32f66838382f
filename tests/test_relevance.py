"""Relevance functions, SERA and the utility-based metrics of imbalanced regression
(``selboost.relevance``), and the relevance link, loss and weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from sklearn.model_selection import GridSearchCV

from selboost import (SERA, Relevance, RelevanceLoss, SelectiveRegressor, UtilityScore, relevance, relevance_link,
                      relevance_weights)
from selboost.metrics import sera, sera_symmetric, utility, utility_f1, utility_precision, utility_recall
from selboost.relevance import _Kernel, adjusted_boxplot, fivenum, medcouple


def _slow_medcouple(x, lower):
    kernel = _Kernel(np.asarray(x, float))
    i, j = np.meshgrid(np.arange(kernel.p), np.arange(kernel.q), indexing="ij")
    values = np.sort(kernel(i.ravel(), j.ravel()))
    return values[::-1][values.size // 2] if lower else np.median(values)


def test_fivenum_is_r_fivenum():
    np.testing.assert_array_equal(fivenum([1, 2, 3, 4]), [1.0, 1.5, 2.5, 3.5, 4.0])
    np.testing.assert_array_equal(fivenum(np.arange(1, 11)), [1.0, 3.0, 5.5, 8.0, 10.0])


@pytest.mark.parametrize("n", [7, 40, 100, 101, 600])
def test_medcouple_against_all_kernel_values(n, rng):
    for x in (rng.lognormal(size=n), np.round(rng.normal(size=n), 1)):  # ties at the median too
        assert medcouple(x) == pytest.approx(_slow_medcouple(x, lower=n > 100), abs=1e-15)
    assert medcouple([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(_slow_medcouple([1, 2, 3, 4, 100], False))
    assert medcouple([1.0, 1.0, 1.0, 2.0]) == 1.0 and medcouple([0.0, 1.0, 1.0, 1.0]) == -1.0


def test_automatic_relevance_follows_irons_control_points(rng):
    y = rng.lognormal(size=501)
    stats, fence, _ = adjusted_boxplot(y)
    mc = medcouple(y)
    iqr = stats[3] - stats[1]
    assert mc > 0 and fence == pytest.approx((stats[1] - 1.5 * np.exp(-4 * mc) * iqr,
                                              stats[3] + 1.5 * np.exp(3 * mc) * iqr))
    phi = relevance(y)
    np.testing.assert_allclose(phi.control_points, [[fence[0], 1, 0], [np.median(y), 0, 0], [fence[1], 1, 0]])
    assert phi(np.median(y)) == 0.0 and phi(fence[1]) == 1.0 and phi(1e9) == 1.0 and phi(-1e9) == 1.0
    # between two points with zero slopes the cubic is the smoothstep 3 t^2 - 2 t^3
    t = np.linspace(0, 1, 11)
    z = np.median(y) + t * (fence[1] - np.median(y))
    np.testing.assert_allclose(phi(z), 3 * t**2 - 2 * t**3, atol=1e-12)
    high = relevance(y, extr_type="high")
    assert high.control_points[0].tolist() == [y.min(), 0.0, 0.0] and high(y.min()) == 0.0
    # "observed": a side counts only when a target lies beyond its fence
    observed = relevance(y, extr_type="observed").control_points
    assert observed[0, 1] == float((y < fence[0]).any()) and observed[-1, 1] == float((y > fence[1]).any())
    assert relevance(np.linspace(0, 1, 101), extr_type="observed").control_points[:, 1].tolist() == [0, 0, 0]
    standard = relevance(y, asym=False)
    assert standard.control_points[-1, 0] in y and standard.control_points[0, 1] == 0.0


def test_irons_range_example_and_two_column_slopes():
    # phi.control(y, method="range", control.pts=matrix(c(10,0,0, 15,1,0), byrow=TRUE, ncol=3))
    phi = relevance(np.arange(5.0), control_points=[[10, 0, 0], [15, 1, 0]])
    np.testing.assert_allclose(phi([5, 10, 12.5, 15, 20]), [0, 0, 0.5, 1, 1])
    # two columns: slopes 0 at the ends, the mean of the adjacent secants inside, then Fritsch-Carlson
    two = Relevance([[0, 0], [1, 0.5], [2, 1]])
    assert two.m.tolist() == [0.0, 0.5, 0.0]
    z = np.linspace(-1, 3, 401)
    assert np.all(np.diff(two(z)) >= -1e-15)  # monotone between monotone data
    # a slope too steep for monotonicity is cut back (alpha^2 + beta^2 <= 9)
    steep = Relevance([[0, 0, 5.0], [1, 1, 5.0]])
    assert np.hypot(*steep.m) == pytest.approx(3.0) and np.all(np.diff(steep(np.linspace(0, 1, 101))) >= 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Relevance([[1, 0], [1, 1]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Relevance([[0, 0], [1, 2]])
    with pytest.raises(ValueError, match="control_points"):
        relevance(np.ones(20))


def test_sera_is_the_area_under_the_ser_curve(rng):
    y = rng.lognormal(size=80)
    pred = y + rng.normal(size=80)
    phi = relevance(y)
    squared = (pred - y) ** 2

    def ser(t, relevant):
        return float(np.sum(squared[relevant >= t]))

    exact = sera(y, pred, phi)
    assert exact == pytest.approx(np.sum(phi(y) * squared))
    breaks = np.unique(np.concatenate([[0.0, 1.0], phi(y)]))
    integral = sum(quad(ser, a, b, args=(phi(y),))[0] for a, b in zip(breaks, breaks[1:]))
    assert exact == pytest.approx(integral, rel=1e-10)
    # IRon's trapezoid over t = 0, 0.001, ..., 1
    t = np.linspace(0, 1, 1001)
    assert exact == pytest.approx(np.trapezoid([ser(s, phi(y)) for s in t], t), rel=5e-3)
    assert sera(y, pred, phi(y)) == exact and sera(y, pred, None) == pytest.approx(exact)
    symmetric = sera_symmetric(y, pred, phi)
    either = np.maximum(phi(y), phi(pred))
    integral = sum(quad(ser, a, b, args=(either,))[0]
                   for a, b in zip(*(lambda k: (k[:-1], k[1:]))(np.unique(np.r_[0.0, 1.0, either]))))
    assert symmetric == pytest.approx(integral, rel=1e-10) and symmetric >= exact
    # a false alarm: a common target predicted at an extreme costs more in the symmetric version
    common, extreme = np.median(y), phi.control_points[-1, 0]
    assert sera([common], [extreme], phi) == 0.0
    assert sera_symmetric([common], [extreme], phi) == pytest.approx((extreme - common) ** 2)


def _utility_by_hand(y, pred, phi, p):
    """U for the three-point phi (L, 1), (M, 0), (H, 1): the tolerances written out."""
    low, median, high = phi.control_points[:, 0]
    out = []
    for t, z in zip(y, pred):
        if t >= median:
            lb, lc = (2 * (high - median),) * 2 if z > t else (min(t - median, 2 * (high - median)),
                                                                min(t - low, 2 * (high - median)))
        else:
            lb, lc = (2 * (median - low),) * 2 if z <= t else (min(median - t, 2 * (median - low)),
                                                                min(high - t, 2 * (median - low)))
        e = abs(t - z)
        benefit = 0.0 if e > lb else 1 - e / lb
        cost = 1.0 if e > lc else e / lc
        out.append(phi(t) * benefit - (p * phi(t) + (1 - p) * phi(z)) * cost)
    return np.array(out)


def test_utility_and_its_precision_recall_by_hand(rng):
    y = np.concatenate([rng.normal(size=300), [4.0, 5.0, -4.5, 6.0, 3.5]])
    pred = y + rng.normal(0, 0.7, y.size)
    phi = relevance(y)
    u = utility(y, pred, phi, p=0.3)
    np.testing.assert_allclose(u, _utility_by_hand(y, pred, phi, 0.3), atol=1e-12)
    assert np.all((u >= -1) & (u <= 1))
    np.testing.assert_allclose(utility(y, y, phi), phi(y))  # a perfect prediction earns phi(y)
    u = utility(y, pred, phi)
    fp, fy = phi(pred), phi(y)
    precision = np.sum(1 + u[fp > 0.5]) / np.sum(1 + fp[fp > 0.5])
    recall = np.sum(1 + u[fy > 0.5]) / np.sum(1 + fp[fy > 0.5])
    assert utility_precision(y, pred, phi) == pytest.approx(precision)
    assert utility_recall(y, pred, phi) == pytest.approx(recall)
    assert utility_f1(y, pred, phi) == pytest.approx(2 * precision * recall / (precision + recall))
    both = (fp > 0.5) & (fy > 0.5)
    assert utility_recall(y, pred, phi, definition="paper") == pytest.approx(
        np.sum(1 + u[both]) / np.sum(1 + fy[fy > 0.5]))
    assert utility_precision(y, y, phi) == pytest.approx(1.0) and utility_recall(y, y, phi) == pytest.approx(1.0)


def test_relevance_link_sensitivity_is_one_plus_strength_minus_one_phi(rng):
    y = rng.lognormal(size=400)
    phi = relevance(y)
    for strength in (0.3, 10.0):
        link = relevance_link(phi, strength)
        z = np.linspace(-1, 12, 4001)
        assert np.max(np.abs(link.dh(z) - (1 + (strength - 1) * phi(z)))) <= 0.02 * abs(strength - 1)
        # h is the exact integral at the knots: compare with quadrature of h'
        knots = np.array(link.knots)
        exact = [quad(lambda s: 1 + (strength - 1) * phi(s), knots[0], k, limit=200)[0] for k in knots[::25]]
        np.testing.assert_allclose(link.h(knots[::25]) - link.h(knots[0]), exact, rtol=1e-9, atol=1e-9)
    # the loss's gradient and hessian by finite differences
    loss = RelevanceLoss(strength=5.0).resolve(y)
    target = y[:50]
    z = target + rng.normal(size=50)
    grad, hess = loss.gradient_hessian(target, z)

    def value(at):
        return loss.link.H(at) - loss.link.H(target) - (at - target) * loss.link.h(target)

    step = 1e-6
    np.testing.assert_allclose(grad, (value(z + step) - value(z - step)) / (2 * step), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hess, loss.link.dh(z))
    with pytest.raises(ValueError, match="end control points"):
        relevance_link([[0, 0, 0.1], [1, 1, 0]], 5.0)


def test_relevance_weights_and_resolution_at_fit(rng):
    y = rng.lognormal(size=300)
    np.testing.assert_allclose(relevance_weights(y, strength=4.0), 1 + 3 * relevance(y)(y))
    by_levels = relevance_weights(y, [[0.5, 0], [0.95, 1]], strength=4.0, quantiles=True)
    q = np.quantile(y, [0.5, 0.95], method="inverted_cdf")
    np.testing.assert_allclose(by_levels, 1 + 3 * Relevance([[q[0], 0], [q[1], 1]])(y))
    loss = RelevanceLoss(strength=4.0, control_points=[[0.5, 0], [0.95, 1]], quantiles=True)
    with pytest.raises(ValueError, match="resolve"):
        loss.bind(y)
    assert loss.resolve(y).relevance.control_points[:, 0].tolist() == q.tolist()


def test_strength_is_grid_searchable(rng):
    X = rng.normal(size=(300, 2))
    y = np.exp(X[:, 0]) + 0.1 * rng.normal(size=300)
    search = GridSearchCV(SelectiveRegressor(RelevanceLoss(tol=0.05), n_estimators=5),
                          {"loss__strength": [1.0, 8.0]}, cv=2).fit(X, y)
    assert search.best_estimator_.loss.strength == search.best_params_["loss__strength"]
    assert search.best_estimator_.loss_.relevance is not None


@pytest.mark.parametrize("engine", ["xgboost", "lightgbm"])
def test_relevance_metrics_drive_early_stopping(engine, rng):
    X = rng.normal(size=(500, 2))
    y = np.exp(X[:, 0])
    phi = relevance(y)
    for metric, name in ((SERA(phi), "sera"), (UtilityScore(phi), "utility_f1")):
        model = SelectiveRegressor(engine=engine, n_estimators=100, learning_rate=0.3, early_stopping_rounds=3,
                                   eval_metric=metric).fit(X, y, eval_set=[(X, y)])
        history = model.evals_result_["validation_0"][name]
        best = min(history) if name == "sera" else max(history)
        assert model.best_score_ == pytest.approx(best)
    assert history[-1] == pytest.approx(utility_f1(y, model.predict(X), phi), rel=1e-5) or len(history) < 100
