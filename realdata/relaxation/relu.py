"""Linear relaxations of one ReLU layer given its pre-activation bounds [ℓ, u].

Every stable neuron is exact (slope 1 when ℓ ≥ 0, slope 0 when u ≤ 0).  An
unstable neuron (ℓ < 0 < u) is bounded above by the chord d·(z − ℓ) with
d = u/(u − ℓ) and below by a line α·z through the origin; the lower-slope rule
picks α:

* ``parallel`` — α = d, the Wong–Kolter dual (COAP).  The two lines are parallel,
  so relu(z) = d·z + s with a slack s ∈ [0, −d·ℓ]; one propagation then bounds a
  linear function from both sides.
* ``adaptive`` — α = 1 if u > −ℓ else 0, CROWN's rule (the smaller-area triangle).
"""
from __future__ import annotations

import torch

PARALLEL = "parallel"
ADAPTIVE = "adaptive"
RULES = (PARALLEL, ADAPTIVE)


class ReluRelaxation:
    def __init__(self, lower: torch.Tensor, upper: torch.Tensor, rule: str):
        self.rule = rule
        self.lower = lower
        # masks carry no gradient; the slopes and intercepts do (as in Wong & Kolter's training)
        self.unstable = ((upper > 0) & (lower < 0)).detach()
        active = (lower >= 0).detach().to(lower.dtype)
        width = torch.where(self.unstable, upper - lower, torch.ones_like(lower))
        self.d = torch.where(self.unstable, upper / width, active)
        # the chord is d·z + intercept, intercept = −d·ℓ ≥ 0 on unstable neurons
        self.intercept = torch.where(self.unstable, -self.d * lower, torch.zeros_like(lower))
        if rule == PARALLEL:
            self.alpha = self.d
        else:
            self.alpha = torch.where(self.unstable, (upper > -lower).to(lower.dtype), active)

    @property
    def parallel(self) -> bool:
        return self.rule == PARALLEL

    def backward(self, lam: torch.Tensor):
        """Push coefficients Λ on the ReLU's output ([b, m, *shape]) to its input.

        Returns (Λ_in, lo, hi): the constants added to a lower and (for the
        parallel rule only, else None) an upper bound of Λᵀ·relu(z), each [b', m].
        """
        w = self.intercept.reshape(self.intercept.shape[0], -1, 1)
        return relax_backward(lam, self.d.unsqueeze(1), self.alpha.unsqueeze(1),
                              lambda t: (t.flatten(2) @ w).squeeze(-1), self.parallel)


def relax_backward(lam, d, alpha, contract, parallel: bool):
    """The relaxation step shared by dense and patch coefficients.

    `d`, `alpha` broadcast against Λ; `contract(t)` is ⟨t, w⟩ per specification with
    the chord intercepts w ≥ 0 laid out like Λ.
    """
    if parallel:
        # Σ w·min(λ, 0) and Σ w·max(λ, 0) from ⟨λ, w⟩ and ⟨|λ|, w⟩: two contractions
        # instead of two clamped copies of λ
        total, size = contract(lam), contract(lam.abs())
        return d * lam, (total - size) / 2, (total + size) / 2
    neg = lam.clamp(max=0)
    return alpha * (lam - neg) + d * neg, contract(neg), None
