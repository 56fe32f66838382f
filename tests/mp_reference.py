"""High-precision references (mpmath) for every link and loss kind.

Each link is written here again from its mathematical definition, in mpmath, never from selboost's
code. Values are computed in the direct form H(z) - H(y) - (z - y) h(y), which cancels badly, at a
working precision raised until the digits the cancellation eats are paid for: the result is exact to
far more than float64's 16 digits, whatever the inputs.
"""

from __future__ import annotations

import mpmath as mp

from selboost.links import LINEAR_BEYOND, Exp, Identity, PiecewiseLinear, Sigmoid, Sinh

#: digits kept beyond those a cancellation loses
_GUARD_DIGITS = 40
_MAX_DIGITS = 5000


def _unit(term):
    """(h_u, H_u, dh_u) of a basic term's unit function of u = (z - c) / s, in mpmath, and (c, s)."""
    edge = mp.mpf(LINEAR_BEYOND)
    if isinstance(term, Sigmoid):
        def h(u):
            return 4 * mp.exp(-mp.log1p(mp.exp(-u)))  # 4 sigma(u)

        def big_h(u):
            return 4 * (mp.log1p(mp.exp(u)) if u < 0 else u + mp.log1p(mp.exp(-u)))

        def dh(u):
            sig = 1 / (1 + mp.exp(-u))
            return 4 * sig * (1 - sig) if u < 0 else 4 * sig * mp.exp(-u) / (1 + mp.exp(-u))

        return h, big_h, dh
    if isinstance(term, Sinh):
        def h(u):
            if abs(u) <= edge:
                return mp.sinh(u)
            return mp.sign(u) * (mp.sinh(edge) + mp.cosh(edge) * (abs(u) - edge))

        def big_h(u):
            if abs(u) <= edge:
                return mp.cosh(u)
            t = abs(u) - edge
            return mp.cosh(edge) + mp.sinh(edge) * t + mp.cosh(edge) * t * t / 2

        def dh(u):
            return mp.cosh(min(abs(u), edge))

        return h, big_h, dh
    if isinstance(term, Exp):
        def h(u):
            if u <= edge:
                return mp.expm1(u)
            return mp.exp(edge) * (1 + (u - edge)) - 1

        def big_h(u):
            if u <= edge:
                return mp.exp(u) - u
            t = u - edge
            return mp.exp(edge) * (1 + t + t * t / 2) - u

        def dh(u):
            return mp.exp(min(u, edge))

        return h, big_h, dh
    raise TypeError(term)


def _term_functions(term):
    """(h, H, h') of a basic term as functions of z (mpf)."""
    if isinstance(term, Identity):
        return (lambda z: z), (lambda z: z * z / 2), (lambda z: mp.mpf(1))
    if isinstance(term, PiecewiseLinear):
        knots = [mp.mpf(k) for k in term.knots]
        slopes = [mp.mpf(m) for m in term.slopes]

        def h(z):
            # integral of the slope from 0 to z
            return _piecewise_integral(knots, slopes, mp.mpf(0), z, first=True)

        def big_h(z):
            return _piecewise_integral(knots, slopes, mp.mpf(0), z, first=False)

        def dh(z):
            j = sum(1 for k in knots if z >= k)
            return slopes[j]

        return h, big_h, dh
    c, s = mp.mpf(term.center), mp.mpf(term.scale)
    h_u, big_h_u, dh_u = _unit(term)
    return (lambda z: s * h_u((z - c) / s)), (lambda z: s * s * big_h_u((z - c) / s)), (lambda z: dh_u((z - c) / s))


def _piecewise_integral(knots, slopes, a, b, first):
    """h(b) (first) or H(b) (not first) with h(a) = H(a) = 0 at a = 0: exact piecewise integration."""
    points = sorted({a, b, *[k for k in knots if min(a, b) < k < max(a, b)]})
    if b < a:
        points = points[::-1]
    h = mp.mpf(0)
    big_h = mp.mpf(0)
    for p, q in zip(points, points[1:]):
        mid = (p + q) / 2
        slope = slopes[sum(1 for k in knots if mid >= k)]
        d = q - p
        big_h += h * d + slope * d * d / 2
        h += slope * d
    return h if first else big_h


def link_functions(link):
    """(h, H, h') of a whole link (weighted sums included), as functions of an mpf."""
    terms = [(mp.mpf(w), _term_functions(term)) for w, term in link._terms()]

    def combine(index):
        return lambda z: mp.fsum(w * f[index](z) for w, f in terms)

    return combine(0), combine(1), combine(2)


