"""Every loss kind over the link catalogue: finite differences, Bregman identities, kernels = reference,
initial scores, parity with the logistic and softmax cross-entropy losses, weights, permutations,
degenerate groups, extreme inputs and cancellation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference as R
from conftest import CATALOGUE, EXTREME, TWO_LINKS, every_variant, kinks
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import log_loss

from selboost import _kernels as K
from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh
from selboost.losses import LOSSES, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss

# every kernel variant is checked with the two links of conftest.TWO_LINKS (four term kinds between
# them); the whole catalogue with one variant each. Threads:
# ``test_threaded_kernels_equal_the_serial_ones_over_many_chunks``


def catalogue_cross(**axes):
    """Parametrize ``link`` and ``axes``: every catalogue link with the first value of each axis, and the
    links of ``TWO_LINKS`` with every combination of the axes' values."""
    combinations = list(itertools.product(*axes.values()))
    cases = []
    for name, link in CATALOGUE.items():
        for combination in combinations if name in TWO_LINKS else combinations[:1]:
            ids = "-".join([name, *(getattr(value, "__name__", str(value)) for value in combination)])
            cases.append(pytest.param(link, *combination, id=ids))
    return pytest.mark.parametrize(["link", *axes], cases)
GROUP_SIZES = (1, 3, 5, 8, 2, 6)


def away_from_kinks(link, z, margin=1e-3):
    """Shift scores off the link's kinks so that finite differences see a smooth function."""
    k = kinks(link)
    z = np.array(z, dtype=np.float64)
    if k.size:
        near = np.min(np.abs(z[..., None] - k), axis=-1) < margin
        z[near] += 10 * margin
    return z


def grouped(rng, link, sizes=GROUP_SIZES, max_relevance=3, distinct=True):
    n = sum(sizes)
    y = rng.integers(0, max_relevance + 1, n).astype(np.float64)
    z = rng.uniform(-3.0, 3.0, n)
    if not distinct:
        z = np.round(z)
    return y, away_from_kinks(link, z), np.asarray(sizes)


def close(actual, desired, rtol=1e-12):
    """Equal to ``rtol`` relative, with an absolute floor at ``rtol`` times the largest magnitude."""
    desired = np.asarray(desired, dtype=np.float64)
    floor = rtol * max(1e-300, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=floor)


def total_loss_fd(bound, z, eps=1e-5):
    """Central differences of the summed loss, one coordinate at a time; returns (grad, diag of d grad)."""
    flat = z.ravel()
    grad = np.empty(flat.size)
    diag = np.empty(flat.size)
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += eps
        down[i] -= eps
        up, down = up.reshape(z.shape), down.reshape(z.shape)
        grad[i] = (bound.loss(up).sum() - bound.loss(down).sum()) / (2 * eps)
        diag[i] = (bound.gradient_hessian(up)[0].ravel()[i] - bound.gradient_hessian(down)[0].ravel()[i]) / (2 * eps)
    return grad.reshape(z.shape), diag.reshape(z.shape)


# ------------------------------------------------------------------ every registered loss kind


def _selective(link, rng, hess="exact"):
    y = rng.uniform(-3.0, 3.0, 8)
    z = away_from_kinks(link, rng.uniform(-3.0, 3.0, 8))
    return SelectiveLoss(link, hess_min=0.0).bind(y), z


def _listwise(link, rng, hess="exact", group_scale=None):
    y, z, sizes = grouped(rng, link, sizes=(1, 4, 5))
    return ListwiseLoss(link, hess=hess, hess_min=0.0, group_scale=group_scale).bind(y, sizes), z


def _pairwise(link, rng, hess="exact"):
    y, z, sizes = grouped(rng, link, sizes=(1, 4, 5))
    return PairwiseLoss(link, pairs_per_item=2, hess=hess, hess_min=0.0).bind(y, sizes), z


def _multiclass(link, rng, hess="exact"):
    y = rng.integers(0, 3, 3)
    z = away_from_kinks(link, rng.uniform(-3.0, 3.0, (3, 3)))
    return MulticlassLoss(link, hess=hess, hess_min=0.0).bind(y, 3), z


PROBLEMS = {"selective": _selective, "listwise": _listwise, "pairwise": _pairwise, "multiclass": _multiclass}


def test_every_registered_loss_kind_has_a_problem():
    assert set(PROBLEMS) == set(LOSSES)


