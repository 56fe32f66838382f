"""Numba kernels: per-sample gradients and hessians, parallel over samples or over query groups.

Inputs are assumed valid (``selboost.losses`` validates at the boundary). Arithmetic is float64; the
output arrays may be float32 (what the engines want) or float64. Every kernel exists twice, compiled
from one Python function: ``parallel=True`` (``prange`` over samples or groups) and a serial one,
because the engines' own OpenMP pools run on the same cores and a parallel kernel can slow a
boosting round down (see ``benchmarks/RESULTS.md``).

Compilation is paid at the first call, so only what a fit uses is compiled: the gradient and loss
kernels over links (``scalar_grad_hess``, ``softmax_grad_hess``, ``pairwise_grad_hess``, ...) are
made per link, for the term kinds it has, the variant in use (serial or parallel, weighted or not,
exact hessian or not) and the dtypes of the call; the loops of the other kinds are not compiled
(compiling every kind's loop into every kernel took 12-18 s on 2 cores). A variant is a copy of the
kernel's Python function whose globals name the loops and flags it needs (``_variant``), under a name
of its own, so that Numba's on-disk cache keeps it apart.

``fastmath`` is a fixed set of flags that allows contraction and reassociation but not ``nnan`` or
``ninf``: inputs are finite, and the kernels must never assume away an overflow. ``error_model="numpy"``:
with Numba's default ("python") every float division checks for a zero divisor and may raise, and that
branch keeps LLVM from vectorising any loop that divides (measured: 2-3x slower serial kernels).

The gradient kernels evaluate the link over a tile of samples (scalar) or over a group, term by term
(``link_values_range_for``), into small scratch arrays that stay in the L1 cache, and check on
the way that the scores are finite: they return the number of scores z with z - z != 0 (NaN exactly
when z is NaN or infinite), so that the caller needs no separate pass over the data.
"""

import hashlib
import math
import pickle
import threading
import types
from pathlib import Path

import numpy as np
from numba import njit, prange
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import register_jitable

from selboost import _elementwise
from selboost._elementwise import (
    KIND_EXP,
    KIND_IDENTITY,
    KIND_PIECEWISE,
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

_elementwise.register_with_numba()

FASTMATH = {"contract", "reassoc", "arcp", "nsz"}

#: samples per tile of the scalar kernel: two float64 scratch arrays of this length stay in L1
TILE = 1024
#: samples per parallel chunk of the scalar kernel, query groups per chunk of the softmax kernel: one
#: scratch allocation per chunk (one per tile made the serial kernel 1.7x slower)
CHUNK = 16 * TILE
GROUPS_PER_CHUNK = 64
#: rows of consecutive query groups whose link values the softmax kernel computes in one call
BLOCK_ROWS = 1024


#: the sources compiled into these kernels: the per-element math is inlined from _elementwise.py
_SOURCES = ("_kernels.py", "_elementwise.py")
_SOURCE_DIGEST = hashlib.sha256(
    b"".join((Path(__file__).with_name(name)).read_bytes() for name in _SOURCES)
).hexdigest()


class _KeyedCacheFile(IndexDataCacheFile):
    """Numba's index and data files of one cached function, with each data file named after the
    entry it holds, and holding that entry's key.

    Numba numbers a function's data files in the order entries are added to its index. Two processes
    that add different entries at once (Dask workers, parallel test runs, two fits on one machine:
    another signature, or another link kind of a kernel whose variants share a file) both read the
    index without the other's entry and both take number 1; the index then names one entry's key and
    the file holds the other's machine code, which every later process runs for the wrong dtype or
    link kind. Named by a hash of its key, no two entries share a data file, and one whose stored key
    differs from the one asked for is not loaded: a race can then only lose an index entry, which
    costs a recompilation."""

    def save(self, key, data):
        base = self._index_name[:-len(".nbi")]
        data_name = f"{base}.{_key_hash(key)}.nbc"
        self._save_data(data_name, (key, data))  # the data first: an index never names a missing file
        overloads = self._load_index()
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)

    def load(self, key):
        data_name = self._load_index().get(key)
        if data_name is None:
            return None
        try:
            stored = self._load_data(data_name)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
        if not (isinstance(stored, tuple) and len(stored) == 2 and stored[0] == key):
            return None  # a data file of Numba's own numbering, or of another entry
        return stored[1]


def _key_hash(key):
    return hashlib.sha256(pickle.dumps(key, protocol=4)).hexdigest()[:20]


