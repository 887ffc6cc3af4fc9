"""Threat models: the one definition of each perturbation set in the toolkit.

Attacks, bounds, training and evaluation all take a `Threat`.  A threat is a set
S of perturbations δ (added to an input x) with radius `eps`, always measured in
input (pixel) space.  Each threat knows

* `support(nu)`   — σ_S(ν) = max_{δ∈S} ⟨ν, δ⟩, the conjugate term of every
  linear-relaxation bound (ε‖ν‖_* for a norm ball);
* `project(delta)` — the Euclidean projection of δ onto S (attacks);
* `ascent(grad)`   — the steepest-ascent direction of unit size w.r.t. S's
  geometry (sign for ℓ∞, normalised gradient for ℓ2, best signed direction for
  `Directions`), which attacks multiply by a step size;
* `sample(shape)`  — random points of S (random starts, soundness tests);
* `radius(delta)`  — the smallest ε for which δ ∈ S (membership checks).

and the fast paths of the bounds engine, so that the engine never asks which
threat it holds.  The base class answers each from `support` alone (exact,
just slower); each threat overrides what it can do in closed form:

* `row_support(rows)` — σ_S of every row of an affine map known only by how it
  acts (`rows.linear`, and `rows.power(t, p)` = Σ_i |a_ki|^p t_i when exact);
* `pulled_support(lam, linear)` — σ_S(Aᵀλ) of per-example coefficients λ on the output
  of a linear map A (the output pass through an MLP's narrowing first layer);
* `column_support(cols, in_shape)` — σ_S of rows stored as columns [b, n_in, m];
* `box_radius(x)` — the half-widths σ_S(e_i) of the box around S;
* `patch_support(values, grab)` — σ_S of rows known on a window of the input
  (`supports_patches` says whether the threat has one);
* `forward_basis(x, proj, generator)` — the input columns of a forward
  (dual-network) pass and how they widen a bound, or None for the identity.

All methods treat the leading dimension as the batch and every other dimension
as the input, so images [B, C, H, W] and vectors [B, d] are handled alike.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from realdata.errors import UserError


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def random_draws(kind: str, shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Cauchy or Gaussian draws on the generator's device, moved to `like`'s (a CPU generator
    keeps runs reproducible whatever the device)."""
    device = generator.device if generator is not None else like.device
    if kind == "cauchy":
        # tan(π(U − ½)) is standard Cauchy; torch's cauchy_ draws it element by element on the
        # CPU, ~3x the time of a uniform draw plus tan (0.93 s against 0.34 s for 10M draws), and
        # COAP's projected training draws 50 per unstable neuron and example (benchmarks/training.py)
        t = torch.rand(shape, dtype=like.dtype, device=device, generator=generator)
        t = t.sub_(0.5).mul_(math.pi).tan_()
    else:
        t = torch.empty(shape, dtype=like.dtype, device=device).normal_(generator=generator)
    return t.to(like.device)


def abs_median(p: torch.Tensor) -> torch.Tensor:
    """The median of |p| over dim 1 ([b, k, m] → [b, m]), the projections' norm estimate.

    The median is located without autograd and then gathered, so the backward pass scatters
    one value per (b, m) instead of going through |p| whole (~20% less time than
    ``p.abs().median(1)`` forward and backward on [50, 50, 4096])."""
    return p.gather(1, median_index(p)).squeeze(1).abs()


def median_index(p: torch.Tensor) -> torch.Tensor:
    """Where the median of |p| over dim 1 lies ([b, k, m] → [b, 1, m]), found without autograd;
    torch's (lower) median, the entry at sorted position (k − 1) // 2."""
    with torch.no_grad():
        if p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64):
            # numpy's introselect takes about half the time of torch's CPU median, which copies
            # each slice out; on lanes made contiguous (|p| written as [b, m, k] in one pass) about
            # half again: 31 ms against 45-60 ms along the strided axis on [17, 50, 4096], one
            # thread, the largest selection of a projected COAP training step of the CIFAR CNN
            lanes = torch.empty((p.shape[0],) + tuple(p.shape[2:]) + (p.shape[1],), dtype=p.dtype)
            torch.abs(p.detach().movedim(1, -1), out=lanes)
            kth = (p.shape[1] - 1) // 2
            return torch.from_numpy(np.argpartition(lanes.numpy(), kth, axis=-1)[..., kth]).unsqueeze(1)
        a = p.detach().abs()
        return a.median(1, keepdim=True).indices


