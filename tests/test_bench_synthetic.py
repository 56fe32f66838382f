"""The two selectivity studies end to end on tiny data (``selboost bench synthetic``, ``selboost bench
regression``), the synthetic generator's region, and their bad-input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selboost.bench import _selectivity as S
from selboost.bench import synthetic
from selboost.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("seed", [0, 7])
def test_generator_region_is_as_documented(seed):
    X, y, kind = synthetic.generate(20000, seed)
    lo, hi = synthetic.REGION
    inside = (y >= lo) & (y <= hi)
    assert X.shape == (20000, synthetic.N_FEATURES)
    # inside the region exactly the signal rows: 20 % in expectation (sd 0.3 % at 20000 rows)
    np.testing.assert_array_equal(inside, kind == "signal")
    assert abs(inside.mean() - synthetic.INSIDE_SHARE) < 0.012
    assert abs(np.mean(kind == "decoy") - synthetic.DECOY_SHARE) < 0.013
    # decoys just below the region, the background far from it on both sides
    assert y[kind == "decoy"].min() > 1.3 and y[kind == "decoy"].max() < lo
    assert y[kind == "high"].min() >= 3.1 and y[kind == "low"].max() <= 1.5
    # signal and decoys share the zone x0 < 0.5; only x2 (visibly) shifts the odds
    zone = X[:, 0] < 0.5
    assert np.array_equal(zone, np.isin(kind, ["signal", "decoy"]))
    p_low = np.mean(kind[zone & (X[:, 2] < 0.2)] == "signal")
    p_high = np.mean(kind[zone & (X[:, 2] > 0.8)] == "signal")
    assert 0.1 < p_low < 0.25 and 0.55 < p_high < 0.7


def _check_metrics(row):
    for key in ("precision", "recall", "f1"):
        assert 0.0 <= row[key] <= 1.0, (row, key)
    for key in ("rmse_inside", "rmse_outside", "rmse_either", "rmse_all"):
        assert np.isfinite(row[key]) and row[key] > 0.0, (row, key)


def test_synthetic_end_to_end(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["bench", "synthetic", "--rows", "600", "--seeds", "2", "--max-rounds", "6", "--threads", "1",
                 "--no-progress", "--out", str(out)]) == 0
    for name in ("synthetic.png", "synthetic-false-alarms.png"):
        assert (out / name).read_bytes()[:8] == PNG
    document = json.loads((out / "synthetic.json").read_text())
    expected = {("square", 1.0)} | {(f, s) for f in S.FAMILIES[1:] for s in S.STRENGTHS[1:]}
    assert {(r["family"], r["strength"]) for r in document["summary"]} == expected
    assert len(document["seeds"]) == 2
    for seed in document["seeds"]:
        assert {(r["family"], r["strength"]) for r in seed["methods"]} == expected
        for row in seed["methods"]:
            _check_metrics(row)
            # the same tuning budget for every method: both learning rates tried
            assert [t["learning_rate"] for t in row["trials"]] == list(synthetic.LEARNING_RATES)
            assert row["learning_rate"] in synthetic.LEARNING_RATES and 1 <= row["rounds"] <= 6
    for row in document["summary"]:
        _check_metrics(row["mean"])
    assert len(document["paired"]) == 2 * (len(S.STRENGTHS) - 1)
    for entry in document["paired"]:
        for rows in ("inside", "outside", "either"):
            assert 0.0 <= entry[rows]["p_wilcoxon"] <= 1.0
    text = (out / "synthetic.md").read_text()
    assert text.startswith("# selboost bench synthetic") and "synthetic data" in text
    assert "Command: `selboost bench synthetic --rows 600" in text
    assert "| up-weighting + selective | 32 |" in text
    assert "synthetic" in capsys.readouterr().out


def test_regression_end_to_end(tmp_path):
    out = tmp_path / "reg"
    assert main(["bench", "regression", "--max-rows", "600", "--rounds", "3", "--threads", "1",
                 "--no-progress", "--out", str(out)]) == 0
    document = json.loads((out / "regression.json").read_text())
    assert set(document["results"]) == {"cnt", "casual"}
    expected = {("square", 1.0)} | {(f, s) for f in S.FAMILIES[1:] for s in S.STRENGTHS[1:]}
    for target, result in document["results"].items():
        pairs = {(r["family"], r["strength"]) for r in result["rows"]}
        assert expected <= pairs
        assert {r["family"] for r in result["rows"]} == set(S.FAMILIES) | {"sigmoid bump", "identity + exp"}
        for row in result["rows"]:
            assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["f1"] <= 1.0
            assert np.isfinite(row["rmse_inside"]) and row["rmse_inside"] > 0 and row["rmse_outside"] > 0
            assert len(row["trials"]) == 2
        assert len(result["paired"]) == 2 * (len(S.STRENGTHS) - 1)
        assert (out / f"regression-{target}.png").read_bytes()[:8] == PNG
    meta = document["meta"]
    # validation inside the training period, by time, before the test period
    assert meta["fit_dates"][1] < meta["valid_dates"][0] <= meta["valid_dates"][1] < meta["split_date"]
    assert meta["split_date"] <= meta["test_dates"][0]
    text = (out / "regression.md").read_text()
    assert "Fanaee-T" in text and "| selective | 32 |" in text


@pytest.mark.parametrize("argv, message", [
    (["bench", "synthetic", "--rows", "50"], "--rows must be at least"),
    (["bench", "synthetic", "--engine", "catboost"], "invalid choice"),
    (["bench", "regression", "--data", "/nonexistent/hour.csv"], "no such file"),
    (["bench", "regression", "--rounds", "0"], "positive integer"),
])
def test_bad_input_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--no-progress"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
