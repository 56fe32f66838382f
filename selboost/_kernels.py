"""Numba kernels: per-sample gradients and hessians, parallel over samples or over query groups.

Inputs are assumed valid (``selboost.losses`` validates at the boundary). Arithmetic is float64; the
output arrays may be float32 (what the engines want) or float64. Every kernel exists twice, compiled
from one Python function: ``parallel=True`` (``prange`` over samples or groups) and a serial one,
because the engines' own OpenMP pools run on the same cores and a parallel kernel can slow a
boosting round down (see ``benchmarks/RESULTS.md``).

``fastmath`` is a fixed set of flags that allows contraction and reassociation but not ``nnan`` or
``ninf``: inputs are finite, and the kernels must never assume away an overflow. ``error_model="numpy"``:
with Numba's default ("python") every float division checks for a zero divisor and may raise, and that
branch keeps LLVM from vectorising any loop that divides (measured: 2-3x slower serial kernels).

The gradient kernels evaluate the link over a tile of samples (scalar) or over a group, term by term
(``link_values_range``), into small scratch arrays that stay in the L1 cache, and check on
the way that the scores are finite: they return the number of scores z with z - z != 0 (NaN exactly
when z is NaN or infinite), so that the caller needs no separate pass over the data.
"""

import math
import types

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from selboost._elementwise import (
    KIND_EXP,
    KIND_IDENTITY,
    KIND_SIGMOID,
    KIND_SINH,
    exp_values,
    fast_exp,
    link_divergence,
    link_primitive,
    link_values,
    pair_curvature,
    pair_margin,
    piecewise_values,
    sigmoid_call,
    sigmoid_values,
    sinh_values,
    softmax_exponent,
    softplus,
)

FASTMATH = {"contract", "reassoc", "arcp", "nsz"}

#: samples per tile of the scalar kernel: two float64 scratch arrays of this length stay in L1
TILE = 1024
#: samples per parallel chunk of the scalar kernel, query groups per chunk of the softmax kernel: one
#: scratch allocation per chunk (one per tile made the serial kernel 1.7x slower)
CHUNK = 16 * TILE
GROUPS_PER_CHUNK = 64
#: rows of consecutive query groups whose link values the softmax kernel computes in one call
BLOCK_ROWS = 1024


def _renamed(function, suffix):
    """A copy of ``function`` under another name: Numba's on-disk cache is keyed on the function's
    qualified name and bytecode, not on ``parallel=``, so the two variants need distinct names."""
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__ + suffix, function.__defaults__,
        function.__closure__,
    )
    copy.__qualname__ = function.__qualname__ + suffix
    copy.__doc__ = function.__doc__
    return copy


def _compile_both(function):
    """(parallel, serial) compilations of one kernel source."""
    options = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
    parallel = njit(parallel=True, **options)(_renamed(function, "_parallel"))
    serial = njit(parallel=False, **options)(_renamed(function, "_serial"))
    return parallel, serial


# ---------------------------------------------------------------- links, element by element


# One term's (h, h', h'') at z, with the same arguments for every kind. Each kind's loops below are
# compiled separately around one of these, with the function a constant: a loop that dispatches on the
# kind inside does not vectorise, and inlining the dispatch of every kind into every loop made Numba take
# minutes to compile the kernels.


@register_jitable
def _identity_term(center, scale, offset, count, table, z):
    return z, 1.0, 0.0


@register_jitable
def _sigmoid_term(center, scale, offset, count, table, z):
    return sigmoid_values(center, scale, z)


@register_jitable
def _sinh_term(center, scale, offset, count, table, z):
    return sinh_values(center, scale, z)


@register_jitable
def _exp_term(center, scale, offset, count, table, z):
    return exp_values(center, scale, z)


@register_jitable
def _piecewise_term(center, scale, offset, count, table, z):
    return piecewise_values(table, offset, count, z)


