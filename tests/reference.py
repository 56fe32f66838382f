"""Slow, obviously-correct NumPy references for every loss kernel.

Everything here is built only from a link's NumPy methods (``h``, ``dh``, ``d2h``, ``H``, ``inverse``)
and plain Python loops, never from ``selboost._kernels`` or ``selboost._elementwise``, so a kernel and its
reference cannot share a mistake. Weights follow the losses' documented conventions: a row weight
multiplies its row's gradient and hessian, a group's loss is multiplied by its group weight and by the
mean row weight of the group.
"""

from __future__ import annotations

import decimal

import numpy as np

# ------------------------------------------------------------------ scalar matching loss


def scalar_divergence(link, z, y):
    """H(z) - H(y) - (z - y) h(y), element by element, in the direct (cancelling) form."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return link.H(z) - link.H(y) - (z - y) * link.h(y)


def scalar(link, z, y, weight=None, target="score", hess_min=1e-6):
    """(loss, grad, hess) per sample of ``SelectiveLoss(link, target, hess_min)``.

    target="score": loss = H(z) - H(y) - (z - y) h(y), grad = h(z) - h(y);
    target="link":  labels t in the link's range, y = h^{-1}(t), grad = h(z) - t.
    hess = max(h'(z), hess_min). Weights multiply all three.
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    if target == "score":
        y_score = labels
        target_h = link.h(labels)
    else:
        target_h = labels
        y_score = link.inverse(labels)
    loss = scalar_divergence(link, z, y_score)
    grad = link.h(z) - target_h
    hess = np.maximum(link.dh(z), hess_min)
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        loss, grad, hess = loss * weight, grad * weight, hess * weight
    return loss, grad, hess


def scalar_loss_high_precision(link, z, y, digits=60):
    """H(z) - H(y) - (z - y) h(y) for one pair (z, y), evaluated with ``decimal`` at ``digits`` digits.

    Supports Identity, Sigmoid, Sinh, Exp and weighted sums of them, inside the exponential parts
    (|u| <= 30): the reference for "no catastrophic cancellation".
    """
    from selboost.links import Exp, Identity, Sigmoid, Sinh, WeightedSum

    ctx = decimal.Context(prec=digits)
    D = ctx.create_decimal_from_float
    zd, yd = D(float(z)), D(float(y))

    def one(term):
        if isinstance(term, Identity):
            return (zd - yd) * (zd - yd) / 2
        c, s = D(term.center), D(term.scale)
        uz, uy = ctx.divide(zd - c, s), ctx.divide(yd - c, s)
        if isinstance(term, Sigmoid):
            def softplus(u):
                return ctx.ln(1 + ctx.exp(u))

            def sig(u):
                return 1 / (1 + ctx.exp(-u))

            big_h = lambda u: 4 * s * s * softplus(u)  # noqa: E731
            h_y = 4 * s * sig(uy)
        elif isinstance(term, Sinh):
            big_h = lambda u: s * s * (ctx.exp(u) + ctx.exp(-u)) / 2  # noqa: E731
            h_y = s * (ctx.exp(uy) - ctx.exp(-uy)) / 2
        elif isinstance(term, Exp):
            big_h = lambda u: s * s * ctx.exp(u) - s * (c + s * u)  # noqa: E731
            h_y = s * (ctx.exp(uy) - 1)
        else:
            raise TypeError(f"no high-precision reference for {term!r}")
        return big_h(uz) - big_h(uy) - (zd - yd) * h_y

    with decimal.localcontext(ctx):
        if isinstance(link, WeightedSum):
            total = sum(D(w) * one(term) for w, term in link.terms)
        else:
            total = one(link)
    return float(total)


def init_score(link, y, weight=None, target="score"):
    """h^{-1}(weighted mean of h(y)) (or of t for target="link")."""
    values = np.asarray(y, dtype=np.float64)
    if target == "score":
        values = link.h(values)
    return float(link.inverse(np.array([np.average(values, weights=weight)]))[0])


# ------------------------------------------------------------------ composite softmax


def gains(relevance, gain="exponential"):
    r = np.asarray(relevance, dtype=np.float64)
    if gain == "exponential":
        return 2.0**r - 1.0
    if gain == "linear":
        return r.copy()
    return np.asarray(gain(r), dtype=np.float64)


def _sizes_to_slices(group):
    start = 0
    for size in group:
        yield slice(start, start + int(size))
        start += int(size)


def _row_weights(n, group, sample_weight, group_weight):
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).copy()
    if group_weight is not None:
        for g, sl in enumerate(_sizes_to_slices(group)):
            w[sl] *= group_weight[g]
    return w


