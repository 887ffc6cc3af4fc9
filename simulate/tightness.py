"""How loose a training method's relaxation is on a trained model: the mean certified-margin gap.

For each test point, the gap is (the margin at the attack's point) − (the relaxation's certified lower
bound on the margin), both min over the wrong classes. With the exact line search (the linear
experiment's e₁ threat, spheres' `--k` directions) the first term is the exact worst-case margin, so
the gap is the relaxation's looseness exactly; with an attack (Auto-PGD on ℓp balls) it is an upper
bound on the worst case, so the gap over-states the looseness by the attack's own slack. Sound bounds
make every gap ≥ 0 (checked: a negative gap beyond rounding raises).

The bound is the one the method trains with (`realdata.methods.CERTIFIED_METHODS`); methods that train
on no relaxation (ST, AT) get None: the harm-against-tightness figure puts AT at looseness 0 by
definition and leaves ST out.
"""
from __future__ import annotations

import copy

import torch

from realdata.attacks import run_attack
from realdata.bounds import margin_lower_bounds
from realdata.methods import CERTIFIED_METHODS, logit_margins

#: At most this many test points enter the measure (the first ones): an estimate of a mean, not a census.
MAX_POINTS = 2000
#: Gaps below −TOL·(1 + |margin|) mean an unsound bound or attack.
TOL = 1e-5


def _worst_other(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """min over j ≠ y of a [B, C] margin table whose entry y is 0."""
    masked = margins.clone()
    masked[torch.arange(len(y)), y] = torch.inf
    return masked.amin(1)


def certified_margin_gap(model, x, y, threat, bound: str, attack: str, batch_size: int = 1000,
                         **attack_options) -> float:
    """Mean over the first `MAX_POINTS` points of (attack-point margin − certified margin) for `bound`."""
    model = copy.deepcopy(model).eval()
    x, y = x[:MAX_POINTS], y[:MAX_POINTS]
    gaps = []
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        x_adv = run_attack(attack, model, xb, yb, threat, **attack_options)
        with torch.no_grad():
            found = _worst_other(logit_margins(model(x_adv), yb), yb)
            certified = _worst_other(margin_lower_bounds(model, xb, yb, threat, bound), yb)
        gap = found - certified
        if torch.any(gap < -TOL * (1 + found.abs())):
            raise RuntimeError(f"{bound} certifies a larger margin than {attack} finds: an unsound bound or attack.")
        gaps.append(gap.clamp(min=0))
    return float(torch.cat(gaps).mean())


def tightness(method: str, model, x, y, threat, attack: str, **attack_options) -> dict:
    """The record's metrics: `tightness` (the mean gap; None without a bound), `tightness_bound`,
    `tightness_attack`, `tightness_points`."""
    bound = CERTIFIED_METHODS.get(method)
    gap = None if bound is None else certified_margin_gap(model, x, y, threat, bound, attack, **attack_options)
    return {"tightness": gap, "tightness_bound": bound, "tightness_attack": attack,
            "tightness_points": min(len(y), MAX_POINTS)}
