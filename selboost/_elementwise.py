"""Per-element link mathematics shared by the CPU and the CUDA kernels.

A link is packed into two float64 arrays so that one compiled kernel serves every link:

* ``components``, shape (m, 6): one row per term of the weighted sum,
  ``[kind, weight, center, scale, offset, count]``;
* ``table``: the piecewise-linear data, ``knots`` (count), ``slopes`` (count + 1),
  ``h`` at the segment anchors (count + 1), ``H`` at the anchors (count + 1) and the anchors themselves
  (count + 1: each segment's point nearest 0), starting at ``offset``.

The functions here use ``math`` calls only and are registered with ``numba.extending.register_jitable``
(by ``register_with_numba``, which ``selboost._kernels`` calls on import, so that importing selboost
and its links does not import Numba): the same source is compiled into the CPU kernels
(``selboost._kernels``) and into the CUDA kernels (``selboost.cuda``), and stays callable from plain
Python, so the two cannot drift apart. The dispatch on a term's ``kind`` (``component_values``,
``link_values``) is inlined at Numba IR level, so that LLVM sees the test inside a loop and hoists it
out (measured: 4x faster than a call per element). The per-kind functions below it are ordinary
compiled functions, which LLVM inlines by itself: inlining them at IR level as well made Numba take
minutes to compile the kernels.

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

On the gradient path every exponential is ``fast_exp``: ``math.exp`` is a libm call per element, which
keeps LLVM from vectorising a loop (this Numba has no SVML), while ``fast_exp`` is plain arithmetic
that vectorises (relative error below 5e-16). ``selboost._kernels.link_values_range`` evaluates a link
over a slice term by term, each term's loop specialised for its kind, so that those loops vectorise.
The CUDA kernels compile the same functions with ``fast_exp`` bound to libdevice's ``exp``.
"""

import math
import struct

import numpy as np

KIND_IDENTITY = 0
KIND_SIGMOID = 1
KIND_SINH = 2
KIND_EXP = 3
KIND_PIECEWISE = 4

#: |u| beyond which sinh and exp links continue linearly (cosh(30) ~ 5.3e12).
LINEAR_BEYOND = 30.0

#: below this |z - y| / scale the divergence uses its Taylor expansion (no cancellation).
_TAYLOR_BELOW = 1e-4

#: the values at the start of the linear continuations (module constants: no libm call in a kernel loop)
_SINH_AT_LINEAR = math.sinh(LINEAR_BEYOND)
_COSH_AT_LINEAR = math.cosh(LINEAR_BEYOND)
_EXP_AT_LINEAR = math.exp(LINEAR_BEYOND)

_LOG2_E = 1.4426950408889634
#: ln 2 split in two (Cody and Waite): n * _LN2_HIGH is exact for |n| < 2^11
_LN2_HIGH = 6.93147180369123816490e-01
_LN2_LOW = 1.90821492927058770002e-10


def power_of_two(n):
    """2.0 ** n for an integer n in [-1022, 1023], built from its exponent bits."""
    return struct.unpack("<d", struct.pack("<q", (int(n) + 1023) << 52))[0]


def multiply_add(a, b, c):
    """a * b + c; compiled, one fused multiply-add that the kernels' ``reassoc`` cannot regroup."""
    return a * b + c


#: (function, register_jitable options) of every function below, registered by ``register_with_numba``
_JITABLE = []


def register_jitable(function=None, **options):
    """Marks ``function`` for ``numba.extending.register_jitable(**options)``, done by
    ``register_with_numba``; the function itself is returned unchanged, as Numba's decorator does."""

    def mark(function):
        _JITABLE.append((function, options))
        return function

    return mark if function is None else mark(function)


_REGISTERED = []


