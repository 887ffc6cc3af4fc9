"""Training objectives: one loss per training method, and the schedules they follow.

* ``st``        — cross-entropy on clean inputs (standard training).
* ``at``        — cross-entropy on adversarial inputs (Madry et al. 2018): the inner maximum
  is approximated by a first-order attack (Auto-PGD, 10 steps, by default), a *lower*
  bound on the worst-case loss.
* ``coap``      — Wong & Kolter's robust loss: cross-entropy on minus the dual (convex outer
  adversarial polytope) lower bounds of the margins, an *upper* bound on the worst-case loss;
  exact, or with random projections (``proj``) for the ℓ1/ℓ2 norm estimates.
* ``crown-ibp`` — Zhang et al. 2020: margins bounded by β·CROWN + (1−β)·IBP, mixed with the
  clean loss as κ·CE(clean) + (1−κ)·robust loss.
* ``ibp``       — the same with interval bounds only (β = 0).

The bounds come from `realdata.bounds` and the attacks from `realdata.attacks`; this module
only decides which objective a method trains on and how ε, β and κ evolve during training.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from realdata.errors import UserError
from realdata.threats import Threat

TRAIN_METHODS = ("st", "at", "coap", "crown-ibp", "ibp")

#: Methods that train on a convex-relaxation upper bound, and the bound each one uses.
CERTIFIED_METHODS = {"coap": "coap", "crown-ibp": "crown-ibp", "ibp": "ibp"}

#: Attacks AT can train with (names of `realdata.attacks.run_attack`).
TRAIN_ATTACKS = ("apgd", "pgd", "line-search")


def check_method(method: str) -> str:
    if method not in TRAIN_METHODS:
        raise UserError(f"unknown training method {method!r}; choose one of {', '.join(TRAIN_METHODS)}.")
    return method


@dataclass(frozen=True)
class StepState:
    """What a training step needs from the schedule: the budget and the bound weights."""

    eps: float
    beta: float = 1.0   # weight of CROWN against IBP (crown-ibp only)
    kappa: float = 0.0  # weight of the clean loss against the robust loss (crown-ibp, ibp)


@dataclass(frozen=True)
class Schedule:
    """ε, β and κ as functions of training progress t (in epochs, fractional within an epoch).

    Warm-up: for t < warmup the budget is 0 (CROWN-IBP trains clean first).  Then ε ramps
    linearly from ``eps_start`` to the target over ``ramp`` epochs (Wong et al. ramp from
    0.001 or 0.01; CROWN-IBP from 0), and β and κ move with it from their start to their end
    values.  Ramping per step rather than per epoch keeps short (CPU) runs smooth; with many
    batches per epoch the two agree.
    """

    warmup: float = 0.0
    ramp: float = 0.0
    eps_start: float = 0.0
    beta_start: float = 1.0
    beta_end: float = 0.0
    kappa_start: float = 0.0
    kappa_end: float = 0.0

    def progress(self, t: float) -> float:
        """Fraction of the ramp completed at time t, in [0, 1]; −1 during the warm-up."""
        if t < self.warmup:
            return -1.0
        if self.ramp <= 0:
            return 1.0
        return min(1.0, (t - self.warmup) / self.ramp)

    def at(self, t: float, eps: float) -> StepState:
        p = self.progress(t)
        if p < 0:
            return StepState(eps=0.0, beta=self.beta_start, kappa=self.kappa_start)
        start = min(self.eps_start, eps)
        return StepState(eps=start + p * (eps - start),
                         beta=self.beta_start + p * (self.beta_end - self.beta_start),
                         kappa=self.kappa_start + p * (self.kappa_end - self.kappa_start))


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """Parameters without gradients while attacking: the attack needs only ∂loss/∂x,
    and building the parameter graph would double its cost and pollute `.grad`."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def adversarial_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: Threat, *,
                       attack: str = "apgd", steps: int = 10, restarts: int = 1, box=None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The training attack of AT: Auto-PGD on the cross-entropy (the paper's), PGD-k, or the exact
    worst case along each segment of a one-dimensional threat (`line-search`; the 2022 paper's AT on
    the linear distribution, and stronger than Auto-PGD on `Directions`)."""
    from realdata import attacks

    if threat.eps == 0:
        return x
    if attack not in TRAIN_ATTACKS:
        raise UserError(f"unknown training attack {attack!r}; choose one of {', '.join(TRAIN_ATTACKS)}.")
    with _frozen(model):
        if attack == "apgd":
            x_adv = attacks.apgd(model, x, y, threat, steps=steps, restarts=restarts, loss="ce", box=box,
                                 generator=generator)
        elif attack == "pgd":
            x_adv = attacks.pgd(model, x, y, threat, steps=steps, restarts=restarts, box=box, loss="ce",
                                generator=generator)
        else:
            x_adv = attacks.line_search(model, x, y, threat, box=box)
    return x_adv.detach()


def training_loss(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: Threat, *,
                  beta: float = 1.0, kappa: float = 0.0, attack: str = "apgd", attack_steps: int = 10,
                  attack_restarts: int = 1, proj: int | None = None, box=None,
                  generator: torch.Generator | None = None, chunk_size: int | None = None):
    """The objective `method` minimises on one batch → (loss, error).

    `loss` is a scalar mean over the batch, differentiable in the model's parameters.
    `error` is the fraction of the batch the objective counts as wrong: clean errors (st),
    errors on the attacked inputs (at), or inputs whose bound does not certify the label
    (coap, crown-ibp, ibp).  `threat` carries the current (possibly ramped) budget.
    """
    check_method(method)
    if method == "st" or (method == "at" and threat.eps == 0):
        logits = model(x)
        return F.cross_entropy(logits, y), _error(logits, y)
    if method == "at":
        x_adv = adversarial_inputs(model, x, y, threat, attack=attack, steps=attack_steps,
                                   restarts=attack_restarts, box=box, generator=generator)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), _error(logits, y)

    from realdata import bounds

    options = {}
    if chunk_size is not None:
        options["chunk_size"] = chunk_size
    if method == "coap":
        if proj is not None:
            options["generator"] = generator  # the projections are drawn from the run's stream: resumable
        robust, cert_error = bounds.robust_loss(model, x, y, threat, "coap", proj=proj, **options)
        return robust, _as_float(cert_error)
    if method == "ibp":
        robust, cert_error = bounds.robust_loss(model, x, y, threat, "ibp", **options)
    else:
        robust, cert_error = bounds.robust_loss(model, x, y, threat, "crown-ibp", beta=beta, **options)
    if kappa > 0:
        robust = kappa * F.cross_entropy(model(x), y) + (1 - kappa) * robust
    return robust, _as_float(cert_error)


def _error(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) != y).float().mean().item()


def _as_float(value) -> float:
    return value.item() if isinstance(value, torch.Tensor) else float(value)
