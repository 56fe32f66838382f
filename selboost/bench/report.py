"""What the ``selboost bench`` commands share: their progress bar, output files and figures, and the
ranking benchmarks' protocol and report.

Every command shows a progress bar (``progress_bar``), writes ``<name>.json`` and ``<name>.md`` into its
output folder (``write_report``) and draws its figures with ``pyplot`` / ``save_figure``.

The ranking benchmarks (``selboost bench``, ``selboost bench distill``) also share their protocol:

- a ``RankingMethod`` is an engine and a tuning grid; each configuration of the grid trains through the
  engine (``fit_config``, ``Engine.train_ranking``: a built-in objective and a selboost loss alike) up to
  ``max_rounds`` rounds with early stopping on the validation split's NDCG@10 (the engine's own metric);
- ``tune`` keeps the configuration with the best validation NDCG@10 (``selboost.metrics.ndcg``,
  queries with no relevant document left out); ``run_method_on_fold`` times a 2-round warm-up fit
  first, tunes, and scores the chosen configuration on the test split (``result_on_test``);
- the report: test NDCG@``KS`` under both ``CONVENTIONS`` for queries with no relevant document,
  averaged over folds (``mean_test_ndcg``), the chosen configurations (``chosen_configs``,
  ``chosen_lines``), and a paired per-query comparison against a reference method
  (``paired_comparison``, ``paired_table``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from selboost.bench._stats import signed_rank_p
from selboost.engines import get_engine
from selboost.metrics import ndcg, ndcg_per_query

__all__ = ["Progress", "NO_PROGRESS", "progress_bar", "write_report", "jsonable", "pyplot", "save_figure", "KS",
           "CONVENTIONS", "RankingMethod", "config_grid", "SumLoss", "engine_objective", "ConfigFit", "fit_config",
           "tune", "result_on_test", "run_method_on_fold", "ndcg_of", "mean_test_ndcg", "mean_seconds_per_round",
           "chosen_configs", "count_test_queries", "pooled", "paired_comparison", "paired_table", "chosen_lines",
           "fmt_p"]

KS = (1, 3, 5, 10)

#: convention name -> what a query with no relevant document counts as
CONVENTIONS = {
    "excluded": "queries with no relevant document left out (mean over the others)",
    "as-one": "queries with no relevant document count as 1 (LightGBM's ndcg metric)",
}
#: each convention as ``selboost.metrics.ndcg``'s ``no_relevant``
NO_RELEVANT = {"excluded": "skip", "as-one": "one"}


# ---------------------------------------------------------------- progress and output files


class Progress:
    """A tqdm bar, or none (``Progress()``): ``advance(text)`` counts one step and shows ``text``."""

    def __init__(self, bar=None):
        self.bar = bar

    def advance(self, text):
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)


#: the progress of a run without a bar
NO_PROGRESS = Progress()


@contextlib.contextmanager
def progress_bar(total, description, unit, enabled=True):
    """A ``Progress`` over ``total`` steps, shown while the ``with`` block runs (nothing when not
    ``enabled``), and closed when it ends."""
    if not enabled:
        yield Progress()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True)
    try:
        yield Progress(bar)
    finally:
        bar.close()


def write_report(out_dir, name, document, text):
    """Create ``out_dir`` and write ``document`` as ``<name>.json`` (indented by 1) and ``text`` as
    ``<name>.md``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as handle:
        json.dump(document, handle, indent=1)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as handle:
        handle.write(text)


def jsonable(value):
    """``value`` with NumPy arrays and numbers as Python lists and numbers, and NaN as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [None if (isinstance(x, float) and math.isnan(x)) else x for x in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def pyplot():
    """``matplotlib.pyplot`` drawing into files only (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, **options):
    """Save ``fig`` as a PNG at 90 dpi (``options`` go to ``savefig``) and close it."""
    fig.savefig(path, dpi=90, **options)
    pyplot().close(fig)


# ---------------------------------------------------------------- ranking methods and their fits


