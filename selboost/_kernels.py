"""Numba kernels: per-sample gradients and hessians, and losses, serial or threaded.

Inputs are assumed valid (``selboost.losses`` validates at the boundary). Arithmetic is float64; the
output arrays may be float32 (what the engines want) or float64.

Each loss kind's per-item step, its degenerate-group rule and its pair selection are per-element
functions of ``selboost._elementwise`` (``chain_rule_step``, ``softmax_item_step``,
``softmax_group_is_degenerate``, ``pairwise_group_grad_hess``), compiled into these loops and into the
CUDA kernels (``selboost.cuda``) alike. Every kernel is a *range function* over rows or query groups
``first..last - 1`` (``_scalar_rows``, ``_softmax_groups``, ``_pairwise_groups``, ...); ``run`` calls it
once over everything, or, for ``n_threads`` other than 1, on chunks from a pool of Python threads (range
functions are compiled ``nogil``, so the threads run them at once). The thread count is given where the
work runs, not by the loss: the engines' own OpenMP pools run on the same cores, and a threaded kernel
can slow a boosting round down (``benchmarks/RESULTS.md``).

Compilation is paid at the first call, so only what a fit uses is compiled: a range function is made
per set of link term kinds and per variant (weighted or not, exact hessian or not), and per dtype of
the call; the loops of the other kinds are not compiled (compiling every kind's loop into every kernel
took 12-18 s on 2 cores). A variant is a copy of the range function whose globals name the loops and
flags it needs, under a name that is a digest of everything it is compiled from (``compiled``).

**The on-disk cache.** Numba names a compiled function's machine code after its qualified name and a
per-process counter, and a library loaded from the cache links to any symbol of that name already
loaded. Two different functions of one name (a closure per link kind, a copy with other globals)
compiled by two processes under the same counter then ran each other's code. Here no two functions
that differ share a name: the digest covers the sources (``_SOURCE_DIGEST``), the function, its compile
options and the identity of every global bound into it (``_identity_of``), and a binding that cannot be
identified is refused. Nothing is compiled with ``parallel=True``: Numba names a parallel loop's inner
function after ``id()`` of a compiler object, which nothing keys, so threads come from Python instead and
a threaded call runs the same cached range function as a serial one. Each cache entry has a data file of
its own (``_KeyedCacheFile``).

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
import itertools
import math
import os
import pickle
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import register_jitable

from selboost import _elementwise
from selboost._elementwise import (
    KIND_EXP,
    KIND_IDENTITY,
    KIND_PIECEWISE,
    KIND_SIGMOID,
    KIND_SINH,
    chain_rule_step,
    exp_values,
    fast_exp,
    group_pairs_visit,
    link_divergence,
    link_primitive,
    link_values,
    pairwise_group_grad_hess,
    piecewise_values,
    sigmoid_values,
    sinh_values,
    softmax_exponent,
    softmax_group_is_degenerate,
    softmax_item_step,
)
from selboost._validation import check_n_threads

_elementwise.register_with_numba()

FASTMATH = {"contract", "reassoc", "arcp", "nsz"}

#: samples per tile of the scalar kernel: two float64 scratch arrays of this length stay in L1
TILE = 1024
#: samples per threaded chunk of the scalar kernel, query groups per chunk of the grouped kernels: one
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


#: the modules whose source is in ``_SOURCE_DIGEST``: a plain function of theirs bound into a kernel is
#: identified by its name
_SOURCE_MODULES = ("selboost._kernels", "selboost._elementwise")


def _identity_of(value):
    """A string that decides what ``value``, bound as a global of a compiled function, compiles to.

    A compiled function's identity is its name, which ``compiled`` makes a digest of everything it
    compiles from; a plain function's is its qualified name, when its module's source is in
    ``_SOURCE_DIGEST`` and it captures nothing. Anything else cannot be identified, and is refused
    rather than cached under a name that might be shared."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__}:{value!r}"
    py_func = getattr(value, "py_func", None)
    if py_func is not None and getattr(py_func, "__module__", None) in _SOURCE_MODULES:
        return f"compiled:{py_func.__qualname__}"
    if (isinstance(value, types.FunctionType) and value.__closure__ is None
            and value.__module__ in _SOURCE_MODULES):
        return f"function:{value.__module__}.{value.__qualname__}"
    raise TypeError(f"cannot identify {value!r} for a compiled function's name")


