"""What a first fit compiles: only its link's kinds and its variant; importing selboost imports no Numba;
every compiled function's name is a digest of what it is compiled from."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from selboost import Identity, Sigmoid, Sinh
from selboost import _kernels as K
from selboost._elementwise import KIND_EXP, KIND_IDENTITY, KIND_SIGMOID, KIND_SINH


def test_import_selboost_does_not_import_numba():
    code = "import sys, selboost; assert not [m for m in sys.modules if m.startswith('numba')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scalar_kernel_binds_only_the_link_kinds():
    components, _ = (Identity() + 9 * Sigmoid(2.0, 0.5)).packed()
    kernel = K._scalar_rows_for(components)
    assert kernel is K._scalar_rows_for(components)
    names = kernel.py_func.__globals__
    assert names["term_values"] is K._TERM_VALUES[KIND_SIGMOID]
    assert names["_OTHER_CURVED"] is False


def test_range_loops_of_absent_kinds_are_not_bound():
    components, _ = (Identity() + Sinh() + Sinh(1.0, 2.0)).packed()
    names = K.link_values_range_for(K._link_kinds(components)).py_func.__globals__
    assert names["_add_sinh"] is K._ADD_TERM[KIND_SINH]
    for kind in (KIND_SIGMOID, KIND_EXP):
        assert names[f"_add_{K._KIND_NAMES[kind]}"] is K._ADD_TERM[KIND_IDENTITY]


def test_compiled_names_are_digests_of_everything_compiled_in():
    """Two compilations of one function that differ in any binding or option get different names (their
    machine-code symbols then differ too), and the same ones get the same compiled function."""
    first = K.compiled(K._add_term, "sinh", term_values=K._TERM_VALUES[KIND_SINH])
    assert first is K._ADD_TERM[KIND_SINH]
    names = {K._ADD_TERM[kind].py_func.__qualname__ for kind in K._ADD_TERM}
    assert len(names) == len(K._ADD_TERM)
    other_options = K.compiled(K._add_term, "sinh", options={"fastmath": set()}, term_values=K._TERM_VALUES[KIND_SINH])
    assert other_options.py_func.__qualname__ != first.py_func.__qualname__
    assert isinstance(first._cache, K._SourceCache)
    assert "_elementwise.py" in K._SOURCES and len(K._SOURCE_DIGEST) == 64


def test_unidentifiable_bindings_and_closures_are_refused():
    with pytest.raises(TypeError, match="cannot identify"):
        K.compiled(K._add_term, "lambda", term_values=lambda *args: args)
    captured = 1.0

    def closure(x):
        return x + captured

    with pytest.raises(TypeError, match="captures"):
        K.compiled(closure)


def test_a_threaded_call_runs_the_serial_functions_and_compiles_nothing_more():
    """Threads call the cached serial range function on chunks: a threaded call after a serial one
    compiles nothing, gives the same values, and no compilation is ever ``parallel=True`` (Numba names
    a parallel loop's inner function after an object's ``id()``, which no cache key covers)."""
    components, table = Sigmoid().packed()
    z = np.linspace(-3, 3, 3 * K.CHUNK + 7)
    y = z[::-1].copy()
    serial = np.empty_like(z)
    K.link_divergence_into(components, table, z, y, serial)
    signatures = {name: list(d.signatures) for name, d in K._COMPILED.items()}
    threaded = np.empty_like(z)
    K.link_divergence_into(components, table, z, y, threaded, n_threads=2)
    assert {name: list(d.signatures) for name, d in K._COMPILED.items()} == signatures
    assert np.array_equal(threaded, serial)
    assert all(d.targetoptions.get("nogil") and not d.targetoptions.get("parallel")
               for d in K._COMPILED.values())
    with pytest.raises(ValueError, match="parallel"):
        K.compiled(K._link_divergence_rows, options={"parallel": True})


def test_threaded_calls_use_every_chunk_once_whatever_the_thread_count():
    """``run`` hands each chunk to exactly one thread: the non-finite scores counted and every
    gradient are the same for every thread count, including more threads than chunks or cores."""
    link = Sigmoid()
    components, table = link.packed()
    terms = (components, *K.split_identity_terms(components))
    z = np.linspace(-3, 3, 5 * K.CHUNK + 3)
    z[[0, K.CHUNK, 4 * K.CHUNK + 1, z.size - 1]] = np.nan  # one non-finite score in four chunks
    target_h = link.h(np.zeros_like(z))
    results = []
    for n_threads in (1, 2, 3, 64, -1):
        grad, hess = np.empty_like(z), np.empty_like(z)
        count = K.scalar_grad_hess(terms, table, z, target_h, None, 0.0, grad, hess, n_threads=n_threads)
        assert count == 4, n_threads
        results.append((grad, hess))
    for grad, hess in results[1:]:
        assert np.array_equal(grad, results[0][0], equal_nan=True)
        assert np.array_equal(hess, results[0][1], equal_nan=True)


def test_two_writers_of_one_cache_index_never_mix_their_entries(tmp_path):
    """Two processes add different entries (signatures, link kinds) to one function's cache at once:
    the second reads the index before the first has written it, and the first's data file lands
    last. With Numba's own numbering both take data number 1 and the index names the second's key
    with the first's machine code; here a race can only lose an index entry (a recompilation)."""
    from numba.core.caching import IndexDataCacheFile

    from selboost._kernels import _KeyedCacheFile

    def cache_file():
        return _KeyedCacheFile(cache_path=str(tmp_path), filename_base="kernel-1.py311", source_stamp=("stamp",))

    first, second = cache_file(), cache_file()
    index_before = second._load_index()
    late_data = []
    first._save_data = lambda name, data: late_data.append((name, data))
    first.save(("float64 scores",), "machine code for float64")
    second._load_index = lambda: dict(index_before)
    second.save(("float32 scores",), "machine code for float32")
    IndexDataCacheFile._save_data(first, *late_data[0])
    reader = cache_file()
    assert reader.load(("float32 scores",)) == "machine code for float32"
    assert reader.load(("float64 scores",)) in (None, "machine code for float64")  # lost: recompiled
    cache_file().save(("float64 scores",), "machine code for float64")
    assert cache_file().load(("float64 scores",)) == "machine code for float64"
    assert cache_file().load(("float32 scores",)) == "machine code for float32"
