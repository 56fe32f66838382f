"""selboost command line.

    selboost bench                      LambdaMART comparison on the bundled LightGBM example data
    selboost bench --data DIR           ... on LETOR folds (Fold1..Fold5 dirs, or S1..S5 files)
    selboost bench regression           selectivity study on the bundled UCI bike-sharing data
    selboost bench distill              a teacher on all features distilled into a restricted student
    selboost bench synthetic            the region link on synthetic data with a known important region
    selboost bench imbalanced           relevance weights and the relevance link on SERA (imbalanced regression)
    selboost plot-link --link "identity + 9*sigmoid(2, 0.5)"    draw a link, h' and the loss
    selboost warmup [--losses KIND[:LINK] ...]                  compile the kernels into Numba's cache

Results go to ``--out`` (default ``selboost-results/``): JSON, Markdown and PNG.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from selboost.engines import ENGINE_NAMES

DEFAULT_OUT = "selboost-results"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _command_line(argv):
    return "selboost " + " ".join(shlex.quote(a) for a in argv)


def _load_letor(args):
    """The folds ``--data`` names (the bundled example without it) and their description."""
    from selboost.datasets import load_bundled, load_folds

    if args.data is None:
        return (load_bundled(max_queries=args.max_queries),
                "bundled LightGBM lambdarank example (examples/lambdarank, MIT)")
    folds = load_folds(args.data, max_queries=args.max_queries)
    return folds, f"{args.data} ({len(folds)} fold(s))"


def _run_ranking(args, argv) -> int:
    from selboost.bench import ranking

    folds, data = _load_letor(args)
    engines = tuple(e.strip() for e in args.engines.split(","))
    for engine in engines:
        if engine not in ENGINE_NAMES:
            raise SystemExit(f"selboost bench: --engines takes {' and/or '.join(ENGINE_NAMES)}, got {engine!r}")
    methods = ranking.select_methods(args.methods, engines)
    folds_text = "; ".join(f"{f.name}: {f.train.n_queries}/{f.valid.n_queries}/{f.test.n_queries} queries "
                           f"train/valid/test ({f.note})" for f in folds)
    protocol = (
        f"Protocol: each method is tuned on the validation split, {ranking.budget_text(methods)}; "
        f"each configuration trains up to {args.max_rounds} rounds with early "
        f"stopping (patience {args.patience}) on validation NDCG@10; the best is scored on test. "
        f"NDCG: gains 2^r - 1, log2 discount, tied scores averaged (selboost.metrics.ndcg with "
        f"ties='average', equal to sklearn.metrics.ndcg_score). Seconds per round: training time over all "
        f"of a method's fits divided by the rounds they ran, {args.threads} thread(s), after a warm-up fit "
        f"of 2 rounds per method and fold (its seconds, Numba compilation included, are the warm-up "
        f"column). Folds: {folds_text}.\n"
    )
    meta = {"data": data, "command": _command_line(argv), "protocol": protocol,
            "max_rounds": args.max_rounds, "patience": args.patience, "threads": args.threads,
            "methods": [m.name for m in methods]}
    start = time.perf_counter()
    results = ranking.run_benchmark(folds, methods, max_rounds=args.max_rounds, patience=args.patience,
                                    threads=args.threads, progress=not args.no_progress)
    meta["wall_seconds"] = time.perf_counter() - start
    _, text = ranking.write_outputs(results, folds, args.out, meta, save_predictions=args.save_predictions)
    print(text)
    print(f"wrote {os.path.join(args.out, 'results.json')}, results.md, ndcg.png "
          f"({meta['wall_seconds']:.0f} s)")
    return 0


def _run_regression(args, argv) -> int:
    from selboost.bench import regression

    meta = {"command": _command_line(argv)}
    text = regression.run(data=args.data, out_dir=args.out, max_rounds=args.rounds, threads=args.threads,
                          max_rows=args.max_rows, progress=not args.no_progress, meta=meta, engine=args.engine)
    print(text)
    print(f"wrote {os.path.join(args.out, 'regression.json')}, regression.md, regression-*.png")
    return 0


def _run_distill(args, argv) -> int:
    from selboost.bench import distill

    if args.teacher_folds < 2:
        raise ValueError(f"--teacher-folds: cross-fitting needs at least 2 folds, got {args.teacher_folds}")
    folds, data = _load_letor(args)
    text, seconds = distill.run(folds, data, args.out, _command_line(argv), n_features=args.features,
                                depth=args.student_depth, n_parts=args.teacher_folds, max_rounds=args.max_rounds,
                                patience=args.patience, threads=args.threads, progress=not args.no_progress)
    print(text)
    print(f"wrote {os.path.join(args.out, 'distill.json')}, distill.md, distill.png ({seconds:.0f} s)")
    return 0


def _run_synthetic(args, argv) -> int:
    from selboost.bench import synthetic

    meta = {"command": _command_line(argv)}
    text = synthetic.run(out_dir=args.out, seeds=args.seeds, rows=args.rows, threads=args.threads,
                         engine=args.engine, max_rounds=args.max_rounds, progress=not args.no_progress, meta=meta)
    print(text)
    print(f"wrote {os.path.join(args.out, 'synthetic.json')}, synthetic.md, synthetic.png, "
          "synthetic-false-alarms.png")
    return 0


def _run_imbalanced(args, argv) -> int:
    from selboost.bench import imbalanced
    from selboost.bench.plot_link import parse_floats

    strengths = parse_floats(args.strengths, "--strengths")
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()] if args.datasets else None
    meta = {"command": _command_line(argv)}
    text = imbalanced.run(datasets=datasets or imbalanced.REGRESSION_SETS, out_dir=args.out, splits=args.splits,
                          strengths=strengths, max_rounds=args.max_rounds, threads=args.threads, engine=args.engine,
                          progress=not args.no_progress, meta=meta)
    print(text)
    print(f"wrote {os.path.join(args.out, 'imbalanced.json')}, imbalanced.md, imbalanced.png")
    return 0


def _run_plot_link(args, argv) -> int:
    from selboost.bench.plot_link import parse_floats, parse_link, plot_link

    link = parse_link(args.link)
    targets = parse_floats(args.targets, "--targets")
    span = parse_floats(args.range, "--range") if args.range else None
    if span is not None and (len(span) != 2 or span[0] >= span[1]):
        raise SystemExit(f"selboost plot-link: --range needs two increasing numbers 'lo,hi', got {args.range!r}")
    path = plot_link(link, args.out, targets=targets, span=span, title=args.link)
    print(f"{link!r}\nwrote {path}")
    return 0


def _run_warmup(args, argv) -> int:
    import time

    from selboost import warmup

    start = time.perf_counter()
    engines = [e.strip() for e in args.engines.split(",")] if args.engines else None
    for engine in engines or ():
        if engine not in ENGINE_NAMES:
            raise ValueError(f"--engines takes {' and/or '.join(ENGINE_NAMES)}, got {engine!r}")
    warmup.warm_up(args.losses, engines)
    print(f"compiled into {warmup.cache_location()} in {time.perf_counter() - start:.1f} s")
    return 0


def _add_early_stopping_options(parser, rounds_help):
    """The ranking benches' --max-rounds, --patience and --threads."""
    parser.add_argument("--max-rounds", "--rounds", dest="max_rounds", type=_positive_int, default=500,
                        help=rounds_help)
    parser.add_argument("--patience", type=_positive_int, default=50,
                        help="early-stopping patience in rounds (default 50)")
    parser.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1,
                        help="engine threads (default: all cores)")


