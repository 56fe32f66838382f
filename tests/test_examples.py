"""Every example in examples/ runs to completion and prints its metric."""

from __future__ import annotations

import runpy
import warnings
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# example -> a string its output must contain
CASES = {
    "xgboost_obj.py": "region RMSE",
    "lightgbm_objective.py": "region RMSE",
    "regressor_important_region.py": "region RMSE",
    "ranker_query_groups.py": "NDCG@10",
    "distillation.py": "student NDCG@10",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, capsys, monkeypatch):
    # in this process, as a script (its own namespace, __name__ == "__main__"): the imports are paid once
    monkeypatch.chdir(EXAMPLES.parent)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert CASES[name] in capsys.readouterr().out
