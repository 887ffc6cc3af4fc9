"""TAPS (Mao et al., NeurIPS 2023): IBP through a feature extractor, PGD through a classifier.

Our implementation of the published method (eth-sri/TAPS `torch_model_wrapper.py`, the same
algorithm as CTBench's `TAPSModelWrapper`) on `realdata.bounds`.  The model, an
`nn.Sequential`, is split after one of its top-level ReLU layers: with ``split = k`` the last
k ReLU layers and everything after the (k+1)-th last one form the *classifier*, the rest the
*feature extractor* (the published CNN7 split "17 4" is k = 1: Linear–BN–ReLU–Linear).  One
training step at the full budget:

1. IBP bounds the feature extractor's output over the threat set: the *latent box* [ℓ, u] is
   ReLU of the split ReLU's pre-activation interval (`Bounds(..., "ibp").preactivations()`,
   the same computation that gives IBP's margin bounds; for ℓ2 its first layer is exact).
2. Per input and per wrong class j, a PGD search inside the box finds the latent point that
   minimises the classifier's margin f_y − f_j (TAPS' multi-estimator: C − 1 searches per
   input).  Uniform random starts, sign steps of lr·(u − ℓ), lr = max(0.2, 2/steps) times 0.1
   at the published milestones, the best iterate per class kept over restarts.  The clean
   input's latent point is a candidate too (as in `realdata.attacks`), so an estimate never
   exceeds the clean margin; the published search starts from random points only.
3. The TAPS margins are the classifier's margins at those points.  They are attained values,
   so each lies at or above the latent worst case and hence at or above IBP's bound: an
   estimate of the worst case, never a certificate.
4. The gradient connector (TAPS' rectified linear link, `connect`) passes the classifier's
   gradient at each point back to the box bounds; through them it reaches the feature
   extractor.  The classifier's parameters get their gradient at the points directly.
5. The loss is L_TAPS · L_IBP, L_X = CE(−m_X, y), with L_TAPS's gradient scaled by
   w = `grad_scale` (TAPS' `GradExpander`): ∇ = w·L_IBP·∇L_TAPS + L_TAPS·∇L_IBP.  While ε
   still ramps towards its target the loss is IBP's alone (TAPS anneals with IBP).

Every layer runs through `Bounds.apply`, so a train-mode BatchNorm uses the clean batch's
statistics in the search and the margins alike, as the published code freezes them after
the clean pass.  The certified error of a TAPS-trained model is measured with a sound bound
(the registry names IBP, evaluation may add tighter ones), never with these estimates.

Left out: STAPS (TAPS on SABR's small box), the `relu_shrinkage` and `no_ibp_multiplier`
options, the search's `estimation_batch` chunking and a PGD/IBP mixing weight below 1 (the
published scripts all use 1).
"""
from __future__ import annotations

import torch
from torch import nn

from realdata.bounds import Bounds
from realdata.errors import UserError
from realdata.methods import margin_error, margin_loss

#: the published defaults: soft threshold c of the gradient link, TAPS' gradient scale w
#: (eth-sri/TAPS scripts: `--soft-thre 0.5 --alpha-box 5`), and the link's tolerance
SOFT_THRESHOLD, GRAD_SCALE, LINK_TOL = 0.5, 5.0, 1e-5
#: the latent search's step-size decay at each milestone (eth-sri/TAPS; CTBench uses 0.2)
LR_DECAY = 0.1
#: ε counts as at its target within this relative tolerance (a ramp's end may round)
_AT_TARGET = 1e-6


def split_layer(model: nn.Module, split) -> int:
    """Index of the top-level ReLU after which the classifier begins: the (split+1)-th last.

    UserError unless 0 ≤ split < (number of top-level ReLU layers): IBP needs at least one
    ReLU layer in the feature extractor (split = 0 leaves the classifier affine)."""
    relus = [i for i, m in enumerate(model) if isinstance(m, nn.ReLU)] if isinstance(model, nn.Sequential) else []
    if not relus:
        raise UserError("taps needs an nn.Sequential model with at least one top-level ReLU layer to split at.")
    if isinstance(split, bool) or not isinstance(split, int) or not 0 <= split < len(relus):
        layers = f"{len(relus)} top-level ReLU layer{'s' if len(relus) > 1 else ''}"
        raise UserError(f"--taps-split {split!r} does not fit this model: it has {layers}, so the classifier can "
                        f"hold 0 to {len(relus) - 1} of them (one must stay in the feature extractor).")
    return relus[len(relus) - 1 - split]


def _relu_number(model: nn.Sequential, layer: int) -> int:
    """The ReLU at top-level index `layer` in the bounds' forward order (inner ones counted)."""
    return sum(isinstance(m, nn.ReLU) for m in model[:layer + 1].modules()) - 1


def step_schedule(steps: int) -> tuple[float, tuple]:
    """The latent search's first step (a fraction of the box's width) and its decay milestones,
    as published: max(0.2, 2/steps) reaches the boundary from anywhere even with few steps."""
    if 20 <= steps <= 50:
        milestones = (int(steps * 0.7),)
    elif 50 < steps <= 80:
        milestones = (int(steps * 0.4), int(steps * 0.7))
    elif steps > 80:
        milestones = (int(steps * 0.3), int(steps * 0.6), int(steps * 0.8))
    else:
        milestones = ()
    return max(0.2, 2 / steps), milestones


