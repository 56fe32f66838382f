"""The main job's listwise methods with the plain softmax alone (``group_scale=None``) and a
``reg_lambda`` axis in place of the group weight: 12 configurations, the budget of the main job's
methods, on the bundled data (``benchmarks/RESULTS.md`` section 19, the last column).

    python benchmarks/bench_plain_brake.py
"""

from __future__ import annotations

from selboost.bench import ranking
from selboost.bench.report import RankingMethod
from selboost.datasets import load_bundled
from selboost.engines import ENGINE_NAMES, get_engine


def methods():
    out = []
    for engine in map(get_engine, ENGINE_NAMES):
        for kind, grid in (("softmax", ranking._softmax_grid), ("selective", ranking._selective_grid)):
            configs = tuple({**config, "label": f"{config['label']} l2={lam:g}",
                             "params": engine.native_params(reg_lambda=lam)}
                            for config in grid((None,)) for lam in ranking.REG_LAMBDAS)
            out.append(RankingMethod(f"{engine.short_name} selboost {kind} plain+l2", engine.name, "selboost",
                                     configs, default=False))
    return out


def main():
    results = ranking.run_benchmark(load_bundled(), methods(), progress=False)
    print("| method | configurations | chosen | NDCG@1 | NDCG@10 |\n|---|---|---|---|---|")
    for name, folds in results.items():
        fold = next(iter(folds.values()))
        test = fold["test"]["excluded"]
        print(f"| {name} | {len(fold['trials'])} | {fold['chosen']['config']} | {test['ndcg@1']:.4f} | "
              f"{test['ndcg@10']:.4f} |")


if __name__ == "__main__":
    main()
