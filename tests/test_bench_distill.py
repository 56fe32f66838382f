"""``selboost bench distill`` on a tiny slice, and the cross-fitting it rests on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selboost.bench import distill
from selboost.cli import main
from selboost.datasets import RankingSet

TINY = ["--max-queries", "12", "--rounds", "4", "--patience", "2", "--threads", "1", "--no-progress",
        "--features", "3", "--student-depth", "2", "--teacher-folds", "3"]


def _ranking_set(n_queries, rows_per_query=4, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.integers(2, rows_per_query + 3, size=n_queries)
    n = int(group.sum())
    return RankingSet(rng.random((n, 3)), rng.integers(0, 3, size=n).astype(float), group,
                      np.arange(100, 100 + n_queries))


def _memorising_fit(seen_log):
    """A 'model' that remembers the queries it was trained on: it scores a row 1 if its query was among
    them, else 0, so a score says whether the row's own query reached the model that scored it."""

    def fit(train):
        seen = set(train.qid.tolist())
        seen_log.append(seen)

        def predict(data):
            return np.repeat([1.0 if q in seen else 0.0 for q in data.qid], data.group)

        return predict

    return fit


def test_cross_fitted_scores_come_from_models_that_never_saw_the_query():
    data = _ranking_set(17)
    seen_log = []
    scores, parts = distill.cross_fitted_scores(data, 4, _memorising_fit(seen_log))
    assert len(seen_log) == 4 and np.isfinite(scores).all()
    assert (scores == 0.0).all()  # no row was scored by a model trained on its own query
    # the check is live: the same 'model' fitted on everything scores every row 1
    assert (_memorising_fit([])(data)(data) == 1.0).all()
    # each part's model trained on exactly the other parts, and the parts cover every query once
    assert sorted(np.bincount(parts).tolist()) == [4, 4, 4, 5]
    for part, seen in enumerate(seen_log):
        assert seen == set(data.qid[parts != part].tolist())


def test_cross_fitted_scores_land_on_their_own_rows():
    """A model that scores each row by its query id: the cross-fitted scores must equal the qid of the row
    (queries of different sizes, so a misplaced row block would show)."""
    data = _ranking_set(9, seed=1)

    def fit(train):
        return lambda d: np.repeat(d.qid.astype(float), d.group)

    scores, _ = distill.cross_fitted_scores(data, 3, fit)
    assert np.array_equal(scores, np.repeat(data.qid.astype(float), data.group))


def test_standardise_by_part_and_top_features():
    group = np.array([2, 3, 2])
    parts = np.array([0, 1, 0])
    scores = np.array([1.0, 3.0, 10.0, 20.0, 30.0, 5.0, 7.0])
    out = distill.standardise_by_part(scores, group, parts)
    for part_rows in (np.r_[0:2, 5:7], np.r_[2:5]):
        assert out[part_rows].mean() == pytest.approx(0.0, abs=1e-12)
        assert out[part_rows].std() == pytest.approx(1.0)

    class Booster:
        def get_score(self, importance_type):
            assert importance_type == "total_gain"
            return {"f3": 5.0, "f1": 9.0, "f4": 5.0}

    assert distill.top_features(Booster(), 4, 6).tolist() == [1, 3, 4, 0]  # gain, then index
    with pytest.raises(ValueError, match="only 6 features"):
        distill.top_features(Booster(), 7, 6)


def test_bench_distill_on_bundled_slice(tmp_path, capsys):
    out = tmp_path / "distill"
    assert main(["bench", "distill", *TINY, "--out", str(out)]) == 0
    for name in ("distill.json", "distill.md", "distill.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "distill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((out / "distill.json").read_text())
    expected = [distill.TEACHER] + [m.name for m in distill.student_methods(2, 0.0)]
    assert list(document["results"]) == expected
    summary = document["summary"]
    for name in expected:
        for conv in ("excluded", "as-one"):
            for k in (1, 10):
                assert 0.0 <= summary["methods"][name]["test"][conv][f"ndcg@{k}"] <= 1.0
        if name != distill.TEACHER:
            trials = document["results"][name]["lgb-rank"]["trials"]
            assert len(trials) == 6  # the same tuning budget for every student
            assert max(t["rounds_run"] for t in trials) <= 4
    assert summary["reference"] == distill.REFERENCE
    assert summary["paired"][distill.REFERENCE]["ndcg@10"]["mean_diff"] == 0.0
    for name, paired in summary["paired"].items():
        c = paired["ndcg@10"]
        assert c["wins"] + c["ties"] + c["losses"] == c["n_queries"] > 0
        assert 0.0 <= c["p_wilcoxon"] <= 1.0 and 0.0 <= c["p_ttest"] <= 1.0
    teacher = document["results"][distill.TEACHER]["lgb-rank"]
    assert len(teacher["cross_fit"]) == 3
    assert all(part["train_queries"] == 8 for part in teacher["cross_fit"])  # 12 queries, 3 parts
    assert len(summary["folds"]["lgb-rank"]["features"]) == 3
    text = (out / "distill.md").read_text()
    assert text.startswith("# selboost bench distill") and "Command: `selboost bench distill" in text
    assert "| method | trained on | NDCG@1 | NDCG@10 | fidelity | s/round |" in text
    assert "Paired per-query comparison against `LambdaMART (labels)`" in text
    assert "selective distill: steep top" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["bench", "distill", "--features", "0"], "expected a positive integer"),
    (["bench", "distill", "--data", "/nonexistent/letor"], "not a directory"),
    (["bench", "distill", "--teacher-folds", "1"], "at least 2 folds"),
    (["bench", "distill", "--features", "301", "--max-queries", "5", "--no-progress"], "only 300 features"),
])
def test_bench_distill_clear_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
