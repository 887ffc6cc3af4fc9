"""Certified bounds for ReLU networks: IBP, CROWN, CROWN-IBP, COAP and α-CROWN.

The public front of the bounds engine (`realdata.relaxation`).  All methods run
on one linear-relaxation engine — a recipe (`relaxation/recipes.py`) naming where
the ReLU layers' pre-activation bounds come from, the relaxation class of the
unstable ReLUs and the output rule, with the threat's support function as the
input conjugate.

`Bounds(model, x, threat, method, **options)` computes the pre-activation bounds
once and serves `.margins(y)`, `.preactivations()`, `.robust_loss(y)` and
`.unstable()`; the functions `margin_lower_bounds`, `preactivation_bounds` and
`robust_loss` are one-line wrappers for a single question.

Options (keyword arguments of `Bounds` and every function):

* ``beta`` — CROWN-IBP's weight of the CROWN bound against IBP's (default 1.0).
* ``proj`` — COAP: ``None`` computes exact bounds; an int k estimates the
  intermediate bounds with k random projections (Wong et al. 2018: median of
  Cauchy projections for ℓ1 norms, i.e. the ℓ∞ threat and the ReLU terms,
  median of Gaussian projections for the ℓ2 threat; each layer's random matrix is
  shared by the batch).  The output bound stays exact given those intermediate bounds.
* ``chunk_size`` — neurons per chunk of the per-neuron backward passes (default:
  sized to keep each chunk near 2M elements on a CPU, by free memory on a GPU).
* ``generator`` — a torch.Generator for the random projections (drawn on its
  device, then moved to the data's).
* ``direction`` — how COAP's exact intermediate bounds are computed:
  ``"forward"`` (Wong & Kolter's dual network pushed forward layer by layer, the
  way convex_adversarial does it), ``"backward"`` (one backward pass per neuron,
  in patches behind convolutions, as CROWN's are) or ``"auto"`` (the cheaper by a
  count of multiply-adds; the default).  Both give the same bounds up to
  rounding; projections always run forward.
* ``iterations`` — alpha-crown: bound evaluations of the slope optimisation (default
  20; 1 gives CROWN).  Each but the last is followed by one projected Adam step.
* ``step_size`` — alpha-crown: Adam's step size on the slopes (default 0.5, decayed
  by 0.98 per step), as auto_LiRPA's optimised CROWN.

Everything is device- and dtype-agnostic: the bounds follow the inputs and the
model (float32 or float64, CPU or CUDA).  Every computation of `Bounds` runs under
`realdata.precision.full_float32` (no TF32 on GPUs): a bound computed at TF32's
~1e-3 precision is no bound on the float32 model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from realdata.errors import UserError
from realdata.precision import full_float32
from realdata.relaxation.engine import Engine
from realdata.relaxation.optimised import ITERATIONS, STEP_SIZE
from realdata.relaxation.recipes import RECIPES
from realdata.relaxation.relus import unstable_mask
from realdata.threats import Threat

#: the bound methods, in the registry's order (`realdata/relaxation/recipes.py`)
BOUND_METHODS = tuple(RECIPES)

_DIRECTIONS = ("auto", "forward", "backward")
#: alpha-crown's defaults, auto_LiRPA's (`relaxation/optimised.py`)
DEFAULT_ITERATIONS, DEFAULT_STEP_SIZE = ITERATIONS, STEP_SIZE
#: every keyword option of `Bounds` and the bound functions (see the module docstring)
_OPTIONS = ("beta", "proj", "chunk_size", "generator", "direction", "iterations", "step_size")


def _check(model, x, threat, method, options) -> dict:
    if method not in RECIPES:
        raise UserError(f"unknown bound method {method!r}; choose one of {', '.join(RECIPES)}.")
    if not isinstance(threat, Threat):
        raise UserError(f"the threat must be a realdata.threats.Threat (Linf, L2, Directions), got {type(threat).__name__}.")
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise UserError("inputs must be a non-empty batch tensor shaped [B, *input_shape].")
    threat.check_input(x)
    return check_options(options)


def check_options(options: dict) -> dict:
    """The bound options with their defaults filled in; a UserError names a bad one (callers
    such as evaluation check before any work)."""
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise UserError(f"unknown bound option(s) {', '.join(sorted(unknown))}; the options are "
                        f"{', '.join(_OPTIONS)}.")
    beta = options.get("beta", 1.0)
    if not 0.0 <= float(beta) <= 1.0:
        raise UserError(f"beta must lie in [0, 1], got {beta!r}.")
    proj = options.get("proj")
    if proj is not None and (not isinstance(proj, int) or proj < 1):
        raise UserError(f"proj must be None (exact bounds) or a positive number of projections, got {proj!r}.")
    chunk = options.get("chunk_size")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise UserError(f"chunk_size must be a positive integer, got {chunk!r}.")
    direction = options.get("direction", "auto")
    if direction not in _DIRECTIONS:
        raise UserError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}.")
    iterations = options.get("iterations", DEFAULT_ITERATIONS)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserError(f"iterations must be a positive integer (alpha-crown's bound evaluations), got {iterations!r}.")
    step = options.get("step_size", DEFAULT_STEP_SIZE)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step < float("inf"):
        raise UserError(f"step_size must be a positive finite number (alpha-crown's Adam step), got {step!r}.")
    return dict(beta=float(beta), proj=proj, chunk_size=chunk, generator=options.get("generator"),
                direction=direction, iterations=iterations, step_size=float(step))


class Bounds:
    """Bounds of one model on one batch under one threat with one method.

    The pre-activation bounds are computed on first use and kept, so the margins,
    the robust loss and the unstable count of one batch share one computation.
    """

    @full_float32()  # a train-mode BatchNorm's statistics are computed while parsing
    def __init__(self, model, x, threat, method: str, **options):
        self.x, self.method = x, method
        self._engine = Engine(model, x, threat, method, **_check(model, x, threat, method, options))

    @full_float32()
    def preactivations(self) -> list:
        """(lower, upper) bounds on the input of every ReLU, in forward order (ReLUs inside
        residual blocks included), each shaped like that input — the bounds the method
        uses internally."""
        return self._engine.preactivation_bounds()

    @full_float32()
    def margins(self, y) -> torch.Tensor:
        """Lower bounds on f_y(x') − f_j(x') over x' ∈ x + S → [B, C]; entry y is 0.

        Positive entries everywhere but y certify the label at x."""
        return self._engine.margin_lower_bounds(self._labels(y))

    @full_float32()
    def robust_loss(self, y):
        """(Wong & Kolter's robust cross-entropy, certified error) of the batch.

        The loss is the mean cross-entropy of the logits −m (m the margin lower bounds),
        an upper bound on the worst-case cross-entropy over the threat set; the
        certified error (a 0-d tensor) is the fraction of inputs whose margins do not all exceed 0."""
        margins = self.margins(y)
        loss = F.cross_entropy(-margins, y.long())
        return loss, (~certified(margins, y)).to(margins.dtype).mean()  # a tensor: no host sync per step

    @full_float32()
    def unstable(self) -> tuple[int, int]:
        """(unstable ReLUs, all ReLUs) summed over the batch and the layers; unstable means
        ℓ < 0 < u (`relaxation.relus.unstable_mask`, the one definition)."""
        bounds = self.preactivations()
        count = sum(int(unstable_mask(lo, up).sum()) for lo, up in bounds)
        return count, sum(lo.numel() for lo, _ in bounds)

    @full_float32()
    def apply(self, z, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The model's top-level layers `start:stop` applied to z, with the maps these bounds
        describe: a train-mode BatchNorm normalises with the clean batch's statistics (kept
        fixed, so points other than the batch see the same function the bounds bound).
        Gradients reach the parameters.  TAPS runs its feature extractor and classifier on it."""
        for node in self._engine.graph.root.nodes[start:stop]:
            z = node.forward(z)
        return z

    def _labels(self, y):
        classes = 1
        for s in self._engine.graph.out_shape:
            classes *= s
        B = self.x.shape[0]
        if not isinstance(y, torch.Tensor) or y.shape != (B,) or y.dtype not in (torch.int64, torch.int32):
            raise UserError(f"labels must be an integer tensor of shape ({B},), one class index per input.")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise UserError(f"labels must lie in 0..{classes - 1} for a model with {classes} outputs.")
        return y.long()


def certified(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per input, whether every margin lower bound but the label's own exceeds 0 → bool [B]."""
    others = margins.scatter(1, y.long().unsqueeze(1), float("inf"))
    return (others > 0).all(1)


def margin_lower_bounds(model, x, y, threat, method, **options) -> torch.Tensor:
    """`Bounds(model, x, threat, method, **options).margins(y)`."""
    return Bounds(model, x, threat, method, **options).margins(y)


def preactivation_bounds(model, x, threat, method, **options) -> list:
    """`Bounds(model, x, threat, method, **options).preactivations()`."""
    return Bounds(model, x, threat, method, **options).preactivations()


def robust_loss(model, x, y, threat, method, **options):
    """`Bounds(model, x, threat, method, **options).robust_loss(y)`."""
    return Bounds(model, x, threat, method, **options).robust_loss(y)
