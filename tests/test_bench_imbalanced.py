"""``selboost bench imbalanced`` end to end on one small data set, its splits and bad-input errors, and
the bundled regression sets it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selboost.bench import imbalanced
from selboost.cli import main
from selboost.datasets import REGRESSION_SETS, load_regression_set

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, rows, features, low, high", [
    ("bike-casual", 17379, 12, 0.0, 367.0),
    ("forest-fires", 517, 12, 0.0, 1090.84),
    ("wine-red", 1599, 11, 3.0, 8.0),
    ("wine-white", 4898, 11, 3.0, 9.0),
])
def test_regression_sets_load_as_documented(name, rows, features, low, high):
    data = load_regression_set(name)
    assert data.X.shape == (rows, features) and data.y.shape == (rows,) and len(data.features) == features
    assert np.isfinite(data.X).all() and (data.y.min(), data.y.max()) == (low, high)
    assert data.target not in data.features and "CC BY 4.0" in data.source
    if name == "forest-fires":  # month and day as numbers, Monday 1
        assert set(data.X[:, data.features.index("month")]) <= set(range(1, 13))
        assert set(data.X[:, data.features.index("day")]) == set(range(1, 8))


def test_unknown_regression_set_names_the_choices():
    with pytest.raises(ValueError, match="unknown data set 'abalone': choose from bike-casual, forest-fires"):
        load_regression_set("abalone")


def test_splits_partition_the_rows():
    fit, valid, test = imbalanced.split_rows(517, 3)
    assert np.array_equal(np.sort(np.concatenate([fit, valid, test])), np.arange(517))
    assert test.size == round(imbalanced.TEST_FRACTION * 517) and valid.size == round(0.2 * (517 - test.size))
    assert not np.array_equal(imbalanced.split_rows(517, 4)[2], test)


def test_tiny_run_chooses_strengths_on_validation(tmp_path, capsys):
    out = tmp_path / "imb"
    assert main(["bench", "imbalanced", "--datasets", "forest-fires", "--splits", "1", "--max-rounds", "4",
                 "--strengths", "2,8", "--no-progress", "--out", str(out)]) == 0
    assert (out / "imbalanced.png").read_bytes()[:8] == PNG
    document = json.loads((out / "imbalanced.json").read_text())
    assert document["meta"]["datasets"] == ["forest-fires"] and document["meta"]["strengths"] == [2.0, 8.0]
    split = document["results"]["forest-fires"]["splits"][0]
    rows = split["methods"]
    expected = {("square", 1.0)} | {(f, s) for f in imbalanced.FAMILIES[1:] for s in (2.0, 8.0)}
    assert {(r["family"], r["strength"]) for r in rows} == expected
    for row in rows:
        assert 1 <= row["rounds"] <= 4
        for part in ("valid", "test"):
            assert all(np.isfinite(row[part][m]) and row[part][m] >= 0 for m in imbalanced.METRICS)
        # SERA never exceeds its symmetric counterpart
        assert row["test"]["sera"] <= row["test"]["sera_symmetric"] + 1e-9
    # each family's strength is the one with the lowest validation metric, by each metric in turn
    for metric in imbalanced.SELECT_BY:
        for family, index in split["chosen"][metric].items():
            candidates = [r for r in rows if r["family"] == family]
            assert rows[index]["valid"][metric] == min(r["valid"][metric] for r in candidates)
            chosen = document["summary"]["selected"][metric][family]
            assert chosen["strengths"] == [rows[index]["strength"]]
            square = rows[0]["test"]["sera"]
            assert chosen["sera"]["ratio"] == pytest.approx(rows[index]["test"]["sera"] / square)
    text = (out / "imbalanced.md").read_text()
    assert text.startswith("# selboost bench imbalanced") and "Cortez & Morais" in text
    assert "Command: `selboost bench imbalanced --datasets forest-fires" in text
    assert "| SERA | relevance link |" in text and "| weights + link | 8 |" in text
    assert "imbalanced.json" in capsys.readouterr().out


def test_help_lists_every_data_set(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "imbalanced", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in REGRESSION_SETS)


@pytest.mark.parametrize("argv, message", [
    (["--datasets", "forest-fires,abalone"], "unknown data set 'abalone'"),
    (["--strengths", "1,4"], "greater than 1"),
    (["--strengths", "2,x"], "--strengths: expected comma-separated numbers"),
    (["--splits", "0"], "positive integer"),
    (["--engine", "catboost"], "invalid choice"),
])
def test_bad_input_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "imbalanced", *argv, "--no-progress", "--out", "/nonexistent/never-written"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
