"""Every loss kind against a high-precision reference (mpmath, ``mp_reference``), over the whole range.

Draws cover nearly equal and far-apart pairs, both tails of every link, |u| up to the linear
continuation of sinh and exp and far beyond it, pairs that straddle a boundary, non-default centres
and scales, and weighted sums. The bounds held:

- loss (a sum of non-negative terms): relative error 1e-9; below 1e-300 (under float64's normal
  range) an absolute 1e-300;
- gradient h(z) - h(y): relative 1e-9, or, where the two nearly cancel, an absolute
  8 eps sum_k w_k (|h_k(z)| + |z - c_k| h_k'(z) + the same at y) + 1e-300: the rounding of the float64
  terms it is the difference of, and of their arguments (z - c_k) / s_k;
- hessian h'(z): relative 1e-9 (absolute 1e-300 where it underflows);
- the softmax losses: KL(q || p) relative 1e-9, or absolute 64 eps (1 + sum_i q_i |phi_i - max phi|)
  where p is so close to q that the divergence is of the size of the rounding of phi; gradients
  phi'(p - q) to 1e-9 relative, or absolute 64 eps phi' max(1, |grad| / phi') + 1e-300;
- init_score: relative 1e-9 (absolute 1e-12 times the scale of the labels near 0).
"""

from __future__ import annotations

import math

import mp_reference as ref
import mpmath as mp
import numpy as np
import pytest
from conftest import CATALOGUE, EXTREME, every_variant

from selboost.links import LINEAR_BEYOND, Exp, Identity, PiecewiseLinear, Sigmoid, Sinh
from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

EPS = np.finfo(np.float64).eps
LINKS = {**CATALOGUE, **{k: v for k, v in EXTREME.items() if k != "sinh(1e6,1e6)+1e-6exp(0,1e-6)"}}

#: unit positions u = (z - c) / s worth visiting: centre, tails, the sinh/exp continuation and far beyond
_UNIT_ANCHORS = [0.0, 1.0, -2.5, 5.0, -5.0, 29.0, -29.0, 29.9, 30.0, -30.0, 30.5, -30.5, 40.0, -40.0,
                 300.0, -300.0, 705.0, -705.0, 800.0, -800.0, 1e4, -1e4, 1e8, -1e8]


def _anchors(link):
    points = []
    for _, term in link._terms():
        if isinstance(term, PiecewiseLinear):
            points.extend(term.knots)
            points.extend([term.knots[0] - 3.0, term.knots[-1] + 3.0, 1e8, -1e8])
        elif isinstance(term, Identity):
            points.extend([0.0, 1.0, -3.0, 1e8, -1e8])
        else:
            points.extend(term.center + term.scale * u for u in _UNIT_ANCHORS)
    return np.unique(np.asarray(points, dtype=np.float64))


def pairs(link, rng, n=60):
    """(z, y) pairs: near-equal, straddling an anchor, and far apart, around the link's anchors."""
    anchors = _anchors(link)
    spread = max(abs(term.scale) if hasattr(term, "scale") else 1.0 for _, term in link._terms())
    y = rng.choice(anchors, size=n) + spread * rng.normal(size=n) * rng.choice([0.0, 1e-6, 0.3, 3.0], size=n)
    z = np.empty(n)
    third = n // 3
    # nearly equal: a relative step of 1e-12 ... 1e-2 of the larger of |y| and the link's scale
    step = 10.0 ** rng.uniform(-12, -2, size=third) * np.maximum(np.abs(y[:third]), spread)
    z[:third] = y[:third] + rng.choice([-1.0, 1.0], size=third) * step
    # straddling an anchor (a kink, a tail boundary) by a small amount on each side
    b = rng.choice(anchors, size=third)
    width = 10.0 ** rng.uniform(-10, 0, size=(2, third)) * np.maximum(np.abs(b), spread)
    y[third:2 * third] = b - width[0]
    z[third:2 * third] = b + width[1]
    # far apart
    z[2 * third:] = rng.choice(anchors, size=n - 2 * third) + spread * rng.normal(size=n - 2 * third)
    flip = rng.random(n) < 0.5
    y[flip], z[flip] = z[flip], y[flip].copy()
    return z, y


def _finite_labels(link, y):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.isfinite(link.h(y))