@pytest.mark.parametrize("kind", list(LOSSES))
def test_gradient_and_exact_hessian_by_finite_differences(kind, link, rng):
    bound, z = PROBLEMS[kind](link, rng, hess="exact")
    grad, hess = bound.gradient_hessian(z)
    fd_grad, fd_diag = total_loss_fd(bound, z)
    scale = 1.0 + np.abs(grad).max()
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-5, atol=1e-6 * scale)
    # exact hessians are the diagonal of the true hessian, floored at hess_min (= 0 here)
    hscale = 1.0 + np.abs(hess).max()
    np.testing.assert_allclose(hess, np.maximum(fd_diag, 0.0), rtol=1e-5, atol=1e-6 * hscale)


@pytest.mark.parametrize("link", [CATALOGUE[name] for name in TWO_LINKS], ids=TWO_LINKS)
@pytest.mark.parametrize("kind", ["listwise", "pairwise", "multiclass"])
def test_gauss_newton_hessian_formula(kind, link, rng):
    """Gauss-Newton: phi'^2 times the curvature in phi (softmax p(1-p); pairs sum sigma(m) sigma(-m))."""
    bound, z = PROBLEMS[kind](link, rng, hess="gauss-newton", **({"group_scale": "auto"} if kind == "listwise" else {}))
    _, hess = bound.gradient_hessian(z)
    dphi = link.dh(z)
    if kind == "multiclass":
        p = softmax(link.h(z), axis=1)
        expected = dphi**2 * p * (1 - p)
    elif kind == "listwise":
        expected, start = np.zeros_like(z), 0.0
        for s in range(len(bound.group_ptr) - 1):
            sl = slice(bound.group_ptr[s], bound.group_ptr[s + 1])
            p = softmax(link.h(z[sl]))
            degenerate = sl.stop - sl.start < 2 or bound.q[sl].sum() == 0
            expected[sl] = 0.0 if degenerate else dphi[sl] ** 2 * p * (1 - p)
            n = sl.stop - sl.start
            start += 0.0 if degenerate else 1 - 1 / n  # the plain softmax at z = 0: p = 1/n
        expected *= max(32.0 / start, 1.0 / 32.0)  # group_scale="auto" (the floor is not reached here)
    else:
        _, _, expected = R.pairwise(link, bound.relevance, z, np.diff(bound.group_ptr), pairs_per_item=2,
                                    hess_min=0.0)
    close(hess, expected, rtol=1e-10)
    assert np.all(hess >= 0)


@pytest.mark.parametrize("kind", list(LOSSES))
def test_float32_predictions_give_the_float64_result(kind, rng):
    """Engines hand over float32 margins: the result must equal that of the same values in float64."""
    link = CATALOGUE["identity+9sigmoid(2,0.5)"]
    # listwise: groups weighted by the default group_scale, as the engines train (a kernel variant)
    bound, z = PROBLEMS[kind](link, rng, hess="exact", **({"group_scale": "auto"} if kind == "listwise" else {}))
    z32 = z.astype(np.float32)
    for a, b in zip(bound.gradient_hessian(z32), bound.gradient_hessian(z32.astype(np.float64))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bound.loss(z32), bound.loss(z32.astype(np.float64)))


@pytest.mark.parametrize("kind", list(LOSSES))
def test_threaded_kernels_equal_the_serial_ones_over_many_chunks(kind, rng):
    """More rows (scalar) or groups (the others) than one chunk of the kernels, so that n_threads other
    than 1 splits the work between threads: every row's and group's result is the serial one, bit for bit.
    One link: the threaded driver is the same for every range function."""
    link = CATALOGUE["identity+9sigmoid(2,0.5)"]
    if kind == "selective":
        n = 3 * K.CHUNK + 17
        y, z = rng.uniform(-3.0, 3.0, n), rng.uniform(-3.0, 3.0, n)
        bound = SelectiveLoss(link).bind(y, rng.uniform(0.1, 3.0, n))
    elif kind == "multiclass":
        n = 3 * K.GROUPS_PER_CHUNK + 5
        z = rng.uniform(-3.0, 3.0, (n, 4))
        bound = MulticlassLoss(link, hess="exact").bind(rng.integers(0, 4, n), 4, rng.uniform(0.1, 3.0, n))
    else:
        y, z, sizes = grouped(rng, link, sizes=rng.integers(1, 12, 3 * K.GROUPS_PER_CHUNK + 5))
        loss = ListwiseLoss(link, hess="exact") if kind == "listwise" else PairwiseLoss(link, pairs_per_item=3)
        bound = loss.bind(y, sizes, sample_weight=rng.uniform(0.1, 3.0, y.size))
    serial_grad, serial_hess = bound.gradient_hessian(z, n_threads=1)
    serial_loss = bound.loss(z, n_threads=1)
    for n_threads in (2, -1):
        grad, hess = bound.gradient_hessian(z, n_threads=n_threads)
        np.testing.assert_array_equal(grad, serial_grad)
        np.testing.assert_array_equal(hess, serial_hess)
        np.testing.assert_array_equal(bound.loss(z, n_threads=n_threads), serial_loss)
        assert bound.mean_loss(z, n_threads=n_threads) == pytest.approx(bound.mean_loss(z), rel=1e-12)