#: median of |N(0, 1)| = Φ⁻¹(3/4); the median of |g·v| for Gaussian g is this times ‖v‖₂
GAUSS_MEDIAN = 0.6744897501960817
_ROWS = 1024  # identity rows per support evaluation in the generic box


def _symmetric(s):
    return -s, s


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a [B] tensor so it broadcasts against `like` ([B, ...])."""
    return values.reshape((-1,) + (1,) * (like.dim() - 1))


@dataclass(frozen=True)
class Threat(ABC):
    eps: float

    #: short name used on the command line and in records ("linf", "l2", "directions")
    norm: str = field(init=False, default="")

    def __post_init__(self):
        if not isinstance(self.eps, (int, float)) or math.isnan(self.eps) or self.eps < 0:
            raise UserError(f"eps must be a non-negative number, got {self.eps!r}; pass e.g. --eps 0.5 or --eps 36/255.")

    # -- interface -------------------------------------------------------
    @abstractmethod
    def support(self, nu: torch.Tensor) -> torch.Tensor:
        """max over δ∈S of ⟨ν, δ⟩ for each leading index of ν ([N, *input] → [N])."""

    @abstractmethod
    def project(self, delta: torch.Tensor) -> torch.Tensor:
        """See the module docstring."""

    @abstractmethod
    def ascent(self, grad: torch.Tensor) -> torch.Tensor:
        """See the module docstring."""

    @abstractmethod
    def radius(self, delta: torch.Tensor) -> torch.Tensor:
        """See the module docstring."""

    @abstractmethod
    def sample(self, shape, generator: torch.Generator | None = None, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """See the module docstring."""

    # -- shared helpers -------------------------------------------------
    def contains(self, delta: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
        """Boolean [B]: is each δ inside S (up to a relative tolerance)?"""
        return self.radius(delta) <= self.eps * (1 + tol) + tol

    def with_eps(self, eps: float) -> "Threat":
        """The same geometry at another radius (ε ramps during training).  The same radius gives
        this (frozen) threat back: training asks once per step, and rebuilding would re-check
        `Directions`' orthonormality every time (~0.3 ms a step, with a float64 Gram matrix)."""
        return self if eps == self.eps else type(self)(eps, **self._extra_fields())

    def _extra_fields(self) -> dict:
        return {}

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error if inputs of this shape cannot be perturbed by this threat."""

    def to(self, device) -> "Threat":
        """This threat with its tensors (if any) on `device`: move it once to the data's device,
        not on every call (`Directions` would copy its directions ~12 times per attack step)."""
        return self

    def to_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps}

    # -- fast paths of the bounds engine (generic, exact answers here) ---------
    supports_patches = False

    def row_support(self, rows) -> torch.Tensor | None:
        """σ_S of every row of an affine map → [1, *out], or None when there is no shortcut
        (the engine then pulls identity rows back through the map)."""
        return None

    def pulled_support(self, lam: torch.Tensor, linear) -> torch.Tensor | None:
        """σ_S(Aᵀλ) of each row λ of coefficients [b, m, *out] on the output of a linear map A known
        by how it acts on columns, `linear([1, n, *in]) → [1, n, *out]`; None when there is no
        shortcut (the engine then pulls Λ back through A: b·m input-sized rows)."""
        return None

    def column_support(self, cols: torch.Tensor, in_shape: tuple) -> torch.Tensor:
        """σ_S of the rows stored as columns over the identity basis: [b, n_in, m] → [b, m]."""
        b, _, m = cols.shape
        return self.support(cols.transpose(1, 2).reshape((b * m,) + tuple(in_shape))).reshape(b, m)

    def box_radius(self, x: torch.Tensor) -> torch.Tensor:
        """Half-widths of the smallest box around S, σ_S(e_i) → shaped like one input."""
        like = dict(dtype=x.dtype, device=x.device)
        n = x[0].numel()
        parts = []
        for start in range(0, n, _ROWS):
            rows = torch.arange(start, min(n, start + _ROWS), device=x.device)
            eye = torch.zeros(len(rows), n, **like)
            eye[torch.arange(len(rows), device=x.device), rows] = 1
            parts.append(self.support(eye.reshape((len(rows),) + tuple(x.shape[1:]))))
        return torch.cat(parts).reshape(x.shape[1:])

    def patch_support(self, values: torch.Tensor, grab) -> torch.Tensor:
        """σ_S of rows held as patches [b, m, C, K, K] (zero off the image), given `grab(t)`, each
        neuron's window of a map t → [b, m] (only when `supports_patches`)."""
        raise NotImplementedError(f"{type(self).__name__} has no patch support; the engine checks supports_patches")

    def forward_basis(self, x: torch.Tensor, proj: int | None, generator):
        """(columns [1, n, *input], widen) for the input group of a forward pass, where
        widen(p [b, n, m]) → (lo, hi) additions; None means the identity basis, exact."""
        return None

    def _projected(self, x, proj, generator, kind: str, scale: float):
        """k random columns whose median absolute image estimates a dual norm (Wong et al. 2018)."""
        if proj is None or proj >= x[0].numel():
            return None
        cols = random_draws(kind, (1, proj) + tuple(x.shape[1:]), generator, x)
        return cols, lambda p: _symmetric(scale * abs_median(p))

    def __str__(self) -> str:
        return f"{self.norm}(eps={self.eps:g})"


