"""Ranker defaults: SelectiveRanker() on both engines against XGBRanker() and LGBMRanker(), all at their
defaults, on the bundled LETOR sample, MQ2008 (5 folds) and synthetic data at several group sizes.

    python benchmarks/bench_ranker_defaults.py --mq2008 ../shared/data/mq2008 --draws 5
    python benchmarks/bench_ranker_defaults.py --letor OHSUMED=/path/to/ohsumed --only OHSUMED \
        --variants default,none,total:16

``--letor NAME=PATH`` (repeatable) adds any LETOR 5-fold layout ``selboost.datasets.load_folds`` reads;
``--only`` keeps the data sets whose name starts with one of the given prefixes. ``--variants`` lists the
SelectiveRanker settings to compare, each on both engines: ``default`` (the estimator as shipped),
``none`` (``ListwiseLoss(group_scale=None)``), ``log2`` (``group_scale`` log2(1 + n) per group of n
rows, given as group weights), ``const:C`` (every group weighed by C), ``total:K`` (every group
weighed by max(1, K / H), H the training set's start hessian under the plain softmax), ``norm:K``
(every group weighed by K / H: the training set's start hessian made K), ``floor:F`` (every group
weighed by max(32 / H, F): the default with a floor that lets large data offer more) and ``mcw:M``
(the default loss with the leaf minimum ``min_child_weight=M``). ``--large`` adds synthetic sets of
thousands of queries (one draw each, the test set 20,000 fresh rows), up to MSLR-WEB10K's 10,000.

NDCG@10 on test data (queries without a relevant document count as 1, LightGBM's convention; the
synthetic test sets are fresh draws of the same generator, 10 normal features and relevance
clip(round(1.2 x0 + 0.8 x1 x2 + 0.7 noise), 0, 4)); each synthetic row is the mean over ``--draws``
independent (train, test) draws, as MQ2008's is over its folds: with 30 queries of 100 rows one draw
moves a ratio by several hundredths. Each SelectiveRanker column also shows its ratio to the better of
the two engine rankers, and the lowest ratio of a single draw or fold. ``--early-stopping`` adds the
second setting: n_estimators=500 for every model with early stopping (20 rounds) on NDCG@10 of a
validation split of 20 % of the training queries (of rows, for a single query) drawn alike for every
model.
"""

from __future__ import annotations

import argparse
import time
import warnings

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from selboost import ListwiseLoss, SelectiveRanker
from selboost.datasets import load_bundled, load_folds
from selboost.losses import AUTO_START_HESSIAN, plain_softmax_start_hessian
from selboost.metrics import ndcg


