"""Attacks: lower bounds on the worst-case loss over a threat set.

Every attack moves only through the threat's own geometry (`Threat.sample`,
`ascent`, `project`, `contains`), so ℓ∞, ℓ2 and the signal-aligned `Directions`
set share one implementation.  `box=(lo, hi)` keeps images inside their pixel
range; synthetic data pass `box=None` (no clamp, as in the papers).

* `pgd`   — Madry et al. (2018): random start, fixed step, projection.
* `apgd`  — Auto-PGD (Croce & Hein 2020): step-size halving at checkpoints,
  momentum 0.75, best-point tracking, CE or DLR loss, restarts.
* `line_search` — the exact worst case over one-dimensional sets, walking the
  ReLU kinks with `realdata.piecewise`.
* `autoattack_plus` — AutoAttack "plus" through the optional `pyautoattack`.

Return convention of `pgd` and `apgd`: a point that some iterate misclassifies
comes back as its highest-loss misclassifying iterate; any other point comes
back as its highest-loss iterate, so adversarial training gets its worst case
and an evaluation gets every break the attack found.
"""
from __future__ import annotations

import inspect
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from realdata.errors import UserError
from realdata.piecewise import AFFINE, distance_to_next_kink, forward_with_tangent, split_affine_prefix
from realdata.threats import Directions, Threat

LOSSES = ("ce", "dlr")

# Auto-PGD's constants (Croce & Hein 2020, Sec. 3): first checkpoint after 22% of
# the iterations, gaps shrinking by 3% down to 6%, initial step 2ε, momentum 0.75,
# and a checkpoint halves the step when fewer than ρ = 75% of steps raised the loss.
_APGD_FIRST_CHECK, _APGD_GAP_DECAY, _APGD_MIN_GAP = 0.22, 0.03, 0.06
_APGD_MOMENTUM, _APGD_RHO, _APGD_INITIAL_STEP = 0.75, 0.75, 2.0


# -- input checks ---------------------------------------------------------------
def check_attack_input(model, x: torch.Tensor, y: torch.Tensor, threat: Threat, box=None) -> None:
    """Raise a UserError naming the fix for inputs no attack can work with."""
    if not isinstance(threat, Threat):
        raise UserError(f"the threat must be a realdata.threats.Threat (Linf, L2, Directions), got {type(threat).__name__}.")
    if x.shape[0] == 0:
        raise UserError("there are no inputs to attack; the split is empty — check train_size/test_size.")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise UserError(f"expected one label per input: {x.shape[0]} inputs but labels of shape {tuple(y.shape)}.")
    threat.check_input(x)
    check_box(x, box)
    # one probe in eval mode: BatchNorm in training mode refuses a single input, and would
    # fold it into its running statistics
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(x[:1])
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise UserError(f"the model must return logits of shape [batch, classes], got {tuple(out.shape)}.")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
        raise UserError(f"labels range over [{int(y.min())}, {int(y.max())}] but the model has {out.shape[1]} outputs; "
                        "build the model with one output per class.")


def check_box(x: torch.Tensor, box) -> None:
    """The clean inputs must lie in the box the attack keeps its points in."""
    if box is None:
        return
    lo, hi = box
    if not lo < hi:
        raise UserError(f"the input box must satisfy lo < hi, got {tuple(box)}.")
    if x.min().item() < lo - 1e-6 or x.max().item() > hi + 1e-6:
        raise UserError(f"inputs lie outside the box {tuple(box)}; pass box=None for unbounded data or rescale the inputs.")


# -- losses ----------------------------------------------------------------------
def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j: positive iff the point is classified correctly."""
    z_y = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], -math.inf)
    return z_y - others.amax(1)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits-ratio loss, −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3).

    The ratio makes the loss invariant to rescaling the logits.  It needs a third
    logit; with two classes the denominator is |z_0 − z_1| and the loss would be
    the constant ±1 with zero gradient, so there we use the unnormalised margin,
    whose ascent direction the threat then normalises anyway.
    """
    margin = _margin(logits, y)
    if logits.shape[1] < 3:
        return -margin
    top = logits.sort(dim=1, descending=True).values
    return -margin / (top[:, 0] - top[:, 2] + 1e-12)


