"""Linear relaxations of one ReLU layer given its pre-activation bounds [ℓ, u].

Every stable neuron is exact (slope 1 when ℓ ≥ 0, slope 0 when u ≤ 0).  An
unstable neuron (ℓ < 0 < u, `unstable_mask`) is bounded above by the chord
d·(z − ℓ) with d = u/(u − ℓ) and below by a line α·z through the origin.  The base
class `ReluRelaxation` owns the chord and every propagation step; a subclass only
says how the lower slope α is chosen:

* `ParallelSlope` — α = d, the Wong–Kolter dual (COAP).  The two lines are
  parallel, so relu(z) = d·z + s with a slack s ∈ [0, −d·ℓ]; one propagation then
  bounds a linear function from both sides, and the dual network can be pushed
  forward (`forward_step`).
* `AdaptiveSlope` — α = 1 if u > −ℓ else 0, CROWN's rule (the smaller-area triangle).

The seam for optimised slopes (α-CROWN): every step asks `slopes(spec)` for the
lower slopes, broadcastable against the coefficients [b, m, *shape] of the
specification block `spec` being propagated (`Spec`: which ReLU layer or the
output, and which rows of it).  The base answers the same α for every row; a
subclass may keep one slope tensor per neuron and per specification (initialised
from CROWN's) that an optimiser updates between propagations.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def unstable_mask(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """The one definition of an unstable ReLU: ℓ < 0 < u (a neuron with ℓ = 0 or u = 0 is
    linear on its whole range)."""
    return (lower < 0) & (upper > 0)


@dataclass(frozen=True)
class Spec:
    """Which specification block a propagation serves: the input of ReLU layer `target`
    (None: the output margins), its rows `start:stop` (None: all) and their sign: +1 or
    −1 when the block holds one side of the rows (the patch passes), None when it holds
    both, [rows; −rows] (the dense passes of a one-sided rule)."""

    target: int | None = None
    start: int | None = None
    stop: int | None = None
    sign: float | None = None


class ReluRelaxation:
    """Upper chord d·(z − ℓ), lower line α·z; subclasses choose α in `lower_slope`."""

    #: one propagation bounds both sides (the lower line is parallel to the chord)
    two_sided = False
    #: the relaxation can be pushed forward as a dual network (`forward_step`)
    forward_capable = False

    def __init__(self, lower: torch.Tensor, upper: torch.Tensor):
        self.lower, self.upper = lower, upper
        # masks carry no gradient; the slopes and intercepts do (as in Wong & Kolter's training)
        self.unstable = unstable_mask(lower, upper).detach()
        self.active = (lower >= 0).detach().to(lower.dtype)
        width = torch.where(self.unstable, upper - lower, torch.ones_like(lower))
        self.d = torch.where(self.unstable, upper / width, self.active)
        # the chord is d·z + intercept, intercept = −d·ℓ ≥ 0 on unstable neurons
        self.intercept = torch.where(self.unstable, -self.d * lower, torch.zeros_like(lower))
        self.alpha = torch.where(self.unstable, self.lower_slope(), self.active)

    @classmethod
    def build(cls, bounds: list, state=None) -> list:
        """The relaxation of every ReLU layer, given each layer's (ℓ, u).  `state` is what a
        relaxation keeps between propagations (the optimised slopes); fixed rules have none."""
        return [cls(lo, up) for lo, up in bounds]

    @classmethod
    def output_lower(cls, engine, spec: torch.Tensor) -> torch.Tensor:
        """Lower bounds of the output specification [B, m, *out] → [B, m]: one propagation with
        this relaxation at the engine's pre-activation bounds.  A rule that optimises its
        slopes runs its optimisation here instead."""
        return engine.linear_output(engine.preactivation_bounds(), spec)

    def lower_slope(self) -> torch.Tensor:
        """α of the unstable neurons, shaped like ℓ (read only where unstable)."""
        raise NotImplementedError

    def slopes(self, spec: Spec | None, lam: torch.Tensor) -> torch.Tensor:
        """Lower slopes for the coefficients Λ [b, m, *shape] of `spec`, broadcastable against Λ."""
        return self.alpha.unsqueeze(1)

    # -- backward steps ---------------------------------------------------
    def backward(self, lam: torch.Tensor, spec: Spec | None = None):
        """Push coefficients Λ on the ReLU's output ([b, m, *shape]) to its input.

        Returns (Λ_in, lo, hi): the constants added to a lower and (when `two_sided`,
        else None) an upper bound of Λᵀ·relu(z), each [b', m].
        """
        w = self.intercept.reshape(self.intercept.shape[0], -1, 1)
        return self._step(lam, self.d.unsqueeze(1), lambda: self.slopes(spec, lam),
                          lambda t: (t.flatten(2) @ w).squeeze(-1))

    def patch_backward(self, patch, spec: Spec | None = None):
        """The same step on patches: each neuron's window of d, α and the intercepts."""
        w = patch.grab(self.intercept)
        return self._step(patch.values, patch.grab(self.d), lambda: self._patch_slopes(patch, spec),
                          lambda t: (t * w).flatten(2).sum(-1))

    def _patch_slopes(self, patch, spec):
        return patch.grab(self.alpha)

    def _step(self, lam, d, alpha, contract):
        """One-sided: the chord takes the negative coefficients, the lower line the positive ones.
        `alpha()` gives the lower slopes laid out like Λ; `contract(t)` is ⟨t, w⟩ per
        specification with the chord intercepts w ≥ 0 laid out like Λ."""
        neg = lam.clamp(max=0)
        return alpha() * (lam - neg) + d * neg, contract(neg), None


class ParallelSlope(ReluRelaxation):
    """COAP (Wong & Kolter 2018): α = d = u/(u − ℓ)."""

    two_sided = True
    forward_capable = True

    def lower_slope(self):
        return self.d

    def _step(self, lam, d, alpha, contract):
        # Σ w·min(λ, 0) and Σ w·max(λ, 0) from ⟨λ, w⟩ and ⟨|λ|, w⟩: two contractions
        # instead of two clamped copies of λ
        total, size = contract(lam), contract(lam.abs())
        return d * lam, (total - size) / 2, (total + size) / 2

    def forward_step(self, centre: torch.Tensor, cols: list) -> torch.Tensor:
        """relu(z) = d·z + s: scale every column group (in place) and the centre."""
        for g in cols:
            g.cols = self.d.unsqueeze(1) * g.cols
        return self.d * centre

    def unstable_count(self) -> int:
        """The largest number of unstable neurons of one example."""
        return int(self.unstable.reshape(self.d.shape[0], -1).sum(1).max())

    def slack_columns(self) -> torch.Tensor | None:
        """One column w_j·e_j per unstable neuron j, padded to the batch's largest count → [B, n, *shape]."""
        B = self.d.shape[0]
        mask = self.unstable.reshape(B, -1)
        n = self.unstable_count()
        if n == 0:
            return None
        rank = mask.long().cumsum(1) - 1
        b_idx, j_idx = mask.nonzero(as_tuple=True)
        w = self.intercept.reshape(B, -1)[b_idx, j_idx]
        cols = self.d.new_zeros(B, n, mask.shape[1]).index_put((b_idx, rank[b_idx, j_idx], j_idx), w)
        return cols.reshape((B, n) + tuple(self.d.shape[1:]))


class AdaptiveSlope(ReluRelaxation):
    """CROWN (Zhang et al. 2018): α = 1 if u > −ℓ else 0."""

    def lower_slope(self):
        return (self.upper > -self.lower).to(self.lower.dtype)
