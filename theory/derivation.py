"""Symbolic derivation of the one-neuron worst-case margins, AT and COAP, and their θ₁-gradients.

Setting (docs/PAPER.md §2): f(x) = a·ReLU(θᵀx) + b with a > 0, b < 0; threat B_ε(x) = {x + βe₁ : |β| ≤ ε};
logistic loss on the worst-case signed margin, L = log(1 + e^{−J}).

Everything below is *derived* by sympy from the model and the threat set; nothing is copied from the
paper. The paper's printed formulas live in `theory.checks`, which compares them with this derivation.

Notation. p = θᵀx is the pre-activation and ρ = ε|θ₁| the half-width of its range over the threat set,
so the pre-activation bounds are ℓ = p − ρ and u = p + ρ. A point falls in one of three *cells*:
``dead`` (u ≤ 0), ``active`` (ℓ ≥ 0) or ``unstable`` (ℓ < 0 < u). Within a cell every max/min in the
derivation has a known sign, so sympy resolves it; we make sympy *know* the sign by re-parametrising
the cell with positive symbols (e.g. unstable: ℓ = −M, u = N with M, N > 0) and mapping back.

The numeric functions at the bottom are `sympy.lambdify` of the derived expressions — the single
source of truth that `theory.population` integrates and that realdata's bounds engine is tested against.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.special import expit

__all__ = [
    "CELLS", "LABELS", "OBJECTIVES", "X1", "Z", "THETA1", "EPS", "A", "B", "P", "RHO", "ALPHA",
    "CELL_PARAMS", "Derivation", "derive", "in_cell", "relu_model", "endpoint_slopes", "dual_margin", "to_theta",
    "logistic_loss", "cell_of", "worst_case_margins", "margin_gradients", "loss_gradients", "dual_margins_numeric",
    "scalar_pieces", "Relaxation", "RELAXATIONS", "crown_margin", "optimal_margin", "ibp_margin",
]

CELLS = ("dead", "active", "unstable")
LABELS = (1, -1)

X1, Z = sp.symbols("x1 z", real=True)               # signal coordinate, z = θ_{2:d}ᵀx_{2:d}
THETA1 = sp.Symbol("theta1", real=True, nonzero=True)
EPS = sp.Symbol("epsilon", positive=True)
A = sp.Symbol("a", positive=True)
B = sp.Symbol("b", negative=True)
P = sp.Symbol("p", real=True)                       # pre-activation θᵀx
RHO = sp.Symbol("rho", positive=True)               # ε|θ₁|
ALPHA = sp.Symbol("alpha", nonnegative=True)        # lower slope of the triangle relaxation's dual

_Q = sp.Symbol("Q", nonnegative=True)
_M, _N = sp.symbols("M N", positive=True)
_q = sp.Symbol("q", real=True)

# Each cell as (forward substitution onto sign-definite symbols, substitution back to p, ρ).
CELL_PARAMS = {
    "dead": ({P: -_Q - RHO}, {_Q: -(P + RHO)}),            # u = −Q ≤ 0
    "active": ({P: _Q + RHO}, {_Q: P - RHO}),              # ℓ = Q ≥ 0
    "unstable": ({P: (_N - _M) / 2, RHO: (_M + _N) / 2},   # ℓ = −M < 0 < N = u
                 {_M: RHO - P, _N: P + RHO}),
}


def relu_model(pre):
    """The network output a·ReLU(pre) + b as a function of the pre-activation."""
    return A * sp.Max(0, pre) + B


def in_cell(expr, cell):
    """Resolve every max/min/abs of `expr` inside `cell` and return it again in terms of p and ρ."""
    forward, back = CELL_PARAMS[cell]
    resolved = sp.sympify(expr).subs(forward, simultaneous=True)      # max/min/abs evaluate here
    return sp.factor(sp.cancel(resolved.subs(back, simultaneous=True)))


def endpoint_slopes(y):
    """Slopes of q ↦ y·f(q) on each side of the kink: (q < 0, q > 0).

    Both have the sign of y·a (or vanish), so y·f is monotone along the threat segment and its minimum
    over the segment sits at an endpoint — the AT derivation below relies on exactly this.
    """
    neg, pos = sp.Symbol("q_neg", negative=True), sp.Symbol("q_pos", positive=True)
    slope = sp.diff(y * relu_model(_q), _q)
    return slope.subs(_q, neg), slope.subs(_q, pos)


def _at_margin(y, cell):
    """min over |β| ≤ ε of y·f(x + βe₁).

    As β runs over [−ε, ε] the pre-activation θᵀx + βθ₁ runs over [p − ρ, p + ρ]; y·f is monotone in it
    (`endpoint_slopes`), so the minimum is the smaller endpoint value.
    """
    return in_cell(sp.Min(y * relu_model(P - RHO), y * relu_model(P + RHO)), cell)


def dual_margin(y, cell, alpha=None):
    """Wong–Kolter dual lower bound on y·f over B_ε(x), in p and ρ.

    c = y (the signed margin of the scalar output), ν₃ = −c, ν̂₂ = W₂ᵀν₃ = a·ν₃; ν₂ = 0 (dead), ν̂₂
    (active), or on unstable units u/(u−ℓ)·[ν̂₂]₊ − α·[ν̂₂]₋ with lower slope α ∈ [0, 1]; ν̂₁ = θ·ν₂.
    J = −ν₃·b − ν̂₁ᵀx − ε|ν̂₁·e₁| + ℓ·[ν₂]₊ (unstable only); the input term −ε|ν̂₁·e₁| is the conjugate of
    the segment {βe₁ : |β| ≤ ε}. `alpha=None` is COAP's fixed choice α = u/(u − ℓ).
    """
    lower, upper = P - RHO, P + RHO
    nu3 = -y
    nu_hat2 = A * nu3
    if cell == "dead":
        nu2 = sp.Integer(0)
    elif cell == "active":
        nu2 = nu_hat2
    else:
        slope = upper / (upper - lower)
        lower_slope = slope if alpha is None else alpha
        nu2 = slope * sp.Max(nu_hat2, 0) - lower_slope * sp.Max(-nu_hat2, 0)
    # |ν̂₁·e₁| = |θ₁ν₂| and ε|θ₁| = ρ.
    value = -nu3 * B - nu2 * P - RHO * sp.Abs(nu2)
    if cell == "unstable":
        value += lower * sp.Max(nu2, 0)
    return in_cell(value, cell)


def crown_margin(y, cell):
    """CROWN's dual: the upper chord, and on unstable units the adaptive lower slope α = 1 if u > −ℓ else 0
    (the smaller-area triangle; realdata's rule). u > −ℓ is p > 0, so the unstable cell splits at p = 0."""
    if cell != "unstable":
        return dual_margin(y, cell)
    wide, narrow = dual_margin(y, cell, sp.Integer(1)), dual_margin(y, cell, sp.Integer(0))
    return wide if sp.simplify(wide - narrow) == 0 else sp.Piecewise((wide, P > 0), (narrow, True))


def optimal_margin(y, cell):
    """The dual with the best lower slope. The dual is affine in α ∈ [0, 1] (`theory.checks`), so its
    maximum sits at α = 0 or α = 1; the triangle LP's optimum (strong duality)."""
    if cell != "unstable":
        return dual_margin(y, cell)
    return in_cell(sp.Max(dual_margin(y, cell, sp.Integer(0)), dual_margin(y, cell, sp.Integer(1))), cell)


def ibp_margin(y, cell):
    """Interval bound propagation: [ℓ, u] through ReLU to [max(0, ℓ), max(0, u)], through a > 0 and b, and
    the lower end of the signed margin y·(a·h + b) over that interval."""
    low, high = A * sp.Max(0, P - RHO) + B, A * sp.Max(0, P + RHO) + B
    return in_cell(sp.Min(y * low, y * high), cell)


@dataclass(frozen=True)
class Relaxation:
    """A convex relaxation of the one-neuron worst case: `margin(y, cell)` is its certified lower bound on
    min over B_ε(x) of y·f, in p and ρ, derived symbolically."""

    name: str
    summary: str
    margin: object


#: Every relaxation of the one-neuron model, by name; CLI choices and the population code derive from it.
RELAXATIONS = {r.name: r for r in (
    Relaxation("coap", "Wong–Kolter dual, fixed lower slope u/(u−ℓ) (the paper's)", dual_margin),
    Relaxation("crown", "dual with CROWN's adaptive lower slope (1 if u > −ℓ else 0)", crown_margin),
    Relaxation("optimal", "dual with the best lower slope (= the triangle LP)", optimal_margin),
    Relaxation("ibp", "interval bound propagation", ibp_margin),
)}


def to_theta(expr):
    """Substitute p = θ₁x₁ + z and ρ = ε|θ₁| so that θ₁ appears explicitly."""
    return sp.sympify(expr).subs({P: THETA1 * X1 + Z, RHO: EPS * sp.Abs(THETA1)}, simultaneous=True)


def logistic_loss(margin):
    """log(1 + e^{−J}) — the paper's loss written on the worst-case margin (docs/PAPER.md §2)."""
    return sp.log(1 + sp.exp(-margin))


#: What a one-step comparison can train on: AT's exact worst case and every relaxation.
OBJECTIVES = ("at", *RELAXATIONS)


@dataclass(frozen=True)
class Derivation:
    """The derived expressions, keyed by (objective, y, cell).

    margins: J in p, ρ.  margin_grads: ∂J/∂θ₁ in x₁, z, θ₁, ε, a, b.
    loss_grads: sympy.diff of log(1 + e^{−J}) with respect to θ₁ (same variables).
    """

    margins: dict
    margin_grads: dict
    loss_grads: dict


@functools.lru_cache(maxsize=1)
def derive() -> Derivation:
    """Run the whole derivation once (about a second of sympy); cached."""
    margins, margin_grads, loss_grads = {}, {}, {}
    for y in LABELS:
        for cell in CELLS:
            candidates = {"at": _at_margin(y, cell), **{name: r.margin(y, cell) for name, r in RELAXATIONS.items()}}
            for objective, margin in candidates.items():
                key = (objective, y, cell)
                in_theta = to_theta(margin)
                margins[key] = margin
                margin_grads[key] = sp.diff(in_theta, THETA1)
                loss_grads[key] = sp.diff(logistic_loss(in_theta), THETA1)
    return Derivation(margins, margin_grads, loss_grads)


# --------------------------------------------------------------------------------------------------
# Numeric functions, lambdified from the derivation.

_ARGS = (X1, Z, THETA1, EPS, A, B)


@functools.lru_cache(maxsize=2)
def _lambdified(module: str):
    """{(objective, y, cell): (J, ∂J/∂θ₁)} as callables of (x1, z, theta1, eps, a, b)."""
    d = derive()
    return {key: (sp.lambdify(_ARGS, to_theta(d.margins[key]), module),
                  sp.lambdify(_ARGS, d.margin_grads[key], module))
            for key in d.margins}


def scalar_pieces():
    """Fast scalar (``math``-module) callables {(objective, y, cell): (J, ∂J/∂θ₁)} for quadrature."""
    return _lambdified("math")


def _broadcast(*arrays):
    return np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in arrays))


