"""Many processes over one shared Numba cache directory must compute exactly what a process with an
empty cache computes, whatever the order, interleaving or concurrency of their compilations.

Run as its own step of ``.ci/run`` (``pytest -m stress``): it compiles every configuration of
``cache_worker.py`` several times over, minutes on 2 cores."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("cache_worker.py")
ROOT = WORKER.parent.parent


def _start(names, cache_dir, hash_seed):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONHASHSEED=str(hash_seed))
    return subprocess.Popen([sys.executable, str(WORKER), *names], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process):
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def _run(names, cache_dir, hash_seed=0):
    return _finish(_start(names, cache_dir, hash_seed))


def _run_together(jobs, cache_dir):
    processes = [_start(names, cache_dir, hash_seed) for names, hash_seed in jobs]
    return [_finish(process) for process in processes]


#: a kernel loaded from the cache may round a last bit differently from the same source compiled fresh
#: (LLVM contracts to fused multiply-adds across the calls it can see); code of another function
#: differs far beyond that (on 129c7a8: a probability off by 0.71, gradients of the wrong sign)
RTOL = 1e-13


def _mismatches(results, reference):
    return [name for name, values in results.items()
            if not np.allclose(np.array(values), np.array(reference[name]), rtol=RTOL, atol=1e-14, equal_nan=True)]


@pytest.mark.stress
def test_a_shared_cache_computes_what_an_empty_one_does(tmp_path):
    names = json.loads(subprocess.run([sys.executable, str(WORKER), "--list"], cwd=ROOT, check=True,
                                      capture_output=True, text=True).stdout)
    reference = _run(names, tmp_path / "fresh")
    shared = tmp_path / "shared"
    rng = random.Random(20)
    outcomes = []
    # one configuration first thing per process, one process after another, with one hash seed: the
    # generated functions get the same per-process names in every process (the pattern of collide.sh)
    single = [name for name in names if name.startswith(("scalar/engine/", "values/"))]
    single += [next(name for name in names if name.startswith(kind))
               for kind in ("listwise/bound/", "pairwise/bound/", "multiclass/bound/", "distillation/bound/")]
    for name in single:
        outcomes.append(_run([name], shared))
    # a few at once, each one configuration, then all configurations in their own random order at once
    outcomes += _run_together([([name], 0) for name in rng.sample(names, 3)], shared)
    outcomes += _run_together([(rng.sample(names, len(names)), seed) for seed in (0, 1)], shared)
    outcomes.append(_run(rng.sample(names, len(names)), shared, hash_seed=2))
    wrong = sorted({name for results in outcomes for name in _mismatches(results, reference)})
    assert not wrong, f"{len(wrong)} configurations differ from a fresh-cache process: {wrong}"
