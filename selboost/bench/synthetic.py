"""Selectivity by design on **synthetic** data: does the region link resolve a model's underspecification
in favour of the important region, and does it keep predictions from wandering into it?

Generator (``generate(n_rows, seed)``, ``numpy.random.default_rng(seed)``; every draw independent):

- six visible features x0..x5 ~ U(0, 1) (x3 and x5 carry nothing) and one *hidden* feature
  u ~ U(0, 1), withheld from the model;
- *zone* rows, x0 < 0.5 (half the rows): *signal* when u < 0.1 + 0.6 x2 (so P(signal | x) runs from
  0.1 to 0.7 with the visible x2, and is 0.4 over the zone), else *decoy*:
  - signal: y = 2.1 + 0.8 x1 + e, e ~ U(-0.1, 0.1): inside the important region R = [2, 3];
  - decoy:  y = 1.9 - 0.5 x1 + e: in (1.3, 2), *just below* R, with the same visible features as the
    signal rows (only the hidden u tells them apart);
- background rows, x0 >= 0.5: *high* when x4 >= 0.5, y = 4.6 + 1.2 sin(2 pi x1) + U(-0.3, 0.3) in
  [3.1, 6.1]; *low* otherwise, y = 0.2 + 1.0 sin(2 pi x1) + U(-0.3, 0.3) in [-1.1, 1.5]: far from R on
  both sides, and with more variance than the zone, which square loss spends its trees on.

So a row is inside R exactly when it is a signal row: 20 % of the rows in expectation (0.5 x 0.4), and
30 % are decoys. The rows are split in order into fit / validation / test (50 / 25 / 25 %). The model
cannot fit everything: depth-2 trees (``MAX_DEPTH``), and no tree can separate a signal row from a
decoy with the same x; at a given x the best it can do is a number between the decoy's and the signal's
targets, and *where* that number falls (inside R or out) is what the losses settle differently.
Precision and recall score "predicted inside R" against "target inside R"; RMSE "either" is taken over
the rows whose target or prediction is inside R, so a decoy predicted inside counts.

Methods, protocol and metrics: ``selboost.bench._selectivity`` (square loss; up-weighting; the selective
region link, piecewise; up-weighting + selective at sqrt(s) each; strengths 1 to 32; each method tuned
on the validation split alone, over the learning rates ``LEARNING_RATES``, with early stopping on its
own validation loss). Paired comparisons: per seed, the difference of every method to square loss; and
selective (or up-weighting + selective) against up-weighting at the same strength, with a Wilcoxon
signed-rank test on the per-row squared errors of the test rows of every seed pooled (the rows are
independent draws).
"""

from __future__ import annotations

import os
import time

import numpy as np

from selboost.bench import _selectivity as S
from selboost.bench.report import progress_bar, write_report

__all__ = ["generate", "run", "REGION", "INSIDE_SHARE", "DECOY_SHARE"]

REGION = (2.0, 3.0)
#: expected share of rows inside REGION (all signal rows, and only they) and of decoys
INSIDE_SHARE = 0.2
DECOY_SHARE = 0.3
N_FEATURES = 6
MAX_DEPTH = 2
LEARNING_RATES = (0.1, 0.3)
MAX_ROUNDS = 1000
PATIENCE = 30
#: fewest rows a draw may have: every split then holds rows inside and outside the region
MIN_ROWS = 400