class _PLAIN:
    """phi(z) = z: the plain softmax, whose start hessians "auto" measures."""

    h = staticmethod(lambda z: np.asarray(z, dtype=np.float64))
    dh = staticmethod(lambda z: np.ones_like(z, dtype=np.float64))
    d2h = staticmethod(lambda z: np.zeros_like(z, dtype=np.float64))


def _softmax_group(transform, z_group, q_group, exact, hess_min):
    """(loss, grad, hess) of one group of the composite softmax, or zeros when degenerate."""
    n = len(z_group)
    if n < 2 or q_group.sum() <= 0.0:
        return 0.0, np.zeros(n), np.zeros(n)
    phi = transform.h(z_group)
    dphi = transform.dh(z_group)
    d2phi = transform.d2h(z_group)
    top = phi.max()
    e = np.exp(phi - top)
    p = e / e.sum()
    log_p = phi - top - np.log(e.sum())
    loss = 0.0
    for i in range(n):
        if q_group[i] > 0:
            loss += q_group[i] * (np.log(q_group[i]) - log_p[i])
    grad = dphi * (p - q_group)
    hess = dphi**2 * p * (1.0 - p)
    if exact:
        hess = hess + d2phi * (p - q_group)
    return max(loss, 0.0), grad, np.maximum(hess, hess_min)


def listwise_targets(transform, y, group, target="relevance", gain="exponential"):
    """q per row: normalised gains per group, or softmax(phi(teacher scores)) per group."""
    y = np.asarray(y, dtype=np.float64)
    q = np.zeros_like(y)
    for sl in _sizes_to_slices(group):
        if target == "relevance":
            g = gains(y[sl], gain)
            if g.sum() > 0:
                q[sl] = g / g.sum()
        else:
            phi = transform.h(y[sl])
            e = np.exp(phi - phi.max())
            q[sl] = e / e.sum()
    return q


def listwise(transform, y, z, group, sample_weight=None, group_weight=None, target="relevance",
             gain="exponential", exact=False, hess_min=1e-6, group_scale="auto"):
    """(per-group loss, grad, hess) of ``ListwiseLoss`` with a Python loop over groups; ``group_scale``
    "auto" weighs every group by max(32 / H, 1/32), H the hessians of the plain softmax (phi(z) = z,
    unweighted) at z = 0 summed over all rows; a number by that number, None by 1."""
    z = np.asarray(z, dtype=np.float64)
    q = listwise_targets(transform, y, group, target, gain)
    w = _row_weights(len(z), group, sample_weight, group_weight)
    if group_scale == "auto":
        total = sum(_softmax_group(_PLAIN, np.zeros(sl.stop - sl.start), q[sl], False, 0.0)[2].sum()
                    for sl in _sizes_to_slices(group))
        if total > 0:
            w *= max(32.0 / total, 1.0 / 32.0)
    elif group_scale is not None:
        w *= group_scale
    losses, grad, hess = [], np.zeros_like(z), np.zeros_like(z)
    for sl in _sizes_to_slices(group):
        loss, g, h = _softmax_group(transform, z[sl], q[sl], exact, hess_min)
        losses.append(loss * w[sl].mean())
        grad[sl] = g * w[sl]
        hess[sl] = h * w[sl]
    return np.array(losses), grad, hess


# ------------------------------------------------------------------ pairwise


def select_pairs(phi, relevance, pairs_per_item):
    """The pairs (i, j), relevance[i] > relevance[j], as documented in ``PairwiseLoss``.

    None: every such pair. k: each item i is paired with the k items of lower relevance that have the
    highest transformed score phi, ties in phi broken by the lower index (a stable sort).
    """
    n = len(phi)
    pairs = []
    for i in range(n):
        lower = [j for j in range(n) if relevance[j] < relevance[i]]
        if pairs_per_item is not None:
            lower = sorted(lower, key=lambda j: (-phi[j], j))[:pairs_per_item]
        pairs.extend((i, j) for j in lower)
    return pairs