# ------------------------------------------------------------------ scalar loss


def test_bregman_identities(link, rng):
    y = rng.uniform(-6.0, 6.0, 300)
    bound = SelectiveLoss(link).bind(y)
    grad, _ = bound.gradient_hessian(y)
    assert np.all(bound.loss(y) == 0.0)
    assert np.all(grad == 0.0)
    z = rng.uniform(-6.0, 6.0, 300)
    assert np.all(bound.loss(z) >= 0.0)


@catalogue_cross(weighted=[False, True])
def test_scalar_kernel_equals_reference(link, weighted, rng):
    y = rng.uniform(-5.0, 5.0, 500)
    z = rng.uniform(-5.0, 5.0, 500)
    w = rng.uniform(0.1, 3.0, 500) if weighted else None
    bound = SelectiveLoss(link, hess_min=1e-3).bind(y, w)
    grad, hess = bound.gradient_hessian(z)
    loss = bound.loss(z)
    ref_loss, ref_grad, ref_hess = R.scalar(link, z, y, w, hess_min=1e-3)
    close(grad, ref_grad)
    close(hess, ref_hess)
    # the reference's direct form cancels: allow its rounding relative to the terms it subtracts
    terms = np.abs(link.H(z)) + np.abs(link.H(y)) + np.abs((z - y) * link.h(y))
    terms = terms * (1.0 if w is None else w)
    assert np.all(np.abs(loss - ref_loss) <= 5e-12 * np.abs(ref_loss) + 1e-14 * terms)


def test_scalar_target_link_equals_reference(link, rng):
    y_score = rng.uniform(-4.0, 4.0, 200)
    t = link.h(y_score)
    z = rng.uniform(-4.0, 4.0, 200)
    w = rng.uniform(0.1, 3.0, 200)
    bound = SelectiveLoss(link, target="link").bind(t, w)
    grad, hess = bound.gradient_hessian(z)
    ref_loss, ref_grad, ref_hess = R.scalar(link, z, t, w, target="link")
    close(grad, ref_grad)
    close(hess, ref_hess)
    np.testing.assert_allclose(bound.loss(z), ref_loss, rtol=1e-7,
                               atol=1e-9 * np.abs(ref_loss).max())