@dataclass(frozen=True)
class Linf(Threat):
    """The ℓ∞ ball {δ : ‖δ‖∞ ≤ ε}; its support function is ε‖ν‖₁."""

    norm: str = field(init=False, default="linf")

    def support(self, nu):
        # the ℓ1 norm in one reduction: no |ν| copy (ν is [rows, input] and large in CROWN/COAP)
        return self.eps * torch.linalg.vector_norm(_flat(nu), 1, dim=1)

    def project(self, delta):
        return delta.clamp(-self.eps, self.eps)

    def ascent(self, grad):
        return grad.sign()

    def radius(self, delta):
        return _flat(delta).abs().amax(1)

    def sample(self, shape, generator=None, dtype=torch.float32, device="cpu"):
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return (2 * u - 1) * self.eps

    supports_patches = True

    def row_support(self, rows):
        # ε‖row‖₁ = ε·|A|·1: one pass of the map on a constant image instead of one per neuron
        return None if rows.power is None else self.eps * rows.power(rows.ones(), 1)

    def column_support(self, cols, in_shape):
        return self.eps * cols.abs().sum(1)

    def box_radius(self, x):
        return torch.full(tuple(x.shape[1:]), float(self.eps), dtype=x.dtype, device=x.device)

    def patch_support(self, values, grab):
        return self.eps * values.abs().flatten(2).sum(-1)

    def forward_basis(self, x, proj, generator):
        return self._projected(x, proj, generator, "cauchy", self.eps)


@dataclass(frozen=True)
class L2(Threat):
    """The ℓ2 ball {δ : ‖δ‖₂ ≤ ε}; its support function is ε‖ν‖₂."""

    norm: str = field(init=False, default="l2")

    def support(self, nu):
        return self.eps * _flat(nu).norm(dim=1)

    def project(self, delta):
        n = _flat(delta).norm(dim=1).clamp_min(1e-12)
        scale = (self.eps / n).clamp(max=1.0)
        return delta * _per_sample(scale, delta)

    def ascent(self, grad):
        n = _flat(grad).norm(dim=1).clamp_min(1e-12)
        return grad / _per_sample(n, grad)

    def radius(self, delta):
        return _flat(delta).norm(dim=1)

    def sample(self, shape, generator=None, dtype=torch.float32, device="cpu"):
        # uniform in the ball: Gaussian direction, radius ε·U^{1/d}
        g = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        d = g[0].numel()
        n = _flat(g).norm(dim=1).clamp_min(1e-12)
        r = self.eps * torch.rand(shape[0], generator=generator, dtype=dtype, device=device) ** (1.0 / d)
        return g * _per_sample(r / n, g)

    supports_patches = True

    def row_support(self, rows):
        # ε‖row‖₂ = ε·sqrt(A²·1)
        return None if rows.power is None else self.eps * rows.power(rows.ones(), 2).clamp(min=0).sqrt()

    def column_support(self, cols, in_shape):
        return self.eps * cols.norm(dim=1)

    def box_radius(self, x):
        return torch.full(tuple(x.shape[1:]), float(self.eps), dtype=x.dtype, device=x.device)

    def patch_support(self, values, grab):
        return self.eps * values.flatten(2).norm(dim=-1)

    def forward_basis(self, x, proj, generator):
        return self._projected(x, proj, generator, "normal", self.eps / GAUSS_MEDIAN)


