"""Imbalanced regression: relevance weights and the relevance link against square loss, scored as that
field scores, by SERA.

Data: the bundled sets of ``selboost.datasets.load_regression_set`` (``REGRESSION_SETS``: bike
sharing's casual rentals, UCI Forest Fires, UCI Wine Quality red and white; nothing is downloaded).

Relevance: on each split, phi = ``relevance(y_fit, extr_type="observed")``, the adjusted-boxplot
relevance of the fit targets (IRon's ``phi``: 0 at the median, 1 at a fence), on the tails where some fit
target lies beyond the fence. IRon's default, both tails whatever the data, would make most of a
one-sided target relevant: the forest fires' lower fence lies below 0, so the fires of area 0, half the
rows, would get phi(0) = 0.66. Every method and metric of a split uses that one phi.

Metrics (``selboost.relevance``), on the validation and the test rows:

- SERA = sum_i phi(y_i) (pred_i - y_i)^2 (``sera``): the squared error weighted by the relevance of the
  *target*. It counts the misses of relevant targets and never a false alarm: a common target predicted
  into the relevant range costs phi(y_i) ~ 0 times its error. Sample weights 1 + (s - 1) phi(y) make
  the training loss (s - 1) SERA plus the total squared error: they optimise it directly;
- the symmetric SERA = sum_i max(phi(y_i), phi(pred_i)) (pred_i - y_i)^2 (``sera_symmetric``), which
  counts false alarms as misses;
- RMSE over all rows.

Methods, for a strength s > 1 (``methods``): square loss; relevance weights, sample weights
1 + (s - 1) phi(y) (``relevance_weights``); the relevance link, ``RelevanceLoss(s)`` with phi's
control points, h'(z) = 1 + (s - 1) phi(z), so that an error counts by the relevance of where the
prediction passes; weights + link, sqrt(s) each.

Protocol: split k (``split_rows``, ``numpy.random.default_rng(k)``) holds out ``TEST_FRACTION`` of the
rows at random for test, and ``VALID_FRACTION`` of the rest for validation; the others are the fit
rows. Every method and strength is fitted alike (``_selectivity.fit_tuned``): XGBoost, depth
``MAX_DEPTH``, learning rate ``LEARNING_RATE``, up to ``max_rounds`` rounds with early stopping
(``PATIENCE``) on the method's own validation loss (weighted by its own weights). Then, for each metric
of ``SELECT_BY`` in turn, each family's strength with the lowest validation value of that metric is
that family's choice by that metric (``choose``); the test rows are only scored.

Report: test metrics as ratios to square loss on the same split; geometric means over the splits of a
data set and over every data set and split (pooled); the Wilcoxon signed-rank test over those splits of
the log ratios (``_stats.signed_rank_p``; with K splits of one data set the smallest two-sided p is
2 / 2^K, 0.0625 at 5). Fronts: every family and strength, pooled, on SERA against RMSE and on the
symmetric SERA against RMSE.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from selboost.bench import _selectivity as S
from selboost.bench._stats import signed_rank_p
from selboost.bench.report import jsonable, progress_bar, write_report
from selboost.datasets import REGRESSION_SETS, load_regression_set
from selboost.links import Identity
from selboost.losses import SelectiveLoss
from selboost.relevance import RelevanceLoss, relevance, relevance_weights, sera, sera_symmetric

__all__ = ["run", "methods", "split_rows", "scores", "choose", "check_strengths", "STRENGTHS", "FAMILIES",
           "METRICS", "SELECT_BY"]

STRENGTHS = (1.5, 2.0, 4.0, 8.0, 16.0, 32.0)
FAMILIES = ("square", "relevance weights", "relevance link", "weights + link")
METRICS = ("sera", "sera_symmetric", "rmse")
#: the validation metrics a strength is chosen by, each in turn
SELECT_BY = METRICS
METRIC_NAMES = {"sera": "SERA", "sera_symmetric": "symmetric SERA", "rmse": "RMSE"}
EXTR_TYPE = "observed"
SPLITS = 5
TEST_FRACTION = 0.25
VALID_FRACTION = 0.2
MAX_DEPTH = 4
LEARNING_RATE = 0.1
MAX_ROUNDS = 300
PATIENCE = 30


@dataclasses.dataclass
class RelevanceMethod:
    """One method of the study: its family, its strength s, the loss, and the strength of its sample
    weights 1 + (w - 1) phi(y) (1: no weights)."""

    family: str
    strength: float
    loss: SelectiveLoss
    weight_strength: float = 1.0

    @property
    def label(self):
        return f"{self.strength:g}"

    @property
    def name(self):
        return f"{self.family} {self.label}"

    def weights(self, phi, y):
        """The rows' sample weights under relevance ``phi`` (None without weights)."""
        if self.weight_strength == 1.0:
            return None
        return relevance_weights(y, phi, strength=self.weight_strength)


