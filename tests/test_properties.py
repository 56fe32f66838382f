"""Property-based checks over the link catalogue (hypothesis): convexity signs, floors, finiteness."""

from __future__ import annotations

import numpy as np
from conftest import CATALOGUE, every_variant
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selboost.losses import ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

FAST = settings(max_examples=50, deadline=None)
link_names = st.sampled_from(sorted(CATALOGUE))
scores = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)
wide_scores = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
hess_mins = st.sampled_from([0.0, 1e-6, 1e-2, 1.0])


@FAST
@given(name=link_names, z=arrays(np.float64, 16, elements=scores), y=arrays(np.float64, 16, elements=scores),
       hess_min=hess_mins, n_threads=st.sampled_from([1, 2]))
def test_scalar_loss_sign_and_floor(name, z, y, hess_min, n_threads):
    """loss >= 0, sign(grad) = sign(z - y) (h increasing), hess >= hess_min, all finite."""
    assume(np.all((np.abs(z - y) > 1e-6) | (z == y)))
    bound = SelectiveLoss(CATALOGUE[name], hess_min=hess_min).bind(y)
    grad, hess = bound.gradient_hessian(z, n_threads=n_threads)
    loss = bound.loss(z, n_threads=n_threads)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
    assert np.all(loss >= 0.0)
    np.testing.assert_array_equal(np.sign(grad), np.sign(z - y))
    assert np.all(hess >= hess_min)


@FAST
@given(name=link_names, z=arrays(np.float64, 8, elements=wide_scores), y=arrays(np.float64, 8, elements=wide_scores),
       w=arrays(np.float64, 8, elements=st.floats(0.0, 1e3)))
def test_scalar_loss_finite_for_wide_scores(name, z, y, w):
    assume(w.sum() > 0)
    bound = SelectiveLoss(CATALOGUE[name]).bind(y, w)
    grad, hess = bound.gradient_hessian(z)
    loss = bound.loss(z)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
    assert np.all(loss >= 0.0) and np.all(hess >= 1e-6 * w)


@st.composite
def grouped_problem(draw, max_groups=4, max_size=6):
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_groups))
    n = sum(sizes)
    relevance = draw(arrays(np.float64, n, elements=st.integers(0, 4).map(float)))
    z = draw(arrays(np.float64, n, elements=st.floats(-8.0, 8.0)))
    return np.asarray(sizes), relevance, z


@FAST
@given(name=link_names, problem=grouped_problem(), kind=st.sampled_from(["listwise", "pairwise"]),
       hess=st.sampled_from(["gauss-newton", "exact"]), hess_min=st.sampled_from([1e-6, 1e-2, 1.0]),
       n_threads=st.sampled_from([1, 2]), group_scale=st.sampled_from(["auto", None]))
def test_grouped_losses_are_finite_floored_and_balanced(name, problem, kind, hess, hess_min, n_threads, group_scale):
    """Finite, loss >= 0, hess >= hess_min on every row that takes part, and within a group
    sum_i grad_i / phi'(z_i) = 0 (every softmax or pair term moves probability, it does not create it)."""
    sizes, relevance, z = problem
    link = CATALOGUE[name]
    if not every_variant(link):  # the catalogue's one softmax kernel variant (conftest.TWO_LINKS)
        hess, group_scale = "exact", None
    if kind == "listwise":
        loss = ListwiseLoss(link, hess=hess, hess_min=hess_min, group_scale=group_scale)
    else:
        loss = PairwiseLoss(link, pairs_per_item=2, hess=hess, hess_min=hess_min)
    bound = loss.bind(relevance, sizes)
    grad, hess_values = bound.gradient_hessian(z, n_threads=n_threads)
    losses = bound.loss(z, n_threads=n_threads)
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess_values))
    assert np.all(losses >= 0.0)
    active = hess_values != 0.0  # rows of degenerate groups, or in no pair, get exactly 0
    # the floor applies before the row's weight (ListwiseLoss's group_scale="auto" weighs every group)
    row_weight = bound.weight if bound.weight.size else np.ones_like(z)
    assert np.all(hess_values[active] >= hess_min * row_weight[active] * (1 - 1e-12))
    assert np.all(grad[~active] == 0.0)
    in_phi = grad / link.dh(z)
    start = 0
    for size in sizes:
        group = slice(start, start + size)
        start += size
        scale = 1.0 + np.abs(in_phi[group]).sum()
        assert abs(in_phi[group].sum()) <= 1e-12 * scale


@FAST
@given(name=link_names, z=arrays(np.float64, (5, 3), elements=st.floats(-8.0, 8.0)),
       labels=arrays(np.int64, 5, elements=st.integers(0, 2)), hess=st.sampled_from(["gauss-newton", "exact"]))
