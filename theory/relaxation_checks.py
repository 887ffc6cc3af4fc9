"""Named checks of the relaxations beyond COAP (CROWN, the optimal slope, IBP) on the one-neuron model.

Registered into `theory.checks.CHECKS` (imported there), so `run_checks` and the CLI run them with the
rest. Symbolic statements are about the derived margins of `theory.derivation.RELAXATIONS`; the numeric
oracles are scipy's LP (`theory.lp`), brute force over the threat segment, and the dual evaluated at an
explicit slope. realdata's bounds engine is compared with the same margins in the test suite (theory
imports nothing from realdata).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from theory import derivation as dv
from theory import lp
from theory.checks import FINDINGS, _check, _equal_both_signs, _is_zero, _lp_table

_LOWER, _UPPER = dv.P - dv.RHO, dv.P + dv.RHO
_OFF_MISMATCH = [(y, c) for y in dv.LABELS for c in dv.CELLS if (y, c) != (1, "unstable")]


def _same_as_at(relaxation, cells):
    """The (y, cell)s of `cells` where the relaxation's margin or θ₁-gradient differs from AT's."""
    d = dv.derive()
    return [(y, c) for y, c in cells
            if not (_is_zero(d.margins[("at", y, c)] - d.margins[(relaxation, y, c)])
                    and _equal_both_signs(d.margin_grads[("at", y, c)], d.margin_grads[(relaxation, y, c)]))]


def _unstable_branches(expr, switch=dv.P > 0):
    """(value where `switch` holds, value elsewhere) of an expression on the unstable cell; CROWN's
    margins switch at p > 0 (its gradients at the same condition written in θ₁)."""
    if not isinstance(expr, sp.Piecewise):
        return expr, expr
    (wide, cond), (narrow, otherwise) = expr.args
    if cond != switch or otherwise is not sp.true:
        raise ValueError(f"unexpected branches {expr.args}")
    return wide, narrow


def _unstable_sign(expr):
    """The sign of `expr` on the unstable cell ℓ = −M < 0 < N = u, or None if it is not definite."""
    forward, _ = dv.CELL_PARAMS["unstable"]
    value = sp.factor(sp.sympify(expr).subs(forward, simultaneous=True))
    return 1 if value.is_positive else -1 if value.is_negative else 0 if value == 0 else None


@_check("optimal_equals_lp_equals_at")
def _optimal():
    d = dv.derive()
    off = _same_as_at("optimal", _OFF_MISMATCH + [(1, "unstable")])
    on_set = d.margins[("optimal", 1, "unstable")]
    t = _lp_table()
    inst = lp.random_instances(t["lp"].size, seed=4)
    _, optimal = dv.worst_case_margins(*inst, relaxation="optimal")
    err = float(np.max(np.abs(optimal - t["lp"]) / t["scale"]))
    ok = not off and on_set == dv.B and err < 1e-8
    return ok, (f"the best-slope dual equals AT in all 6 (y, cell) (on I*: J = {on_set} = AT's b, the slope α = 0), "
                f"and scipy's triangle LP on {t['lp'].size} instances (max rel |Δ| {err:.1e}): optimal = LP = AT"
                if ok else f"differs from AT in {off}; on I*: {on_set}; LP max rel |Δ| {err:.1e}")


@_check("crown_on_mismatch")
def _crown():
    d = dv.derive()
    off = _same_as_at("crown", _OFF_MISMATCH)
    wide, narrow = _unstable_branches(d.margins[("crown", 1, "unstable")])
    slope_one = dv.dual_margin(1, "unstable", sp.Integer(1))
    is_at = _is_zero(narrow - d.margins[("at", 1, "unstable")])
    is_slope_one = _is_zero(wide - slope_one) and _is_zero(wide - (dv.B + dv.A * _LOWER))
    coap = d.margins[("coap", 1, "unstable")]
    # Against COAP: below it where u > −ℓ (slope 1 > u/(u−ℓ)), above it where u ≤ −ℓ (slope 0 < u/(u−ℓ)).
    below_coap, above_coap = _unstable_sign(wide - coap), _unstable_sign(narrow - coap)
    FINDINGS["crown_on_mismatch"] = "AT's value b where u ≤ −ℓ; the fixed slope 1, b + aℓ < b, where u > −ℓ"
    ok = not off and is_at and is_slope_one and below_coap == -1 and above_coap == 1
    return ok, ("CROWN = AT in the 5 (y, cell) outside I*; on I* it is AT's b where u ≤ −ℓ (slope 0) and the fixed "
                "slope-1 bound b + aℓ where u > −ℓ — below COAP's there, above it where u ≤ −ℓ"
                if ok else f"outside I* differs in {off}; AT branch {is_at}, slope-1 branch {is_slope_one}, "
                           f"signs vs COAP {below_coap}, {above_coap}")


@_check("crown_gradient_on_mismatch")
def _crown_gradient():
    """Where u > −ℓ on I*, CROWN's θ₁-gradient is AT's active-cell one, a(x₁ − ε sgn θ₁); with x₁ = γ > ε
    the loss gradient is negative, so CROWN pushes θ₁ up where AT's gradient is 0."""
    d = dv.derive()
    grad = d.margin_grads[("crown", 1, "unstable")]
    wide, narrow = _unstable_branches(grad, dv.to_theta(dv.P > 0))
    target = dv.A * (dv.X1 - dv.EPS * sp.sign(dv.THETA1))
    matches = _equal_both_signs(wide, target) and narrow == 0
    gamma, delta, theta = sp.Symbol("gamma", positive=True), sp.Symbol("delta", positive=True), \
        sp.Symbol("theta", positive=True)
    on_signal = sp.expand(wide.subs({dv.X1: gamma, dv.THETA1: theta}).subs(gamma, dv.EPS + delta))
    pushes_up = bool(on_signal.is_positive)      # ∂J/∂θ₁ > 0, so ∂L/∂θ₁ = −σ(−J)·∂J/∂θ₁ < 0
    ok = matches and pushes_up
    return ok, (f"on I*, ∂J_CROWN/∂θ₁ = {wide} where u > −ℓ and 0 where u ≤ −ℓ; for θ₁ > 0, x₁ = γ > ε it is "
                f"{on_signal} > 0: CROWN's extra expected gradient is negative, θ₁ ends above AT's")


