"""The LambdaMART comparison: built-in ranking objectives against selboost's listwise and pairwise losses.

Protocol, the same for every method:
- each method has a tuning grid of the same size (six configurations: the three ``LEARNING_RATES``
  times two values of one method-specific setting: tree size for the built-in objectives, the
  transform's parameter for selboost);
- each configuration trains up to ``max_rounds`` rounds with early stopping on the validation split's
  NDCG@10 (the engine's own metric; queries with no relevant document count as a constant there, so the
  choice is the same as with them excluded) and keeps its best round;
- the configuration with the best validation NDCG@10 is scored on the test split;
- test NDCG@1/3/5/10 (``selboost.metrics.ndcg`` with gains 2^r - 1 and tied scores averaged,
  ``ties="average"``, as ``sklearn.metrics.ndcg_score`` ranks) under both conventions for queries
  with no relevant document (``CONVENTIONS``);
- a paired per-query comparison (NDCG@k, queries with a relevant document, all folds pooled) against
  the best LambdaMART (``xgb rank:ndcg`` or ``lgb lambdarank``, whichever has the higher mean test
  NDCG@10): mean difference, Wilcoxon signed-rank and paired t-test p-values, wins/ties/losses.

``default_methods`` is the comparison ``selboost bench`` runs; ``extra_methods`` holds the further
designs tried on MQ2008 (``--methods all`` or by name; see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from selboost.bench._stats import signed_rank_p
from selboost.engines import ENGINE_NAMES, get_engine
from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh
from selboost.losses import ListwiseLoss, PairwiseLoss, exponential_gain
from selboost.metrics import ndcg, ndcg_per_query

__all__ = ["Method", "SumLoss", "default_methods", "extra_methods", "all_methods", "select_methods", "run_benchmark",
           "summarize", "paired_comparison", "paired_table", "write_outputs", "KS"]

KS = (1, 3, 5, 10)
LEARNING_RATES = (0.03, 0.1, 0.3)
LAMBDAMART = ("xgb rank:ndcg", "lgb lambdarank")

#: convention name -> what a query with no relevant document counts as
CONVENTIONS = {
    "excluded": "queries with no relevant document left out (mean over the others)",
    "as-one": "queries with no relevant document count as 1 (LightGBM's ndcg metric)",
}
#: each convention as ``selboost.metrics.ndcg``'s ``no_relevant``
NO_RELEVANT = {"excluded": "skip", "as-one": "one"}


def _ndcg(data, prediction, k, convention=None):
    """NDCG@k of ``prediction`` on ``data``, gains 2^r - 1, tied scores averaged: per query (NaN where no
    document is relevant) without ``convention``, else the mean under that one of ``CONVENTIONS``."""
    if convention is None:
        return ndcg_per_query(data.y, prediction, data.group, k, no_relevant="skip", ties="average")
    return ndcg(data.y, prediction, data.group, k, no_relevant=NO_RELEVANT[convention], ties="average")


# ---------------------------------------------------------------- selboost objectives (engine adapters)


def _selboost_objective(engine, loss):
    """The custom objective for ``engine`` (its ``selboost.objectives`` adapter, serial kernels by default)."""
    return get_engine(engine).objective(loss)


class SumLoss:
    """A weighted sum of listwise/pairwise losses on the same data: grad = sum_k w_k grad_k, hess likewise.

    (A benchmark-side mixture; each part runs through its own ``selboost.objectives`` adapter.)"""

    def __init__(self, parts):
        self.parts = tuple((float(w), loss) for w, loss in parts)

    def __repr__(self):
        return " + ".join(f"{w:g}*{loss!r}" for w, loss in self.parts)


def _objective(engine, loss):
    if isinstance(loss, SumLoss):
        objs = [(w, _selboost_objective(engine, part)) for w, part in loss.parts]

        def summed(preds, data):
            grad = hess = 0.0
            for w, obj in objs:
                g, h = obj(preds, data)
                grad = grad + w * np.asarray(g, dtype=np.float64)
                hess = hess + w * np.asarray(h, dtype=np.float64)
            return grad.astype(np.float32), hess.astype(np.float32)

        return summed
    return _selboost_objective(engine, loss)


# ---------------------------------------------------------------- methods


@dataclass(frozen=True)
class Method:
    """A ranking method: an engine, a family, and its tuning grid (list of configuration dicts).

    A configuration holds ``learning_rate`` and either engine parameters (``params``) or a selboost loss
    (``loss``), plus a short ``label`` for the tables.
    """

    name: str
    engine: str
    family: str
    grid: tuple = field(repr=False)
    default: bool = True


def _grid(second, learning_rates=LEARNING_RATES):
    """Every learning rate times each (label, dict) of the method's own second setting."""
    return tuple({"learning_rate": lr, "label": f"lr={lr} {label}", **extra}
                 for lr in learning_rates for label, extra in second)


