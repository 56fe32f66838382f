"""What every selboost metric is: labels validated once (``prepare``), then ``evaluate(raw)``; a name
and a direction for the engines' early stopping."""

from __future__ import annotations

import numpy as np


class _Metric:
    name: str
    higher_is_better: bool

    def __init__(self):
        pass

    def prepare(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        """Validate labels once; returns an object whose ``evaluate(raw)`` gives the metric."""
        raise NotImplementedError

    def check_parts(self):
        """A ValueError when this metric cannot be computed from parts of the data. Called where an
        evaluation on parts is set up (before training), so that no worker finds it out on its own."""

    def part(self, y, group=None, sample_weight=None, group_weight=None, n_classes=None):
        """One part of the evaluation data (whole query groups); its ``sums(raw)`` add up over the parts
        and ``from_sums`` turns their total into the metric (``selboost.metrics``, for Dask)."""
        raise NotImplementedError

    def from_sums(self, sums):
        raise NotImplementedError

    def __call__(self, y, raw, group=None, sample_weight=None, group_weight=None):
        raw_array = np.asarray(raw)
        n_classes = raw_array.shape[1] if raw_array.ndim == 2 else None
        return self.prepare(y, group, sample_weight, group_weight, n_classes).evaluate(raw)


class _Prepared:
    def __init__(self, function):
        self.evaluate = function


class _Part:
    """One part's sums of a metric (``_Metric.part``): ``size`` numbers that add up over the parts."""

    def __init__(self, size, function=None):
        self.size = size
        self._function = function

    def sums(self, raw):
        if self._function is None:  # a part without rows
            return np.zeros(self.size)
        return np.asarray(self._function(raw), dtype=np.float64)
