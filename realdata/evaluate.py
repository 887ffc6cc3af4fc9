"""Evaluation: every number the toolkit reports about one model on one split.

`evaluate` returns standard error, robust error under a named attack, certified
error and the unstable-ReLU fraction under a named bound method, per-class
errors with the accuracy discrepancy of Sanyal et al. (2022) (docs/PAPER.md §1), and
the alignment of the attack's perturbations with the data's signal direction.

A point is robust only if it is classified correctly and the attack did not
break it.  A point the bound certifies can never be broken; if an attack does
break one, the bound or the attack is wrong and `evaluate` stops with an error
rather than report inconsistent numbers.
"""
from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from realdata.attacks import ATTACKS, check_attack_input, check_box, run_attack
from realdata.distributed import Context
from realdata.errors import UserError
from realdata.precision import full_float32
from realdata.streams import generator
from realdata.threats import Threat

DEFAULT_BATCH_SIZE = 256
#: The tightest bounds: COAP and α-CROWN (never looser than CROWN, its first iterate); neither
#: dominates the other, so the tightest certificate is the per-point best of both.  Cheapest
#: first: evaluation runs them as a cascade, and α-CROWN costs ~40 CROWN passes.
TIGHTEST_BOUNDS = ("coap", "alpha-crown")


def accuracy_discrepancy(per_class_errors, error: float) -> float:
    """(max_k R^k − R) / (1 − R) for per-class errors R^k and overall error R.

    0 when every class is equally wrong; 1 when some class is never right.
    Classes absent from the split are given as None and skipped.  When every
    point is wrong (R = 1) the formula is 0/0; every class is then never right,
    so the result is 1 — the limit of the formula as R → 1 with max_k R^k = 1 —
    rather than 0, which would read as "perfectly fair" for a useless model.
    """
    present = [float(e) for e in per_class_errors if e is not None]
    if not present:
        raise UserError("the accuracy discrepancy needs the error of at least one class; the split is empty.")
    if not all(0.0 <= e <= 1.0 for e in present + [float(error)]):
        raise UserError(f"errors must lie in [0, 1]; got per-class {present} and overall {error}.")
    if error >= 1.0:
        return 1.0
    return (max(present) - error) / (1.0 - error)


def _per_class(wrong: torch.Tensor, y: torch.Tensor, num_classes: int) -> list:
    counts = torch.bincount(y, minlength=num_classes)
    errors = torch.bincount(y, weights=wrong.double(), minlength=num_classes)
    return [float(e / c) if c > 0 else None for e, c in zip(errors.tolist(), counts.tolist())]


def _cosine_to_signal(delta: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """Cosine between each non-zero perturbation and its signal direction (zero perturbations dropped)."""
    d, s = delta.reshape(delta.shape[0], -1).double(), signal.reshape(signal.shape[0], -1).double()
    norm = d.norm(dim=1)
    keep = norm > 0
    return (d[keep] * s[keep]).sum(1) / (norm[keep] * s[keep].norm(dim=1).clamp_min(1e-300))


def _model_device(model) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_inputs(model, x, y, threat, attack, bounds, bound_options, num_classes, batch_size, box):
    if x.shape[0] == 0:
        raise UserError("the split to evaluate is empty; check train_size/test_size or the data directory.")
    if attack not in ATTACKS:
        raise UserError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}.")
    if int(batch_size) < 1:
        raise UserError(f"the batch size must be at least 1, got {batch_size}.")
    from realdata.bounds import BOUND_METHODS, check_options

    for bound in bounds:
        if bound not in BOUND_METHODS:
            raise UserError(f"unknown bound method {bound!r}; choose one of {', '.join(BOUND_METHODS)} (or None).")
    check_options(bound_options)
    check_attack_input(model, x[:1].to(_model_device(model)), y[:1].to(_model_device(model)), threat, box)
    check_box(x, box)
    with torch.no_grad():
        outputs = model(x[:1].to(_model_device(model))).shape[1]
    if num_classes is not None and num_classes != outputs:
        raise UserError(f"the dataset has {num_classes} classes but the model has {outputs} outputs; "
                        "build the model for this dataset.")
    if int(y.min()) < 0 or int(y.max()) >= outputs:
        raise UserError(f"labels range over [{int(y.min())}, {int(y.max())}] but the model has {outputs} outputs; "
                        "build the model with one output per class.")
    return outputs


