"""Forward-mode pass through a piecewise-linear ReLU network along a line.

On the line x + t·v a network of Linear, Conv2d, AvgPool2d, ReLU, Flatten,
`Normalize`, eval-mode BatchNorm and Dropout, Identity and `Residual` layers is linear in t as long as no ReLU changes state.  One pass
that carries the value and its derivative d/dt (a jvp) gives every
pre-activation z and its slope dz, so the next t at which any ReLU of any layer
crosses zero is min(−z/dz) over the units moving toward zero.  The exact line
search of `realdata.attacks` walks from kink to kink with it.  The layers before
the first ReLU are affine in t everywhere, so a walk evaluates them only once
(`split_affine_prefix`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realdata.errors import UserError
from realdata.layers import Normalize, Residual

SUPPORTED = ("Linear, Conv2d, AvgPool2d, ReLU, Flatten, Normalize, BatchNorm and Dropout (eval mode), Residual and "
             "Identity layers inside nn.Sequential")
_LINEAR = (nn.Flatten, nn.Identity, nn.AvgPool2d)  # linear maps: the tangent goes through the layer itself


def forward_with_tangent(module: nn.Module, x: torch.Tensor, v: torch.Tensor, kink_tol: float, preacts: list):
    """Value and derivative along v of `module` at x; appends (z, dz) of every ReLU input to `preacts`.

    Each ReLU takes the state it has at t + kink_tol: a unit whose kink lies
    within `kink_tol` of the current point counts as already past it, so the pass
    describes the linear piece that starts at x rather than the vanishing one
    that ends there.  Linear and Conv2d layers compute in x's dtype whatever their
    parameters' (the line search passes float64 points through a float32 net).
    """
    if isinstance(module, nn.Sequential):
        for layer in module:
            x, v = forward_with_tangent(layer, x, v, kink_tol, preacts)
        return x, v
    if isinstance(module, nn.Linear):
        weight, bias = _like(module.weight, x), _like(module.bias, x)
        return F.linear(x, weight, bias), F.linear(v, weight)
    if isinstance(module, nn.Conv2d):
        weight = _like(module.weight, x)
        return module._conv_forward(x, weight, _like(module.bias, x)), module._conv_forward(v, weight, None)
    if isinstance(module, nn.ReLU):
        preacts.append((x, v))
        on = (x + kink_tol * v) > 0  # the state at t + kink_tol
        return x.clamp_min(0), v * on
    if isinstance(module, _LINEAR) or (isinstance(module, nn.Dropout) and not module.training):
        return module(x), module(v)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.training and module.running_var is not None:
        # affine per channel with the running statistics: the shift moves the value only
        scale = torch.rsqrt(module.running_var + module.eps)
        scale = scale if module.weight is None else scale * module.weight
        return module(x), v * scale.reshape((1, -1) + (1,) * (v.dim() - 2)).to(v.dtype)
    if isinstance(module, Normalize):
        # affine: the mean shifts the value only, the scale acts on both
        scale = module.std.reshape(module._shape(v)).to(v.dtype)
        return module(x), v / scale
    if isinstance(module, Residual):
        xm, vm = forward_with_tangent(module.main, x, v, kink_tol, preacts)
        xs, vs = forward_with_tangent(module.skip, x, v, kink_tol, preacts)
        return xm + xs, vm + vs
    raise UserError(f"the exact line search handles {SUPPORTED}; the model contains {type(module).__name__}. "
                    "Use --attack apgd for this model.")


def _like(param: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """A layer's parameter in the pass's dtype (float64 for the line search; no copy when it is already)."""
    return None if param is None else param.to(x.dtype)


def distance_to_next_kink(preacts: list, kink_tol: float, rows: int, dtype, device) -> torch.Tensor:
    """Per row, the smallest t > kink_tol at which some pre-activation crosses zero (inf if none)."""
    nearest = torch.full((rows,), torch.inf, dtype=dtype, device=device)
    for z, dz in preacts:
        # −z/dz is positive only for units moving toward zero; 0/0 gives nan, which fails the test
        s = (-z / dz).reshape(rows, -1)
        s = torch.where(s > kink_tol, s, torch.inf)
        if s.shape[1]:
            nearest = torch.minimum(nearest, s.amin(1))
    return nearest


AFFINE = (nn.Linear, nn.Conv2d, nn.Flatten, nn.Identity, nn.AvgPool2d, Normalize)


def split_affine_prefix(model: nn.Module) -> tuple[nn.Sequential, nn.Sequential]:
    """(prefix, rest) of a Sequential: the leading affine layers, whose output along a
    line is value + t·slope for all t, and everything from the first ReLU or Residual on."""
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    cut = 0
    while cut < len(layers) and isinstance(layers[cut], AFFINE):
        cut += 1
    return nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:])