_COMPILED = {}
_COMPILED_LOCK = threading.RLock()


def compiled(function, *labels, options=None, **bindings):
    """``function`` compiled by Numba with its globals ``bindings`` rebound (to other compiled
    functions, or to flags that Numba's branch pruning resolves at compile time), made once per process.

    Its name is ``function.labels.digest``, the digest over the sources (``_SOURCE_DIGEST``),
    ``function``'s name, the compile options and the identity of every binding. Numba names a
    compiled function's machine-code symbol after its qualified name and a per-process counter, and
    a library loaded from the on-disk cache links to a symbol of that name already loaded by
    another: two functions of one name but different bodies (a closure made per link kind, or a
    copy with other globals) compiled in two processes under the same counter would then run each
    other's code. With the digest in the name, two functions that share a symbol share their code.

    Every function is compiled ``nogil`` (``run`` calls range functions from several threads) and
    cached; ``parallel=True`` is refused, because Numba names a parallel loop's inner function after
    ``id()`` of a compiler object, which nothing keys."""
    if function.__closure__ is not None:
        raise TypeError(f"{function.__qualname__} captures variables: bind them as globals instead")
    options = {"fastmath": FASTMATH, "error_model": "numpy", "nogil": True, **(options or {})}
    if options.get("parallel"):
        raise ValueError("parallel=True compilations cannot be cached safely; run() threads instead")
    identity = repr((
        _SOURCE_DIGEST, function.__module__, function.__qualname__,
        sorted((key, sorted(value) if isinstance(value, (set, frozenset)) else value)
               for key, value in options.items()),
        sorted((key, _identity_of(value)) for key, value in bindings.items()),
    ))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    name = ".".join((function.__name__, *labels, digest))
    dispatcher = _COMPILED.get(name)
    if dispatcher is None:
        with _COMPILED_LOCK:
            dispatcher = _COMPILED.get(name)
            if dispatcher is None:
                namespace = dict(function.__globals__, **bindings) if bindings else function.__globals__
                copy = types.FunctionType(function.__code__, namespace, name, function.__defaults__)
                copy.__qualname__ = name
                copy.__doc__ = function.__doc__
                dispatcher = njit(cache=True, **options)(copy)
                dispatcher._cache = _SourceCache(copy)
                _COMPILED[name] = dispatcher
    return dispatcher


_KIND_NAMES = {KIND_IDENTITY: "identity", KIND_SIGMOID: "sigmoid", KIND_SINH: "sinh", KIND_EXP: "exp",
               KIND_PIECEWISE: "piecewise"}


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


#: bound, in each compilation of ``_add_term`` and ``_scalar_rows``, to one of ``_TERM_VALUES``
term_values = None


def _add_term(center, scale, offset, count, table, w, z, start, stop, h, dh, d2h, base, first):
    """Adds w * (h, h', h'') of one term (``term_values``) over z[start:stop] to h[i - base], dh[i - base]
    and, unless ``d2h`` is None, d2h[i - base]; ``first``: store instead of adding (no zeroing pass)."""
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


_add_identity, _add_sigmoid, _add_sinh, _add_exp, _add_piecewise = (
    compiled(_add_term, _KIND_NAMES[kind], term_values=values) for kind, values in zip(_KIND_NAMES, _TERM_VALUES))
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
    return compiled(_link_values_range, "_".join(_KIND_NAMES[kind] for kind in present), **bindings)


# ---------------------------------------------------------------- execution: serial or threaded
#
# Every kernel is a range function: it computes rows (or query groups) first..last - 1 and returns a count
# (the scores that are not finite, or 0). Serial, it is called once over everything; threaded, each of
# ``n_threads`` Python threads takes the next chunk until none is left and calls the same compiled
# function on it, without the GIL. A threaded call therefore compiles nothing a serial one does not.

