"""Shared fixtures: the link catalogue every core test walks, and small reproducible data."""

from __future__ import annotations

import numpy as np
import pytest

from selboost.links import LINKS, Exp, Identity, PiecewiseLinear, Sigmoid, Sinh
from selboost.regions import region_link


#: Non-default instances of each basic link (keyed like ``selboost.links.LINKS``).
NON_DEFAULT = {
    "identity": [],
    "sigmoid": [Sigmoid(2.0, 0.5)],
    "sinh": [Sinh(-1.0, 3.0)],
    "exp": [Exp(0.5, 2.0), Exp(0.0, -1.5)],
    "piecewise": [PiecewiseLinear((-1.0, 0.5, 2.0), (0.5, 2.0, 1.0, 3.0))],
}

SUMS = {
    "identity+9sigmoid(2,0.5)": Identity() + 9 * Sigmoid(2.0, 0.5),
    "0.5sinh+2exp(1,-1)": 0.5 * Sinh() + 2 * Exp(1.0, -1.0),
    "0.25sigmoid": 0.25 * Sigmoid(),
    "sigmoid+sigmoid(3,2)": Sigmoid() + 2 * Sigmoid(3.0, 2.0),
    "identity+piecewise": Identity() + PiecewiseLinear((-1.0, 1.0), (1.0, 4.0, 0.5)),
    # identity + 7 sigmoids (a piecewise region is a PiecewiseLinear, checked above)
    "region(2,4,strength=10,smooth)": region_link(2.0, 4.0, strength=10.0, shape="smooth"),
}


def _catalogue():
    entries = {}
    for name, cls in LINKS.items():
        entries[f"{name}()"] = cls()
        for link in NON_DEFAULT.get(name, []):
            entries[repr(link)] = link
    entries.update(SUMS)
    return entries


#: Every link the battery checks: each basic link at default and non-default parameters, and sums.
CATALOGUE = _catalogue()

#: Two links whose four term kinds are checked in every kernel variant (both hessians, weighted groups or
#: not); every other link in one variant of the softmax kernel: the exact hessian (every per-element
#: term: the Gauss-Newton one drops phi''), unweighted groups. Each variant is a compilation of its own.
TWO_LINKS = ("identity+9sigmoid(2,0.5)", "0.5sinh+2exp(1,-1)")


def term_kinds(link):
    return tuple(type(term).__name__ for _, term in link._terms())


def every_variant(link):
    """Whether the tests check ``link`` in every kernel variant: its term kinds are those of a
    ``TWO_LINKS`` link; other links take exact hessians and unweighted groups."""
    return term_kinds(link) in {term_kinds(CATALOGUE[name]) for name in TWO_LINKS}


#: Extreme parameters: every link must still give finite losses, gradients and hessians.
EXTREME = {
    "sigmoid(1e6,1e-6)": Sigmoid(1e6, 1e-6),
    "sigmoid(-1e6,1e6)": Sigmoid(-1e6, 1e6),
    "sinh(1e6,1e-6)": Sinh(1e6, 1e-6),
    "sinh(-1e6,1e6)": Sinh(-1e6, 1e6),
    "exp(-1e6,1e-6)": Exp(-1e6, 1e-6),
    "exp(1e6,-1e-6)": Exp(1e6, -1e-6),
    "exp(1e6,1e6)": Exp(1e6, 1e6),
    "exp(-1e6,-1e6)": Exp(-1e6, -1e6),
    "piecewise-wide": PiecewiseLinear((-1e6, 0.0, 1e6), (1e-6, 1.0, 1e6, 1e-6)),
    # sums whose term kinds (in order) are those of the catalogue's sums: their kernels are compiled
    # and checked there, and these check the extreme parameters
    "identity+1e6sigmoid(0,1e-6)": Identity() + 1e6 * Sigmoid(0.0, 1e-6),
    "sinh(1e6,1e6)+1e-6exp(0,1e-6)": Sinh(1e6, 1e6) + 1e-6 * Exp(0.0, 1e-6),
}


def kinks(link):
    """Points where h' jumps (piecewise knots; where sinh/exp continue linearly)."""
    from selboost.links import LINEAR_BEYOND

    points = []
    for _, term in link._terms():
        if isinstance(term, PiecewiseLinear):
            points.extend(term.knots)
        elif isinstance(term, (Sinh, Exp)):
            points.extend([term.center + LINEAR_BEYOND * term.scale, term.center - LINEAR_BEYOND * term.scale])
    return np.asarray(points)


def smooth_grid(link, lo=-6.0, hi=6.0, n=241, margin=1e-2):
    """A grid of scores away from the link's kinks (for finite differences)."""
    z = np.linspace(lo, hi, n) + 1e-3  # off the knots of the catalogue, which sit on round numbers
    k = kinks(link)
    if k.size:
        z = z[np.min(np.abs(z[:, None] - k[None, :]), axis=1) > margin]
    return z


@pytest.fixture(params=list(CATALOGUE), ids=list(CATALOGUE))
def link(request):
    return CATALOGUE[request.param]


@pytest.fixture(params=list(EXTREME), ids=list(EXTREME))
def extreme_link(request):
    return EXTREME[request.param]


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def pytest_sessionfinish(session):
    """With ``SELBOOST_KERNEL_REPORT=path``: append every kernel this process compiled or loaded, with its
    signatures, to ``path`` (one JSON line per process; ``tests/kernel_coverage.py`` summarises them)."""
    import json
    import os
    import sys

    path = os.environ.get("SELBOOST_KERNEL_REPORT")
    kernels = sys.modules.get("selboost._kernels")
    if not path or kernels is None:
        return
    dispatchers = dict(getattr(kernels, "_COMPILED", {}))
    dispatchers.update(getattr(kernels, "_VARIANTS", {}))  # the registry's name before the digests
    for name, value in vars(kernels).items():
        if hasattr(value, "signatures") and hasattr(value, "py_func"):
            dispatchers.setdefault(value.py_func.__qualname__, value)
    used = {name: [str(signature) for signature in dispatcher.signatures]
            for name, dispatcher in dispatchers.items() if dispatcher.signatures}
    with open(path, "a") as out:
        out.write(json.dumps(used) + "\n")


def _cuda_driver_missing():
    """Why no GPU test can run here (no CUDA driver library), or None: found without importing Numba's
    CUDA target or starting a process, so that machines without a GPU pay nothing for those tests."""
    import ctypes.util

    if ctypes.util.find_library("cuda") is None:
        return "no CUDA driver (libcuda) on this machine"
    return None


def pytest_collection_modifyitems(config, items):
    # Tests that run kernels in a child process go last: by then the in-process tests have put the
    # kernels in Numba's on-disk cache, and the child loads them instead of compiling them again
    # (with an empty cache, as in CI, that is most of the child's time). A stable sort: the order is
    # otherwise the collection's, the same in every xdist worker. Among them the long ones
    # (``child_process(long=True)``) go first, so that the two workers end together.
    def order(item):
        marker = item.get_closest_marker("child_process")
        return (0,) if marker is None else (1, not marker.kwargs.get("long", False))

    items.sort(key=order)
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    reason = _cuda_driver_missing() if gpu_tests else None
    if reason:
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason=reason))