def _loss_fn(name: str):
    if name == "ce":
        return lambda logits, y: F.cross_entropy(logits, y, reduction="none")
    if name == "dlr":
        return dlr_loss
    raise UserError(f"unknown attack loss {name!r}; choose one of {', '.join(LOSSES)}.")


def _loss_and_grad(model, x_adv, y, loss_fn):
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        loss = loss_fn(logits, y)
        # gradients with respect to the input only: the model's .grad stays untouched
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), logits.detach(), grad.detach()


# -- feasibility -----------------------------------------------------------------
def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape((-1,) + (1,) * (like.dim() - 1))


def _feasible(threat: Threat, x: torch.Tensor, x_adv: torch.Tensor, box) -> torch.Tensor:
    """A point of (x + S) ∩ box near x_adv: project onto the threat, then onto the box.

    Clamping to the box shrinks coordinates of δ toward 0, which keeps δ inside
    any norm ball (and is the exact projection for ℓ∞), but moves a point off the
    segments of `Directions`.  Where the clamped δ leaves S we instead shrink δ
    along its ray until x + sδ reaches the box — S is star-shaped around 0, so sδ
    stays in S.  The check asks the threat, so no norm is special-cased.
    """
    delta = threat.project(x_adv - x)
    if box is None:
        return x + delta
    lo, hi = box
    clamped = (x + delta).clamp(lo, hi)
    inside = threat.contains(clamped - x)
    # both candidates are computed for every row: choosing rows on the host would cost a
    # host-device sync on every projection, twice per Auto-PGD iteration
    # largest s ∈ [0, 1] with lo ≤ x + sδ ≤ hi, coordinate by coordinate
    room = torch.where(delta > 0, hi - x, torch.where(delta < 0, lo - x, torch.ones_like(x)))
    ratio = torch.where(delta != 0, room / delta, torch.ones_like(x))
    s = ratio.reshape(x.shape[0], -1).amin(1).clamp(0.0, 1.0)
    shrunk = (x + delta * _rows(s, x)).clamp(lo, hi)
    return torch.where(_rows(inside, x), clamped, shrunk)


