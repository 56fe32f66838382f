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
the way that the scores are finite: they return the sum of ``z * 0``, which is NaN exactly when a score
is NaN or infinite, so that the caller needs no separate pass over the data.
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
    piecewise_values,
    sigmoid_call,
    sigmoid_values,
    sinh_values,
    softplus,
)

FASTMATH = {"contract", "reassoc", "arcp", "nsz"}

#: samples per tile of the scalar kernel: three float64 scratch arrays of this length stay in L1
TILE = 1024
#: samples per parallel chunk of the scalar kernel, query groups per chunk of the softmax kernel: one
#: scratch allocation per chunk (one per tile made the serial kernel 1.7x slower)
CHUNK = 16 * TILE
GROUPS_PER_CHUNK = 64


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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def link_values_range(components, table, z, start, stop, h, dh, d2h, base, second=True):
    """(h, h', h'') of the whole link at z[start:stop], written to h[i - base], dh[i - base], d2h[i - base]
    (d2h left as it is unless ``second``).

    Term by term, each term's loop specialised for its kind so that LLVM vectorises it (the per-element
    ``link_values`` dispatches on the kind inside the loop, which does not vectorise). The loops run
    over slices from index 0: an index that might be negative gets Numba's wrap-around select, and
    then LLVM cannot see that the accesses are consecutive. A compiled function of its own, called
    once per tile or group, not inlined into each kernel: that kept the kernels' compile time down.
    """
    zs = z[start:stop]
    hs = h[start - base:stop - base]
    dhs = dh[start - base:stop - base]
    d2hs = d2h[start - base:stop - base]
    for i in range(zs.shape[0]):
        hs[i] = 0.0
        dhs[i] = 0.0
    if second:
        for i in range(zs.shape[0]):
            d2hs[i] = 0.0
    for k in range(components.shape[0]):
        kind = int(components[k, 0])
        w = components[k, 1]
        center = components[k, 2]
        scale = components[k, 3]
        if kind == KIND_IDENTITY:
            for i in range(zs.shape[0]):
                hs[i] += w * zs[i]
                dhs[i] += w
        elif kind == KIND_SIGMOID:
            for i in range(zs.shape[0]):
                v, dv, d2v = sigmoid_values(center, scale, zs[i])
                hs[i] += w * v
                dhs[i] += w * dv
                if second:
                    d2hs[i] += w * d2v
        elif kind == KIND_SINH:
            for i in range(zs.shape[0]):
                v, dv, d2v = sinh_values(center, scale, zs[i])
                hs[i] += w * v
                dhs[i] += w * dv
                if second:
                    d2hs[i] += w * d2v
        elif kind == KIND_EXP:
            for i in range(zs.shape[0]):
                v, dv, d2v = exp_values(center, scale, zs[i])
                hs[i] += w * v
                dhs[i] += w * dv
                if second:
                    d2hs[i] += w * d2v
        else:
            offset = int(components[k, 4])
            count = int(components[k, 5])
            for i in range(zs.shape[0]):
                v, dv, d2v = piecewise_values(table, offset, count, zs[i])
                hs[i] += w * v
                dhs[i] += w * dv
                if second:
                    d2hs[i] += w * d2v


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


def _scalar_grad_hess_kernel(components, table, z, target_h, weight, hess_min, grad_out, hess_out):
    """grad = w (h(z) - target_h), hess = w max(h'(z), hess_min); an empty ``weight`` means 1.

    Returns 0.0 when every score is finite, NaN otherwise (then the outputs are meaningless).
    """
    n = z.shape[0]
    weighted = weight.shape[0] > 0
    finite_check = 0.0
    if components.shape[0] == 1 and int(components[0, 0]) == KIND_IDENTITY:
        # a scaled identity, the plain squared error: one pass, no scratch
        slope = components[0, 1]
        for i in prange(n):
            finite_check += z[i] * 0.0
            g = slope * z[i] - target_h[i]
            hs = max(slope, hess_min)
            if weighted:
                g *= weight[i]
                hs *= weight[i]
            grad_out[i] = g
            hess_out[i] = hs
        return finite_check
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        h = np.empty(TILE)
        dh = np.empty(TILE)
        d2h = np.empty(TILE)
        chunk_check = 0.0
        for start in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n), TILE):
            stop = min(start + TILE, n)
            link_values_range(components, table, z, start, stop, h, dh, d2h, start, False)
            # slices indexed from 0 (see link_values_range)
            zs = z[start:stop]
            targets = target_h[start:stop]
            grads = grad_out[start:stop]
            hessians = hess_out[start:stop]
            if weighted:
                weights = weight[start:stop]
                for i in range(zs.shape[0]):
                    chunk_check += zs[i] * 0.0
                    grads[i] = weights[i] * (h[i] - targets[i])
                    hessians[i] = weights[i] * max(dh[i], hess_min)
            else:
                for i in range(zs.shape[0]):
                    chunk_check += zs[i] * 0.0
                    grads[i] = h[i] - targets[i]
                    hessians[i] = max(dh[i], hess_min)
        finite_check += chunk_check
    return finite_check


