"""The command line on tiny slices: files written, NDCG as sklearn computes it, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

import reference as R
from selboost.cli import main

TINY = ["--max-queries", "12", "--rounds", "4", "--patience", "2", "--threads", "1", "--no-progress"]


def _check_reported_ndcg(document):
    """Every per-query NDCG in the JSON equals sklearn's on the saved predictions (relevant queries)."""
    checked = 0
    for name, per_fold in document["results"].items():
        for fold_name, result in per_fold.items():
            data = document["test_data"][fold_name]
            y, group, prediction = np.array(data["y"]), data["group"], np.array(result["prediction"])
            pointer = np.concatenate([[0], np.cumsum(group)])
            for k in (1, 3, 5, 10):
                reported = result["per_query"][f"ndcg@{k}"]
                for q in range(len(group)):
                    yq = y[pointer[q]:pointer[q + 1]]
                    sq = prediction[pointer[q]:pointer[q + 1]]
                    if yq.max() == 0 or yq.size == 1:
                        assert reported[q] is None or yq.size == 1
                        continue
                    expected = ndcg_score([2.0 ** yq - 1], [sq], k=k)
                    assert reported[q] == pytest.approx(expected, abs=1e-9), (name, fold_name, k, q)
                    checked += 1
            kept = [v for v in result["per_query"]["ndcg@10"] if v is not None]
            n_none = len(result["per_query"]["ndcg@10"]) - len(kept)
            assert result["test"]["excluded"]["ndcg@10"] == pytest.approx(np.mean(kept))
            assert result["test"]["as-one"]["ndcg@10"] == pytest.approx((np.sum(kept) + n_none) / len(group))
    assert checked > 0


def _reference_tables(document):
    """The headline table values as the benchmark has always computed them: per-query NDCG by loops
    with tied scores averaged, then the mean over the queries with a relevant document ("excluded") or
    with those counted as 1 ("as-one"), then the mean over folds, printed to four digits."""
    tables = {}
    for name, per_fold in document["results"].items():
        for conv in ("excluded", "as-one"):
            cells = []
            for k in (1, 3, 5, 10):
                means = []
                for fold_name, result in per_fold.items():
                    data = document["test_data"][fold_name]
                    y, prediction = np.array(data["y"]), np.array(result["prediction"])
                    pointer = np.concatenate([[0], np.cumsum(data["group"])])
                    values = [R.ndcg_query(y[a:b], prediction[a:b], k, ties="average")
                              for a, b in zip(pointer[:-1], pointer[1:])]
                    kept = [v for v in values if v is not None]
                    means.append(np.mean(kept) if conv == "excluded" else
                                 (np.sum(kept) + len(values) - len(kept)) / len(values))
                    assert result["test"][conv][f"ndcg@{k}"] == pytest.approx(means[-1], abs=1e-15)
                cells.append(f"{np.mean(means):.4f}")
            tables.setdefault(conv, []).append(f"| {name} | " + " | ".join(cells) + " |")
    return tables


def _table_rows(text):
    """The NDCG cells of results.md's headline tables, per convention, bold marks and s/round dropped."""
    tables, current = {}, None
    for line in text.splitlines():
        if line.startswith("Test NDCG, "):
            current = "excluded" if "left out" in line else "as-one"
        elif current and line.startswith("| ") and not line.startswith("| method"):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")][:5]
            tables.setdefault(current, []).append("| " + " | ".join(cells) + " |")
        elif current and not line.strip() and current in tables:
            current = None
    return tables


def test_bench_on_bundled_slice(tmp_path, capsys):
    out = tmp_path / "res"
    methods = "xgb rank:ndcg,lgb lambdarank,xgb selboost softmax,lgb selboost pairwise"
    assert main(["bench", *TINY, "--save-predictions", "--methods", methods, "--out", str(out)]) == 0
    for name in ("results.json", "results.md", "ndcg.png"):
        assert (out / name).stat().st_size > 0
    document = json.loads((out / "results.json").read_text())
    assert list(document["results"]) == methods.split(",")
    summary = document["summary"]
    assert summary["reference"] in ("xgb rank:ndcg", "lgb lambdarank")
    for name, method in summary["methods"].items():
        assert set(method["test"]) == {"excluded", "as-one"}
        assert method["seconds_per_round"] > 0
        assert len(document["results"][name]["lgb-rank"]["trials"]) == 12  # equal tuning budget
    assert summary["paired"][summary["reference"]]["ndcg@10"]["mean_diff"] == 0.0
    _check_reported_ndcg(document)
    text = (out / "results.md").read_text()
    assert "| method | NDCG@1 | NDCG@3 | NDCG@5 | NDCG@10 | s/round | warm-up fit s |" in text
    assert _table_rows(text) == _reference_tables(document)  # the table's numbers, to the last digit
    assert "Paired per-query comparison" in text
    assert "NDCG@10" in capsys.readouterr().out


def _write_letor(path, qids, rng):
    lines = []
    for q in qids:
        for _ in range(6):
            rel = int(rng.integers(0, 3))
            features = rng.random(5) + 0.3 * rel
            lines.append(f"{rel} qid:{q} " + " ".join(f"{i + 1}:{v:.4f}" for i, v in enumerate(features))
                         + f" #docid = D{q}")
    path.write_text("\n".join(lines) + "\n")


