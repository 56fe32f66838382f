"""Distillation of a strong ranker into a restricted student (``selboost bench distill``).

The question: a student allowed only a few features and shallow trees, can it rank better when it
learns from a strong teacher's scores than from the relevance labels, and does a selective transform
(steep among the teacher's top scores) help the distillation more than the plain softmax?

Protocol, on every fold of the LETOR data (its train / validation / test splits):

1. **Teacher**: XGBoost ``rank:ndcg`` on all features, tuned as in the LambdaMART comparison
   (``selboost bench``'s ``xgb rank:ndcg``: learning rate 0.03, 0.1 or 0.3 times depth 4 or 6), each
   configuration up to ``max_rounds`` rounds with early stopping (``patience``) on the validation
   split's NDCG@10, the best by validation NDCG@10 kept.

   - The *full* teacher is trained on the whole training split. It scores the validation split (to
     choose its configuration) and the test split (its test NDCG is the reference the students are read
     against), and its feature importance (total gain over its splits) picks the students' features.
     The students stop early against the validation *labels* (step 3), so none of them needs teacher
     scores on the validation split.
   - The teacher's scores on the *training* rows are **cross-fitted**: the training queries are dealt
     at random (seed 0) into ``teacher_folds`` parts; for each part, a teacher of the full teacher's
     chosen configuration (early stopping on the validation split too) is trained on the other parts
     and scores the queries of that part (``cross_fitted_scores``). No training row is scored by a model that saw
     it: on its own training rows a teacher is overfit, its order there better than it will ever be
     on new queries, and a student imitating those scores would learn the teacher's training error
     rather than how it ranks.
   - Each part's scores are standardised (mean 0, standard deviation 1 over that part's rows), so
     that the parts' teachers agree in scale, and a temperature or a transform's centre is in units
     of the teacher's spread.

2. **Students**: only the ``n_features`` columns of highest total gain in the full teacher (columns
   the teacher never split on come last, by index), trees of depth ``student_depth``; XGBoost unless
   named otherwise:

   - ``LambdaMART (labels)``: ``rank:ndcg`` on the relevance labels, the reference of the paired tests;
   - ``LightGBM lambdarank (labels)``: ``lambdarank`` on the labels, ``max_depth`` the depth and
     ``num_leaves`` 2^depth;
   - ``square loss on teacher``: ``reg:squarederror`` on the cross-fitted teacher scores;
   - ``softmax distill``: ``ListwiseLoss((1 / T) * Identity(), target="score")``: the student's
     softmax over each query matches the teacher's, both at temperature T;
   - ``selective distill: sigmoid bump``: ``ListwiseLoss(Identity() + w * Sigmoid(c, 0.5),
     target="score")``, slope 1 + w at c and about 1 half a standard deviation away;
   - ``selective distill: steep top``: ``ListwiseLoss(PiecewiseLinear((c,), (1, m)), target="score")``,
     slope m above c.

   The transform applies to the teacher's scores (the target softmax) and to the student's alike, so
   a steep region weighs the order of the documents there. Its centre c is the ``CENTRE_QUANTILE``
   (0.9) quantile of the standardised cross-fitted teacher scores on the fold's training rows: high in
   the teacher's distribution, yet reached in every fold, and computed from training data only.

3. **Tuning**, the same budget for every student: 6 configurations, the learning rates
   ``LEARNING_RATES`` (0.05, 0.2) times three values of one method-specific setting (L2
   regularisation for the label and square-loss students, T, w or m for the listwise ones), each
   trained up to ``max_rounds`` rounds with early stopping on the validation split's NDCG@10 against
   the *labels*; the configuration with the best validation NDCG@10 (queries with a relevant document)
   is scored on test. This is the LambdaMART comparison's own loop
   (``selboost.bench.report.run_method_on_fold``, a 2-round warm-up fit first). The test split is
   used for the final scores only, by students and teacher alike.

4. **Report**: test NDCG@1 and NDCG@10 (``selboost.metrics.ndcg``, gains 2^r - 1, tied scores
   averaged, ``ties="average"``; queries with no relevant document left out, ``no_relevant="skip"``,
   and in the JSON also counted as 1, LightGBM's convention), mean over folds; each student's fidelity
   to the teacher (the mean over test queries of Kendall's tau-b between its scores and the full
   teacher's); the full teacher's NDCG@10 on its training rows, in-sample and cross-fitted; and a
   paired per-query comparison of every student (and the teacher) against ``LambdaMART (labels)``,
   test queries with a relevant document, all folds pooled: mean difference, Wilcoxon signed-rank and
   paired t-test p-values, wins/ties/losses (``selboost.bench.report.paired_comparison``).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from selboost.bench import ranking
from selboost.bench.report import (CONVENTIONS, NO_PROGRESS, RankingMethod, chosen_configs, chosen_lines, config_grid,
                                   count_test_queries, fit_config, fmt_p, jsonable, mean_seconds_per_round,
                                   mean_test_ndcg, ndcg_of, paired_comparison, paired_table, pooled, progress_bar,
                                   pyplot, result_on_test, run_method_on_fold, save_figure, tune, write_report)
from selboost.datasets import Fold, RankingSet
from selboost.engines import get_engine
from selboost.links import Identity, PiecewiseLinear, Sigmoid
from selboost.losses import ListwiseLoss

__all__ = ["TEACHER", "REFERENCE", "query_parts", "cross_fitted_scores", "standardise_by_part", "top_features",
           "student_methods", "run_benchmark", "summarize", "write_outputs", "run"]

TEACHER = "teacher (all features)"
#: the engine of the teacher and of every student but ``LightGBM lambdarank (labels)``
ENGINE = "xgboost"
REFERENCE = "LambdaMART (labels)"

LEARNING_RATES = (0.05, 0.2)
L2_VALUES = (0.1, 1.0, 10.0)
TEMPERATURES = (0.5, 1.0, 2.0)
BUMP_WEIGHTS = (1.0, 3.0, 9.0)
BUMP_SCALE = 0.5
TOP_SLOPES = (2.0, 4.0, 8.0)
CENTRE_QUANTILE = 0.9
CROSS_FIT_SEED = 0
#: the NDCG cut-offs the tables show (the JSON holds ``report.KS``)
SHOWN_KS = (1, 10)

#: a student's training target: the relevance labels or the cross-fitted teacher scores (RankingMethod.family)
LABELS, TEACHER_SCORES = "labels", "teacher scores"


# ---------------------------------------------------------------- cross-fitting


def query_parts(n_queries, n_parts, seed=CROSS_FIT_SEED):
    """The part (0 .. n_parts - 1) of each query: a random deal of the queries into parts whose sizes
    differ by at most one."""
    if isinstance(n_parts, bool) or not isinstance(n_parts, (int, np.integer)) or n_parts < 2:
        raise ValueError(f"--teacher-folds: cross-fitting needs at least 2 folds, got {n_parts!r}")
    if n_parts > n_queries:
        raise ValueError(f"--teacher-folds {n_parts}: more folds than the {n_queries} training queries")
    order = np.random.default_rng(seed).permutation(n_queries)
    parts = np.empty(n_queries, dtype=np.int64)
    parts[order] = np.arange(n_queries) % n_parts
    return parts


def cross_fitted_scores(data: RankingSet, n_parts, fit, seed=CROSS_FIT_SEED):
    """Scores of every row of ``data`` from a model that never saw the row's query.

    Parameters
    ----------
    data : RankingSet
        The training split.
    n_parts : int
        How many parts the queries are dealt into (K of K-fold cross-fitting, >= 2).
    fit : callable
        ``fit(train_set) -> predict``, with ``predict(ranking_set) -> scores per row``; called once per
        part with the queries of the other parts.
    seed : int
        Seed of the deal (``query_parts``).

    Returns
    -------
    scores : ndarray (n_rows,)
        Row i's score from the model fitted without its query's part.
    parts : ndarray (n_queries,)
        Each query's part.
    """
    parts = query_parts(data.n_queries, n_parts, seed)
    pointer = data.pointer
    scores = np.full(data.y.shape[0], np.nan)
    for part in range(n_parts):
        held_out = np.flatnonzero(parts == part)
        predict = fit(data.subset(np.flatnonzero(parts != part)))
        # subset() lays out the held-out queries' rows in this order: the same rows here
        rows = np.concatenate([np.arange(pointer[q], pointer[q + 1]) for q in held_out])
        scores[rows] = predict(data.subset(held_out))
    return scores, parts


def standardise_by_part(scores, group, parts):
    """``scores`` with mean 0 and standard deviation 1 over the rows of each part (a constant part:
    centred only), so that the parts' models agree in scale."""
    row_parts = np.repeat(parts, group)
    out = np.asarray(scores, dtype=np.float64).copy()
    for part in np.unique(row_parts):
        rows = row_parts == part
        spread = out[rows].std()
        out[rows] = (out[rows] - out[rows].mean()) / (spread if spread > 0 else 1.0)
    return out


