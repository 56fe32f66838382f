"""Two methods of ``selboost bench`` runs compared per query: the paired test of the benchmark's
report (``selboost.bench.report.paired_comparison``), for any pair rather than against LambdaMART.

    python benchmarks/paired_methods.py <run>/results.json [<other run>/results.json ...] \
        --pair "xgb selboost softmax=xgb selboost softmax plain"

The runs must share their folds (the same data and split); their methods are pooled by name.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from selboost.bench.report import KS, paired_comparison


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.json files of selboost bench runs")
    parser.add_argument("--pair", action="append", required=True, metavar="A=B",
                        help="method A against method B (repeatable)")
    args = parser.parse_args(argv)
    results = {}
    for path in args.results:
        with open(path) as handle:
            results.update(json.load(handle)["results"])
    for folds in results.values():  # JSON keeps a query without a relevant document as null
        for fold in folds.values():
            fold["per_query"] = {k: np.array(v, dtype=np.float64) for k, v in fold["per_query"].items()}
    print("| A | B | k | mean A - B | W/T/L | Wilcoxon p | t-test p |\n|---|---|---|---|---|---|---|")
    for pair in args.pair:
        a, b = pair.split("=")
        for name in (a, b):
            if name not in results:
                raise SystemExit(f"no method {name!r} in the runs; they hold: {', '.join(results)}")
        row = paired_comparison({a: results[a], b: results[b]}, b)[a]
        for k in KS:
            c = row[f"ndcg@{k}"]
            print(f"| {a} | {b} | {k} | {c['mean_diff']:+.4f} | {c['wins']}/{c['ties']}/{c['losses']} | "
                  f"{c['p_wilcoxon']:.3g} | {c['p_ttest']:.3g} |")


if __name__ == "__main__":
    main()