def register_with_numba():
    """Registers the compiled forms with Numba (once per process): every ``register_jitable`` function,
    ``power_of_two`` as a bit-cast and ``multiply_add`` as a fused multiply-add."""
    if _REGISTERED:
        return
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload
    from numba.extending import register_jitable as numba_register_jitable

    @intrinsic
    def _bits_to_float(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

    @overload(power_of_two)
    def _power_of_two_compiled(n):
        def implementation(n):
            return _bits_to_float((np.int64(n) + 1023) << 52)

        return implementation

    @intrinsic
    def _fused_multiply_add(typingctx, a, b, c):
        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return types.float64(types.float64, types.float64, types.float64), codegen

    @overload(multiply_add)
    def _multiply_add_compiled(a, b, c):
        def implementation(a, b, c):
            return _fused_multiply_add(np.float64(a), np.float64(b), np.float64(c))

        return implementation

    for function, options in _JITABLE:
        # Numba's decorator takes either options or the function
        numba_register_jitable(**options)(function) if options else numba_register_jitable(function)
    _REGISTERED.append(True)


@register_jitable
def _exp_parts(x):
    """(2**n, e**r - 1) with x = n ln2 + r, |r| <= ln2 / 2, for x clipped to [-708, 709]: e**r - 1 by
    its Taylor polynomial of degree 13 (truncation below 1e-17), without the leading 1, so that
    e**x - 1 keeps its digits near x = 0."""
    clipped = min(max(x, -708.0), 709.0)
    n = math.floor(clipped * _LOG2_E + 0.5)
    # Cody-Waite in fused multiply-adds: under ``reassoc`` the plain form may be regrouped into
    # clipped - n * ln2, which loses the low bits (measured: relative error 2e-14 at x = 700)
    r = multiply_add(-n, _LN2_LOW, multiply_add(-n, _LN2_HIGH, clipped))
    p = 1.0 / 6227020800.0
    p = 1.0 / 479001600.0 + r * p
    p = 1.0 / 39916800.0 + r * p
    p = 1.0 / 3628800.0 + r * p
    p = 1.0 / 362880.0 + r * p
    p = 1.0 / 40320.0 + r * p
    p = 1.0 / 5040.0 + r * p
    p = 1.0 / 720.0 + r * p
    p = 1.0 / 120.0 + r * p
    p = 1.0 / 24.0 + r * p
    p = 1.0 / 6.0 + r * p
    p = 0.5 + r * p
    p = 1.0 + r * p
    return power_of_two(n), r * p


@register_jitable
def fast_exp(x):
    """e**x for x <= 709 as arithmetic only (``_exp_parts``): 0 below -708 (where e**x is subnormal),
    e**709 above 709: the kernels never ask for more than e**30."""
    scale, r_part = _exp_parts(x)
    value = multiply_add(scale, r_part, scale)
    return value if x >= -708.0 else 0.0


@register_jitable
def fast_exp_expm1(x):
    """(e**x, e**x - 1) as arithmetic only, from one polynomial (``_exp_parts``): e**x - 1 as
    2**n (e**r - 1) + (2**n - 1), the last exact, keeps its digits near x = 0, where e**x - 1 would
    cancel; (0, -1) below -708."""
    scale, r_part = _exp_parts(x)
    value = multiply_add(scale, r_part, scale)
    # below -708, 2**n (e**r - 1) is below 1e-307 and minus_one rounds to -1 by itself: one select only,
    # in a single return (two returns of tuples kept LLVM from vectorising the sinh loops: 5x slower)
    minus_one = multiply_add(scale, r_part, scale - 1.0)
    return (value if x >= -708.0 else 0.0), minus_one


@register_jitable
def sigmoid(u):
    """Logistic function from e^-|u|: one exp, no overflow, no branch (the choice is a select)."""
    e = fast_exp(-abs(u))
    inverse = 1.0 / (1.0 + e)
    return inverse if u >= 0.0 else e * inverse


@register_jitable
def pair_curvature(margin):
    """sigma(m) sigma(-m) from e^-|m|: the form s (1 - s) rounds to 0 once |m| > 37."""
    e = math.exp(-abs(margin))
    return e / ((1.0 + e) * (1.0 + e))


@register_jitable
def pair_margin(phi_i, phi_j):
    """phi_i - phi_j of a pair, and 0 for two equal infinite transformed scores (inf - inf is NaN):
    the pair is a tie in the limit."""
    margin = phi_i - phi_j
    return margin if margin == margin else 0.0


@register_jitable
def softmax_exponent(phi, top):
    """phi - top, the exponent of a softmax term with the group's largest transformed score ``top``;
    for an infinite ``top`` (phi = +inf somewhere, or -inf everywhere) the softmax's limit: equal mass
    on the scores equal to ``top`` (exponent 0), none elsewhere."""
    if top - top != 0.0:
        return 0.0 if phi == top else -math.inf
    return phi - top


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
    """The point of segment j nearest 0 (0 itself if the segment holds it), where h and H are tabulated:
    h(z) = h(a) + m (z - a) then adds two terms of one sign, which cannot cancel."""
    return table[offset + 4 * count + 3 + j]


@register_jitable
def sigmoid_values(center, scale, z):
    """(h, h', h'') of the unit sigmoid term: 4 s sigma(u), 4 sigma(u) sigma(-u), its derivative; both
    sigma(u) and sigma(-u) from e^-|u| (never 1 - sigma from sigma ~ 1, which loses the far tail)."""
    inverse_scale = 1.0 / scale  # invariant in a kernel's loop: one division per loop, not per element
    u = (z - center) * inverse_scale
    e = fast_exp(-abs(u))
    inverse = 1.0 / (1.0 + e)
    small = e * inverse
    p = inverse if u >= 0.0 else small
    p_bar = small if u >= 0.0 else inverse
    q = small * inverse
    return 4.0 * scale * p, 4.0 * q, 4.0 * q * (p_bar - p) * inverse_scale


@register_jitable
def sinh_values(center, scale, z):
    """(h, h', h'') of the unit sinh term, continued linearly beyond |u| = LINEAR_BEYOND; sinh from
    expm1, so that it keeps its digits near the centre."""
    inverse_scale = 1.0 / scale
    u = (z - center) * inverse_scale
    # min and max spelled out: the two-argument builtins fail in Numba's CUDA target (numba/numba#10753)
    beyond = abs(u) - LINEAR_BEYOND if abs(u) > LINEAR_BEYOND else 0.0
    e, em1 = fast_exp_expm1(LINEAR_BEYOND if abs(u) > LINEAR_BEYOND else abs(u))
    inverse = 1.0 / e
    sinh = 0.5 * em1 * (1.0 + inverse)  # (e - 1/e) / 2 without the cancellation
    cosh = 0.5 * (e + inverse)
    sign = 1.0 if u >= 0.0 else -1.0
    # for |u| <= LINEAR_BEYOND: beyond = 0, the plain sinh; past it the tangent line
    d2h = sign * sinh * inverse_scale if beyond == 0.0 else 0.0
    return sign * scale * (sinh + cosh * beyond), cosh, d2h


@register_jitable
def exp_values(center, scale, z):
    """(h, h', h'') of the unit exp term s (e^u - 1), continued linearly beyond u = LINEAR_BEYOND; e^u - 1
    as expm1, so that it keeps its digits near the centre."""
    inverse_scale = 1.0 / scale
    u = (z - center) * inverse_scale
    beyond = u - LINEAR_BEYOND if u > LINEAR_BEYOND else 0.0
    e, em1 = fast_exp_expm1(LINEAR_BEYOND if u > LINEAR_BEYOND else u)
    return scale * (em1 + e * beyond), e, (e * inverse_scale if beyond == 0.0 else 0.0)


@register_jitable(inline="always")
def piecewise_values(table, offset, count, z):
    """(h, h', h'') of a piecewise-linear term: the tabulated h at the segment's anchor plus the slope."""
    j = _piecewise_segment(table, offset, count, z)
    a = _piecewise_anchor(table, offset, count, j)
    slope = table[offset + count + j]
    h_a = table[offset + 2 * count + 1 + j]
    return h_a + slope * (z - a), slope, 0.0


@register_jitable(inline="always")
def component_values(kind, center, scale, offset, count, table, z):
    """(h, h', h'') of one unweighted term at z."""
    if kind == KIND_IDENTITY:
        return z, 1.0, 0.0
    if kind == KIND_SIGMOID:
        return sigmoid_values(center, scale, z)
    if kind == KIND_SINH:
        return sinh_values(center, scale, z)
    if kind == KIND_EXP:
        return exp_values(center, scale, z)
    return piecewise_values(table, offset, count, z)


@register_jitable
def sigmoid_call(u):
    """``sigmoid`` as a plain call, for a kernel that inlines ``sigmoid`` elsewhere."""
    return sigmoid(u)


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
            c = _COSH_AT_LINEAR * (1.0 + 0.5 * d * d) + _SINH_AT_LINEAR * d
            return scale * scale * c
        return scale * scale * math.cosh(u)
    if kind == KIND_EXP:
        u = (z - center) / scale
        if u > LINEAR_BEYOND:
            d = u - LINEAR_BEYOND
            return scale * scale * _EXP_AT_LINEAR * (1.0 + d + 0.5 * d * d) - scale * z
        return scale * scale * math.exp(u) - scale * z
    j = _piecewise_segment(table, offset, count, z)
    a = _piecewise_anchor(table, offset, count, j)
    slope = table[offset + count + j]
    h_a = table[offset + 2 * count + 1 + j]
    big_h_a = table[offset + 3 * count + 2 + j]
    d = z - a
    return big_h_a + h_a * d + 0.5 * slope * d * d


@register_jitable
def _sigmoid_divergence(uz, uy, d):
    """softplus(uz) - softplus(uy) - sigma(uy) d with d = uz - uy: the Bernoulli Kullback-Leibler
    divergence KL(sigma(uy) || sigma(uz)), to a few ulps for every finite uz, uy.

    Mirrored (u -> -u) so that p = sigma(uy) <= 1/2, with p and 1 - p both taken from e^uy (never
    1 - p from p ~ 1). For |d| < _TAYLOR_BELOW the Taylor series; for d <= 30, log1p(p expm1(d)) - p d,
    whose relative error is ~ eps / |d|; beyond, the direct form, where no two terms cancel.
    """
    if uy > 0.0:
        uz = -uz
        uy = -uy
        d = -d
    e = math.exp(uy)
    p = e / (1.0 + e)
    p_bar = 1.0 / (1.0 + e)
    p_d = p * d if p > 0.0 else 0.0  # p = 0 with d = inf would give NaN
    if abs(d) < _TAYLOR_BELOW:
        q = p * p_bar
        # the derivatives of softplus: sigma' = q, sigma'' = q (1 - 2 p), sigma''' = q (1 - 6 q)
        return q * d * d * (0.5 + d * (p_bar - p) / 6.0 + d * d * (1.0 - 6.0 * q) / 24.0)
    if d <= 30.0:
        return max(math.log1p(p * math.expm1(d)) - p_d, 0.0)
    if uz == math.inf:
        return math.inf
    return max(softplus(uz) - softplus(uy) - p_d, 0.0)


@register_jitable
def _exponential_piece(kind, a, b, length):
    """(divergence, change of h) of the unit sinh or exp function from u = a to u = b = a + length,
    both inside the exponential part, in forms whose terms are all >= 0, with phi(x) = e^x - 1 - x:

    sinh: D = (e^a phi(L) + e^-a phi(-L)) / 2, change 2 cosh(a + L/2) sinh(L/2);
    exp:  D = e^a phi(L), change e^a expm1(L); for L > 1, D = e^b - e^a (1 + L) and change e^b - e^a,
    which stay finite where e^a underflows and phi(L) would overflow.
    """
    e = math.exp(a)
    if kind == KIND_SINH:
        divergence = 0.5 * (e * expm1_minus_x(length) + expm1_minus_x(-length) / e)
        return divergence, 2.0 * math.cosh(a + 0.5 * length) * math.sinh(0.5 * length)
    if length <= 1.0:
        return e * expm1_minus_x(length), e * math.expm1(length)
    tail = e * (1.0 + length) if e > 0.0 else 0.0  # e = 0 with length = inf would give NaN
    e_b = math.exp(b)
    return max(e_b - tail, 0.0), e_b - e


@register_jitable
def _continued_region(kind, u):
    """0: the lower linear part (sinh only), 1: the exponential part, 2: the upper linear part."""
    if u > LINEAR_BEYOND:
        return 2
    if kind == KIND_SINH and u < -LINEAR_BEYOND:
        return 0
    return 1


@register_jitable
def _continued_divergence(kind, uz, uy, d):
    """Divergence of the unit sinh or exp function (continued linearly beyond |u| = LINEAR_BEYOND),
    d = uz - uy computed as (z - y) / s.

    The path from uy to uz is cut where it crosses a region boundary, and the divergence is summed
    over the pieces [a_i, a_(i+1)] as D(z, y) = sum_i [D(a_(i+1), a_i) + (h(a_(i+1)) - h(a_i)) (z - a_(i+1))]:
    every term has the sign of (z - y)^2, so none cancels, far apart or near (the closed form
    cosh(uz) - cosh(uy) - d sinh(uy) adds terms of 3e31 for a value of 5e12). Positions are offsets
    from the end nearer 0, each computed once: the rounding of a boundary's offset then cancels
    between the pieces, and is never that of a huge |u|.
    """
    if d - d != 0.0:
        # |z - y| / s beyond float64 with u finite: one end lies 1e292 or more inside the upper linear
        # part (slope > 0 there), so the divergence exceeds float64 as well
        return math.inf
    slope = _COSH_AT_LINEAR if kind == KIND_SINH else _EXP_AT_LINEAR
    region_y = _continued_region(kind, uy)
    region_z = _continued_region(kind, uz)
    step = 1 if region_z > region_y else -1
    origin = uy if abs(uy) <= abs(uz) else uz
    start = 0.0 if abs(uy) <= abs(uz) else -d  # the position of y
    stop = start + d  # the position of z: d or 0, exactly
    region = region_y
    a = uy
    total = 0.0
    while True:
        if region == region_z:
            b = uz
            end = stop
        else:
            lower_region = region if step > 0 else region - 1  # the boundary between it and the next
            b = -LINEAR_BEYOND if lower_region == 0 else LINEAR_BEYOND
            end = b - origin
        length = end - start
        if region == 1:
            divergence, change = _exponential_piece(kind, a, b, length)
        else:
            divergence = 0.5 * slope * length * length
            change = slope * length
        total += divergence
        if region == region_z:
            return total
        total += change * (stop - end)
        a = b
        start = end
        region += step


@register_jitable
def _piecewise_divergence(table, offset, count, z, y):
    """Divergence of a piecewise-linear term: the sum over the segments j between y and z of
    m_j L_j^2 / 2 + m_j L_j (z - end_j), all terms >= 0, positions measured as in
    ``_continued_divergence``."""
    d = z - y
    if d - d != 0.0:
        # |z - y| beyond float64: the divergence is at least min(slope) (z - y)^2 / 2, beyond float64
        # for every slope above 1.2e-308 (the smallest normal float64)
        return math.inf
    jy = _piecewise_segment_call(table, offset, count, y)
    jz = _piecewise_segment_call(table, offset, count, z)
    step = 1 if jz > jy else -1
    origin = y if abs(y) <= abs(z) else z
    start = 0.0 if abs(y) <= abs(z) else -d
    stop = start + d
    j = jy
    total = 0.0
    while True:
        slope = table[offset + count + j]
        if j == jz:
            length = stop - start
            return total + 0.5 * slope * length * length
        # going up, segment j ends at knot j; going down, it begins at knot j - 1
        end = (table[offset + j] if step > 0 else table[offset + j - 1]) - origin
        length = end - start
        total += slope * length * (0.5 * length + (stop - end))
        start = end
        j += step


@register_jitable
def component_divergence(kind, center, scale, offset, count, table, z, y):
    """H(z) - H(y) - (z - y) h(y) of one unweighted term, >= 0, in forms without cancellation for every
    finite z and y: finite wherever the value fits in float64 (and u = (z - c) / s and (z - y) / s
    do), +inf where it overflows."""
    if kind == KIND_IDENTITY:
        d = z - y
        return 0.5 * d * d
    if kind == KIND_PIECEWISE:
        return _piecewise_divergence(table, offset, count, z, y)
    uz = (z - center) / scale
    uy = (y - center) / scale
    d = (z - y) / scale  # not uz - uy: z - y is exact for nearby z, y, the rounded u's are not
    if kind == KIND_SIGMOID:
        return 4.0 * scale * (scale * _sigmoid_divergence(uz, uy, d))
    return scale * (scale * _continued_divergence(kind, uz, uy, d))


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


# ---------------------------------------------------------------- the per-item steps of the losses
# Each loss kind's per-item arithmetic, its rule for degenerate groups and its pair selection, written
# once: the CPU kernels (selboost._kernels) and the CUDA kernels (selboost.cuda) loop around these.
# Maxima are spelled as selects: Numba's CUDA target fails on the two-argument max (numba/numba#10753).


@register_jitable
def chain_rule_step(dphi, d2phi, g, h, exact, weight, hess_min):
    """(grad, hess) of one item from the loss's first and second derivatives g, h in the transformed
    score phi(z): grad = w phi' g, hess = w max(phi'^2 h [+ phi'' g], hess_min), the phi'' term with
    ``exact`` (Gauss-Newton without). A scalar selective loss is phi' = 1, g = h(z) - h(y), h = h'(z)."""
    hess = dphi * dphi * h
    if exact:
        hess += d2phi * g
    hess = hess if hess > hess_min else hess_min
    return weight * (dphi * g), weight * hess


@register_jitable
def softmax_item_step(p, q, dphi, d2phi, exact, weight, hess_min):
    """(grad, hess) of one item of a composite softmax with probability p and target q: the loss
    KL(q || p) has g = p - q and h = p (1 - p) in the item's transformed score."""
    return chain_rule_step(dphi, d2phi, p - q, p * (1.0 - p), exact, weight, hess_min)


@register_jitable
def softmax_group_is_degenerate(size, q_sum):
    """A group of one item, or whose targets sum to 0, has no softmax to match: its items get zero
    gradient and hessian, and the group zero loss."""
    return size < 2 or q_sum <= 0.0


@register_jitable
def _goes_first(phi, relevance, a, b):
    """Whether row a comes before row b in a group's pair order: lower relevance first, then higher
    transformed score (equal ones keep their order: the sort is stable)."""
    return relevance[a] < relevance[b] or (relevance[a] == relevance[b] and phi[a] >= phi[b])


@register_jitable
def _merge_runs(phi, relevance, start, size, width, source, target):
    """One pass of a bottom-up merge sort: the sorted runs of ``width`` items of source[start:start + size]
    merged in pairs into target."""
    for left in range(0, size, 2 * width):
        middle = left + width if left + width < size else size
        right = left + 2 * width if left + 2 * width < size else size
        a = left
        b = middle
        for out in range(left, right):
            if a < middle and (b >= right or _goes_first(phi, relevance, start + source[start + a],
                                                         start + source[start + b])):
                target[start + out] = source[start + a]
                a += 1
            else:
                target[start + out] = source[start + b]
                b += 1


@register_jitable
def pair_order(phi, relevance, start, size, items, buffer):
    """items[start:start + size] = the group's items 0..size - 1 by relevance level (ascending) and, within
    a level, by transformed score (descending; ties by position): a stable bottom-up merge sort through
    buffer[start:start + size], which needs no allocation (the CUDA kernels cannot allocate)."""
    for i in range(size):
        items[start + i] = i
    width = 1
    in_items = True
    while width < size:
        if in_items:
            _merge_runs(phi, relevance, start, size, width, items, buffer)
        else:
            _merge_runs(phi, relevance, start, size, width, buffer, items)
        in_items = not in_items
        width *= 2
    if not in_items:
        for i in range(size):
            items[start + i] = buffer[start + i]


@register_jitable
def pair_loss(phi, i, j):
    """The loss softplus(-(phi_i - phi_j)) of the pair (i, j), i more relevant than j."""
    return softplus(-pair_margin(phi[i], phi[j]))


@register_jitable
def pair_step(phi, i, j, gphi, hphi, paired):
    """The derivatives of the pair (i, j)'s loss (``pair_loss``) added into gphi, hphi (of dL/dphi,
    d2L/dphi2) and its count into paired, for both items."""
    margin = pair_margin(phi[i], phi[j])
    s = sigmoid(-margin)
    gphi[i] -= s
    gphi[j] += s
    c = pair_curvature(margin)
    hphi[i] += c
    hphi[j] += c
    paired[i] += 1.0
    paired[j] += 1.0


@register_jitable
def group_pairs_visit(phi, relevance, start, size, k, order, by_level, buffer, gphi, hphi, paired,
                      with_gradients):
    """Every pair of the group of rows start..start + size - 1: with ``with_gradients`` through
    ``pair_step`` (returns 0), otherwise the sum of their ``pair_loss``.

    ``k == 0``: every pair (i, j) with relevance i > relevance j, in (i, j) order. Otherwise each item
    is paired with the ``k`` items of lower relevance whose transformed scores are highest (the
    hardest ones, ties by position): level by level upwards, each item of the level (by descending
    score) with its partners (by descending score). O(n log n + n k) for n items; ``order``,
    ``by_level``, ``buffer``: int64 scratch of the rows' length."""
    loss = 0.0
    if k == 0:
        for i in range(start, start + size):
            for j in range(start, start + size):
                if relevance[i] > relevance[j]:
                    if with_gradients:
                        pair_step(phi, i, j, gphi, hphi, paired)
                    else:
                        loss += pair_loss(phi, i, j)
        return loss
    pair_order(phi, relevance, start, size, by_level, buffer)
    # the partners of the current level, best score first (ties by position), in order[start:]: the best
    # k of the previous level's partners and of the previous level's items, merged through buffer
    n_partners = 0
    previous_begin = 0
    level_begin = 0
    while level_begin < size:
        level = relevance[start + by_level[start + level_begin]]
        level_end = level_begin + 1
        while level_end < size and relevance[start + by_level[start + level_end]] == level:
            level_end += 1
        if level_begin > 0:
            a = 0
            b = previous_begin
            merged = 0
            while merged < k and (a < n_partners or b < level_begin):
                take_a = b >= level_begin
                if a < n_partners and b < level_begin:
                    pa = start + order[start + a]
                    pb = start + by_level[start + b]
                    take_a = phi[pa] > phi[pb] or (phi[pa] == phi[pb] and pa < pb)
                if take_a:
                    buffer[start + merged] = order[start + a]
                    a += 1
                else:
                    buffer[start + merged] = by_level[start + b]
                    b += 1
                merged += 1
            n_partners = merged
            for s in range(n_partners):
                order[start + s] = buffer[start + s]
            # the test outside the loops: it keeps a branch out of the pairs' arithmetic
            if with_gradients:
                for t in range(level_begin, level_end):
                    i = start + by_level[start + t]
                    for s in range(n_partners):
                        pair_step(phi, i, start + order[start + s], gphi, hphi, paired)
            else:
                for t in range(level_begin, level_end):
                    i = start + by_level[start + t]
                    for s in range(n_partners):
                        loss += pair_loss(phi, i, start + order[start + s])
        previous_begin = level_begin
        level_begin = level_end
    return loss


@register_jitable
def pairwise_group_grad_hess(phi, dphi, d2phi, relevance, start, size, k, exact, weight, weighted, hess_min,
                             gphi, hphi, paired, order, by_level, buffer, grad_out, hess_out):
    """Gradients and hessians of one group of the pairwise loss from its link values phi, phi', phi''
    (rows start..start + size - 1): the pair sums (``group_pairs_visit``), then the chain rule per
    item; an item in no pair gets zero gradient and hessian."""
    for i in range(start, start + size):
        gphi[i] = 0.0
        hphi[i] = 0.0
        paired[i] = 0.0
    group_pairs_visit(phi, relevance, start, size, k, order, by_level, buffer, gphi, hphi, paired, True)
    for i in range(start, start + size):
        if paired[i] == 0.0:
            grad_out[i] = 0.0
            hess_out[i] = 0.0
        else:
            grad, hess = chain_rule_step(dphi[i], d2phi[i], gphi[i], hphi[i], exact,
                                         weight[i] if weighted else 1.0, hess_min)
            grad_out[i] = grad
            hess_out[i] = hess
