"""Training objectives: one registered loss per training method, and the schedules they follow.

`METHODS` is the one registry; every list of method names (CLI choices, recipes, sweeps,
figures) derives from it.  Each entry says which relaxation the method trains on (its
*own bound*, used for its certified error) and computes (loss, error) on one batch:

* ``st``        — cross-entropy on clean inputs (standard training).
* ``at``        — cross-entropy on adversarial inputs (Madry et al. 2018): the inner maximum
  is approximated by a first-order attack (Auto-PGD, 10 steps, by default), a *lower*
  bound on the worst-case loss.
* ``coap``      — Wong & Kolter's robust loss: cross-entropy on minus the dual (convex outer
  adversarial polytope) lower bounds of the margins, an *upper* bound on the worst-case loss;
  exact, or with random projections (``proj``) for the ℓ1/ℓ2 norm estimates.
* ``crown-ibp`` — Zhang et al. 2020: margins bounded by β·CROWN + (1−β)·IBP.
* ``ibp``       — the same with interval bounds only (β = 0).
* ``crown``     — the same with CROWN bounds only (every layer linearly bounded; costly).
* ``alpha-crown`` — the same with α-CROWN bounds (CROWN's lower slopes optimised per neuron and
  specification; costlier still: small models, synthetic data).
* ``fast-ibp``  — Shi et al. 2021: IBP with the IBP initialisation and the warm-up
  regularisers (`ibp_init`, `warmup_regulariser`; both are options of every method, the
  fast-ibp recipes switch them on).
* ``mtl-ibp``   — De Palma et al. 2024: (1−α)·CE(adversarial point) + α·(IBP robust loss).
* ``cc-ibp``    — De Palma et al. 2024: the robust cross-entropy of the margins
  α·(IBP lower bound) + (1−α)·(margin at the adversarial point).
* ``taps``      — Mao et al. 2023: IBP through the feature extractor to a latent box, PGD inside
  it through the last ``taps_split`` ReLU layers, the gradient connector back to the box, loss
  L_TAPS·L_IBP with L_TAPS's gradient scaled (`realdata.taps`; IBP alone while ε ramps).
* ``sabr``      — Müller et al. 2023: IBP over a small region of radius τ = λ·ε centred on
  the attack's point pulled into the ball of radius ε − τ, so the region lies in the threat
  set.  The region has the threat's own geometry: a box for ℓ∞ (as published), an ℓ2 ball
  for ℓ2.  The ℓ2 ball's interval propagation is sound — its first affine layer is bounded
  exactly by the ℓ2 support function, later layers by intervals — and the small ball
  lies inside the full one by the triangle inequality (the centre is within ε − τ of x).
  For `Directions` the region lies in the set's convex hull, which is what every bound
  certifies anyway.

Every robust loss is mixed with the clean loss as κ·CE(clean) + (1−κ)·loss (κ follows the
schedule; 0 unless a recipe ramps it).  At ε = 0 (a warm-up) every method trains on the clean
cross-entropy, the common limit of all of them.

The bounds come from `realdata.bounds` and the attacks from `realdata.attacks`; this module
only decides which objective a method trains on and how ε, β and κ evolve during training.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, fields
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from realdata.errors import UserError
from realdata.threats import Threat

#: Attacks AT (and the methods built on an adversarial point) can train with: the training
#: name (a TrainConfig `attack`) → the `realdata.attacks.ATTACKS` entry it runs.  AT's "apgd"
#: is Auto-PGD on the cross-entropy, the registry's "apgd-ce" (evaluation's "apgd" adds DLR).
TRAIN_ATTACKS = {"apgd": "apgd-ce", "pgd": "pgd", "line-search": "line-search"}

#: Shapes of the ε ramp: linear, or auto_LiRPA's SmoothedScheduler (a power law that joins a
#: linear ramp with a continuous slope at `SMOOTH_MID` of the ramp; FAST-IBP, SABR, MTL-IBP).
EPS_SHAPES = ("linear", "smoothed")
SMOOTH_MID, SMOOTH_POWER = 0.25, 4.0

#: Shi et al.'s tolerance τ of both warm-up regularisers, and the budget their bounds are
#: taken at while ε is still 0 (their `tol` and `min_eps_reg`).
REG_TOL, REG_MIN_EPS = 0.5, 1e-6


@dataclass(frozen=True)
class StepState:
    """What a training step needs from the schedule: the budget and the bound weights."""

    eps: float
    beta: float = 1.0   # weight of CROWN against IBP (crown-ibp only)
    kappa: float = 0.0  # weight of the clean loss against the robust loss


def smoothed_progress(p: float, mid: float = SMOOTH_MID, power: float = SMOOTH_POWER) -> float:
    """auto_LiRPA's SmoothedScheduler as a fraction of the budget at ramp progress p ∈ [0, 1].

    a·p^k up to p = mid, then the straight line to (1, 1); a is chosen so the slopes agree at
    mid: a·k·mid^(k−1) = (1 − a·mid^k)/(1 − mid), i.e. a = 1/(mid^(k−1)·(k(1 − mid) + mid)).
    """
    p = min(max(p, 0.0), 1.0)
    a = 1.0 / (mid ** (power - 1) * (power * (1 - mid) + mid))
    if p < mid:
        return a * p ** power
    at_mid = a * mid ** power
    return at_mid + (1 - at_mid) * (p - mid) / (1 - mid)


@dataclass(frozen=True)
class Schedule:
    """ε, β and κ as functions of training progress t (in epochs, fractional within an epoch).

    Warm-up: for t < warmup the budget is 0 (CROWN-IBP trains clean first).  Then ε ramps
    from ``eps_start`` to the target over ``ramp`` epochs — linearly (Wong et al. ramp from
    0.001 or 0.01; CROWN-IBP from 0) or along `smoothed_progress` (``shape="smoothed"``) —
    and β and κ move linearly with it from their start to their end values.  Ramping per
    step rather than per epoch keeps short (CPU) runs smooth; with many batches per epoch
    the two agree.
    """

    warmup: float = 0.0
    ramp: float = 0.0
    eps_start: float = 0.0
    beta_start: float = 1.0
    beta_end: float = 0.0
    kappa_start: float = 0.0
    kappa_end: float = 0.0
    shape: str = "linear"

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
        q = smoothed_progress(p) if self.shape == "smoothed" else p
        return StepState(eps=start + q * (eps - start),
                         beta=self.beta_start + p * (self.beta_end - self.beta_start),
                         kappa=self.kappa_start + p * (self.kappa_end - self.kappa_start))


@dataclass(frozen=True)
class LossOptions:
    """Everything a method's loss may use beyond (model, x, y, threat); defaults are neutral."""

    beta: float = 1.0                 # crown-ibp: weight of CROWN against IBP
    kappa: float = 0.0                # weight of the clean loss against the robust loss
    attack: str = "apgd"              # training attack (at, mtl-ibp, cc-ibp, sabr)
    attack_steps: int = 10
    attack_restarts: int = 1
    attack_eps_factor: float = 1.0    # mtl-ibp, cc-ibp: the attack's budget as a multiple of ε
    proj: int | None = None           # coap: random projections
    ibp_coef: float = 0.5             # mtl-ibp, cc-ibp: α, the weight of the IBP part
    sabr_lambda: float = 0.4          # sabr: λ, the small region's radius over ε
    taps_split: int = 1               # taps: ReLU layers in the classifier (published CNN7: 1)
    taps_grad_scale: float = 5.0      # taps: w, the scale of L_TAPS's gradient against L_IBP's
    taps_soft_thre: float = 0.5       # taps: c, the soft threshold of the gradient connector
    reg_lambda: float = 0.0           # weight of Shi et al.'s warm-up regularisers
    full_eps: float | None = None     # the target budget (the regularisers fade as ε reaches it)
    l1: float = 0.0                   # L1 penalty on the Linear/Conv weights
    box: tuple | None = None
    generator: torch.Generator | None = None
    chunk_size: int | None = None
    alpha_iterations: int | None = None   # alpha-crown: slope-optimisation steps (None: the bounds' default)
    alpha_step_size: float | None = None
    checked: bool = False             # the inputs were validated already (training: once per run)


