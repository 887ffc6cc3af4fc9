"""The bounds engine's view of a model: a tree of affine leaves, ReLUs and residual blocks.

`parse(model, x)` turns an `nn.Sequential` of Linear, Conv2d, ReLU, Flatten,
Normalize, Identity and `Residual` into nodes that know their input and output
shapes (from one forward pass of a single example) and offer the three linear
maps every propagation needs: the map itself without bias (`linear`), its
transpose (`transpose`) and its absolute value (`abs_linear`, for intervals).

`Normalize` is an affine leaf like any other: propagating bounds through it and
the following Linear/Conv2d composes the two maps exactly, which is the fold
W·diag(1/std), b − W·mean/std (with zero padding handled per position).  That
keeps ε in input space and ℓ2 bounds sound.

Column tensors carry two leading dimensions [b, n, *shape]: b is the batch (or 1
while the tensor does not depend on the example) and n counts columns or
specifications.  Every leaf op accepts that layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from realdata.errors import UserError
from realdata.layers import Normalize, Residual

SUPPORTED = "Linear, Conv2d, ReLU, Flatten, Normalize (first layer only), Identity and Residual"


def _merge(t: torch.Tensor, k: int):
    """[b, n, *shape] → [b·n, *shape], the batch layout torch's layers take."""
    return t.reshape((-1,) + tuple(t.shape[k:]))


@dataclass
class Leaf:
    """An affine map z ↦ A z + bias between two shapes (batch excluded)."""

    module: nn.Module
    name: str
    in_shape: tuple
    out_shape: tuple
    full_bias: torch.Tensor | None = None  # shaped like out_shape, or None
    _flipped: torch.Tensor | None = field(default=None, repr=False)

    # -- maps on [b, n, *in_shape] column tensors, no bias ---------------
    def linear(self, t: torch.Tensor) -> torch.Tensor:
        b, n = t.shape[:2]
        m = self.module
        if isinstance(m, nn.Linear):
            out = t @ m.weight.T
        elif isinstance(m, nn.Conv2d):
            out = F.conv2d(_merge(t, 2), m.weight, None, m.stride, m.padding, m.dilation)
        elif isinstance(m, Normalize):
            out = t / self._channel(m.std, t)
        else:  # Flatten, Identity
            out = t
        return out.reshape((b, n) + self.out_shape)

    def transpose(self, t: torch.Tensor) -> torch.Tensor:
        b, n = t.shape[:2]
        m = self.module
        if isinstance(m, nn.Linear):
            out = t @ m.weight
        elif isinstance(m, nn.Conv2d):
            out = self._conv_transpose(_merge(t, 2))
        elif isinstance(m, Normalize):
            out = t / self._channel(m.std, t)
        else:
            out = t
        return out.reshape((b, n) + self.in_shape)

    def abs_linear(self, t: torch.Tensor) -> torch.Tensor:
        """|A| applied to a non-negative [B, *in_shape] radius (interval arithmetic)."""
        m = self.module
        if isinstance(m, nn.Linear):
            return t @ m.weight.abs().T
        if isinstance(m, nn.Conv2d):
            return F.conv2d(t, m.weight.abs(), None, m.stride, m.padding, m.dilation)
        if isinstance(m, Normalize):
            return t / self._channel(m.std, t, lead=1)
        return t.reshape((t.shape[0],) + self.out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def bias_term(self, lam: torch.Tensor) -> torch.Tensor | None:
        """⟨Λ, bias⟩ for [b, n, *out_shape] → [b, n] (None when the leaf has no bias)."""
        if self.full_bias is None:
            return None
        return lam.flatten(2) @ self.full_bias.reshape(-1).to(lam.dtype)

    def macs(self) -> int:
        """Multiply-adds of the linear map on one column (either direction)."""
        m = self.module
        out = math.prod(self.out_shape)
        if isinstance(m, nn.Linear):
            return m.in_features * m.out_features
        if isinstance(m, nn.Conv2d):
            return out * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        return out

    # -- helpers -----------------------------------------------------------
    def _channel(self, v: torch.Tensor, t: torch.Tensor, lead: int = 2):
        # Normalize's per-channel vector, broadcast against [lead dims, C, ...] or [lead dims, d]
        spatial = len(self.in_shape) - 1
        return v.to(t.dtype).reshape((1,) * lead + (-1,) + (1,) * spatial)

    def _conv_transpose(self, t):
        m = self.module
        k, p = m.kernel_size, m.padding
        if m.stride == (1, 1) and m.dilation == (1, 1) and p[0] < k[0] and p[1] < k[1]:
            # a stride-1 transposed conv is a plain conv with the flipped, transposed kernel,
            # which torch's CPU kernels run markedly faster
            if self._flipped is None:
                self._flipped = m.weight.transpose(0, 1).flip(-1, -2)
            return F.conv2d(t, self._flipped, None, 1, (k[0] - 1 - p[0], k[1] - 1 - p[1]))
        return F.conv_transpose2d(t, m.weight, None, m.stride, m.padding, self._output_padding(), 1, m.dilation)

    def _output_padding(self):
        m = self.module
        outs = []
        for i in range(2):
            k = m.dilation[i] * (m.kernel_size[i] - 1) + 1
            produced = (self.out_shape[1 + i] - 1) * m.stride[i] - 2 * m.padding[i] + k
            outs.append(self.in_shape[1 + i] - produced)
        return tuple(outs)


@dataclass
class Relu:
    index: int  # forward order over the whole model, ReLUs inside blocks included
    shape: tuple


@dataclass
class Chain:
    nodes: list = field(default_factory=list)


@dataclass
class Block:
    """Residual: main(x) + skip(x)."""

    main: Chain
    skip: Chain
    in_shape: tuple
    out_shape: tuple


def _check_leaf(module: nn.Module, path: str):
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise UserError(f"layer {path} ({module}) is not supported by the bounds: use groups=1, "
                            "zero padding and numeric padding.")
    if isinstance(module, nn.Flatten) and (module.start_dim != 1 or module.end_dim != -1):
        raise UserError(f"layer {path} ({module}) is not supported by the bounds: flatten from dimension 1 to the end.")


def _leaf(module: nn.Module, path: str, x: torch.Tensor) -> tuple[Leaf, torch.Tensor]:
    _check_leaf(module, path)
    with torch.no_grad():
        y = module(x)
    bias = None
    if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
        # a view of the layer's own bias, so gradients of the bounds reach it
        bias = module.bias.reshape((-1,) + (1,) * (y.dim() - 2)).expand(y.shape[1:])
    elif isinstance(module, Normalize):
        with torch.no_grad():
            bias = module(torch.zeros_like(x))[0]
    return Leaf(module, path, tuple(x.shape[1:]), tuple(y.shape[1:]), bias), y


def _parse_chain(modules, prefix: str, x: torch.Tensor, counter: list, first: bool) -> tuple[Chain, torch.Tensor]:
    chain = Chain()
    for i, module in enumerate(modules):
        path = f"{prefix}{i}"
        if isinstance(module, nn.ReLU):
            chain.nodes.append(Relu(counter[0], tuple(x.shape[1:])))
            counter[0] += 1
            x = torch.relu(x)
        elif isinstance(module, Residual):
            main, y_main = _parse_chain(_as_list(module.main), f"{path}.main.", x, counter, False)
            skip, y_skip = _parse_chain(_as_list(module.skip), f"{path}.skip.", x, counter, False)
            if y_main.shape != y_skip.shape:
                raise UserError(f"residual block {path}: main branch gives shape {tuple(y_main.shape[1:])} but the skip "
                                f"gives {tuple(y_skip.shape[1:])}; the two branches must agree.")
            chain.nodes.append(Block(main, skip, tuple(x.shape[1:]), tuple(y_main.shape[1:])))
            x = y_main + y_skip
        elif isinstance(module, Normalize) and not (first and i == 0):
            raise UserError(f"layer {path} is a Normalize that is not the model's first layer; the bounds fold "
                            "normalisation only as the first layer.")
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.Flatten, nn.Identity, Normalize)):
            leaf, x = _leaf(module, path, x)
            chain.nodes.append(leaf)
        else:
            raise UserError(f"layer {path} ({type(module).__name__}) is not supported by the bounds; "
                            f"models may contain only {SUPPORTED}.")
    return chain, x