#: in the order of the names the compiled loops are unpacked to below
_TERM_VALUES = (_identity_term, _sigmoid_term, _sinh_term, _exp_term, _piecewise_term)


def _add_term_loop(term_values):
    """A compiled loop adding w * (h, h', h'') of one term over z[start:stop] to h[i - base], dh[i - base]
    and, unless ``d2h`` is None, d2h[i - base]; ``first``: store instead of adding (no zeroing pass)."""

    def add_term(center, scale, offset, count, table, w, z, start, stop, h, dh, d2h, base, first):
        zs = z[start:stop]
        hs = h[start - base:stop - base]
        dhs = dh[start - base:stop - base]
        if d2h is None:
            for i in range(zs.shape[0]):
                v, dv, _ = term_values(center, scale, offset, count, table, zs[i])
                hs[i] = (0.0 if first else hs[i]) + w * v
                dhs[i] = (0.0 if first else dhs[i]) + w * dv
        else:
            d2hs = d2h[start - base:stop - base]
            for i in range(zs.shape[0]):
                v, dv, d2v = term_values(center, scale, offset, count, table, zs[i])
                hs[i] = (0.0 if first else hs[i]) + w * v
                dhs[i] = (0.0 if first else dhs[i]) + w * dv
                d2hs[i] = (0.0 if first else d2hs[i]) + w * d2v

    # Numba's cache keys a closure on the values it captures as well as on its name and code
    return njit(cache=True, fastmath=FASTMATH, error_model="numpy")(add_term)


_add_identity, _add_sigmoid, _add_sinh, _add_exp, _add_piecewise = map(_add_term_loop, _TERM_VALUES)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def link_values_range(components, table, z, start, stop, h, dh, d2h, base):
    """(h, h', h'') of the whole link at z[start:stop], written to h[i - base], dh[i - base], d2h[i - base];
    ``d2h=None`` skips h''.

    Term by term, each term's loop compiled for its kind so that LLVM vectorises it (the per-element
    ``link_values`` dispatches on the kind inside the loop, which does not vectorise). Whether h'' is
    wanted is decided at compile time: Numba compiles a separate version for ``d2h=None`` and prunes
    the ``is None`` branches, because a run-time test inside a loop kept it from vectorising (measured:
    2.3x slower). The loops run over slices from index 0: an index that might be negative gets Numba's
    wrap-around select, and then LLVM cannot see that the accesses are consecutive.
    """
    for k in range(components.shape[0]):
        kind = int(components[k, 0])
        arguments = (
            components[k, 2], components[k, 3], int(components[k, 4]), int(components[k, 5]), table,
            components[k, 1], z, start, stop, h, dh, d2h, base, k == 0,
        )
        if kind == KIND_IDENTITY:
            _add_identity(*arguments)
        elif kind == KIND_SIGMOID:
            _add_sigmoid(*arguments)
        elif kind == KIND_SINH:
            _add_sinh(*arguments)
        elif kind == KIND_EXP:
            _add_exp(*arguments)
        else:
            _add_piecewise(*arguments)


@register_jitable(inline="always")
def evaluate_link(components, table, z, start, stop, phi, dphi, d2phi):
    """phi, phi', phi'' at z[start:stop] into the same positions of the work arrays."""
    link_values_range(components, table, z, start, stop, phi, dphi, d2phi, 0)


def _link_values_kernel(components, table, z, h_out, dh_out, d2h_out):
    for i in prange(z.shape[0]):
        h, dh, d2h = link_values(components, table, z[i])
        h_out[i] = h
        dh_out[i] = dh
        d2h_out[i] = d2h


def _link_primitive_kernel(components, table, z, out):
    for i in prange(z.shape[0]):
        out[i] = link_primitive(components, table, z[i])


def _link_divergence_kernel(components, table, z, y, out):
    for i in prange(z.shape[0]):
        out[i] = link_divergence(components, table, z[i], y[i])