def _adaptive(compute, terms_of):
    """``compute()`` at a precision raised until the digits that the cancellation among ``terms_of()``
    loses are paid for, with ``_GUARD_DIGITS`` to spare."""
    digits = 60
    while True:
        with mp.workdps(digits):
            value = compute()
            scale = max(abs(t) for t in terms_of())
        if scale == 0:
            return mp.mpf(0)
        lost = digits if value == 0 else max(0, int(mp.ceil(mp.log10(scale / abs(value)))))
        if lost + _GUARD_DIGITS <= digits or digits >= _MAX_DIGITS:
            return value
        digits = min(_MAX_DIGITS, max(2 * digits, lost + 2 * _GUARD_DIGITS))


def divergence(link, z, y):
    """H(z) - H(y) - (z - y) h(y) of the float pair (z, y), exact to ~40 digits (an mpf)."""
    h, big_h, _ = link_functions(link)
    zm, ym = mp.mpf(float(z)), mp.mpf(float(y))
    if zm == ym:
        return mp.mpf(0)

    def compute():
        return big_h(zm) - big_h(ym) - (zm - ym) * h(ym)

    def terms():
        return [big_h(zm), big_h(ym), (zm - ym) * h(ym)]

    return _adaptive(compute, terms)


def gradient(link, z, y):
    """h(z) - h(y) (an mpf)."""
    h, _, _ = link_functions(link)
    with mp.workdps(60):
        return h(mp.mpf(float(z))) - h(mp.mpf(float(y)))


def slope(link, z):
    """h'(z) (an mpf)."""
    _, _, dh = link_functions(link)
    with mp.workdps(60):
        return dh(mp.mpf(float(z)))


def link_value(link, z):
    """h(z) (an mpf)."""
    h, _, _ = link_functions(link)
    with mp.workdps(60):
        return h(mp.mpf(float(z)))


def term_magnitude(link, z):
    """sum_k w_k (|h_k(z)| + |z - c_k| h_k'(z)): the size of the float64 terms that h(z) is the sum of,
    and of the change that rounding their arguments (z - c_k) / s_k to float64 makes."""
    with mp.workdps(60):
        zm = mp.mpf(float(z))
        total = mp.mpf(0)
        for w, term in link._terms():
            h, _, dh = _term_functions(term)
            center = mp.mpf(getattr(term, "center", 0.0))
            total += mp.mpf(w) * (abs(h(zm)) + abs(zm - center) * dh(zm))
        return total


def inverse(link, value):
    """h^{-1}(value) by bisection in mpmath (h is increasing)."""
    h, _, _ = link_functions(link)
    with mp.workdps(60):
        target = mp.mpf(value)
        lo, hi = mp.mpf(-1), mp.mpf(1)
        while h(lo) > target:
            lo *= 2
        while h(hi) < target:
            hi *= 2
        for _ in range(400):
            mid = (lo + hi) / 2
            if h(mid) < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def softmax(values):
    """softmax of a list of mpf."""
    top = max(values)
    exps = [mp.exp(v - top) for v in values]
    total = mp.fsum(exps)
    return [e / total for e in exps]


def listwise(transform, z, q):
    """(KL(q || softmax(phi(z))), grad, gauss-newton hess) of one group, with target q (floats)."""
    h, _, dh = link_functions(transform)
    with mp.workdps(80):
        phi = [h(mp.mpf(float(v))) for v in z]
        p = softmax(phi)
        qs = [mp.mpf(float(v)) for v in q]
        loss = mp.fsum(qi * (mp.log(qi) - mp.log(pi)) for qi, pi in zip(qs, p) if qi > 0)
        slopes = [dh(mp.mpf(float(v))) for v in z]
        grad = [d * (pi - qi) for d, pi, qi in zip(slopes, p, qs)]
        hess = [d * d * pi * (1 - pi) for d, pi in zip(slopes, p)]
        return loss, grad, hess


def pairwise(transform, z, pairs):
    """Sum over (i, j) in ``pairs`` of log(1 + exp(-(phi_i - phi_j))), and its gradient in z."""
    h, _, dh = link_functions(transform)
    with mp.workdps(80):
        phi = [h(mp.mpf(float(v))) for v in z]
        slopes = [dh(mp.mpf(float(v))) for v in z]
        loss = mp.mpf(0)
        grad = [mp.mpf(0)] * len(z)
        for i, j in pairs:
            m = phi[i] - phi[j]
            loss += mp.log1p(mp.exp(-m))
            s = 1 / (1 + mp.exp(m))
            grad[i] -= s * slopes[i]
            grad[j] += s * slopes[j]
        return loss, grad
