"""``selboost plot-link``: parse a link from text (no ``eval``) and draw h, h' and the loss around targets.

Grammar (whitespace ignored, names case-insensitive)::

    link   := term ('+' term)*
    term   := [number '*'] atom ['*' number]
    atom   := name ['(' [arg (',' arg)*] ')']
    arg    := [key '='] (number | '[' number (',' number)* ']' | word)
    name   := identity | sigmoid | sinh | exp | piecewise | region

``sigmoid(center, scale)``, ``sinh(center, scale)``, ``exp(center, scale)`` (keywords ``center=``,
``scale=`` also accepted), ``piecewise([knots], [slopes])``, ``identity``, and
``region(low, high, strength, shape, width)`` for ``selboost.region_link`` (``none`` leaves an end
open; ``shape`` is ``piecewise`` or ``smooth``). Examples: ``"identity + 9*sigmoid(2, 0.5)"``,
``"region(2, 4, strength=10, shape=smooth)"``, ``"region(low=3, strength=5)"``.
"""

from __future__ import annotations

import re

import numpy as np

from selboost.links import Exp, Identity, Link, PiecewiseLinear, Sigmoid, Sinh
from selboost.regions import region_link

__all__ = ["parse_link", "parse_floats", "plot_link"]

_TOKEN = re.compile(r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
                    r"|(?P<op>[-+*(),=\[\]]))")

_LINKS = {
    "identity": (Identity, ()),
    "sigmoid": (Sigmoid, ("center", "scale")),
    "sinh": (Sinh, ("center", "scale")),
    "exp": (Exp, ("center", "scale")),
    "piecewise": (PiecewiseLinear, ("knots", "slopes")),
    "region": (region_link, ("low", "high", "strength", "shape", "width")),
}
#: the words an argument may be instead of a number (``region``'s open ends and shapes)
_WORDS = {"none": None, "piecewise": "piecewise", "smooth": "smooth"}


def _tokenize(text):
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"--link: unexpected character {text[pos:].lstrip()[:1]!r} at position {pos} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text):
        if not isinstance(text, str) or not text.strip():
            raise ValueError("--link: empty link description")
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message):
        where = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return ValueError(f"--link: {message} at position {where} in {self.text!r}")

    def peek(self, value=None, kind=None):
        if self.i >= len(self.tokens):
            return False
        k, v, _ = self.tokens[self.i]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value=None, kind=None, what=None):
        if not self.peek(value, kind):
            raise self.error(f"expected {what or value or kind}")
        token = self.tokens[self.i]
        self.i += 1
        return token[1]

    def number(self):
        sign = 1.0
        if self.peek("-") or self.peek("+"):
            sign = -1.0 if self.take() == "-" else 1.0
        return sign * float(self.take(kind="number", what="a number"))

    def link(self):
        result = self.term()
        while self.peek("+"):
            self.take("+")
            result = result + self.term()
        if self.i != len(self.tokens):
            raise self.error("expected '+' or the end")
        return result

    def term(self):
        weight = 1.0
        if self.peek(kind="number") or self.peek("-"):
            weight = self.number()
            self.take("*")
        atom = self.atom()
        if self.peek("*"):
            self.take("*")
            weight *= self.number()
        if weight <= 0.0:
            raise self.error(f"weights must be > 0, got {weight}")
        return atom if weight == 1.0 else weight * atom

    def atom(self):
        name = self.take(kind="name", what="a link name").lower()
        if name not in _LINKS:
            self.i -= 1
            raise self.error(f"unknown link {name!r} (known: {', '.join(_LINKS)})")
        cls, params = _LINKS[name]
        positional, keywords = [], {}
        if self.peek("("):
            self.take("(")
            while not self.peek(")"):
                key = None
                if self.peek(kind="name") and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][1] == "=":
                    key = self.take(kind="name").lower()
                    self.take("=")
                    if key not in params:
                        self.i -= 2
                        raise self.error(f"{name} has no parameter {key!r} (parameters: {', '.join(params) or 'none'})")
                value = self.list() if self.peek("[") else self.word() if self.peek(kind="name") else self.number()
                if key is None:
                    if keywords:
                        raise self.error("positional argument after a keyword argument")
                    positional.append(value)
                else:
                    keywords[key] = value
                if not self.peek(")"):
                    self.take(",", what="',' or ')'")
            self.take(")")
        if len(positional) > len(params):
            raise self.error(f"{name} takes at most {len(params)} argument(s), got {len(positional)}")
        kwargs = dict(zip(params, positional))
        for key, value in keywords.items():
            if key in kwargs:
                raise self.error(f"{name}: {key} given twice")
            kwargs[key] = value
        if name == "piecewise" and set(kwargs) != {"knots", "slopes"}:
            raise self.error("piecewise needs ([knots], [slopes])")
        if name == "region" and "strength" not in kwargs:
            raise self.error("region needs a strength: region(low, high, strength)")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--link: {exc}") from None

    def word(self):
        word = self.take(kind="name").lower()
        if word not in _WORDS:
            self.i -= 1
            raise self.error(f"expected a number or one of {', '.join(_WORDS)}, got {word!r}")
        return _WORDS[word]

    def list(self):
        self.take("[")
        values = [self.number()]
        while self.peek(","):
            self.take(",")
            values.append(self.number())
        self.take("]")
        return tuple(values)