link_values_parallel, link_values_serial = _compile_both(_link_values_kernel)
link_primitive_parallel, link_primitive_serial = _compile_both(_link_primitive_kernel)
link_divergence_parallel, link_divergence_serial = _compile_both(_link_divergence_kernel)


# ---------------------------------------------------------------- scalar matching loss


def _fused_term_loop(term_values):
    """The compiled loop for one tile of the scalar kernel whose link ends with the term ``term_values``:

        grad = weight (partial_h + slope z + w v - target),
        hess = weight max(partial_dh + slope + w v', hess_min)

    with (v, v') the last term at z, ``slope`` the link's identity terms together and the other
    earlier terms' sums in partial_h/partial_dh. Returns the number of scores that are not finite.
    ``weights=None`` means unweighted, resolved at compile time like ``d2h=None`` in
    ``link_values_range``.

    Compiled without ``reassoc``: the targets are this loop's own h(y) (``BoundSelectiveLoss``), and
    grad(y, y) is exactly 0 only if the sum is evaluated in the same order for z and for y. The
    finiteness check therefore counts in integers, a reduction that vectorises without ``reassoc``.
    """

    def fused_term(center, scale, offset, count, table, w, slope, zs, targets, weights, partial_h,
                   partial_dh, hess_min, grads, hessians):
        nonfinite = 0
        for i in range(zs.shape[0]):
            v, dv, _ = term_values(center, scale, offset, count, table, zs[i])
            g = (partial_h[i] + slope * zs[i] + w * v) - targets[i]
            hs = max(partial_dh[i] + slope + w * dv, hess_min)
            if weights is not None:
                g *= weights[i]
                hs *= weights[i]
            grads[i] = g
            hessians[i] = hs
            nonfinite += zs[i] - zs[i] != 0.0  # inf - inf and NaN - NaN are NaN
        return nonfinite

    return njit(cache=True, fastmath=FASTMATH - {"reassoc"}, error_model="numpy")(fused_term)


_fused_identity, _fused_sigmoid, _fused_sinh, _fused_exp, _fused_piecewise = map(_fused_term_loop, _TERM_VALUES)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def scalar_tile(curved, slope, table, zs, targets, weights, partial_h, partial_dh, hess_min, grads, hessians):
    """The fused loop (``_fused_term_loop``) for the last row of ``curved``, the link's terms other than
    identities, whose weights add up to ``slope``."""
    if curved.shape[0] == 0:
        return _fused_identity(0.0, 1.0, 0, 0, table, 0.0, slope, zs, targets, weights, partial_h, partial_dh,
                               hess_min, grads, hessians)
    last = curved.shape[0] - 1
    kind = int(curved[last, 0])
    arguments = (
        curved[last, 2], curved[last, 3], int(curved[last, 4]), int(curved[last, 5]), table, curved[last, 1],
        slope, zs, targets, weights, partial_h, partial_dh, hess_min, grads, hessians,
    )
    if kind == KIND_SIGMOID:
        return _fused_sigmoid(*arguments)
    if kind == KIND_SINH:
        return _fused_sinh(*arguments)
    if kind == KIND_EXP:
        return _fused_exp(*arguments)
    return _fused_piecewise(*arguments)