@pytest.mark.parametrize("name", list(LINKS))
def test_scalar_loss_gradient_hessian_match_mpmath(name, rng):
    link = LINKS[name]
    z, y = pairs(link, rng)
    keep = _finite_labels(link, y)
    z, y = z[keep], y[keep]
    weight = rng.uniform(0.1, 3.0, size=z.size)
    expected = [mp.mpf(w) * ref.divergence(link, zi, yi) for w, zi, yi in zip(weight, z, y)]
    expected_grad = [mp.mpf(w) * ref.gradient(link, zi, yi) for w, zi, yi in zip(weight, z, y)]
    rounding = [8 * EPS * w * (ref.term_magnitude(link, zi) + ref.term_magnitude(link, yi)) + 1e-300
                for w, zi, yi in zip(weight, z, y)]
    expected_hess = [mp.mpf(w) * ref.slope(link, zi) for w, zi in zip(weight, z)]
    bound = SelectiveLoss(link, hess_min=0.0).bind(y, weight)
    # serial: the threaded kernels equal the serial ones bit for bit (test_losses, over many chunks)
    loss = bound.loss(z)
    grad, hess = bound.gradient_hessian(z)
    for i in range(z.size):
        assert abs(loss[i] - expected[i]) <= 1e-9 * abs(expected[i]) + 1e-300, (name, z[i], y[i], loss[i])
        assert abs(grad[i] - expected_grad[i]) <= 1e-9 * abs(expected_grad[i]) + rounding[i], (name, z[i], y[i])
        assert abs(hess[i] - expected_hess[i]) <= 1e-9 * abs(expected_hess[i]) + 1e-300, (name, z[i])


def test_issue_examples_far_apart_sinh_and_flat_sigmoid():
    """The two cases that were wrong: terms of +-3e31 cancelling for a value of 4.6e12, and 1 - p from p ~ 1."""
    got = SelectiveLoss(Sinh()).loss([-26.0], [22.0])[0]
    exact = math.cosh(22.0) - math.cosh(-26.0) - 48.0 * math.sinh(-26.0)
    assert got == pytest.approx(exact, rel=1e-12)
    y = np.array([29.0, 29.3, 28.7, 29.0])
    z = np.array([31.0, 25.0, 40.0, 29.5])
    got = SelectiveLoss(Sigmoid()).loss(y, z)
    expected = [float(ref.divergence(Sigmoid(), zi, yi)) for zi, yi in zip(z, y)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid()", "Sigmoid(center=2.0, scale=0.5)", "0.25sigmoid",
                                  "sigmoid+sigmoid(3,2)"])
def test_link_targets_at_the_range_ends_match_mpmath(name, rng):
    """target='link' with t at the ends of a sum of sigmoids' range: the logistic-loss limits."""
    link = CATALOGUE[name]
    lo, hi = link.range
    z = np.concatenate([rng.normal(scale=5.0, size=20), [-800.0, -40.0, 40.0, 800.0, 1e8, -1e8]])
    for t, sign in ((lo, 1), (hi, -1)):
        got = SelectiveLoss(link, target="link").loss(np.full(z.size, t), z)
        for zi, gi in zip(z, got):
            with mp.workdps(60):
                expected = mp.fsum(mp.mpf(w) * 4 * mp.mpf(term.scale) ** 2
                                   * mp.log1p(mp.exp(sign * (mp.mpf(zi) - term.center) / term.scale))
                                   for w, term in link._terms())
            assert abs(gi - expected) <= 1e-9 * expected + 1e-300, (zi, gi, expected)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_scalar_init_score_matches_mpmath(name, rng):
    link = CATALOGUE[name]
    y = rng.normal(scale=2.0, size=40) + rng.choice([0.0, 5.0], size=40)
    weight = rng.uniform(0.0, 2.0, size=40)
    got = SelectiveLoss(link).init_score(y, weight)
    with mp.workdps(60):
        weights = [mp.mpf(w) for w in weight]
        mean = mp.fsum(w * ref.link_value(link, v) for w, v in zip(weights, y)) / mp.fsum(weights)
        expected = ref.inverse(link, mean)
    assert abs(got - expected) <= 1e-9 * abs(expected) + 1e-12 * np.abs(y).max(), (got, expected)


def _group_scores(transform, rng, n):
    """Scores of one group: moderate values, a tie, and some in the link's tails and beyond."""
    z = rng.normal(scale=2.0, size=n)
    z[0] = z[1]
    anchors = _anchors(transform)
    moderate = anchors[np.abs(anchors) < 1e5]
    z[2:4] = rng.choice(moderate, size=z[2:4].size)
    return z


SOFTMAX_TRANSFORMS = ["identity()", "sigmoid()", "sinh()", "exp()", "Exp(center=0.0, scale=-1.5)",
                      "piecewise()", "identity+9sigmoid(2,0.5)", "0.5sinh+2exp(1,-1)"]


