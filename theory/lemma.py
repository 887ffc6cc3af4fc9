"""The proof's lemma on the mismatch set I* = {y = +1, ℓ < 0 < u}, symbolically and numerically.

With θ₁ > 0, x₁ = γ and W = Z/θ₁ ~ N(0, (σr)²), I* is W ∈ (−(γ+ε), −(γ−ε)). The proof reduces the sign
of COAP's expected extra gradient there to −f(r), with f written through truncated-normal moments of W,
bounds f by u(r), and reads off a sufficient condition on r. This module holds

* the truncated-normal moments of W, integrated by sympy (not quoted);
* `derived_f` — the reduction obtained here from the derived COAP gradient;
* the paper's printed f(r) and u(r) (transcriptions, to be *checked*, in `PRINTED_F`, `PRINTED_U`);
* `threshold_ratio` — the sufficient condition on r = ‖θ_{2:d}‖/θ₁, with the exponent the proof supports.

Both f and u depend on σ and r only through v = σr, and are homogeneous of degree 2 in (γ, ε, σ).
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from theory.derivation import EPS

__all__ = [
    "GAMMA", "SIGMA", "R", "W", "V", "PRINTED_F", "PRINTED_U", "truncation", "normal_antiderivative",
    "truncated_moment", "derived_f", "printed_threshold_sq", "threshold_ratio", "in_theorem_region", "numeric_f",
]

GAMMA, SIGMA, R = sp.symbols("gamma sigma r", positive=True)
W = sp.Symbol("w", real=True)
V = SIGMA * R                                       # standard deviation of W

_std_pdf = lambda t: sp.exp(-t ** 2 / 2) / sp.sqrt(2 * sp.pi)      # noqa: E731
_std_cdf = lambda t: (1 + sp.erf(t / sp.sqrt(2))) / 2              # noqa: E731

#: α and β of the paper: the standardised truncation limits of W.
ALPHA_T = -(GAMMA + EPS) / (R * SIGMA)
BETA_T = -(GAMMA - EPS) / (R * SIGMA)

#: The paper's printed reduction (PAPER.md §2), transcribed for comparison only.
PRINTED_F = (GAMMA ** 2 - EPS ** 2 - 2 * SIGMA ** 2 * R ** 2
             - SIGMA * R * ((GAMMA - 3 * EPS) * _std_pdf(BETA_T) - (GAMMA + EPS) * _std_pdf(ALPHA_T))
             / (_std_cdf(BETA_T) - _std_cdf(ALPHA_T)))

_QUAD = GAMMA ** 2 - 10 * GAMMA * EPS + 13 * EPS ** 2
#: The paper's printed upper bound u(r) on f(r), transcribed for comparison only.
PRINTED_U = (((GAMMA - 7 * EPS) * (GAMMA + EPS) ** 4 + 4 * R ** 2 * SIGMA ** 2 * (GAMMA + EPS) * _QUAD)
             / (4 * (GAMMA + EPS) ** 3 - 48 * R ** 2 * SIGMA ** 2 * EPS))


_T = sp.Symbol("t", real=True)


def truncation():
    """(lower, upper) limits of W on I* for θ₁ > 0."""
    return -(GAMMA + EPS), -(GAMMA - EPS)


_T = sp.Symbol("t", real=True)


@functools.lru_cache(maxsize=None)
def normal_antiderivative(k: int):
    """An antiderivative of t^k·φ(t): Φ for k = 0, t^0·(−φ) for k = 1, else integration by parts,
    ∫t^k φ = −t^{k−1}φ + (k−1)∫t^{k−2}φ. (sympy's own integrator takes seconds here; `theory.checks`
    verifies d/dt of the result is t^k·φ.)"""
    if k == 0:
        return _std_cdf(_T)
    if k == 1:
        return -_std_pdf(_T)
    return -_T ** (k - 1) * _std_pdf(_T) + (k - 1) * normal_antiderivative(k - 2)


@functools.lru_cache(maxsize=None)
def truncated_moment(k: int):
    """E[W^k | W ∈ I*] for W ~ N(0, v²) truncated to I* (k = 0 gives 1), in the standardised
    variable t = W/v between the paper's limits α and β."""
    def mass(power):
        antiderivative = normal_antiderivative(power)
        return antiderivative.subs(_T, BETA_T) - antiderivative.subs(_T, ALPHA_T)
    return V ** k * mass(k) / mass(0)


def derived_f(bracket):
    """E[bracket(W) | I*] for a polynomial bracket in W, through the sympy moments."""
    poly = sp.Poly(sp.expand(bracket), W)
    return sum(coeff * truncated_moment(power) for (power,), coeff in poly.terms())


def printed_threshold_sq(exponent=3):
    """The printed sufficient condition's two terms for r², with the exponent of (γ+ε) in the first."""
    return ((7 * EPS - GAMMA) * (GAMMA + EPS) ** exponent / (4 * SIGMA ** 2 * _QUAD),
            (GAMMA + EPS) ** 3 / (12 * SIGMA ** 2 * EPS))


@functools.lru_cache(maxsize=4)
def _threshold_funcs(exponent):
    first, second = printed_threshold_sq(exponent)
    args = (EPS, GAMMA, SIGMA)
    return sp.lambdify(args, first, "numpy"), sp.lambdify(args, second, "numpy"), sp.lambdify(args, _QUAD, "numpy")


def threshold_ratio(eps, gamma=1.0, sigma=1.0, exponent=3):
    """Sufficient r for the lemma: √max{(7ε−γ)(γ+ε)^k / (4σ²(γ²−10γε+13ε²)), (γ+ε)³/(12σ²ε)}.

    `exponent` k = 3 is what the proof's bound u(r) supports (checked in `theory.checks`); the Dec-2022
    print has k = 4. NaN for ε ≤ (5+2√3)γ/13: there u(r) → −(γ+ε)(γ²−10γε+13ε²)/(12ε) is not negative, or
    (below γ/7) u no longer bounds f, so the lemma gives no r.
    """
    first, second, quad = _threshold_funcs(exponent)
    eps, gamma, sigma = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, gamma, sigma)))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.sqrt(np.maximum(first(eps, gamma, sigma), second(eps, gamma, sigma)))
        return np.where((quad(eps, gamma, sigma) > 0) & (7 * eps > gamma), value, np.nan)[()]


def in_theorem_region(eps, ratio, gamma=1.0, sigma=1.0, exponent=3):
    """2γ/3 < ε < γ and r above the sufficient threshold — where the theorem claims COAP is worse."""
    eps, ratio, gamma, sigma = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (eps, ratio, gamma, sigma)))
    threshold = threshold_ratio(eps, gamma, sigma, exponent)
    with np.errstate(invalid="ignore"):
        return ((3 * eps > 2 * gamma) & (eps < gamma) & (ratio > threshold))[()]


@functools.lru_cache(maxsize=4)
def _f_func(which):
    expr = {"printed_f": PRINTED_F, "printed_u": PRINTED_U}[which]
    return sp.lambdify((EPS, GAMMA, SIGMA, R), expr, "scipy")


def numeric_f(which, eps, ratio, gamma=1.0, sigma=1.0):
    """Evaluate "printed_f" or "printed_u" numerically (numpy-broadcast)."""
    return _f_func(which)(eps, gamma, sigma, ratio)