class _SourceCache(FunctionCache):
    """Numba's on-disk cache, keyed on the contents of every source file compiled into the kernels,
    with one data file per entry (``_KeyedCacheFile``).

    Numba keys a cached function on its own file's time stamp and its own bytecode only: an edit of
    the per-element math in ``_elementwise.py`` would otherwise run the old machine code."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _KeyedCacheFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                           source_stamp=self._impl.locator.get_source_stamp())

    def _index_key(self, sig, codegen):
        return super()._index_key(sig, codegen) + (_SOURCE_DIGEST,)


def _jit(function, **options):
    """``njit(cache=True, fastmath=FASTMATH, error_model="numpy", **options)(function)``, cached by
    ``_SourceCache``."""
    options = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy", **options}
    dispatcher = njit(**options)(function)
    dispatcher._cache = _SourceCache(dispatcher.py_func)
    return dispatcher


def _renamed(function, name, **bindings):
    """A copy of ``function`` under another name, with the globals ``bindings`` rebound (to other
    compiled functions, or to flags that Numba's branch pruning resolves at compile time). Numba's
    on-disk cache is keyed on the function's qualified name and bytecode, not on ``parallel=`` or on
    its globals, so every variant has a name of its own."""
    namespace = function.__globals__
    if bindings:
        namespace = dict(namespace, **bindings)
    copy = types.FunctionType(function.__code__, namespace, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return copy


def _compile_both(function):
    """(parallel, serial) compilations of one kernel source, each compiled at its first call."""
    parallel = _jit(_renamed(function, function.__qualname__ + "_parallel"), parallel=True)
    serial = _jit(_renamed(function, function.__qualname__ + "_serial"), parallel=False)
    return parallel, serial


_KIND_NAMES = {KIND_IDENTITY: "identity", KIND_SIGMOID: "sigmoid", KIND_SINH: "sinh", KIND_EXP: "exp",
               KIND_PIECEWISE: "piecewise"}
_VARIANTS = {}
_VARIANTS_LOCK = threading.RLock()


def _variant(function, name, options, **bindings):
    """The kernel ``function`` compiled under ``name`` with ``bindings`` (see ``_renamed``), made once
    per process; Numba compiles it at its first call, or loads it from the on-disk cache."""
    dispatcher = _VARIANTS.get(name)
    if dispatcher is None:
        with _VARIANTS_LOCK:
            dispatcher = _VARIANTS.get(name)
            if dispatcher is None:
                dispatcher = _VARIANTS[name] = _jit(_renamed(function, name, **bindings), **options)
    return dispatcher


def _link_kinds(components):
    """The term kinds of a packed link, in order, as Python ints."""
    return tuple(int(kind) for kind in components[:, 0])


def _by_kinds(factory):
    """``factory(components, *options)``, remembered per sequence of term kinds and options: the
    kernel of every later call with such a link is one dictionary look-up away."""
    made = {}

    def kernel_for(components, *options):
        key = (components[:, 0].tobytes(), options)
        kernel = made.get(key)
        if kernel is None:
            kernel = made[key] = factory(components, *options)
        return kernel

    kernel_for.__name__ = factory.__name__
    kernel_for.__doc__ = factory.__doc__
    return kernel_for


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
    return _jit(add_term)


_add_identity, _add_sigmoid, _add_sinh, _add_exp, _add_piecewise = map(_add_term_loop, _TERM_VALUES)
_ADD_TERM = dict(zip((KIND_IDENTITY, KIND_SIGMOID, KIND_SINH, KIND_EXP, KIND_PIECEWISE),
                     (_add_identity, _add_sigmoid, _add_sinh, _add_exp, _add_piecewise)))


def _link_values_range(components, table, z, start, stop, h, dh, d2h, base):
    """(h, h', h'') of the whole link at z[start:stop], written to h[i - base], dh[i - base], d2h[i - base];
    ``d2h=None`` skips h''.

    Term by term, each term's loop compiled for its kind so that LLVM vectorises it (the per-element
    ``link_values`` dispatches on the kind inside the loop, which does not vectorise). Whether h'' is
    wanted is decided at compile time: Numba compiles a separate version for ``d2h=None`` and prunes
    the ``is None`` branches, because a run-time test inside a loop kept it from vectorising (measured:
    2.3x slower). The loops run over slices from index 0: an index that might be negative gets Numba's
    wrap-around select, and then LLVM cannot see that the accesses are consecutive.

    Compiled per set of term kinds (``link_values_range_for``): the loop of a kind the link does not use
    is neither compiled nor called.
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


#: bound, in each kernel variant that evaluates a link over a slice, to ``link_values_range_for(kinds)``
link_values_range = None


def link_values_range_for(kinds):
    """``_link_values_range`` compiled for links whose terms are of ``kinds`` only: the names of the
    other kinds' loops are bound to one of these, so that no other loop is compiled (and none is
    called: the kernel is chosen from the very link it evaluates)."""
    present = sorted(set(kinds))
    bindings = {f"_add_{_KIND_NAMES[kind]}": _ADD_TERM[kind if kind in present else present[0]]
                for kind in _ADD_TERM}
    name = "link_values_range." + "_".join(_KIND_NAMES[kind] for kind in present)
    return _variant(_link_values_range, name, {}, **bindings)


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

    return _jit(fused_term, fastmath=FASTMATH - {"reassoc"})


_FUSED_TERM = dict(zip((KIND_IDENTITY, KIND_SIGMOID, KIND_SINH, KIND_EXP, KIND_PIECEWISE),
                       map(_fused_term_loop, _TERM_VALUES)))

#: bound, in each variant of ``_scalar_chunk``, to the fused loop of the link's last curved term, and to
#: whether the link has curved terms before that one
_fused_last = None
_OTHER_CURVED = True


def _scalar_chunk(curved, slope, table, z, target_h, weight, hess_min, grad_out, hess_out, chunk):
    """The tiles of one chunk of the scalar kernel (``_scalar_grad_hess_kernel``): the curved terms but the
    last into scratch, then the fused loop (``_fused_term_loop``) of the last; no curved term: the
    identity's loop, adding nothing. Returns the number of scores that are not finite."""
    n = z.shape[0]
    n_curved = curved.shape[0]
    center, scale, offset, count, w = 0.0, 1.0, 0, 0, 0.0
    if n_curved > 0:
        last = n_curved - 1
        center, scale, offset, count, w = (curved[last, 2], curved[last, 3], int(curved[last, 4]),
                                           int(curved[last, 5]), curved[last, 1])
    h = np.zeros(TILE)  # stays 0 unless more than one term is curved
    dh = np.zeros(TILE)
    nonfinite = 0
    for start in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n), TILE):
        stop = min(start + TILE, n)
        if _OTHER_CURVED:  # resolved at compile time: a variant for a link with one curved term has no call
            if n_curved > 1:
                link_values_range(curved[:-1], table, z, start, stop, h, dh, None, start)
        zs = z[start:stop]
        targets = target_h[start:stop]
        grads = grad_out[start:stop]
        hessians = hess_out[start:stop]
        # None or not is known at compile time: only the variant in use is compiled
        if weight is not None:
            nonfinite += _fused_last(center, scale, offset, count, table, w, slope, zs, targets, weight[start:stop],
                                     h, dh, hess_min, grads, hessians)
        else:
            nonfinite += _fused_last(center, scale, offset, count, table, w, slope, zs, targets, None, h, dh,
                                     hess_min, grads, hessians)
    return nonfinite


