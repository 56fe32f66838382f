"""Every example in examples/ runs to completion and prints its metric."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
def test_example_runs(name):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                            timeout=120, env=env, cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert CASES[name] in result.stdout, result.stdout
