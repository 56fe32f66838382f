"""Selectivity study for regression: does a selective link buy accuracy where it matters, and at what cost?

Data: UCI Bike Sharing, hourly (Fanaee-T & Gama, "Event labeling combining ensemble detectors and
background knowledge", Progress in Artificial Intelligence, 2013, doi:10.1007/s13748-013-0040-3),
bundled in ``selboost/data`` and loaded by ``selboost.datasets.load_bike_sharing`` (its Readme asks only for that citation). Two targets: ``cnt`` (all rentals,
right-skewed) and ``casual`` (rentals by casual users, far more skewed). Features: season, yr, mnth, hr,
holiday, weekday, workingday, weathersit, temp, atemp, hum, windspeed (``casual``, ``registered`` and
``instant`` dropped). Split by time: the training period is the dates before ``SPLIT_DATE``, the test
period the later ones; inside the training period the last ``VALID_FRACTION`` of the hours (rounded to
whole days) is the validation split, the earlier hours the fit split. The test period is only scored.

Important region: targets at or above t, the 90th percentile of the target over the training period
(the targets the final model trains on: ``RegionLoss(0.9, None, quantiles=True).resolve(y_train)``;
while tuning, the loss is resolved alike on the fit split's targets). Losses, each over strengths 1 to
32 (``selboost.bench._selectivity``): square loss; up-weighting (sample weight s on the rows with
y >= t); the selective region link ``RegionLoss`` (h' = s at and above t, 1 below); and
up-weighting + selective (sqrt(s) each). Two hand-built links of the earlier study stay, as custom
objectives: ``identity + w * sigmoid(t, 0.2 t)`` (a bump of sensitivity 1 + w at t, back to 1 above
it) and ``identity + exp(t, s)`` (sensitivity 1 + e^{(z - t)/s}: growing with the score, smaller s =
stronger; the hessian h'(z) is taken at the prediction, so a row far above t that is predicted low
gets a huge gradient over a modest hessian and the Newton steps can overshoot; the table shows it
rather than hiding it). The earlier ``piecewise([t], [1, m])`` family is gone: it is the region link
itself (``region_link(t, None, strength=m)`` is that very link).

Protocol, the same for every loss and strength: XGBoost depth-6 trees, learning rate in
``LEARNING_RATES``, up to ``max_rounds`` rounds with early stopping (``PATIENCE``) on the loss's own
validation loss, the learning rate with the lower best validation loss kept; then the loss is refitted
on the whole training period (fit and validation splits) with that learning rate and number of rounds,
so that the months just before the test period, the busiest of the training period, are not lost to
validation (the service grew: a model fitted on the fit split alone under-predicts the test period's
peaks far more, for every loss). Metrics on the test
period: RMSE inside (y >= t), outside, "either" (y >= t or prediction >= t: false alarms count), and
precision / recall / F1 of "predicted >= t" against "y >= t". Paired tests are over test *days*
(hours of a day are not independent): the Wilcoxon signed-rank test on each day's sum of squared
errors over the chosen rows.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from selboost.bench import _selectivity as S
from selboost.bench.report import progress_bar, write_report
from selboost.datasets import BIKE_SHARING_CITATION as CITATION
from selboost.datasets import BIKE_SHARING_FEATURES as FEATURES
from selboost.datasets import BIKE_SHARING_TARGETS as TARGETS
from selboost.datasets import load_bike_sharing
from selboost.links import Exp, Identity, Sigmoid
from selboost.losses import SelectiveLoss
from selboost.regions import RegionLoss, region_bounds

__all__ = ["load_bike_sharing", "loss_grid", "run", "FEATURES", "SPLIT_DATE"]

SPLIT_DATE = "2012-07-01"
QUANTILE = 0.9
VALID_FRACTION = 0.2
MAX_DEPTH = 6
LEARNING_RATES = (0.05, 0.15)
MAX_ROUNDS = 1000
PATIENCE = 50


def loss_grid(y_fit):
    """Every loss of the study (``_selectivity.RegionStudyMethod``), the region resolved on the fit targets."""
    t = region_bounds(QUANTILE, None, quantiles=True, y=y_fit)[0]
    methods = S.region_methods(t, math.inf)
    for method in methods:
        if isinstance(method.loss, RegionLoss):  # the region as the study states it: a training quantile
            method.loss = RegionLoss(QUANTILE, None, quantiles=True, strength=method.loss.strength).resolve(y_fit)
    for w in (1.0, 3.0, 9.0, 27.0):
        methods.append(S.RegionStudyMethod("sigmoid bump", 1.0 + w, f"w={w:g}", SelectiveLoss(
            Identity() + w * Sigmoid(center=t, scale=0.2 * t))))
    for factor in (2.0, 1.0, 0.5, 0.25):
        methods.append(S.RegionStudyMethod("identity + exp", 1.0 / factor, f"s={factor:g}t", SelectiveLoss(
            Identity() + Exp(center=t, scale=factor * t))))
    return t, methods


def run(data=None, out_dir="selboost-results", max_rounds=MAX_ROUNDS, threads=1, max_rows=None, progress=True,
        meta=None, engine="xgboost"):
    """Run the study for both targets; writes regression.json, regression.md, regression-<target>.png."""
    start = time.perf_counter()
    frame = load_bike_sharing(data, max_rows)
    is_train = (frame["dteday"] < SPLIT_DATE).to_numpy()
    if is_train.sum() < 10 or is_train.all():
        raise ValueError(f"--data: the time split at {SPLIT_DATE} leaves too few rows on one side")
    train_idx, test_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    days = frame["dteday"].astype(str).to_numpy()
    # the frame is sorted by date and hour: validate on the whole days from the one holding the hour at
    # (1 - VALID_FRACTION) of the training period on
    cut_day = days[train_idx[int((1.0 - VALID_FRACTION) * train_idx.size)]]
    fit_idx, valid_idx = train_idx[days[train_idx] < cut_day], train_idx[days[train_idx] >= cut_day]
    if fit_idx.size < 10:
        raise ValueError("--data: the training period is too short for a fit and a validation split")
    X = frame[FEATURES].to_numpy(dtype=np.float64)
    results = {}
    n_methods = len(loss_grid(np.arange(10.0))[1])
    with progress_bar(len(TARGETS) * n_methods, "selboost bench regression", "loss", progress) as bar:
        for target in TARGETS:
            y = frame[target].to_numpy(dtype=np.float64)
            y_fit, y_valid, y_train, y_test = y[fit_idx], y[valid_idx], y[train_idx], y[test_idx]
            threshold_fit, tuned = loss_grid(y_fit)
            threshold, methods = loss_grid(y_train)
            lo, hi = threshold, math.inf
            inside = y_test >= threshold
            if not inside.any() or inside.all():
                raise ValueError(f"target {target!r}: the test period has no rows on one side of the threshold "
                                 f"{threshold:g}; give more rows")
            rows, predictions = [], []
            for method_fit, method in zip(tuned, methods):
                out = S.fit_tuned(method_fit, X[fit_idx], y_fit, X[valid_idx], y_valid, X[test_idx], threshold_fit,
                                  math.inf, engine=engine, learning_rates=LEARNING_RATES, max_depth=MAX_DEPTH,
                                  max_rounds=max_rounds, patience=PATIENCE, threads=threads, seed=0,
                                  refit=(method, X[train_idx], y_train, lo, hi))
                predictions.append(out.pop("prediction"))
                rows.append({"family": method.family, "strength": method.strength, "label": method.label,
                             **S.region_scores(y_test, predictions[-1], lo, hi), **out})
                bar.advance(f"{target} {method.name}")
            test_days = days[test_idx]
            for row, pred in zip(rows, predictions):
                row["vs_square_inside"] = _by_day(y_test, pred, predictions[0], test_days, lo, hi, "inside")
            results[target] = {
                "threshold": threshold, "threshold_fit": threshold_fit, "n_fit": int(fit_idx.size),
                "n_valid": int(valid_idx.size),
                "n_test": int(test_idx.size), "n_test_inside": int(inside.sum()),
                "n_valid_inside": int((y_valid >= threshold_fit).sum()), "skewness_train": float(_skew(y_train)),
                "rows": rows, "paired": _paired(methods, predictions, y_test, test_days, lo, hi),
            }
    meta = dict(meta or {})
    meta.update({"data": data or "bundled bike-sharing-hour.csv.gz", "citation": CITATION, "split_date": SPLIT_DATE,
                 "fit_dates": [days[fit_idx[0]], days[fit_idx[-1]]],
                 "valid_dates": [days[valid_idx[0]], days[valid_idx[-1]]],
                 "test_dates": [days[test_idx[0]], days[test_idx[-1]]], "quantile": QUANTILE,
                 "valid_fraction": VALID_FRACTION, "engine": engine, "threads": threads, "max_depth": MAX_DEPTH,
                 "learning_rates": list(LEARNING_RATES), "max_rounds": max_rounds, "patience": PATIENCE,
                 "strengths": list(S.STRENGTHS), "features": FEATURES, "wall_seconds": time.perf_counter() - start})
    text = markdown(results, meta)
    write_report(out_dir, "regression", {"meta": meta, "results": results}, text)
    for target, result in results.items():
        title = f"bike sharing, '{target}', region y >= {result['threshold']:g} (test period)"
        S.plot_views(result["rows"], ["io", "eo", "pr"], os.path.join(out_dir, f"regression-{target}.png"), title,
                     region_text=f"inside (y >= {result['threshold']:g})")
    return text


def _by_day(y, pred_a, pred_b, days, lo, hi, rows):
    """Wilcoxon over days of each day's summed squared errors of a against b on the rows of ``rows``."""
    chosen = S.row_sets(y, pred_a, pred_b, lo, hi)[rows]
    if not chosen.any():
        return S.wilcoxon([], [])
    _, day_of_row = np.unique(days[chosen], return_inverse=True)
    se_a = np.bincount(day_of_row, weights=(pred_a[chosen] - y[chosen]) ** 2)
    se_b = np.bincount(day_of_row, weights=(pred_b[chosen] - y[chosen]) ** 2)
    out = S.wilcoxon(se_a, se_b)
    out["rmse_diff"] = float(np.sqrt(se_a.sum() / chosen.sum()) - np.sqrt(se_b.sum() / chosen.sum()))
    return out