scalar_grad_hess_parallel, scalar_grad_hess_serial = _compile_both(_scalar_grad_hess_kernel)


# ---------------------------------------------------------------- composite softmax (listwise, multi-class)


def _softmax_grad_hess_kernel(components, table, z, q, group_ptr, weight, exact, hess_min, grad_out, hess_out):
    """Per group: p = softmax(phi(z)), grad = w phi'(p - q), hess = w phi'^2 p (1 - p) [+ phi''(p - q)].

    A group of one item, or whose target q sums to 0, gets zero gradient and zero hessian. Returns 0.0
    when every score is finite, NaN otherwise (then the outputs are meaningless).
    """
    weighted = weight.shape[0] > 0
    n_groups = group_ptr.shape[0] - 1
    largest = 0
    for g in range(n_groups):
        largest = max(largest, group_ptr[g + 1] - group_ptr[g])
    finite_check = 0.0
    for chunk in prange((n_groups + GROUPS_PER_CHUNK - 1) // GROUPS_PER_CHUNK):
        scratch = np.empty((3, largest))
        phi = scratch[0]
        dphi = scratch[1]
        d2phi = scratch[2]
        chunk_check = 0.0
        for g in range(chunk * GROUPS_PER_CHUNK, min((chunk + 1) * GROUPS_PER_CHUNK, n_groups)):
            start = group_ptr[g]
            stop = group_ptr[g + 1]
            # slices indexed from 0 (see link_values_range)
            zs = z[start:stop]
            qs = q[start:stop]
            grads = grad_out[start:stop]
            hessians = hess_out[start:stop]
            size = stop - start
            q_sum = 0.0
            for i in range(size):
                chunk_check += zs[i] * 0.0
                q_sum += qs[i]
            if size < 2 or q_sum <= 0.0:
                for i in range(size):
                    grads[i] = 0.0
                    hessians[i] = 0.0
                continue
            link_values_range(components, table, z, start, stop, phi, dphi, d2phi, start, exact)
            top = -np.inf
            for i in range(size):
                top = max(top, phi[i])
            total = 0.0
            for i in range(size):
                e = fast_exp(phi[i] - top)
                phi[i] = e
                total += e
            inverse_total = 1.0 / total
            weights = weight[start:stop]  # empty, and never read, when unweighted
            for i in range(size):
                p = phi[i] * inverse_total
                d = dphi[i]
                gr = d * (p - qs[i])
                hs = d * d * p * (1.0 - p)
                if exact:
                    hs += d2phi[i] * (p - qs[i])
                hs = max(hs, hess_min)
                if weighted:
                    gr *= weights[i]
                    hs *= weights[i]
                grads[i] = gr
                hessians[i] = hs
        finite_check += chunk_check
    return finite_check


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
            margin = phi_work[i] - phi_work[j]
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
            loss += softplus(phi_work[start + second[t]] - phi_work[start + first[t]])
        out[g] = loss


pairwise_grad_hess_parallel, pairwise_grad_hess_serial = _compile_both(_pairwise_grad_hess_kernel)
pairwise_loss_parallel, pairwise_loss_serial = _compile_both(_pairwise_loss_kernel)


def pick(parallel_kernel, serial_kernel, parallel):
    """The parallel or the serial compilation."""
    return parallel_kernel if parallel else serial_kernel