@dataclass(frozen=True, eq=False)
class Directions(Threat):
    """The signal-aligned set ∪_j {β δ_j : |β| ≤ ε} for k orthonormal directions δ_j.

    `directions` is a [k, *input_shape] tensor.  With k = 1 and δ = e₁ this is
    the theorem's threat model.  The union is not convex; its convex hull is the
    ℓ1 ball of radius ε in span{δ_j}, and both have the same support function
    ε·max_j |⟨ν, δ_j⟩|, which is what the bounds use.  Attacks stay on the union.
    """

    directions: torch.Tensor = None
    norm: str = field(init=False, default="directions")

    def __post_init__(self):
        super().__post_init__()
        D = self.directions
        if not isinstance(D, torch.Tensor) or D.dim() < 2 or D.shape[0] < 1:
            raise UserError("Directions needs a tensor of shape [k, *input_shape] with k >= 1 directions.")
        flat = D.reshape(D.shape[0], -1).double()
        gram = flat @ flat.T
        eye = torch.eye(D.shape[0], dtype=gram.dtype, device=gram.device)
        # a meta tensor (tracing devices and shapes) has no values to check
        if not D.is_meta and not torch.allclose(gram, eye, atol=1e-4):
            raise UserError("Directions must be orthonormal; build them with random_directions(k, shape, seed) or orthonormalise them first.")

    @property
    def k(self) -> int:
        return self.directions.shape[0]

    def _extra_fields(self):
        return {"directions": self.directions}

    def to(self, device) -> "Directions":
        moved = self.directions.to(device)
        return self if moved is self.directions else Directions(self.eps, moved)

    def _coords(self, t: torch.Tensor) -> torch.Tensor:
        """⟨t_b, δ_j⟩ for every batch row b and direction j → [B, k]."""
        D = self.directions.to(device=t.device, dtype=t.dtype)
        return _flat(t) @ D.reshape(D.shape[0], -1).T

    def _combine(self, coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        D = self.directions.to(device=coef.device, dtype=coef.dtype)
        return (coef @ D.reshape(D.shape[0], -1)).reshape(like.shape)

    def check_input(self, x):
        if tuple(x.shape[1:]) != tuple(self.directions.shape[1:]):
            raise UserError(
                f"the threat's directions have shape {tuple(self.directions.shape[1:])} but the inputs have shape "
                f"{tuple(x.shape[1:])}; build the directions for the data's input shape.")

    def support(self, nu):
        return self.eps * self._coords(nu).abs().amax(1)

    def _images(self, linear, like: torch.Tensor) -> torch.Tensor:
        """A δ_j for every direction → [1, k, *out]: k columns through the map."""
        return linear(self.directions.to(device=like.device, dtype=like.dtype).unsqueeze(0))

    def row_support(self, rows):
        # ε·max_j |⟨row, δ_j⟩| = ε·max_j |A δ_j|: k passes of the map instead of one per neuron
        return self.eps * self._images(rows.linear, rows.x).abs().amax(1)

    def pulled_support(self, lam, linear):
        # ⟨Aᵀλ, δ_j⟩ = ⟨λ, A δ_j⟩: k columns through the map instead of b·m rows back through it
        images = self._images(linear, lam)[0].flatten(1)
        return self.eps * (lam.flatten(2) @ images.T).abs().amax(-1)

    def project(self, delta):
        # Nearest point of the union: project on each segment, keep the closest.
        proj = self._coords(delta)
        c = proj.clamp(-self.eps, self.eps)  # [B, k]
        # ‖δ − c_j δ_j‖² = ‖δ‖² − 2 c_j ⟨δ, δ_j⟩ + c_j² ; minimise over j
        dist = -2 * c * proj + c * c
        j = dist.argmin(1)
        rows = torch.arange(c.shape[0], device=c.device)
        coef = torch.zeros_like(c)
        coef[rows, j] = c[rows, j]
        return self._combine(coef, delta)

    def ascent(self, grad):
        # Linear maximiser of ⟨g, δ⟩ over the union: the best direction, signed.
        g = self._coords(grad)
        j = g.abs().argmax(1)
        coef = torch.zeros_like(g)
        rows = torch.arange(g.shape[0], device=g.device)
        coef[rows, j] = g[rows, j].sign()
        return self._combine(coef, grad)

    def radius(self, delta):
        # δ ∈ S iff δ = β δ_j for some j with |β| ≤ ε; off the union the radius is +inf.
        c = self._coords(delta)
        rows = torch.arange(c.shape[0], device=c.device)
        j = c.abs().argmax(1)
        coef = torch.zeros_like(c)
        coef[rows, j] = c[rows, j]
        resid = _flat(delta - self._combine(coef, delta)).norm(dim=1)
        r = c.abs().amax(1)
        scale = _flat(delta).norm(dim=1).clamp_min(1.0)
        return torch.where(resid <= 1e-4 * scale, r, torch.full_like(r, math.inf))

    def sample(self, shape, generator=None, dtype=torch.float32, device="cpu"):
        B = shape[0]
        j = torch.randint(self.k, (B,), generator=generator, device=device)
        beta = (2 * torch.rand(B, generator=generator, dtype=dtype, device=device) - 1) * self.eps
        coef = torch.zeros(B, self.k, dtype=dtype, device=device)
        coef[torch.arange(B, device=device), j] = beta
        return self._combine(coef, torch.empty(shape, dtype=dtype, device=device))

    def to_dict(self):
        return {"norm": self.norm, "eps": self.eps, "k": self.k}

    # the support depends only on the k coordinates ⟨ν, δ_j⟩: push the directions instead of rows
    supports_patches = True

    def _dirs(self, like: torch.Tensor) -> torch.Tensor:
        return self.directions.to(dtype=like.dtype, device=like.device)

    def row_support(self, rows):
        return self.eps * rows.linear(self._dirs(rows.ones()).unsqueeze(0)).abs().amax(1)

    def box_radius(self, x):
        return self.eps * self._dirs(x).abs().amax(0)

    def patch_support(self, values, grab):
        coords = torch.stack([(values * grab(dj.unsqueeze(0))).flatten(2).sum(-1) for dj in self._dirs(values)])
        return self.eps * coords.abs().amax(0)

    def forward_basis(self, x, proj, generator):
        return self._dirs(x).unsqueeze(0), lambda p: _symmetric(self.eps * p.abs().amax(1))

    def __str__(self):
        return f"directions(k={self.k}, eps={self.eps:g})"


def random_directions(k: int, shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """k random orthonormal directions of the given input shape, fixed by `seed` → [k, *shape]."""
    shape = tuple(shape)
    d = math.prod(shape)
    if not 1 <= k <= d:
        raise UserError(f"the number of directions k must be between 1 and the input dimension {d}, got k={k}.")
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    return q.T.contiguous().reshape((k,) + shape).to(dtype)


def basis_direction(index: int, shape, dtype=torch.float32) -> torch.Tensor:
    """The coordinate direction e_index of the given input shape → [1, *shape] (the theorem's e₁ is index 0)."""
    e = torch.zeros(math.prod(shape), dtype=dtype)
    e[index] = 1.0
    return e.reshape((1,) + tuple(shape))


#: The threat registry: command-line name → class.  Every choice list derives from it.
THREATS = {"linf": Linf, "l2": L2, "directions": Directions}
NORMS = tuple(THREATS)


def make_threat(norm: str, eps: float, directions: torch.Tensor | None = None) -> Threat:
    """Build a threat from its command-line name; the one place names map to classes."""
    if norm not in THREATS:
        raise UserError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}.")
    if THREATS[norm] is Directions:
        if directions is None:
            raise UserError("the 'directions' threat needs its directions; pass --k K to draw K random ones.")
        return Directions(eps, directions)
    return THREATS[norm](eps)