def _scalar_grad_hess_kernel(components, table, z, target_h, weight, hess_min, grad_out, hess_out):
    """grad = w (h(z) - target_h), hess = w max(h'(z), hess_min); ``weight=None`` means 1.

    Returns the number of scores that are not finite (when not 0, the outputs are meaningless).

    Tile by tile, the link's identity terms become one slope, its other terms but the last go to scratch
    arrays, and the last is evaluated in the loop that reads the targets and writes the outputs, so that
    the memory traffic overlaps the arithmetic: a second pass only to write the outputs waited on memory
    (measured at 10^7 rows: the serial sigmoid kernel took 4.7 ns per sample that way, a first fused
    version 2.1 ns).
    """
    n = z.shape[0]
    slope = 0.0
    n_curved = 0
    for k in range(components.shape[0]):
        if int(components[k, 0]) == KIND_IDENTITY:
            slope += components[k, 1]
        else:
            n_curved += 1
    curved = np.empty((n_curved, components.shape[1]))
    n_curved = 0
    for k in range(components.shape[0]):
        if int(components[k, 0]) != KIND_IDENTITY:
            curved[n_curved] = components[k]
            n_curved += 1
    nonfinite = 0
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        h = np.zeros(TILE)  # stays 0 unless more than one term is curved
        dh = np.zeros(TILE)
        chunk_nonfinite = 0
        for start in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n), TILE):
            stop = min(start + TILE, n)
            if n_curved > 1:
                link_values_range(curved[:-1], table, z, start, stop, h, dh, None, start)
            zs = z[start:stop]
            targets = target_h[start:stop]
            grads = grad_out[start:stop]
            hessians = hess_out[start:stop]
            # None or not is known at compile time: only the variant in use is compiled
            if weight is not None:
                chunk_nonfinite += scalar_tile(curved, slope, table, zs, targets, weight[start:stop], h, dh,
                                               hess_min, grads, hessians)
            else:
                chunk_nonfinite += scalar_tile(curved, slope, table, zs, targets, None, h, dh, hess_min, grads,
                                               hessians)
        nonfinite += chunk_nonfinite
    return nonfinite


scalar_grad_hess_parallel, scalar_grad_hess_serial = _compile_both(_scalar_grad_hess_kernel)


# ---------------------------------------------------------------- composite softmax (listwise, multi-class)


@register_jitable(inline="always")
def _largest(values, start, size):
    """max(values[start:start + size]) for unsigned start and size, in four independent running maxima:
    LLVM does not vectorise a floating-point maximum, and one running maximum waits on each comparison
    (measured: 4x slower)."""
    a = b = c = d = -np.inf
    stop = start + size
    i = start
    while i + np.uint64(4) <= stop:  # uint64 and int64 would make float64
        a = max(a, values[i])
        b = max(b, values[i + np.uint64(1)])
        c = max(c, values[i + np.uint64(2)])
        d = max(d, values[i + np.uint64(3)])
        i += np.uint64(4)
    while i < stop:
        a = max(a, values[i])
        i += np.uint64(1)
    return max(max(a, b), max(c, d))