def _listwise(transform, **kw):
    return ListwiseLoss(transform, **kw)


#: an engine's tree-size parameter -> (its label, the two values tuned)
TREE_SIZES = {"max_depth": ("depth", (4, 6)), "num_leaves": ("leaves", (15, 31))}


def default_methods(engines=ENGINE_NAMES):
    """The methods of the comparison, each with ``len(LEARNING_RATES) * 2`` configurations:

    - ``xgb rank:ndcg`` (max_depth 4 or 6), ``lgb lambdarank`` and ``lgb rank_xendcg`` (num_leaves 15
      or 31), engine defaults otherwise;
    - ``selboost softmax``: ``ListwiseLoss((1 / tau) * Identity())``, tau in {0.5, 2} (ListNet-style);
    - ``selboost selective``: ``ListwiseLoss(Identity() + w * Sigmoid(2, 1))``, w in {1, 4}: sensitivity
      phi' = 1 + w near score 2, i.e. sharper among the high scores;
    - ``selboost pairwise``: ``PairwiseLoss(Identity(), pairs_per_item=k)``, k in {4, 16};
    - ``selboost pairwise selective``: ``PairwiseLoss(Identity() + w * Sigmoid(2, 1))``, w in {1, 4}
      (16 pairs per item): pairs among high scores weigh more, as LambdaMART's |delta NDCG| does;
    each selboost loss on both engines, through ``selboost.objectives``, engine defaults otherwise.
    """
    methods = []
    for engine in map(get_engine, engines):  # each engine's built-in ranking objectives first
        size = engine.tree_size_param
        label, values = TREE_SIZES[size]
        for objective, family in engine.ranking_objectives.items():
            methods.append(Method(f"{engine.short_name} {objective}", engine.name, family, _grid(
                [(f"{label}={v}", {"params": {"objective": objective, size: v}}) for v in values])))
    for engine in engines:
        tag = get_engine(engine).short_name
        methods.append(Method(f"{tag} selboost softmax", engine, "selboost", _grid(
            [(f"tau={tau}", {"loss": _listwise((1.0 / tau) * Identity())}) for tau in (0.5, 2.0)])))
        methods.append(Method(f"{tag} selboost selective", engine, "selboost", _grid(
            [(f"top-bump w={w}", {"loss": _listwise(Identity() + w * Sigmoid(center=2.0, scale=1.0))})
             for w in (1.0, 4.0)])))
        methods.append(Method(f"{tag} selboost pairwise", engine, "selboost", _grid(
            [(f"pairs/item={k}", {"loss": PairwiseLoss(Identity(), pairs_per_item=k)}) for k in (4, 16)])))
        methods.append(Method(f"{tag} selboost pairwise selective", engine, "selboost", _grid(
            [(f"z + {w:g}*sigmoid(2,1)", {"loss": PairwiseLoss(Identity() + w * Sigmoid(2.0, 1.0))})
             for w in (1.0, 4.0)])))
    return methods


def _gain_base(base):
    def gain(r):
        return exponential_gain(r, base)

    gain.__name__ = f"gain_{base:g}^r-1"
    return gain


