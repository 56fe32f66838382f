"""Per-element link mathematics shared by the CPU and the CUDA kernels.

A link is packed into two float64 arrays so that one compiled kernel serves every link:

* ``components``, shape (m, 6): one row per term of the weighted sum,
  ``[kind, weight, center, scale, offset, count]``;
* ``table``: the piecewise-linear data, ``knots`` (count), ``slopes`` (count + 1),
  ``h`` at the segment anchors (count + 1) and ``H`` at the anchors (count + 1), starting at ``offset``.

The functions here use ``math`` calls only and are registered with ``numba.extending.register_jitable``:
the same source is compiled into the CPU kernels (``selboost._kernels``) and into the CUDA kernels
(``selboost.cuda``), and stays callable from plain Python, so the two cannot drift apart. The functions on
the gradient path are inlined at Numba IR level: the kernels then see the link's ``kind`` test inside
their loop and LLVM hoists it out (measured: 4x faster than a call per element).

With ``u = (z - center) / scale`` the unit functions are

=========  =====================  ================  ===================
kind       h(z)                   h'(z)             H(z)
=========  =====================  ================  ===================
identity   z                      1                 z**2 / 2
sigmoid    4 s sigma(u)           4 sigma (1-sigma)  4 s**2 softplus(u)
sinh       s sinh(u)              cosh(u)           s**2 cosh(u)
exp        s (e**u - 1)           e**u              s**2 e**u - s z
=========  =====================  ================  ===================

``sinh`` and ``exp`` continue linearly beyond ``|u| = LINEAR_BEYOND`` (``u = LINEAR_BEYOND`` for exp),
which keeps every value finite for any finite score and keeps the loss convex.
"""

import math

from numba.extending import register_jitable

KIND_IDENTITY = 0
KIND_SIGMOID = 1
KIND_SINH = 2
KIND_EXP = 3
KIND_PIECEWISE = 4

#: |u| beyond which sinh and exp links continue linearly (cosh(30) ~ 5.3e12).
LINEAR_BEYOND = 30.0

#: below this |z - y| / scale the divergence uses its Taylor expansion (no cancellation).
_TAYLOR_BELOW = 1e-4


@register_jitable(inline="always")
def sigmoid(u):
    """Logistic function with a single exp and no overflow."""
    if u >= 0.0:
        e = math.exp(-u)
        return 1.0 / (1.0 + e)
    e = math.exp(u)
    return e / (1.0 + e)


@register_jitable
def pair_curvature(margin):
    """sigma(m) sigma(-m) from e^-|m|: the form s (1 - s) rounds to 0 once |m| > 37."""
    e = math.exp(-abs(margin))
    return e / ((1.0 + e) * (1.0 + e))


@register_jitable
def softplus(u):
    """log(1 + e**u) without overflow or loss of precision for large |u|."""
    if u > 0.0:
        return u + math.log1p(math.exp(-u))
    return math.log1p(math.exp(u))


@register_jitable
def expm1_minus_x(d):
    """e**d - 1 - d, accurate for small |d|."""
    if abs(d) < 1e-2:
        return d * d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d / 720.0))))
    return math.expm1(d) - d


@register_jitable
def sinh_minus_x(d):
    """sinh(d) - d, accurate for small |d|."""
    if abs(d) < 1e-2:
        d2 = d * d
        return d * d2 * (1.0 / 6.0 + d2 * (1.0 / 120.0 + d2 / 5040.0))
    return math.sinh(d) - d


@register_jitable(inline="always")
def _piecewise_segment(table, offset, count, z):
    """Index j of the segment holding z: 0 left of the first knot, count right of the last."""
    j = 0
    while j < count and z >= table[offset + j]:
        j += 1
    return j


@register_jitable
def _piecewise_segment_call(table, offset, count, z):
    """The same search as a plain call. Numba's IR inliner mis-scopes a loop inlined twice into one
    function (the piecewise divergence came out wrong), so a function needing the search more than
    once calls this; the hot path inlines ``_piecewise_segment``, because even an untaken call in a
    kernel's loop made the serial kernels 5x slower."""
    return _piecewise_segment(table, offset, count, z)


