"""Command line: ``selboost bench`` (placeholder until the benchmark lands: evaluates the core losses)."""

from __future__ import annotations

import argparse
import sys


def _bench(args) -> int:
    import numpy as np

    from selboost import Identity, SelectiveLoss, Sigmoid

    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 1.0, size=1000)
    z = y + rng.normal(size=y.size)
    loss = SelectiveLoss(Identity() + 9 * Sigmoid(center=4.0, scale=0.5))
    grad, hess = loss.gradient_hessian(y, z)
    print(f"mean loss {loss.loss(y, z).mean():.4f}, mean |grad| {np.abs(grad).mean():.4f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="selboost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench", help="run the main benchmark")
    args = parser.parse_args(argv)
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