@register_jitable
def _softmax_limit(phi, start, size, top):
    """Rewrites phi[start:start + size] to ``softmax_exponent(phi, top)`` for an infinite ``top`` (where
    phi - top is NaN), so that the exponential loop, unchanged, gives the softmax's limit; returns
    the new maximum, 0."""
    for i in range(size):
        phi[start + i] = softmax_exponent(phi[start + i], top)
    return 0.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_outputs(z, q, group_ptr, first, last, weight, phi, dphi, d2phi, hess_min, grad_out, hess_out):
    """Gradients and hessians of groups first..last - 1, whose link values are in phi, dphi, d2phi from
    index 0 (d2phi None: Gauss-Newton). ``weight=None`` means unweighted. Returns the number of scores
    that are not finite.

    Indices are unsigned: Numba then adds no wrap-around select for negative indices (which keeps
    LLVM from vectorising), and the groups need no slices, whose reference counting weighs on small
    groups (measured side by side: multi-class with k = 10 about 1.8x faster than with slices).
    """
    block_start = np.uint64(group_ptr[first])
    nonfinite = 0
    for group in range(first, last):
        start = np.uint64(group_ptr[group])
        size = np.uint64(group_ptr[group + 1]) - start
        local = start - block_start  # the group's first row in phi, dphi, d2phi
        top = _largest(phi, local, size)
        if top - top != 0.0:  # rare, tested once per group: phi = +inf somewhere, or -inf everywhere
            top = _softmax_limit(phi, local, size, top)
        total = 0.0
        q_sum = 0.0
        for i in range(size):
            e = fast_exp(phi[local + i] - top)
            phi[local + i] = e
            total += e
            # read here, where the arithmetic hides the wait for memory, not in the next loop
            q_sum += q[start + i]
        inverse_total = 1.0 / total
        for i in range(size):
            row = start + i
            nonfinite += z[row] - z[row] != 0.0  # inf - inf and NaN - NaN are NaN
            p = phi[local + i] * inverse_total
            d = dphi[local + i]
            gr = d * (p - q[row])
            hs = d * d * p * (1.0 - p)
            if d2phi is not None:
                hs += d2phi[local + i] * (p - q[row])
            hs = max(hs, hess_min)
            if weight is not None:
                gr *= weight[row]
                hs *= weight[row]
            grad_out[row] = gr
            hess_out[row] = hs
        if size < 2 or q_sum <= 0.0:
            # rare, so tested after the loop: the targets are read once
            for i in range(size):
                grad_out[start + i] = 0.0
                hess_out[start + i] = 0.0
    return nonfinite


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def softmax_block(components, table, z, q, group_ptr, first, last, weight, phi, dphi, d2phi, hess_min,
                  grad_out, hess_out):
    """Link values of groups first..last - 1 in one call, then their outputs (``_softmax_outputs``);
    an empty ``weight`` means unweighted."""
    start = group_ptr[first]
    link_values_range(components, table, z, start, group_ptr[last], phi, dphi, d2phi, start)
    if weight.shape[0] == 0:
        return _softmax_outputs(z, q, group_ptr, first, last, None, phi, dphi, d2phi, hess_min, grad_out,
                                hess_out)
    return _softmax_outputs(z, q, group_ptr, first, last, weight, phi, dphi, d2phi, hess_min, grad_out,
                            hess_out)


