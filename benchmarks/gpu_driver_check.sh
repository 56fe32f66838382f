#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the device checks of selboost.train, then its benchmark.
#
#     bash benchmarks/gpu_driver_check.sh                 # results in gpu_driver.json
#     ROWS="1000000" bash benchmarks/gpu_driver_check.sh  # a shorter run
#
# 1. tests/cuda_sim_check.py driver: selboost.train with device="cuda" and CuPy features against
#    xgboost.train(obj=xgboost_objective(loss, device="cuda")) for every loss kind (the same trees),
#    and SelectiveRegressor(device="cuda"); prints SKIP without a GPU or CuPy.
# 2. benchmarks/bench_driver.py: per-round time, interleaved A/B, at ROWS x 50 features, and the
#    device memory of each configuration; exits 2 without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
ROWS="${ROWS:-1000000 10000000}"
"$PYTHON" tests/cuda_sim_check.py driver
# shellcheck disable=SC2086
"$PYTHON" benchmarks/bench_driver.py --rows $ROWS --rounds "${ROUNDS:-20}" --reps "${REPS:-3}" \
    --out "${OUT:-gpu_driver.json}"