def cell_of(x1, z, theta1, eps):
    """Integer cell index per point (0 dead, 1 active, 2 unstable; order of `CELLS`)."""
    x1, z, theta1, eps = _broadcast(x1, z, theta1, eps)
    pre, rad = theta1 * x1 + z, eps * np.abs(theta1)
    return np.where(pre + rad <= 0, 0, np.where(pre - rad >= 0, 1, 2))


def _require_relaxation(relaxation):
    if relaxation not in RELAXATIONS:
        raise ValueError(f"unknown relaxation {relaxation!r}; choose one of {', '.join(RELAXATIONS)}.")


def _evaluate(which, relaxation, x1, z, y, theta1, eps, a, b):
    _require_relaxation(relaxation)
    x1, z, y, theta1, eps, a, b = _broadcast(x1, z, y, theta1, eps, a, b)
    if not np.all(np.isin(y, LABELS)):
        raise ValueError("labels y must be +1 or -1.")
    if np.any(theta1 == 0):
        raise ValueError("theta1 must be non-zero (the threat's half-width ε|θ₁| would vanish).")
    cells = cell_of(x1, z, theta1, eps)
    funcs = _lambdified("numpy")
    out = {obj: np.zeros(x1.shape) for obj in ("at", relaxation)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for (obj, label, cell), pair in funcs.items():
            mask = (y == label) & (cells == CELLS.index(cell))
            if obj in out and np.any(mask):
                value = pair[which](x1[mask], z[mask], theta1[mask], eps[mask], a[mask], b[mask])
                out[obj][mask] = np.broadcast_to(value, (int(mask.sum()),))
    return out["at"], out[relaxation]


def worst_case_margins(x1, z, y, theta1, eps, a, b, relaxation="coap"):
    """(J_AT, J_r): exact worst-case signed margin and relaxation r's certified bound, numpy-broadcast.

    x1: signal coordinate; z = θ_{2:d}ᵀx_{2:d}; y ∈ {+1, −1}; theta1 ≠ 0; eps ≥ 0; a > 0; b < 0;
    relaxation: a name in `RELAXATIONS` (default COAP, the paper's).
    """
    return _evaluate(0, relaxation, x1, z, y, theta1, eps, a, b)


def margin_gradients(x1, z, y, theta1, eps, a, b, relaxation="coap"):
    """(∂J_AT/∂θ₁, ∂J_r/∂θ₁), numpy-broadcast (derivative taken by sympy, then lambdified)."""
    return _evaluate(1, relaxation, x1, z, y, theta1, eps, a, b)


def loss_gradients(x1, z, y, theta1, eps, a, b, relaxation="coap"):
    """Per-sample θ₁-gradients of log(1 + e^{−J}) for AT and relaxation r, numpy-broadcast.

    Evaluated as −σ(−J)·∂J/∂θ₁ with a stable logistic; `theory.checks` verifies symbolically that this
    factorisation equals sympy.diff of the loss itself.
    """
    j_at, j_r = worst_case_margins(x1, z, y, theta1, eps, a, b, relaxation)
    d_at, d_r = margin_gradients(x1, z, y, theta1, eps, a, b, relaxation)
    return -expit(-j_at) * d_at, -expit(-j_r) * d_r


@functools.lru_cache(maxsize=1)
def _dual_lambdified():
    return {(y, cell): sp.lambdify(_ARGS + (ALPHA,), to_theta(dual_margin(y, cell, ALPHA)), "numpy")
            for y in LABELS for cell in CELLS}


def dual_margins_numeric(x1, z, y, theta1, eps, a, b, alpha):
    """Wong–Kolter dual value with lower slope `alpha` ∈ [0, 1] on unstable units, numpy-broadcast."""
    x1, z, y, theta1, eps, a, b, alpha = _broadcast(x1, z, y, theta1, eps, a, b, alpha)
    cells = cell_of(x1, z, theta1, eps)
    out = np.zeros(x1.shape)
    for (label, cell), func in _dual_lambdified().items():
        mask = (y == label) & (cells == CELLS.index(cell))
        if np.any(mask):
            value = func(x1[mask], z[mask], theta1[mask], eps[mask], a[mask], b[mask], alpha[mask])
            out[mask] = np.broadcast_to(value, (int(mask.sum()),))
    return out

