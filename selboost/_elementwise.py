"""Per-element link mathematics shared by the CPU and the CUDA kernels.

A link is packed into two float64 arrays so that one compiled kernel serves every link:

* ``components``, shape (m, 6): one row per term of the weighted sum,
  ``[kind, weight, center, scale, offset, count]``;
* ``table``: the piecewise-linear data, ``knots`` (count), ``slopes`` (count + 1),
  ``h`` at the segment anchors (count + 1) and ``H`` at the anchors (count + 1), starting at ``offset``.

The functions here use ``math`` calls only and are registered with ``numba.extending.register_jitable``:
the same source is compiled into the CPU kernels (``selboost._kernels``) and into the CUDA kernels
(``selboost.cuda``), and stays callable from plain Python, so the two cannot drift apart. The dispatch
on a term's ``kind`` (``component_values``, ``link_values``) is inlined at Numba IR level, so that LLVM
sees the test inside a loop and hoists it out (measured: 4x faster than a call per element). The
per-kind functions below it are ordinary compiled functions, which LLVM inlines by itself: inlining
them at IR level as well made Numba take minutes to compile the kernels.

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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

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


def multiply_add(a, b, c):
    """a * b + c; compiled, one fused multiply-add that the kernels' ``reassoc`` cannot regroup."""
    return a * b + c


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


@register_jitable
def fast_exp(x):
    """e**x for x <= 709 as arithmetic only: x = n ln2 + r with |r| <= ln2 / 2, e**x = 2**n e**r, e**r
    by its Taylor polynomial of degree 13 (truncation below 1e-17). 0 below -708 (where e**x is
    subnormal), e**709 above 709: the kernels never ask for more than e**30."""
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
    p = 1.0 + r * p
    value = p * power_of_two(n)
    return value if x >= -708.0 else 0.0


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


@register_jitable
def sigmoid_values(center, scale, z):
    """(h, h', h'') of the unit sigmoid term: 4 s sigma(u), 4 sigma (1 - sigma), its derivative."""
    inverse_scale = 1.0 / scale  # invariant in a kernel's loop: one division per loop, not per element
    p = sigmoid((z - center) * inverse_scale)
    q = p * (1.0 - p)
    return 4.0 * scale * p, 4.0 * q, 4.0 * q * (1.0 - 2.0 * p) * inverse_scale


@register_jitable
def sinh_values(center, scale, z):
    """(h, h', h'') of the unit sinh term, continued linearly beyond |u| = LINEAR_BEYOND."""
    inverse_scale = 1.0 / scale
    u = (z - center) * inverse_scale
    # min and max spelled out: the two-argument builtins fail in Numba's CUDA target (numba/numba#10753)
    beyond = abs(u) - LINEAR_BEYOND if abs(u) > LINEAR_BEYOND else 0.0
    e = fast_exp(LINEAR_BEYOND if abs(u) > LINEAR_BEYOND else abs(u))
    inverse = 1.0 / e
    sinh = 0.5 * (e - inverse)
    cosh = 0.5 * (e + inverse)
    sign = 1.0 if u >= 0.0 else -1.0
    # for |u| <= LINEAR_BEYOND: beyond = 0, the plain sinh; past it the tangent line
    d2h = sign * sinh * inverse_scale if beyond == 0.0 else 0.0
    return sign * scale * (sinh + cosh * beyond), cosh, d2h


@register_jitable
def exp_values(center, scale, z):
    """(h, h', h'') of the unit exp term s (e^u - 1), continued linearly beyond u = LINEAR_BEYOND."""
    inverse_scale = 1.0 / scale
    u = (z - center) * inverse_scale
    beyond = u - LINEAR_BEYOND if u > LINEAR_BEYOND else 0.0
    e = fast_exp(LINEAR_BEYOND if u > LINEAR_BEYOND else u)
    return scale * (e * (1.0 + beyond) - 1.0), e, (e * inverse_scale if beyond == 0.0 else 0.0)


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
def component_values_call(kind, center, scale, offset, count, table, z):
    """``component_values`` as a plain call, for functions that inline ``sigmoid`` or the piecewise
    search elsewhere (see ``_piecewise_segment_call``)."""
    return component_values(kind, center, scale, offset, count, table, z)


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
            p = sigmoid(uy)
            if abs(d) < _TAYLOR_BELOW:
                q = p * (1.0 - p)
                # 4 s^2 [sigma'(uy) d^2/2 + sigma''(uy) d^3/6 + sigma'''(uy) d^4/24]
                return 4.0 * s2 * q * d * d * (
                    0.5 + d * (1.0 - 2.0 * p) / 6.0 + d * d * (1.0 - 6.0 * q) / 24.0
                )
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
    h_y = component_values_call(kind, center, scale, offset, count, table, y)[0]
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
