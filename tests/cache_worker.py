"""One process of the cache stress test (``test_cache_stress.py``): computes the named configurations,
in the order given, and prints their results as JSON, {name: [float, ...]}.

``python tests/cache_worker.py --list`` prints every configuration's name. A configuration is a link
(every kind, and sums of kinds) in a loss kind, weighted or not, with one hessian, through one path:
the bound loss (``loss.bind(...)``), an engine's objective, the link's own values or the loss values.
"""

import json
import sys

import numpy as np

N_ROWS = 96
GROUP_SIZES = (1, 7, 20, 4, 32, 32)  # a group of one: the degenerate rule
N_CLASSES = 3


def _links():
    from selboost import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh

    return {
        "identity": Identity(),
        "sigmoid": Sigmoid(0.3, 0.7),
        "sinh": Sinh(0.0, 1.0),
        "exp": Exp(0.5, 2.0),
        "piecewise": PiecewiseLinear(knots=(-0.5, 0.5), slopes=(0.5, 3.0, 1.0)),
        "identity+sigmoid": Identity() + 9 * Sigmoid(0.2, 0.5),
        "sigmoid+sinh": Sigmoid(-0.3, 0.4) + 0.5 * Sinh(0.1, 2.0),
        "exp+piecewise+identity": 0.2 * Exp(-0.5, 1.5) + PiecewiseLinear(knots=(0.0,), slopes=(1.0, 2.0))
        + Identity(),
    }


def _data():
    rng = np.random.default_rng(7)
    y = rng.normal(size=N_ROWS)
    z = rng.normal(size=N_ROWS)
    weight = rng.uniform(0.5, 2.0, size=N_ROWS)
    relevance = rng.integers(0, 4, size=N_ROWS).astype(np.float64)
    teacher = rng.normal(size=N_ROWS)
    classes = rng.integers(0, N_CLASSES, size=N_ROWS // N_CLASSES)
    class_scores = rng.normal(size=(N_ROWS // N_CLASSES, N_CLASSES))
    return y, z, weight, relevance, teacher, classes, class_scores


def configurations():
    """{name: function returning a list of float64 arrays}."""
    import selboost as sb

    y, z, weight, relevance, teacher, classes, class_scores = _data()
    group = np.array(GROUP_SIZES)
    configs = {}
    for index, (link_name, link) in enumerate(_links().items()):
        # the variants cycle over the links, and the two-kind sum takes all of them
        variants = [(index % 2 == 1, ("gauss-newton", "exact")[(index // 2) % 2])]
        if link_name == "identity+sigmoid":
            variants = [(w, h) for w in (False, True) for h in ("gauss-newton", "exact")]

        def values(link=link):
            from selboost import _kernels as K

            components, table = link.packed()
            h, dh, d2h = (np.empty(N_ROWS) for _ in range(3))
            primitive, divergence = np.empty(N_ROWS), np.empty(N_ROWS)
            K.link_values_into(components, table, z, h, dh, d2h)
            K.link_primitive_into(components, table, z, primitive)
            K.link_divergence_into(components, table, z, y, divergence)
            return [h, dh, d2h, primitive, divergence]

        configs[f"values/{link_name}"] = values
        for weighted, hess in variants:
            w = weight if weighted else None
            tag = f"{link_name}/{'weighted' if weighted else 'unweighted'}/{hess}"

            def scalar_bound(link=link, w=w):
                bound = sb.SelectiveLoss(link).bind(y, w)
                return [*bound.gradient_hessian(z), np.atleast_1d(bound.loss(z))]

            def scalar_engine(link=link, w=w):
                import xgboost as xgb

                data = xgb.DMatrix(np.zeros((N_ROWS, 1)), label=y, weight=w)
                return list(sb.xgboost_objective(sb.SelectiveLoss(link))(z.astype(np.float32), data))

            def listwise_bound(link=link, w=w, hess=hess):
                gw = None if w is None else weight[: len(GROUP_SIZES)]
                loss = sb.ListwiseLoss(link, hess=hess)
                bound = loss.bind(relevance, group, group_weight=gw)
                return [*bound.gradient_hessian(z), np.atleast_1d(bound.loss(z))]

            def listwise_engine(link=link, w=w, hess=hess):
                import lightgbm as lgb

                gw = None if w is None else np.repeat(weight[: len(GROUP_SIZES)], GROUP_SIZES)
                data = lgb.Dataset(np.zeros((N_ROWS, 1)), label=relevance, group=group, weight=gw,
                                   params={"verbose": -1})
                data.construct()
                return list(sb.lightgbm_objective(sb.ListwiseLoss(link, hess=hess))(z, data))

            def distillation_bound(link=link, hess=hess):
                loss = sb.ListwiseLoss(link, target="score", hess=hess)
                bound = loss.bind(teacher, group)
                return [*bound.gradient_hessian(z), np.atleast_1d(bound.loss(z))]

            def pairwise_bound(link=link, w=w, hess=hess, pairs_per_item=(3 if weighted else None)):
                gw = None if w is None else weight[: len(GROUP_SIZES)]
                loss = sb.PairwiseLoss(link, pairs_per_item=pairs_per_item, hess=hess)
                bound = loss.bind(relevance, group, group_weight=gw)
                return [*bound.gradient_hessian(z), np.atleast_1d(bound.loss(z))]

            def pairwise_engine(link=link, hess=hess):
                import xgboost as xgb

                data = xgb.DMatrix(np.zeros((N_ROWS, 1)), label=relevance, group=group)
                return list(sb.xgboost_objective(sb.PairwiseLoss(link, hess=hess))(z.astype(np.float32), data))

            def multiclass_bound(link=link, w=w, hess=hess):
                cw = None if w is None else weight[: classes.shape[0]]
                bound = sb.MulticlassLoss(link, hess=hess).bind(classes, N_CLASSES, cw)
                return [*bound.gradient_hessian(class_scores), np.atleast_1d(bound.loss(class_scores))]

            for name, function in (("scalar/bound", scalar_bound), ("scalar/engine", scalar_engine),
                                   ("listwise/bound", listwise_bound), ("listwise/engine", listwise_engine),
                                   ("distillation/bound", distillation_bound),
                                   ("pairwise/bound", pairwise_bound), ("pairwise/engine", pairwise_engine),
                                   ("multiclass/bound", multiclass_bound)):
                configs[f"{name}/{tag}"] = function
    return configs


def main(argv):
    configs = configurations()
    if argv == ["--list"]:
        print(json.dumps(list(configs)))
        return
    results = {}
    for name in argv:
        arrays = configs[name]()
        results[name] = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays]).tolist()
    print("\n" + json.dumps(results))  # the last line: an engine may have printed before


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main(sys.argv[1:])