def _softplus(x):
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x)) if x >= 0 else np.exp(x) / (1.0 + np.exp(x))


def pairwise(transform, y, z, group, sample_weight=None, group_weight=None, pairs_per_item=16,
             exact=False, hess_min=1e-6):
    """(per-group loss, grad, hess) of ``PairwiseLoss`` over explicit pairs with Python loops.

    loss = sum_pairs log(1 + exp(-(phi_i - phi_j))); d loss / d phi_i = -sigma(-m) for the winner,
    +sigma(-m) for the loser; Gauss-Newton d2 / d phi_i^2 = sum sigma(m) sigma(-m); chain rule through phi.
    """
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    w = _row_weights(len(z), group, sample_weight, group_weight)
    losses, grad, hess = [], np.zeros_like(z), np.zeros_like(z)
    for sl in _sizes_to_slices(group):
        zg, rg = z[sl], y[sl]
        phi, dphi, d2phi = transform.h(zg), transform.dh(zg), transform.d2h(zg)
        g_phi, h_phi, paired = np.zeros(len(zg)), np.zeros(len(zg)), np.zeros(len(zg), dtype=bool)
        loss = 0.0
        for i, j in select_pairs(phi, rg, pairs_per_item):
            margin = phi[i] - phi[j]
            loss += _softplus(-margin)
            s = _sigmoid(-margin)
            g_phi[i] -= s
            g_phi[j] += s
            curvature = _sigmoid(margin) * _sigmoid(-margin)
            h_phi[i] += curvature
            h_phi[j] += curvature
            paired[i] = paired[j] = True
        gg = dphi * g_phi
        hh = dphi**2 * h_phi
        if exact:
            hh = hh + d2phi * g_phi
        hh = np.maximum(hh, hess_min)
        unused = ~paired
        gg[unused] = 0.0
        hh[unused] = 0.0
        losses.append(loss * w[sl].mean())
        grad[sl] = gg * w[sl]
        hess[sl] = hh * w[sl]
    return np.array(losses), grad, hess


# ------------------------------------------------------------------ multi-class


def multiclass(transform, y, z, sample_weight=None, exact=False, hess_min=1e-6):
    """(per-sample loss, grad (n, k), hess (n, k)) of ``MulticlassLoss``; y class indices or probability rows."""
    z = np.asarray(z, dtype=np.float64)
    n, k = z.shape
    y = np.asarray(y)
    if y.ndim == 1:
        q = np.zeros((n, k))
        q[np.arange(n), y.astype(int)] = 1.0
    else:
        q = np.asarray(y, dtype=np.float64)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    losses, grad, hess = np.zeros(n), np.zeros((n, k)), np.zeros((n, k))
    for r in range(n):
        loss, g, h = _softmax_group(transform, z[r], q[r], exact, hess_min)
        losses[r] = loss * w[r]
        grad[r] = g * w[r]
        hess[r] = h * w[r]
    return losses, grad, hess


# ------------------------------------------------------------------ NDCG


def ndcg_query(relevance, score, k=None, gain="exponential", ties="order"):
    """NDCG@k of one query by loops (None when no document is relevant).

    ties="order": tied scores keep their input order; "pessimistic": tied items least relevant first;
    "average": every position of a run of tied scores gets the mean gain of the run (McSherry & Najork,
    2008: the mean DCG over every order of the tied items)."""
    g = gains(relevance, gain)
    s = np.asarray(score, dtype=np.float64)
    n = len(g)
    top = n if k is None else min(k, n)
    discount = [1.0 / np.log2(i + 2.0) if i < top else 0.0 for i in range(n)]
    ideal = sum(d * x for d, x in zip(discount, sorted(g, reverse=True)))
    if ideal <= 0.0:
        return None
    if ties == "pessimistic":
        order = sorted(range(n), key=lambda i: (-s[i], g[i]))
    else:
        order = sorted(range(n), key=lambda i: -s[i])  # Python's sort is stable
    placed = [g[i] for i in order]
    if ties == "average":
        start = 0
        while start < n:
            stop = start
            while stop < n and s[order[stop]] == s[order[start]]:
                stop += 1
            mean = sum(placed[start:stop]) / (stop - start)
            placed[start:stop] = [mean] * (stop - start)
            start = stop
    return sum(d * x for d, x in zip(discount, placed)) / ideal
