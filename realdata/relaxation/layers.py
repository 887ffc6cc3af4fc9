"""The engine's layer classes: one per supported layer type, each owning its steps.

Every node of the engine's tree (`graph.parse` builds it) answers the same small
interface, so the passes never ask which layer they hold:

* ``forward(x)`` — the layer on concrete points, BatchNorm with the statistics the
  bounds use (`bounds.Bounds.apply`);
* ``interval(c, r, ctx)`` — a box (centre, radius) through the layer (IBP);
* ``backward(lam, ctx)`` — coefficients Λ on its output pulled back to its input,
  constants added to ``ctx.totals`` (CROWN, COAP's backward pass);
* ``forward_columns(centre, groups, ctx)`` — COAP's dual network pushed forward;
* ``pull(patch, ctx)``, ``window(w)``, ``patch_macs(w)``, ``patchable(top)`` — the
  same backward step on patches (`patches.py`);
* ``prefix(index)``, ``relus()``, ``macs()`` — structure and cost.

Affine layers (Linear, Conv2d, AvgPool2d, the per-channel maps Normalize and
BatchNorm, the reshapes Flatten, Identity and Dropout) share one base: a map
z ↦ A z + bias given by `linear` (A on [b, n, *in] column tensors), `transpose`
(Aᵀ) and `abs_linear` (|A| on a radius).  Normalize and BatchNorm are steps like
any other, so propagating through them and the next layer composes the two
maps exactly — the fold W·diag(s), b + W·t, with zero padding handled per position.

Column tensors carry two leading dimensions [b, n, *shape]: b is the batch (or 1
while the tensor does not depend on the example) and n counts columns or
specifications.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


#: a strided conv pulls patches by one matrix product when that costs at most this many times the
#: transposed conv's multiply-adds (`ConvLayer._use_matrix`): on one CPU thread torch's transposed
#: conv of [14856, 16, 4, 4] patches took 0.19 s, the product with the 6.25x larger matrix 0.055 s
MATRIX_FACTOR = 8


def _merge(t: torch.Tensor, k: int = 2):
    """[b, n, *shape] → [b·n, *shape], the batch layout torch's layers take."""
    return t.reshape((-1,) + tuple(t.shape[k:]))


