"""The LambdaMART comparison: built-in ranking objectives against selboost's listwise and pairwise losses.

Protocol:
- each method's tuning grid holds the three ``LEARNING_RATES`` times two values of one method-specific
  setting (tree size for the built-in objectives, the transform's parameter for selboost) times two
  values of the brake on the leaf values: twelve configurations, the same budget for every method
  (``budget_text``). The brake is ``reg_lambda`` in ``REG_LAMBDAS`` (the two engines' defaults) for the
  built-in objectives and the pairwise losses, and the group weight in ``GROUP_SCALES`` for the listwise
  losses (on XGBoost a common group weight c trains the model that ``reg_lambda`` and
  ``min_child_weight`` divided by c train, see ``ListwiseLoss``); ``extra_methods`` holds the listwise losses with the plain softmax alone
  (``group_scale=None``, six configurations);
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

import math
import os

import numpy as np

from selboost.bench.report import (CONVENTIONS, KS, RankingMethod, SumLoss, chosen_configs, chosen_lines, config_grid,
                                   count_test_queries, jsonable, mean_seconds_per_round, mean_test_ndcg,
                                   paired_comparison, paired_table, progress_bar, pyplot, run_method_on_fold,
                                   save_figure, write_report)
from selboost.engines import ENGINE_NAMES, get_engine
from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid, Sinh
from selboost.losses import ListwiseLoss, PairwiseLoss, exponential_gain

__all__ = ["default_methods", "extra_methods", "all_methods", "select_methods", "budget_text", "run_benchmark",
           "summarize", "markdown_table", "plot", "write_outputs", "LEARNING_RATES", "REG_LAMBDAS", "GROUP_SCALES",
           "TREE_SIZES"]

LEARNING_RATES = (0.03, 0.1, 0.3)
#: the brake tuned for the built-in objectives and the pairwise losses: ``reg_lambda`` 0 (LightGBM's
#: default) or 1 (XGBoost's)
REG_LAMBDAS = (0.0, 1.0)
#: the brake tuned for the listwise losses: ``ListwiseLoss``'s default group weight, or none
GROUP_SCALES = ("auto", None)
LAMBDAMART = ("xgb rank:ndcg", "lgb lambdarank")


# ---------------------------------------------------------------- methods


def _grid(second):
    """Every learning rate of ``LEARNING_RATES`` times each (label, dict) of the method's own setting."""
    return config_grid(second, LEARNING_RATES)


def _listwise(transform, **kw):
    return ListwiseLoss(transform, **kw)


def _with_reg_lambda(engine, second):
    """Each (label, config) of ``second`` at every ``reg_lambda`` of ``REG_LAMBDAS``."""
    return [(f"{label} l2={lam:g}", {**config, "params": {**config.get("params", {}),
                                                          **engine.native_params(reg_lambda=lam)}})
            for label, config in second for lam in REG_LAMBDAS]


#: an engine's tree-size parameter -> (its label, the two values tuned)
TREE_SIZES = {"max_depth": ("depth", (4, 6)), "num_leaves": ("leaves", (15, 31))}


def default_methods(engines=ENGINE_NAMES):
    """The methods of the comparison, each with ``len(LEARNING_RATES) * 2 * 2`` configurations:

    - ``xgb rank:ndcg`` (max_depth 4 or 6), ``lgb lambdarank`` and ``lgb rank_xendcg`` (num_leaves 15
      or 31), each at ``reg_lambda`` 0 or 1, engine defaults otherwise;
    - ``selboost softmax``: ``ListwiseLoss((1 / tau) * Identity())``, tau in {0.5, 2} (ListNet-style);
    - ``selboost selective``: ``ListwiseLoss(Identity() + w * Sigmoid(2, 1))``, w in {1, 4}: sensitivity
      phi' = 1 + w near score 2, i.e. sharper among the high scores;
      both listwise losses with ``group_scale`` "auto" or None;
    - ``selboost pairwise``: ``PairwiseLoss(Identity(), pairs_per_item=k)``, k in {4, 16};
    - ``selboost pairwise selective``: ``PairwiseLoss(Identity() + w * Sigmoid(2, 1))``, w in {1, 4}
      (16 pairs per item): pairs among high scores weigh more, as LambdaMART's |delta NDCG| does;
      both pairwise losses at ``reg_lambda`` 0 or 1;
    each selboost loss on both engines, through ``selboost.objectives``, engine defaults otherwise.
    """
    methods = []
    for engine in map(get_engine, engines):  # each engine's built-in ranking objectives first
        size = engine.tree_size_param
        label, values = TREE_SIZES[size]
        for objective, family in engine.ranking_objectives.items():
            methods.append(RankingMethod(f"{engine.short_name} {objective}", engine.name, family, _grid(
                _with_reg_lambda(engine, [(f"{label}={v}", {"params": {"objective": objective, size: v}})
                                          for v in values]))))
    for engine in map(get_engine, engines):
        tag = engine.short_name
        methods.append(RankingMethod(f"{tag} selboost softmax", engine.name, "selboost", _softmax_grid(GROUP_SCALES)))
        methods.append(RankingMethod(f"{tag} selboost selective", engine.name, "selboost",
                                     _selective_grid(GROUP_SCALES)))
        methods.append(RankingMethod(f"{tag} selboost pairwise", engine.name, "selboost", _grid(_with_reg_lambda(
            engine, [(f"pairs/item={k}", {"loss": PairwiseLoss(Identity(), pairs_per_item=k)}) for k in (4, 16)]))))
        methods.append(RankingMethod(f"{tag} selboost pairwise selective", engine.name, "selboost", _grid(
            _with_reg_lambda(engine, [(f"z + {w:g}*sigmoid(2,1)",
                                       {"loss": PairwiseLoss(Identity() + w * Sigmoid(2.0, 1.0))})
                                      for w in (1.0, 4.0)]))))
    return methods