_POOL = None
_POOL_PID = None
_POOL_LOCK = threading.Lock()


def usable_cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _thread_pool():
    """The process's pool of kernel threads (made again in a forked child, where the parent's threads
    do not exist)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="selboost-kernel")
            _POOL_PID = os.getpid()
        return _POOL


#: chunks per thread of a threaded call: enough to even out groups of unequal sizes, few enough that
#: handing them out (a few microseconds each, under the GIL) stays small
CHUNKS_PER_THREAD = 8


def run(function, arguments, count, chunk, n_threads=1):
    """``function(*arguments, 0, count)`` on one thread, or on up to ``n_threads`` (-1: every usable
    core) in chunks of at least ``chunk`` units; returns the sum of its results (counts). Each row or
    group is computed by itself, so no result depends on the chunks or the number of threads."""
    n_threads = check_n_threads(n_threads)
    cores = usable_cores()
    n_threads = min(cores if n_threads == -1 else n_threads, cores, (count + chunk - 1) // chunk)
    if n_threads <= 1:
        return function(*arguments, 0, count)
    chunk = max(chunk, -(-count // (CHUNKS_PER_THREAD * n_threads)))
    n_chunks = (count + chunk - 1) // chunk
    next_chunk = itertools.count()  # next() on it is atomic under the GIL

    def work():
        total = 0
        for index in iter(next_chunk.__next__, None):
            if index >= n_chunks:
                return total
            first = index * chunk
            total += function(*arguments, first, min(first + chunk, count))

    helpers = [_thread_pool().submit(work) for _ in range(n_threads - 1)]
    total = work()
    return total + sum(helper.result() for helper in helpers)


# ---------------------------------------------------------------- whole links, row by row


def _link_values_rows(components, table, z, h_out, dh_out, d2h_out, first, last):
    for i in range(first, last):
        h, dh, d2h = link_values(components, table, z[i])
        h_out[i] = h
        dh_out[i] = dh
        d2h_out[i] = d2h
    return 0


def _link_primitive_rows(components, table, z, out, first, last):
    for i in range(first, last):
        out[i] = link_primitive(components, table, z[i])
    return 0


def _link_divergence_rows(components, table, z, y, out, first, last):
    for i in range(first, last):
        out[i] = link_divergence(components, table, z[i], y[i])
    return 0


def link_values_into(components, table, z, h, dh, d2h, n_threads=1):
    """(h, h', h'') of the link at every z into h, dh, d2h."""
    run(compiled(_link_values_rows), (components, table, z, h, dh, d2h), z.shape[0], CHUNK, n_threads)


def link_primitive_into(components, table, z, out, n_threads=1):
    """H(z) of the link at every z into out."""
    run(compiled(_link_primitive_rows), (components, table, z, out), z.shape[0], CHUNK, n_threads)


def link_divergence_into(components, table, z, y, out, n_threads=1):
    """The divergence H(z) - H(y) - (z - y) h(y) of every pair into out."""
    run(compiled(_link_divergence_rows), (components, table, z, y, out), z.shape[0], CHUNK, n_threads)


# ---------------------------------------------------------------- scalar matching loss

#: bound, in each compilation of ``_scalar_rows``: ``term_values`` to the link's last curved term, and
#: whether the link has curved terms before that one (their values come from ``link_values_range``)
_OTHER_CURVED = True


def _scalar_rows(curved, slope, table, z, target_h, weight, hess_min, grad_out, hess_out, first, last):
    """grad = w (h(z) - target_h), hess = w max(h'(z), hess_min) for rows first..last - 1 (``weight=None``:
    unweighted); returns the number of scores that are not finite (when not 0, the outputs are
    meaningless). ``slope``: the link's identity terms together; ``curved``: its other terms.

    Tile by tile, the curved terms but the last go to scratch arrays (``link_values_range``), and the
    last is evaluated in the loop that reads the targets and writes the outputs, so that the memory
    traffic overlaps the arithmetic: a second pass only to write the outputs waited on memory (measured
    at 10^7 rows: the serial sigmoid kernel took 4.7 ns per sample that way, a fused loop 2.1 ns).

    Compiled without ``reassoc``: the targets are this loop's own h(y) (``BoundSelectiveLoss``), and
    grad(y, y) is exactly 0 only if the sum is evaluated in the same order for z and for y. The
    finiteness check therefore counts in integers, a reduction that vectorises without ``reassoc``.
    Whether rows are weighted is resolved at compile time (a test inside the loop keeps it from
    vectorising): Numba compiles ``weight=None`` apart.
    """
    n_curved = curved.shape[0]
    center, scale, offset, count, w = 0.0, 1.0, 0, 0, 0.0
    if n_curved > 0:
        end = n_curved - 1
        center, scale, offset, count, w = (curved[end, 2], curved[end, 3], int(curved[end, 4]),
                                           int(curved[end, 5]), curved[end, 1])
    h = np.zeros(TILE)  # stays 0 unless more than one term is curved
    dh = np.zeros(TILE)
    nonfinite = 0
    for start in range(first, last, TILE):
        stop = min(start + TILE, last)
        if _OTHER_CURVED:  # resolved at compile time: a link with one curved term has no call
            if n_curved > 1:
                link_values_range(curved[:-1], table, z, start, stop, h, dh, None, start)
        # slices from index 0: an index that might be negative gets a wrap-around select, and LLVM then
        # cannot see that the accesses are consecutive
        zs = z[start:stop]
        targets = target_h[start:stop]
        grads = grad_out[start:stop]
        hessians = hess_out[start:stop]
        if weight is not None:
            weights = weight[start:stop]
        for i in range(zs.shape[0]):
            v, dv, _ = term_values(center, scale, offset, count, table, zs[i])
            g = (h[i] + slope * zs[i] + w * v) - targets[i]
            grads[i], hessians[i] = chain_rule_step(1.0, 0.0, g, dh[i] + slope + w * dv, False,
                                                    weights[i] if weight is not None else 1.0, hess_min)
            nonfinite += zs[i] - zs[i] != 0.0  # inf - inf and NaN - NaN are NaN
    return nonfinite


def split_identity_terms(components):
    """(curved, slope): the link's terms other than identities, and the identities' weights summed."""
    kinds = components[:, 0]
    slope = 0.0
    for weight in components[kinds == KIND_IDENTITY, 1]:
        slope += float(weight)
    return np.ascontiguousarray(components[kinds != KIND_IDENTITY]), slope


@_by_kinds
def _scalar_rows_for(components):
    """``_scalar_rows`` for links with the term kinds of ``components``: the last curved term's values
    inline, the range loops of the other curved kinds only."""
    curved = [kind for kind in _link_kinds(components) if kind != KIND_IDENTITY]
    last = curved[-1] if curved else KIND_IDENTITY
    others = sorted(set(curved[:-1]))
    bindings = {"term_values": _TERM_VALUES[last], "_OTHER_CURVED": bool(others)}
    if others:
        bindings["link_values_range"] = link_values_range_for(others)
    labels = (_KIND_NAMES[last], "_".join(_KIND_NAMES[kind] for kind in others) or "none")
    return compiled(_scalar_rows, *labels, options={"fastmath": FASTMATH - {"reassoc"}}, **bindings)


def scalar_grad_hess(terms, table, z, target_h, weight, hess_min, grad_out, hess_out, n_threads=1):
    """The scalar matching loss's gradients and hessians (``_scalar_rows``); returns the number of
    scores that are not finite. ``terms``: (components, *``split_identity_terms(components)``), which
    a bound loss splits once."""
    components, curved, slope = terms
    return run(_scalar_rows_for(components), (curved, slope, table, z, target_h, weight, hess_min, grad_out,
                                              hess_out), z.shape[0], CHUNK, n_threads)


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


#: bound, in each compilation of ``_softmax_groups``: the exact hessian wanted (else Gauss-Newton), and
#: whether rows are weighted (else ``weight`` is empty)
_EXACT = True
_WEIGHTED = True


def _softmax_groups(components, table, z, q, group_ptr, weight, hess_min, grad_out, hess_out, first, last):
    """Per group of first..last - 1: p = softmax(phi(z)), grad = w phi'(p - q), hess = w phi'^2 p (1 - p)
    [+ phi''(p - q)] (``softmax_item_step``); a degenerate group (``softmax_group_is_degenerate``) gets
    zero gradient and hessian. Returns the number of scores that are not finite.

    The groups go in blocks of consecutive groups (up to ``BLOCK_ROWS`` rows, or one larger group): the
    link is evaluated over a block in one call, and the branches on the exact hessian (``_EXACT``) and
    on the weights (``_WEIGHTED``) are taken at compile time, because a test inside a loop keeps it from
    vectorising.
    """
    largest = 0
    for group in range(first, last):
        largest = max(largest, group_ptr[group + 1] - group_ptr[group])
    block_rows = max(largest, BLOCK_ROWS)
    scratch = np.empty((3, block_rows))
    phi, dphi, d2phi = scratch[0], scratch[1], scratch[2]
    nonfinite = 0
    block = first
    while block < last:
        end = block + 1
        while end < last and group_ptr[end + 1] - group_ptr[block] <= block_rows:
            end += 1
        if _EXACT:
            link_values_range(components, table, z, group_ptr[block], group_ptr[end], phi, dphi, d2phi,
                              group_ptr[block])
        else:
            link_values_range(components, table, z, group_ptr[block], group_ptr[end], phi, dphi, None,
                              group_ptr[block])
        # unsigned indices: Numba then adds no wrap-around select for negative indices (which keeps LLVM
        # from vectorising), and the groups need no slices, whose reference counting weighs on small
        # groups (measured side by side: multi-class with k = 10 about 1.8x faster than with slices)
        block_start = np.uint64(group_ptr[block])
        for group in range(block, end):
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
                gr, hs = softmax_item_step(phi[local + i] * inverse_total, q[row], dphi[local + i],
                                           d2phi[local + i] if _EXACT else 0.0, _EXACT,
                                           weight[row] if _WEIGHTED else 1.0, hess_min)
                grad_out[row] = gr
                hess_out[row] = hs
            if softmax_group_is_degenerate(size, q_sum):
                # rare, so tested after the loop: the targets are read once
                for i in range(size):
                    grad_out[start + i] = 0.0
                    hess_out[start + i] = 0.0
        block = end
    return nonfinite


def _softmax_loss_groups(components, table, z, q, group_ptr, phi_work, dphi_work, d2phi_work, out, first, last):
    """Per group: KL(q || softmax(phi(z))) = sum_i q_i (log q_i - log p_i); 0 for degenerate groups."""
    for g in range(first, last):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        q_sum = 0.0
        for i in range(start, stop):
            q_sum += q[i]
        if softmax_group_is_degenerate(stop - start, q_sum):
            out[g] = 0.0
            continue
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, np.int64(0))
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
    return 0