def test_bench_on_letor_folds(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "letor"
    data.mkdir()
    for k in range(1, 6):
        _write_letor(data / f"S{k}.txt", [100 * k + j for j in range(8)], rng)
    out = tmp_path / "res"
    assert main(["bench", "--data", str(data), *TINY, "--save-predictions",
                 "--methods", "lgb lambdarank,lgb selboost softmax", "--out", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    assert sorted(document["results"]["lgb lambdarank"]) == [f"Fold{k}" for k in range(1, 6)]
    _check_reported_ndcg(document)
    pooled = document["summary"]["paired"]["lgb selboost softmax"]["ndcg@10"]
    n_relevant = sum(v is not None for r in document["results"]["lgb lambdarank"].values()
                     for v in r["per_query"]["ndcg@10"])
    assert pooled["n_queries"] == n_relevant == pooled["wins"] + pooled["ties"] + pooled["losses"]


def test_plot_link(tmp_path):
    path = tmp_path / "link.png"
    assert main(["plot-link", "--link", "identity + 9*sigmoid(2, 0.5)", "--targets", "0,2,3",
                 "--out", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["plot-link", "--link", "identity + __import__('os')"], "unexpected character"),
    (["plot-link", "--link", "sigmoid(1, -2)"], "scale must be > 0"),
    (["plot-link", "--link", "identity", "--targets", "a,b"], "--targets"),
    (["bench", "--data", "/nonexistent/letor"], "not a directory"),
    (["bench", "--methods", "no such method"], "unknown method"),
])
def test_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--link", "sinh(0, 1e-300)"], "overflows float64 on the score range [-3, 3] (the default, around the link's "
                                    "centres; set it with --range), first at z = -3: give the link a larger scale"),
    (["--link", "sinh(0, 1e-300)", "--range=-1e-310,1e-310", "--targets", "0,1"],
     "overflows float64 on the targets (--targets), first at y = 1: give the link a larger scale or give other"),
])
def test_plot_link_overflow_speaks_of_the_link_and_range_given(argv, message, capsys, tmp_path):
    """A link that overflows where it is drawn is named with the range or targets it overflows on, not
    as training labels (y_true) the user never gave, and without NumPy's overflow warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemExit):
            main(["plot-link", *argv, "--out", str(tmp_path / "link.png")])
    err = capsys.readouterr().err
    assert message in err and "y_true" not in err and "Sinh(center=0.0, scale=1e-300)" in err


def test_module_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "selboost", "bench", "--list-methods"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    assert result.returncode == 0, result.stderr
    assert "xgb rank:ndcg" in result.stdout and "lgb selboost softmax" in result.stdout


def test_the_bench_methods_come_from_the_engines():
    from selboost.bench import ranking
    from selboost.engines import ENGINE_NAMES, BoostingParams, get_engine
    from selboost.losses import ListwiseLoss

    names = [m.name for m in ranking.default_methods()]
    assert names[:3] == ["xgb rank:ndcg", "lgb lambdarank", "lgb rank_xendcg"]
    assert [m.name for m in ranking.default_methods(("lightgbm",))][:2] == ["lgb lambdarank", "lgb rank_xendcg"]
    xgb_lambdamart = next(m for m in ranking.default_methods() if m.name == "xgb rank:ndcg")
    lam = get_engine("xgboost").param_names["reg_lambda"]
    assert [c["params"] for c in xgb_lambdamart.grid[:4]] == [
        {"objective": "rank:ndcg", "max_depth": d, lam: v} for d in (4, 6) for v in ranking.REG_LAMBDAS]
    for name in ENGINE_NAMES:
        engine = get_engine(name)
        assert engine.tree_size_param in ranking.TREE_SIZES and engine.ranking_objectives
        # params() and native_params() speak the same names
        params = engine.params(BoostingParams(max_depth=3, reg_lambda=2.0, min_child_weight=0.5))
        expected = engine.native_params(max_depth=3, reg_lambda=2.0, min_child_weight=0.5)
        assert {key: params[key] for key in expected} == expected
        assert engine.leaf_hessian_minimum(params) == 0.5
        with pytest.raises(ValueError, match="no parameter"):
            engine.native_params(no_such_parameter=1)
    # the same budget for every default method: a brake times each setting, the group weight for the
    # listwise losses and reg_lambda for the others; the extra methods keep six configurations, the
    # plain ones with the plain softmax alone
    for method in ranking.default_methods():
        assert len(method.grid) == 12
        engine = get_engine(method.engine)
        listwise = isinstance(method.grid[0].get("loss"), ListwiseLoss)
        brakes = [c["loss"].group_scale if listwise else c["params"][engine.param_names["reg_lambda"]]
                  for c in method.grid]
        assert brakes == list(ranking.GROUP_SCALES if listwise else ranking.REG_LAMBDAS) * 6
    for method in ranking.extra_methods():
        assert len(method.grid) == 6
        for config in method.grid:
            if isinstance(config.get("loss"), ListwiseLoss):
                assert config["loss"].group_scale == (None if method.name.endswith(" plain") else "auto")
    assert ranking.budget_text(ranking.default_methods()).startswith("the same budget for every method, 12")
    lightgbm_extra = {m.name: m for m in ranking.extra_methods(("lightgbm",))}
    assert lightgbm_extra["lgb selective xgb-like trees"].grid[0]["params"] == {
        "lambda_l2": 1.0, "min_sum_hessian_in_leaf": 1.0, "max_depth": 6, "num_leaves": 63, "min_data_in_leaf": 1}
    assert not any("xgb-like" in m.name for m in ranking.extra_methods(("xgboost",)))


def test_the_bench_trains_through_the_engines_only():
    """No benchmark module imports an engine package, inside a function or not: built-in objectives and
    selboost losses alike train through ``selboost.engines``."""
    import ast
    import pathlib

    import selboost

    root = pathlib.Path(selboost.__file__).parent
    engine_packages = {"xgboost", "lightgbm"}
    for path in [*sorted((root / "bench").glob("*.py")), root / "cli.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            assert not {name.partition(".")[0] for name in names} & engine_packages, (path.name, node.lineno)
