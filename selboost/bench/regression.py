"""Selectivity study for regression: does a selective link buy accuracy where it matters, and at what cost?

Data: UCI Bike Sharing, hourly (Fanaee-T & Gama, "Event labeling combining ensemble detectors and
background knowledge", Progress in Artificial Intelligence, 2013, doi:10.1007/s13748-013-0040-3),
bundled in ``selboost/data`` and loaded by ``selboost.datasets.load_bike_sharing`` (its Readme asks only for that citation). Two targets: ``cnt`` (all rentals,
right-skewed) and ``casual`` (rentals by casual users, far more skewed). Features: season, yr, mnth, hr,
holiday, weekday, workingday, weathersit, temp, atemp, hum, windspeed (``casual``, ``registered`` and
``instant`` dropped). Split by time: train on the dates before ``SPLIT_DATE``, test on the later ones.

Important region: targets at or above the 90th percentile of the *training* target. For each loss the
study reports the test RMSE inside that region and outside it (and overall):

- square loss (XGBoost ``reg:squarederror``);
- square loss with the important region up-weighted (sample weight ``w`` there, 1 elsewhere);
- selective links, as custom objectives (``selboost.objectives.xgboost_objective``), each swept over
  its strength: ``identity + w * sigmoid(t, 0.2 t)`` (a bump of sensitivity at the threshold t),
  ``identity + exp(t, s)`` (sensitivity 1 + e^{(z - t)/s}: growing with the score, smaller s =
  stronger. The hessian h'(z) is taken at the prediction, so a row far above t that is predicted
  low gets a huge gradient over a modest hessian: at the strong end the Newton steps overshoot and
  training diverges (it does on ``casual`` at s = t/4, and for a pure ``exp`` link, whose sensitivity
  also falls towards 0 below t); the table shows it rather than hiding it) and
  ``piecewise([t], [1, m])`` (slope m above t).

Every model: the same trees (depth 6, learning rate 0.05, ``rounds`` rounds), started from the loss's
optimal constant.
"""

from __future__ import annotations

import json
import os

import numpy as np

from selboost.datasets import BIKE_SHARING_CITATION as CITATION
from selboost.datasets import BIKE_SHARING_FEATURES as FEATURES
from selboost.datasets import BIKE_SHARING_TARGETS as TARGETS
from selboost.datasets import load_bike_sharing
from selboost.links import Exp, Identity, PiecewiseLinear, Sigmoid
from selboost.losses import SelectiveLoss

__all__ = ["load_bike_sharing", "loss_grid", "run", "FEATURES", "SPLIT_DATE"]

SPLIT_DATE = "2012-07-01"
QUANTILE = 0.9


def loss_grid(threshold):
    """(family, strength label, strength value, spec) for every loss of the study; spec is
    ('builtin', weight) or ('selboost', SelectiveLoss)."""
    t = float(threshold)
    grid = [("square", "-", 1.0, ("builtin", 1.0))]
    for w in (2.0, 4.0, 8.0, 16.0):
        grid.append(("weighted square", f"w={w:g}", w, ("builtin", w)))
    for w in (1.0, 3.0, 9.0, 27.0):
        grid.append(("sigmoid bump", f"w={w:g}", w,
                     ("selboost", SelectiveLoss(Identity() + w * Sigmoid(center=t, scale=0.2 * t)))))
    for factor in (2.0, 1.0, 0.5, 0.25):
        grid.append(("identity + exp", f"s={factor:g}t", 1.0 / factor,
                     ("selboost", SelectiveLoss(Identity() + Exp(center=t, scale=factor * t)))))
    for m in (2.0, 4.0, 8.0, 16.0):
        grid.append(("piecewise", f"m={m:g}", m,
                     ("selboost", SelectiveLoss(PiecewiseLinear(knots=(t,), slopes=(1.0, m))))))
    return grid


def _fit_predict(spec, X_train, y_train, X_test, threshold, rounds, threads):
    import xgboost as xgb

    from selboost import objectives

    kind, value = spec
    params = {"tree_method": "hist", "eta": 0.05, "max_depth": 6, "nthread": threads, "seed": 0}
    if kind == "builtin":
        weight = np.where(y_train >= threshold, value, 1.0)
        dtrain = xgb.DMatrix(X_train, label=y_train, weight=weight, nthread=threads)
        params["objective"] = "reg:squarederror"
        booster = xgb.train(params, dtrain, num_boost_round=rounds)
        return booster.predict(xgb.DMatrix(X_test, nthread=threads))
    dtrain = xgb.DMatrix(X_train, label=y_train, nthread=threads)
    init = objectives.set_init_score(dtrain, value)
    booster = xgb.train(params, dtrain, num_boost_round=rounds, obj=objectives.xgboost_objective(value))
    dtest = xgb.DMatrix(X_test, nthread=threads)
    objectives.set_init_score(dtest, value, init=init)
    return booster.predict(dtest, output_margin=True)


def _rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")


