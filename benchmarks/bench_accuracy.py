"""Loss accuracy against mpmath: the worst relative error of ``SelectiveLoss(link).loss`` per link,
for this working tree and, with ``--base``, a git revision's package beside it.

    python benchmarks/bench_accuracy.py --base 2f23e13 --pairs 400

The (z, y) pairs are those of ``tests/test_high_precision.py`` (nearly equal, straddling a boundary and
far apart, around each link's tails and the linear continuation of sinh and exp); the reference is
``tests/mp_reference.py``. Values below 1e-300 count with an absolute error (they are not normal floats).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def worst_errors(package, link_name, z, y, expected):
    """(worst relative error, count above 1e-9) of ``package``'s loss on the pairs."""
    from conftest import CATALOGUE

    link = CATALOGUE[link_name]
    rebuilt = eval(repr(link), {name: getattr(package.links, name) for name in package.links.__all__})  # noqa: S307
    with np.errstate(all="ignore"):
        got = package.SelectiveLoss(rebuilt).loss(y, z)
    scale = np.maximum(np.abs(expected), 1e-300)
    error = np.abs(got - expected) / scale
    error[np.isnan(got)] = np.inf
    return float(error.max()), int((error > 1e-9).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="a git revision to compare with")
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args(argv)
    import mp_reference as ref
    from conftest import CATALOGUE
    from test_high_precision import _finite_labels, pairs

    import selboost

    with tempfile.TemporaryDirectory() as folder:
        packages = [("new", selboost)]
        if args.base:
            from bench_ab import load_base

            packages.append((args.base, load_base(args.base, folder)))
        header = " | ".join(f"{name} worst rel. error | {name} pairs > 1e-9" for name, _ in packages)
        print(f"pairs per link: {args.pairs}\n\n| link | {header} |\n|---|" + "---|---|" * len(packages))
        rng = np.random.default_rng(20261201)
        for name, link in CATALOGUE.items():
            z, y = pairs(link, rng, args.pairs)
            keep = _finite_labels(link, y)
            z, y = z[keep], y[keep]
            expected = np.array([float(ref.divergence(link, zi, yi)) for zi, yi in zip(z, y)])
            cells = []
            for _, package in packages:
                worst, count = worst_errors(package, name, z, y, expected)
                cells.append(f"{worst:.2g} | {count}/{z.size}")
            print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