@register_jitable(inline="always")
def _piecewise_anchor(table, offset, count, j):
    """Left end of segment j, where h and H are tabulated (the first knot for segment 0)."""
    if j == 0:
        return table[offset]
    return table[offset + j - 1]


@register_jitable(inline="always")
def component_values(kind, center, scale, offset, count, table, z):
    """(h, h', h'') of one unweighted term at z."""
    if kind == KIND_IDENTITY:
        return z, 1.0, 0.0
    if kind == KIND_SIGMOID:
        u = (z - center) / scale
        p = sigmoid(u)
        q = p * (1.0 - p)
        return 4.0 * scale * p, 4.0 * q, 4.0 * q * (1.0 - 2.0 * p) / scale
    if kind == KIND_SINH:
        u = (z - center) / scale
        if u > LINEAR_BEYOND:
            c = math.cosh(LINEAR_BEYOND)
            return scale * (math.sinh(LINEAR_BEYOND) + c * (u - LINEAR_BEYOND)), c, 0.0
        if u < -LINEAR_BEYOND:
            c = math.cosh(LINEAR_BEYOND)
            return scale * (-math.sinh(LINEAR_BEYOND) + c * (u + LINEAR_BEYOND)), c, 0.0
        e = math.exp(u)
        inv = 1.0 / e
        return scale * 0.5 * (e - inv), 0.5 * (e + inv), 0.5 * (e - inv) / scale
    if kind == KIND_EXP:
        u = (z - center) / scale
        if u > LINEAR_BEYOND:
            e = math.exp(LINEAR_BEYOND)
            return scale * (e * (1.0 + u - LINEAR_BEYOND) - 1.0), e, 0.0
        e = math.exp(u)
        return scale * (e - 1.0), e, e / scale
    # piecewise linear
    j = _piecewise_segment(table, offset, count, z)
    a = _piecewise_anchor(table, offset, count, j)
    slope = table[offset + count + j]
    h_a = table[offset + 2 * count + 1 + j]
    return h_a + slope * (z - a), slope, 0.0


@register_jitable
def component_primitive(kind, center, scale, offset, count, table, z):
    """H(z) of one unweighted term (the constant is fixed by the formulas in the module docstring)."""
    if kind == KIND_IDENTITY:
        return 0.5 * z * z
    if kind == KIND_SIGMOID:
        return 4.0 * scale * scale * softplus((z - center) / scale)
    if kind == KIND_SINH:
        u = (z - center) / scale
        a = abs(u)
        if a > LINEAR_BEYOND:
            d = a - LINEAR_BEYOND
            c = math.cosh(LINEAR_BEYOND) * (1.0 + 0.5 * d * d) + math.sinh(LINEAR_BEYOND) * d
            return scale * scale * c
        return scale * scale * math.cosh(u)
    if kind == KIND_EXP:
        u = (z - center) / scale
        if u > LINEAR_BEYOND:
            d = u - LINEAR_BEYOND
            return scale * scale * math.exp(LINEAR_BEYOND) * (1.0 + d + 0.5 * d * d) - scale * z
        return scale * scale * math.exp(u) - scale * z
    j = _piecewise_segment(table, offset, count, z)
    a = _piecewise_anchor(table, offset, count, j)
    slope = table[offset + count + j]
    h_a = table[offset + 2 * count + 1 + j]
    big_h_a = table[offset + 3 * count + 2 + j]
    d = z - a
    return big_h_a + h_a * d + 0.5 * slope * d * d