def run(data=None, out_dir="selboost-results", rounds=400, threads=None, max_rows=None, progress=True, meta=None):
    """Run the study for both targets; writes regression.json, regression.md, regression-<target>.png."""
    threads = threads or os.cpu_count() or 1
    frame = load_bike_sharing(data, max_rows)
    is_train = (frame["dteday"] < SPLIT_DATE).to_numpy()
    if is_train.all() or not is_train.any():
        raise ValueError(f"--data: the time split at {SPLIT_DATE} leaves one side empty")
    X = frame[FEATURES].to_numpy(dtype=np.float64)
    results = {}
    jobs = [(target, item) for target in TARGETS for item in loss_grid(1.0)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="selboost bench regression", unit="fit", dynamic_ncols=True)
    try:
        for target in TARGETS:
            y = frame[target].to_numpy(dtype=np.float64)
            y_train, y_test = y[is_train], y[~is_train]
            threshold = float(np.quantile(y_train, QUANTILE))
            inside = y_test >= threshold
            rows = []
            for family, label, strength, spec in loss_grid(threshold):
                prediction = _fit_predict(spec, X[is_train], y_train, X[~is_train], threshold, rounds, threads)
                rows.append({
                    "family": family, "strength": label, "strength_value": strength,
                    "rmse_inside": _rmse(prediction[inside], y_test[inside]),
                    "rmse_outside": _rmse(prediction[~inside], y_test[~inside]),
                    "rmse_all": _rmse(prediction, y_test),
                    "bias_inside": float(np.mean(prediction[inside] - y_test[inside])) if inside.any() else None,
                })
                if bar is not None:
                    bar.set_postfix_str(f"{target} {family} {label}")
                    bar.update(1)
            results[target] = {
                "threshold": threshold, "n_train": int(is_train.sum()), "n_test": int((~is_train).sum()),
                "n_test_inside": int(inside.sum()), "skewness_train": float(_skew(y_train)), "rows": rows,
            }
    finally:
        if bar is not None:
            bar.close()
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta or {})
    meta.update({"data": data or "bundled bike-sharing-hour.csv.gz", "citation": CITATION, "split_date": SPLIT_DATE,
                 "quantile": QUANTILE, "rounds": rounds, "features": FEATURES})
    with open(os.path.join(out_dir, "regression.json"), "w") as handle:
        json.dump({"meta": meta, "results": results}, handle, indent=1)
    text = markdown(results, meta)
    with open(os.path.join(out_dir, "regression.md"), "w") as handle:
        handle.write(text)
    for target, result in results.items():
        pareto_plot(result, target, os.path.join(out_dir, f"regression-{target}.png"))
    return text


def _skew(y):
    d = y - y.mean()
    return np.mean(d**3) / np.mean(d**2) ** 1.5


def pareto_front(rows):
    """Indices of the rows no other row beats on both RMSE inside and RMSE outside."""
    front = []
    for i, a in enumerate(rows):
        dominated = any(
            (b["rmse_inside"] <= a["rmse_inside"] and b["rmse_outside"] <= a["rmse_outside"])
            and (b["rmse_inside"] < a["rmse_inside"] or b["rmse_outside"] < a["rmse_outside"])
            for j, b in enumerate(rows) if j != i)
        if not dominated:
            front.append(i)
    return front


def markdown(results, meta):
    lines = ["# selboost bench regression: selective links on UCI bike sharing (hourly)", "",
             f"Command: `{meta.get('command', 'selboost bench regression')}`", "",
             f"Data: {meta['data']}; cite {meta['citation']}. Train on dates before {meta['split_date']}, "
             f"test on the later ones. Important region: test targets >= the training target's "
             f"{meta['quantile']:.0%} quantile. XGBoost, depth 6, learning rate 0.05, {meta['rounds']} rounds, "
             "the same for every loss. RMSE in rentals per hour; * marks the Pareto front "
             "(no other loss better on both)."]
    for target, result in results.items():
        rows = result["rows"]
        front = set(pareto_front(rows))
        lines += ["", f"## target `{target}` (threshold {result['threshold']:g}, train skewness "
                      f"{result['skewness_train']:.2f}; {result['n_train']} train rows, {result['n_test']} test "
                      f"rows, {result['n_test_inside']} of them inside)", "",
                  "| loss | strength | RMSE inside | RMSE outside | RMSE all | mean error inside |",
                  "|---|---|---|---|---|---|"]
        for i, r in enumerate(rows):
            mark = " *" if i in front else ""
            lines.append(f"| {r['family']}{mark} | {r['strength']} | {r['rmse_inside']:.2f} | {r['rmse_outside']:.2f} "
                         f"| {r['rmse_all']:.2f} | {r['bias_inside']:+.2f} |")
    return "\n".join(lines) + "\n"


def pareto_plot(result, target, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    square = next(r for r in result["rows"] if r["family"] == "square")
    limit_in, limit_out = 2.0 * square["rmse_inside"], 2.0 * square["rmse_outside"]
    off_chart = [r for r in result["rows"] if r["rmse_inside"] > limit_in or r["rmse_outside"] > limit_out]
    rows = [r for r in result["rows"] if r not in off_chart]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    families = list(dict.fromkeys(r["family"] for r in rows))
    markers = dict(zip(families, "*osD^v"))
    for family in families:
        part = [r for r in rows if r["family"] == family]
        xs = [r["rmse_outside"] for r in part]
        ys = [r["rmse_inside"] for r in part]
        ax.plot(xs, ys, marker=markers[family], ms=10 if family == "square" else 6, label=family,
                lw=1 if len(part) > 1 else 0)
        for r, x, y in zip(part, xs, ys):
            if r["strength"] != "-":
                ax.annotate(r["strength"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    front = sorted((rows[i]["rmse_outside"], rows[i]["rmse_inside"]) for i in pareto_front(rows))
    ax.plot(*zip(*front), color="black", lw=0.6, ls="--", label="Pareto front")
    ax.set_xlabel("test RMSE outside the important region")
    ax.set_ylabel(f"test RMSE inside (target >= {result['threshold']:g})")
    title = f"bike sharing, target '{target}': inside vs outside"
    if off_chart:
        title += "\noff the chart (diverged): " + ", ".join(f"{r['family']} {r['strength']}" for r in off_chart)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