def _random_start(threat: Threat, x: torch.Tensor, generator, on_boundary: bool = False) -> torch.Tensor:
    """A random δ ∈ S; with `on_boundary`, pushed out along its ray to the boundary of S."""
    # a CPU generator cannot draw CUDA tensors: draw where the generator lives, then move
    where = generator.device if generator is not None else x.device
    delta = threat.sample(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    if on_boundary:
        radius = threat.radius(delta)
        scale = torch.where(radius > 0, threat.eps / radius.clamp_min(1e-30), torch.zeros_like(radius))
        delta = delta * _rows(scale, delta)
    return delta


# -- bookkeeping shared by pgd and apgd ------------------------------------------
class _Best:
    """Per point: the highest-loss misclassifying iterate if any, else the highest-loss iterate.

    The clean point is the first candidate (δ = 0 lies in every threat set), so a
    point misclassified to begin with is never returned classified correctly.
    """

    def __init__(self, model, x: torch.Tensor, y: torch.Tensor, loss_fn):
        self.x = x.detach().clone()
        self.loss = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        self.fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        with torch.no_grad():
            logits = model(self.x)
        self.offer(torch.arange(x.shape[0], device=x.device), self.x, loss_fn(logits, y), logits.argmax(1) != y)

    def offer(self, idx: torch.Tensor, x_new, loss, fooled) -> None:
        """Candidates x_new[i] for points idx[i], with their loss and misclassification."""
        was_fooled = self.fooled[idx]
        higher = loss > self.loss[idx]
        take = (fooled & (~was_fooled | higher)) | (~fooled & ~was_fooled & higher)
        # where() over the rows idx, not a boolean mask: a mask's size is only known on the host
        self.x[idx] = torch.where(_rows(take, x_new), x_new, self.x[idx])
        self.loss[idx] = torch.where(take, loss, self.loss[idx])
        self.fooled[idx] = was_fooled | (take & fooled)


def _restart_indices(best: _Best, restart: int) -> torch.Tensor:
    # the first run attacks every point (training needs each point's worst case);
    # later restarts only spend effort on points not yet broken
    if restart == 0:
        return torch.arange(best.x.shape[0], device=best.x.device)
    return (~best.fooled).nonzero()[:, 0]


# -- PGD -------------------------------------------------------------------------
def pgd(model, x, y, threat: Threat, steps: int, step_size: float | None = None, restarts: int = 1,
        box=None, loss: str = "ce", generator: torch.Generator | None = None, check: bool = True) -> torch.Tensor:
    """Projected gradient ascent from a random start (Madry et al. 2018).

    `step_size` defaults to 2.5·ε/steps (Madry et al.), which lets the walk
    cross the whole set.  Each restart returns its last iterate.  `check=False`: the
    caller validated the inputs already (training does, once per run).
    """
    if check:
        check_attack_input(model, x, y, threat, box)
    _check_counts(steps, restarts)
    loss_fn = _loss_fn(loss)
    alpha = 2.5 * threat.eps / steps if step_size is None else float(step_size)
    if alpha < 0:
        raise UserError(f"the step size must be non-negative, got {step_size}.")
    best = _Best(model, x, y, loss_fn)
    for restart in range(restarts):
        idx = _restart_indices(best, restart)
        if idx.numel() == 0:
            break
        x0, y0 = x[idx].detach(), y[idx]
        x_adv = _feasible(threat, x0, x0 + _random_start(threat, x0, generator), box)
        for _ in range(steps):
            _, _, grad = _loss_and_grad(model, x_adv, y0, loss_fn)
            x_adv = _feasible(threat, x0, x_adv + alpha * threat.ascent(grad), box)
        with torch.no_grad():
            logits = model(x_adv)
            best.offer(idx, x_adv, loss_fn(logits, y0), logits.argmax(1) != y0)
    return best.x


# -- Auto-PGD --------------------------------------------------------------------
def _apgd_checkpoint_gaps(steps: int):
    """Iteration gaps between Auto-PGD checkpoints: 22% of the budget, then shrinking by 3% to at least 6%."""
    gap = max(int(_APGD_FIRST_CHECK * steps), 1)
    decay = max(int(_APGD_GAP_DECAY * steps), 1)
    floor = max(int(_APGD_MIN_GAP * steps), 1)
    while True:
        yield gap
        gap = max(gap - decay, floor)


def _apgd_run(model, x, y, threat, steps, loss_fn, box, generator, best: _Best, idx):
    """One Auto-PGD run on the points idx; every iterate is offered to `best`."""
    # as AutoAttack does: start on the boundary of the set, where the worst case usually lies
    x_adv = _feasible(threat, x, x + _random_start(threat, x, generator, on_boundary=True), box)
    loss, logits, grad = _loss_and_grad(model, x_adv, y, loss_fn)
    best.offer(idx, x_adv, loss, logits.argmax(1) != y)
    run_best_x, run_best_loss, run_best_grad = x_adv.clone(), loss.clone(), grad.clone()
    step = torch.full((x.shape[0],), _APGD_INITIAL_STEP * threat.eps, dtype=x.dtype, device=x.device)

    gaps = _apgd_checkpoint_gaps(steps)
    gap, since_check = next(gaps), 0
    increases = torch.zeros_like(loss)
    prev_loss = loss
    best_at_last_check = run_best_loss.clone()
    halved_last_check = torch.ones_like(loss, dtype=torch.bool)  # condition 2 cannot fire at the first checkpoint
    x_prev = x_adv
    for i in range(steps):
        with torch.no_grad():
            z = _feasible(threat, x, x_adv + _rows(step, x) * threat.ascent(grad), box)
            a = 1.0 if i == 0 else _APGD_MOMENTUM
            x_next = _feasible(threat, x, x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), box)
            x_prev, x_adv = x_adv, x_next
        loss, logits, grad = _loss_and_grad(model, x_adv, y, loss_fn)
        best.offer(idx, x_adv, loss, logits.argmax(1) != y)
        improved = loss > run_best_loss
        run_best_x = torch.where(_rows(improved, x), x_adv, run_best_x)
        run_best_grad = torch.where(_rows(improved, x), grad, run_best_grad)
        run_best_loss = torch.where(improved, loss, run_best_loss)
        increases += (loss > prev_loss).to(loss.dtype)
        prev_loss = loss

        since_check += 1
        if since_check == gap:
            # halve where the loss rose in at most ρ of the steps, or where the step was
            # kept last time and the best loss has not moved since; resume from the best point
            halve = (increases <= _APGD_RHO * gap) | (~halved_last_check & (best_at_last_check >= run_best_loss))
            step = torch.where(halve, step / 2, step)
            x_adv = torch.where(_rows(halve, x), run_best_x, x_adv)
            grad = torch.where(_rows(halve, x), run_best_grad, grad)
            halved_last_check, best_at_last_check = halve, run_best_loss.clone()
            increases.zero_()
            gap, since_check = next(gaps), 0


