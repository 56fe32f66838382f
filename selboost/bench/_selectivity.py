"""What the two selectivity studies (``bench synthetic``, ``bench regression``) share: the methods over
a strength range, the tuning protocol, the region metrics, Pareto fronts, paired tests and the plots.

Methods, for an important region R = [lo, hi] of the targets (one side may be open) and a strength s:

- ``square``: square loss (s = 1, the reference every family starts from);
- ``up-weighting``: square loss with sample weight s on the rows whose *target* lies in R, 1 elsewhere;
- ``selective``: ``RegionLoss(lo, hi, strength=s)``, piecewise shape: h' = s inside R, 1 outside, so
  that an error between a target and a prediction both inside R counts s times, as under up-weighting,
  and a prediction that crosses into R from outside pays s on the part of its path inside R. Piecewise
  rather than smooth: its strength means exactly what the weight means, it takes one-sided regions
  (the bike-sharing region is), and it costs no exponentials;
- ``up-weighting + selective``: weight sqrt(s) on the rows inside and ``RegionLoss`` strength sqrt(s),
  so that an error with target and prediction inside counts s times, as in the two others.

Protocol (the same for every method and strength): for each learning rate in the grid, boost up to
``max_rounds`` rounds and stop early (``patience`` rounds without improvement) on the method's *own*
loss on the validation split: the selective loss for the selective methods, square loss weighted by the
method's sample weights for the weighted ones (``selboost.LossMetric``, with the validation rows
weighted by the same rule); the learning rate whose best validation loss is lowest is kept, at its best
round (and, where a study says so, the method is then refitted on the fit and validation splits
together with that learning rate and number of rounds). The test split is only scored.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
import time

import numpy as np

from selboost.bench._stats import signed_rank_p
from selboost.bench.report import pyplot, save_figure
from selboost.links import Identity
from selboost.losses import SelectiveLoss
from selboost.metrics import (LossMetric, region_f1, region_precision, region_recall, region_rmse)
from selboost.regions import RegionLoss

STRENGTHS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FAMILIES = ("square", "up-weighting", "selective", "up-weighting + selective")
#: the metric columns of every table and JSON row
METRICS = ("rmse_inside", "rmse_outside", "rmse_either", "precision", "recall", "f1", "rmse_all")
METRIC_NAMES = {"rmse_inside": "RMSE inside", "rmse_outside": "RMSE outside", "rmse_either": "RMSE either",
                "precision": "precision", "recall": "recall", "f1": "F1", "rmse_all": "RMSE all"}
#: the Pareto views: (x, y, both minimised?) and their short names in the tables
VIEWS = {"io": ("rmse_outside", "rmse_inside", True), "eo": ("rmse_outside", "rmse_either", True),
         "pr": ("recall", "precision", False)}


@dataclasses.dataclass
class RegionStudyMethod:
    """One loss of a study: its family, the strength (for sorting and plots), the strength's label,
    the loss (region in the targets' units) and the sample weight on rows whose target is inside."""

    family: str
    strength: float
    label: str
    loss: SelectiveLoss
    weight: float = 1.0

    @property
    def name(self):
        return f"{self.family} {self.label}"


def _fmt_strength(value):
    return f"{value:g}"


def region_methods(lo, hi, strengths=STRENGTHS):
    """The four region families over ``strengths`` (s = 1 once, as ``square``)."""
    low = None if math.isinf(lo) else lo
    high = None if math.isinf(hi) else hi
    methods = [RegionStudyMethod("square", 1.0, "1", SelectiveLoss(Identity()))]
    for s in strengths:
        if s == 1.0:
            continue
        label = _fmt_strength(s)
        methods.append(RegionStudyMethod("up-weighting", s, label, SelectiveLoss(Identity()), weight=s))
        methods.append(RegionStudyMethod("selective", s, label, RegionLoss(low, high, strength=s)))
        root = math.sqrt(s)
        methods.append(RegionStudyMethod("up-weighting + selective", s, label,
                              RegionLoss(low, high, strength=root), weight=root))
    return methods


def row_weights(y, lo, hi, weight):
    """``weight`` on rows whose target lies in [lo, hi], 1 elsewhere (None when weight is 1)."""
    if weight == 1.0:
        return None
    return np.where((y >= lo) & (y <= hi), weight, 1.0)


def fit_tuned(method, X_fit, y_fit, X_valid, y_valid, X_test, lo, hi, *, engine, learning_rates, max_depth,
              max_rounds, patience, threads, seed, refit=None, sample_weights=None):
    """Tune ``method`` on the validation split (see the module docstring) and predict the test rows.
    ``refit=(method, X, y, lo, hi)``: then fit that method (the same loss, its region resolved on ``y``)
    on X, y with the chosen learning rate and number of rounds, and predict with it instead.
    ``sample_weights=(w_fit, w_valid)``: the fit and validation rows' weights (None for none), in place
    of the region rule's (``method.weight`` inside [lo, hi]). Returns a dict: the test prediction, the
    chosen learning rate and rounds, its validation loss, every trial, and the seconds all the fits
    took."""
    from threadpoolctl import threadpool_limits

    from selboost.estimators import SelectiveRegressor

    # prediction data objects are built on OpenMP's default of every core, whatever n_jobs says: on
    # small data with busy cores that costs more than the fit itself
    with threadpool_limits(limits=threads):
        return _fit_tuned(SelectiveRegressor, method, X_fit, y_fit, X_valid, y_valid, X_test, lo, hi,
                          engine=engine, learning_rates=learning_rates, max_depth=max_depth,
                          max_rounds=max_rounds, patience=patience, threads=threads, seed=seed, refit=refit,
                          sample_weights=sample_weights)


def _fit_tuned(SelectiveRegressor, method, X_fit, y_fit, X_valid, y_valid, X_test, lo, hi, *, engine,  # noqa: N803
               learning_rates, max_depth, max_rounds, patience, threads, seed, refit, sample_weights):
    start = time.perf_counter()
    if sample_weights is None:
        w_fit = row_weights(y_fit, lo, hi, method.weight)
        w_valid = row_weights(y_valid, lo, hi, method.weight)
    else:
        w_fit, w_valid = sample_weights
    trials, best = [], None
    for lr in learning_rates:
        model = SelectiveRegressor(
            loss=method.loss, engine=engine, n_estimators=max_rounds, learning_rate=lr, max_depth=max_depth,
            num_leaves=2 ** max_depth, early_stopping_rounds=patience, eval_metric=LossMetric(method.loss),
            n_jobs=threads, random_state=seed)
        model.fit(X_fit, y_fit, sample_weight=w_fit, eval_set=[(X_valid, y_valid)], eval_sample_weight=[w_valid])
        score = model.best_score_
        score = math.inf if score is None or not math.isfinite(score) else float(score)
        rounds = max_rounds if model.best_iteration_ is None else model.best_iteration_ + 1
        trials.append({"learning_rate": lr, "rounds": rounds, "valid_loss": score})
        if best is None or score < best[0]:
            best = (score, lr, rounds, model)
    score, lr, rounds, model = best
    if refit is not None:
        final, X_all, y_all, lo_all, hi_all = refit
        model = SelectiveRegressor(
            loss=final.loss, engine=engine, n_estimators=rounds, learning_rate=lr, max_depth=max_depth,
            num_leaves=2 ** max_depth, n_jobs=threads, random_state=seed)
        model.fit(X_all, y_all, sample_weight=row_weights(y_all, lo_all, hi_all, final.weight))
    prediction = np.asarray(model.predict(X_test), dtype=np.float64)
    return {"prediction": prediction, "learning_rate": lr, "rounds": rounds, "valid_loss": score,
            "trials": trials, "seconds": time.perf_counter() - start}


def region_scores(y, pred, lo, hi):
    """The region metrics of one prediction (all NaN when a prediction is not finite: a diverged fit)."""
    keys = (*METRICS, "bias_inside")
    if not np.all(np.isfinite(pred)):
        return {key: float("nan") for key in keys}  # the metrics refuse non-finite predictions
    out = {"rmse_inside": region_rmse(y, pred, lo, hi), "rmse_outside": region_rmse(y, pred, lo, hi, rows="outside"),
           "rmse_either": region_rmse(y, pred, lo, hi, rows="either"),
           "precision": region_precision(y, pred, lo, hi), "recall": region_recall(y, pred, lo, hi),
           "f1": region_f1(y, pred, lo, hi), "rmse_all": float(np.sqrt(np.mean((pred - y) ** 2)))}
    inside = (y >= lo) & (y <= hi)
    out["bias_inside"] = float(np.mean(pred[inside] - y[inside]))
    return out


def row_sets(y, pred_a, pred_b, lo, hi):
    """Which rows a paired comparison of two predictions uses: target inside, target outside, and
    "either" = target inside or either prediction inside (the rows that can count under "either" for
    one of the two)."""
    def within(v):
        return (v >= lo) & (v <= hi)

    inside = within(y)
    return {"inside": inside, "outside": ~inside, "either": inside | within(pred_a) | within(pred_b)}


def wilcoxon(a, b):
    """Paired comparison of per-unit squared errors a against b: mean of a - b, the share of units where
    a is smaller, and the two-sided Wilcoxon signed-rank p-value (1 when every difference is 0)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a - b
    if diff.size == 0 or not np.all(np.isfinite(diff)):
        return {"mean_diff": float("nan"), "a_smaller": float("nan"), "p_wilcoxon": float("nan"), "n": int(diff.size)}
    p = signed_rank_p(diff)
    return {"mean_diff": float(diff.mean()), "a_smaller": float(np.mean(diff < 0)), "p_wilcoxon": p,
            "n": int(diff.size)}


def pareto_front(points, minimise):
    """Indices of the (x, y) points no other point beats on both (lower is better when ``minimise``,
    higher otherwise); points with a NaN are never on it."""
    sign = 1.0 if minimise else -1.0
    pts = [(sign * x, sign * y) for x, y in points]
    front = []
    for i, (x, y) in enumerate(pts):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        if not any(np.isfinite(u) and np.isfinite(v) and u <= x and v <= y and (u < x or v < y)
                   for j, (u, v) in enumerate(pts) if j != i):
            front.append(i)
    return front


def front_marks(rows):
    """For each row (dicts with the METRICS), the views (``VIEWS`` keys) whose Pareto front it is on."""
    marks = [[] for _ in rows]
    for key, (x, y, minimise) in VIEWS.items():
        for i in pareto_front([(r[x], r[y]) for r in rows], minimise):
            marks[i].append(key)
    return [",".join(m) for m in marks]


def fmt_p(p):
    if p is None or not np.isfinite(p):
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


_MARKERS = {"square": "*", "up-weighting": "o", "selective": "s", "up-weighting + selective": "D",
            "sigmoid bump": "^", "identity + exp": "v", "relevance weights": "o", "relevance link": "s",
            "weights + link": "D"}


def _off_chart(rows, keys):
    """Rows whose error on one of ``keys`` is over three times square loss's (diverged, or far off)."""
    square = next(r for r in rows if r["family"] == "square")
    return [r for r in rows if any(not np.isfinite(r[k]) or r[k] > 3.0 * square[k] for k in keys)]


def plot_views(rows, views, path, title, spread=None, region_text="inside", labels=None):
    """One panel per view of ``rows`` (dicts: family, strength, label and the metrics the views name), a
    line per family over its strengths starting from square loss, the Pareto front dashed. A view is a
    ``VIEWS`` key or an (x metric, y metric, both minimised?) triple; ``labels``: axis labels of metrics
    beyond the region metrics. ``spread``: for each row, a dict of standard deviations per metric (error
    bars)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(views), figsize=(6.0 * len(views), 5.2), squeeze=False)
    square = next(r for r in rows if r["family"] == "square")
    labels = {"rmse_inside": f"test RMSE {region_text}", "rmse_outside": "test RMSE outside the region",
              "rmse_either": "test RMSE on rows whose target or prediction is inside",
              "precision": "precision of 'predicted inside'", "recall": "recall of 'predicted inside'",
              **(labels or {})}
    for ax, view in zip(axes[0], views):
        x_key, y_key, minimise = VIEWS[view] if isinstance(view, str) else view
        # the precision / recall view leaves out what the error views leave out (diverged fits)
        keys = [k for k in (x_key, y_key) if k.startswith(("rmse", "sera"))] or ["rmse_inside", "rmse_outside"]
        off = _off_chart(rows, keys)
        shown = [i for i, r in enumerate(rows) if r not in off]
        families = list(dict.fromkeys(rows[i]["family"] for i in shown))
        for family in families:
            part = [i for i in shown if rows[i]["family"] == family]
            if family != "square" and square not in off:
                part = [rows.index(square)] + part
            part.sort(key=lambda i: rows[i]["strength"])
            xs = [rows[i][x_key] for i in part]
            ys = [rows[i][y_key] for i in part]
            if spread is not None and family != "square":
                ax.errorbar(xs, ys, xerr=[spread[i][x_key] for i in part], yerr=[spread[i][y_key] for i in part],
                            fmt="none", lw=0.6, alpha=0.5, color="gray")
            ax.plot(xs, ys, marker=_MARKERS.get(family, "o"), ms=11 if family == "square" else 5, label=family,
                    lw=0 if family == "square" else 1, zorder=3 if family == "square" else 2)
            for i, x, y in zip(part, xs, ys):
                if rows[i]["family"] != "square":
                    ax.annotate(rows[i]["label"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = sorted((rows[shown[j]][x_key], rows[shown[j]][y_key])
                       for j in pareto_front([(rows[i][x_key], rows[i][y_key]) for i in shown], minimise))
        if front:
            ax.plot(*zip(*front), color="black", lw=0.6, ls="--", label="Pareto front")
        ax.set_xlabel(labels[x_key] + (" (lower better)" if minimise else " (higher better)"), fontsize=8)
        ax.set_ylabel(labels[y_key], fontsize=8)
        sub = title
        if off:
            names = ", ".join(f"{r['family']} {r['label']}" for r in off)
            sub += "\n" + textwrap.fill("off the chart (error > 3x square loss's): " + names, 90)
        ax.set_title(sub, fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