def build_parser():
    parser = argparse.ArgumentParser(prog="selboost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench",
                           help="LambdaMART comparison (default), the selectivity studies (regression, synthetic, "
                                "imbalanced) or the distillation study",
                           description="LambdaMART comparison: built-in ranking objectives against selboost "
                                       "listwise and pairwise losses.")
    bench.add_argument("--data", default=None,
                       help="directory of LETOR folds (Fold1..Fold5 with train/vali/test.txt, or S1..S5.txt); "
                            "default: the bundled LightGBM example")
    bench.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    bench.add_argument("--methods", default="default",
                       help="comma-separated method names (see --list-methods), or 'default' / 'all'")
    bench.add_argument("--list-methods", action="store_true", help="list the method names and exit")
    bench.add_argument("--engines", default="xgboost,lightgbm", help="engines to run (default both)")
    _add_early_stopping_options(bench, "most boosting rounds per fit (default 500)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument("--max-queries", type=_positive_int, default=None, help=argparse.SUPPRESS)
    bench.add_argument("--save-predictions", action="store_true", help=argparse.SUPPRESS)

    bench_sub = bench.add_subparsers(dest="bench_command")
    reg = bench_sub.add_parser("regression", help="selective links vs square loss on a heavy-tailed target",
                               description="Error inside the important region (top decile of the training "
                                           "target) against error outside it, and the false-alarm metrics, for "
                                           "square loss, up-weighting, the selective region link, both, and "
                                           "hand-built links, over strengths 1-32, each tuned alike on a "
                                           "validation split by time, on UCI bike sharing (hourly).")
    reg.add_argument("--data", default=None,
                     help="path to the bike-sharing hour.csv (or .csv.gz); default: the bundled copy")
    reg.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    reg.add_argument("--rounds", "--max-rounds", dest="rounds", type=_positive_int, default=1000,
                     help="most boosting rounds per fit, early stopping on validation (default 1000)")
    reg.add_argument("--threads", type=_positive_int, default=1,
                     help="engine threads (default 1: at these sizes a round is too small for threads to pay)")
    reg.add_argument("--engine", choices=ENGINE_NAMES, default="xgboost", help="default xgboost")
    reg.add_argument("--no-progress", action="store_true", help="no progress bar")
    reg.add_argument("--max-rows", type=_positive_int, default=None, help=argparse.SUPPRESS)

    dist = bench_sub.add_parser(
        "distill", help="distil a teacher ranker into a student with few features and shallow trees",
        description="A teacher (XGBoost rank:ndcg, all features) distilled into students restricted to its top "
                    "features and shallow trees: LambdaMART on the labels, square loss on the teacher's "
                    "cross-fitted scores, the listwise softmax on them at a few temperatures, and selective "
                    "transforms steep at the top; the same tuning budget each, paired tests per query.")
    dist.add_argument("--data", default=None,
                      help="directory of LETOR folds (as for 'selboost bench'); default: the bundled example")
    dist.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    _add_early_stopping_options(dist, "most boosting rounds per fit, teacher and students (default 500)")
    dist.add_argument("--features", type=_positive_int, default=5,
                      help="features the student may use: the teacher's top ones by gain (default 5)")
    dist.add_argument("--student-depth", type=_positive_int, default=3, help="student tree depth (default 3)")
    dist.add_argument("--teacher-folds", type=_positive_int, default=5,
                      help="folds over the training queries for the teacher's cross-fitted scores (default 5)")
    dist.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist.add_argument("--max-queries", type=_positive_int, default=None, help=argparse.SUPPRESS)
    syn = bench_sub.add_parser("synthetic", help="the region link on synthetic data (known region, decoys)",
                               description="Synthetic data with a known important region [2, 3] and decoy rows "
                                           "just below it that the model cannot tell from the rows inside: square "
                                           "loss, up-weighting, the selective region link and both, over "
                                           "strengths 1-32, each tuned alike on a validation split; Pareto "
                                           "fronts of error inside vs outside and of the false-alarm metrics.")
    syn.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    syn.add_argument("--seeds", type=_positive_int, default=5,
                     help="independent data draws, seeds 0..N-1 (default 5)")
    syn.add_argument("--rows", type=_positive_int, default=20000,
                     help="rows per draw, split 50/25/25 into fit/validation/test (default 20000)")
    syn.add_argument("--threads", type=_positive_int, default=1,
                     help="engine threads (default 1: at these sizes a round is too small for threads to pay)")
    syn.add_argument("--engine", choices=ENGINE_NAMES, default="xgboost", help="default xgboost")
    syn.add_argument("--no-progress", action="store_true", help="no progress bar")
    syn.add_argument("--max-rounds", type=_positive_int, default=1000, help=argparse.SUPPRESS)

    imb = bench_sub.add_parser(
        "imbalanced", help="relevance weights and the relevance link on data with rare extreme targets (SERA)",
        description="Imbalanced regression: square loss, relevance weights 1 + (s - 1) phi(y), the relevance link "
                    "(h' = 1 + (s - 1) phi(z)) and both, on bundled data sets whose targets have rare extremes; "
                    "random splits, the strength s chosen on validation by SERA, the symmetric SERA and RMSE in "
                    "turn; test SERA, symmetric SERA and RMSE against square loss, paired tests over splits, and "
                    "the fronts over every strength.")
    imb.add_argument("--datasets", default=None,
                     help="comma-separated data sets (default: all of selboost.datasets.REGRESSION_SETS: "
                          "bike-casual, forest-fires, wine-red, wine-white)")
    imb.add_argument("--splits", type=_positive_int, default=5, help="random splits per data set (default 5)")
    imb.add_argument("--strengths", default="1.5,2,4,8,16,32",
                     help="comma-separated strengths, each > 1 (default 1.5,2,4,8,16,32)")
    imb.add_argument("--max-rounds", "--rounds", dest="max_rounds", type=_positive_int, default=300,
                     help="most boosting rounds per fit, early stopping on validation (default 300)")
    imb.add_argument("--threads", type=_positive_int, default=1,
                     help="engine threads (default 1: at these sizes a round is too small for threads to pay)")
    imb.add_argument("--engine", choices=ENGINE_NAMES, default="xgboost", help="default xgboost")
    imb.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    imb.add_argument("--no-progress", action="store_true", help="no progress bar")

    plot = sub.add_parser("plot-link", help="draw a link h, its sensitivity h' and the loss around targets",
                          description="Link grammar: a sum of terms 'w*name(args)', names identity, "
                                      "sigmoid(center, scale), sinh(center, scale), exp(center, scale), "
                                      "piecewise([knots], [slopes]), region(low, high, strength, shape, width) "
                                      "(selboost.region_link; 'none' leaves an end open, shape piecewise or "
                                      "smooth); e.g. \"identity + 9*sigmoid(2, 0.5)\", "
                                      "\"region(2, 4, strength=10, shape=smooth)\".")
    plot.add_argument("--link", required=True, help='e.g. "identity + 9*sigmoid(2, 0.5)"')
    plot.add_argument("--targets", default=None, help="comma-separated targets y for the loss panel "
                                                      "(default: three points across the range)")
    plot.add_argument("--range", default=None, help="score range 'lo,hi' (default: around the link's centres)")
    plot.add_argument("--out", default="link.png", help="PNG path (default link.png)")
    warm = sub.add_parser(
        "warmup", help="compile the kernels that fits will use into Numba's on-disk cache",
        description="Fits a tiny model with each loss on each installed engine, so that a later process "
                    "loads the compiled kernels from Numba's cache instead of compiling them (container "
                    "images, CI caches, Dask workers). Set NUMBA_CACHE_DIR to the folder the fits will use "
                    "(needed where selboost's own folder is read-only).")
    warm.add_argument("--losses", nargs="+", default=None, metavar="KIND[:LINK]",
                      help="loss kinds selective, binary, multiclass, listwise, pairwise, each optionally with "
                           "a link in the plot-link grammar, e.g. 'selective:identity + 9*sigmoid(2, 0.5)' "
                           "(default: the estimators' defaults: selective binary multiclass listwise)")
    warm.add_argument("--engines", default=None, help="engines to warm up (default: every installed one)")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "plot-link":
            return _run_plot_link(args, argv)
        if args.command == "warmup":
            if args.losses is None:
                from selboost.warmup import DEFAULT_LOSSES

                args.losses = list(DEFAULT_LOSSES)
            return _run_warmup(args, argv)
        if args.bench_command == "regression":
            return _run_regression(args, argv)
        if args.bench_command == "distill":
            return _run_distill(args, argv)
        if args.bench_command == "synthetic":
            return _run_synthetic(args, argv)
        if args.bench_command == "imbalanced":
            return _run_imbalanced(args, argv)
        if args.list_methods:
            from selboost.bench import ranking

            for method in ranking.all_methods():
                print(f"{method.name:34s} {'(default)' if method.default else ''}")
            return 0
        return _run_ranking(args, argv)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"selboost {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
