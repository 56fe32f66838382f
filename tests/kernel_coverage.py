"""Which kernels a test run compiled: every loss family x variant, and every link kind per family.

    SELBOOST_KERNEL_REPORT=/tmp/kernels.jsonl python -m pytest -n 2 -q
    python tests/kernel_coverage.py /tmp/kernels.jsonl

The report (``conftest.pytest_sessionfinish``) lists each compiled kernel's name and signatures. Names
are ``function.kinds.variant...`` (before 0.2 of selboost: ``function_serial``/``_parallel`` and the same
labels); a signature says the score dtype and whether rows were weighted. Threaded calls run the serial
range functions and compile nothing of their own (``_kernels.run``; earlier trees compiled a ``prange``
driver per kernel, reported as "threaded").
"""

import json
import re
import sys
from collections import defaultdict

KINDS = ("identity", "sigmoid", "sinh", "exp", "piecewise")
#: kernel function -> loss family, in either naming
FAMILIES = {
    "_scalar_rows": "scalar", "_scalar_grad_hess_kernel": "scalar",
    "_softmax_groups": "softmax", "_softmax_grad_hess_kernel": "softmax",
    "_softmax_loss_groups": "softmax loss", "_softmax_loss_kernel": "softmax loss",
    "_pairwise_groups": "pairwise", "_pairwise_grad_hess_kernel": "pairwise",
    "_pairwise_loss_groups": "pairwise loss", "_pairwise_loss_kernel": "pairwise loss",
}


def parse(name):
    """(family, kinds, labels) of a kernel name, or None for a helper (loops, drivers)."""
    threaded_driver = name.startswith("_threaded_driver.")
    parts = name.split(".")[1:] if threaded_driver else name.split(".")
    base = re.sub(r"_(serial|parallel)$", "", parts[0])
    family = FAMILIES.get(base)
    if family is None:
        return None
    threaded = threaded_driver or parts[0].endswith("_parallel")
    labels = [p for p in parts[1:] if not re.fullmatch(r"[0-9a-f]{16}", p)]
    kinds = {k for label in labels for k in label.split("_") if k in KINDS}
    variant = [label for label in labels if label in ("weighted", "unweighted", "exact", "gauss_newton")]
    return family, kinds, variant, threaded


def main(path):
    variants = defaultdict(set)
    kinds_by_family = defaultdict(set)
    for line in open(path):
        for name, signatures in json.loads(line).items():
            parsed = parse(name)
            if parsed is None:
                continue
            family, kinds, variant, threaded = parsed
            kinds_by_family[family] |= kinds
            for signature in signatures:
                dtype = "float32" if "float32" in signature else "float64"  # scores or outputs
                tags = list(variant)
                if family == "scalar":
                    tags.append("weighted" if "none" not in signature else "unweighted")
                tags.append(dtype)
                if threaded:
                    tags.append("threaded")
                variants[family].add(" ".join(tags))
    for family in sorted(variants):
        print(f"{family}: kinds {sorted(kinds_by_family[family])}")
        for variant in sorted(variants[family]):
            print(f"    {variant}")


if __name__ == "__main__":
    main(sys.argv[1])