def _certify(model, x, y, threat, bound, bound_options):
    """Per point, certified or not, and the ReLUs of the batch, (unstable, all) — one bound
    computation serves both."""
    from realdata.bounds import Bounds, certified

    with torch.no_grad():
        bounds = Bounds(model, x, threat, bound, **bound_options)
        return certified(bounds.margins(y), y), *bounds.unstable()


def _attack_batch(model, x, y, threat, attack, signal, box, attack_options):
    """Per point of one batch: classified correctly, broken by the attack; and the alignment cosines."""
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    # alignment describes the attack on every point, so with a signal all points
    # are attacked; otherwise misclassified points are not robust anyway
    target = torch.ones_like(ok) if signal is not None else ok
    broken, cosines = torch.zeros_like(ok), None
    if bool(target.any()):
        idx = target.nonzero()[:, 0]
        x_adv = run_attack(attack, model, x[idx], y[idx], threat, box=box, **attack_options)
        if not bool(threat.contains(x_adv - x[idx]).all()):
            raise RuntimeError(f"attack {attack!r} left the threat set {threat}; this is a bug in the attack.")
        with torch.no_grad():
            broken[idx] = model(x_adv).argmax(1) != y[idx]
        direction = signal(x[idx], y[idx]) if signal is not None else None
        if direction is not None:  # a dataset's signal(x, y) is None when it defines none
            cosines = _cosine_to_signal(x_adv - x[idx], direction.to(x.device)).cpu()
    return ok, broken, cosines


def _error(wrong: torch.Tensor) -> float:
    return wrong.double().mean().item()


def _evaluate_batch(model, x, y, threat, attack, bound, bound_options, signal, box, attack_options,
                    also_bounds=()) -> dict:
    """Every per-point result of one batch, as CPU tensors (what the processes gather)."""
    ok, broken, cos = _attack_batch(model, x, y, threat, attack, signal, box, attack_options)
    out = {"correct": ok.cpu(), "broken": broken.cpu(), "cosines": cos, "certified": None, "unstable": 0, "units": 0}
    if bound is not None:
        cert, out["unstable"], out["units"] = _certify(model, x, y, threat, bound, bound_options)
        out["certified"] = cert.cpu()
        # a cascade, as certification pipelines run (CTBench: IBP, CROWN-IBP, α-CROWN, ...):
        # each extra bound sees only the points that no bound before it certified and the
        # attack did not break, since no sound bound certifies a broken or misclassified point
        left, out["also"] = ok & ~broken & ~cert, {}
        for other in also_bounds:
            out["also"][other] = _certify_only(model, x, y, left, threat, other, bound_options)
            left = left & ~out["also"][other].to(left.device)
    return out


def _certify_only(model, x, y, which, threat, bound, bound_options) -> torch.Tensor:
    """Per point, certified by `bound` or not, computed on the points `which` only (False elsewhere)."""
    cert = torch.zeros_like(which, device="cpu")
    if bool(which.any()):
        idx = which.nonzero()[:, 0]
        cert[idx.cpu()] = _certify(model, x[idx], y[idx], threat, bound, bound_options)[0].cpu()
    return cert


def _best_of(certified: torch.Tensor, parts: list, also_bounds) -> dict:
    """Certified error under the per-point best of all bounds, and the fraction of points each
    extra bound certified that none before it did (nothing without extras)."""
    if not also_bounds:
        return {}
    any_certified, added = certified.clone(), {}
    for name in also_bounds:
        cert = torch.cat([p["also"][name] for p in parts])
        added[name] = cert.double().mean().item()
        any_certified |= cert
    return {"certified_added_by_bound": added, "certified_error_best": _error(~any_certified)}


def _batch_options(attack_options: dict, attack_seed, start: int, device) -> dict:
    """The attack's options for the batch that begins at point `start`: with `attack_seed`, a
    random stream of its own, so a batch draws the same starts whichever process runs it."""
    if attack_seed is None:
        return attack_options
    return {**attack_options, "generator": generator(attack_seed, f"evaluation-batch:{start}", device)}