@pytest.mark.parametrize(
    "link",
    [Identity(), Sigmoid(2.0, 0.5), Sinh(-1.0, 3.0), Exp(0.5, 2.0), Exp(0.0, -1.5),
     PiecewiseLinear((-1.0, 0.5, 2.0), (0.5, 2.0, 1.0, 3.0)), Identity() + 9 * Sigmoid(2.0, 0.5)],
    ids=repr,
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", ["score", "link"])
def test_init_score_is_the_numerical_argmin(link, weighted, target, rng):
    y_score = rng.uniform(-3.0, 3.0, 40)
    y = y_score if target == "score" else link.h(y_score)
    w = rng.uniform(0.1, 5.0, 40) if weighted else None
    loss = SelectiveLoss(link, target=target)
    bound = loss.bind(y, w)
    found = minimize_scalar(lambda c: bound.loss(np.full(40, c)).sum(), bounds=(-4.0, 4.0), method="bounded",
                            options={"xatol": 1e-10})
    init = loss.init_score(y, w)
    assert abs(init - found.x) <= 1e-5 * (1.0 + abs(found.x))
    assert init == pytest.approx(R.init_score(link, y, w, target), rel=1e-9, abs=1e-9)


def test_sigmoid_link_with_binary_targets_is_the_logistic_loss(rng):
    z = rng.uniform(-6.0, 6.0, 300)
    t = rng.integers(0, 2, 300).astype(np.float64)
    bound = SelectiveLoss(0.25 * Sigmoid(), target="link").bind(t)
    p = 1.0 / (1.0 + np.exp(-z))
    direct = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    np.testing.assert_allclose(bound.loss(z), direct, rtol=1e-12)
    assert bound.loss(z).sum() == pytest.approx(log_loss(t, p, normalize=False), rel=1e-12)
    grad, hess = bound.gradient_hessian(z)
    np.testing.assert_allclose(grad, p - t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, p * (1 - p), rtol=1e-12)
    # soft targets: cross-entropy minus the targets' entropy (the loss is 0 at p = t)
    soft = rng.uniform(0.01, 0.99, 300)
    bound = SelectiveLoss(0.25 * Sigmoid(), target="link").bind(soft)
    entropy = -(soft * np.log(soft) + (1 - soft) * np.log1p(-soft))
    cross = -(soft * np.log(p) + (1 - soft) * np.log1p(-p))
    np.testing.assert_allclose(bound.loss(z), cross - entropy, rtol=1e-9, atol=1e-12)
    assert SelectiveLoss(0.25 * Sigmoid(), target="link").init_score(t) == pytest.approx(
        np.log(t.mean() / (1 - t.mean())), rel=1e-9
    )


def test_scalar_weighted_is_weight_times_unweighted(link, rng):
    y, z, w = rng.uniform(-4, 4, 100), rng.uniform(-4, 4, 100), rng.uniform(0, 4, 100)
    plain = SelectiveLoss(link).bind(y)
    weighted = SelectiveLoss(link).bind(y, w)
    for a, b in zip(weighted.gradient_hessian(z), plain.gradient_hessian(z)):
        np.testing.assert_allclose(a, w * b, rtol=1e-15)
    np.testing.assert_allclose(weighted.loss(z), w * plain.loss(z), rtol=1e-15)


@pytest.mark.parametrize("link", [lk for name, lk in CATALOGUE.items() if "piecewise" not in name.lower()],
                         ids=[name for name in CATALOGUE if "piecewise" not in name.lower()])
def test_no_catastrophic_cancellation_for_nearby_scores(link):
    """The loss for z close to y against a 60-digit evaluation of H(z) - H(y) - (z - y) h(y)."""
    ys = np.array([-4.1, -1.3, 0.0, 0.7, 2.0, 3.9])
    deltas = np.array([1e-9, -3e-7, 1e-5, -9.9e-5, 1.01e-4, -2e-3, 9e-3, 1.1e-2, -0.3, 1.5, -4.0, 8.0])
    y = np.repeat(ys, deltas.size)
    z = y + np.tile(deltas, ys.size)
    got = SelectiveLoss(link).loss(y, z)
    expected = np.array([R.scalar_loss_high_precision(link, zi, yi) for zi, yi in zip(z, y)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("link", [PiecewiseLinear((-1.0, 0.5, 2.0), (0.5, 2.0, 1.0, 3.0)), PiecewiseLinear()],
                         ids=repr)
def test_piecewise_loss_is_exact_within_a_segment(link):
    y = np.array([-3.0, -0.2, 1.0, 5.0])
    for delta in (1e-9, 1e-6, 1e-3):
        z = y + delta
        np.testing.assert_allclose(SelectiveLoss(link).loss(y, z), 0.5 * link.dh(y) * (z - y) ** 2, rtol=1e-12)


def test_float32_outputs_match_float64(link, rng):
    y, z = rng.uniform(-4, 4, 64), rng.uniform(-4, 4, 64)
    bound = SelectiveLoss(link).bind(y)
    g64, h64 = bound.gradient_hessian(z)
    g32, h32 = np.empty(64, np.float32), np.empty(64, np.float32)
    returned = bound.gradient_hessian(z, grad_out=g32, hess_out=h32)
    assert returned[0] is g32 and returned[1] is h32
    np.testing.assert_array_equal(g32, g64.astype(np.float32))
    np.testing.assert_array_equal(h32, h64.astype(np.float32))


# ------------------------------------------------------------------ listwise


@catalogue_cross(hess=["exact", "gauss-newton"], weights=["none", "sample", "group", "both"])
def test_listwise_kernel_equals_reference(link, hess, weights, rng):
    y, z, sizes = grouped(rng, link)
    n = len(y)
    sw = rng.uniform(0.1, 3.0, n) if weights in ("sample", "both") else None
    gw = rng.uniform(0.1, 3.0, len(sizes)) if weights in ("group", "both") else None
    # unweighted: plain softmax groups (the catalogue's variant); weighted: group_scale="auto" as well
    group_scale = None if weights == "none" else "auto"
    bound = ListwiseLoss(link, hess=hess, hess_min=1e-4, group_scale=group_scale).bind(y, sizes, sw, gw)
    grad, hess_values = bound.gradient_hessian(z)
    ref_loss, ref_grad, ref_hess = R.listwise(link, y, z, sizes, sw, gw, exact=hess == "exact", hess_min=1e-4,
                                              group_scale=group_scale)
    close(grad, ref_grad)
    close(hess_values, ref_hess)
    close(bound.loss(z), ref_loss)


@pytest.mark.parametrize("gain", ["linear", "exponential", np.sqrt], ids=["linear", "exponential", "callable"])
def test_listwise_gains(gain, rng):
    link = Identity() + 9 * Sigmoid(2.0, 0.5)
    y, z, sizes = grouped(rng, link)
    bound = ListwiseLoss(link, gain=gain).bind(y, sizes)
    ref_loss, ref_grad, ref_hess = R.listwise(link, y, z, sizes, gain=gain)
    close(bound.gradient_hessian(z)[0], ref_grad)
    close(bound.loss(z), ref_loss)


def test_listwise_identity_is_softmax_cross_entropy(rng):
    y, z, sizes = grouped(rng, Identity(), sizes=(4, 7, 3))
    bound = ListwiseLoss(Identity(), group_scale=None).bind(y, sizes)
    grad, hess = bound.gradient_hessian(z)
    losses = bound.loss(z)
    start = 0
    for g, size in enumerate(sizes):
        sl = slice(start, start + size)
        start += size
        gains = 2.0 ** y[sl] - 1.0
        q = gains / gains.sum()
        p = softmax(z[sl])
        cross_entropy = -(q * log_softmax(z[sl])).sum()
        entropy = -(q[q > 0] * np.log(q[q > 0])).sum()
        assert losses[g] == pytest.approx(cross_entropy - entropy, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(grad[sl], p - q, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(hess[sl], p * (1 - p), rtol=1e-12)


# the weighted listwise kernels are a variant: checked on the links of TWO_LINKS; pairwise on them all
@pytest.mark.parametrize(["kind", "link"], [
    pytest.param(kind, link, id=f"{name}-{kind}") for name, link in CATALOGUE.items()
    for kind in (("listwise", "pairwise") if name in TWO_LINKS else ("pairwise",))])
def test_grouped_weighted_is_weight_times_unweighted(kind, link, rng):
    y, z, sizes = grouped(rng, link)
    loss = ListwiseLoss(link, hess_min=0.0, group_scale=None) if kind == "listwise" else PairwiseLoss(link, hess_min=0.0)
    plain = loss.bind(y, sizes)
    g0, h0 = plain.gradient_hessian(z)
    loss0 = plain.loss(z)
    sw = rng.uniform(0.0, 3.0, len(y))
    gw = rng.uniform(0.1, 3.0, len(sizes))
    per_row_gw = np.repeat(gw, sizes)
    weighted = loss.bind(y, sizes, sample_weight=sw)
    g, h = weighted.gradient_hessian(z)
    np.testing.assert_allclose(g, sw * g0, rtol=1e-14, atol=0)
    np.testing.assert_allclose(h, sw * h0, rtol=1e-14, atol=0)
    mean_sw = np.add.reduceat(sw, np.r_[0, np.cumsum(sizes)[:-1]]) / sizes
    np.testing.assert_allclose(weighted.loss(z), mean_sw * loss0, rtol=1e-14)
    weighted = loss.bind(y, sizes, group_weight=gw)
    g, h = weighted.gradient_hessian(z)
    np.testing.assert_allclose(g, per_row_gw * g0, rtol=1e-14, atol=0)
    np.testing.assert_allclose(h, per_row_gw * h0, rtol=1e-14, atol=0)
    np.testing.assert_allclose(weighted.loss(z), gw * loss0, rtol=1e-14)


def _permute_within_groups(rng, sizes):
    perm, start = [], 0
    for size in sizes:
        perm.extend(start + rng.permutation(size))
        start += size
    return np.asarray(perm)


@pytest.mark.parametrize("kind", ["listwise", "pairwise"])
def test_permuting_a_group_permutes_its_gradients(kind, link, rng):
    y, z, sizes = grouped(rng, link)
    loss = (ListwiseLoss(link, hess="exact", group_scale=None) if kind == "listwise"
            else PairwiseLoss(link, pairs_per_item=2))
    grad, hess = loss.gradient_hessian(y, z, sizes)
    perm = _permute_within_groups(rng, sizes)
    grad_p, hess_p = loss.gradient_hessian(y[perm], z[perm], sizes)
    close(grad_p, grad[perm])
    close(hess_p, hess[perm])
    close(loss.loss(y[perm], z[perm], sizes), loss.loss(y, z, sizes))


def test_distillation_gradient_vanishes_at_the_teacher(link, rng):
    teacher = rng.uniform(-3.0, 3.0, sum(GROUP_SIZES))
    bound = ListwiseLoss(link, target="score", hess="exact", group_scale=None).bind(teacher, GROUP_SIZES)
    grad, hess = bound.gradient_hessian(teacher)
    np.testing.assert_allclose(grad, 0.0, atol=1e-13 * (1 + np.abs(link.dh(teacher)).max()))
    np.testing.assert_allclose(bound.loss(teacher), 0.0, atol=1e-12)
    z = rng.uniform(-3.0, 3.0, teacher.size)
    ref_loss, ref_grad, ref_hess = R.listwise(link, teacher, z, GROUP_SIZES, target="score", exact=True,
                                              group_scale=None)
    close(bound.gradient_hessian(z)[0], ref_grad)
    close(bound.gradient_hessian(z)[1], ref_hess)
    close(bound.loss(z), ref_loss)
    assert np.all(bound.loss(z)[np.asarray(GROUP_SIZES) > 1] > 0)


def test_degenerate_groups_give_exact_zeros(link):
    """Groups of one item, groups whose gains sum to 0 and groups without a pair: zero everywhere."""
    sizes = np.array([1, 3, 4, 1, 2])
    y = np.array([3.0, 0, 0, 0, 2, 1, 0, 2, 1, 1, 2])
    z = np.linspace(-2.0, 2.0, y.size)
    real = np.zeros(y.size, bool)
    real[4:8] = real[9:11] = True
    variants = [{"hess": "exact", "group_scale": None}]
    if every_variant(link):
        variants += [{}, {"hess": "exact"}]  # the default: Gauss-Newton, groups weighted by group_scale="auto"
    for loss in (ListwiseLoss(link, **options) for options in variants):
        grad, hess = loss.gradient_hessian(y, z, sizes)
        assert np.all(grad[~real] == 0.0) and np.all(hess[~real] == 0.0)
        assert np.all(hess[real] > 0.0)
        losses = loss.loss(y, z, sizes)
        assert np.all(losses[[0, 1, 3]] == 0.0) and losses[2] > 0
    y_pairs = y.copy()
    y_pairs[9:11] = 1.0  # the last group's relevances are tied: no pair
    real[9:11] = False
    for k in (None, 1):
        loss = PairwiseLoss(link, pairs_per_item=k)
        grad, hess = loss.gradient_hessian(y_pairs, z, sizes)
        assert np.all(grad[~real] == 0.0) and np.all(hess[~real] == 0.0)
        losses = loss.loss(y_pairs, z, sizes)
        assert np.all(losses[[0, 1, 3, 4]] == 0.0) and losses[2] > 0


# ------------------------------------------------------------------ pairwise


@catalogue_cross(pairs_per_item=[3, None, 1], hess=["exact", "gauss-newton"])
def test_pairwise_kernel_equals_reference(link, pairs_per_item, hess, rng):
    y, z, sizes = grouped(rng, link, sizes=(1, 3, 5, 9, 12, 2))
    sw = rng.uniform(0.1, 3.0, len(y))
    loss = PairwiseLoss(link, pairs_per_item=pairs_per_item, hess=hess, hess_min=1e-4)
    bound = loss.bind(y, sizes, sample_weight=sw)
    grad, hess_values = bound.gradient_hessian(z)
    ref_loss, ref_grad, ref_hess = R.pairwise(link, y, z, sizes, sample_weight=sw, pairs_per_item=pairs_per_item,
                                              exact=hess == "exact", hess_min=1e-4)
    close(grad, ref_grad)
    close(hess_values, ref_hess)
    close(bound.loss(z), ref_loss)


@pytest.mark.parametrize("pairs_per_item", [1, 3])
def test_pairwise_selection_with_tied_scores(pairs_per_item, rng):
    """With ties in phi the chosen partners may differ, but the loss of the k hardest does not."""
    link = Identity()
    y = rng.integers(0, 4, 40).astype(np.float64)
    z = rng.integers(-2, 3, 40).astype(np.float64)
    sizes = [10, 14, 16]
    loss = PairwiseLoss(link, pairs_per_item=pairs_per_item)
    ref_loss, _, _ = R.pairwise(link, y, z, sizes, pairs_per_item=pairs_per_item)
    close(loss.loss(y, z, sizes), ref_loss)


def test_pairwise_all_pairs_count(rng):
    """pairs_per_item=None: the loss at z = 0 is log(2) times the number of ordered pairs r_i > r_j."""
    y = rng.integers(0, 4, 30).astype(np.float64)
    n_pairs = (y[:, None] > y[None, :]).sum()
    assert PairwiseLoss(pairs_per_item=None).loss(y, np.zeros(30), [30])[0] == pytest.approx(n_pairs * np.log(2))
    bounded = PairwiseLoss(pairs_per_item=2).loss(y, np.zeros(30), [30])[0]
    n_bounded = sum(min(2, (y < r).sum()) for r in y)
    assert bounded == pytest.approx(n_bounded * np.log(2))


# ------------------------------------------------------------------ multi-class


@catalogue_cross(hess=["exact", "gauss-newton"], labels=["indices", "probabilities"], weighted=[False, True])
def test_multiclass_kernel_equals_reference(link, hess, labels, weighted, rng):
    n, k = 30, 4
    z = rng.uniform(-3.0, 3.0, (n, k))
    if labels == "indices":
        y = rng.integers(0, k, n)
    else:
        y = rng.dirichlet(np.ones(k), n)
        y[0] = [0.0, 1.0, 0.0, 0.0]
    sw = rng.uniform(0.1, 3.0, n) if weighted else None
    bound = MulticlassLoss(link, hess=hess, hess_min=1e-4).bind(y, k, sw)
    grad, hess_values = bound.gradient_hessian(z)
    assert grad.shape == hess_values.shape == (n, k)
    ref_loss, ref_grad, ref_hess = R.multiclass(link, y, z, sw, exact=hess == "exact", hess_min=1e-4)
    close(grad, ref_grad)
    close(hess_values, ref_hess)
    close(bound.loss(z), ref_loss)


def test_multiclass_one_hot_rows_equal_indices(link, rng):
    y = rng.integers(0, 3, 20)
    z = rng.uniform(-3, 3, (20, 3))
    loss = MulticlassLoss(link, hess="exact")
    by_index = loss.gradient_hessian(y, z)
    by_rows = loss.gradient_hessian(np.eye(3)[y], z)
    for a, b in zip(by_index, by_rows):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loss.loss(y, z), loss.loss(np.eye(3)[y], z))


def test_multiclass_identity_is_softmax_cross_entropy(rng):
    y = rng.integers(0, 4, 50)
    z = rng.uniform(-3, 3, (50, 4))
    p = softmax(z, axis=1)
    np.testing.assert_allclose(MulticlassLoss().loss(y, z), -log_softmax(z, axis=1)[np.arange(50), y], rtol=1e-12)
    assert MulticlassLoss().loss(y, z).mean() == pytest.approx(log_loss(y, p, labels=range(4)), rel=1e-10)


@pytest.mark.parametrize("link", [CATALOGUE[name] for name in TWO_LINKS], ids=TWO_LINKS)  # a kernel variant
def test_multiclass_weighted_is_weight_times_unweighted(link, rng):
    y, z, w = rng.integers(0, 3, 20), rng.uniform(-3, 3, (20, 3)), rng.uniform(0, 3, 20)
    plain, weighted = MulticlassLoss(link).bind(y, 3), MulticlassLoss(link).bind(y, 3, w)
    for a, b in zip(weighted.gradient_hessian(z), plain.gradient_hessian(z)):
        np.testing.assert_allclose(a, w[:, None] * b, rtol=1e-15)
    np.testing.assert_allclose(weighted.loss(z), w * plain.loss(z), rtol=1e-15)


@pytest.mark.parametrize("link", [Identity(), Sinh(-1.0, 3.0), Exp(0.5, 2.0), Exp(0.0, -1.5),
                                  Identity() + 9 * Sigmoid(2.0, 0.5), Sigmoid(2.0, 0.5), 2 * Sigmoid()],
                         ids=repr)
def test_multiclass_init_score_reproduces_class_frequencies(link, rng):
    """Bounded transforms too, as long as their range is wider than the log-frequency spread."""
    y = rng.choice(3, 200, p=[0.2, 0.5, 0.3])
    w = rng.uniform(0.5, 2.0, 200)
    c = MulticlassLoss(link, hess="exact").init_score(y, 3, w)
    freq = np.bincount(y, weights=w, minlength=3) / w.sum()
    np.testing.assert_allclose(softmax(link.h(c)), freq, rtol=1e-9)


# ------------------------------------------------------------------ extreme inputs

EXTREME_SCORES = np.array([-1e6, -1e3, -31.0, -1.0, 0.0, 1e-9, 1.0, 29.9, 1e3, 1e6])
ALL_LINKS = {**CATALOGUE, **EXTREME}


def _finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


@pytest.mark.parametrize("link", list(ALL_LINKS.values()), ids=list(ALL_LINKS))
def test_extreme_scores_and_parameters_stay_finite(link):
    z = np.repeat(EXTREME_SCORES, EXTREME_SCORES.size)
    y = np.tile(EXTREME_SCORES, EXTREME_SCORES.size)
    bound = SelectiveLoss(link).bind(y)
    grad, hess_values = bound.gradient_hessian(z)
    loss = bound.loss(z)
    assert _finite(loss, grad, hess_values) and np.all(loss >= 0) and np.all(hess_values >= 1e-6)
    # the exact hessian adds phi''(p - q) to the Gauss-Newton one: finite, it has both terms finite
    for hess in ("exact",):
        sizes = np.full(EXTREME_SCORES.size, EXTREME_SCORES.size)
        relevance = np.tile(np.arange(EXTREME_SCORES.size) % 4, EXTREME_SCORES.size).astype(float)
        for loss_obj, labels in ((ListwiseLoss(link, hess=hess, group_scale=None), relevance),
                                 (ListwiseLoss(link, target="score", hess=hess, group_scale=None), y),
                                 (PairwiseLoss(link, hess=hess), relevance),
                                 (PairwiseLoss(link, pairs_per_item=None, hess=hess), relevance)):
            bound = loss_obj.bind(labels, sizes)
            grad, hess_values = bound.gradient_hessian(z)
            assert _finite(bound.loss(z), grad, hess_values), loss_obj
            assert np.all(hess_values >= 0)
        bound = MulticlassLoss(link, hess=hess).bind(np.arange(10) % 3, 10)
        grad, hess_values = bound.gradient_hessian(z.reshape(10, 10))
        assert _finite(bound.loss(z.reshape(10, 10)), grad, hess_values)
    lo, hi = link.range
    t = link.h(y)
    inside = (t > lo) & (t < hi)
    bound = SelectiveLoss(link, target="link").bind(t[inside])
    grad, hess_values = bound.gradient_hessian(z[inside])
    assert _finite(bound.loss(z[inside]), grad, hess_values)


def test_pairwise_far_apart_pair_keeps_its_gradient():
    """A badly ordered pair with a huge margin: sigma(m) sigma(-m) must not round to 0 and the pair must
    still count (it once looked unpaired and got a zero gradient)."""
    loss = PairwiseLoss(Identity())
    grad, hess = loss.gradient_hessian(np.array([0.0, 1.0]), np.array([0.0, -300.0]), [2])
    np.testing.assert_allclose(grad, [1.0, -1.0])
    assert (hess > 0).all()
    np.testing.assert_allclose(hess, 1e-6)  # Gauss-Newton curvature e^-300 is below hess_min