def _softmax_grad_hess_kernel(components, table, z, q, group_ptr, weight, exact, hess_min, grad_out, hess_out):
    """Per group: p = softmax(phi(z)), grad = w phi'(p - q), hess = w phi'^2 p (1 - p) [+ phi''(p - q)].

    A group of one item, or whose target q sums to 0, gets zero gradient and zero hessian. Returns the
    number of scores that are not finite (when not 0, the outputs are meaningless).

    The work goes in blocks of consecutive groups (up to ``BLOCK_ROWS`` rows, or one larger group): the
    link is evaluated over a block in one call, and the branches on ``exact`` and on the weights are
    taken once per block, at compile time, because a test inside a loop keeps it from vectorising.
    """
    n_groups = group_ptr.shape[0] - 1
    largest = 0
    for g in range(n_groups):
        largest = max(largest, group_ptr[g + 1] - group_ptr[g])
    block_rows = max(largest, BLOCK_ROWS)
    nonfinite = 0
    for chunk in prange((n_groups + GROUPS_PER_CHUNK - 1) // GROUPS_PER_CHUNK):
        scratch = np.empty((3, block_rows))
        chunk_nonfinite = 0
        first = chunk * GROUPS_PER_CHUNK
        chunk_end = min((chunk + 1) * GROUPS_PER_CHUNK, n_groups)
        while first < chunk_end:
            last = first + 1
            while last < chunk_end and group_ptr[last + 1] - group_ptr[first] <= block_rows:
                last += 1
            if exact:
                chunk_nonfinite += softmax_block(components, table, z, q, group_ptr, first, last, weight,
                                                 scratch[0], scratch[1], scratch[2], hess_min, grad_out,
                                                 hess_out)
            else:
                chunk_nonfinite += softmax_block(components, table, z, q, group_ptr, first, last, weight,
                                                 scratch[0], scratch[1], None, hess_min, grad_out, hess_out)
            first = last
        nonfinite += chunk_nonfinite
    return nonfinite


def _softmax_loss_kernel(components, table, z, q, group_ptr, phi_work, dphi_work, d2phi_work, out):
    """Per group: KL(q || softmax(phi(z))) = sum_i q_i (log q_i - log p_i); 0 for degenerate groups."""
    for g in prange(group_ptr.shape[0] - 1):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        q_sum = 0.0
        for i in range(start, stop):
            q_sum += q[i]
        if stop - start < 2 or q_sum <= 0.0:
            out[g] = 0.0
            continue
        evaluate_link(components, table, z, start, stop, phi_work, dphi_work, d2phi_work)
        top = -np.inf
        for i in range(start, stop):
            top = max(top, phi_work[i])
        if top - top != 0.0:
            top = _softmax_limit(phi_work, start, stop - start, top)
        total = 0.0
        for i in range(start, stop):
            total += math.exp(phi_work[i] - top)
        log_total = math.log(total)
        loss = 0.0
        for i in range(start, stop):
            if q[i] > 0.0:
                log_p = phi_work[i] - top - log_total
                loss += q[i] * (math.log(q[i]) - log_p)
        out[g] = max(loss, 0.0)


def _group_softmax_kernel(components, table, s, group_ptr, out):
    """Per group: out = softmax(phi(s)), the target distribution of distillation from teacher scores."""
    for g in prange(group_ptr.shape[0] - 1):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        top = -np.inf
        for i in range(start, stop):
            out[i] = link_values(components, table, s[i])[0]
            top = max(top, out[i])
        if top - top != 0.0:
            top = _softmax_limit(out, start, stop - start, top)
        total = 0.0
        for i in range(start, stop):
            out[i] = math.exp(out[i] - top)
            total += out[i]
        for i in range(start, stop):
            out[i] /= total


softmax_grad_hess_parallel, softmax_grad_hess_serial = _compile_both(_softmax_grad_hess_kernel)
group_softmax_parallel, group_softmax_serial = _compile_both(_group_softmax_kernel)
softmax_loss_parallel, softmax_loss_serial = _compile_both(_softmax_loss_kernel)


# ---------------------------------------------------------------- pairwise (contrastive)


@register_jitable
def group_pairs(phi, relevance, pairs_per_item):
    """The pairs (i, j), relevance[i] > relevance[j], of one group, as two index arrays.

    ``pairs_per_item == 0``: every such pair. Otherwise each item i is paired with the
    ``pairs_per_item`` lower-relevance items of highest transformed score (the hardest ones), so a
    group of n items has at most n * pairs_per_item pairs.
    """
    n = phi.shape[0]
    if pairs_per_item == 0:
        count = 0
        for i in range(n):
            for j in range(n):
                if relevance[i] > relevance[j]:
                    count += 1
        first = np.empty(count, np.int64)
        second = np.empty(count, np.int64)
        count = 0
        for i in range(n):
            for j in range(n):
                if relevance[i] > relevance[j]:
                    first[count] = i
                    second[count] = j
                    count += 1
        return first, second
    order = np.argsort(-phi, kind="mergesort")
    levels = np.unique(relevance)
    n_levels = levels.shape[0]
    level_of = np.searchsorted(levels, relevance)
    # items grouped by relevance level (ascending), each level in descending score order
    level_start = np.zeros(n_levels + 1, np.int64)
    for i in range(n):
        level_start[level_of[i] + 1] += 1
    for k in range(n_levels):
        level_start[k + 1] += level_start[k]
    fill = level_start[:-1].copy()
    by_level = np.empty(n, np.int64)
    for r in range(n):
        i = order[r]
        by_level[fill[level_of[i]]] = i
        fill[level_of[i]] += 1
    rank = np.empty(n, np.int64)
    for r in range(n):
        rank[order[r]] = r
    k = pairs_per_item
    max_pairs = 0
    for lv in range(1, n_levels):
        max_pairs += (level_start[lv + 1] - level_start[lv]) * min(k, level_start[lv])
    first = np.empty(max_pairs, np.int64)
    second = np.empty(max_pairs, np.int64)
    partners = np.empty(k, np.int64)
    merged = np.empty(k, np.int64)
    n_partners = 0
    count = 0
    for lv in range(1, n_levels):
        # partners of level lv: the k best-scored items below it, merged from the partners of
        # level lv - 1 and the best-scored items of level lv - 1 itself
        a = 0
        b = level_start[lv - 1]
        b_end = level_start[lv]
        m = 0
        while m < k and (a < n_partners or b < b_end):
            if b >= b_end or (a < n_partners and rank[partners[a]] < rank[by_level[b]]):
                merged[m] = partners[a]
                a += 1
            else:
                merged[m] = by_level[b]
                b += 1
            m += 1
        n_partners = m
        partners[:m] = merged[:m]
        for t in range(level_start[lv], level_start[lv + 1]):
            for s in range(n_partners):
                first[count] = by_level[t]
                second[count] = partners[s]
                count += 1
    return first, second


def _pairwise_grad_hess_kernel(
    components, table, z, relevance, group_ptr, weight, pairs_per_item, exact, hess_min,
    phi_work, dphi_work, d2phi_work, gphi_work, hphi_work, pairs_work, grad_out, hess_out,
):
    """Per pair i > j: loss = softplus(-(phi(z_i) - phi(z_j))); chain rule through phi per item."""
    weighted = weight.shape[0] > 0
    for g in prange(group_ptr.shape[0] - 1):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        evaluate_link(components, table, z, start, stop, phi_work, dphi_work, d2phi_work)
        for i in range(start, stop):
            gphi_work[i] = 0.0
            hphi_work[i] = 0.0
            pairs_work[i] = 0.0
        first, second = group_pairs(phi_work[start:stop], relevance[start:stop], pairs_per_item)
        for t in range(first.shape[0]):
            i = start + first[t]
            j = start + second[t]
            margin = pair_margin(phi_work[i], phi_work[j])
            s = sigmoid_call(-margin)
            gphi_work[i] -= s
            gphi_work[j] += s
            c = pair_curvature(margin)
            hphi_work[i] += c
            hphi_work[j] += c
            pairs_work[i] += 1.0
            pairs_work[j] += 1.0
        for i in range(start, stop):
            if pairs_work[i] == 0.0:
                grad_out[i] = 0.0
                hess_out[i] = 0.0
                continue
            dphi = dphi_work[i]
            gr = dphi * gphi_work[i]
            hs = dphi * dphi * hphi_work[i]
            if exact:
                hs += d2phi_work[i] * gphi_work[i]
            hs = max(hs, hess_min)
            if weighted:
                gr *= weight[i]
                hs *= weight[i]
            grad_out[i] = gr
            hess_out[i] = hs


def _pairwise_loss_kernel(
    components, table, z, relevance, group_ptr, pairs_per_item, phi_work, dphi_work, d2phi_work, out
):
    for g in prange(group_ptr.shape[0] - 1):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        evaluate_link(components, table, z, start, stop, phi_work, dphi_work, d2phi_work)
        first, second = group_pairs(phi_work[start:stop], relevance[start:stop], pairs_per_item)
        loss = 0.0
        for t in range(first.shape[0]):
            loss += softplus(-pair_margin(phi_work[start + first[t]], phi_work[start + second[t]]))
        out[g] = loss


pairwise_grad_hess_parallel, pairwise_grad_hess_serial = _compile_both(_pairwise_grad_hess_kernel)
pairwise_loss_parallel, pairwise_loss_serial = _compile_both(_pairwise_loss_kernel)


def pick(parallel_kernel, serial_kernel, parallel):
    """The parallel or the serial compilation."""
    return parallel_kernel if parallel else serial_kernel