def extra_methods(engines=ENGINE_NAMES):
    """Further selboost designs tried in the quality push (``--methods all`` or by name)."""
    methods = []
    for engine in engines:
        tag = get_engine(engine).short_name
        native = get_engine(engine).param_names

        def add(name, second):
            methods.append(Method(f"{tag} {name}", engine, "selboost", _grid(second), default=False))

        add("softmax tau-wide", [(f"tau={t}", {"loss": _listwise((1.0 / t) * Identity())}) for t in (1.0, 4.0)])
        add("softmax linear-gain", [(f"tau={t}", {"loss": _listwise((1.0 / t) * Identity(), gain="linear")})
                                    for t in (0.5, 2.0)])
        add("softmax sharp-gain", [(f"tau={t}", {"loss": _listwise((1.0 / t) * Identity(), gain=_gain_base(4.0))})
                                   for t in (0.5, 2.0)])
        add("selective piecewise-top", [
            (f"slopes 0.5|{m / 2:g} above z=1", {"loss": _listwise(PiecewiseLinear(knots=(1.0,), slopes=(0.5, m / 2)))})
            for m in (2.0, 4.0)])
        add("selective bump", [
            (f"z/2 + {w}*sigmoid(1.5,0.5)", {"loss": _listwise(0.5 * Identity() + w * Sigmoid(1.5, 0.5))})
            for w in (0.5, 2.0)])
        add("selective bump exact", [
            (f"z/2 + {w}*sigmoid(1.5,0.5)",
             {"loss": _listwise(0.5 * Identity() + w * Sigmoid(1.5, 0.5), hess="exact")})
            for w in (0.5, 2.0)])
        add("selective exp", [(f"exp(0,{sc})/2", {"loss": _listwise(0.5 * Exp(0.0, sc))}) for sc in (1.0, 2.0)])
        add("softmax+pairwise", [
            (f"softmax(tau=2) + {w}*pairwise", {"loss": SumLoss([(1.0, _listwise(0.5 * Identity())),
                                                                 (w, PairwiseLoss(0.5 * Identity()))])})
            for w in (0.25, 1.0)])
        add("selective knee", [
            (f"slopes {r / 2:g}|0.5 below|above 0",
             {"loss": _listwise(PiecewiseLinear(knots=(0.0,), slopes=(r / 2, 0.5)))})
            for r in (0.25, 0.5)])
        add("selective bump@0", [
            (f"z/2 + {w}*sigmoid(0,0.5)", {"loss": _listwise(0.5 * Identity() + w * Sigmoid(0.0, 0.5))})
            for w in (0.25, 1.0)])
        add("selective bump tau2", [
            (f"z/2 + {w}*sigmoid(2,1)", {"loss": _listwise(0.5 * Identity() + w * Sigmoid(2.0, 1.0))})
            for w in (0.5, 2.0)])
        add("selective sinh", [(f"sinh(0,{sc})/2", {"loss": _listwise(0.5 * Sinh(0.0, sc))}) for sc in (1.0, 2.0)])
        add("pairwise selective (robustness)", [
            (f"z + {w}*sigmoid(1.5,1)", {"loss": PairwiseLoss(Identity() + w * Sigmoid(1.5, 1.0))})
            for w in (2.0, 8.0)])
        add("pairwise exp", [(f"exp(0,{sc})", {"loss": PairwiseLoss(Exp(0.0, sc))}) for sc in (1.0, 2.0)])
        if get_engine(engine).tree_size_param != "max_depth":  # leaf-wise trees: also try XGBoost's defaults
            xgb_like = get_engine(engine).native_params(reg_lambda=1.0, min_child_weight=1.0, max_depth=6,
                                                        num_leaves=63, min_child_samples=1)
            add("selective xgb-like trees", [
                (f"top-bump w={w} l2=1 min_hess=1 depth=6",
                 {"loss": _listwise(Identity() + w * Sigmoid(center=2.0, scale=1.0)), "params": xgb_like})
                for w in (1.0, 4.0)])
            add("pairwise xgb-like trees", [
                (f"pairs/item={k} l2=1 min_hess=1 depth=6",
                 {"loss": PairwiseLoss(Identity(), pairs_per_item=k), "params": xgb_like}) for k in (4, 16)])
            add("softmax xgb-like trees", [
                (f"tau={t} l2=1 min_hess=1 depth=6", {"loss": _listwise((1.0 / t) * Identity()), "params": xgb_like})
                for t in (0.5, 2.0)])
        for name, key, values in (("softmax l2", native["reg_lambda"], (1.0, 10.0)),
                                  ("softmax tree-min-hess", native["min_child_weight"], (0.1, 1.0))):
            add(name, [(f"tau=2 {key}={v}", {"loss": _listwise(0.5 * Identity()), "params": {key: v}})
                       for v in values])
    return methods


