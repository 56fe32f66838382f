"""Selective matching losses: scalar, listwise and pairwise composite softmax, multi-class.

Each loss validates its inputs once in ``bind(...)``, which returns a *bound* loss holding the
per-sample constants (``h(y)``, the target distribution of each group, the weights); the bound loss
computes gradients and hessians round after round with one Numba kernel call. The convenience methods
``loss``, ``gradient_hessian`` and ``init_score`` bind and evaluate in one step.

The scalar loss follows Shamir & Warmuth, "Selective Matching Losses - Not All Scores Are Created
Equal" (arXiv:2506.04446). The multidimensional losses (a softmax over transformed scores) are this
package's own construction from that paper's description; see ``ListwiseLoss``.
"""

from __future__ import annotations

import inspect

import numpy as np

from selboost._validation import (
    as_float_array,
    check_choice,
    check_hess_min,
    group_pointer,
    raise_nonfinite,
    row_weights,
    sample_weights,
)
from selboost.links import Identity, Link

__all__ = ["SelectiveLoss", "ListwiseLoss", "PairwiseLoss", "MulticlassLoss", "LOSSES"]


class _Kernels:
    """``selboost._kernels``, imported at the first kernel call rather than with selboost: importing
    Numba takes about 0.3 s, more than the rest of selboost."""

    def __getattr__(self, name):
        from selboost import _kernels

        return getattr(_kernels, name)


K = _Kernels()

_HESSIANS = ("gauss-newton", "exact")


def _check_link(link, name):
    if link is None:
        return Identity()
    if not isinstance(link, Link):
        raise TypeError(f"{name} must be a selboost link (selboost.links), got {link!r}")
    return link


def _outputs(shape, grad_out, hess_out, dtype):
    if grad_out is None:
        grad_out = np.empty(shape, dtype=dtype)
    if hess_out is None:
        hess_out = np.empty(shape, dtype=dtype)
    for name, out in (("grad_out", grad_out), ("hess_out", hess_out)):
        if out.shape != shape or not out.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous array of shape {shape}, got {out.shape}")
    return grad_out, hess_out


class _Loss:
    """What every loss offers beyond its numerics: scikit-learn's parameter protocol and the behaviour
    the estimators need from a loss kind (what it reads from the data, how it predicts)."""

    #: the loss needs query groups (listwise, pairwise)
    needs_groups = False
    #: what scales the loss's gradients and hessians, for the error when they exceed float32's range
    scale_names = "the link's weights or slopes, or the sample weights"

    # -- parameters ------------------------------------------------------------------------------
    def get_params(self, deep=True):
        """The constructor's arguments; with ``deep``, a link's parameters as ``link__name``."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        params = {name: getattr(self, name) for name in names}
        if deep:
            for name, value in list(params.items()):
                if isinstance(value, Link):
                    params.update({f"{name}__{key}": v for key, v in value.get_params().items()})
        return params

    def set_params(self, **params):
        """Change parameters (``hess_min=1e-3``, ``link__center=2.0``, ``link__term_1__scale=0.5``); the
        constructor's checks run again. A link is immutable: it is replaced by its changed copy."""
        current = self.get_params(deep=False)
        nested = {}
        for key, value in params.items():
            name, _, rest = key.partition("__")
            if name not in current:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}: valid are {sorted(current)}")
            if rest:
                nested.setdefault(name, {})[rest] = value
            else:
                current[name] = value
        for name, sub in nested.items():
            if not isinstance(current[name], Link):
                raise ValueError(f"{type(self).__name__}.{name} has no parameters to set ({sorted(sub)})")
            current[name] = current[name].replace(**sub)
        self.__init__(**current)
        return self

    # -- loss-kind behaviour ------------------------------------------------------------------------
    def for_targets(self, y, sample_weight=None):
        """The loss to fit on the training targets ``y`` (with their weights): itself, unless it is
        stated relative to them (``RegionLoss(quantiles=True)`` resolves its levels here, once)."""
        return self

    def n_outputs(self, n_classes=None):
        """How many raw scores per row the engine trains."""
        return 1

    def default_metric(self, ranking=False):
        """The estimators' default ``eval_metric``: NDCG@10 when ranking, else the loss itself."""
        return "ndcg@10" if ranking or self.needs_groups else "loss"

    def predict(self, raw):
        """The prediction in the labels' units from raw scores (the raw score itself by default)."""
        return raw


