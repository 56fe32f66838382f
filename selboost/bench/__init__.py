"""Benchmarks behind ``selboost bench``: LETOR loading, the LambdaMART comparison (``ranking``), the
distillation study (``distill``), the selectivity studies (``regression`` on bike sharing, ``synthetic``;
their methods and metrics in ``_selectivity``), the imbalanced-regression study (``imbalanced``) and
``plot-link``. What the commands share, from the progress bar and output files to the ranking
benchmarks' tuning loop and report, is in ``report``. Needs the ``bench`` extra (engines, pandas,
matplotlib, tqdm)."""