#: bound, in each variant of ``_scalar_grad_hess_kernel``, to its variant of ``_scalar_chunk``
scalar_chunk = None


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
            # element by element: a row assignment compiles Numba's shape-mismatch error message (seconds)
            for c in range(components.shape[1]):
                curved[n_curved, c] = components[k, c]
            n_curved += 1
    nonfinite = 0
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        # one call per chunk: the parallel loop's body stays small, which keeps its compilation short
        nonfinite += scalar_chunk(curved, slope, table, z, target_h, weight, hess_min, grad_out, hess_out, chunk)
    return nonfinite


def _variant_name(function, parallel, *parts):
    return ".".join([function.__name__ + ("_parallel" if parallel else "_serial"), *parts])


@_by_kinds
def scalar_grad_hess(components, parallel):
    """The scalar kernel (``_scalar_grad_hess_kernel``) for links with the term kinds of ``components``:
    only the fused loop of the last curved kind and the range loops of the other curved kinds are
    compiled, and only for ``parallel`` (True: prange over chunks)."""
    curved = [kind for kind in _link_kinds(components) if kind != KIND_IDENTITY]
    last = curved[-1] if curved else KIND_IDENTITY
    others = sorted(set(curved[:-1]))
    parts = [_KIND_NAMES[last], "_".join(_KIND_NAMES[kind] for kind in others) or "none"]
    bindings = {"_fused_last": _FUSED_TERM[last], "_OTHER_CURVED": bool(others)}
    if others:
        bindings["link_values_range"] = link_values_range_for(others)
    # one chunk function for both kernels: the serial kernel and the parallel one share its compilation
    chunk = _variant(_scalar_chunk, ".".join(["scalar_chunk", *parts]), {}, **bindings)
    return _variant(_scalar_grad_hess_kernel, _variant_name(_scalar_grad_hess_kernel, parallel, *parts),
                    {"parallel": parallel}, scalar_chunk=chunk)


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