def all_methods(engines=ENGINE_NAMES):
    return default_methods(engines) + extra_methods(engines)


def select_methods(spec, engines=ENGINE_NAMES):
    """Methods named by ``spec``: 'default', 'all', or comma-separated names."""
    available = all_methods(engines)
    if spec == "default":
        return [m for m in available if m.default]
    if spec == "all":
        return available
    by_name = {m.name: m for m in available}
    chosen = []
    for name in (part.strip() for part in spec.split(",")):
        if name not in by_name:
            raise ValueError(f"--methods: unknown method {name!r} for engines {list(engines)}; "
                             f"known: {', '.join(by_name)}")
        chosen.append(by_name[name])
    if not chosen:
        raise ValueError("--methods: no method named")
    return chosen


# ---------------------------------------------------------------- training


def _xgb_fit(config, fold, max_rounds, patience, threads, seed):
    import xgboost as xgb

    train, valid = fold.train, fold.valid
    dtrain = xgb.DMatrix(train.X, label=train.y, group=train.group, nthread=threads)
    dvalid = xgb.DMatrix(valid.X, label=valid.y, group=valid.group, nthread=threads)
    params = {"tree_method": "hist", "eta": config["learning_rate"], "eval_metric": "ndcg@10",
              "nthread": threads, "seed": seed, "max_depth": 6}
    obj = None
    if "loss" in config:
        obj = _objective("xgboost", config["loss"])
        params["base_score"] = 0.0
        params.update(config.get("params", {}))
    else:
        params.update(config["params"])
    start = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=max_rounds, evals=[(dvalid, "valid")], obj=obj,
                        early_stopping_rounds=patience, verbose_eval=False)
    seconds = time.perf_counter() - start
    rounds = booster.num_boosted_rounds()
    best = booster.best_iteration + 1

    def predict(data):
        return booster.predict(xgb.DMatrix(data.X, nthread=threads), output_margin=True,
                               iteration_range=(0, best))

    predict.booster = booster  # for callers that read the model itself (a teacher's feature importance)
    return best, rounds, seconds, predict


def _lgb_fit(config, fold, max_rounds, patience, threads, seed):
    import lightgbm as lgb

    train, valid = fold.train, fold.valid
    params = {"learning_rate": config["learning_rate"], "metric": "ndcg", "eval_at": [10],
              "num_threads": threads, "seed": seed, "verbose": -1, "deterministic": True,
              "force_row_wise": True}
    dataset_params = {"verbose": -1}
    if "loss" in config:
        params["objective"] = _objective("lightgbm", config["loss"])
        params.update(config.get("params", {}))
        # LightGBM aborts a custom objective on a Dataset whose features were all pre-filtered (a small
        # training split); see selboost.objectives.set_init_score. The trees stay the same.
        dataset_params["feature_pre_filter"] = False
    else:
        params.update(config["params"])
    dtrain = lgb.Dataset(train.X, label=train.y, group=train.group, params=dataset_params)
    dvalid = lgb.Dataset(valid.X, label=valid.y, group=valid.group, reference=dtrain, params=dataset_params)
    start = time.perf_counter()
    booster = lgb.train(params, dtrain, num_boost_round=max_rounds, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)])
    seconds = time.perf_counter() - start
    rounds = booster.current_iteration()
    best = booster.best_iteration if booster.best_iteration > 0 else rounds

    def predict(data):
        return booster.predict(data.X, raw_score=True, num_iteration=best)

    return best, rounds, seconds, predict