@pytest.mark.parametrize("name", SOFTMAX_TRANSFORMS)
def test_listwise_loss_and_gradients_match_mpmath(name, rng):
    transform = CATALOGUE[name]
    sizes = [2, 5, 9]
    z = np.concatenate([_group_scores(transform, rng, n) for n in sizes])
    relevance = rng.integers(0, 4, size=z.size).astype(float)
    relevance[0] = 3.0
    # the catalogue's kernel variant (conftest.TWO_LINKS): exact hessians, checked by finite differences
    # in test_losses; the Gauss-Newton hessians (the reference's) on the links checked in every variant
    bound = ListwiseLoss(transform, hess="exact", hess_min=0.0, group_scale=None).bind(relevance, sizes)
    losses = bound.loss(z)
    grad, _ = bound.gradient_hessian(z)
    hess = None
    if every_variant(transform):
        _, hess = ListwiseLoss(transform, hess_min=0.0, group_scale=None).bind(relevance, sizes).gradient_hessian(z)
    phi = transform.h(z)
    start = 0
    for g, n in enumerate(sizes):
        rows = slice(start, start + n)
        start += n
        expected_loss, expected_grad, expected_hess = ref.listwise(transform, z[rows], bound.q[rows])
        spread = 1.0 + np.sum(bound.q[rows] * np.abs(phi[rows] - phi[rows].max()))
        assert abs(losses[g] - expected_loss) <= 1e-9 * abs(expected_loss) + 64 * EPS * spread
        for i, gr in enumerate(grad[rows]):
            slope = transform.dh(z[rows][i])
            size = 64 * EPS * max(slope, abs(float(expected_grad[i])))  # slope * max(1, |grad| / slope)
            assert abs(gr - expected_grad[i]) <= 1e-9 * abs(expected_grad[i]) + size + 1e-300
            if hess is not None:
                hs = hess[rows][i]
                assert abs(hs - expected_hess[i]) <= 1e-9 * abs(expected_hess[i]) + 64 * EPS * slope * slope + 1e-300


@pytest.mark.parametrize("name", SOFTMAX_TRANSFORMS)
def test_pairwise_loss_and_gradients_match_mpmath(name, rng):
    transform = CATALOGUE[name]
    z = _group_scores(transform, rng, 8)
    relevance = np.array([2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 3.0, 0.0])
    bound = PairwiseLoss(transform, pairs_per_item=None, hess_min=0.0).bind(relevance, [8])
    all_pairs = [(i, j) for i in range(8) for j in range(8) if relevance[i] > relevance[j]]
    expected_loss, expected_grad = ref.pairwise(transform, z, all_pairs)
    phi = np.abs(transform.h(z))
    rounding = 8 * EPS * len(all_pairs) * (1.0 + phi.max())
    assert abs(bound.loss(z)[0] - expected_loss) <= 1e-9 * abs(expected_loss) + rounding
    grad, _ = bound.gradient_hessian(z)
    for i in range(8):
        size = 8 * EPS * len(all_pairs) * transform.dh(z[i]) * (1.0 + phi.max())
        assert abs(grad[i] - expected_grad[i]) <= 1e-9 * abs(expected_grad[i]) + size


@pytest.mark.parametrize("name", SOFTMAX_TRANSFORMS)
def test_multiclass_loss_and_init_score_match_mpmath(name, rng):
    transform = CATALOGUE[name]
    z = np.stack([_group_scores(transform, rng, 4) for _ in range(5)])
    labels = np.array([0, 3, 1, 2, 3])
    bound = MulticlassLoss(transform, hess="exact", hess_min=0.0).bind(labels, 4)
    losses = bound.loss(z)
    phi = transform.h(z)
    for row in range(5):
        q = np.eye(4)[labels[row]]
        expected, _, _ = ref.listwise(transform, z[row], q)
        spread = 1.0 + np.abs(phi[row] - phi[row].max()).max()
        assert abs(losses[row] - expected) <= 1e-9 * abs(expected) + 64 * EPS * spread
    weight = rng.uniform(0.5, 2.0, size=5)
    init = MulticlassLoss(transform, hess="exact").init_score(labels, 4, weight)
    with mp.workdps(60):
        frequencies = [mp.fsum(mp.mpf(w) for w, c in zip(weight, labels) if c == k) / mp.fsum(map(mp.mpf, weight))
                       for k in range(4)]
        reached = ref.softmax([ref.link_value(transform, c) for c in init])
    for got, wanted in zip(reached, frequencies):
        assert abs(got - wanted) <= 1e-9 * wanted, (name, reached, frequencies)


def test_the_reference_itself_agrees_with_closed_forms():
    """The mpmath reference against values computable by hand (guards against a reference bug)."""
    assert float(ref.divergence(Identity(), 3.0, -1.0)) == 8.0
    assert float(ref.divergence(Sinh(), 2.0, 0.5)) == pytest.approx(
        math.cosh(2.0) - math.cosh(0.5) - 1.5 * math.sinh(0.5), rel=1e-14)
    assert float(ref.divergence(Exp(), 1.0, -1.0)) == pytest.approx(math.e - math.exp(-1) * 3.0, rel=1e-14)
    # beyond the continuation the link is linear with slope cosh(30): a quadratic divergence
    edge = LINEAR_BEYOND
    assert float(ref.divergence(Sinh(), edge + 5.0, edge + 1.0)) == pytest.approx(
        0.5 * math.cosh(edge) * 16.0, rel=1e-14)
    assert float(ref.divergence(PiecewiseLinear((0.0,), (1.0, 3.0)), 2.0, -1.0)) == pytest.approx(
        8.5, rel=1e-14)