@dataclass(frozen=True)
class TrainMethod:
    """One training method: its name, one line for --help and docs, the relaxation it trains
    on (None: none; its certified error then uses the tightest bound) and its loss
    `loss(model, x, y, threat, options) -> (loss, error)` at a positive budget."""

    name: str
    summary: str
    loss: Callable
    bound: str | None = None
    paper: bool = False   # one of the five methods the paper compares (the sweep's default grid)
    check: Callable | None = None  # check(model, options): UserError when the model does not fit the options


# --------------------------------------------------------------------------- building blocks

@contextlib.contextmanager
def _attacking(model: nn.Module):
    """Parameters without gradients and layers in eval mode while attacking: the attack needs
    only ∂loss/∂x (the parameter graph would double its cost and pollute `.grad`), and
    BatchNorm must neither use nor update batch statistics of adversarial points (the
    convention of SABR, MTL-IBP and CTBench)."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def adversarial_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: Threat, *,
                       attack: str = "apgd", steps: int = 10, restarts: int = 1, box=None,
                       generator: torch.Generator | None = None, checked: bool = False) -> torch.Tensor:
    """The training attack of AT: Auto-PGD on the cross-entropy (the paper's), PGD-k, or the exact
    worst case along each segment of a one-dimensional threat (`line-search`; the 2022 paper's AT on
    the linear distribution, and stronger than Auto-PGD on `Directions`).  `checked`: the caller has
    validated the inputs (`attacks.check_attack_input`) already, so the attack skips its check and
    its host syncs (training checks its data once per run)."""
    from realdata import attacks

    if threat.eps == 0:
        return x
    if attack not in TRAIN_ATTACKS:
        raise UserError(f"unknown training attack {attack!r}; choose one of {', '.join(TRAIN_ATTACKS)}.")
    name = TRAIN_ATTACKS[attack]
    options = attacks.attack_options(name, steps=steps, restarts=restarts, box=box, generator=generator,
                                     check=not checked)
    with _attacking(model):
        x_adv = attacks.run_attack(name, model, x, y, threat, **options)
    return x_adv.detach()


def _attack(model, x, y, threat: Threat, o: LossOptions) -> torch.Tensor:
    return adversarial_inputs(model, x, y, threat, attack=o.attack, steps=o.attack_steps,
                              restarts=o.attack_restarts, box=o.box, generator=o.generator, checked=o.checked)


def _margin_bounds(model, x, y, threat: Threat, method: str, o: LossOptions, **extra) -> torch.Tensor:
    from realdata import bounds

    options = dict(extra)
    if o.chunk_size is not None:
        options["chunk_size"] = o.chunk_size
    return bounds.margin_lower_bounds(model, x, y, threat, method, **options)


def margin_loss(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wong & Kolter's robust cross-entropy of margin lower bounds m ([B, C], m_y = 0): CE(−m, y)."""
    return F.cross_entropy(-margins, y)


def margin_error(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose margins (other than the label's) are not all positive (a 0-d tensor)."""
    others = margins.scatter(1, y.unsqueeze(1), float("inf"))
    return (others <= 0).any(1).double().mean().detach()


def logit_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f_y − f_j for every class j ([B, C]; entry y is 0), the exact margins at a point."""
    return logits.gather(1, y.unsqueeze(1)) - logits


def _error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) != y).float().mean().detach()


# --------------------------------------------------------------------------- the losses

def _standard(model, x, y, threat, o):
    logits = model(x)
    return F.cross_entropy(logits, y), _error(logits, y)


def _adversarial(model, x, y, threat, o):
    logits = model(_attack(model, x, y, threat, o))
    return F.cross_entropy(logits, y), _error(logits, y)


def _coap(model, x, y, threat, o):
    extra = {"proj": o.proj, "generator": o.generator} if o.proj is not None else {}  # the run's stream: resumable
    margins = _margin_bounds(model, x, y, threat, "coap", o, **extra)
    return margin_loss(margins, y), margin_error(margins, y)


def _crown_ibp(model, x, y, threat, o):
    margins = _margin_bounds(model, x, y, threat, "crown-ibp", o, beta=o.beta)
    return margin_loss(margins, y), margin_error(margins, y)


def _plain_bound(method: str):
    def loss(model, x, y, threat, o):
        extra = {}
        if method == "alpha-crown":
            extra = {k: v for k, v in (("iterations", o.alpha_iterations), ("step_size", o.alpha_step_size))
                     if v is not None}
        margins = _margin_bounds(model, x, y, threat, method, o, **extra)
        return margin_loss(margins, y), margin_error(margins, y)
    return loss


def _expressive_parts(model, x, y, threat, o):
    """The adversarial logits (attack budget attack_eps_factor·ε, as expressive-losses'
    `attack_eps_factor`) and the IBP margin lower bounds over the threat set."""
    x_adv = _attack(model, x, y, threat.with_eps(threat.eps * o.attack_eps_factor), o)
    return model(x_adv), _margin_bounds(model, x, y, threat, "ibp", o)


def _mtl_ibp(model, x, y, threat, o):
    """(1−α)·CE(f(x_adv), y) + α·CE(−m_IBP, y); error: the adversarial point's."""
    logits, margins = _expressive_parts(model, x, y, threat, o)
    a = o.ibp_coef
    return (1 - a) * F.cross_entropy(logits, y) + a * margin_loss(margins, y), _error(logits, y)


def _cc_ibp(model, x, y, threat, o):
    """CE(−z, y) with z = α·m_IBP + (1−α)·(f_y − f_j)(x_adv); error: rows with some z_j ≤ 0."""
    logits, margins = _expressive_parts(model, x, y, threat, o)
    a = o.ibp_coef
    z = a * margins + (1 - a) * logit_margins(logits, y)
    return margin_loss(z, y), margin_error(z, y)


def sabr_region(x: torch.Tensor, x_adv: torch.Tensor, threat: Threat, lam: float) -> tuple[torch.Tensor, Threat]:
    """SABR's small region (centre, threat of radius τ = λε): the attack's point pulled into
    x + S(ε − τ), so that centre + S(τ) ⊆ x + S(ε) for every norm ball (triangle inequality);
    for ℓ∞ this is SABR's clamp(x_adv, x − ε + τ, x + ε − τ)."""
    tau = lam * threat.eps
    centre = x + threat.with_eps(threat.eps - tau).project(x_adv - x)
    return centre, threat.with_eps(tau)


def _sabr(model, x, y, threat, o):
    centre, small = sabr_region(x, _attack(model, x, y, threat, o), threat, o.sabr_lambda)
    if small.eps == 0:  # λ = 0: the region is the attack's point itself
        logits = model(centre)
        return F.cross_entropy(logits, y), _error(logits, y)
    margins = _margin_bounds(model, centre, y, small, "ibp", o)
    return margin_loss(margins, y), margin_error(margins, y)


def _taps(model, x, y, threat, o):
    from realdata import taps  # taps builds on this module's margin losses

    return taps.taps_loss(model, x, y, threat, o)


def _taps_check(model, o):
    from realdata import taps

    taps.split_layer(model, o.taps_split)


METHODS: dict[str, TrainMethod] = {m.name: m for m in (
    TrainMethod("st", "standard training: cross-entropy on clean inputs", _standard, paper=True),
    TrainMethod("at", "adversarial training: cross-entropy at the training attack's point", _adversarial, paper=True),
    TrainMethod("coap", "Wong & Kolter's convex outer adversarial polytope bound", _coap, bound="coap", paper=True),
    TrainMethod("crown-ibp", "β·CROWN + (1−β)·IBP bounds (Zhang et al. 2020)", _crown_ibp, bound="crown-ibp",
                paper=True),
    TrainMethod("ibp", "interval bound propagation (Gowal et al. 2018)", _plain_bound("ibp"), bound="ibp", paper=True),
    TrainMethod("crown", "CROWN bounds at every layer (expensive: small models)", _plain_bound("crown"), bound="crown"),
    TrainMethod("alpha-crown", "α-CROWN bounds, slopes optimised (Xu et al. 2021; most expensive: small models)",
                _plain_bound("alpha-crown"), bound="alpha-crown"),
    TrainMethod("fast-ibp", "IBP with IBP initialisation and warm-up regularisers (Shi et al. 2021)",
                _plain_bound("ibp"), bound="ibp"),
    TrainMethod("mtl-ibp", "(1−α)·adversarial + α·IBP loss (De Palma et al. 2024)", _mtl_ibp, bound="ibp"),
    TrainMethod("cc-ibp", "IBP and adversarial margins combined, α·IBP + (1−α)·adversarial (De Palma et al. 2024)",
                _cc_ibp, bound="ibp"),
    TrainMethod("sabr", "IBP over a small region of radius λε around an adversarial point (Müller et al. 2023)",
                _sabr, bound="ibp"),
    TrainMethod("taps", "IBP to a latent box, PGD through the last taps-split ReLU layers (Mao et al. 2023)",
                _taps, bound="ibp", check=_taps_check),
)}

TRAIN_METHODS = tuple(METHODS)
PAPER_METHODS = tuple(name for name, m in METHODS.items() if m.paper)

#: Methods that train on a convex-relaxation upper bound, and the bound each one uses.
CERTIFIED_METHODS = {name: m.bound for name, m in METHODS.items() if m.bound is not None}
#: Methods whose training never sees the budget ε: a sweep over ε may train them once.
EPS_FREE_METHODS = frozenset({"st"})


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"unknown training method {method!r}; choose one of {', '.join(TRAIN_METHODS)}.")
    return method


def check_model(method: str, model: nn.Module, **options) -> None:
    """One sentence (UserError) when `model` cannot train with `method` and these `LossOptions`
    (a TAPS split beyond its ReLU layers); training calls it once, before any work."""
    check = METHODS[check_method(method)].check
    if check is not None:
        check(model, loss_options(**options))


# --------------------------------------------------------------------------- regularisers

def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Σ|W| over the weights of every Linear and Conv2d layer (SABR's and expressive-losses' L1)."""
    terms = [m.weight.abs().sum() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def input_radius(model: nn.Module, threat: Threat) -> float:
    """Mean half-width of the input interval the bounds start from, in the space the first affine
    layer sees (after a leading `Normalize`): ε/σ averaged over channels, ε without one.  It is
    Shi et al.'s tightness at the input; for a norm ball the box hull's half-width is ε."""
    first = next(iter(model.children()), None)
    std = getattr(first, "std", None)
    if isinstance(std, torch.Tensor):
        return float(threat.eps * (1.0 / std.double()).mean())
    return float(threat.eps)


def warmup_regulariser(preactivations, radius0: float, tol: float = REG_TOL) -> torch.Tensor:
    """Shi et al.'s bound-tightness + ReLU-balance regularisers from the interval bounds of every
    ReLU's input (a list of (lower, upper)), each averaged over the ReLU layers.

    Tightness: relu(τ − t₀/t)/τ with t the mean half-width at the layer and t₀ = `radius0` at
    the input (bounds may grow at most 1/τ-fold).  Balance: with centres c = (u + ℓ)/2, the
    mean of c over active units (ℓ > 0) against minus that over inactive ones (u < 0), and
    their summed squared deviations from the mean of c, each ratio r taken as min(r, 1/r):
    (relu(τ − r_mean) + relu(τ − r_var))/τ; a layer where a ratio is undefined adds nothing.
    """
    tight, balance = [], []
    for lower, upper in preactivations:
        centre, half = (upper + lower) / 2, (upper - lower) / 2
        tight.append(F.relu(tol - radius0 / half.mean().clamp_min(1e-12)) / tol)
        active, inactive = (lower > 0).to(centre.dtype), (upper < 0).to(centre.dtype)
        mean_ratio = (centre * active).mean() / -(centre * inactive).mean()
        spread = (centre - centre.mean()) ** 2
        var_ratio = (spread * active).sum() / (spread * inactive).sum()
        ratios = [torch.minimum(r, 1 / r.clamp_min(1e-12)) for r in (mean_ratio, var_ratio)]
        term = sum(F.relu(tol - r) for r in ratios) / tol
        if bool(torch.isfinite(term)):
            balance.append(term)
    zero = torch.zeros((), dtype=preactivations[0][0].dtype if preactivations else torch.float32)
    mean = lambda terms: torch.stack(terms).mean() if terms else zero  # noqa: E731
    return mean(tight) + mean(balance) if preactivations else zero


def _regularisers(model, x, threat: Threat, o: LossOptions, warmup: bool):
    """The L1 penalty, plus (with `warmup`) λ·(1 − ε_t/ε)·(warm-up regularisers) while ε_t < ε
    (Shi et al.; their bounds are taken at a tiny budget while ε_t is still 0)."""
    total = o.l1 * l1_penalty(model) if o.l1 > 0 else None
    full = o.full_eps if o.full_eps is not None else threat.eps
    if warmup and o.reg_lambda > 0 and full > 0 and threat.eps < full:
        from realdata import bounds

        at = threat.with_eps(max(threat.eps, REG_MIN_EPS))
        reg = warmup_regulariser(bounds.preactivation_bounds(model, x, at, "ibp"), input_radius(model, at))
        reg = o.reg_lambda * (1 - threat.eps / full) * reg
        total = reg if total is None else total + reg
    return total


def ibp_init(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Shi et al.'s IBP initialisation: every Linear/Conv2d weight but the last drawn from
    N(0, 2π/fan_in²), so interval widths neither explode nor vanish with depth at init
    (biases and normalisation layers keep their values)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for layer in layers[:-1]:
            fan_in = layer.weight[0].numel()
            noise = torch.randn(layer.weight.shape, generator=generator, dtype=layer.weight.dtype,
                                device=generator.device if generator is not None else layer.weight.device)
            layer.weight.copy_(noise * math.sqrt(2 * math.pi) / fan_in)


INITS = {"default": None, "ibp": ibp_init}


# --------------------------------------------------------------------------- the entry point

def loss_options(**options) -> LossOptions:
    names = {f.name for f in fields(LossOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UserError(f"unknown training-loss option(s) {', '.join(unknown)}; the options are {', '.join(sorted(names))}.")
    return LossOptions(**options)


def training_loss(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: Threat, **options):
    """The objective `method` minimises on one batch → (loss, error); `options` are `LossOptions` fields.

    `loss` is a scalar mean over the batch, differentiable in the model's parameters.
    `error` (a 0-d tensor on the data's device, read when the caller chooses: no host sync
    per step) is the fraction of the batch the objective counts as wrong: clean errors (st),
    errors at the attacked inputs (at, mtl-ibp), or inputs whose bound does not certify the
    label (coap, crown-ibp, ibp, crown, fast-ibp; sabr: over its small region; cc-ibp: on the
    combined margins).  `threat` carries the current (possibly ramped) budget.
    """
    check_method(method)
    o = loss_options(**options)
    if method == "st" or threat.eps == 0:
        loss, error = _standard(model, x, y, threat, o)
    else:
        loss, error = METHODS[method].loss(model, x, y, threat, o)
        if o.kappa > 0 and method != "at":
            loss = o.kappa * F.cross_entropy(model(x), y) + (1 - o.kappa) * loss
    extra = _regularisers(model, x, threat, o, warmup=method != "st")
    return (loss if extra is None else loss + extra), error