#: the benchmark's own training code for each engine: built-in objectives, the engine's own NDCG for
#: early stopping, and selboost objectives through the same calls
_FIT = {"xgboost": _xgb_fit, "lightgbm": _lgb_fit}


def fit_config(method, config, fold, max_rounds, patience, threads, seed=0):
    """Train one configuration; returns (best_round, rounds_run, seconds, predict)."""
    return _FIT[method.engine](config, fold, max_rounds, patience, threads, seed)


def _scores(data, prediction):
    return {k: _ndcg(data, prediction, k) for k in KS}


def run_method_on_fold(method, fold, max_rounds, patience, threads, progress=None):
    """Tune ``method`` on the fold's validation split and score the chosen configuration on test."""
    best = None
    trials = []
    # a warm-up fit of 2 rounds first, timed apart: the first fit of a selboost method compiles its
    # Numba kernels (seconds with an empty cache), which the seconds per round must not include
    warmup_seconds = fit_config(method, method.grid[0], fold, 2, patience, threads)[2]
    for config in method.grid:
        best_round, rounds, seconds, predict = fit_config(method, config, fold, max_rounds, patience, threads)
        valid_score = _ndcg(fold.valid, predict(fold.valid), 10, "excluded")
        trial = {"config": config["label"], "valid_ndcg@10": valid_score, "best_round": best_round,
                 "rounds_run": rounds, "seconds": seconds}
        trials.append(trial)
        if best is None or valid_score > best[0]["valid_ndcg@10"]:
            best = (trial, predict)
        if progress is not None:
            progress.set_postfix_str(f"{fold.name} {method.name} {config['label']}")
            progress.update(1)
    trial, predict = best
    prediction = predict(fold.test)
    per_query = _scores(fold.test, prediction)
    seconds = sum(t["seconds"] for t in trials)
    rounds = sum(t["rounds_run"] for t in trials)
    return {
        "chosen": trial,
        "trials": trials,
        "seconds_per_round": seconds / max(rounds, 1),
        "warmup_seconds": warmup_seconds,
        "test": {conv: {f"ndcg@{k}": _ndcg(fold.test, prediction, k, conv) for k in KS} for conv in CONVENTIONS},
        "per_query": {f"ndcg@{k}": per_query[k] for k in KS},
        "prediction": prediction,
    }


def run_benchmark(folds, methods, max_rounds=500, patience=50, threads=None, progress=True):
    """Every method on every fold; returns the raw result dict (see ``summarize``)."""
    threads = threads or os.cpu_count() or 1
    total = sum(len(m.grid) for m in methods) * len(folds)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="selboost bench", unit="fit", dynamic_ncols=True)
    results = {m.name: {} for m in methods}
    try:
        for fold in folds:
            for method in methods:
                results[method.name][fold.name] = run_method_on_fold(
                    method, fold, max_rounds, patience, threads, bar)
    finally:
        if bar is not None:
            bar.close()
    return results


# ---------------------------------------------------------------- summary


def _pooled(results, name, k):
    """Per-query NDCG@k of a method, all folds pooled (queries with a relevant document only)."""
    values = np.concatenate([fold["per_query"][f"ndcg@{k}"] for fold in results[name].values()])
    return values[~np.isnan(values)]