def top_features(booster, n_features, n_columns, engine=ENGINE):
    """The ``n_features`` columns of highest total gain in ``booster``, a model of ``engine`` (highest
    first; columns it never split on follow by index)."""
    if n_features > n_columns:
        raise ValueError(f"--features {n_features}: the data has only {n_columns} features")
    gain = get_engine(engine).feature_importances(booster, n_columns)  # total gain per column
    order = np.lexsort((np.arange(n_columns), -gain))
    return order[:n_features]


# ---------------------------------------------------------------- students


def _grid(second):
    """Every student learning rate times each (label, dict) of the method's own setting."""
    return config_grid(second, LEARNING_RATES)


def student_methods(depth, centre):
    """The students (``RankingMethod``; ``family`` names the training target), each with
    ``len(LEARNING_RATES) * 3`` configurations; ``centre`` is the selective transforms' c."""
    xgb_l2 = get_engine(ENGINE).param_names["reg_lambda"]
    lgb_l2 = get_engine("lightgbm").param_names["reg_lambda"]
    c = float(centre)

    def distill(transform):
        return ListwiseLoss(transform, target="score")

    return [
        RankingMethod(REFERENCE, ENGINE, LABELS, _grid(
            [(f"l2={v:g}", {"params": {"objective": "rank:ndcg", "max_depth": depth, xgb_l2: v}})
             for v in L2_VALUES])),
        RankingMethod("LightGBM lambdarank (labels)", "lightgbm", LABELS, _grid(
            [(f"l2={v:g}", {"params": {"objective": "lambdarank", "max_depth": depth, "num_leaves": 2 ** depth,
                                       lgb_l2: v}}) for v in L2_VALUES])),
        RankingMethod("square loss on teacher", ENGINE, TEACHER_SCORES, _grid(
            [(f"l2={v:g}", {"params": {"objective": "reg:squarederror", "max_depth": depth, xgb_l2: v}})
             for v in L2_VALUES])),
        RankingMethod("softmax distill", ENGINE, TEACHER_SCORES, _grid(
            [(f"T={t:g}", {"loss": distill((1.0 / t) * Identity()), "params": {"max_depth": depth}})
             for t in TEMPERATURES])),
        RankingMethod("selective distill: sigmoid bump", ENGINE, TEACHER_SCORES, _grid(
            [(f"z + {w:g}*sigmoid({c:.2f},{BUMP_SCALE:g})",
              {"loss": distill(Identity() + w * Sigmoid(center=c, scale=BUMP_SCALE)), "params": {"max_depth": depth}})
             for w in BUMP_WEIGHTS])),
        RankingMethod("selective distill: steep top", ENGINE, TEACHER_SCORES, _grid(
            [(f"slopes 1|{m:g} at {c:.2f}",
              {"loss": distill(PiecewiseLinear(knots=(c,), slopes=(1.0, m))), "params": {"max_depth": depth}})
             for m in TOP_SLOPES])),
    ]


