"""Benchmarks behind ``selboost bench``: LETOR loading, the LambdaMART comparison, the regression
selectivity study and ``plot-link``. Needs the ``bench`` extra (engines, pandas, matplotlib, tqdm)."""