@dataclass(eq=False)
class Affine:
    """z ↦ A z + bias between two shapes (batch excluded)."""

    module: nn.Module
    name: str
    in_shape: tuple
    out_shape: tuple
    full_bias: torch.Tensor | None = None  # shaped like out_shape, or None

    #: A is diagonal up to a reshape (|AB|^p = |A|^p·|B|^p holds with one non-diagonal factor)
    diagonal = False
    is_affine = True

    # -- the map, on [b, n, *in_shape] column tensors, no bias -------------
    def linear(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transpose(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def abs_linear(self, t: torch.Tensor) -> torch.Tensor:
        """|A| applied to a non-negative [B, *in_shape] radius (interval arithmetic)."""
        raise NotImplementedError

    def power(self, t: torch.Tensor, p: int) -> torch.Tensor:
        """Σ_i |a_ki|^p · t_i for t ≥ 0 shaped [1, *in_shape] (‖row_k‖_p^p when t = 1)."""
        return self.abs_linear(self.abs_linear(t)) if p == 2 else self.abs_linear(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def bias_term(self, lam: torch.Tensor) -> torch.Tensor | None:
        """⟨Λ, bias⟩ for [b, n, *out_shape] → [b, n] (None when the layer has no bias)."""
        if self.full_bias is None:
            return None
        return lam.flatten(2) @ self.full_bias.reshape(-1).to(lam.dtype)

    def macs(self) -> int:
        """Multiply-adds of the map on one column (either direction)."""
        return math.prod(self.out_shape)

    # -- the passes ---------------------------------------------------------
    def interval(self, c, r, ctx):
        return self.forward(c), self.abs_linear(r)

    def backward(self, lam, ctx):
        ctx.totals.add(self.bias_term(lam))
        return self.transpose(lam)

    def forward_columns(self, centre, groups, ctx):
        for g in groups:
            g.cols = self.linear(g.cols)
        return self.forward(centre)

    def count_forward(self, cols, ctx):
        return ctx.affine(self, cols)

    # -- patches (only layers that keep a map's spatial layout take part) ---
    def patchable(self) -> bool:
        return False

    def window(self, w):
        return w

    def patch_macs(self, w) -> tuple:
        """(multiply-adds of one neuron's patch through the layer, the window at its input)."""
        return 0, self.window(w)

    def pull(self, patch, ctx):
        raise NotImplementedError(f"{type(self).__name__} has no patch step")

    # -- structure ----------------------------------------------------------
    def prefix(self, index: int):
        return None

    def relus(self) -> list:
        return []

    def _shaped(self, out: torch.Tensor, b: int, n: int, shape: tuple) -> torch.Tensor:
        return out.reshape((b, n) + shape)


class LinearLayer(Affine):
    def linear(self, t):
        return t @ self.module.weight.T

    def transpose(self, t):
        return t @ self.module.weight

    def abs_linear(self, t):
        return t @ self.module.weight.abs().T

    def power(self, t, p):
        return t @ (self.module.weight.abs() ** p).T

    def macs(self):
        return self.module.in_features * self.module.out_features


@dataclass(eq=False)
class ConvLayer(Affine):
    _flipped: torch.Tensor | None = field(default=None, repr=False)
    _matrices: dict = field(default_factory=dict, repr=False)  # window K → `_patch_matrix`

    def linear(self, t):
        m = self.module
        out = F.conv2d(_merge(t), m.weight, None, m.stride, m.padding, m.dilation)
        return self._shaped(out, *t.shape[:2], self.out_shape)

    def transpose(self, t):
        m = self.module
        k, p = m.kernel_size, m.padding
        flat = _merge(t)
        if m.stride == (1, 1) and m.dilation == (1, 1) and p[0] < k[0] and p[1] < k[1]:
            # a stride-1 transposed conv is a plain conv with the flipped, transposed kernel,
            # which torch's CPU kernels run markedly faster
            if self._flipped is None:
                self._flipped = m.weight.transpose(0, 1).flip(-1, -2)
            out = F.conv2d(flat, self._flipped, None, 1, (k[0] - 1 - p[0], k[1] - 1 - p[1]))
        else:
            out = F.conv_transpose2d(flat, m.weight, None, m.stride, m.padding,
                                     _output_padding(self, m.kernel_size, m.stride, m.padding, m.dilation), 1,
                                     m.dilation)
        return self._shaped(out, *t.shape[:2], self.in_shape)

    def abs_linear(self, t):
        m = self.module
        return F.conv2d(t, m.weight.abs(), None, m.stride, m.padding, m.dilation)

    def power(self, t, p):
        m = self.module
        return F.conv2d(t, m.weight.abs() ** p, None, m.stride, m.padding, m.dilation)

    def macs(self):
        m = self.module
        return math.prod(self.out_shape) * m.in_channels * m.kernel_size[0] * m.kernel_size[1]

    def patchable(self):
        return self.module.dilation == (1, 1)

    def window(self, w):
        m = self.module
        return w.through(m.kernel_size, m.stride, m.padding)

    def patch_macs(self, w):
        m = self.module
        return m.out_channels * w.K[0] * w.K[1] * m.in_channels * m.kernel_size[0] * m.kernel_size[1], self.window(w)

    def pull(self, patch, ctx):
        m, values = self.module, patch.values
        if m.bias is not None:
            ctx.totals.add((values.sum((-1, -2)) * m.bias.to(values.dtype)).sum(-1))
        b, n = values.shape[:2]
        w_in = self.window(patch.window)
        k = m.kernel_size
        if m.stride == (1, 1):
            # a stride-1 transposed conv is the full correlation with the flipped kernel (see transpose)
            if self._flipped is None:
                self._flipped = m.weight.transpose(0, 1).flip(-1, -2)
            out = F.conv2d(_merge(values), self._flipped, None, 1, (k[0] - 1, k[1] - 1))
        elif self._use_matrix(patch.window, b * n):
            # torch's CPU transposed conv runs a small product per patch; one matrix product for all
            # of them is several times faster while the matrix has few more entries than the kernel
            out = values.reshape(b * n, -1) @ self._patch_matrix(patch.window, values)
        else:
            out = F.conv_transpose2d(_merge(values), m.weight, None, m.stride)
        return patch.like(out.reshape((b, n, m.in_channels) + w_in.K), w_in)

    def _use_matrix(self, w, patches: int) -> bool:
        """Pull `patches` patches of window `w` by `_patch_matrix`?  Only when the matrix costs at
        most MATRIX_FACTOR times the conv's multiply-adds per patch (its input window is at
        most that many kernels) and building it (one transposed conv per matrix row) costs
        less than the pull itself."""
        m, K = self.module, self.window(w).K
        rows = m.out_channels * w.K[0] * w.K[1]
        return K[0] * K[1] <= MATRIX_FACTOR * m.kernel_size[0] * m.kernel_size[1] and patches >= rows

    def _patch_matrix(self, w, like) -> torch.Tensor:
        """The pull of one patch of window `w` as a matrix [C_out·K·K, C_in·K'·K'] (kept per window:
        the layer's weights do not change while one bounds object lives)."""
        key = w.K
        if key not in self._matrices:
            m = self.module
            rows = m.out_channels * w.K[0] * w.K[1]
            eye = torch.eye(rows, dtype=like.dtype, device=like.device).reshape((rows, m.out_channels) + w.K)
            self._matrices[key] = F.conv_transpose2d(eye, m.weight.to(like.dtype), None, m.stride).reshape(rows, -1)
        return self._matrices[key]


@dataclass(eq=False)
class AvgPoolLayer(Affine):
    """AvgPool2d as the depthwise conv it is (weight 1/divisor on each k×k window, zero padding
    counted, as `count_include_pad=True` does)."""

    _weight: torch.Tensor | None = field(default=None, repr=False)

    def _geometry(self):
        m = self.module
        pair = nn.modules.utils._pair
        return pair(m.kernel_size), pair(m.stride if m.stride is not None else m.kernel_size), pair(m.padding)

    def _kernel(self, like: torch.Tensor) -> torch.Tensor:
        k, _, _ = self._geometry()
        divisor = self.module.divisor_override or k[0] * k[1]
        return torch.full((self.in_shape[0], 1) + k, 1.0 / divisor, dtype=like.dtype, device=like.device)

    def linear(self, t):
        k, s, p = self._geometry()
        out = F.conv2d(_merge(t), self._kernel(t), None, s, p, groups=self.in_shape[0])
        return self._shaped(out, *t.shape[:2], self.out_shape)

    def transpose(self, t):
        k, s, p = self._geometry()
        out = F.conv_transpose2d(_merge(t), self._kernel(t), None, s, p, _output_padding(self, k, s, p, (1, 1)),
                                 groups=self.in_shape[0])
        return self._shaped(out, *t.shape[:2], self.in_shape)

    def abs_linear(self, t):
        return self.linear(t.unsqueeze(0)).squeeze(0)  # the weights are non-negative

    def power(self, t, p):
        return self.abs_linear(t) * self._kernel(t)[0, 0, 0, 0] ** (p - 1)

    def macs(self):
        k, _, _ = self._geometry()
        return math.prod(self.out_shape) * k[0] * k[1]

    def patchable(self):
        return True

    def window(self, w):
        return w.through(*self._geometry())

    def patch_macs(self, w):
        k, _, _ = self._geometry()
        return self.out_shape[0] * w.K[0] * w.K[1] * k[0] * k[1], self.window(w)

    def pull(self, patch, ctx):
        k, s, _ = self._geometry()
        values = patch.values
        b, n = values.shape[:2]
        out = F.conv_transpose2d(_merge(values), self._kernel(values), None, s, groups=self.in_shape[0])
        return patch.like(out.reshape((b, n) + out.shape[1:]), self.window(patch.window))


@dataclass(eq=False)
class ChannelAffine(Affine):
    """z ↦ scale·z + shift per channel (per feature for vectors): Normalize, and BatchNorm with
    fixed statistics.  `scale` is a [C] tensor that keeps the autograd graph."""

    scale: torch.Tensor | None = None
    diagonal = True

    def _channel(self, t: torch.Tensor, lead: int) -> torch.Tensor:
        return self.scale.to(t.dtype).reshape((1,) * lead + (-1,) + (1,) * (len(self.in_shape) - 1))

    def linear(self, t):
        return t * self._channel(t, 2)

    transpose = linear

    def abs_linear(self, t):
        return t * self._channel(t, 1).abs()

    def power(self, t, p):
        return t * self._channel(t, 1).abs() ** p

    def forward(self, x):
        return x * self._channel(x, 1) + self.full_bias.to(x.dtype)

    def patchable(self):
        return len(self.in_shape) == 3

    def pull(self, patch, ctx):
        # the shift sits on every position inside the map; grab leaves the zero padding out
        values = patch.values
        ctx.totals.add((values * patch.grab(self.full_bias.unsqueeze(0).to(values.dtype))).flatten(2).sum(-1))
        return patch.like(values * self._channel(values, 2), patch.window)


class Reshape(Affine):
    """Flatten, Identity and Dropout in eval mode: the identity up to a reshape."""

    diagonal = True

    def linear(self, t):
        return t.reshape(tuple(t.shape[:2]) + self.out_shape)

    def transpose(self, t):
        return t.reshape(tuple(t.shape[:2]) + self.in_shape)

    def abs_linear(self, t):
        return t.reshape((t.shape[0],) + self.out_shape)

    def forward(self, x):
        return x.reshape((x.shape[0],) + self.out_shape)

    def patchable(self):
        return self.in_shape == self.out_shape

    def pull(self, patch, ctx):
        return patch


def _output_padding(layer: Affine, kernel, stride, padding, dilation) -> tuple:
    """The rows and columns a strided conv drops, which its transpose must restore."""
    outs = []
    for i in range(2):
        k = dilation[i] * (kernel[i] - 1) + 1
        produced = (layer.out_shape[1 + i] - 1) * stride[i] - 2 * padding[i] + k
        outs.append(layer.in_shape[1 + i] - produced)
    return tuple(outs)


@dataclass(eq=False)
class Relu:
    """One ReLU layer; its relaxation (`relus.py`) does the work, chosen by the method's recipe."""

    index: int  # forward order over the whole model, ReLUs inside blocks included
    shape: tuple
    is_affine = False

    def interval(self, c, r, ctx):
        lo, up = ctx.relu_bounds(self, c - r, c + r)
        lo, up = lo.clamp(min=0), up.clamp(min=0)
        return (up + lo) / 2, (up - lo) / 2

    def backward(self, lam, ctx):
        lam, lo, hi = ctx.relaxations[self.index].backward(lam, ctx.spec)
        ctx.totals.add(lo, hi)
        return lam

    def forward(self, x):
        return torch.relu(x)

    def forward_columns(self, centre, groups, ctx):
        return ctx.relu(self, centre, groups)

    def count_forward(self, cols, ctx):
        return ctx.relu(self, cols)

    def patchable(self):
        return True

    def window(self, w):
        return w

    def patch_macs(self, w):
        return 0, w

    def pull(self, patch, ctx):
        values, lo, hi = ctx.relaxations[self.index].patch_backward(patch, ctx.spec)
        ctx.totals.add(lo, hi)
        return patch.like(values, patch.window)

    def prefix(self, index):
        return [] if index == self.index else None

    def relus(self):
        return [self]

    def macs(self):
        return 0


@dataclass(eq=False)
class Chain:
    """Nodes applied in order."""

    nodes: list = field(default_factory=list)

    def interval(self, c, r, ctx):
        for node in self.nodes:
            c, r = node.interval(c, r, ctx)
        return c, r

    def backward(self, lam, ctx):
        for node in reversed(self.nodes):
            lam = node.backward(lam, ctx)
        return lam

    def forward_columns(self, centre, groups, ctx):
        for node in self.nodes:
            centre = node.forward_columns(centre, groups, ctx)
        return centre

    def count_forward(self, cols, ctx):
        for node in self.nodes:
            cols = node.count_forward(cols, ctx)
        return cols

    def forward(self, x):
        for node in self.nodes:
            x = node.forward(x)
        return x

    def linear(self, cols):
        for node in self.nodes:  # an affine chain only
            cols = node.linear(cols)
        return cols

    def patchable(self):
        return all(node.patchable() for node in self.nodes)

    def window(self, w):
        for node in reversed(self.nodes):
            w = node.window(w)
        return w

    def patch_macs(self, w) -> tuple:
        """(multiply-adds of one neuron's patch through the chain, the window at its input)."""
        total = 0
        for node in reversed(self.nodes):
            step, w = node.patch_macs(w)
            total += step
        return total, w

    def pull(self, patch, ctx):
        for node in reversed(self.nodes):
            patch = node.pull(patch, ctx)
        return patch

    def prefix(self, index: int):
        """The nodes mapping the chain's input to the input of ReLU `index` (None if it is
        not here).  Inside a residual block only one branch leads to an inner ReLU, so a
        prefix is always a plain list of nodes."""
        for i, node in enumerate(self.nodes):
            inner = node.prefix(index)
            if inner is not None:
                return self.nodes[:i] + inner
        return None

    def relus(self) -> list:
        return [relu for node in self.nodes for relu in node.relus()]

    def macs(self) -> int:
        return sum(node.macs() for node in self.nodes)


@dataclass(eq=False)
class Block:
    """Residual: main(x) + skip(x)."""

    main: Chain
    skip: Chain
    in_shape: tuple
    out_shape: tuple
    is_affine = False

    def interval(self, c, r, ctx):
        cm, rm = self.main.interval(c, r, ctx)
        cs, rs = self.skip.interval(c, r, ctx)
        return cm + cs, rm + rs

    def forward(self, x):
        return self.main.forward(x) + self.skip.forward(x)

    def backward(self, lam, ctx):
        return self.main.backward(lam, ctx) + self.skip.backward(lam, ctx)

    def forward_columns(self, centre, groups, ctx):
        outer = len(groups)
        main_groups = [g.copy() for g in groups]
        skip_groups = [g.copy() for g in groups]
        c_main = self.main.forward_columns(centre, main_groups, ctx)
        c_skip = self.skip.forward_columns(centre, skip_groups, ctx)
        for g, s in zip(main_groups[:outer], skip_groups):
            g.cols = g.cols + s.cols
        groups[:] = main_groups  # slack groups of the inner ReLUs join after the outer ones
        return c_main + c_skip

    def count_forward(self, cols, ctx):
        cols_main = self.main.count_forward(cols, ctx)
        self.skip.count_forward(cols, ctx)
        return cols_main

    def patchable(self):
        return self.main.patchable() and self.skip.patchable()

    def window(self, w):
        return self.main.window(w).union(self.skip.window(w))

    def patch_macs(self, w):
        (cm, wm), (cs, ws) = self.main.patch_macs(w), self.skip.patch_macs(w)
        return cm + cs, wm.union(ws)

    def pull(self, patch, ctx):
        # the two branches give windows of the same stride but different extents; their union holds both
        main, skip = self.main.pull(patch, ctx), self.skip.pull(patch, ctx)
        w = main.window.union(skip.window)
        return patch.like(main.window.pad_into(main.values, w) + skip.window.pad_into(skip.values, w), w)

    def prefix(self, index):
        for branch in (self.main, self.skip):
            inner = branch.prefix(index)
            if inner is not None:
                return inner
        return None

    def relus(self):
        return self.main.relus() + self.skip.relus()

    def macs(self):
        return self.main.macs() + self.skip.macs()