def _restricted(data: RankingSet, features, y) -> RankingSet:
    return RankingSet(np.ascontiguousarray(data.X[:, features]), np.asarray(y, dtype=np.float64), data.group,
                      data.qid)


def _fidelity(data: RankingSet, student, teacher):
    """Mean over queries of Kendall's tau-b between the student's and the teacher's scores (queries where
    either is constant have none and are left out)."""
    from scipy import stats

    pointer = data.pointer
    taus = []
    for a, b in zip(pointer[:-1], pointer[1:]):
        if b - a < 2:
            continue
        tau = stats.kendalltau(student[a:b], teacher[a:b]).statistic
        if np.isfinite(tau):
            taus.append(tau)
    return float(np.mean(taus)) if taus else float("nan")


# ---------------------------------------------------------------- one fold


def teacher_method():
    """The teacher: the LambdaMART comparison's ``xgb rank:ndcg`` with its tuning grid."""
    method = next(m for m in ranking.default_methods((ENGINE,)) if m.name == "xgb rank:ndcg")
    return RankingMethod(TEACHER, method.engine, method.family, method.grid)


def _teacher_on_fold(fold, n_parts, max_rounds, patience, threads, bar):
    """The full teacher's result (in ``run_method_on_fold``'s layout), its ``ConfigFit``, and the
    cross-fitted standardised training-row scores."""
    method = teacher_method()
    config, trial, trials, fit = tune(method, fold, max_rounds, patience, threads, bar)
    parts_record = []

    def fit_part(train):
        part = fit_config(method, config, Fold("teacher", train, fold.valid, fold.valid), max_rounds, patience,
                          threads)
        parts_record.append({"train_queries": train.n_queries, "best_round": part.best_round,
                             "rounds_run": part.rounds_run, "seconds": part.seconds})
        bar.advance(f"{fold.name} teacher cross-fit {len(parts_record)}/{n_parts}")
        return part.predict

    raw, parts = cross_fitted_scores(fold.train, n_parts, fit_part)
    target = standardise_by_part(raw, fold.train.group, parts)
    result = result_on_test(fold, trial, trials, fit, warmup_seconds=0.0)
    result.update({
        "fidelity": 1.0,
        "trained_on": "labels, all features",
        "train_ndcg@10": {"in-sample": ndcg_of(fold.train, fit.predict(fold.train), 10, "excluded"),
                          "cross-fitted": ndcg_of(fold.train, raw, 10, "excluded")},
        "cross_fit": parts_record,
    })
    return result, fit, target