def _paired(methods, predictions, y, days, lo, hi):
    """Selective and up-weighting + selective against up-weighting at the same strength, by test day."""
    index = {(m.family, m.strength): i for i, m in enumerate(methods)}
    out = []
    for family in ("selective", "up-weighting + selective"):
        for s in S.STRENGTHS[1:]:
            a, b = predictions[index[(family, s)]], predictions[index[("up-weighting", s)]]
            out.append({"a": family, "b": "up-weighting", "strength": s,
                        **{rows: _by_day(y, a, b, days, lo, hi, rows) for rows in ("inside", "outside", "either")}})
    return out


def _skew(y):
    d = y - y.mean()
    return np.mean(d**3) / np.mean(d**2) ** 1.5


def markdown(results, meta):
    valid = meta["valid_dates"]
    lines = ["# selboost bench regression: selective losses on UCI bike sharing (hourly)", "",
             f"Command: `{meta.get('command', 'selboost bench regression')}`", "",
             f"Data: {meta['data']}; cite {meta['citation']}. Split by time: fit on {meta['fit_dates'][0]} to "
             f"{meta['fit_dates'][1]}, validate on {valid[0]} to {valid[1]} (the last "
             f"{meta['valid_fraction']:.0%} of the hours before {meta['split_date']}), test on "
             f"{meta['test_dates'][0]} to {meta['test_dates'][1]}. Important region: y >= t, the training "
             f"period's {meta['quantile']:.0%} quantile of the target (`RegionLoss({meta['quantile']}, "
             "quantiles=True)` resolved on the targets each model trains on: the fit split's while tuning).",
             "",
             f"Protocol: {meta['engine']}, depth-{meta['max_depth']} trees; every loss and strength tuned alike on "
             f"the validation split: learning rate in {meta['learning_rates']}, up to {meta['max_rounds']} rounds "
             f"with early stopping (patience {meta['patience']}) on the loss's own validation loss (weighted by "
             "its own weights), the learning rate with the lower best validation loss kept; then refitted on "
             "the whole training period (fit + validation) with that learning rate and number of rounds; the "
             "test period scored once. Strength s: up-weighting = weight s on rows with y >= t; selective = "
             "`RegionLoss` strength s (h' = s at and above t); up-weighting + selective = sqrt(s) each; sigmoid "
             "bump = `identity + w*sigmoid(t, 0.2t)` (peak h' = 1 + w); identity + exp = "
             "`identity + exp(t, s)` (smaller s stronger). RMSE in rentals per hour; either = rows with y >= t "
             "or prediction >= t; precision / recall / F1 of 'predicted >= t'. p inside vs square: Wilcoxon "
             "over test days of each day's summed squared error on the rows inside. front: the Pareto fronts "
             "the loss is on (io = RMSE inside vs outside, eo = either vs outside, pr = precision vs recall)."]
    for target, result in results.items():
        rows = result["rows"]
        marks = S.front_marks(rows)
        lines += ["", f"## target `{target}` (t = {result['threshold']:g}, while tuning "
                      f"{result['threshold_fit']:g}; training skewness {result['skewness_train']:.2f}; "
                      f"{result['n_fit']} fit / {result['n_valid']} validation / {result['n_test']} test hours, "
                      f"{result['n_test_inside']} test hours inside)", "",
                  "| loss | strength | RMSE inside | RMSE outside | RMSE either | precision | recall | F1 | "
                  "RMSE all | mean error inside | p inside vs square | front | lr | rounds |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r, mark in zip(rows, marks):
            p = "-" if r["family"] == "square" else S.fmt_p(r["vs_square_inside"]["p_wilcoxon"])
            lines.append(f"| {r['family']} | {r['label']} | {r['rmse_inside']:.2f} | {r['rmse_outside']:.2f} | "
                         f"{r['rmse_either']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                         f"{r['rmse_all']:.2f} | {r['bias_inside']:+.2f} | {p} | {mark} | "
                         f"{r['learning_rate']:g} | {r['rounds']} |")
        lines += ["", f"Against up-weighting at the same strength (`{target}`): Δ RMSE = A minus up-weighting on "
                      "the rows of the set; p: Wilcoxon over test days; A < B: the share of days where A's summed "
                      "squared error is smaller. Sets: inside = y >= t; outside = y < t; either = y >= t or either "
                      "loss's prediction >= t.", "",
                  "| A | s | inside: Δ RMSE | p | A < B | outside: Δ RMSE | p | A < B | either: Δ RMSE | p | A < B |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for entry in result["paired"]:
            cells = []
            for part in ("inside", "outside", "either"):
                t = entry[part]
                cells += [f"{t.get('rmse_diff', float('nan')):+.2f}", S.fmt_p(t["p_wilcoxon"]), f"{t['a_smaller']:.2f}"]
            lines.append(f"| {entry['a']} | {entry['strength']:g} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {meta['wall_seconds']:.0f} s ({meta['threads']} thread(s))."]
    return "\n".join(lines) + "\n"