def synthetic(group_size, n_rows, seed):
    rng = np.random.default_rng(seed)
    n_groups = max(1, n_rows // group_size)
    X = rng.normal(size=(n_groups * group_size, 10))
    y = np.clip(np.round(1.2 * X[:, 0] + 0.8 * X[:, 1] * X[:, 2] + 0.7 * rng.normal(size=len(X))), 0, 4)
    return X, y, np.full(n_groups, group_size)


#: (training rows, rows per query) of ``--large``: 5,000, 10,000 and 3,000 queries
LARGE = ((100_000, 20), (400_000, 40), (300_000, 100))


def datasets(mq2008, draws, letor=(), large=False):
    if large:
        for n_rows, size in LARGE:
            yield (f"synthetic, {n_rows // size:,} queries of {size}", synthetic(size, n_rows, 100),
                   synthetic(size, 20_000, 101))
    for size in (2, 10, 100, 1000, 3000):
        for draw in range(draws):
            yield (f"synthetic, groups of {size} draw {draw + 1}", synthetic(size, 3000, 2 * draw + 1),
                   synthetic(size, 3000, 2 * draw + 2))
    for fold in load_bundled():
        yield "bundled", (fold.train.X, fold.train.y, fold.train.group), (fold.test.X, fold.test.y, fold.test.group)
    if mq2008:
        for number, fold in enumerate(load_folds(mq2008), 1):
            yield f"MQ2008 fold {number}", (fold.train.X, fold.train.y, fold.train.group), \
                (fold.test.X, fold.test.y, fold.test.group)
    for spec in letor:
        name, path = spec.split("=", 1)
        for number, fold in enumerate(load_folds(path), 1):
            yield f"{name} fold {number}", (fold.train.X, fold.train.y, fold.train.group), \
                (fold.test.X, fold.test.y, fold.test.group)


def start_hessian(y, group):
    """The training set's total start hessian under the plain softmax (about 1 per query with a relevant row)."""
    bound = ListwiseLoss(group_scale=None).bind(y, group)
    return plain_softmax_start_hessian(bound.q, bound.group_ptr)


def variant_weight(variant, y, group):
    """(loss, group_weight) for a SelectiveRanker variant; None: the estimator's own default."""
    group = np.asarray(group)
    if variant == "default" or variant.startswith("mcw:"):
        return None, None
    plain = ListwiseLoss(group_scale=None)
    if variant == "none":
        return plain, None
    if variant == "log2":
        return plain, np.log2(1.0 + group)
    kind, value = variant.split(":")
    if kind == "const":
        return plain, np.full(group.size, float(value))
    if kind == "total":
        return plain, np.full(group.size, max(1.0, float(value) / start_hessian(y, group)))
    if kind == "norm":
        return plain, np.full(group.size, float(value) / start_hessian(y, group))
    if kind == "floor":
        return plain, np.full(group.size, max(AUTO_START_HESSIAN / start_hessian(y, group), float(value)))
    raise ValueError(f"unknown variant {variant!r}")


def split_validation(X, y, group, seed=0):
    """(train, validation) with 20 % of the queries in validation (20 % of the rows of a single query)."""
    if group.size == 1:
        rows = np.random.default_rng(seed).permutation(len(y))
        cut = int(0.8 * len(y))
        train, valid = np.sort(rows[:cut]), np.sort(rows[cut:])
        return (X[train], y[train], np.array([train.size])), (X[valid], y[valid], np.array([valid.size]))
    pointer = np.concatenate([[0], np.cumsum(group)])
    chosen = np.random.default_rng(seed).random(group.size) < 0.2
    chosen[0] = False
    if not chosen.any():
        chosen[-1] = True
    take = [np.concatenate([np.arange(pointer[g], pointer[g + 1]) for g in np.flatnonzero(mask)]) for mask in (~chosen, chosen)]
    return tuple((X[rows], y[rows], group[mask]) for rows, mask in zip(take, (~chosen, chosen)))


def models(early_stopping, variants=("default",), threads=2):
    n = {"n_estimators": 500} if early_stopping else {}
    stop = {"early_stopping_rounds": 20, "eval_metric": "ndcg@10"} if early_stopping else {}
    table = {
        "XGBRanker()": (lambda: xgb.XGBRanker(n_jobs=threads, **n, **stop), None),
        "LGBMRanker()": (lambda: lgb.LGBMRanker(verbose=-1, n_jobs=threads, **n), None),
    }
    for variant in variants:
        for engine in ("xgboost", "lightgbm"):
            name = f"SelectiveRanker({engine})" + ("" if variant == "default" else f" {variant}")
            table[name] = (lambda engine=engine: SelectiveRanker(engine=engine, n_jobs=threads, **n, **stop), variant)
    return table


def fit_predict(name, model, train, test, early_stopping, variant=None):
    X, y, group = train
    evals = {}
    if early_stopping:
        (X, y, group), (Xv, yv, gv) = split_validation(X, y, group)
        evals = {"eval_set": [(Xv, yv)], "eval_group": [gv]}
        if name == "LGBMRanker()":
            evals.update(eval_at=[10], callbacks=[lgb.early_stopping(20, verbose=False)])
        elif name == "XGBRanker()":
            evals["verbose"] = False
    if variant is not None:
        if variant.startswith("mcw:"):
            model.set_params(min_child_weight=float(variant.split(":")[1]))
        loss, weight = variant_weight(variant, y, group)
        if loss is not None:
            model.set_params(loss=loss)
        if weight is not None:
            evals["group_weight"] = weight
    model.fit(X, y, group=group, **evals)
    return model.predict(test[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mq2008", help="the MQ2008 folder (with S1.txt .. S5.txt or Fold1..5)")
    parser.add_argument("--early-stopping", action="store_true")
    parser.add_argument("--draws", type=int, default=5, help="synthetic (train, test) draws per group size")
    parser.add_argument("--letor", action="append", default=[], metavar="NAME=PATH",
                        help="a LETOR 5-fold layout to add (repeatable)")
    parser.add_argument("--only", help="comma-separated prefixes of the data set names to run")
    parser.add_argument("--large", action="store_true", help="add synthetic sets of thousands of queries")
    parser.add_argument("--variants", default="default", help="comma-separated SelectiveRanker variants")
    parser.add_argument("--threads", type=int, default=2, help="threads per model")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    variants = args.variants.split(",")
    only = tuple(args.only.split(",")) if args.only else None
    table = models(args.early_stopping, variants, args.threads)
    rows = {}
    started = time.perf_counter()
    for name, train, test in datasets(args.mq2008, args.draws, args.letor, args.large):
        if only and not name.startswith(only):
            continue
        scores = {}
        for model_name, (make, variant) in table.items():
            if model_name.startswith("SelectiveRanker") and variant is None:
                variant = "default"
            scores[model_name] = ndcg(test[1], fit_predict(model_name, make(), train, test, args.early_stopping,
                                                           variant if model_name.startswith("SelectiveRanker") else None),
                                      test[2], k=10)
        rows.setdefault(name.split(" fold")[0].split(" draw")[0], []).append(scores)
        print(name, {k: round(v, 4) for k, v in scores.items()}, flush=True)
    names = list(table)
    print(f"\n{'n_estimators=500, early stopping on a validation split' if args.early_stopping else 'defaults'}"
          f" ({time.perf_counter() - started:.0f} s)\n")
    print("| data | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for data, results in rows.items():
        mean = {m: float(np.mean([r[m] for r in results])) for m in names}
        best = max(mean["XGBRanker()"], mean["LGBMRanker()"])
        lowest = {m: min(r[m] / max(r["XGBRanker()"], r["LGBMRanker()"]) for r in results) for m in names}
        cells = [f"{mean[m]:.3f}" if "Selective" not in m else
                 f"{mean[m]:.3f} ({mean[m] / best:.2f}; lowest {lowest[m]:.2f})" for m in names]
        print(f"| {data} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