@_check("ibp_equals_at")
def _ibp():
    d = dv.derive()
    off = _same_as_at("ibp", _OFF_MISMATCH + [(1, "unstable")])
    above_coap = _unstable_sign(d.margins[("ibp", 1, "unstable")] - d.margins[("coap", 1, "unstable")])
    FINDINGS["ibp_order"] = "J_IBP = J_AT ≥ J_COAP, strictly on I* (one monotone unit: the interval is exact)"
    ok = not off and above_coap == 1
    return ok, ("IBP's margin and θ₁-gradient equal AT's in all 6 (y, cell) — one ReLU with a > 0 is monotone, so "
                "the interval [max(0,ℓ), max(0,u)] is attained; hence J_IBP = J_AT > J_COAP on I*"
                if ok else f"IBP differs from AT in {off}; sign of J_IBP − J_COAP on I*: {above_coap}")


@_check("relaxations_sound")
def _sound():
    inst = lp.random_instances(400, seed=6)
    x1, z, y, theta1, eps, a, b = inst
    beta = np.linspace(-1.0, 1.0, 2001)[:, None] * eps
    brute = np.min(y * (a * np.maximum(theta1 * x1 + z + beta * theta1, 0.0) + b), axis=0)
    lower, upper = theta1 * x1 + z - eps * np.abs(theta1), theta1 * x1 + z + eps * np.abs(theta1)
    crown_slope = np.where((lower < 0) & (upper > 0), (upper > -lower).astype(float), 0.5)
    explicit = {"coap": dv.worst_case_margins(*inst)[1], "crown": dv.dual_margins_numeric(*inst, crown_slope),
                "optimal": np.maximum(dv.dual_margins_numeric(*inst, 0.0), dv.dual_margins_numeric(*inst, 1.0)),
                "ibp": y * (a * np.maximum(np.where(y > 0, lower, upper), 0.0) + b)}
    worst_sound, worst_match = 0.0, 0.0
    for name in dv.RELAXATIONS:
        _, margin = dv.worst_case_margins(*inst, relaxation=name)
        worst_sound = max(worst_sound, float(np.max(margin - brute)))
        worst_match = max(worst_match, float(np.max(np.abs(margin - explicit[name]))))
    ok = worst_sound < 1e-12 and worst_match < 1e-12
    return ok, (f"every relaxation's lambdified margin ≤ the brute-force worst case on 400 instances (max excess "
                f"{worst_sound:.1e}) and equals its explicit form (dual at slope u/(u−ℓ), 1{{u>−ℓ}}, best of 0/1; "
                f"interval arithmetic): max |Δ| {worst_match:.1e}")