def _group_label(group_scale, group_scales):
    return f" group={group_scale}" if len(group_scales) > 1 else ""


def _softmax_grid(group_scales):
    return _grid([(f"tau={tau}{_group_label(g, group_scales)}",
                   {"loss": _listwise((1.0 / tau) * Identity(), group_scale=g)})
                  for tau in (0.5, 2.0) for g in group_scales])


def _selective_grid(group_scales):
    return _grid([(f"top-bump w={w}{_group_label(g, group_scales)}",
                   {"loss": _listwise(Identity() + w * Sigmoid(center=2.0, scale=1.0), group_scale=g)})
                  for w in (1.0, 4.0) for g in group_scales])


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
            methods.append(RankingMethod(f"{tag} {name}", engine, "selboost", _grid(second), default=False))

        # the default listwise methods with the plain softmax alone (group_scale=None), six configurations
        methods.append(RankingMethod(f"{tag} selboost softmax plain", engine, "selboost", _softmax_grid((None,)),
                                     default=False))
        methods.append(RankingMethod(f"{tag} selboost selective plain", engine, "selboost", _selective_grid((None,)),
                                     default=False))
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


def budget_text(methods):
    """The tuning budget of ``methods`` in words, for a report's protocol: the grid, and the
    configurations per method (which methods have more, where the grids differ)."""
    by_size = {}
    for method in methods:
        by_size.setdefault(len(method.grid), []).append(method.name)
    text = (f"learning rate in {list(LEARNING_RATES)} times two values of one method-specific setting, the default "
            f"methods also times two of a brake: reg_lambda in {list(REG_LAMBDAS)}, or for the listwise losses "
            f"group_scale in {list(GROUP_SCALES)}")
    if len(by_size) == 1:
        return f"the same budget for every method, {next(iter(by_size))} configurations ({text})"
    counts = "; ".join(f"{size} for {', '.join(names)}" for size, names in sorted(by_size.items()))
    return f"budgets differ, configurations: {counts} ({text})"


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


# ---------------------------------------------------------------- the comparison


def run_benchmark(folds, methods, max_rounds=500, patience=50, threads=None, progress=True):
    """Every method on every fold; returns the raw result dict (see ``summarize``)."""
    threads = threads or os.cpu_count() or 1
    total = sum(len(m.grid) for m in methods) * len(folds)
    results = {m.name: {} for m in methods}
    with progress_bar(total, "selboost bench", "fit", progress) as bar:
        for fold in folds:
            for method in methods:
                results[method.name][fold.name] = run_method_on_fold(method, fold, max_rounds, patience, threads,
                                                                     bar)
    return results


# ---------------------------------------------------------------- summary


def summarize(results, folds):
    """Fold-averaged test NDCG per convention, seconds per round, chosen configs, and the paired test."""
    summary = {}
    for name, per_fold in results.items():
        summary[name] = {"test": mean_test_ndcg(per_fold), "seconds_per_round": mean_seconds_per_round(per_fold),
                         "warmup_seconds": float(np.mean([f["warmup_seconds"] for f in per_fold.values()])),
                         **chosen_configs(per_fold)}
    candidates = [n for n in LAMBDAMART if n in summary]
    reference = max(candidates, key=lambda n: summary[n]["test"]["excluded"]["ndcg@10"]) if candidates else None
    paired = paired_comparison(results, reference) if reference else {}
    counts = count_test_queries(next(iter(results.values()), {}))
    return {"methods": summary, "reference": reference, "paired": paired, "test_queries": counts}


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
    lines += chosen_lines(summary["methods"])
    return "\n".join(lines) + "\n"


def plot(summary, path, title):
    """Grouped bars of test NDCG@k (relevant-document queries) and the paired difference at @1 and @10."""
    plt = pyplot()
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
    save_figure(fig, path)


def write_outputs(results, folds, out_dir, meta, save_predictions=False):
    """Write ``results.json``, ``results.md`` and ``ndcg.png`` into ``out_dir``; returns the summary."""
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
    header = f"# selboost bench: {meta['data']}\n\nCommand: `{meta['command']}`\n\n{meta['protocol']}"
    text = markdown_table(summary, header)
    write_report(out_dir, "results", jsonable(document), text)
    plot(summary, os.path.join(out_dir, "ndcg.png"), meta["data"])
    return summary, text