def link_weights(lower, upper, points, c: float = SOFT_THRESHOLD, tol: float = LINK_TOL):
    """TAPS' rectified linear link: the share of a point's gradient that goes to each bound.

    With slack s = c·(u − ℓ): to u where z ≥ u − s, growing linearly from 0 there to 1 at
    z = u, i.e. max(z − (u − s), tol/2)/max(s, tol); to ℓ where z ≤ ℓ + s, symmetrically;
    nothing elsewhere.  A point on a threshold gets tol/2/s (not 0), a flat box (u = ℓ) ½ each.
    """
    slack = c * (upper - lower)
    span = slack.clamp(min=tol)
    zero = torch.zeros((), dtype=points.dtype, device=points.device)
    to_upper = torch.where(points >= upper - slack, (points - (upper - slack)).clamp(min=tol / 2) / span, zero)
    to_lower = torch.where(points <= lower + slack, ((lower + slack) - points).clamp(min=tol / 2) / span, zero)
    return to_lower, to_upper


def connect(points, lower, upper, c: float = SOFT_THRESHOLD) -> torch.Tensor:
    """The points [B, P, *S] (values unchanged) wired to the bounds [B, *S]: a gradient g at a
    point reaches ℓ as g·(its `link_weights` share), summed over the P points, and u likewise.
    Not the derivative of anything (the points are argmins): TAPS' gradient estimator."""
    lo, up = lower.unsqueeze(1), upper.unsqueeze(1)
    with torch.no_grad():
        to_lower, to_upper = link_weights(lo, up, points, c)
    anchor = to_lower * lo + to_upper * up
    return points.detach() + (anchor - anchor.detach())  # value: the points; gradient: the shares


def _pivot_margins(classifier, points, y, others) -> torch.Tensor:
    """f_y − f_j at point [b, p] for class j = others[b, p] → [B, P]."""
    B, P = others.shape
    logits = classifier(points.reshape((B * P,) + tuple(points.shape[2:]))).reshape(B, P, -1)
    own = logits.gather(2, y.view(B, 1, 1).expand(B, P, 1)).squeeze(2)
    return own - logits.gather(2, others.unsqueeze(2)).squeeze(2)


def _uniform(shape, like: torch.Tensor, generator) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def search_points(classifier, lower, upper, clean, y, others, steps: int, restarts: int = 1,
                  generator=None) -> torch.Tensor:
    """Per input b and wrong class others[b, p], the point of [lower, upper] with the smallest
    margin that the search found → [B, P, *S] (detached)."""
    lo, up = lower.detach().unsqueeze(1), upper.detach().unsqueeze(1)
    width = up - lo
    shape = tuple(others.shape) + tuple(lower.shape[1:])
    best_points = clean.detach().unsqueeze(1).expand(shape).clone()
    with torch.no_grad():
        best = _pivot_margins(classifier, best_points, y, others)
    first_step, milestones = step_schedule(steps)
    with torch.enable_grad():
        for _ in range(restarts):
            points, step = lo + width * _uniform(shape, lo, generator), first_step
            for it in range(steps + 1):  # the last iterate is scored too
                points.requires_grad_(True)
                margins = _pivot_margins(classifier, points, y, others)
                better = margins.detach() < best
                best = torch.where(better, margins.detach(), best)
                best_points[better] = points.detach()[better]
                if it == steps:
                    break
                grad, = torch.autograd.grad(margins.sum(), points)  # the parameters' .grad stay untouched
                points = torch.minimum(torch.maximum(points.detach() - step * width * grad.sign(), lo), up)
                if it + 1 in milestones:
                    step *= LR_DECAY
    return best_points


def taps_margins(model: nn.Sequential, bounds: Bounds, x, y, split: int, *, steps: int, restarts: int = 1,
                 soft_thre: float = SOFT_THRESHOLD, generator=None) -> torch.Tensor:
    """TAPS' estimates of the worst-case margins f_y − f_j over the threat set → [B, C], entry y 0.

    `bounds` is the batch's IBP `Bounds` (its latent box and its layers' maps); the estimates
    carry the gradient connector's gradient to the feature extractor and the classifier's own."""
    layer = split_layer(model, split)
    lower, upper = (b.clamp(min=0) for b in bounds.preactivations()[_relu_number(model, layer)])

    def classifier(z):
        return bounds.apply(z, layer + 1)

    clean = bounds.apply(x, 0, layer + 1)
    B, C = len(y), bounds.apply(clean[:1].detach(), layer + 1).shape[1]
    classes = torch.arange(C, device=y.device).expand(B, C)
    others = classes[classes != y.unsqueeze(1)].view(B, C - 1)
    points = search_points(classifier, lower, upper, clean, y, others, steps, restarts, generator)
    margins = _pivot_margins(classifier, connect(points, lower, upper, soft_thre), y, others)
    return margins.new_zeros(B, C).scatter(1, others, margins)


def taps_loss(model, x, y, threat, o):
    """The TAPS objective on one batch → (loss, error); `o` is a `methods.LossOptions`.

    error: the fraction of the batch whose TAPS margins are not all positive (an estimate of
    the robust error, not a certified one); while ε ramps, IBP's not-certified fraction."""
    split_layer(model, o.taps_split)  # before any bound: a bad split costs nothing
    options = {} if o.chunk_size is None else {"chunk_size": o.chunk_size}
    bounds = Bounds(model, x, threat, "ibp", **options)
    ibp = bounds.margins(y)
    if o.full_eps is not None and threat.eps < o.full_eps * (1 - _AT_TARGET):
        return margin_loss(ibp, y), margin_error(ibp, y)
    estimates = taps_margins(model, bounds, x, y, o.taps_split, steps=o.attack_steps, restarts=o.attack_restarts,
                             soft_thre=o.taps_soft_thre, generator=o.generator)
    taps, w = margin_loss(estimates, y), o.taps_grad_scale
    scaled = w * taps + (1 - w) * taps.detach()  # value L_TAPS, gradient w·∇L_TAPS
    return scaled * margin_loss(ibp, y), margin_error(estimates, y)