def apgd(model, x, y, threat: Threat, steps: int = 100, restarts: int = 1, loss: str = "ce",
         box=None, generator: torch.Generator | None = None, check: bool = True) -> torch.Tensor:
    """Auto-PGD (Croce & Hein 2020) with the CE or DLR loss; see the module docstring for what returns.
    `check=False`: the caller validated the inputs already (training does, once per run)."""
    if check:
        check_attack_input(model, x, y, threat, box)
    _check_counts(steps, restarts)
    loss_fn = _loss_fn(loss)
    best = _Best(model, x, y, loss_fn)
    for restart in range(restarts):
        idx = _restart_indices(best, restart)
        if idx.numel() == 0:
            break
        _apgd_run(model, x[idx].detach(), y[idx], threat, steps, loss_fn, box, generator, best, idx)
    return best.x


def apgd_ce_dlr(model, x, y, threat: Threat, steps: int = 100, restarts: int = 5, box=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The evaluation attack of the papers: Auto-PGD with CE, then with DLR on the points CE left unbroken."""
    x_adv = apgd(model, x, y, threat, steps, restarts, "ce", box, generator)
    with torch.no_grad():
        left = (model(x_adv).argmax(1) == y).nonzero()[:, 0]
    if left.numel():
        dlr_adv = apgd(model, x[left], y[left], threat, steps, restarts, "dlr", box, generator)
        with torch.no_grad():
            broke = model(dlr_adv).argmax(1) != y[left]
        x_adv[left[broke]] = dlr_adv[broke]
    return x_adv


def apgd_ce(model, x, y, threat: Threat, steps: int = 100, restarts: int = 5, box=None,
            generator: torch.Generator | None = None, check: bool = True) -> torch.Tensor:
    """Auto-PGD with the CE loss only, at the evaluation budget (AT's attack with its own budget;
    `check=False` as in `apgd`)."""
    return apgd(model, x, y, threat, steps, restarts, "ce", box, generator, check)


def _check_counts(steps, restarts):
    if int(steps) < 1 or int(restarts) < 1:
        raise UserError(f"attacks need at least one step and one restart, got steps={steps}, restarts={restarts}.")


# -- exact line search ----------------------------------------------------------
# Kinks closer than this fraction of a segment count as reached: it only skips
# pieces too short to change the margin, and guarantees the walk advances.
_LINE_MIN_STEP = 1e-9
_LINE_CHUNK_ELEMENTS = 2**17
# One-hidden-layer nets accumulate (rows × units × classes) logit changes at once.
_KINKS_CHUNK_ELEMENTS = 2**18


def _segment_directions(threat: Threat, x: torch.Tensor) -> torch.Tensor:
    """The unit directions whose segments [−ε, ε]·δ make up the threat set → [k, *input]."""
    if isinstance(threat, Directions):
        return threat.directions
    if x[0].numel() == 1:
        # in one dimension every ℓp ball is the segment [−ε, ε]
        return torch.ones((1,) + tuple(x.shape[1:]), dtype=x.dtype)
    raise UserError(f"the exact line search needs a one-dimensional threat set (Directions, or 1-D inputs); "
                    f"got {threat} on {x[0].numel()}-dimensional inputs — use --attack apgd.")


def _segment_limits(x: torch.Tensor, d: torch.Tensor, eps: float, box):
    """Per row b·k + j (point b, direction j), the interval of t with |t| ≤ ε and x_b + t·d_j in the box."""
    k = d.shape[0]
    lo = torch.full((x.shape[0] * k,), -eps, dtype=x.dtype, device=x.device)
    hi = -lo
    if box is not None:
        flat_x = x.reshape(x.shape[0], -1).repeat_interleave(k, 0)
        flat_d = d.reshape(k, -1).repeat(x.shape[0], 1)
        with torch.no_grad():
            up = torch.where(flat_d > 0, (box[1] - flat_x) / flat_d, torch.where(flat_d < 0, (box[0] - flat_x) / flat_d, torch.inf))
            down = torch.where(flat_d > 0, (box[0] - flat_x) / flat_d, torch.where(flat_d < 0, (box[1] - flat_x) / flat_d, -torch.inf))
        hi = torch.minimum(hi, up.amin(1).clamp_min(0))
        lo = torch.maximum(lo, down.amax(1).clamp_max(0))
    return lo, hi


def _walk(rest, z0, dz, y, lo, hi, kink_tol):
    """Walk the rows' segments z0 + t·dz, t ∈ [lo, hi], through `rest` from kink to kink.

    Returns per row the smallest margin met and the t where it was met.
    """
    min_step = _LINE_MIN_STEP * (hi - lo)
    t, best_t = lo.clone(), lo.clone()
    best_margin = torch.full_like(t, torch.inf)
    active = torch.ones_like(t, dtype=torch.bool)
    while bool(active.any()):
        idx = active.nonzero()[:, 0]
        ti = t[idx]
        preacts = []
        logits, _ = forward_with_tangent(rest, z0[idx] + _rows(ti, z0) * dz[idx], dz[idx], kink_tol, preacts)
        margin = _margin(logits, y[idx])
        better = margin < best_margin[idx]
        best_margin[idx[better]], best_t[idx[better]] = margin[better], ti[better]
        step = distance_to_next_kink(preacts, kink_tol, idx.numel(), ti.dtype, ti.device)
        t[idx] = torch.minimum(hi[idx], ti + torch.maximum(step, min_step[idx]))
        active[idx[ti >= hi[idx]]] = False
    return best_margin, best_t


def _one_relu_layer(rest: nn.Sequential) -> bool:
    """Is `rest` a ReLU followed by affine layers only (what is left of a one-hidden-layer net)?"""
    layers = list(rest)
    return bool(layers) and isinstance(layers[0], nn.ReLU) and all(isinstance(m, AFFINE) for m in layers[1:])


def _all_kinks(rest, z0, dz, y, lo, hi):
    """`_walk`'s answer for a ReLU followed by affine layers, with every kink found at once.

    Unit i's pre-activation z0_i + t·dz_i crosses zero once, at t = −z0_i/dz_i, so the
    pieces' end points are known before any pass.  Sorting the kinks inside (lo, hi) and
    accumulating each crossing's change to the logits (logits = b + Σ_active W_i·(z0_i + t·dz_i))
    gives the logits at every kink in O(units · classes) per segment instead of one net pass
    per kink; the margin, concave on each piece, is smallest at one of them or at lo or hi.
    A unit contributes 0 at its own kink, so which side of it is counted there does not matter.
    """
    shape = z0.shape[1:]
    z0, dz = z0.flatten(1), dz.flatten(1)
    units = z0.shape[1]
    # the affine suffix as logits = b + W h: its value at 0 and its tangent along each unit vector
    eye = torch.eye(units, dtype=z0.dtype, device=z0.device).reshape((units,) + shape)
    b, w = forward_with_tangent(rest[1:], torch.zeros((1,) + shape, dtype=z0.dtype, device=z0.device), eye, 0.0, [])
    w = w.flatten(1)                                                     # [units, classes]
    kinks = -z0 / dz                                                     # ±inf or nan where dz = 0: no kink
    inside = (kinks > lo[:, None]) & (kinks < hi[:, None])
    # each unit's state on (lo, first crossing): before its kink a unit is on iff it falls (dz < 0);
    # a unit without a kink inside keeps its state at the midpoint all along
    mid = (lo + hi)[:, None] / 2
    on = torch.where(inside, dz < 0, z0 + mid * dz > 0).to(z0.dtype)
    a0, b0 = (on * z0) @ w, (on * dz) @ w                               # logits = b + a + t·s on a piece
    at, order = torch.where(inside, kinks, torch.inf).sort(1)
    crossing = (1 - 2 * on).gather(1, order) * inside.gather(1, order)  # +1 turns on, −1 off, 0 no kink
    w_sorted = w[order]                                                  # [rows, units, classes]
    a = a0[:, None] + ((crossing * z0.gather(1, order))[..., None] * w_sorted).cumsum(1)
    s = b0[:, None] + ((crossing * dz.gather(1, order))[..., None] * w_sorted).cumsum(1)
    t = torch.cat([lo[:, None], torch.where(torch.isfinite(at), at, lo[:, None]), hi[:, None]], 1)
    a, s = torch.cat([a0[:, None], a, a[:, -1:]], 1), torch.cat([b0[:, None], s, s[:, -1:]], 1)
    margin = _margin((b + a + t[..., None] * s).flatten(0, 1), y.repeat_interleave(t.shape[1])).reshape(t.shape)
    # the columns of units without a kink inside hold the last piece's state at lo: not a point of the net
    counted = torch.cat([torch.ones_like(lo[:, None], dtype=torch.bool), torch.isfinite(at),
                         torch.ones_like(lo[:, None], dtype=torch.bool)], 1)
    best_margin, where = margin.masked_fill(~counted, torch.inf).min(1)
    return best_margin, t.gather(1, where[:, None])[:, 0]


def _search_segments(prefix, rest, x_points, d_segments, y_rows, lo, hi, kink_tol):
    """Every row b·k + j's smallest margin along x_b + t·d_j and where it was met (see `line_search`)."""
    k, batch = d_segments.shape[0], x_points.shape[0]
    # the affine layers before the first ReLU map each segment to z0 + t·dz once and for all; being
    # affine, their value depends on the point only and their slope on the direction only, so one
    # pass carries the points as values and the directions as tangents (each layer cast once)
    z0, dz = forward_with_tangent(prefix, x_points, d_segments, kink_tol, [])
    z0 = z0.repeat_interleave(k, 0)
    dz = dz.repeat((batch,) + (1,) * (dz.dim() - 1))
    width = max(1, z0[0].numel())
    if _one_relu_layer(rest):
        search, chunk = (lambda *a: _all_kinks(rest, *a)), max(1, _KINKS_CHUNK_ELEMENTS // width)
    else:
        # chunks of rows small enough to stay in cache: the walk is many cheap passes over them
        search, chunk = (lambda *a: _walk(rest, *a, kink_tol)), max(16, _LINE_CHUNK_ELEMENTS // width)
    best_margin, best_t = torch.empty_like(lo), torch.empty_like(lo)
    for s in range(0, z0.shape[0], chunk):
        rows = slice(s, s + chunk)
        best_margin[rows], best_t[rows] = search(z0[rows], dz[rows], y_rows[rows], lo[rows], hi[rows])
    return best_margin, best_t


class _Call(nn.Module):
    """`fn(model, *args)` as a module's forward, so `functional_call` can swap the model's tensors."""

    def __init__(self, model, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        return self.fn(self.model, *args)


def _in_float64(model, fn, *args):
    """fn(model, *args) with the model's floating parameters and buffers in float64 (the walk's
    kink order needs it): one cast per tensor, and none when they are float64 already, instead
    of a deep copy of the whole module on every call (once per training step in AT)."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    swapped = {f"model.{name}": t.detach().double() for name, t in tensors if t.is_floating_point()}
    return torch.func.functional_call(_Call(model, fn), swapped, args)


def line_search(model, x, y, threat: Threat, box=None, check: bool = True) -> torch.Tensor:
    """Exact worst case of a piecewise-linear ReLU network over each segment of a 1-D threat set.

    Along a segment x + t·δ_j the network is linear in t between ReLU kinks, so
    the margin z_y − max_{j≠y} z_j (concave on each piece) is smallest at a kink
    or an endpoint.  Walking from kink to kink (`realdata.piecewise`) and
    evaluating the margin at each one finds the minimum with no sampling.
    Returns, per point, the input of smallest margin over all segments.  For a net with
    one hidden ReLU layer every kink is known up front and all are evaluated at once
    (`_all_kinks`, vectorised over points and kinks).  `check=False`: the caller
    validated the inputs already.
    """
    if check:
        check_attack_input(model, x, y, threat, box)
    directions = _segment_directions(threat, x)
    batch, k = x.shape[0], directions.shape[0]
    x_points = x.detach().double()
    d_segments = directions.to(device=x.device, dtype=torch.float64)
    y_rows = y.repeat_interleave(k)  # row b·k + j: point b, segment j
    lo, hi = _segment_limits(x_points, d_segments, float(threat.eps), box)
    kink_tol = _LINE_MIN_STEP * 2 * float(threat.eps)
    prefix, rest = split_affine_prefix(model)
    args = (x_points, d_segments, y_rows, lo, hi, kink_tol)
    with torch.no_grad():
        if _one_relu_layer(rest):
            # two passes in all, each layer casting its parameters to float64 as it goes: cheaper than
            # functional_call's swap of float64 copies into the module (once per AT training step)
            best_margin, best_t = _search_segments(prefix, rest, *args)
        else:
            # the walk makes many passes: float64 parameters once, shared by prefix and rest
            best_margin, best_t = _in_float64(model, lambda _, *a: _search_segments(prefix, rest, *a), *args)
    worst = best_margin.reshape(batch, k).argmin(1)
    rows = torch.arange(batch, device=x.device) * k + worst
    x_adv = (x_points + _rows(best_t[rows], x_points) * d_segments[worst]).to(x.dtype)
    return x_adv if box is None else x_adv.clamp(*box)


# -- AutoAttack "plus" -----------------------------------------------------------
_AA_NORMS = {"linf": "Linf", "l2": "L2"}


def autoattack_plus(model, x, y, threat: Threat, box=(0, 1), seed: int = 0, batch_size: int | None = None) -> torch.Tensor:
    """AutoAttack "plus" (APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T) via `pyautoattack`."""
    check_attack_input(model, x, y, threat, box)
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise UserError("AutoAttack-plus needs the optional package pyautoattack; install it with "
                        "pip install -e '.[eval]' (or pip install pyautoattack), or choose --attack apgd.") from None
    if threat.norm not in _AA_NORMS:
        raise UserError(f"AutoAttack supports the linf and l2 threats only, not {threat}; use --attack apgd or line-search.")
    if box is None or tuple(float(b) for b in box) != (0.0, 1.0):
        raise UserError("AutoAttack clamps inputs to [0, 1], so it needs image data with box=(0, 1); "
                        "use --attack apgd for unbounded (synthetic) data.")
    devices = [x.device] if x.is_cuda else []
    # pyautoattack reseeds torch's global generator; keep the caller's random stream intact
    with torch.random.fork_rng(devices=devices):
        adversary = AutoAttack(model, norm=_AA_NORMS[threat.norm], eps=threat.eps, version="plus",
                               device=x.device, seed=seed)
        x_adv, _ = adversary.run_standard_evaluation(x.detach(), y, batch_size=batch_size or x.shape[0])
    return x_adv


# -- registry --------------------------------------------------------------------
ATTACKS = {
    "pgd": pgd,
    "apgd": apgd_ce_dlr,
    "apgd-ce": apgd_ce,
    "line-search": line_search,
    "aa+": autoattack_plus,
}
#: each attack's keyword options (what follows model, x, y, threat), read off its signature once:
#: AT asks for them on every training step
_OPTIONS = {name: tuple(inspect.signature(fn).parameters)[4:] for name, fn in ATTACKS.items()}


def attack_options(name: str, **available) -> dict:
    """The options among `available` (steps, restarts, generator, seed, box, ...) that attack
    `name` takes, read off its signature: callers offer everything they have, and each
    attack keeps its own, so no caller repeats which attack takes what."""
    if name not in ATTACKS:
        raise UserError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}.")
    return {key: value for key, value in available.items() if key in _OPTIONS[name]}


def run_attack(name: str, model, x, y, threat: Threat, **options) -> torch.Tensor:
    """Run the attack called `name` (see ATTACKS) and return x_adv."""
    if name not in ATTACKS:
        raise UserError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}.")
    if name == "pgd":
        options.setdefault("steps", 10)  # the AT budget of the papers; pgd itself has no default
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise UserError(f"attack {name!r} does not take {', '.join(unknown)}; its options are "
                        f"{', '.join(_OPTIONS[name])}.")
    return ATTACKS[name](model, x, y, threat, **options)