@register_jitable
def component_divergence(kind, center, scale, offset, count, table, z, y):
    """H(z) - H(y) - (z - y) h(y) of one unweighted term, without cancellation where z is near y."""
    if kind == KIND_IDENTITY:
        d = z - y
        return 0.5 * d * d
    if kind == KIND_PIECEWISE:
        jz = _piecewise_segment_call(table, offset, count, z)
        jy = _piecewise_segment_call(table, offset, count, y)
        if jz == jy:
            d = z - y
            return 0.5 * table[offset + count + jz] * d * d
    else:
        uz = (z - center) / scale
        uy = (y - center) / scale
        d = (z - y) / scale  # not uz - uy: z - y is exact for nearby z, y, the rounded u's are not
        s2 = scale * scale
        if kind == KIND_SIGMOID:
            if abs(d) < _TAYLOR_BELOW:
                p = sigmoid(uy)
                q = p * (1.0 - p)
                # 4 s^2 [sigma'(uy) d^2/2 + sigma''(uy) d^3/6 + sigma'''(uy) d^4/24]
                return 4.0 * s2 * q * d * d * (
                    0.5 + d * (1.0 - 2.0 * p) / 6.0 + d * d * (1.0 - 6.0 * q) / 24.0
                )
            p = sigmoid(uy)
            if abs(d) <= LINEAR_BEYOND:
                # KL = softplus(uz) - softplus(uy) - p d = log1p(p expm1(d)) - p d, mirrored so that the
                # weight is <= 1/2: relative error ~ eps / |d| instead of eps / d^2
                if p <= 0.5:
                    kl = math.log1p(p * math.expm1(d)) - p * d
                else:
                    kl = math.log1p((1.0 - p) * math.expm1(-d)) + (1.0 - p) * d
                return 4.0 * s2 * max(kl, 0.0)
            # the Bernoulli Kullback-Leibler form: large terms are multiplied by small probabilities
            kl = p * (softplus(-uz) - softplus(-uy)) + (1.0 - p) * (softplus(uz) - softplus(uy))
            return 4.0 * s2 * max(kl, 0.0)
        if kind == KIND_EXP:
            if uz <= LINEAR_BEYOND and uy <= LINEAR_BEYOND:
                if d < 1.0:
                    return s2 * math.exp(uy) * expm1_minus_x(d)
                # e^d overflows for d > 709 while e^uy underflows: no cancellation here anyway
                return s2 * (math.exp(uz) - math.exp(uy) * (1.0 + d))
        elif kind == KIND_SINH:
            if abs(uz) <= LINEAR_BEYOND and abs(uy) <= LINEAR_BEYOND:
                half = math.sinh(0.5 * d)
                return s2 * (math.cosh(uy) * 2.0 * half * half + math.sinh(uy) * sinh_minus_x(d))
    # a linear extension or different linear pieces: the terms are large, the direct form is exact enough
    h_y = component_values(kind, center, scale, offset, count, table, y)[0]
    big_h_z = component_primitive(kind, center, scale, offset, count, table, z)
    big_h_y = component_primitive(kind, center, scale, offset, count, table, y)
    return max(big_h_z - big_h_y - (z - y) * h_y, 0.0)


@register_jitable(inline="always")
def link_values(components, table, z):
    """(h, h', h'') of the whole link at z: the weighted sum of its terms."""
    h = 0.0
    dh = 0.0
    d2h = 0.0
    for k in range(components.shape[0]):
        row = components[k]
        v, dv, d2v = component_values(int(row[0]), row[2], row[3], int(row[4]), int(row[5]), table, z)
        w = row[1]
        h += w * v
        dh += w * dv
        d2h += w * d2v
    return h, dh, d2h


@register_jitable
def link_primitive(components, table, z):
    """H(z) of the whole link."""
    total = 0.0
    for k in range(components.shape[0]):
        row = components[k]
        total += row[1] * component_primitive(
            int(row[0]), row[2], row[3], int(row[4]), int(row[5]), table, z
        )
    return total


@register_jitable
def link_divergence(components, table, z, y):
    """Bregman divergence H(z) - H(y) - (z - y) h(y) of the whole link (>= 0)."""
    total = 0.0
    for k in range(components.shape[0]):
        row = components[k]
        total += row[1] * component_divergence(
            int(row[0]), row[2], row[3], int(row[4]), int(row[5]), table, z, y
        )
    return total