@_jit
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


#: bound per kernel variant: whether rows are weighted (``weight`` not empty), the exact hessian wanted,
#: the block's function
_WEIGHTED = True
_EXACT = True
softmax_block = None


def _softmax_block(components, table, z, q, group_ptr, first, last, weight, phi, dphi, d2phi, hess_min,
                   grad_out, hess_out):
    """Link values of groups first..last - 1 in one call, then their outputs (``_softmax_outputs``);
    ``_WEIGHTED`` False: unweighted (``weight`` empty)."""
    start = group_ptr[first]
    link_values_range(components, table, z, start, group_ptr[last], phi, dphi, d2phi, start)
    if _WEIGHTED:
        return _softmax_outputs(z, q, group_ptr, first, last, weight, phi, dphi, d2phi, hess_min, grad_out,
                                hess_out)
    return _softmax_outputs(z, q, group_ptr, first, last, None, phi, dphi, d2phi, hess_min, grad_out,
                            hess_out)


def _softmax_grad_hess_kernel(components, table, z, q, group_ptr, weight, hess_min, grad_out, hess_out):
    """Per group: p = softmax(phi(z)), grad = w phi'(p - q), hess = w phi'^2 p (1 - p) [+ phi''(p - q)].

    A group of one item, or whose target q sums to 0, gets zero gradient and zero hessian. Returns the
    number of scores that are not finite (when not 0, the outputs are meaningless).

    The work goes in blocks of consecutive groups (up to ``BLOCK_ROWS`` rows, or one larger group): the
    link is evaluated over a block in one call, and the branches on the exact hessian (``_EXACT``) and on
    the weights are taken at compile time, because a test inside a loop keeps it from vectorising:
    ``softmax_grad_hess`` compiles the variant in use only.
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
            if _EXACT:
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
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, 0)
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


group_softmax_parallel, group_softmax_serial = _compile_both(_group_softmax_kernel)


def link_kernel(function, components, parallel, *parts, **bindings):
    """The kernel ``function`` for links with the term kinds of ``components`` (its ``link_values_range``
    bound to ``link_values_range_for`` them) and ``bindings``, named by them and by ``parts``."""
    kinds = sorted(set(_link_kinds(components)))
    name = _variant_name(function, parallel, "_".join(_KIND_NAMES[kind] for kind in kinds), *parts)
    return _variant(function, name, {"parallel": parallel}, link_values_range=link_values_range_for(kinds),
                    **bindings)


@_by_kinds
def softmax_grad_hess(components, parallel, weighted, exact):
    """The composite-softmax kernel (``_softmax_grad_hess_kernel``) compiled for the term kinds of
    ``components``, ``parallel`` or serial, weighted or not, the exact hessian or Gauss-Newton."""
    kinds = sorted(set(_link_kinds(components)))
    weights = "weighted" if weighted else "unweighted"
    block = _variant(_softmax_block, ".".join(["softmax_block", *(_KIND_NAMES[k] for k in kinds), weights]), {},
                     link_values_range=link_values_range_for(kinds), _WEIGHTED=weighted)
    return link_kernel(_softmax_grad_hess_kernel, components, parallel, weights,
                       "exact" if exact else "gauss_newton", softmax_block=block, _EXACT=exact)


@_by_kinds
def softmax_loss(components, parallel):
    """``_softmax_loss_kernel`` for the term kinds of ``components``."""
    return link_kernel(_softmax_loss_kernel, components, parallel)


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
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, 0)
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
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, 0)
        first, second = group_pairs(phi_work[start:stop], relevance[start:stop], pairs_per_item)
        loss = 0.0
        for t in range(first.shape[0]):
            loss += softplus(-pair_margin(phi_work[start + first[t]], phi_work[start + second[t]]))
        out[g] = loss


@_by_kinds
def pairwise_grad_hess(components, parallel):
    """``_pairwise_grad_hess_kernel`` for the term kinds of ``components``."""
    return link_kernel(_pairwise_grad_hess_kernel, components, parallel)


@_by_kinds
def pairwise_loss(components, parallel):
    """``_pairwise_loss_kernel`` for the term kinds of ``components``."""
    return link_kernel(_pairwise_loss_kernel, components, parallel)


def pick(parallel_kernel, serial_kernel, parallel):
    """The parallel or the serial compilation."""
    return parallel_kernel if parallel else serial_kernel
