"""Ground truth for the convex relaxation: the primal triangle-relaxation LP, solved by scipy's HiGHS.

For the one-neuron model and the threat {x + βe₁ : |β| ≤ ε} the LP is, in the variables (β, ẑ):

    minimise    y·(a·ẑ + b)
    subject to  |β| ≤ ε,  q = θᵀx + βθ₁,
                dead (u ≤ 0): ẑ = 0;  active (ℓ ≥ 0): ẑ = q;
                unstable: ẑ ≥ 0, ẑ ≥ q, ẑ ≤ u(q − ℓ)/(u − ℓ)   (the triangle).

Its optimum is the best bound any Wong–Kolter dual can certify; COAP's dual fixes the lower slope
α = u/(u − ℓ) instead of optimising it. `random_instances` draws test cases, half of them forced into
the mismatch set I* = {y = +1, ℓ < 0 < u} where the two differ.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

__all__ = ["triangle_lp_margin", "random_instances"]


def triangle_lp_margin(x1, z, y, theta1, eps, a, b):
    """Optimal value of the triangle-relaxation LP above (a float); raises if HiGHS fails."""
    pre = theta1 * x1 + z
    rad = eps * abs(theta1)
    lower, upper = pre - rad, pre + rad
    # Variables v = (β, ẑ); q = pre + θ₁β is linear in β.
    cost = np.array([0.0, y * a])
    bounds = [(-eps, eps), (None, None)]
    a_ub, b_ub, a_eq, b_eq = [], [], [], []
    if upper <= 0:
        a_eq.append([0.0, 1.0]); b_eq.append(0.0)
    elif lower >= 0:
        a_eq.append([-theta1, 1.0]); b_eq.append(pre)          # ẑ − θ₁β = pre
    else:
        slope = upper / (upper - lower)
        a_ub.append([0.0, -1.0]); b_ub.append(0.0)              # ẑ ≥ 0
        a_ub.append([theta1, -1.0]); b_ub.append(-pre)          # ẑ ≥ pre + θ₁β
        a_ub.append([-slope * theta1, 1.0]); b_ub.append(slope * (pre - lower))   # ẑ ≤ slope·(q − ℓ)
    result = linprog(cost, A_ub=np.array(a_ub) if a_ub else None, b_ub=b_ub or None,
                     A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"linprog failed on a triangle LP: {result.message}")
    return float(result.fun) + y * b


def random_instances(n, seed=0):
    """n random (x1, z, y, theta1, eps, a, b) as arrays; every other one lies in I*."""
    rng = np.random.default_rng(seed)
    theta1 = rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 2.0, n)
    eps = rng.uniform(0.05, 1.5, n)
    a = rng.uniform(0.2, 3.0, n)
    b = -rng.uniform(0.05, 2.0, n)
    x1 = rng.normal(0.0, 1.5, n)
    y = rng.choice([-1.0, 1.0], n)
    z = rng.normal(0.0, 2.0, n)
    # Force the odd instances into I*: y = +1 and θ₁x₁ + z strictly inside (−ε|θ₁|, ε|θ₁|).
    forced = np.arange(n) % 2 == 1
    y[forced] = 1.0
    rad = eps * np.abs(theta1)
    z[forced] = (-theta1 * x1 + rng.uniform(-0.95, 0.95, n) * rad)[forced]
    return x1, z, y, theta1, eps, a, b