def paired_comparison(results, reference):
    """Each method against ``reference`` per query (NDCG@k, relevant-document queries, folds pooled)."""
    from scipy import stats

    out = {}
    for name in results:
        out[name] = {}
        for k in KS:
            a = _pooled(results, name, k)
            b = _pooled(results, reference, k)
            diff = a - b
            nonzero = diff[diff != 0]
            if name == reference or nonzero.size == 0:
                p_wilcoxon = p_t = 1.0
            else:
                p_wilcoxon = signed_rank_p(diff)
                p_t = float(stats.ttest_rel(a, b).pvalue) if np.std(diff) > 0 else 1.0
            out[name][f"ndcg@{k}"] = {
                "mean_diff": float(diff.mean()),
                "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum()),
                "p_wilcoxon": p_wilcoxon, "p_ttest": p_t, "n_queries": int(diff.size),
            }
    return out


def summarize(results, folds):
    """Fold-averaged test NDCG per convention, seconds per round, chosen configs, and the paired test."""
    summary = {}
    for name, per_fold in results.items():
        entry = {"test": {}, "seconds_per_round": float(np.mean([f["seconds_per_round"] for f in per_fold.values()])),
                 "warmup_seconds": float(np.mean([f["warmup_seconds"] for f in per_fold.values()])),
                 "chosen": {fold: f["chosen"]["config"] for fold, f in per_fold.items()},
                 "best_round": {fold: f["chosen"]["best_round"] for fold, f in per_fold.items()}}
        for conv in CONVENTIONS:
            entry["test"][conv] = {
                f"ndcg@{k}": float(np.mean([f["test"][conv][f"ndcg@{k}"] for f in per_fold.values()])) for k in KS
            }
        summary[name] = entry
    candidates = [n for n in LAMBDAMART if n in summary]
    reference = max(candidates, key=lambda n: summary[n]["test"]["excluded"]["ndcg@10"]) if candidates else None
    paired = paired_comparison(results, reference) if reference else {}
    first = next(iter(results.values()), {})
    counts = {fold: {"queries": int(r["per_query"]["ndcg@10"].size),
                     "no_relevant": int(np.isnan(r["per_query"]["ndcg@10"]).sum())} for fold, r in first.items()}
    return {"methods": summary, "reference": reference, "paired": paired, "test_queries": counts}


def _fmt_p(p):
    return "1" if p >= 0.9995 else (f"{p:.3f}" if p >= 1e-3 else f"{p:.0e}")


