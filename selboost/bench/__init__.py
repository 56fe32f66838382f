"""Benchmarks behind ``selboost bench``: LETOR loading, the LambdaMART comparison, the selectivity
studies (``regression`` on bike sharing, ``synthetic``) and ``plot-link``. Needs the ``bench`` extra
(engines, pandas, matplotlib, tqdm)."""
