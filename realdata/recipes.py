"""Training configuration: the frozen `TrainConfig` and the named recipes that fill it.

A recipe is a `TrainConfig` instance per (dataset, method): ``RECIPES["paper"]`` holds
the hyperparameters of docs/PAPER.md §3–4, ``RECIPES["quick"]`` a CPU-scale version that
finishes a CIFAR-10-subset run on two cores in a few minutes.  Values the sources leave
open are marked in `INFERRED` (and with ``*`` in ``--help``).  `make_config` picks a
recipe and applies overrides; every field is also a command-line flag of
``python -m realdata.train``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace

from realdata.attacks import ATTACKS
from realdata.bounds import BOUND_METHODS, DEFAULT_ITERATIONS, DEFAULT_STEP_SIZE
from realdata.data import DATASETS
from realdata.evaluate import TIGHTEST_BOUNDS
from realdata.errors import UserError
from realdata.methods import CERTIFIED_METHODS, EPS_SHAPES, INITS, TRAIN_ATTACKS, TRAIN_METHODS, Schedule, check_method
from realdata.models import ARCHS
from realdata.synthetic import LINEAR_PRESETS, SPHERES_PRESETS, LinearConfig, SpheresConfig
from realdata.threats import NORMS
from realdata.validate import check_fields

OPTIMIZERS = ("sgd", "adam")
#: Evaluation choices derive from the registries: every attack, every bound method or none.
EVAL_ATTACKS = tuple(ATTACKS)
EVAL_BOUNDS = tuple(BOUND_METHODS) + ("none",)


def _f(default, help_text, **extra):
    """A dataclass field whose help text feeds the command line."""
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's numbers (and so its record's hash).

    Where the run is written, the data directory, the device and progress bars are run
    options of `train()`, not configuration: they do not change the result.
    """

    dataset: str = _f("cifar10", "dataset name", choices=DATASETS)
    method: str = _f("st", "training method", choices=TRAIN_METHODS)
    norm: str = _f("l2", "threat model (ε is in input/pixel space)", choices=NORMS)
    eps: float = _f(0.0, "budget ε, e.g. 0.5 or 36/255", eps=True)
    seed: int = _f(0, "seed of data subsets, initialisation, shuffling, augmentation and attacks")
    recipe: str = _f("quick", "name of the recipe the defaults came from (recorded, not interpreted)")
    # model and data
    arch: str = _f("mlp", "model architecture", choices=ARCHS)
    width: float | None = _f(None, "mlp: hidden units per layer; CNNs and resnet: a factor on every channel count")
    depth: int | None = _f(None, "number of hidden layers (mlp only)")
    train_size: int | None = _f(None, "seeded random subset of the training set (none = all)")
    test_size: int | None = _f(None, "seeded random subset of the test set (none = all)")
    data_params: dict = field(default_factory=dict, metadata={
        "help": "dataset parameters as key=value pairs, e.g. preset=2023,d=10 for spheres (see realdata.data.load_dataset)"})
    augment: bool = _f(True, "use the dataset's augmentation (random crop + flip on CIFAR-10)")
    k: int | None = _f(None, "number of random orthonormal directions of the 'directions' threat (drawn from the seed)")
    # optimisation
    epochs: int = _f(10, "training epochs")
    batch_size: int = _f(128, "global batch size (split across torchrun processes)")
    optimizer: str = _f("adam", "optimiser", choices=OPTIMIZERS)
    lr: float = _f(1e-3, "learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(0.0, "L2 weight decay")
    lr_milestones: tuple = _f((), "epochs after which the learning rate is multiplied by lr_gamma, e.g. 80,120")
    lr_gamma: float = _f(0.1, "learning-rate factor at each milestone")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value (none = no clipping)")
    # ε, β, κ schedules (realdata.methods.Schedule)
    warmup_epochs: float = _f(0.0, "epochs of clean training (ε = 0) before the ε ramp")
    ramp_epochs: float = _f(0.0, "epochs over which ε ramps linearly from eps_start to eps")
    eps_start: float = _f(0.0, "budget at the start of the ramp", eps=True)
    eps_shape: str = _f("linear", "shape of the ε ramp: linear, or auto_LiRPA's smoothed power-then-linear ramp "
                        "(FAST-IBP, SABR, MTL-IBP)", choices=EPS_SHAPES)
    beta_start: float = _f(1.0, "crown-ibp: weight of CROWN against IBP at the start of the ramp")
    beta_end: float = _f(0.0, "crown-ibp: weight of CROWN at the end of the ramp")
    kappa_start: float = _f(0.0, "crown-ibp/ibp: weight of the clean loss at the start of the ramp")
    kappa_end: float = _f(0.0, "crown-ibp/ibp: weight of the clean loss at the end of the ramp")
    # method details
    attack: str = _f("apgd", "at, mtl-ibp, cc-ibp, sabr: training attack (Auto-PGD on CE, PGD, or the exact "
                     "line search of one-dimensional threats)", choices=tuple(TRAIN_ATTACKS))
    attack_steps: int = _f(10, "at, mtl-ibp, cc-ibp, sabr: attack iterations per batch; taps: steps of the latent search")
    attack_restarts: int = _f(1, "at, mtl-ibp, cc-ibp, sabr: attack restarts per batch; taps: latent search restarts")
    attack_eps_factor: float = _f(1.0, "mtl-ibp, cc-ibp: the training attack's budget as a multiple of ε")
    proj: int | None = _f(None, "coap: random projections for the norm estimates in training (none = exact bounds)")
    ibp_coef: float = _f(0.5, "mtl-ibp, cc-ibp: α, the weight of the IBP part of the loss (1 = IBP, 0 = AT)")
    sabr_lambda: float = _f(0.4, "sabr: λ, the small region's radius as a fraction of ε (1 = IBP, 0 = AT at a PGD point)")
    taps_split: int = _f(1, "taps: ReLU layers in the classifier, counted from the end: IBP runs up to the one before, "
                         "PGD searches the latent box through the rest (0 = an affine classifier; published CNN7: 1)")
    taps_grad_scale: float = _f(5.0, "taps: w, the factor on L_TAPS's gradient in the loss L_TAPS·L_IBP")
    taps_soft_thre: float = _f(0.5, "taps: c, the gradient connector's soft threshold: a latent point's gradient "
                               "reaches a box bound when the point lies within c·(u − ℓ) of it")
    init: str = _f("default", "weight initialisation: the architecture's, or Shi et al.'s IBP initialisation "
                   "(fast-ibp)", choices=tuple(INITS))
    reg_lambda: float = _f(0.0, "weight of Shi et al.'s warm-up regularisers (bound tightness + ReLU balance), "
                           "fading to 0 as ε reaches its target (fast-ibp)")
    l1: float = _f(0.0, "L1 penalty on the Linear/Conv weights (SABR, MTL-IBP, CC-IBP)")
    alpha_iterations: int = _f(DEFAULT_ITERATIONS, "alpha-crown (evaluation bound or training): bound evaluations of "
                               "the slope optimisation, each but the last followed by an Adam step (1 = CROWN)")
    alpha_step_size: float = _f(DEFAULT_STEP_SIZE, "alpha-crown: Adam's step size on the slopes (decayed by 0.98 per step)")
    # evaluation
    eval_attack: str = _f("apgd", "evaluation attack (aa+ = AutoAttack-plus, needs the eval extra)", choices=EVAL_ATTACKS)
    eval_steps: int = _f(100, "evaluation attack iterations")
    eval_restarts: int = _f(1, "evaluation attack restarts")
    eval_bound: str = _f("coap", "bound for the certified error ('none' skips it)", choices=EVAL_BOUNDS)
    eval_tightest: bool = _f(True, f"also certify with the tightest bounds ({', '.join(TIGHTEST_BOUNDS)}), as a cascade "
                                   "over the points the attack did not break and no earlier bound certified, and record "
                                   "the error of the per-point best of all as certified_error_best")

    def __post_init__(self):
        self._canonicalise()
        check_method(self.method)
        for name in ("dataset", "arch", "method", "norm", "optimizer", "attack", "eval_attack", "eval_bound", "eps_shape",
                     "init"):
            choices = _FIELDS[name].metadata.get("choices")
            if getattr(self, name) not in choices:
                raise UserError(f"unknown {name.replace('_', '-')} {getattr(self, name)!r}; choose one of {', '.join(choices)}.")
        for name in ("eps", "eps_start", "lr", "momentum", "weight_decay", "lr_gamma", "warmup_epochs", "ramp_epochs",
                     "beta_start", "beta_end", "kappa_start", "kappa_end", "attack_eps_factor", "ibp_coef", "sabr_lambda",
                     "reg_lambda", "l1", "taps_grad_scale", "taps_soft_thre"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise UserError(f"{name.replace('_', '-')} must be a finite non-negative number, got {value!r}.")
        if isinstance(self.taps_split, bool) or not isinstance(self.taps_split, int) or self.taps_split < 0:
            raise UserError(f"taps-split counts ReLU layers and must be a non-negative integer, got {self.taps_split!r}.")
        if not (self.taps_grad_scale > 0 and 0 < self.taps_soft_thre <= 1):
            raise UserError(f"taps-grad-scale must be positive and taps-soft-thre in (0, 1], got "
                            f"{self.taps_grad_scale!r} and {self.taps_soft_thre!r}.")
        for name in ("epochs", "batch_size", "attack_steps", "attack_restarts", "eval_steps", "eval_restarts",
                     "alpha_iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)!r}.")
        if self.width is not None and not (isinstance(self.width, (int, float)) and self.width > 0):
            raise UserError(f"width must be a positive number or none, got {self.width!r}.")
        if self.arch == "mlp" and self.width is not None and self.width != int(self.width):
            raise UserError(f"an mlp's width counts hidden units and must be a whole number, got {self.width!r}.")
        for name in ("depth", "train_size", "test_size", "k", "proj"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"{name.replace('_', '-')} must be a positive integer or none, got {value!r}.")
        if self.lr == 0:
            raise UserError("lr must be positive.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserError(f"grad-clip must be positive or none, got {self.grad_clip!r}.")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(m < 1 for m in self.lr_milestones):
            raise UserError(f"lr-milestones must be increasing positive epochs, got {self.lr_milestones!r}.")
        if not (isinstance(self.alpha_step_size, (int, float)) and 0 < self.alpha_step_size < math.inf):
            raise UserError(f"alpha-step-size must be a positive finite number, got {self.alpha_step_size!r}.")
        if not self.attack_eps_factor > 0:
            raise UserError(f"attack-eps-factor must be positive, got {self.attack_eps_factor!r}.")
        for name in ("beta_start", "beta_end", "kappa_start", "kappa_end", "ibp_coef", "sabr_lambda"):
            if getattr(self, name) > 1:
                raise UserError(f"{name.replace('_', '-')} is a weight in [0, 1], got {getattr(self, name)!r}.")
        if self.norm == "directions" and self.k is None:
            raise UserError("the 'directions' threat needs --k, the number of random directions.")
        if not isinstance(self.data_params, dict):
            raise UserError("data_params must be a dict of dataset parameters.")
        check_fields(self)  # upper limits, and nothing non-finite anywhere (data_params included)

    def _canonicalise(self) -> None:
        """One spelling per value, so the record hash of `eps=1` equals that of `--eps 1.0`."""
        def put(name, value):
            object.__setattr__(self, name, value)  # frozen: only construction may normalise

        for f in fields(self):
            value = getattr(self, f.name)
            if str(f.type).startswith("float") and isinstance(value, int) and not isinstance(value, bool):
                put(f.name, float(value))
        if isinstance(self.width, float) and self.width.is_integer():
            put("width", int(self.width))  # a whole width is the same model, whichever way it was typed
        if isinstance(self.lr_milestones, list):
            put("lr_milestones", tuple(self.lr_milestones))

    @property
    def schedule(self) -> Schedule:
        return Schedule(warmup=self.warmup_epochs, ramp=self.ramp_epochs, eps_start=self.eps_start,
                        beta_start=self.beta_start, beta_end=self.beta_end,
                        kappa_start=self.kappa_start, kappa_end=self.kappa_end, shape=self.eps_shape)

    @property
    def name(self) -> str:
        """Short run name: the record is <out>/<name>-<config hash>.json."""
        return f"train-{self.dataset}-{self.method}-{self.norm}"


_FIELDS = {f.name: f for f in fields(TrainConfig)}

# --------------------------------------------------------------------------- recipes
#
# Each recipe is built from a per-dataset base by `replace`, so a value that all
# methods share is written once.  `_INFERRED[(recipe, dataset, method)]` names the
# fields whose values the sources do not give.

RECIPES: dict[str, dict[tuple[str, str], TrainConfig]] = {"quick": {}, "paper": {}}
INFERRED: dict[tuple[str, str, str], frozenset] = {}


def own_bound(method: str) -> str:
    """The bound a method's certified error is measured with: its own relaxation for the
    certified methods (an IBP-trained net is certified far better by IBP than by CROWN),
    the tightest engine (COAP) for st and at."""
    return CERTIFIED_METHODS.get(method, "coap")


def _add(recipe: str, base: TrainConfig, method: str, inferred=(), **changes) -> None:
    config = replace(base, method=method, recipe=recipe, **changes)
    RECIPES[recipe][(config.dataset, method)] = config
    INFERRED[(recipe, config.dataset, method)] = frozenset(inferred)


def _certified_family(recipe, base, coap, crown, inferred_coap=(), inferred_crown=()):
    """coap, crown-ibp, ibp, crown and alpha-crown (the last three share crown-ibp's schedule; β is unused;
    no source trains with CROWN or α-CROWN alone, so their whole schedule is inferred)."""
    for method, changes, inferred in (("coap", coap, inferred_coap), ("crown-ibp", crown, inferred_crown),
                                      ("ibp", crown, inferred_crown),
                                      ("crown", crown, set(crown) | set(inferred_crown)),
                                      ("alpha-crown", crown, set(crown) | set(inferred_crown))):
        _add(recipe, base, method, inferred, eval_bound=own_bound(method), **changes)


def _modern_family(base, methods: dict, inferred=frozenset()) -> None:
    """The certified-training methods since the paper with their published recipes: ℓ∞ on CNN7
    (with BatchNorm) in every source, Shi et al.'s IBP initialisation and warm-up regularisers,
    the smoothed ε ramp, Adam 5e-4 and lr ×0.2 steps; `methods` maps each to its own changes
    and the fields its sources leave open."""
    for method, (changes, own_inferred) in methods.items():
        _add("paper", base, method, set(inferred) | set(own_inferred), eval_bound=own_bound(method), arch="cnn7",
             **changes)


# Paper, CIFAR-10 (docs/PAPER.md §4): Wong et al.'s residual net for every method.
_cifar = TrainConfig(dataset="cifar10", eps=36 / 255, arch="resnet", epochs=150, batch_size=128, optimizer="sgd",
                     lr=0.05, momentum=0.9, weight_decay=5e-4, lr_milestones=(80, 120), lr_gamma=0.1,
                     eval_steps=100, eval_bound="coap")
# ST is not described; it shares AT's recipe.  AT's weight decay is not stated.
_add("paper", _cifar, "st", {"epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "lr_milestones"})
_add("paper", _cifar, "at", {"weight_decay"})
_certified_family(
    "paper", _cifar,
    # "lr ×0.5 every 10 epochs" after the 20-epoch ramp: halvings after epochs 30, 40, 50.
    coap=dict(batch_size=50, epochs=60, eps_start=0.001, ramp_epochs=20, lr_milestones=(30, 40, 50), lr_gamma=0.5,
              grad_clip=1.0, proj=50),
    crown=dict(epochs=2000, optimizer="adam", lr=5e-4, batch_size=256, weight_decay=0.0, warmup_epochs=100,
               ramp_epochs=800, lr_milestones=(1400, 1700), lr_gamma=0.1, kappa_start=1.0, kappa_end=0.0),
    inferred_crown={"warmup_epochs", "lr_milestones", "weight_decay", "kappa_start", "kappa_end"})

# TAPS (eth-sri/TAPS scripts/train_*, the paper's code): CNN7 split "17 4" (the classifier is the last
# ReLU layer, taps_split = 1), 20 latent PGD steps, one restart, w = 5 (`--alpha-box`), c = 0.5, IBP
# while ε ramps, cert weight 1 (no clean loss).  CIFAR-10 8/255: 161 epochs, decay ×0.2 at 121, 141,
# ε from epoch 1 to 81, λ = 0.5, L1 2e-6.  MNIST 0.3 (trained at 0.4): 70 epochs, decay at 50, 60,
# ε from 0 to 20.  Tiny ImageNet 1/255: 80 epochs, decay at 60, 70, ε from 1 to 21, λ = 0.1.
_TAPS = dict(attack_steps=20, attack_restarts=1, taps_split=1, taps_grad_scale=5.0, taps_soft_thre=0.5)

# Since the paper, CIFAR-10 at ℓ∞ 8/255 (the budget all four sources publish).  FAST-IBP: Shi et al.'s
# README (start=2,length=80: one clean epoch, then an 80-epoch ramp; 160 epochs, decay at 120, 140;
# batch 128; gradient norm 10).  MTL-IBP / CC-IBP: the expressive-losses README (260 epochs, decay at
# 180, 220; α = 0.5; one attack step of 10ε from a random start, our PGD-1; L1 1e-7 / 0); its batch
# size sits in a config file the README does not show.  SABR: its README (λ = 0.7, 180 epochs, decay
# at 140, 160; ε from epoch 2 to 82; PGD-8 for the box centre; no gradient clipping; its bound
# regulariser taken to be Shi et al.'s at the default weight 0.5).
_modern_cifar = replace(_cifar, norm="linf", eps=8 / 255, optimizer="adam", lr=5e-4, batch_size=128, weight_decay=0.0,
                        lr_gamma=0.2, eps_shape="smoothed", init="ibp", reg_lambda=0.5, grad_clip=10.0,
                        warmup_epochs=1.0, ramp_epochs=80.0)
_modern_family(_modern_cifar, {
    "fast-ibp": (dict(epochs=160, lr_milestones=(120, 140)), ()),
    "mtl-ibp": (dict(epochs=260, lr_milestones=(180, 220), ibp_coef=0.5, l1=1e-7, attack="pgd", attack_steps=1),
                {"batch_size"}),
    "cc-ibp": (dict(epochs=260, lr_milestones=(180, 220), ibp_coef=0.5, attack="pgd", attack_steps=1), {"batch_size"}),
    "sabr": (dict(epochs=180, lr_milestones=(140, 160), warmup_epochs=2.0, sabr_lambda=0.7, attack="pgd",
                  attack_steps=8, grad_clip=None), {"reg_lambda"}),
    "taps": (dict(epochs=161, lr_milestones=(121, 141), **_TAPS, l1=2e-6), ()),
})

# Paper, Tiny ImageNet (docs/PAPER.md §4 names it as optional and gives no recipe): the paper's methods
# run their CIFAR-10 recipes, at ℓ∞ 1/255 as CTBench; the architecture is INFERRED.  Since the paper (CTBench's setting, ℓ∞ 1/255 on CNN7): FAST-IBP from Shi et
# al.'s README (start=2,length=20, 80 epochs, decay at 61, 71, λ = 0.2, batch 128 = 2 × 64 accumulated),
# MTL-IBP and CC-IBP from expressive-losses' (α = 0.01, L1 5e-5, λ = 0.2, 160 epochs, decay at 120, 140,
# one attack step), SABR from its README (λ = 0.4, L1 1e-6, 180 epochs, decay at 140, 160).
for _method in ("st", "at", "coap", "crown-ibp", "ibp", "crown", "alpha-crown"):
    _add("paper", replace(RECIPES["paper"][("cifar10", _method)], dataset="tiny-imagenet", norm="linf", eps=1 / 255),
         _method, INFERRED[("paper", "cifar10", _method)] | {"arch"})
_modern_tin = replace(_modern_cifar, dataset="tiny-imagenet", eps=1 / 255, reg_lambda=0.2)
_modern_family(_modern_tin, {
    "fast-ibp": (dict(epochs=80, lr_milestones=(61, 71), ramp_epochs=20.0), ()),
    "mtl-ibp": (dict(epochs=160, lr_milestones=(120, 140), ibp_coef=0.01, l1=5e-5, attack="pgd", attack_steps=1), ()),
    "cc-ibp": (dict(epochs=160, lr_milestones=(120, 140), ibp_coef=0.01, l1=5e-5, attack="pgd", attack_steps=1), ()),
    "sabr": (dict(epochs=180, lr_milestones=(140, 160), warmup_epochs=2.0, sabr_lambda=0.4, l1=1e-6, attack="pgd",
                  attack_steps=8, grad_clip=None, reg_lambda=0.5), {"reg_lambda"}),
    "taps": (dict(epochs=80, lr_milestones=(60, 70), ramp_epochs=20.0, reg_lambda=0.1, **_TAPS), ()),
})

# Paper, MNIST (docs/PAPER.md §4); Fashion-MNIST has no recipe of its own and uses MNIST's.
for _name in ("mnist", "fashion-mnist"):
    _mnist = TrainConfig(dataset=_name, eps=1.0, arch="mnist-large", epochs=100, batch_size=128, optimizer="adam",
                         lr=1e-3, lr_milestones=(40, 80), lr_gamma=0.1, augment=False, eval_steps=100)
    _fm = {"arch", "epochs", "batch_size", "optimizer", "lr", "lr_milestones"} if _name == "fashion-mnist" else set()
    _add("paper", _mnist, "st", {"epochs", "batch_size", "optimizer", "lr", "lr_milestones"} | _fm)
    _add("paper", _mnist, "at", _fm)
    _certified_family(
        "paper", _mnist,
        coap=dict(batch_size=50, epochs=60, eps_start=0.01, ramp_epochs=20, lr_milestones=(30, 40, 50), lr_gamma=0.5,
                  proj=50),
        crown=dict(epochs=200, lr=5e-4, batch_size=256, warmup_epochs=10, ramp_epochs=50, lr_milestones=(130, 190),
                   lr_gamma=0.1, kappa_start=1.0, kappa_end=0.0),
        inferred_coap={"lr_milestones", "lr_gamma", "proj"} | _fm,
        inferred_crown={"warmup_epochs", "lr_milestones", "kappa_start", "kappa_end"} | _fm)
    # Since the paper, MNIST at ℓ∞ 0.3: FAST-IBP (Shi et al.: start=1,length=20, 70 epochs, decay at 50, 60,
    # batch 256; their config trains at 0.4), MTL-IBP α = 0.08, L1 1e-6 and CC-IBP α = 0.3, L1 3e-6
    # (expressive-losses; both also train at 1.334·ε, which this toolkit does not model), SABR λ = 0.6,
    # L1 1e-6, ε from epoch 2 to 22.
    _modern_mnist = replace(_mnist, norm="linf", eps=0.3, lr=5e-4, batch_size=256, lr_gamma=0.2, epochs=70,
                            lr_milestones=(50, 60), eps_shape="smoothed", init="ibp", reg_lambda=0.5, grad_clip=10.0,
                            ramp_epochs=20.0)
    _modern_family(_modern_mnist, {
        "fast-ibp": ({}, {"eps"}),
        "mtl-ibp": (dict(ibp_coef=0.08, l1=1e-6, attack="pgd", attack_steps=1), ()),
        "cc-ibp": (dict(ibp_coef=0.3, l1=3e-6, attack="pgd", attack_steps=1), ()),
        "sabr": (dict(warmup_epochs=2.0, sabr_lambda=0.6, l1=1e-6, attack="pgd", attack_steps=8, grad_clip=None),
                 {"reg_lambda"}),
        "taps": (dict(_TAPS), {"eps"}),
    }, inferred=_fm)

# The synthetic experiments (docs/PAPER.md §2, §3): their settings live in `realdata.synthetic`
# and are translated here, so `realdata.train --dataset spheres` and `simulate.spheres`
# train the same thing.

def from_synthetic(config: LinearConfig | SpheresConfig, lr: float | None = None) -> TrainConfig:
    """The TrainConfig of one run of a synthetic experiment's config at learning rate `lr`.

    `lr=None` takes the middle of the config's grid: what a single `realdata.train` run
    uses, since only `simulate`'s learning-rate search applies the papers' rule.
    """
    common = dict(dataset=config.dataset, method=config.method, eps=config.eps, seed=config.seed, arch="mlp",
                  width=config.width, depth=1, epochs=config.epochs, batch_size=min(config.batch_size, config.n),
                  optimizer="sgd", lr=config.lrs[len(config.lrs) // 2] if lr is None else lr,
                  momentum=config.momentum, augment=False, attack_steps=config.at_steps,
                  eval_bound=own_bound(config.method), data_params=config.data_params(),
                  # one hidden layer: TAPS's classifier is the affine output layer (its search is exact there)
                  taps_split=0,
                  recipe="quick" if config.preset == "quick" else "paper")
    if isinstance(config, LinearConfig):
        # perturbations along e₁ only; the worst case along it is found exactly
        return TrainConfig(**common, norm="directions", k=1, attack=config.at_attack, eval_attack="line-search")
    return TrainConfig(**common, norm=config.norm, k=config.k, eval_attack=config.eval_attack,
                       eval_steps=config.eval_steps, eval_restarts=config.eval_restarts)


for _recipe, _preset in (("paper", "2022"), ("quick", "quick")):
    for _method in TRAIN_METHODS:
        # the spheres recipe of the 2022 paper; lr is the search's, the batch size and bound INFERRED
        _add(_recipe, from_synthetic(replace(SPHERES_PRESETS[_preset], method=_method)), _method,
             {"lr", "batch_size", "eval_bound"} if _recipe == "paper" else ())
        _add(_recipe, from_synthetic(replace(LINEAR_PRESETS[_recipe], method=_method)), _method,
             {"lr", "batch_size", "momentum"} if _recipe == "paper" else ())

# Quick (CPU) recipes: the same methods and schedules in miniature.  Every value is a
# scale choice of this toolkit, not the paper's (--help says so once for all of them).
_QUICK = {
    # sized so the slowest cell (COAP: projected bounds in training, exact ones for the
    # certified error) takes a few minutes on two CPU cores
    "cifar10": TrainConfig(dataset="cifar10", eps=36 / 255, arch="cifar-cnn", width=0.5, train_size=2000,
                           test_size=500, epochs=6, batch_size=50, optimizer="adam", lr=1e-3, eval_steps=20),
    "mnist": TrainConfig(dataset="mnist", eps=1.0, arch="mnist-small", width=0.5, train_size=2000, test_size=500,
                         epochs=6, batch_size=50, optimizer="adam", lr=1e-3, augment=False, eval_steps=20),
    "digits": TrainConfig(dataset="digits", eps=0.5, arch="mlp", width=100, depth=2, epochs=20, batch_size=50,
                          optimizer="adam", lr=1e-3, augment=False, eval_steps=20),
}
_QUICK["fashion-mnist"] = replace(_QUICK["mnist"], dataset="fashion-mnist")
_QUICK["tiny-imagenet"] = replace(_QUICK["cifar10"], dataset="tiny-imagenet", norm="linf", eps=1 / 255)
# the methods since the paper at quick scale: their published structure (IBP init, warm-up regularisers,
# smoothed ramp) with a middle value of each one's published α or λ and a 5-step PGD
_QUICK_MODERN = {"fast-ibp": {}, "mtl-ibp": dict(ibp_coef=0.1, attack="pgd", attack_steps=5),
                 "cc-ibp": dict(ibp_coef=0.1, attack="pgd", attack_steps=5),
                 "sabr": dict(sabr_lambda=0.4, attack="pgd", attack_steps=5),
                 "taps": dict(attack_steps=5, taps_split=1)}
# The interval methods' final weight of the clean loss.  On the CIFAR-10 subset in ℓ2 the
# interval bounds at 108/255 cover ±0.42 of every pixel, and with κ → 0 CROWN-IBP collapsed
# to chance (standard error 0.926, measured); κ → 0.5 is Gowal et al.'s (2018) IBP schedule.
_QUICK_KAPPA_END = {"cifar10": 0.5}
for _name, _base in _QUICK.items():
    _ramp = max(1.0, _base.epochs / 2)  # half the run ramps, the rest trains at the full budget
    for _method in TRAIN_METHODS:
        _extra = {}
        if _method == "at":
            # without a ramp, AT on the CIFAR-10 subset at 108/255 stayed at chance (0.926, measured)
            _extra = dict(ramp_epochs=_ramp)
        elif _method == "coap":
            _extra = dict(ramp_epochs=_ramp, eps_start=min(0.001, _base.eps),
                          proj=50 if _name in ("cifar10", "mnist", "fashion-mnist", "tiny-imagenet") else None)
        elif _method in ("crown-ibp", "ibp", "crown", "alpha-crown"):
            _extra = dict(warmup_epochs=min(1.0, _base.epochs / 10), ramp_epochs=_ramp, kappa_start=1.0,
                          kappa_end=_QUICK_KAPPA_END.get(_name, 0.0))
        elif _method in _QUICK_MODERN:
            _extra = dict(warmup_epochs=min(1.0, _base.epochs / 10), ramp_epochs=_ramp, eps_shape="smoothed",
                          init="ibp", reg_lambda=0.5, **_QUICK_MODERN[_method])
        _add("quick", _base, _method, (), eval_bound=own_bound(_method), **_extra)


def make_config(dataset: str, method: str, recipe: str = "quick", **overrides) -> TrainConfig:
    """The recipe's configuration for (dataset, method) with `overrides` applied (None = keep)."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    check_method(method)
    datasets = sorted({d for d, _ in RECIPES[recipe]})
    if (dataset, method) not in RECIPES[recipe]:
        raise UserError(f"recipe {recipe!r} has no entry for dataset {dataset!r}; choose one of {', '.join(datasets)}.")
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise UserError(f"unknown configuration field(s) {', '.join(unknown)}; see python -m realdata.train --help.")
    base = RECIPES[recipe][(dataset, method)]
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes.get("arch", base.arch) != base.arch:
        # width and depth mean different things per architecture (an mlp's 100 hidden units
        # would be a 100x channel factor on a CNN), so the recipe's values stay with its own
        # architecture; a new one starts from its builder's defaults unless they are given.
        changes = {"width": None, "depth": None, **changes}
    return replace(base, **changes)


#: methods that train at an attack's point (the attack flags matter to them)
_ATTACKING = ("at", "mtl-ibp", "cc-ibp", "sabr")


def describe_recipes(recipes=None, datasets=None, methods=None) -> str:
    """A compact table of the recipes (default: all) for --help, optionally only for some
    datasets and methods; INFERRED values carry a '*'."""
    shown = ("norm", "eps", "arch", "width", "depth", "train_size", "test_size", "epochs", "batch_size", "optimizer", "lr",
             "momentum", "weight_decay", "lr_milestones", "lr_gamma", "grad_clip", "warmup_epochs", "ramp_epochs",
             "eps_start", "eps_shape", "kappa_start", "attack", "attack_steps", "attack_eps_factor", "ibp_coef",
             "sabr_lambda", "taps_split", "taps_grad_scale", "taps_soft_thre", "init", "reg_lambda", "l1", "proj",
             "eval_bound")
    # a method's own parameters are shown for it even at their defaults, and never for the others
    own = {"attack": _ATTACKING, "attack_steps": _ATTACKING + ("taps",), "attack_eps_factor": ("mtl-ibp", "cc-ibp"),
           "ibp_coef": ("mtl-ibp", "cc-ibp"), "sabr_lambda": ("sabr",), "taps_split": ("taps",),
           "taps_grad_scale": ("taps",), "taps_soft_thre": ("taps",)}
    lines = []
    for recipe, table in RECIPES.items():
        if recipes is not None and recipe not in recipes:
            continue
        for (dataset, method), config in table.items():
            if (datasets is not None and dataset not in datasets) or (methods is not None and method not in methods):
                continue
            inferred = INFERRED[(recipe, dataset, method)]
            default = TrainConfig()
            parts = []
            for name in shown:
                value = getattr(config, name)
                if name == "momentum" and config.optimizer != "sgd":
                    continue
                if name in own and method not in own[name]:
                    continue
                if value == getattr(default, name) and name not in ("eps", "arch", "epochs", "lr", "optimizer",
                                                                    "batch_size", *own):
                    continue
                text = ",".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) else str(value)
                parts.append(f"{name}={text}{'*' if name in inferred else ''}")
            lines.append(f"  {recipe:5s} {dataset:13s} {method:9s} " + " ".join(parts))
    return "\n".join(lines)


def config_fields():
    """The dataclass fields of TrainConfig (for the CLI and the docs)."""
    return dataclasses.fields(TrainConfig)
