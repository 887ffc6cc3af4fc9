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

All methods treat the leading dimension as the batch and every other dimension
as the input, so images [B, C, H, W] and vectors [B, d] are handled alike.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from realdata.errors import UserError


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


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
        """The same geometry at another radius (ε ramps during training)."""
        return type(self)(eps, **self._extra_fields())

    def _extra_fields(self) -> dict:
        return {}

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error if inputs of this shape cannot be perturbed by this threat."""

    def to_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps}

    def __str__(self) -> str:
        return f"{self.norm}(eps={self.eps:g})"


@dataclass(frozen=True)
class Linf(Threat):
    """The ℓ∞ ball {δ : ‖δ‖∞ ≤ ε}; its support function is ε‖ν‖₁."""

    norm: str = field(init=False, default="linf")

    def support(self, nu):
        return self.eps * _flat(nu).abs().sum(1)

    def project(self, delta):
        return delta.clamp(-self.eps, self.eps)

    def ascent(self, grad):
        return grad.sign()

    def radius(self, delta):
        return _flat(delta).abs().amax(1)

    def sample(self, shape, generator=None, dtype=torch.float32, device="cpu"):
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return (2 * u - 1) * self.eps


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
        if not torch.allclose(gram, torch.eye(D.shape[0], dtype=gram.dtype), atol=1e-4):
            raise UserError("Directions must be orthonormal; build them with random_directions(k, shape, seed) or orthonormalise them first.")

    @property
    def k(self) -> int:
        return self.directions.shape[0]

    def _extra_fields(self):
        return {"directions": self.directions}

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

    def project(self, delta):
        # Nearest point of the union: project on each segment, keep the closest.
        c = self._coords(delta).clamp(-self.eps, self.eps)  # [B, k]
        # ‖δ − c_j δ_j‖² = ‖δ‖² − 2 c_j ⟨δ, δ_j⟩ + c_j² ; minimise over j
        proj = self._coords(delta)
        dist = -2 * c * proj + c * c
        j = dist.argmin(1)
        coef = torch.zeros_like(c)
        coef[torch.arange(c.shape[0]), j] = c[torch.arange(c.shape[0]), j]
        return self._combine(coef, delta)

    def ascent(self, grad):
        # Linear maximiser of ⟨g, δ⟩ over the union: the best direction, signed.
        g = self._coords(grad)
        j = g.abs().argmax(1)
        coef = torch.zeros_like(g)
        rows = torch.arange(g.shape[0])
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


NORMS = ("linf", "l2", "directions")


def make_threat(norm: str, eps: float, directions: torch.Tensor | None = None) -> Threat:
    """Build a threat from its command-line name; the one place names map to classes."""
    if norm == "linf":
        return Linf(eps)
    if norm == "l2":
        return L2(eps)
    if norm == "directions":
        if directions is None:
            raise UserError("the 'directions' threat needs its directions; pass --k K to draw K random ones.")
        return Directions(eps, directions)
    raise UserError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}.")