class _BoundLoss:
    """Shared by the bound losses: raw predictions are checked every call (cheap next to the kernel)."""

    n_rows: int
    shape: tuple

    def _raw(self, raw_prediction, check_finite=True):
        # float32 predictions (XGBoost's) go to the kernels as they are: no float64 copy every round.
        # The gradient kernels count non-finite scores themselves (check_finite=False, then
        # _check_nonfinite): a separate pass would cost a third of the scalar kernel's time.
        raw = as_float_array(raw_prediction, "raw_prediction", ndim=len(self.shape), keep_float32=True,
                             check_finite=check_finite)
        if raw.shape != self.shape:
            raise ValueError(f"raw_prediction has shape {raw.shape}, expected {self.shape}")
        return raw

    @staticmethod
    def _check_nonfinite(nonfinite, raw):
        """``nonfinite``: a gradient kernel's count of scores that are not finite."""
        if nonfinite:
            raise_nonfinite(raw, "raw_prediction")

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_work_buffer", None)
        state.pop("_order_buffer", None)
        return state

    def mean_loss(self, raw_prediction, n_threads=1):
        """The mean loss: over query groups (their weighted losses); rows for the per-row losses."""
        return float(self.loss(raw_prediction, n_threads).mean())

    def init_score(self):
        """The optimal constant raw score: 0.0 for losses over groups (a shift changes nothing)."""
        return 0.0

    def _work(self, rows):
        """float64 scratch arrays of shape (rows, n), kept between rounds (no page faults per round)."""
        work = getattr(self, "_work_buffer", None)
        if work is None or work.shape[0] != rows:
            work = self._work_buffer = np.empty((rows, int(np.prod(self.shape))))
        return work

    def _order(self):
        """int64 scratch of shape (3, n) for the pair selection, kept between rounds like ``_work``."""
        order = getattr(self, "_order_buffer", None)
        if order is None:
            order = self._order_buffer = np.empty((3, self.n_rows), dtype=np.int64)
        return order


# ================================================================ scalar