def test_multiclass_is_finite_floored_and_balanced(name, z, labels, hess):
    link = CATALOGUE[name]
    if not every_variant(link):
        hess = "exact"
    bound = MulticlassLoss(link, hess=hess).bind(labels, 3)
    grad, hess_values = bound.gradient_hessian(z)
    losses = bound.loss(z)
    assert np.all(np.isfinite(losses)) and np.all(losses >= 0.0)
    assert np.all(np.isfinite(grad)) and np.all(hess_values >= 1e-6)
    in_phi = (grad / link.dh(z)).sum(axis=1)
    assert np.all(np.abs(in_phi) <= 1e-12 * (1.0 + np.abs(grad / link.dh(z)).sum(axis=1)))
    # the true class's gradient pushes its score up, every other class's down
    rows = np.arange(5)
    assert np.all(grad[rows, labels] <= 0.0)
    others = np.ones_like(grad, dtype=bool)
    others[rows, labels] = False
    assert np.all(grad[others] >= 0.0)


#: every finite float64, both signs, subnormals included
any_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _in_float_range(link, z, y):
    """u = (z - c) / s and (z - y) / s of every term fit in float64 (the documented range of exactness)."""
    with np.errstate(over="ignore", invalid="ignore"):
        for _, term in link._terms():
            scale = getattr(term, "scale", 1.0)
            center = getattr(term, "center", 0.0)
            if not np.isfinite([(z - center) / scale, (y - center) / scale, (z - y) / scale]).all():
                return False
    return True


@settings(max_examples=150, deadline=None)
@given(name=link_names, z=any_finite, y=any_finite)
# z - y beyond float64 with both finite: the divergence overflows (+inf), it is not NaN
@example(name="Exp(center=0.5, scale=2.0)", z=3.593211101270833e+296, y=-1.7976931348587226e+308)
@example(name="sinh()", z=-1.7e308, y=1.7e308)
@example(name="piecewise()", z=1.7e308, y=-1.7e308)
@example(name="sigmoid()", z=1.7e308, y=-1.7e308)
def test_scalar_loss_over_the_whole_float64_range(name, z, y):
    """Never NaN; loss >= 0, loss(y, y) = grad(y, y) = 0; the loss finite and exact (mpmath) wherever the
    true value fits in float64, +inf where it overflows; labels at which h overflows are refused."""
    import mp_reference as ref

    link = CATALOGUE[name]
    loss = SelectiveLoss(link)
    try:
        bound = loss.bind(np.array([y, y]))
    except ValueError as error:
        assert "overflows float64" in str(error)
        with np.errstate(over="ignore"):
            assert not np.isfinite(link.h(np.array([y])))[0]
        return
    with np.errstate(all="ignore"):
        values = bound.loss(np.array([z, y]))
        grad, hess = bound.gradient_hessian(np.array([z, y]))
    assert not np.isnan(values).any() and not np.isnan(grad).any() and not np.isnan(hess).any()
    assert values[0] >= 0.0 and values[1] == 0.0 and grad[1] == 0.0
    assert np.all(hess >= loss.hess_min)
    if _in_float_range(link, z, y):
        expected = ref.divergence(link, z, y)
        if expected < 1e300:
            assert abs(values[0] - expected) <= 1e-9 * expected + 1e-300, (values[0], expected)
        elif expected > np.finfo(np.float64).max:
            assert values[0] == np.inf
        if max(abs(ref.link_value(link, z)), abs(ref.link_value(link, y))) < 1e300:
            assert np.isfinite(grad[0])


@settings(max_examples=60, deadline=None)
@given(name=link_names, z=arrays(np.float64, 6, elements=any_finite),
       kind=st.sampled_from(["listwise", "pairwise", "multiclass", "distill"]))
def test_softmax_losses_over_the_whole_float64_range(name, z, kind):
    """Listwise, pairwise, multi-class and distillation: never NaN, loss >= 0, hess >= hess_min."""
    link = CATALOGUE[name]
    relevance = np.array([2.0, 0.0, 1.0, 3.0, 0.0, 1.0])
    if kind == "listwise":
        bound = ListwiseLoss(link, hess="exact", group_scale=None).bind(relevance, [2, 4])
    elif kind == "pairwise":
        bound = PairwiseLoss(link, pairs_per_item=2).bind(relevance, [2, 4])
    elif kind == "distill":
        bound = ListwiseLoss(link, target="score", hess="exact", group_scale=None).bind(z[::-1].copy(), [2, 4])
    else:
        bound = MulticlassLoss(link, hess="exact").bind(np.array([0, 2]), 3)
        z = z.reshape(2, 3)
    with np.errstate(all="ignore"):
        values = bound.loss(z)
        grad, hess = bound.gradient_hessian(z)
    assert not np.isnan(values).any() and not np.isnan(grad).any() and not np.isnan(hess).any()
    assert np.all(values >= 0.0) and np.all(hess >= 0.0)