# The clean forward and the attack run in IEEE float32 like the bounds: a point certified in
# float32 but read as broken under TF32 would stop the evaluation as unsound.
@full_float32()
def evaluate(model, x, y, threat: Threat, attack: str = "apgd", bound: str | None = "coap", bound_options=None,
             num_classes: int | None = None, signal=None, box=None, batch_size: int = DEFAULT_BATCH_SIZE,
             device=None, progress: bool = True, context: Context | None = None, attack_seed: int | None = None,
             also_bounds=(), **attack_options) -> dict:
    """Evaluate `model` on (x, y) under `threat`; see docs/ARCHITECTURE.md for the keys returned.

    `signal(x, y)` gives the unit signal direction of each point (or is None);
    `bound=None` skips the certified error and unstable fraction; `bound_options` (a dict) go to
    `realdata.bounds.Bounds` for every bound, e.g. alpha-crown's ``iterations`` and
    ``step_size``.  `also_bounds` certifies
    with more bound methods: every bound is sound, so a point certified by any of them is
    certified, and `certified_error_best` counts the points none of them certifies.  They run
    as a cascade in the order given, each on the points that survived the attack and that no
    bound before it certified (no sound bound certifies a broken point); the fraction each one
    adds is `certified_added_by_bound`.  The `bound` itself runs on every point, and a point
    it certifies that the attack broke stops the evaluation as unsound.  The
    model is evaluated in eval mode on `device` (default: where its parameters are).

    `context` (a `realdata.distributed.Context`, under torchrun): every process evaluates one
    batch per round and the per-point results are gathered after each round, so every process
    returns the whole result and no process waits longer than one batch.  `attack_seed` gives
    each batch its own random stream (for attacks that take a generator), so the numbers do
    not depend on the number of processes.
    """
    ctx = context or Context()
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise UserError(f"expected one label per input: {x.shape[0]} inputs but labels of shape {tuple(y.shape)}.")
    device = torch.device(device) if device is not None else _model_device(model)
    # evaluate a copy so the caller's model keeps its device and train/eval mode
    model = copy.deepcopy(model).to(device).eval()
    threat = threat.to(device)
    also_bounds = [b for b in dict.fromkeys(also_bounds) if b != bound] if bound is not None else []
    bound_options = dict(bound_options or {})
    outputs = _check_inputs(model, x, y, threat, attack, [b for b in (bound, *also_bounds) if b is not None],
                            bound_options, num_classes, batch_size, box)
    num_classes = outputs if num_classes is None else num_classes

    parts = []
    rounds = range(0, x.shape[0], batch_size * ctx.world_size)
    for first in tqdm(rounds, desc=f"evaluate {attack}", disable=not progress, leave=False):
        start = first + ctx.rank * batch_size
        mine = None
        if start < x.shape[0]:
            xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
            mine = _evaluate_batch(model, xb, yb, threat, attack, bound, bound_options, signal, box,
                                   _batch_options(attack_options, attack_seed, start, device), also_bounds)
        parts += [part for part in ctx.gather(mine) if part is not None]  # rank order = point order

    correct, broken = torch.cat([p["correct"] for p in parts]), torch.cat([p["broken"] for p in parts])
    robust, y = correct & ~broken, y.cpu()
    certified = torch.cat([p["certified"] for p in parts]) if bound is not None else None
    if bound is not None:
        # checked on the gathered results, so every process stops alike
        unsound = certified & (broken | ~correct)  # x itself lies in the set, so a certified point is correct too
        if bool(unsound.any()):
            raise RuntimeError(f"{int(unsound.sum())} points certified by the {bound!r} bound were misclassified or "
                               f"broken by attack {attack!r}; the bound or the attack is unsound.")
    unstable, units = sum(p["unstable"] for p in parts), sum(p["units"] for p in parts)
    standard_error, robust_error = _error(~correct), _error(~robust)
    per_class_standard = _per_class(~correct, y, num_classes)
    per_class_robust = _per_class(~robust, y, num_classes)
    cosines = [p["cosines"] for p in parts if p["cosines"] is not None]
    all_cosines = torch.cat(cosines) if cosines else torch.empty(0)
    return {
        "n": int(x.shape[0]),
        "standard_error": standard_error,
        "robust_error": robust_error,
        "attack": attack,
        "certified_error": _error(~certified) if bound is not None else None,
        "bound": bound,
        **(_best_of(certified, parts, also_bounds) if bound is not None else {}),
        "per_class_standard_error": per_class_standard,
        "per_class_robust_error": per_class_robust,
        "acc_disc": accuracy_discrepancy(per_class_standard, standard_error),
        "robust_acc_disc": accuracy_discrepancy(per_class_robust, robust_error),
        "unstable_fraction": None if bound is None else (unstable / units if units else 0.0),
        "alignment": all_cosines.mean().item() if all_cosines.numel() else None,
    }