class SelectiveLoss(_Loss):
    """The selective matching loss of a link h (a Bregman divergence):

        loss(z, y) = H(z) - H(y) - (z - y) h(y),  grad = h(z) - h(y),  hess = max(h'(z), hess_min)

    ``target="score"``: labels y are scores (the usual regression target).
    ``target="link"``: labels t are given in the link's range (probabilities, a teacher's outputs);
    then grad = h(z) - t and loss = H(z) - z t + H*(t), which is 0 at h(z) = t. For a sum of sigmoids
    the ends of the range are allowed: ``SelectiveLoss(0.25 * Sigmoid(), target="link")`` with t in
    {0, 1} is exactly the logistic loss.

    ``hess_min`` (default 1e-6) floors the hessian so that flat regions of h cannot produce huge
    Newton steps -G/H; raise it when the link is flat over much of the data. Weights multiply the
    loss, the gradient and the hessian of their sample.
    """

    def __init__(self, link=None, target="score", hess_min=1e-6):
        self.link = _check_link(link, "link")
        self.target = check_choice(target, "target", ("score", "link"))
        self.hess_min = check_hess_min(hess_min)

    def __repr__(self):
        return f"SelectiveLoss(link={self.link!r}, target={self.target!r}, hess_min={self.hess_min!r})"

    def bind(self, y_true, sample_weight=None):
        """Validate labels and weights once; returns a ``BoundSelectiveLoss``."""
        return BoundSelectiveLoss(self, y_true, sample_weight)

    def loss(self, y_true, raw_prediction, sample_weight=None, n_threads=1):
        """Per-sample (weighted) losses, computed on ``n_threads`` threads (-1: every core)."""
        return self.bind(y_true, sample_weight).loss(raw_prediction, n_threads=n_threads)

    def gradient_hessian(self, y_true, raw_prediction, sample_weight=None, n_threads=1):
        """(grad, hess) float64 arrays, weighted, computed on ``n_threads`` threads (-1: every core)."""
        return self.bind(y_true, sample_weight).gradient_hessian(raw_prediction, n_threads=n_threads)

    def init_score(self, y_true, sample_weight=None):
        """The constant minimising the weighted loss: h^{-1}(weighted mean of h(y))."""
        return self.bind(y_true, sample_weight).init_score()

    def bind_data(self, label, group=None, sample_weight=None, group_weight=None, n_classes=None, n_rows=None):
        """Bind to what an engine's data object holds; per-group weights (XGBoost's, with groups) apply
        to every row of their group."""
        if group_weight is not None:
            n_rows = np.shape(label)[0]
            sample_weight = row_weights(sample_weight, group_weight, group_pointer(group, n_rows), n_rows)
        return self.bind(label, sample_weight)

    def predict(self, raw):
        """``h(raw)`` for ``target="link"`` (a prediction in the labels' units), else the raw score."""
        return self.link.h(raw) if self.target == "link" else raw

    def class_targets(self, codes, n_classes):
        """Labels for binary classification: class 0 -> the low end of the link's range, 1 -> the high end."""
        if n_classes != 2:
            raise ValueError(f"Only binary classification is supported with a SelectiveLoss: y has {n_classes} "
                             "classes; use MulticlassLoss")
        if self.target != "link" or not self.link.is_bounded:
            raise ValueError(
                "a binary SelectiveClassifier needs SelectiveLoss(link, target='link') with a bounded "
                "link (a sum of sigmoids), e.g. SelectiveLoss(0.25 * Sigmoid(), target='link')"
            )
        lo, hi = self.link.range
        return np.where(np.asarray(codes) == 1, hi, lo).astype(np.float64)

    def predict_proba(self, raw):
        """Two columns: ``p = (h(z) - lo) / (hi - lo)`` and ``1 - p``."""
        lo, hi = self.link.range
        p = np.clip((self.link.h(raw) - lo) / (hi - lo), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


class BoundSelectiveLoss(_BoundLoss):
    #: how the kernels compute it, on the CPU and on the GPU (``selboost.cuda.DeviceLoss``)
    family = "scalar"

    def __init__(self, loss: SelectiveLoss, y_true, sample_weight=None):
        self.spec = loss
        y = as_float_array(y_true, "y_true")
        self.n_rows = y.shape[0]
        self.shape = (self.n_rows,)
        self.weight = sample_weights(sample_weight, self.n_rows)
        link = loss.link
        self.components, self.table = link.packed()
        if loss.target == "score":
            self.y = y
            # h(y) as the gradient kernel's h(y) - 0, from the same compiled loops as h(z) - h(y) in
            # every later call (serial or threaded), so that grad(y, y) is exactly 0; the serial one,
            # which the rounds of a fit use too
            self.target_h = np.empty_like(y)
            K.scalar_grad_hess(self._terms(), self.table, y, np.zeros_like(y), None, 0.0, self.target_h,
                               np.empty_like(y))
            overflow = ~np.isfinite(self.target_h)
            if overflow.any():
                # grad = h(z) - h(y) cannot be computed: h(y) is beyond float64 (inf - inf at z = y)
                raise ValueError(
                    f"y_true: the link {link!r} overflows float64 at {int(overflow.sum())} label(s), "
                    f"e.g. {float(y[overflow][0])!r}: rescale the labels or widen the link's scale"
                )
            self.boundary = None
        else:
            lo, hi = link.range
            closed = link.is_bounded
            inside = (y > lo) & (y < hi)
            allowed = inside | (closed & ((y == lo) | (y == hi)))
            if not allowed.all():
                bad = y[~allowed]
                interval = f"[{lo}, {hi}]" if closed else f"({lo}, {hi})"
                raise ValueError(
                    f"y_true must lie in the link's range {interval} for target='link', "
                    f"found {bad.size} value(s) outside, e.g. {bad[0]!r}"
                )
            self.target_h = y
            self.y = np.zeros_like(y)
            self.y[inside] = link.inverse(y[inside])
            self.boundary = np.where(y == lo, -1, np.where(y == hi, 1, 0)).astype(np.int8)
            if not self.boundary.any():
                self.boundary = None

    def gradient_hessian(self, raw_prediction, grad_out=None, hess_out=None, dtype=np.float64, n_threads=1):
        """(grad, hess) for raw scores z; ``grad_out``/``hess_out`` may be preallocated (float32 too).
        ``n_threads``: the threads the kernel runs on (-1: every core)."""
        z = self._raw(raw_prediction, check_finite=False)
        grad_out, hess_out = _outputs(self.shape, grad_out, hess_out, dtype)
        weight = self.weight if self.weight.size else None
        nonfinite = K.scalar_grad_hess(self._terms(), self.table, z, self.target_h, weight, self.spec.hess_min,
                                       grad_out, hess_out, n_threads)
        self._check_nonfinite(nonfinite, z)
        return grad_out, hess_out

    def _terms(self):
        """The link's terms as the scalar kernel takes them (``_kernels.split_identity_terms``), split once
        per bound loss rather than every round."""
        terms = getattr(self, "_split_terms", None)
        if terms is None:
            terms = self._split_terms = (self.components, *K.split_identity_terms(self.components))
        return terms

    def loss(self, raw_prediction, n_threads=1):
        z = self._raw(raw_prediction)
        out = np.empty(self.n_rows)
        K.link_divergence_into(self.components, self.table, z, self.y, out, n_threads)
        if self.boundary is not None:
            out = np.where(self.boundary == 0, out, self._boundary_loss(z))
        if self.weight.size:
            out *= self.weight
        return out

    def _boundary_loss(self, z):
        """Limits of the loss for targets at the ends of a sum of sigmoids' range:
        t = lo: sum_k w_k 4 s_k^2 softplus(u_k); t = hi: sum_k w_k 4 s_k^2 softplus(-u_k)."""
        lower = np.zeros_like(z)
        upper = np.zeros_like(z)
        for weight, term in self.spec.link._terms():
            u = (z - term.center) / term.scale
            factor = weight * 4.0 * term.scale**2
            lower += factor * np.logaddexp(0.0, u)
            upper += factor * np.logaddexp(0.0, -u)
        return np.where(self.boundary < 0, lower, upper)

    def mean_loss(self, raw_prediction, n_threads=1):
        values = self.loss(raw_prediction, n_threads)
        return float(values.sum() / (self.weight.sum() if self.weight.size else values.size))

    def init_score(self):
        weight = self.weight if self.weight.size else None
        mean = float(np.average(self.target_h, weights=weight))
        lo, hi = self.spec.link.range
        # every target at one end of a bounded range (one class only): stay just inside it
        span = hi - lo
        if np.isfinite(span):
            mean = min(max(mean, lo + 1e-9 * span), hi - 1e-9 * span)
        return float(self.spec.link.inverse(np.array([mean]))[0])


# ================================================================ composite softmax over groups


def exponential_gain(r, base=2.0):
    """The gain ``base^r - 1`` of relevance labels r (2^r - 1 by default), the one NDCG and the
    listwise targets use; computed as ``expm1(r log base)`` so that small labels keep their digits."""
    return np.expm1(np.asarray(r, dtype=np.float64) * np.log(base))


def _linear_gain(r):
    return r.copy()


def _gain_function(gain):
    # module-level functions, not lambdas, so that a loss pickles (estimators, saved models)
    if gain == "exponential":
        return exponential_gain
    if gain == "linear":
        return _linear_gain
    if callable(gain):
        return gain
    raise ValueError(f"gain must be 'exponential', 'linear' or a callable, got {gain!r}")


#: the start hessian of the whole training set under ``ListwiseLoss(group_scale="auto")``
AUTO_START_HESSIAN = 32.0
#: the least group weight of ``group_scale="auto"``: data sets whose plain softmax offers more than
#: 32 x 32 = 1024 keep 1/32 of it
AUTO_WEIGHT_FLOOR = 1.0 / 32.0


def auto_group_scale(total):
    """The weight of every group under ``group_scale="auto"``, given the plain softmax's start hessian
    ``total`` of the whole training set (``plain_softmax_start_hessian``): ``AUTO_START_HESSIAN / total``,
    at least ``AUTO_WEIGHT_FLOOR``; None when ``total`` is 0 (no group holds an order to learn)."""
    if total <= 0.0:
        return None
    return max(AUTO_START_HESSIAN / total, AUTO_WEIGHT_FLOOR)


def plain_softmax_start_hessian(q, pointer):
    """The hessians of the plain softmax (phi(z) = z, no weights) at the start (every score 0), summed
    over the groups: a group of n rows offers n * (1/n) * (1 - 1/n) = 1 - 1/n, a group whose targets sum
    to 0 offers nothing. ``auto_group_scale`` turns it into the weight of ``group_scale="auto"``. It is
    measured without the transform, so that a transform's scale (a temperature) still scales the
    hessians, as it does without the weight."""
    sizes = np.diff(pointer)
    has_order = np.add.reduceat(q, pointer[:-1]) > 0.0
    return float(np.sum(1.0 - 1.0 / sizes[has_order]))


def _check_group_scale(group_scale):
    if group_scale is None or (isinstance(group_scale, str) and group_scale == "auto"):
        return group_scale
    if isinstance(group_scale, bool) or not isinstance(group_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"group_scale must be 'auto', None or a positive number, got {group_scale!r}")
    if not (np.isfinite(group_scale) and group_scale > 0):
        raise ValueError(f"group_scale must be 'auto', None or a finite number > 0, got {group_scale!r}")
    return float(group_scale)


def _weighted_group_losses(losses, weight, pointer):
    """Group losses times the mean row weight of each group (exact when weights are constant in groups)."""
    if not weight.size:
        return losses
    sizes = np.diff(pointer)
    return losses * np.add.reduceat(weight, pointer[:-1]) / sizes


class _GroupedLoss(_Loss):
    """The one-step conveniences of the losses over query groups (listwise, pairwise)."""

    def loss(self, y_true, raw_prediction, group, sample_weight=None, group_weight=None, n_threads=1):
        """Per-group (weighted) losses, computed on ``n_threads`` threads (-1: every core)."""
        return self.bind(y_true, group, sample_weight, group_weight).loss(raw_prediction, n_threads=n_threads)

    def gradient_hessian(self, y_true, raw_prediction, group, sample_weight=None, group_weight=None, n_threads=1):
        """(grad, hess) float64 arrays, one value per row, computed on ``n_threads`` threads (-1: every core)."""
        return self.bind(y_true, group, sample_weight, group_weight).gradient_hessian(raw_prediction,
                                                                                       n_threads=n_threads)

    def init_score(self, y_true, group, sample_weight=None, group_weight=None):
        """0.0: the loss does not change when every score of a group moves by the same constant."""
        self.bind(y_true, group, sample_weight, group_weight)
        return 0.0

    needs_groups = True

    def bind_data(self, label, group=None, sample_weight=None, group_weight=None, n_classes=None, n_rows=None):
        """Bind to what an engine's data object holds (its query groups are required)."""
        if group is None:
            raise ValueError(
                f"{type(self).__name__} needs query groups: build the DMatrix with group= or qid=, "
                "or the lightgbm.Dataset with group="
            )
        return self.bind(label, group, sample_weight, group_weight)


class ListwiseLoss(_GroupedLoss):
    """Listwise composite-softmax loss over query groups, with a score transform phi (any link):

        p_i = exp(phi(z_i)) / sum_j exp(phi(z_j))           (per group)
        loss = sum_i q_i log(q_i / p_i)                     (KL(q || p))
        grad_i = phi'(z_i) (p_i - q_i)
        hess_i = phi'(z_i)^2 p_i (1 - p_i)                  ("gauss-newton", always >= 0)
                 + phi''(z_i) (p_i - q_i)                   ("exact" adds this; floored at hess_min)

    With ``phi(z) = z`` this is the softmax cross-entropy (ListNet); a steep phi among high scores
    sharpens the order at the top, a flat phi makes the tail cheap; a temperature is a scale on phi
    (``0.5 * Identity()`` is temperature 2). This multidimensional form is our own construction from
    Shamir & Warmuth's description, not a formula taken from their paper.

    Targets q: ``target="relevance"``: graded relevance r >= 0 and q_i = gain(r_i) / sum_j gain(r_j),
    gain ``"exponential"`` (2^r - 1, the default), ``"linear"`` (r) or a callable; ``target="score"``:
    distillation from teacher scores s with q = softmax(phi(s)). A group of one item, or whose gains sum
    to 0, contributes zero gradient and zero hessian.

    Weights: ``sample_weight`` per row multiplies that row's gradient and hessian (LightGBM's
    convention); ``group_weight`` per group multiplies the whole group (XGBoost's). A group's loss is
    multiplied by its group weight and by the mean row weight of the group.

    ``group_scale`` is a weight of every group (of its loss, gradients and hessians): ``"auto"`` (the
    default) one weight for all groups, chosen at ``bind`` from the training data: ``max(32 / H, 1/32)``,
    H the start hessian of the plain softmax (phi(z) = z, every score 0) over the whole training set,
    sum_g (1 - 1/n_g) over the groups g of n_g rows that hold an order to learn
    (``plain_softmax_start_hessian``, ``auto_group_scale``); a number: that number; ``None``: 1 (the plain
    softmax). Why: whether a tree can split, and how hard ``reg_lambda`` brakes its leaf values, depends
    on the hessian the whole training set offers against the engines' leaf minimum (XGBoost's
    ``min_child_weight=1``) and ``reg_lambda=1``. Under the softmax a query offers about 1 whatever its
    size, so one query of thousands of rows gets a constant model without a weight, while tens or
    hundreds of queries already offer plenty, and a weight that grows with a group's size (log2(1 + n),
    the previous default) weakened the brake there and overfit. The total is what decides, so "auto"
    fixes it at ``AUTO_START_HESSIAN`` (32): one query of 3,000 rows is weighed by 32, 63 queries of 150
    rows by about 0.5, 1,000 queries by about 0.03. A fixed total also caps how many leaves can hold
    XGBoost's leaf minimum, which held data of thousands of queries back, so the weight is never below
    ``AUTO_WEIGHT_FLOOR`` (1/32): beyond H = 1,024 the total is H / 32, and a leaf's minimum asks for the
    hessian of 32 queries. The total is measured without ``sample_weight`` / ``group_weight``, which
    multiply on top as above, and without the transform, whose slope multiplies the hessians on top as
    well: the transform z / tau offers 32 / tau^2, so the temperature still sets how hard the engines'
    brake acts. (On XGBoost, with ``min_split_loss=0``, a common weight c, or the transform z / tau,
    trains the model that ``reg_lambda`` and ``min_child_weight`` divided by c, or multiplied by tau^2,
    train with the plain softmax: leaf values and the order of split gains depend on the hessians only
    through their ratio to these two settings.) The defaults benchmark chose the rule and the constants
    (``benchmarks/RESULTS.md``, the ranker defaults sections 7c, 19 and 21).
    """

    def __init__(self, transform=None, target="relevance", gain="exponential", hess="gauss-newton",
                 hess_min=1e-6, group_scale="auto"):
        self.transform = _check_link(transform, "transform")
        self.target = check_choice(target, "target", ("relevance", "score"))
        self.gain = gain
        self._gain = _gain_function(gain)
        self.hess = check_choice(hess, "hess", _HESSIANS)
        self.hess_min = check_hess_min(hess_min)
        self.group_scale = _check_group_scale(group_scale)

    def __repr__(self):
        return (f"ListwiseLoss(transform={self.transform!r}, target={self.target!r}, gain={self.gain!r}, "
                f"hess={self.hess!r}, hess_min={self.hess_min!r}, group_scale={self.group_scale!r})")

    def _group_scale(self, q, pointer):
        """The weight of every group, or None for 1: ``group_scale`` itself, or for "auto" resolved from
        the targets ``q`` (measured without the user's weights, which multiply on top)."""
        if self.group_scale == "auto":
            return auto_group_scale(plain_softmax_start_hessian(q, pointer))
        return self.group_scale

    def bind(self, y_true, group, sample_weight=None, group_weight=None):
        """Validate labels, groups and weights once; returns a ``BoundSoftmaxLoss``."""
        y = as_float_array(y_true, "y_true")
        pointer = group_pointer(group, y.shape[0])
        weight = row_weights(sample_weight, group_weight, pointer, y.shape[0])
        components, table = self.transform.packed()
        if self.target == "relevance":
            if (y < 0).any():
                raise ValueError(f"y_true (relevance) must be >= 0, found {y.min()}")
            with np.errstate(over="ignore"):
                gains = np.asarray(self._gain(y), dtype=np.float64)
            if gains.shape != y.shape:
                raise ValueError(f"gain returned shape {gains.shape}, expected {y.shape}")
            if not np.isfinite(gains).all():
                raise ValueError(
                    f"gain overflows for relevance up to {y.max()}: use gain='linear' or smaller labels"
                )
            if (gains < 0).any():
                raise ValueError("gain must be >= 0 for every relevance label")
            with np.errstate(over="ignore"):
                sums = np.add.reduceat(gains, pointer[:-1])
            if not np.isfinite(sums).all():
                raise ValueError("the gains of a group overflow when summed: use gain='linear' or smaller labels")
            sums_per_row = np.repeat(sums, np.diff(pointer))
            q = np.divide(gains, sums_per_row, out=np.zeros_like(gains), where=sums_per_row > 0)
        else:
            q = np.empty_like(y)
            K.group_softmax(components, table, y, pointer, q)
        scale = self._group_scale(q, pointer)
        if scale is not None:
            weight = row_weights(weight if weight.size else None, np.full(pointer.size - 1, scale), pointer,
                                 y.shape[0])
        return BoundSoftmaxLoss(self, q, pointer, weight, (y.shape[0],))


class BoundSoftmaxLoss(_BoundLoss):
    """Composite softmax over consecutive groups of a flat score array (listwise and multi-class)."""

    family = "softmax"

    def __init__(self, spec, q, pointer, weight, shape, row_weight=None):
        self.spec = spec
        self.row_weight = row_weight  # multi-class: the per-sample weights (empty: all ones); None for groups
        self.q = q
        self.group_ptr = pointer
        self.weight = weight
        self.shape = shape
        self.n_rows = shape[0]
        self.components, self.table = spec.transform.packed()

    def gradient_hessian(self, raw_prediction, grad_out=None, hess_out=None, dtype=np.float64, n_threads=1):
        z = self._raw(raw_prediction, check_finite=False)
        grad_out, hess_out = _outputs(self.shape, grad_out, hess_out, dtype)
        nonfinite = K.softmax_grad_hess(self.components, self.table, z.ravel(), self.q, self.group_ptr,
                                        self.weight, self.spec.hess == "exact",
                                        self.spec.hess_min, grad_out.reshape(-1), hess_out.reshape(-1), n_threads)
        self._check_nonfinite(nonfinite, z)
        return grad_out, hess_out

    def mean_loss(self, raw_prediction, n_threads=1):
        if self.row_weight is None:
            return super().mean_loss(raw_prediction, n_threads)
        values = self.loss(raw_prediction, n_threads)
        return float(values.sum() / (self.row_weight.sum() if self.row_weight.size else values.size))

    def init_score(self):
        return self.spec._init_from_bound(self) if self.row_weight is not None else 0.0

    def loss(self, raw_prediction, n_threads=1):
        z = self._raw(raw_prediction)
        out = np.empty(self.group_ptr.size - 1)
        work = self._work(3)
        K.softmax_loss(self.components, self.table, z.ravel(), self.q, self.group_ptr, work, out, n_threads)
        return _weighted_group_losses(out, self.weight, self.group_ptr)


# ================================================================ pairwise


class PairwiseLoss(_GroupedLoss):
    """Pairwise (contrastive) loss on transformed scores, per query group:

        loss = sum over pairs (i, j) with r_i > r_j of log(1 + exp(-(phi(z_i) - phi(z_j))))
        grad_i = phi'(z_i) dL/dphi_i,  hess_i = phi'(z_i)^2 sum_pairs sigma(m)(1 - sigma(m))
                                                [+ phi''(z_i) dL/dphi_i for "exact"]

    All pairs cost O(n^2) per group of n. ``pairs_per_item=k`` (default 16) pairs each item with the
    k lower-relevance items of highest current transformed score (the hardest ones), at most n k pairs,
    found in O(n log n + n k) per group; ``pairs_per_item=None`` takes every pair. An item in no pair
    gets zero gradient and hessian. Weights as in ``ListwiseLoss``.
    """

    def __init__(self, transform=None, pairs_per_item=16, hess="gauss-newton", hess_min=1e-6):
        self.transform = _check_link(transform, "transform")
        if pairs_per_item is not None:
            if isinstance(pairs_per_item, bool) or not isinstance(pairs_per_item, (int, np.integer)):
                raise TypeError(f"pairs_per_item must be a positive int or None, got {pairs_per_item!r}")
            if pairs_per_item < 1:
                raise ValueError(f"pairs_per_item must be >= 1 (or None for all pairs), got {pairs_per_item!r}")
        self.pairs_per_item = pairs_per_item
        self.hess = check_choice(hess, "hess", _HESSIANS)
        self.hess_min = check_hess_min(hess_min)

    def __repr__(self):
        return (f"PairwiseLoss(transform={self.transform!r}, pairs_per_item={self.pairs_per_item!r}, "
                f"hess={self.hess!r}, hess_min={self.hess_min!r})")

    def bind(self, y_true, group, sample_weight=None, group_weight=None):
        y = as_float_array(y_true, "y_true")
        if (y < 0).any():
            raise ValueError(f"y_true (relevance) must be >= 0, found {y.min()}")
        pointer = group_pointer(group, y.shape[0])
        weight = row_weights(sample_weight, group_weight, pointer, y.shape[0])
        return BoundPairwiseLoss(self, y, pointer, weight)

class BoundPairwiseLoss(_BoundLoss):
    family = "pairwise"

    def __init__(self, spec, relevance, pointer, weight):
        self.spec = spec
        self.relevance = relevance
        self.group_ptr = pointer
        self.weight = weight
        self.n_rows = relevance.shape[0]
        self.shape = (self.n_rows,)
        self.components, self.table = spec.transform.packed()
        self.k = 0 if spec.pairs_per_item is None else int(spec.pairs_per_item)

    def gradient_hessian(self, raw_prediction, grad_out=None, hess_out=None, dtype=np.float64, n_threads=1):
        z = self._raw(raw_prediction)
        grad_out, hess_out = _outputs(self.shape, grad_out, hess_out, dtype)
        work = self._work(6)
        K.pairwise_grad_hess(self.components, self.table, z, self.relevance, self.group_ptr, self.weight, self.k,
                             self.spec.hess == "exact", self.spec.hess_min, work, self._order(), grad_out, hess_out,
                             n_threads)
        return grad_out, hess_out

    def loss(self, raw_prediction, n_threads=1):
        z = self._raw(raw_prediction)
        out = np.empty(self.group_ptr.size - 1)
        work = self._work(6)
        K.pairwise_loss(self.components, self.table, z, self.relevance, self.group_ptr, self.k, work, self._order(),
                        out, n_threads)
        return _weighted_group_losses(out, self.weight, self.group_ptr)


# ================================================================ multi-class


class MulticlassLoss(_Loss):
    """Multi-class composite softmax: k scores per sample, p = softmax(phi(z)) over the k classes,

        loss = sum_c q_c log(q_c / p_c),  grad_c = phi'(z_c)(p_c - q_c),  hess_c = phi'(z_c)^2 p_c(1 - p_c)

    (``"exact"`` adds phi''(z_c)(p_c - q_c), floored at hess_min). ``y_true`` is either class indices
    (n,) in [0, k) or probability rows (n, k) summing to 1 (distillation from a teacher's
    probabilities). ``raw_prediction`` and the gradients have shape (n, k), as both engines expect for
    multi-output. With the identity transform and class labels this is the softmax cross-entropy.
    Sample weights multiply every class's gradient and hessian of their sample.
    """

    def __init__(self, transform=None, hess="gauss-newton", hess_min=1e-6):
        self.transform = _check_link(transform, "transform")
        self.hess = check_choice(hess, "hess", _HESSIANS)
        self.hess_min = check_hess_min(hess_min)

    def __repr__(self):
        return f"MulticlassLoss(transform={self.transform!r}, hess={self.hess!r}, hess_min={self.hess_min!r})"

    def bind(self, y_true, n_classes=None, sample_weight=None):
        """Validate labels once. ``n_classes`` is needed for class indices unless every class occurs."""
        y = np.asarray(y_true)
        if y.ndim == 2:
            q = as_float_array(y, "y_true", ndim=2)
            n, k = q.shape
            if n_classes is not None and n_classes != k:
                raise ValueError(f"y_true has {k} probability columns but n_classes={n_classes}")
            if (q < 0).any() or (q > 1).any():
                raise ValueError("y_true probabilities must lie in [0, 1]")
            row_sums = q.sum(axis=1)
            if not np.allclose(row_sums, 1.0, rtol=0, atol=1e-6):
                bad = int(np.argmax(np.abs(row_sums - 1.0)))
                raise ValueError(f"y_true probability rows must sum to 1, row {bad} sums to {row_sums[bad]}")
        else:
            labels = as_float_array(y, "y_true")
            if (labels != np.round(labels)).any() or (labels < 0).any():
                raise ValueError("y_true class labels must be non-negative integers")
            labels = labels.astype(np.int64)
            k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
            if n_classes is not None and labels.max() >= k:
                raise ValueError(f"y_true holds class {labels.max()} but n_classes={k}")
            if k < 2:
                raise ValueError(f"multi-class needs at least 2 classes, got {k}")
            n = labels.shape[0]
            q = np.zeros((n, k))
            q[np.arange(n), labels] = 1.0
        row_weight = sample_weights(sample_weight, n)
        weight = np.repeat(row_weight, k) if row_weight.size else row_weight
        pointer = np.arange(0, n * k + 1, k, dtype=np.int64)
        return BoundSoftmaxLoss(self, np.ascontiguousarray(q).ravel(), pointer, weight, (n, k), row_weight)

    def loss(self, y_true, raw_prediction, sample_weight=None, n_threads=1):
        """Per-sample (weighted) losses, computed on ``n_threads`` threads (-1: every core)."""
        raw = np.asarray(raw_prediction)
        n_classes = raw.shape[1] if raw.ndim == 2 else None
        return self.bind(y_true, n_classes, sample_weight).loss(raw_prediction, n_threads=n_threads)

    def gradient_hessian(self, y_true, raw_prediction, sample_weight=None, n_threads=1):
        """(grad, hess), each of shape (n, k), computed on ``n_threads`` threads (-1: every core)."""
        raw = np.asarray(raw_prediction)
        n_classes = raw.shape[1] if raw.ndim == 2 else None
        return self.bind(y_true, n_classes, sample_weight).gradient_hessian(raw_prediction, n_threads=n_threads)

    def init_score(self, y_true, n_classes=None, sample_weight=None):
        """Per-class constants c with softmax(phi(c)) = the (weighted) class frequencies, shape (k,).

        Solved as phi(c_k) = log(freq_k) + C (a class that never occurs gets frequency 1e-12). C puts the
        most frequent class at phi(0); for a transform bounded below it puts the rarest class there instead,
        and for a transform bounded on both sides it centres the values in the range. Where the range is
        too narrow to hold the log-frequency spread, the values are clipped inside it.
        """
        return self._init_from_bound(self.bind(y_true, n_classes, sample_weight))

    def _init_from_bound(self, bound):
        n, k = bound.shape
        q = bound.q.reshape(n, k)
        weight = bound.row_weight if bound.row_weight.size else None
        log_freq = np.log(np.maximum(np.average(q, axis=0, weights=weight), 1e-12))
        lo, hi = self.transform.range
        at_zero = float(self.transform.h(np.array([0.0]))[0])
        if np.isfinite(lo) and np.isfinite(hi):
            target = log_freq + 0.5 * (lo + hi) - 0.5 * (log_freq.max() + log_freq.min())
        elif np.isfinite(lo):
            target = log_freq - log_freq.min() + at_zero
        else:
            target = log_freq - log_freq.max() + at_zero
        span = hi - lo
        margin = 1e-9 * span if np.isfinite(span) else 0.0
        if np.isfinite(lo):
            target = np.maximum(target, lo + max(margin, 1e-12 * abs(lo), 1e-300))
        if np.isfinite(hi):
            target = np.minimum(target, hi - max(margin, 1e-12 * abs(hi), 1e-300))
        return self.transform.inverse(target)

    def bind_data(self, label, group=None, sample_weight=None, group_weight=None, n_classes=None, n_rows=None):
        """Bind to what an engine's data object holds; an (n, k) label matrix (teacher probabilities)
        comes back from XGBoost flattened and is reshaped here."""
        label = np.asarray(label)
        if n_rows is not None and n_classes and label.ndim == 1 and label.size == n_rows * n_classes > n_rows:
            label = label.reshape(n_rows, n_classes)
        return self.bind(label, n_classes, sample_weight)

    def n_outputs(self, n_classes=None):
        return int(n_classes)

    def class_targets(self, codes, n_classes):
        """Labels for classification: the class indices."""
        return np.asarray(codes).astype(np.float64)

    def predict_proba(self, raw):
        """``softmax(phi(z))`` per row."""
        phi = self.transform.h(raw)
        phi = phi - phi.max(axis=1, keepdims=True)
        e = np.exp(phi)
        return e / e.sum(axis=1, keepdims=True)


def check_loss(loss, name="loss"):
    """A selboost loss object or a TypeError naming ``name``."""
    if not isinstance(loss, _Loss):
        raise TypeError(
            f"{name} must be a selboost loss (SelectiveLoss, ListwiseLoss, PairwiseLoss or "
            f"MulticlassLoss), got {loss!r}"
        )
    return loss


#: Every loss kind by name (tests walk this).
LOSSES = {
    "selective": SelectiveLoss,
    "listwise": ListwiseLoss,
    "pairwise": PairwiseLoss,
    "multiclass": MulticlassLoss,
}
