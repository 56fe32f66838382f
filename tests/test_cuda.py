"""The CUDA path: kernels == CPU kernels under Numba's CUDA simulator, PTX compilation, clear errors.

Each check runs in a subprocess: the simulator must be switched on before Numba is imported, and the
CPU-only check needs a fresh interpreter to see what importing selboost loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.child_process

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "cuda_sim_check.py"


def _run(args, simulator=False, timeout=300):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    return result.returncode, result.stdout + result.stderr


def _python(code, simulator=False):
    return _run(["-c", textwrap.dedent(code)], simulator=simulator)


def test_cpu_losses_do_not_import_cuda():
    rc, out = _python(
        """
        import sys
        import numpy as np
        import selboost
        from selboost import (Identity, ListwiseLoss, MulticlassLoss, PairwiseLoss, SelectiveLoss,
                              Sigmoid)

        rng = np.random.default_rng(0)
        z = rng.normal(size=12)
        y = rng.integers(0, 3, size=12).astype(float)
        SelectiveLoss(Identity() + 2 * Sigmoid()).bind(y).gradient_hessian(z)
        ListwiseLoss().bind(y, [5, 7]).gradient_hessian(z)
        PairwiseLoss(pairs_per_item=2).bind(y, [5, 7]).gradient_hessian(z)
        MulticlassLoss().bind(y[:4], 3).gradient_hessian(z.reshape(4, 3))
        loaded = sorted(m for m in sys.modules if m.startswith(("numba.cuda", "selboost.cuda", "cupy")))
        print("LOADED", loaded)
        assert not loaded, loaded
        """
    )
    assert rc == 0, out
    assert "LOADED []" in out


@pytest.mark.child_process(long=True)
def test_kernels_match_cpu_under_simulator():
    rc, out = _run([str(CHECK), "sim"], simulator=True)
    assert rc == 0, out
    assert "all GPU checks passed" in out, out
    # every loss kind was exercised
    for kind in ("selective", "listwise", "multiclass", "pairwise"):
        assert f"ok {kind}" in out, out


@pytest.mark.child_process(long=True)
def test_kernels_compile_to_ptx():
    rc, out = _run([str(CHECK), "ptx"])
    if "SKIP" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert rc == 0, out
    assert "all kernels compiled to PTX" in out, out


def test_clear_error_without_gpu():
    rc, out = _python(
        """
        import numpy as np
        from selboost import SelectiveLoss
        from selboost import cuda as sbcuda

        if sbcuda.is_available():
            print("HAVE_GPU")
            raise SystemExit(0)
        bound = SelectiveLoss().bind(np.zeros(3))
        for call in (sbcuda.require_gpu, lambda: sbcuda.to_device(bound)):
            try:
                call()
            except RuntimeError as error:
                print("ERROR", error)
            else:
                raise AssertionError("no error without a GPU")
        """
    )
    if "HAVE_GPU" in out:
        pytest.skip("a usable GPU is present")
    assert rc == 0, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2, out
    assert all("selboost.cuda:" in line for line in errors), out


@pytest.mark.parametrize("script", ["bench_gpu.py", "bench_driver.py"])
def test_gpu_benchmark_fails_clearly_without_gpu(script):
    rc, out = _run([str(ROOT / "benchmarks" / script), "--rows", "1000", "--rounds", "1"])
    if rc == 0:
        pytest.skip("a usable GPU is present: the benchmark ran")
    assert rc == 2, out
    assert f"{script} needs a CUDA GPU" in out and "Traceback" not in out, out


def test_driver_benchmark_runs_on_the_cpu():
    """The CPU A/B runs end to end and finds the driver's trees equal to xgboost.train's."""
    rc, out = _run([str(ROOT / "benchmarks" / "bench_driver.py"), "--device", "cpu", "--rows", "2000",
                    "--features", "5", "--rounds", "1", "--reps", "1", "--tasks", "binary", "scalar"])
    assert rc == 0, out
    assert out.count('"driver_trees_equal_obj": true') == 2, out
    assert '"driver_vs_builtin_same_splits"' in out and "| selboost.xgboost_train no X |" in out, out


@pytest.mark.gpu
def test_kernels_match_cpu_on_gpu():
    rc, out = _run([str(CHECK), "gpu"], timeout=600)
    if "SKIP" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert rc == 0, out
    assert "all GPU checks passed" in out, out