@dataclass(frozen=True)
class RankingMethod:
    """A ranking method: an engine, a family, and its tuning grid (list of configuration dicts).

    A configuration holds ``learning_rate``, a short ``label`` for the tables, and engine parameters
    (``params``, with a built-in ``objective``), a selboost loss (``loss``), or both.
    """

    name: str
    engine: str
    family: str
    grid: tuple = field(repr=False)
    default: bool = True


def config_grid(second, learning_rates):
    """A tuning grid: every learning rate times each (label, dict) of a method's own second setting."""
    return tuple({"learning_rate": lr, "label": f"lr={lr} {label}", **extra}
                 for lr in learning_rates for label, extra in second)


@dataclass
class ConfigFit:
    """One configuration trained on a fold: its best round (1-based), the rounds it ran, the seconds the
    training took, and the booster of the engine that trained it."""

    best_round: int
    rounds_run: int
    seconds: float
    booster: object
    engine: object

    def predict(self, data):
        """Raw scores of the model at its best round on ``data`` (a ``RankingSet``)."""
        return self.engine.predict_raw(self.booster, data.X, 0.0, (0, self.best_round))


class SumLoss:
    """A weighted sum of listwise/pairwise losses on the same data: grad = sum_k w_k grad_k, hess likewise.

    (A benchmark-side mixture; each part runs through its own engine objective.)"""

    def __init__(self, parts):
        self.parts = tuple((float(w), loss) for w, loss in parts)

    def __repr__(self):
        return " + ".join(f"{w:g}*{loss!r}" for w, loss in self.parts)


def engine_objective(engine, loss):
    """The custom objective of ``loss`` (a selboost loss or a ``SumLoss``) for ``engine``: its
    ``selboost.objectives`` adapter, serial kernels by default."""
    if isinstance(loss, SumLoss):
        objectives = [(w, engine.objective(part)) for w, part in loss.parts]

        def summed(preds, data):
            grad = hess = 0.0
            for w, objective in objectives:
                g, h = objective(preds, data)
                grad = grad + w * np.asarray(g, dtype=np.float64)
                hess = hess + w * np.asarray(h, dtype=np.float64)
            return grad.astype(np.float32), hess.astype(np.float32)

        return summed
    return engine.objective(loss)


def fit_config(method, config, fold, max_rounds, patience, threads, seed=0):
    """Train one configuration of ``method`` on ``fold.train`` with early stopping on ``fold.valid``.

    A configuration with a ``loss`` trains on its engine objective (``engine_objective``), one without
    on the built-in objective its ``params`` name: both through ``Engine.train_ranking``. Returns a
    ``ConfigFit``.
    """
    engine = get_engine(method.engine)
    params = engine.native_params(learning_rate=config["learning_rate"])
    if "loss" in config:
        params["objective"] = engine_objective(engine, config["loss"])
    params.update(config.get("params", {}))
    train, valid = fold.train, fold.valid
    start = time.perf_counter()
    result = engine.train_ranking(params, (train.X, train.y, train.group), (valid.X, valid.y, valid.group),
                                  num_boost_round=max_rounds, early_stopping_rounds=patience, threads=threads,
                                  seed=seed)
    seconds = time.perf_counter() - start
    return ConfigFit(result.best_iteration + 1, engine.num_rounds(result.booster), seconds, result.booster, engine)


def ndcg_of(data, prediction, k, convention=None):
    """NDCG@k of ``prediction`` on ``data``, gains 2^r - 1, tied scores averaged: per query (NaN where no
    document is relevant) without ``convention``, else the mean under that one of ``CONVENTIONS``."""
    if convention is None:
        return ndcg_per_query(data.y, prediction, data.group, k, no_relevant="skip", ties="average")
    return ndcg(data.y, prediction, data.group, k, no_relevant=NO_RELEVANT[convention], ties="average")


