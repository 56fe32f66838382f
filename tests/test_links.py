"""The link catalogue: derivatives by finite differences, inverse, monotonicity, range, kernels = NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import CATALOGUE, NON_DEFAULT, smooth_grid
from selboost import _kernels as K
from selboost.links import LINEAR_BEYOND, LINKS, Exp, Sinh

EPS = 1e-5


def central_difference(f, z, eps=EPS):
    return (f(z + eps) - f(z - eps)) / (2.0 * eps)


def test_catalogue_covers_every_registered_link():
    """A new entry in LINKS must get non-default parameters here (identity has none)."""
    assert set(NON_DEFAULT) == set(LINKS)
    for name, cls in LINKS.items():
        assert f"{name}()" in CATALOGUE
        assert all(isinstance(link, cls) for link in NON_DEFAULT[name])
        if name != "identity":
            assert NON_DEFAULT[name], f"{name} needs a non-default instance in the catalogue"


@pytest.mark.parametrize(
    ("function", "derivative"), [("H", "h"), ("h", "dh"), ("dh", "d2h")], ids=["H'=h", "h'=dh", "dh'=d2h"]
)
def test_derivatives_by_central_differences(link, function, derivative):
    z = smooth_grid(link)
    numeric = central_difference(getattr(link, function), z)
    exact = getattr(link, derivative)(z)
    scale = np.maximum(1.0, np.abs(getattr(link, function)(z)))
    np.testing.assert_allclose(numeric, exact, rtol=1e-6, atol=1e-6 * scale.max())


def test_inverse_of_h_is_identity(link):
    z = np.linspace(-8.0, 8.0, 161) + 1e-3
    error = np.abs(link.inverse(link.h(z)) - z)
    assert np.all(error <= 1e-8 * (1.0 + np.abs(z))), (z[np.argmax(error)], error.max())


def test_h_is_strictly_increasing(link):
    z = np.linspace(-10.0, 10.0, 2001)
    h = link.h(z)
    assert np.all(np.diff(h) > 0)
    assert np.all(link.dh(z) > 0)


def test_range_holds_h_and_is_reached_at_the_ends(link):
    lo, hi = link.range
    assert lo < hi
    z = np.linspace(-10.0, 10.0, 201)
    h = link.h(z)
    assert np.all((h > lo) & (h < hi))
    far_low, far_high = link.h(np.array([-1e4, 1e4]))
    span = 1.0 if not math.isfinite(hi - lo) else hi - lo
    if math.isfinite(lo):
        assert abs(far_low - lo) <= 1e-9 * span
    else:
        assert far_low < -1e3
    if math.isfinite(hi):
        assert abs(far_high - hi) <= 1e-9 * span
    else:
        assert far_high > 1e3


@pytest.mark.parametrize("n_threads", [2, 1], ids=["threaded", "serial"])
def test_link_kernels_equal_numpy(link, n_threads):
    z = np.concatenate([np.linspace(-8.0, 8.0, 321) + 1e-3, [-1e6, -1e3, -50.0, 50.0, 1e3, 1e6]])
    z = np.tile(z, 2 * K.CHUNK // z.size + 1)  # more than one chunk: n_threads=2 splits the rows
    components, table = link.packed()
    h, dh, d2h = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    K.link_values_into(components, table, z, h, dh, d2h, n_threads)
    big_h = np.empty_like(z)
    K.link_primitive_into(components, table, z, big_h, n_threads)
    for kernel, numpy_value in ((h, link.h(z)), (dh, link.dh(z)), (d2h, link.d2h(z)), (big_h, link.H(z))):
        # piecewise h near 0 is a difference of tabulated values: allow rounding relative to the largest value
        np.testing.assert_allclose(kernel, numpy_value, rtol=1e-12, atol=1e-15 * np.abs(numpy_value).max())


@pytest.mark.parametrize("n_threads", [2, 1], ids=["threaded", "serial"])
def test_divergence_kernel_equals_numpy(link, n_threads, rng):
    z = rng.uniform(-6.0, 6.0, 400)
    y = rng.uniform(-6.0, 6.0, 400)
    repeats = 2 * K.CHUNK // z.size + 1  # more than one chunk: n_threads=2 splits the rows
    z, y = np.tile(z, repeats), np.tile(y, repeats)
    components, table = link.packed()
    out = np.empty_like(z)
    K.link_divergence_into(components, table, z, y, out, n_threads)
    reference = link.H(z) - link.H(y) - (z - y) * link.h(y)
    # the reference cancels: allow its own rounding, relative to the size of the terms it subtracts
    terms = np.abs(link.H(z)) + np.abs(link.H(y)) + np.abs((z - y) * link.h(y))
    # (the kernel's cancellation-free forms are themselves ~1e-12 relative for far-apart z, y)
    assert np.all(np.abs(out - reference) <= 5e-12 * np.abs(reference) + 1e-14 * terms)


@pytest.mark.parametrize("link", [Sinh(), Sinh(-1.0, 3.0), Exp(), Exp(0.5, 2.0), Exp(0.0, -1.5)], ids=repr)
def test_linear_extension_is_continuous(link):
    """Beyond |u| = LINEAR_BEYOND sinh and exp continue linearly: h, h' and H are continuous there."""
    edges = [link.center + LINEAR_BEYOND * link.scale]
    if isinstance(link, Sinh):
        edges.append(link.center - LINEAR_BEYOND * link.scale)
    for edge in edges:
        step = 1e-9 * max(1.0, abs(edge))
        for name in ("h", "dh", "H"):
            f = getattr(link, name)
            below, above = f(np.array([edge - step, edge + step]))
            assert abs(above - below) <= 1e-5 * max(1.0, abs(below)), (name, edge, below, above)


@pytest.mark.parametrize("fastmath", [False, "kernels"], ids=["plain", "kernel-fastmath"])
def test_fast_exp_is_exp_to_the_last_bits(fastmath):
    """The kernels' polynomial exp against NumPy's: relative error below 4 ulp-ish (5e-16) over the
    whole normal range, exactly 1 at 0, and 0 where e**x would be subnormal; also compiled with the
    kernels' fast-math flags, whose ``reassoc`` could regroup the range reduction."""
    from numba import njit

    from selboost._elementwise import fast_exp, power_of_two
    from selboost._kernels import FASTMATH

    @njit(fastmath=FASTMATH if fastmath else False, error_model="numpy")
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = fast_exp(x[i])
        return out

    half_ln2 = 0.5 * math.log(2.0)
    x = np.concatenate([np.linspace(-708.0, 709.0, 400_001), np.linspace(-1.0, 1.0, 20_001),
                        [-half_ln2, half_ln2, -1e-300, 1e-300, 30.0]])
    exact = np.exp(x)
    assert np.max(np.abs(apply(x) - exact) / exact) < 5e-16
    assert apply(np.array([0.0]))[0] == 1.0
    np.testing.assert_array_equal(apply(np.array([-708.5, -745.0, -1e6, -np.inf])), 0.0)
    assert [power_of_two(n) for n in (-1022, -1, 0, 1, 1023)] == [2.0 ** n for n in (-1022, -1, 0, 1, 1023)]