def run_fold(fold, n_features, depth, n_parts, max_rounds, patience, threads, bar=NO_PROGRESS):
    """The teacher and every student on one fold: {method name: result}, and the fold's record
    (features, centre)."""
    teacher, teacher_fit, target = _teacher_on_fold(fold, n_parts, max_rounds, patience, threads, bar)
    features = top_features(teacher_fit.booster, n_features, fold.train.X.shape[1], teacher_fit.engine)
    centre = float(np.quantile(target, CENTRE_QUANTILE))
    results = {TEACHER: teacher}
    for method in student_methods(depth, centre):
        train_y = fold.train.y if method.family == LABELS else target
        restricted = Fold(fold.name, _restricted(fold.train, features, train_y),
                          _restricted(fold.valid, features, fold.valid.y),
                          _restricted(fold.test, features, fold.test.y), fold.note)
        result = run_method_on_fold(method, restricted, max_rounds, patience, threads, bar)
        result["fidelity"] = _fidelity(fold.test, result["prediction"], teacher["prediction"])
        result["trained_on"] = method.family
        results[method.name] = result
    record = {"features": [int(f) for f in features], "centre": centre}
    return results, record


def run_benchmark(folds, n_features=5, depth=3, n_parts=5, max_rounds=500, patience=50, threads=None,
                  progress=True):
    """Teacher and students on every fold: ({method: {fold: result}}, {fold: record})."""
    threads = threads or os.cpu_count() or 1
    if n_features < 1 or depth < 1:
        raise ValueError(f"--features and --student-depth must be >= 1, got {n_features} and {depth}")
    for fold in folds:  # every bad setting fails before the first fit
        query_parts(fold.train.n_queries, n_parts)
        if n_features > fold.train.X.shape[1]:
            raise ValueError(f"--features {n_features}: the data has only {fold.train.X.shape[1]} features")
    per_fold = len(teacher_method().grid) + n_parts + sum(len(m.grid) for m in student_methods(depth, 0.0))
    results, records = {}, {}
    with progress_bar(per_fold * len(folds), "selboost bench distill", "fit", progress) as bar:
        for fold in folds:
            fold_results, records[fold.name] = run_fold(fold, n_features, depth, n_parts, max_rounds, patience,
                                                        threads, bar)
            for name, result in fold_results.items():
                results.setdefault(name, {})[fold.name] = result
    return results, records


# ---------------------------------------------------------------- summary and outputs


def _mean_ci(results, name, k):
    """Mean per-query difference against the reference and its 95 % normal half-width (folds pooled)."""
    diff = pooled(results, name, k) - pooled(results, REFERENCE, k)
    half = 1.96 * diff.std(ddof=1) / math.sqrt(diff.size) if diff.size > 1 else float("nan")
    return float(diff.mean()), float(half)