def _group_softmax_groups(components, table, s, group_ptr, out, first, last):
    """Per group: out = softmax(phi(s)), the target distribution of distillation from teacher scores."""
    for g in range(first, last):
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
    return 0


def _for_kinds(function, components, *labels, **bindings):
    """``function`` compiled for links with the term kinds of ``components``: its ``link_values_range``
    bound to ``link_values_range_for`` them."""
    kinds = sorted(set(_link_kinds(components)))
    return compiled(function, "_".join(_KIND_NAMES[kind] for kind in kinds), *labels,
                    link_values_range=link_values_range_for(kinds), **bindings)


@_by_kinds
def _softmax_groups_for(components, weighted, exact):
    return _for_kinds(_softmax_groups, components, "weighted" if weighted else "unweighted",
                      "exact" if exact else "gauss_newton", _WEIGHTED=weighted, _EXACT=exact)


@_by_kinds
def _softmax_loss_groups_for(components):
    return _for_kinds(_softmax_loss_groups, components)


def _groups(group_ptr):
    return group_ptr.shape[0] - 1


def softmax_grad_hess(components, table, z, q, group_ptr, weight, exact, hess_min, grad_out, hess_out,
                      n_threads=1):
    """The composite softmax's gradients and hessians (``_softmax_groups``; ``weight`` empty:
    unweighted); returns the number of scores that are not finite."""
    return run(_softmax_groups_for(components, bool(weight.size), exact),
               (components, table, z, q, group_ptr, weight, hess_min, grad_out, hess_out), _groups(group_ptr),
               GROUPS_PER_CHUNK, n_threads)


