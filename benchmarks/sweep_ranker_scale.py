"""The sweep behind the ranker defaults (``benchmarks/RESULTS.md`` section 7): raw ``xgboost.train`` /
``lightgbm.train`` with ``ListwiseLoss(group_scale=None)`` and a per-group factor f(n) given as group
weights, 100 rounds, learning rate 0.1, against XGBRanker() and LGBMRanker().

    python benchmarks/sweep_ranker_scale.py --mq2008 ../shared/data/mq2008

Synthetic groups of 2 ... 1000 with 3,000 rows (10 groups of 1000) and one query of 3,000 rows; NDCG@10
on test.
"""

from __future__ import annotations

import argparse
import warnings

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from selboost import ListwiseLoss, lightgbm_objective, xgboost_objective
from selboost.datasets import load_bundled, load_folds
from selboost.metrics import ndcg

RULES = {"1": lambda n: np.ones_like(n), "min(n, 10)": lambda n: np.minimum(n, 10.0), "n": lambda n: n}


def synthetic(size, seed):
    rng = np.random.default_rng(seed)
    n_groups = 1 if size == 3000 else max(3000, 10 * size) // size
    X = rng.normal(size=(n_groups * size, 10))
    y = np.clip(np.round(1.2 * X[:, 0] + 0.8 * X[:, 1] * X[:, 2] + 0.7 * rng.normal(size=len(X))), 0, 4)
    return X, y, np.full(n_groups, size)


def datasets(mq2008):
    for size in (10, 100, 1000, 3000):
        yield f"synthetic {size}", synthetic(size, 1), synthetic(size, 2)
    for fold in load_bundled():
        yield "bundled", (fold.train.X, fold.train.y, fold.train.group), (fold.test.X, fold.test.y, fold.test.group)
    for number, fold in enumerate(load_folds(mq2008) if mq2008 else [], 1):
        yield f"MQ2008 fold {number}", (fold.train.X, fold.train.y, fold.train.group), \
            (fold.test.X, fold.test.y, fold.test.group)


def fit_xgboost(train, test, rule, mean_start_hessian=False):
    X, y, group = train
    dtrain = xgb.DMatrix(X, label=y, group=group)
    loss = ListwiseLoss(group_scale=None)
    bound = loss.bind(y, group, group_weight=RULES[rule](group.astype(float)))
    objective = xgboost_objective(loss)
    objective.register(dtrain, bound)
    params = {"learning_rate": 0.1, "max_depth": 6, "base_score": 0.0, "nthread": 2, "verbosity": 0}
    if mean_start_hessian:
        params["min_child_weight"] = float(bound.gradient_hessian(np.zeros(y.size))[1].mean())
    return xgb.train(params, dtrain, 100, obj=objective).predict(xgb.DMatrix(test[0]), output_margin=True)


def fit_lightgbm(train, test, rule, lambda_l2=0.0):
    X, y, group = train
    dtrain = lgb.Dataset(X, label=y, group=group, params={"feature_pre_filter": False, "verbose": -1}).construct()
    loss = ListwiseLoss(group_scale=None)
    objective = lightgbm_objective(loss)
    objective.register(dtrain, loss.bind(y, group, sample_weight=np.repeat(RULES[rule](group.astype(float)), group)))
    params = {"objective": objective, "learning_rate": 0.1, "verbose": -1, "num_threads": 2, "lambda_l2": lambda_l2}
    return lgb.train(params, dtrain, 100).predict(test[0], raw_score=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mq2008")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    methods = {
        "XGBRanker()": lambda tr, te: xgb.XGBRanker(n_jobs=2).fit(tr[0], tr[1], group=tr[2]).predict(te[0]),
        "LGBMRanker()": lambda tr, te: lgb.LGBMRanker(verbose=-1, n_jobs=2).fit(tr[0], tr[1], group=tr[2]).predict(te[0]),
    }
    for rule in RULES:
        methods[f"xgb f={rule}"] = lambda tr, te, rule=rule: fit_xgboost(tr, te, rule)
        methods[f"lgb f={rule}"] = lambda tr, te, rule=rule: fit_lightgbm(tr, te, rule)
        methods[f"lgb f={rule}, lambda_l2=1"] = lambda tr, te, rule=rule: fit_lightgbm(tr, te, rule, 1.0)
    methods["xgb f=1, min_child_weight=mean start hessian"] = lambda tr, te: fit_xgboost(tr, te, "1", True)
    for name, train, test in datasets(args.mq2008):
        print(name, " ".join(f"{m}={ndcg(test[1], f(train, test), test[2], k=10):.3f}" for m, f in methods.items()),
              flush=True)


if __name__ == "__main__":
    main()