def summarize(results, records):
    """Fold means of test NDCG (both conventions) and fidelity, the chosen configurations, the teacher's
    training-row NDCG, and the paired comparison against ``REFERENCE``."""
    methods = {}
    for name, per_fold in results.items():
        methods[name] = {
            "test": mean_test_ndcg(per_fold),
            "fidelity": float(np.nanmean([f["fidelity"] for f in per_fold.values()])),
            "seconds_per_round": mean_seconds_per_round(per_fold),
            **chosen_configs(per_fold),
            "diff_ci95": {f"ndcg@{k}": _mean_ci(results, name, k) for k in SHOWN_KS},
        }
    teacher = results[TEACHER]
    train_ndcg = {kind: float(np.mean([f["train_ndcg@10"][kind] for f in teacher.values()]))
                  for kind in ("in-sample", "cross-fitted")}
    return {"methods": methods, "reference": REFERENCE, "paired": paired_comparison(results, REFERENCE),
            "teacher_train_ndcg@10": train_ndcg, "test_queries": count_test_queries(teacher), "folds": records}


def markdown(summary, results, header):
    """The tables of ``distill.md``."""
    counts = summary["test_queries"]
    total = sum(c["queries"] for c in counts.values())
    none = sum(c["no_relevant"] for c in counts.values())
    lines = [header, "", f"Test queries: {total} over {len(counts)} fold(s), {none} of them with no relevant "
             "document (left out of the means and of the paired tests; the JSON also has the means with "
             "them counted as 1).", "",
             "Test NDCG (mean over folds) and fidelity to the teacher (mean per-query Kendall tau-b of the "
             "test scores):", "",
             "| method | trained on | NDCG@1 | NDCG@10 | fidelity | s/round |", "|---|---|---|---|---|---|"]
    students = [n for n in summary["methods"] if n != TEACHER]
    best = {k: max(summary["methods"][n]["test"]["excluded"][f"ndcg@{k}"] for n in students) for k in SHOWN_KS}
    for name, m in summary["methods"].items():
        cells = []
        for k in SHOWN_KS:
            v = m["test"]["excluded"][f"ndcg@{k}"]
            cells.append(f"**{v:.4f}**" if name != TEACHER and math.isclose(v, best[k]) else f"{v:.4f}")
        trained_on = next(iter(results[name].values()))["trained_on"]
        lines.append(f"| {name} | {trained_on} | " + " | ".join(cells)
                     + f" | {m['fidelity']:.3f} | {m['seconds_per_round'] * 1e3:.1f} ms |")
    lines += ["", "(Bold: the best student.)", "",
              f"Paired per-query comparison against `{REFERENCE}`, test queries with a relevant document, "
              "folds pooled: mean difference, wins/ties/losses, Wilcoxon signed-rank p and paired t-test p:", ""]
    lines += paired_table(summary["paired"], REFERENCE, SHOWN_KS)
    train = summary["teacher_train_ndcg@10"]
    lines += ["", f"Teacher NDCG@10 on its training rows (mean over folds): {train['in-sample']:.4f} in-sample, "
              f"{train['cross-fitted']:.4f} cross-fitted (the scores the students learn from).", "",
              "Per fold: the students' features (0-based columns, highest teacher gain first), the selective "
              "centre c, and each method's chosen configuration (validation NDCG@10) with its best round:", ""]
    for fold, record in summary["folds"].items():
        lines.append(f"- {fold}: features {record['features']}, c = {record['centre']:.3f}")
    lines += chosen_lines(summary["methods"])
    return "\n".join(lines) + "\n"