def check_strengths(strengths):
    """The strengths as a sorted tuple of distinct floats; a ValueError unless each is finite and > 1."""
    values = tuple(sorted({float(s) for s in strengths}))
    if not values:
        raise ValueError("strengths: give at least one")
    bad = [s for s in values if not (math.isfinite(s) and s > 1.0)]
    if bad:
        raise ValueError(f"strengths must be finite and greater than 1 (strength 1 is square loss), got {bad}")
    return values


def methods(phi, strengths=STRENGTHS):
    """Square loss, then every family of ``FAMILIES`` at each strength, under relevance ``phi``."""
    points = tuple(map(tuple, phi.control_points.tolist()))
    out = [RelevanceMethod("square", 1.0, SelectiveLoss(Identity()))]
    for s in check_strengths(strengths):
        root = math.sqrt(s)
        out += [RelevanceMethod("relevance weights", s, SelectiveLoss(Identity()), weight_strength=s),
                RelevanceMethod("relevance link", s, RelevanceLoss(s, points)),
                RelevanceMethod("weights + link", s, RelevanceLoss(root, points), weight_strength=root)]
    return out


def split_rows(n_rows, seed):
    """(fit, validation, test) row indices of split ``seed``: test a random ``TEST_FRACTION`` of the
    rows, validation ``VALID_FRACTION`` of the rest."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = int(round(TEST_FRACTION * n_rows))
    n_valid = int(round(VALID_FRACTION * (n_rows - n_test)))
    return order[n_test + n_valid:], order[n_test:n_test + n_valid], order[:n_test]


def scores(y, pred, phi):
    """SERA, the symmetric SERA and RMSE of ``pred`` (all NaN when a prediction is not finite)."""
    if not np.all(np.isfinite(pred)):
        return {key: float("nan") for key in METRICS}
    return {"sera": sera(y, pred, phi), "sera_symmetric": sera_symmetric(y, pred, phi),
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}


def choose(rows, metric):
    """For each family but square loss, the index in ``rows`` of its strength with the lowest validation
    ``metric`` (the smaller strength of equals; a NaN never wins)."""
    chosen = {}
    for family in FAMILIES[1:]:
        best = None
        for i in sorted((i for i, r in enumerate(rows) if r["family"] == family), key=lambda i: rows[i]["strength"]):
            value = rows[i]["valid"][metric]
            if math.isnan(value):
                continue
            if best is None or value < rows[best]["valid"][metric]:
                best = i
        chosen[family] = best
    return chosen


def _run_split(data, seed, strengths, *, engine, max_rounds, threads, bar):
    X, y = data.X, data.y
    fit, valid, test = split_rows(y.size, seed)
    phi = relevance(y[fit], extr_type=EXTR_TYPE)
    for part, rows in (("fit", fit), ("validation", valid), ("test", test)):
        if not np.any(phi(y[rows]) > 0.0):
            raise ValueError(f"{data.name}, split {seed}: no {part} row has a relevant target (phi > 0); the "
                             "data set is too small or has no rare extremes")
    X_scored = np.vstack([X[valid], X[test]])  # validation and test rows predicted by one call
    rows = []
    for method in methods(phi, strengths):
        weights = (method.weights(phi, y[fit]), method.weights(phi, y[valid]))
        out = S.fit_tuned(method, X[fit], y[fit], X[valid], y[valid], X_scored, -math.inf, math.inf,
                          engine=engine, learning_rates=(LEARNING_RATE,), max_depth=MAX_DEPTH, max_rounds=max_rounds,
                          patience=PATIENCE, threads=threads, seed=seed, sample_weights=weights)
        pred = out["prediction"]
        rows.append({"family": method.family, "strength": method.strength, "label": method.label,
                     "valid": scores(y[valid], pred[:valid.size], phi),
                     "test": scores(y[test], pred[valid.size:], phi), "rounds": out["rounds"],
                     "valid_loss": out["valid_loss"], "seconds": out["seconds"]})
        bar.advance(f"{data.name} split {seed} {method.name}")
    return {"split": seed, "n_fit": int(fit.size), "n_valid": int(valid.size), "n_test": int(test.size),
            "control_points": phi.control_points[:, :2].tolist(),
            "test_share_relevant": float(np.mean(phi(y[test]) >= 0.5)),
            "methods": rows, "chosen": {metric: choose(rows, metric) for metric in SELECT_BY}}


def run(datasets=REGRESSION_SETS, out_dir="selboost-results", splits=SPLITS, strengths=STRENGTHS,
        max_rounds=MAX_ROUNDS, threads=1, engine="xgboost", progress=True, meta=None):
    """Run the study; writes imbalanced.json, imbalanced.md and imbalanced.png into ``out_dir`` and
    returns the Markdown.

    Parameters
    ----------
    datasets : sequence of str
        Names from ``selboost.datasets.REGRESSION_SETS``.
    splits : int
        Random splits per data set, seeds 0..splits-1.
    strengths : sequence of float
        The strength grid, each > 1.
    max_rounds, threads, engine
        Most boosting rounds per fit, the engine's threads, and the engine.
    progress : bool
        Show a progress bar.
    meta : dict, optional
        Added to the report's metadata (``command``).
    """
    start = time.perf_counter()
    strengths = check_strengths(strengths)
    if int(splits) < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    names = list(dict.fromkeys(datasets))
    if not names:
        raise ValueError(f"datasets: give at least one of {', '.join(REGRESSION_SETS)}")
    sets = [load_regression_set(name) for name in names]  # every name checked before the first fit
    n_fits = len(sets) * int(splits) * (1 + (len(FAMILIES) - 1) * len(strengths))
    results = {}
    with progress_bar(n_fits, "selboost bench imbalanced", "fit", progress) as bar:
        for data in sets:
            results[data.name] = {
                "rows": int(data.y.size), "features": list(data.features), "target": data.target,
                "source": data.source,
                "splits": [_run_split(data, seed, strengths, engine=engine, max_rounds=max_rounds, threads=threads,
                                      bar=bar) for seed in range(int(splits))]}
    summary = summarise(results)
    meta = dict(meta or {})
    meta.update({"datasets": names, "splits": int(splits), "strengths": list(strengths), "engine": engine,
                 "threads": threads, "max_depth": MAX_DEPTH, "learning_rate": LEARNING_RATE, "max_rounds": max_rounds,
                 "patience": PATIENCE, "test_fraction": TEST_FRACTION, "valid_fraction": VALID_FRACTION,
                 "extr_type": EXTR_TYPE, "wall_seconds": time.perf_counter() - start})
    text = markdown(results, summary, meta)
    write_report(out_dir, "imbalanced", jsonable({"meta": meta, "summary": summary, "results": results}), text)
    plot_fronts(summary["fronts"], os.path.join(out_dir, "imbalanced.png"),
                f"{len(names)} data set(s) x {int(splits)} split(s): geometric means of the test ratios to square loss")
    return text


# ---------------------------------------------------------------- summaries


def _log_ratios(split, index, metric):
    """log(test metric of row ``index`` / square loss's) on one split."""
    rows = split["methods"]
    return math.log(rows[index]["test"][metric] / rows[0]["test"][metric])


def _compare(logs):
    """Geometric mean of exp(logs), the count below 0 (better), and the signed-rank p over them."""
    logs = np.asarray(logs, dtype=float)
    if logs.size == 0 or not np.all(np.isfinite(logs)):
        return {"ratio": float("nan"), "better": 0, "n": int(logs.size), "p": float("nan")}
    return {"ratio": float(np.exp(logs.mean())), "better": int((logs < 0).sum()), "n": int(logs.size),
            "p": signed_rank_p(logs)}


def _selected(split_lists):
    """Per selection metric and family: the strengths chosen on each split, and the test ratios to square
    loss (``_compare``) of every test metric, over all the splits of ``split_lists``; and each family
    against relevance weights, both chosen by the same metric."""
    out = {}
    for select in SELECT_BY:
        entry = {}
        for family in FAMILIES[1:]:
            picks = [split["chosen"][select][family] for split in split_lists]
            entry[family] = {
                "strengths": [None if i is None else split["methods"][i]["strength"]
                              for i, split in zip(picks, split_lists)],
                **{metric: _compare([_log_ratios(split, i, metric) for i, split in zip(picks, split_lists)
                                     if i is not None]) for metric in METRICS}}
            if family != "relevance weights":
                entry[family]["vs_weights"] = {metric: _compare([
                    _log_ratios(split, i, metric) - _log_ratios(split, split["chosen"][select]["relevance weights"],
                                                                metric)
                    for i, split in zip(picks, split_lists) if i is not None]) for metric in METRICS}
        out[select] = entry
    return out


def _fronts(split_lists):
    """Every family and strength: geometric means over ``split_lists`` of its test ratios to square loss,
    and the Pareto fronts (SERA and the symmetric SERA, each against RMSE) it is on."""
    first = split_lists[0]["methods"]
    rows = []
    for index, row in enumerate(first):
        rows.append({"family": row["family"], "strength": row["strength"], "label": row["label"],
                     **{metric: _compare([_log_ratios(split, index, metric) for split in split_lists])["ratio"]
                        for metric in METRICS}})
    for key, metric in (("se", "sera"), ("ye", "sera_symmetric")):
        on_front = set(S.pareto_front([(r["rmse"], r[metric]) for r in rows], True))
        for i, row in enumerate(rows):
            row.setdefault("front", [])
            if i in on_front:
                row["front"].append(key)
    return rows


def summarise(results):
    """Per data set and pooled over every data set and split: the chosen strengths' test ratios to square
    loss (``selected``) and every strength's (``fronts``)."""
    per_set = {name: {"selected": _selected(r["splits"]), "fronts": _fronts(r["splits"])}
               for name, r in results.items()}
    pooled = [split for r in results.values() for split in r["splits"]]
    return {"per_set": per_set, "selected": _selected(pooled), "fronts": _fronts(pooled)}


# ---------------------------------------------------------------- report


def _cell(entry):
    if math.isnan(entry["ratio"]):
        return "-"
    return f"{entry['ratio']:.3f} ({entry['better']}/{entry['n']}, p {S.fmt_p(entry['p'])})"


def _strengths_text(strengths):
    return "/".join("-" if s is None else f"{s:g}" for s in strengths)


def _selected_table(selected):
    lines = ["| chosen by (validation) | method | strengths chosen | SERA | symmetric SERA | RMSE |",
             "|---|---|---|---|---|---|"]
    for select in SELECT_BY:
        for family in FAMILIES[1:]:
            entry = selected[select][family]
            lines.append(f"| {METRIC_NAMES[select]} | {family} | {_strengths_text(entry['strengths'])} | "
                         + " | ".join(_cell(entry[m]) for m in METRICS) + " |")
    return lines


def _head_to_head_table(selected):
    lines = ["| chosen by (validation) | method, against relevance weights | SERA | symmetric SERA | RMSE |",
             "|---|---|---|---|---|"]
    for select in SELECT_BY:
        for family in FAMILIES[2:]:
            entry = selected[select][family]["vs_weights"]
            cells = " | ".join(_cell(entry[m]) for m in METRICS)
            lines.append(f"| {METRIC_NAMES[select]} | {family} | {cells} |")
    return lines


def _fronts_table(rows):
    lines = ["| method | s | SERA | symmetric SERA | RMSE | front |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['family']} | {row['label']} | {row['sera']:.3f} | {row['sera_symmetric']:.3f} | "
                     f"{row['rmse']:.3f} | {','.join(row['front'])} |")
    return lines


def markdown(results, summary, meta):
    """The report: data, protocol, the chosen strengths' test ratios pooled and per data set, each method
    against relevance weights, and the fronts over every strength."""
    n_splits = meta["splits"]
    lines = ["# selboost bench imbalanced: relevance weights and the relevance link, scored by SERA", "",
             f"Command: `{meta.get('command', 'selboost bench imbalanced')}`", "",
             "| data set | rows | features | target | relevance control points (x, phi), split 0 | test rows with "
             "phi >= 0.5 | source |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        points = ", ".join(f"({x:.4g}, {a:g})" for x, a in r["splits"][0]["control_points"])
        share = np.mean([s["test_share_relevant"] for s in r["splits"]])
        lines.append(f"| {name} | {r['rows']} | {len(r['features'])} | {r['target']} | {points} | {share:.1%} | "
                     f"{r['source']} |")
    lines += ["", f"Protocol: {n_splits} random split(s) per data set (seeds 0..{n_splits - 1}): test "
                  f"{meta['test_fraction']:.0%} of the rows, validation {meta['valid_fraction']:.0%} of the rest, "
                  "fit the others. Relevance phi: `relevance(y_fit, extr_type=\"observed\")` (IRon's adjusted "
                  "boxplot on the tails where a fit target lies beyond a fence), one per split. Every method and "
                  f"strength s in {meta['strengths']}: {meta['engine']}, depth {meta['max_depth']}, learning rate "
                  f"{meta['learning_rate']}, up to {meta['max_rounds']} rounds, early stopping (patience "
                  f"{meta['patience']}) on its own validation loss. Methods: relevance weights = sample weights "
                  "1 + (s - 1) phi(y); relevance link = `RelevanceLoss(s)`, h'(z) = 1 + (s - 1) phi(z); weights + "
                  "link = sqrt(s) each. The strength of each method is chosen on validation by each metric in "
                  "turn; test is only scored. SERA = sum phi(y) (pred - y)^2 (misses of relevant targets, no "
                  "false alarms); symmetric SERA = sum max(phi(y), phi(pred)) (pred - y)^2 (false alarms too); "
                  "RMSE over all rows.", "",
              "Cells: test metric / square loss's on the same split, geometric mean over the splits (in brackets: "
              "splits where the method is lower / splits, and the Wilcoxon signed-rank p over the splits of the "
              f"log ratios; with {n_splits} splits of one data set the smallest p is "
              f"{min(1.0, 2.0 / 2 ** n_splits):.3g}). "
              "Strengths chosen: per split.", "",
              f"## Pooled: {len(results)} data set(s) x {n_splits} split(s)", "", *_selected_table(summary["selected"]),
              "", "### Against relevance weights (pooled; both chosen by the same metric)", "",
              "Cells: the method's test metric / relevance weights', as above.", "",
              *_head_to_head_table(summary["selected"])]
    for name, entry in summary["per_set"].items():
        lines += ["", f"## {name}", "", *_selected_table(entry["selected"])]
    lines += ["", "## Every strength (pooled): fronts against RMSE", "",
              "Geometric means over every data set and split of the test ratios to square loss; front: on the "
              "Pareto front of SERA against RMSE (se) or of the symmetric SERA against RMSE (ye).", "",
              *_fronts_table(summary["fronts"])]
    seconds = sum(row["seconds"] for r in results.values() for split in r["splits"] for row in split["methods"])
    lines += ["", f"Fitting time: {seconds:.0f} s ({meta['threads']} thread(s)). Wall time: "
                  f"{meta['wall_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot_fronts(rows, path, title):
    """SERA and the symmetric SERA against RMSE (ratios to square loss), a line per family over its
    strengths, the Pareto fronts dashed."""
    labels = {"sera": "test SERA / square loss's", "sera_symmetric": "test symmetric SERA / square loss's",
              "rmse": "test RMSE / square loss's"}
    S.plot_views(rows, [("rmse", "sera", True), ("rmse", "sera_symmetric", True)], path, title, labels=labels)