def _as_list(module: nn.Module) -> list:
    if isinstance(module, nn.Sequential):
        return list(module)
    return [module]


@dataclass
class Graph:
    root: Chain
    in_shape: tuple
    out_shape: tuple
    relu_shapes: list

    @property
    def num_relus(self) -> int:
        return len(self.relu_shapes)


def parse(model: nn.Module, x: torch.Tensor) -> Graph:
    """The engine's tree of `model` for inputs shaped like `x` ([B, *input])."""
    if not isinstance(model, nn.Sequential):
        raise UserError(f"the bounds take an nn.Sequential model, got {type(model).__name__}; "
                        f"build it from {SUPPORTED}.")
    counter = [0]
    try:
        root, y = _parse_chain(list(model), "", x[:1].detach(), counter, True)
    except RuntimeError as err:  # shape errors from torch inside the probe pass
        raise UserError(f"the model cannot take inputs of shape {tuple(x.shape[1:])}: {err}") from None
    shapes = []
    _collect_relus(root, shapes)
    return Graph(root, tuple(x.shape[1:]), tuple(y.shape[1:]), shapes)


def _collect_relus(chain: Chain, out: list):
    for node in chain.nodes:
        if isinstance(node, Relu):
            out.append(node.shape)
        elif isinstance(node, Block):
            _collect_relus(node.main, out)
            _collect_relus(node.skip, out)


def prefix(chain: Chain, index: int) -> Chain | None:
    """The nodes whose composition maps the input to the input of ReLU `index`
    (None if that ReLU is not in `chain`).  Inside a residual block only the
    main branch leads to its inner ReLU, so a prefix is always a plain chain."""
    for i, node in enumerate(chain.nodes):
        if isinstance(node, Relu) and node.index == index:
            return Chain(chain.nodes[:i])
        if isinstance(node, Block):
            for branch in (node.main, node.skip):
                inner = prefix(branch, index)
                if inner is not None:
                    return Chain(chain.nodes[:i] + inner.nodes)
    return None


def chain_macs(chain: Chain) -> int:
    """Multiply-adds of one column through every affine leaf of `chain` (both branches of blocks)."""
    total = 0
    for node in chain.nodes:
        if isinstance(node, Leaf):
            total += node.macs()
        elif isinstance(node, Block):
            total += chain_macs(node.main) + chain_macs(node.skip)
    return total