def softmax_loss(components, table, z, q, group_ptr, work, out, n_threads=1):
    """Each group's KL(q || softmax(phi(z))) into out; ``work``: float64 scratch of shape (3, n)."""
    run(_softmax_loss_groups_for(components), (components, table, z, q, group_ptr, work[0], work[1], work[2], out),
        _groups(group_ptr), GROUPS_PER_CHUNK, n_threads)


def group_softmax(components, table, s, group_ptr, out, n_threads=1):
    """softmax(phi(s)) of each group into out."""
    run(compiled(_group_softmax_groups), (components, table, s, group_ptr, out), _groups(group_ptr),
        GROUPS_PER_CHUNK, n_threads)


# ---------------------------------------------------------------- pairwise (contrastive)


def _pairwise_groups(components, table, z, relevance, group_ptr, weight, pairs_per_item, exact, hess_min,
                     phi_work, dphi_work, d2phi_work, gphi_work, hphi_work, pairs_work, order_work, grad_out,
                     hess_out, first, last):
    """Per pair i > j of each group: loss = softplus(-(phi(z_i) - phi(z_j))), the chain rule through phi
    per item (``pairwise_group_grad_hess``). ``order_work``: int64 scratch of shape (3, n)."""
    weighted = weight.shape[0] > 0
    for g in range(first, last):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, np.int64(0))
        pairwise_group_grad_hess(phi_work, dphi_work, d2phi_work, relevance, start, stop - start, pairs_per_item,
                                 exact, weight, weighted, hess_min, gphi_work, hphi_work, pairs_work,
                                 order_work[0], order_work[1], order_work[2], grad_out, hess_out)
    return 0