def paired_table(paired, reference, ks=(1, 10)):
    """Markdown rows of ``paired_comparison``'s result, ``reference`` left out: mean difference,
    wins/ties/losses and the two p-values at each NDCG@k of ``ks``."""
    head = "| method | " + " | ".join(f"ΔNDCG@{k} | W/T/L @{k} | p (W, t) @{k}" for k in ks) + " |"
    lines = [head, "|---|" + "---|---|---|" * len(ks)]
    for name, cmp in paired.items():
        if name == reference:
            continue
        row = [name]
        for k in ks:
            c = cmp[f"ndcg@{k}"]
            row += [f"{c['mean_diff']:+.4f}", f"{c['wins']}/{c['ties']}/{c['losses']}",
                    f"{_fmt_p(c['p_wilcoxon'])}, {_fmt_p(c['p_ttest'])}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def markdown_table(summary, header=""):
    """The headline tables as Markdown."""
    lines = [header] if header else []
    ref = summary["reference"]
    counts = summary.get("test_queries", {})
    total = sum(c["queries"] for c in counts.values())
    none = sum(c["no_relevant"] for c in counts.values())
    lines += ["", f"Test queries: {total} over {len(counts)} fold(s), {none} of them with no relevant document"
              + (" (so both conventions give the same numbers)." if none == 0 else ".")]
    for conv, text in CONVENTIONS.items():
        lines += ["", f"Test NDCG, {text}; mean over folds:", "",
                  "| method | NDCG@1 | NDCG@3 | NDCG@5 | NDCG@10 | s/round | warm-up fit s |",
                  "|---|---|---|---|---|---|---|"]
        best = {k: max(m["test"][conv][f"ndcg@{k}"] for m in summary["methods"].values()) for k in KS}
        for name, m in summary["methods"].items():
            cells = []
            for k in KS:
                v = m["test"][conv][f"ndcg@{k}"]
                cells.append(f"**{v:.4f}**" if math.isclose(v, best[k]) else f"{v:.4f}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['seconds_per_round'] * 1e3:.1f} ms "
                         f"| {m['warmup_seconds']:.2f} |")
    if ref:
        lines += ["", f"Paired per-query comparison against the best LambdaMART (`{ref}`), queries with a "
                  "relevant document, folds pooled: mean difference, wins/ties/losses, Wilcoxon signed-rank "
                  "p and paired t-test p:", ""]
        lines += paired_table(summary["paired"], ref)
    lines += ["", "Chosen configuration per fold (validation NDCG@10) and its best round:", ""]
    for name, m in summary["methods"].items():
        chosen = ", ".join(f"{fold}: {cfg} @{m['best_round'][fold]}" for fold, cfg in m["chosen"].items())
        lines.append(f"- {name}: {chosen}")
    return "\n".join(lines) + "\n"


def plot(summary, path, title):
    """Grouped bars of test NDCG@k (relevant-document queries) and the paired difference at @1 and @10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["methods"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(names)
    colors = plt.cm.tab20(np.arange(len(names)) % 20)
    for i, name in enumerate(names):
        values = [summary["methods"][name]["test"]["excluded"][f"ndcg@{k}"] for k in KS]
        ax1.bar(np.arange(len(KS)) + i * width, values, width, label=name, color=colors[i])
    ax1.set_xticks(np.arange(len(KS)) + 0.4 - width / 2, [f"NDCG@{k}" for k in KS])
    low = min(summary["methods"][n]["test"]["excluded"][f"ndcg@{k}"] for n in names for k in KS)
    high = max(summary["methods"][n]["test"]["excluded"][f"ndcg@{k}"] for n in names for k in KS)
    ax1.set_ylim(max(0.0, low - 0.05), high + 0.02)
    ax1.set_ylabel("test NDCG (queries with a relevant doc)")
    ax1.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax1.set_title(title, fontsize=9)
    ref = summary["reference"]
    if ref:
        others = [n for n in names if n != ref]
        y = np.arange(len(others))
        for j, k in enumerate((1, 10)):
            diffs = [summary["paired"][n][f"ndcg@{k}"]["mean_diff"] for n in others]
            ax2.barh(y + (j - 0.5) * 0.4, diffs, 0.4, label=f"NDCG@{k}", color=("tab:blue", "tab:orange")[j])
        ax2.set_yticks(y, others, fontsize=7)
        ax2.axvline(0.0, color="black", lw=0.8)
        ax2.set_xlabel(f"mean per-query difference vs {ref}")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [None if (isinstance(x, float) and math.isnan(x)) else x for x in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_outputs(results, folds, out_dir, meta, save_predictions=False):
    """Write ``results.json``, ``results.md`` and ``ndcg.png`` into ``out_dir``; returns the summary."""
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(results, folds)
    raw = {}
    for name, per_fold in results.items():
        raw[name] = {}
        for fold_name, r in per_fold.items():
            entry = {key: value for key, value in r.items() if key != "prediction"}
            if save_predictions:
                entry["prediction"] = r["prediction"]
            raw[name][fold_name] = entry
    document = {"meta": meta, "conventions": CONVENTIONS, "summary": summary, "results": raw}
    if save_predictions:
        document["test_data"] = {f.name: {"y": f.test.y, "group": f.test.group} for f in folds}
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(_jsonable(document), handle, indent=1)
    header = f"# selboost bench: {meta['data']}\n\nCommand: `{meta['command']}`\n\n{meta['protocol']}"
    text = markdown_table(summary, header)
    with open(os.path.join(out_dir, "results.md"), "w") as handle:
        handle.write(text)
    plot(summary, os.path.join(out_dir, "ndcg.png"), meta["data"])
    return summary, text
