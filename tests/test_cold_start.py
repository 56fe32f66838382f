"""What a first fit compiles: only its link's kinds and its variant; importing selboost imports no Numba."""

from __future__ import annotations

import subprocess
import sys

from selboost import Identity, Sigmoid, Sinh
from selboost import _kernels as K
from selboost._elementwise import KIND_EXP, KIND_IDENTITY, KIND_SIGMOID, KIND_SINH


def test_import_selboost_does_not_import_numba():
    code = "import sys, selboost; assert not [m for m in sys.modules if m.startswith('numba')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scalar_kernel_binds_only_the_link_kinds():
    components, _ = (Identity() + 9 * Sigmoid(2.0, 0.5)).packed()
    kernel = K.scalar_grad_hess(components, False)
    assert kernel is K.scalar_grad_hess(components, False)
    assert kernel is not K.scalar_grad_hess(components, True)
    chunk = kernel.py_func.__globals__["scalar_chunk"]
    assert chunk.py_func.__globals__["_fused_last"] is K._FUSED_TERM[KIND_SIGMOID]
    assert chunk.py_func.__globals__["_OTHER_CURVED"] is False


def test_range_loops_of_absent_kinds_are_not_bound():
    components, _ = (Identity() + Sinh() + Sinh(1.0, 2.0)).packed()
    names = K.link_values_range_for(K._link_kinds(components)).py_func.__globals__
    assert names["_add_sinh"] is K._ADD_TERM[KIND_SINH]
    for kind in (KIND_SIGMOID, KIND_EXP):
        assert names[f"_add_{K._KIND_NAMES[kind]}"] is K._ADD_TERM[KIND_IDENTITY]


def test_cache_key_covers_the_per_element_source():
    components, _ = Sigmoid().packed()
    kernel = K.scalar_grad_hess(components, False)
    assert isinstance(kernel._cache, K._SourceCache)
    assert "_elementwise.py" in K._SOURCES and len(K._SOURCE_DIGEST) == 64