def generate(n_rows, seed):
    """One draw of the generator in the module docstring: (X (n_rows x 6, the visible features), y,
    kind), ``kind`` an array of "signal", "decoy", "high", "low"."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_rows, N_FEATURES))
    u = rng.random(n_rows)
    e = rng.uniform(-0.1, 0.1, n_rows)
    noise = rng.uniform(-0.3, 0.3, n_rows)
    zone = x[:, 0] < 0.5
    signal = zone & (u < 0.1 + 0.6 * x[:, 2])
    decoy = zone & ~signal
    high = ~zone & (x[:, 4] >= 0.5)
    wave = np.sin(2.0 * np.pi * x[:, 1])
    y = np.where(high, 4.6 + 1.2 * wave, 0.2 + 1.0 * wave) + noise
    y = np.where(signal, 2.1 + 0.8 * x[:, 1] + e, y)
    y = np.where(decoy, 1.9 - 0.5 * x[:, 1] + e, y)
    kind = np.select([signal, decoy, high], ["signal", "decoy", "high"], "low")
    return x, y, kind


def _splits(n_rows):
    a, b = n_rows // 2, (3 * n_rows) // 4
    return slice(0, a), slice(a, b), slice(b, n_rows)


def run(out_dir="selboost-results", seeds=5, rows=20000, threads=1, engine="xgboost", max_rounds=MAX_ROUNDS,
        progress=True, meta=None):
    """Run the study; writes synthetic.json, synthetic.md, synthetic.png (inside vs outside) and
    synthetic-false-alarms.png (either vs outside, precision vs recall). Returns the markdown."""
    if rows < MIN_ROWS:
        raise ValueError(f"--rows must be at least {MIN_ROWS} (every split needs rows inside the region), got {rows}")
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    start = time.perf_counter()
    lo, hi = REGION
    methods = S.region_methods(lo, hi)
    per_seed, predictions, tests = [], [], []
    with progress_bar(seeds * len(methods), "selboost bench synthetic", "method", progress) as bar:
        for seed in range(seeds):
            X, y, kind = generate(rows, seed)
            fit, valid, test = _splits(rows)
            inside = (y >= lo) & (y <= hi)
            for name, part in (("fit", fit), ("validation", valid), ("test", test)):
                if not inside[part].any() or inside[part].all():
                    raise ValueError(f"--rows {rows}: the {name} split of seed {seed} has no rows inside (or "
                                     "none outside) the region; give more rows")
            results, preds = [], []
            for method in methods:
                out = S.fit_tuned(method, X[fit], y[fit], X[valid], y[valid], X[test], lo, hi, engine=engine,
                                  learning_rates=LEARNING_RATES, max_depth=MAX_DEPTH, max_rounds=max_rounds,
                                  patience=PATIENCE, threads=threads, seed=seed)
                preds.append(out.pop("prediction"))
                results.append({"family": method.family, "strength": method.strength, "label": method.label,
                                **S.region_scores(y[test], preds[-1], lo, hi), **out})
                bar.advance(f"seed {seed} {method.name}")
            per_seed.append({"seed": seed, "n_fit": fit.stop, "n_valid": valid.stop - valid.start,
                             "n_test": rows - test.start, "n_test_inside": int(inside[test].sum()),
                             "share_inside": float(inside.mean()), "share_decoy": float(np.mean(kind == "decoy")),
                             "methods": results})
            predictions.append(preds)
            tests.append(y[test])
    summary = _summary(methods, per_seed)
    paired = _paired(methods, predictions, tests, lo, hi)
    meta = dict(meta or {})
    meta.update({"data": "synthetic (selboost.bench.synthetic.generate)", "region": list(REGION), "rows": rows,
                 "seeds": seeds, "engine": engine, "threads": threads, "max_depth": MAX_DEPTH,
                 "learning_rates": list(LEARNING_RATES), "max_rounds": max_rounds, "patience": PATIENCE,
                 "strengths": list(S.STRENGTHS), "inside_share_expected": INSIDE_SHARE,
                 "decoy_share_expected": DECOY_SHARE, "wall_seconds": time.perf_counter() - start})
    text = markdown(summary, paired, per_seed, meta)
    write_report(out_dir, "synthetic", {"meta": meta, "summary": summary, "paired": paired, "seeds": per_seed}, text)
    means = [row["mean"] | {k: row[k] for k in ("family", "strength", "label")} for row in summary]
    spread = [row["sd"] for row in summary] if seeds > 1 else None
    title = f"synthetic data, region [{lo:g}, {hi:g}], mean of {seeds} draws ({rows} rows each; bars: sd)"
    S.plot_views(means, ["io"], os.path.join(out_dir, "synthetic.png"), title, spread,
                 region_text=f"inside [{lo:g}, {hi:g}]")
    S.plot_views(means, ["eo", "pr"], os.path.join(out_dir, "synthetic-false-alarms.png"),
                 title + ": false alarms", spread, region_text=f"inside [{lo:g}, {hi:g}]")
    return text


def _summary(methods, per_seed):
    """Per method: mean and sd over seeds of every metric, the per-seed differences to square loss, the
    learning rates and rounds chosen."""
    rows = []
    square = [seed["methods"][0] for seed in per_seed]
    for i, method in enumerate(methods):
        values = [seed["methods"][i] for seed in per_seed]
        mean = {k: float(np.mean([v[k] for v in values])) for k in S.METRICS}
        sd = {k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0 for k in S.METRICS}
        diff = {}
        for k in S.METRICS:
            d = np.array([v[k] - s[k] for v, s in zip(values, square)])
            better = d > 0 if k in ("precision", "recall", "f1") else d < 0
            diff[k] = {"mean": float(d.mean()), "sd": float(d.std(ddof=1)) if d.size > 1 else 0.0,
                       "seeds_better": int(better.sum())}
        rows.append({"family": method.family, "strength": method.strength, "label": method.label, "mean": mean,
                     "sd": sd, "vs_square": diff,
                     "learning_rates": [v["learning_rate"] for v in values], "rounds": [v["rounds"] for v in values],
                     "seconds": float(sum(v["seconds"] for v in values))})
    return rows


def _paired(methods, predictions, tests, lo, hi):
    """Selective and up-weighting + selective against up-weighting at each strength: per-row squared
    errors of the test rows of all seeds pooled, on the rows of each set (``row_sets``)."""
    index = {(m.family, m.strength): i for i, m in enumerate(methods)}
    out = []
    for family in ("selective", "up-weighting + selective"):
        for s in S.STRENGTHS[1:]:
            a, b = index[(family, s)], index[("up-weighting", s)]
            entry = {"a": family, "b": "up-weighting", "strength": s}
            for rows in ("inside", "outside", "either"):
                se_a, se_b, per_seed_diff = [], [], []
                for preds, y in zip(predictions, tests):
                    chosen = S.row_sets(y, preds[a], preds[b], lo, hi)[rows]
                    ea, eb = (preds[a][chosen] - y[chosen]) ** 2, (preds[b][chosen] - y[chosen]) ** 2
                    se_a.append(ea)
                    se_b.append(eb)
                    per_seed_diff.append(float(np.sqrt(ea.mean()) - np.sqrt(eb.mean())))
                test = S.wilcoxon(np.concatenate(se_a), np.concatenate(se_b))
                test["rmse_diff_per_seed"] = per_seed_diff
                entry[rows] = test
            out.append(entry)
    return out


def _pm(mean, sd, digits=3, seeds=2):
    return f"{mean:.{digits}f}" if seeds < 2 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown(summary, paired, per_seed, meta):
    lo, hi = meta["region"]
    seeds = meta["seeds"]
    shares = [s["share_inside"] for s in per_seed]
    decoys = [s["share_decoy"] for s in per_seed]
    lines = [
        "# selboost bench synthetic: the region link on synthetic data", "",
        f"Command: `{meta.get('command', 'selboost bench synthetic')}`", "",
        f"**Synthetic** data (`selboost.bench.synthetic.generate`, see its docstring): important region "
        f"[{lo:g}, {hi:g}]; {meta['rows']} rows per draw, {seeds} independent draws (seeds 0..{seeds - 1}); "
        f"split 50 / 25 / 25 % into fit / validation / test. Rows inside: {min(shares):.1%}-{max(shares):.1%} "
        f"(expected {meta['inside_share_expected']:.0%}); decoys (targets just below the region, alike to "
        f"signal rows but for a withheld feature): {min(decoys):.1%}-{max(decoys):.1%} (expected "
        f"{meta['decoy_share_expected']:.0%}).", "",
        f"Protocol: {meta['engine']}, depth-{meta['max_depth']} trees; every method and strength tuned alike "
        f"on the validation split: learning rate in {meta['learning_rates']}, up to {meta['max_rounds']} "
        f"rounds with early stopping (patience {meta['patience']}) on the method's own validation loss "
        f"(weighted by its own weights), the learning rate with the lower best validation loss kept. Test "
        f"scored once. Strength s: up-weighting = weight s on rows whose target is inside; selective = "
        f"`RegionLoss({lo:g}, {hi:g}, strength=s)` (piecewise); up-weighting + selective = weight sqrt(s) "
        f"and link strength sqrt(s). RMSE either: over rows whose target *or* prediction is inside (false "
        f"alarms count). Precision / recall / F1: 'predicted inside' against 'target inside'.", "",
        f"## Test metrics on synthetic data, mean ± sd over {seeds} draws", "",
        "front: the Pareto fronts (of the means) the row is on: io = RMSE inside vs outside, eo = RMSE "
        "either vs outside, pr = precision vs recall.", "",
        "| method | s | RMSE inside | RMSE outside | RMSE either | precision | recall | F1 | front | lr chosen | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    means = [row["mean"] for row in summary]
    marks = S.front_marks(means)
    def pm(mean, sd):
        return _pm(mean, sd, seeds=seeds)

    for row, mark in zip(summary, marks):
        m, sd = row["mean"], row["sd"]
        lrs = "/".join(f"{v:g}" for v in row["learning_rates"])
        rounds = f"{int(np.median(row['rounds']))}"
        lines.append(f"| {row['family']} | {row['label']} | {pm(m['rmse_inside'], sd['rmse_inside'])} | "
                     f"{pm(m['rmse_outside'], sd['rmse_outside'])} | {pm(m['rmse_either'], sd['rmse_either'])} | "
                     f"{pm(m['precision'], sd['precision'])} | {pm(m['recall'], sd['recall'])} | "
                     f"{pm(m['f1'], sd['f1'])} | {mark} | {lrs} | {rounds} |")
    lines += ["", f"## Synthetic data: per-draw differences to square loss (mean ± sd over {seeds} draws; in "
                  "brackets the draws where the method is better)", "",
              "| method | s | Δ RMSE inside | Δ RMSE outside | Δ RMSE either | Δ precision | Δ recall | Δ F1 |",
              "|---|---|---|---|---|---|---|---|"]
    for row in summary[1:]:
        cells = []
        for k in ("rmse_inside", "rmse_outside", "rmse_either", "precision", "recall", "f1"):
            d = row["vs_square"][k]
            cells.append(f"{d['mean']:+.3f} ± {d['sd']:.3f} ({d['seeds_better']}/{seeds})")
        lines.append(f"| {row['family']} | {row['label']} | " + " | ".join(cells) + " |")
    lines += ["", "## Synthetic data: against up-weighting at the same strength", "",
              "Δ RMSE: A minus up-weighting, mean over draws (in brackets the draws where A is lower). p: "
              "Wilcoxon signed-rank on the per-row squared errors, test rows of all draws pooled; A < B: the "
              "share of rows where A's squared error is smaller. Rows: inside = target inside; outside = "
              "target outside; either = target inside or either method's prediction inside.", "",
              "| A | s | inside: Δ RMSE | p | A < B | outside: Δ RMSE | p | A < B | either: Δ RMSE | p | A < B |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for entry in paired:
        cells = []
        for rows in ("inside", "outside", "either"):
            t = entry[rows]
            d = np.array(t["rmse_diff_per_seed"])
            cells += [f"{d.mean():+.3f} ({int((d < 0).sum())}/{d.size})", S.fmt_p(t["p_wilcoxon"]),
                      f"{t['a_smaller']:.2f}"]
        lines.append(f"| {entry['a']} | {entry['strength']:g} | " + " | ".join(cells) + " |")
    total = sum(row["seconds"] for row in summary)
    lines += ["", f"Fitting time: {total:.0f} s in all ({meta.get('threads', 1)} thread(s))."]
    if "wall_seconds" in meta:
        lines[-1] += f" Wall time: {meta['wall_seconds']:.0f} s."
    return "\n".join(lines) + "\n"