def tune(method, fold, max_rounds, patience, threads, progress=NO_PROGRESS):
    """Every configuration of ``method`` on the fold; returns (chosen config, its trial, all trials, its
    ``ConfigFit``), chosen by validation NDCG@10 (the first of equals)."""
    chosen = None
    trials = []
    for config in method.grid:
        fit = fit_config(method, config, fold, max_rounds, patience, threads)
        valid_score = ndcg_of(fold.valid, fit.predict(fold.valid), 10, "excluded")
        trial = {"config": config["label"], "valid_ndcg@10": valid_score,
                 "best_round": fit.best_round, "rounds_run": fit.rounds_run, "seconds": fit.seconds}
        trials.append(trial)
        if chosen is None or trial["valid_ndcg@10"] > chosen[1]["valid_ndcg@10"]:
            chosen = (config, trial, fit)
        progress.advance(f"{fold.name} {method.name} {config['label']}")
    config, trial, fit = chosen
    return config, trial, trials, fit


def result_on_test(fold, trial, trials, fit, warmup_seconds):
    """A tuned method's result on the fold: the chosen trial, every trial, seconds per round, the test
    NDCG under each convention and per query, and the test prediction."""
    prediction = fit.predict(fold.test)
    return {
        "chosen": trial,
        "trials": trials,
        "seconds_per_round": sum(t["seconds"] for t in trials) / max(sum(t["rounds_run"] for t in trials), 1),
        "warmup_seconds": warmup_seconds,
        "test": {conv: {f"ndcg@{k}": ndcg_of(fold.test, prediction, k, conv) for k in KS} for conv in CONVENTIONS},
        "per_query": {f"ndcg@{k}": ndcg_of(fold.test, prediction, k) for k in KS},
        "prediction": prediction,
    }


def run_method_on_fold(method, fold, max_rounds, patience, threads, progress=NO_PROGRESS):
    """Tune ``method`` on the fold's validation split and score the chosen configuration on test."""
    # a warm-up fit of 2 rounds first, timed apart: the first fit of a selboost method compiles its
    # Numba kernels (seconds with an empty cache), which the seconds per round must not include
    warmup_seconds = fit_config(method, method.grid[0], fold, 2, patience, threads).seconds
    _, trial, trials, fit = tune(method, fold, max_rounds, patience, threads, progress)
    return result_on_test(fold, trial, trials, fit, warmup_seconds)


# ---------------------------------------------------------------- summary over folds


def mean_test_ndcg(per_fold):
    """Test NDCG@k per convention of one method, mean over its folds' results."""
    folds = per_fold.values()
    return {conv: {f"ndcg@{k}": float(np.mean([f["test"][conv][f"ndcg@{k}"] for f in folds])) for k in KS}
            for conv in CONVENTIONS}


def mean_seconds_per_round(per_fold):
    return float(np.mean([f["seconds_per_round"] for f in per_fold.values()]))


def chosen_configs(per_fold):
    """The configuration chosen on each fold and its best round."""
    return {"chosen": {fold: f["chosen"]["config"] for fold, f in per_fold.items()},
            "best_round": {fold: f["chosen"]["best_round"] for fold, f in per_fold.items()}}


def count_test_queries(per_fold):
    """Per fold: the test queries and those with no relevant document."""
    return {fold: {"queries": int(r["per_query"]["ndcg@10"].size),
                   "no_relevant": int(np.isnan(r["per_query"]["ndcg@10"]).sum())} for fold, r in per_fold.items()}


def pooled(results, name, k):
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
            a = pooled(results, name, k)
            b = pooled(results, reference, k)
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


# ---------------------------------------------------------------- Markdown


def fmt_p(p):
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
                    f"{fmt_p(c['p_wilcoxon'])}, {fmt_p(c['p_ttest'])}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def chosen_lines(methods):
    """One Markdown list item per method of a summary: the configuration chosen on each fold and its best
    round."""
    lines = []
    for name, m in methods.items():
        chosen = ", ".join(f"{fold}: {cfg} @{m['best_round'][fold]}" for fold, cfg in m["chosen"].items())
        lines.append(f"- {name}: {chosen}")
    return lines