def _pairwise_loss_groups(components, table, z, relevance, group_ptr, pairs_per_item, phi_work, dphi_work,
                          d2phi_work, order_work, out, first, last):
    for g in range(first, last):
        start = group_ptr[g]
        stop = group_ptr[g + 1]
        link_values_range(components, table, z, start, stop, phi_work, dphi_work, d2phi_work, np.int64(0))
        # the pair sums are not accumulated: dphi_work stands in for them
        out[g] = group_pairs_visit(phi_work, relevance, start, stop - start, pairs_per_item, order_work[0],
                                   order_work[1], order_work[2], dphi_work, dphi_work, dphi_work, False)
    return 0


@_by_kinds
def _pairwise_groups_for(components):
    return _for_kinds(_pairwise_groups, components)


@_by_kinds
def _pairwise_loss_groups_for(components):
    return _for_kinds(_pairwise_loss_groups, components)


def pairwise_grad_hess(components, table, z, relevance, group_ptr, weight, k, exact, hess_min, work, order,
                       grad_out, hess_out, n_threads=1):
    """The pairwise loss's gradients and hessians; ``work``: float64 scratch (6, n), ``order``: int64
    scratch (3, n); ``weight`` empty: unweighted."""
    run(_pairwise_groups_for(components),
        (components, table, z, relevance, group_ptr, weight, k, exact, hess_min, work[0], work[1], work[2],
         work[3], work[4], work[5], order, grad_out, hess_out), _groups(group_ptr), GROUPS_PER_CHUNK, n_threads)


def pairwise_loss(components, table, z, relevance, group_ptr, k, work, order, out, n_threads=1):
    """Each group's pairwise loss into out."""
    run(_pairwise_loss_groups_for(components),
        (components, table, z, relevance, group_ptr, k, work[0], work[1], work[2], order, out), _groups(group_ptr),
        GROUPS_PER_CHUNK, n_threads)
