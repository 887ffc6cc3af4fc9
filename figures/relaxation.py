"""The relaxation picture: an unstable ReLU (ℓ < 0 < u), its tightest convex relaxation (the
triangle) and the fixed-slope lower line α·z, α = u/(u − ℓ), that COAP trains with.

The extra area between α·z and max(0, z) is where COAP's bound is looser than the
triangle; on the theorem's data it is exactly the mismatch set I* = {y = +1, ℓ < 0 < u}.
The second panel shows that on the theorem's one-neuron model, with the margins derived
in `theory.derivation`: the exact worst case (AT), the triangle LP's optimum and COAP's
fixed-slope bound against the off-signal pre-activation z = θ_{2:d}ᵀx_{2:d}.
"""
from __future__ import annotations

import numpy as np
import torch

from figures.spec import FigureSpec
from figures.style import METHOD_STYLES
from realdata.relaxation.relus import unstable_mask

TRIANGLE_COLOR = "#999999"


def coap_slope(lower: float, upper: float) -> float:
    """Wong & Kolter's dual slope for an unstable ReLU: the upper line's slope, through 0."""
    if not bool(unstable_mask(torch.tensor(lower), torch.tensor(upper))):
        raise ValueError(f"the ReLU is unstable only when lower < 0 < upper, got [{lower}, {upper}].")
    return upper / (upper - lower)


def draw_relaxation(ax, lower: float = -1.0, upper: float = 2.0):
    """Draw the ReLU over [ℓ, u], the triangle relaxation and COAP's lower line."""
    alpha = coap_slope(lower, upper)
    pad = 0.25 * (upper - lower)
    z = np.linspace(lower - pad, upper + pad, 400)
    ax.fill([lower, 0, upper], [0, 0, upper], color=TRIANGLE_COLOR, alpha=0.35,
            label="triangle (convex hull)")
    zi = np.linspace(lower, upper, 200)
    coap = METHOD_STYLES["coap"]
    ax.fill_between(zi, alpha * zi, np.maximum(zi, 0), color=coap.color, alpha=0.25, linewidth=0,
                    label="looser in COAP's bound")
    ax.plot(z, np.maximum(z, 0), color="black", linewidth=2.5, label="ReLU(z)")
    ax.plot(zi, upper * (zi - lower) / (upper - lower), color="0.35", linewidth=1.5, linestyle="-")
    ax.plot(zi, alpha * zi, color=coap.color, linestyle=coap.linestyle, linewidth=2.5,
            label=f"COAP lower line α·z, α = u/(u−ℓ) = {alpha:.2f}")
    for value, name in ((lower, "ℓ"), (upper, "u")):
        ax.axvline(value, color="0.5", linestyle=":", linewidth=1)
        # In x-data, y-axes coordinates: the label sits at the bottom whatever the y-range.
        ax.text(value, 0.02, f" {name}", transform=ax.get_xaxis_transform(), ha="left", va="bottom",
                fontsize="large")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set_xlabel("pre-activation z")
    ax.set_ylabel("activation")
    ax.set_title("An unstable ReLU and its relaxations")
    ax.legend(loc="upper left", frameon=False, fontsize="small")


# The worked example of docs/PAPER.md §2 (γ = 1, ε = 0.8, θ₁ = 1, a = 1, b = −0.5): a setting
# inside the theorem's range 2γ/3 < ε < γ.
EXAMPLE = {"gamma": 1.0, "eps": 0.8, "theta1": 1.0, "a": 1.0, "b": -0.5}


def margins_for_positive_class(z, gamma, eps, theta1, a, b, n_alpha=101):
    """(exact worst case, triangle LP optimum, COAP bound) of the signed margin for y = +1.

    The LP optimum is the best Wong–Kolter dual over lower slopes α ∈ [0, 1]: every α gives
    a valid bound and the dual of this one-unit LP is tight at its best α.
    """
    from theory.derivation import dual_margins_numeric, worst_case_margins
    z = np.asarray(z, dtype=float)
    exact, coap = worst_case_margins(gamma, z, 1, theta1, eps, a, b)
    alphas = np.linspace(0.0, 1.0, n_alpha)[:, None]
    lp = dual_margins_numeric(gamma, z[None, :], 1, theta1, eps, a, b, alphas).max(axis=0)
    return exact, lp, coap


def draw_margins(ax, gamma, eps, theta1, a, b):
    # z spans the unstable interval −θ₁(γ+ε) < z < −θ₁(γ−ε) with room on both sides.
    lo, hi = -theta1 * (gamma + eps), -theta1 * (gamma - eps)
    z = np.linspace(lo - 0.6 * (hi - lo), hi + 0.6 * (hi - lo), 400)
    exact, lp, coap = margins_for_positive_class(z, gamma, eps, theta1, a, b)
    ax.axvspan(lo, hi, color=METHOD_STYLES["coap"].color, alpha=0.12, label="unstable: ℓ < 0 < u")
    at, cp = METHOD_STYLES["at"], METHOD_STYLES["coap"]
    ax.plot(z, exact, color=at.color, linewidth=3, label="exact worst case (AT's target)")
    ax.plot(z, lp, color="black", linestyle=":", linewidth=2, zorder=5, label="triangle LP optimum")
    ax.plot(z, coap, color=cp.color, linestyle=cp.linestyle, linewidth=2.5, label="COAP bound (α = u/(u−ℓ))")
    ax.set_xlabel(r"$z = \theta_{2:d}^{\top} x_{2:d}$")
    ax.set_ylabel("worst-case margin J (y = +1)")
    ax.set_title(f"One neuron: γ={gamma:g}, ε={eps:g}, θ₁={theta1:g}, a={a:g}, b={b:g}")
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return float(np.max(exact - coap)), float(np.max(np.abs(exact - lp)))


def draw(fig, results) -> list[str]:
    left, right = fig.subplots(1, 2)
    draw_relaxation(left)
    gap, lp_gap = draw_margins(right, **EXAMPLE)
    return [f"relaxation: on the unstable set COAP's bound lies up to {gap:.3f} below the exact worst-case "
            f"margin; the triangle LP optimum differs from the exact margin by at most {lp_gap:.1e}"]


SPEC = FigureSpec("relaxation", "Relaxation of an unstable ReLU", (13, 5.5), draw)