def plot(summary, path, title):
    """Left: test NDCG@1 and @10 of every student, the teacher's as dashed lines. Right: the mean paired
    difference against the reference with its 95 % interval, the Wilcoxon p-values under each name."""
    plt = pyplot()
    students = [n for n in summary["methods"] if n != TEACHER]
    colors = ("tab:blue", "tab:orange")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1]})
    y = np.arange(len(students))
    for j, k in enumerate(SHOWN_KS):
        values = [summary["methods"][n]["test"]["excluded"][f"ndcg@{k}"] for n in students]
        ax1.barh(y + (j - 0.5) * 0.4, values, 0.4, label=f"NDCG@{k}", color=colors[j])
        ax1.axvline(summary["methods"][TEACHER]["test"]["excluded"][f"ndcg@{k}"], color=colors[j], ls="--", lw=1,
                    label=f"teacher NDCG@{k}")
    values = [summary["methods"][n]["test"]["excluded"][f"ndcg@{k}"] for n in summary["methods"] for k in SHOWN_KS]
    ax1.set_xlim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.03))
    ax1.set_yticks(y, students, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("test NDCG (queries with a relevant document), mean over folds")
    ax1.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax1.set_title(title, fontsize=9)
    others = [n for n in students if n != REFERENCE]
    y = np.arange(len(others))
    for j, k in enumerate(SHOWN_KS):
        means = [summary["methods"][n]["diff_ci95"][f"ndcg@{k}"][0] for n in others]
        halves = [summary["methods"][n]["diff_ci95"][f"ndcg@{k}"][1] for n in others]
        ax2.barh(y + (j - 0.5) * 0.4, means, 0.4, xerr=halves, capsize=2, label=f"NDCG@{k}", color=colors[j])
    ax2.axvline(0.0, color="black", lw=0.8)
    labels = [f"{n}\nWilcoxon p " + ", ".join(f"@{k} {fmt_p(summary['paired'][n][f'ndcg@{k}']['p_wilcoxon'])}"
                                               for k in SHOWN_KS) for n in others]
    ax2.set_yticks(y, labels, fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel(f"per-query difference vs {REFERENCE}: mean, 95 % interval")
    ax2.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig.tight_layout()
    save_figure(fig, path, bbox_inches="tight")


def write_outputs(results, records, out_dir, meta):
    """Write ``distill.json``, ``distill.md`` and ``distill.png`` into ``out_dir``; returns (summary, text)."""
    summary = summarize(results, records)
    raw = {name: {fold: {key: value for key, value in r.items() if key != "prediction"} for fold, r in per_fold.items()}
           for name, per_fold in results.items()}
    document = {"meta": meta, "conventions": CONVENTIONS, "summary": summary, "results": raw}
    header = f"# selboost bench distill: {meta['data']}\n\nCommand: `{meta['command']}`\n\n{meta['protocol']}"
    text = markdown(summary, results, header)
    write_report(out_dir, "distill", jsonable(document), text)
    plot(summary, os.path.join(out_dir, "distill.png"), meta["data"])
    return summary, text


def protocol_text(folds, n_features, depth, n_parts, max_rounds, patience, threads):
    """The protocol paragraph at the top of ``distill.md``."""
    folds_text = "; ".join(f"{f.name}: {f.train.n_queries}/{f.valid.n_queries}/{f.test.n_queries} queries "
                           f"train/valid/test ({f.note})" for f in folds)
    return (
        f"Protocol: teacher XGBoost rank:ndcg on all features, tuned as `selboost bench` tunes it (learning "
        f"rate 0.03/0.1/0.3 times depth 4/6, each up to {max_rounds} rounds, early stopping with patience "
        f"{patience} on validation NDCG@10, the best by validation NDCG@10); its scores on the training rows "
        f"cross-fitted over {n_parts} random parts of the training queries (each part scored by a teacher of the "
        f"chosen configuration trained on the other parts), standardised per part. Students: the teacher's top "
        f"{n_features} features by total gain, trees of depth {depth}. Every student gets the same tuning budget: "
        f"{len(LEARNING_RATES) * 3} configurations (learning rate in {list(LEARNING_RATES)} times three values "
        f"of one method-specific setting), each trained up to {max_rounds} rounds with early stopping "
        f"(patience {patience}) on validation NDCG@10 against the labels; the best configuration by validation "
        f"NDCG@10 is scored on test. Selective centre c: the {CENTRE_QUANTILE:g} quantile of the standardised "
        f"cross-fitted teacher scores on the training rows. NDCG: gains 2^r - 1, log2 discount, tied scores "
        f"averaged (selboost.metrics.ndcg, ties='average'). {threads} thread(s). Folds: {folds_text}.\n"
    )


def run(folds, data, out_dir, command, n_features=5, depth=3, n_parts=5, max_rounds=500, patience=50,
        threads=None, progress=True):
    """The whole benchmark: fits, then ``distill.json``, ``distill.md`` and ``distill.png``; returns the
    Markdown text."""
    threads = threads or os.cpu_count() or 1
    meta = {"data": data, "command": command,
            "protocol": protocol_text(folds, n_features, depth, n_parts, max_rounds, patience, threads),
            "features": n_features, "student_depth": depth, "teacher_folds": n_parts, "max_rounds": max_rounds,
            "patience": patience, "threads": threads}
    start = time.perf_counter()
    results, records = run_benchmark(folds, n_features, depth, n_parts, max_rounds, patience, threads, progress)
    meta["wall_seconds"] = time.perf_counter() - start
    _, text = write_outputs(results, records, out_dir, meta)
    return text, meta["wall_seconds"]