def parse_link(text) -> Link:
    """A ``selboost.links`` link from its text description (see the module grammar); no ``eval``."""
    return _Parser(text).link()


def parse_floats(text, name="value"):
    """'1, 2.5, 3' -> [1.0, 2.5, 3.0] or None for None; a ValueError naming ``name`` otherwise."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values or not np.isfinite(values).all():
        raise ValueError(f"{name}: expected finite comma-separated numbers, got {text!r}")
    return values


#: how far from its centre a term is drawn, in its scales: a sigmoid's sensitivity 4 sigma (1 - sigma)
#: is below 1 % of its peak beyond 6 (so a smooth region's edges are drawn whole); sinh and exp are
#: drawn where they bend, before they dwarf the rest
_REACH = {Sigmoid: 6.0, Sinh: 4.0, Exp: 4.0}


def _default_span(link):
    """The score range drawn when none is given: 0 and each term's reach (piecewise knots with a margin
    of half their spread, at least 1)."""
    points = [0.0]
    for _, term in link._terms():
        if isinstance(term, PiecewiseLinear):
            margin = max(1.0, 0.5 * (term.knots[-1] - term.knots[0]))
            points += [term.knots[0] - margin, term.knots[-1] + margin]
        elif not isinstance(term, Identity):
            reach = _REACH.get(type(term), 4.0) * abs(term.scale)
            points += [term.center - reach, term.center + reach]
    lo, hi = min(points), max(points)
    if hi - lo < 1e-9:
        lo, hi = -3.0, 3.0
    return lo, hi


def _finite_on(link, values, where, variable, fix):
    """(h, h') at ``values``, or a ValueError saying where on ``where`` the link overflows float64 (a
    scale too small for the range): in the user's terms, the link, range and targets given."""
    with np.errstate(over="ignore", invalid="ignore"):
        h, dh = link.h(values), link.dh(values)
    bad = ~(np.isfinite(h) & np.isfinite(dh))
    if bad.any():
        first = values[np.flatnonzero(bad)[0]]
        raise ValueError(f"--link: {link!r} overflows float64 on {where}, first at {variable} = {first:g}: give the "
                         f"link a larger scale or {fix}")
    return h, dh


def plot_link(link, path, targets=None, span=None, title=None):
    """Three panels over the score range: h(z); the sensitivity h'(z); the loss H(z) - H(y) - (z - y) h(y)
    for a few targets y. Returns ``path``."""
    from selboost.bench.report import pyplot, save_figure
    from selboost.losses import SelectiveLoss

    lo, hi = span if span is not None else _default_span(link)
    z = np.linspace(lo, hi, 801)
    where = f"the score range [{lo:g}, {hi:g}]" + (" (--range)" if span is not None else
                                                    " (the default, around the link's centres; set it with --range)")
    h, dh = _finite_on(link, z, where, "z", "plot a narrower range")
    if targets is None:
        targets = [lo + f * (hi - lo) for f in (0.2, 0.5, 0.8)]
    else:
        _finite_on(link, np.asarray(targets, dtype=np.float64), "the targets (--targets)", "y", "give other targets")
    loss = SelectiveLoss(link, hess_min=0.0)
    fig, axes = pyplot().subplots(1, 3, figsize=(12, 3.6))
    axes[0].plot(z, h)
    axes[0].set_title("link h(z)")
    axes[1].plot(z, dh, color="tab:orange")
    axes[1].set_title("sensitivity h'(z)")
    axes[1].set_ylim(0.0, None)
    for y in targets:
        values = loss.loss(np.full(z.size, float(y)), z)
        axes[2].plot(z, values, label=f"y = {y:g}")
        axes[2].axvline(y, color="gray", lw=0.5, ls=":")
    axes[2].set_title("loss around targets y")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("score z")
        ax.grid(alpha=0.3)
    fig.suptitle(title or repr(link), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path
