"""α-CROWN: lower slopes optimised per neuron and per specification (Xu et al. 2021).

CROWN's lower line α·z of an unstable ReLU is valid for any α ∈ [0, 1], and the
best α differs from one bounded quantity to the next.  `OptimisedSlope` keeps one
free slope per unstable neuron of every ReLU layer for every specification it
serves — each output margin, and each side of each neuron of every later ReLU
layer whose bounds it enters — initialised from CROWN's rule, and improves them by
projected Adam on the sum of the output margins' lower bounds, as auto_LiRPA's
optimised CROWN does (`optimized_bounds.py`: Adam, step decay 0.98, α clipped to
[0, 1], the intermediate layers recomputed with their own slopes at every step).

Every iterate is a valid bound, so the result is the elementwise best over the
iterates — never looser than CROWN, which is the first one — and the
pre-activation bounds are likewise the tightest seen.  The last iterate is
computed in the caller's autograd mode: in training its graph reaches the weights,
and the returned bound carries its gradient (the best value is added as a
constant, so where an earlier iterate was better the value is that iterate's and
the gradient the last one's).
"""
from __future__ import annotations

import contextlib

import torch

from realdata.relaxation.relus import AdaptiveSlope, Spec

#: auto_LiRPA's defaults (optimize_bound_args: iteration 20, lr_alpha 0.5, lr_decay 0.98 per step)
ITERATIONS = 20
STEP_SIZE = 0.5
STEP_DECAY = 0.98


class FreeSlopes:
    """The optimised slopes: one tensor per (ReLU layer, specification block), laid out like
    the coefficients they multiply ([B, m, *shape] dense, [B, m, C, K, K] patches) and
    created on first use from CROWN's slopes."""

    def __init__(self):
        self.tensors = {}

    def get(self, key, initial) -> torch.Tensor:
        t = self.tensors.get(key)
        if t is None:
            t = initial().detach().clone().requires_grad_(True)
            self.tensors[key] = t
        return t

    def parameters(self) -> list:
        return list(self.tensors.values())


class OptimisedSlope(AdaptiveSlope):
    """α-CROWN: the lower slope of each unstable neuron is a free variable per specification.

    Without free slopes (the pre-activation bounds asked for alone) it is CROWN."""

    def __init__(self, lower, upper, index: int | None = None, free: FreeSlopes | None = None):
        super().__init__(lower, upper)
        self.index, self.free = index, free

    @classmethod
    def build(cls, bounds, state=None):
        return [cls(lo, up, j, state) for j, (lo, up) in enumerate(bounds)]

    def slopes(self, spec: Spec | None, lam: torch.Tensor) -> torch.Tensor:
        if self.free is None:
            return super().slopes(spec, lam)
        shape = (self.lower.shape[0], lam.shape[1]) + tuple(self.lower.shape[1:])
        alpha = self.free.get((self.index, spec), lambda: self.alpha.unsqueeze(1).expand(shape))
        # stable neurons keep their exact slope (d is 1 or 0 there)
        return torch.where(self.unstable.unsqueeze(1), alpha, self.d.unsqueeze(1))

    def _patch_slopes(self, patch, spec):
        if self.free is None:
            return super()._patch_slopes(patch, spec)
        alpha = self.free.get((self.index, spec), lambda: patch.grab(self.alpha))
        unstable = patch.grab(self.unstable.to(self.d.dtype)) > 0
        return torch.where(unstable, alpha, patch.grab(self.d))

    @classmethod
    def output_lower(cls, engine, spec: torch.Tensor) -> torch.Tensor:
        """Projected Adam on the slopes for `engine.iterations` bound evaluations (the last one
        takes no step), step size `engine.step_size`; the best iterate elementwise."""
        free = FreeSlopes()
        best = tightest = optimiser = None
        for i in range(engine.iterations):
            last = i == engine.iterations - 1
            # the slopes need gradients even under no_grad (evaluation); the last pass is the caller's
            with contextlib.nullcontext() if last else torch.enable_grad():
                bounds = engine.linear_preactivations(free)
                lower = engine.linear_output(bounds, spec, free)
                loss = -lower.sum()
            best = lower.detach() if best is None else torch.maximum(best, lower.detach())
            tightest = _tighter(tightest, bounds)
            params = free.parameters()
            if last or not params:  # nothing unstable: CROWN is exact in its relaxation
                break
            if optimiser is None:
                optimiser = torch.optim.Adam(params, lr=engine.step_size)
                schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, STEP_DECAY)
            for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
                p.grad = g
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                for p in params:
                    p.clamp_(0, 1)
        engine.set_preactivation_bounds(tightest)
        return lower + (best - lower).clamp(min=0).detach()


def _tighter(previous, bounds: list) -> list:
    """The elementwise tighter of two lists of (lower, upper) pre-activation bounds."""
    bounds = [(lo.detach(), up.detach()) for lo, up in bounds]
    if previous is None:
        return bounds
    return [(torch.maximum(lo, plo), torch.minimum(up, pup)) for (lo, up), (plo, pup) in zip(bounds, previous)]
