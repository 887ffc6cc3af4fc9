"""COAP's intermediate bounds by forward propagation (Wong & Kolter's dual network).

With the parallel slope rule every ReLU is relu(z) = d·z + s, s ∈ [0, w]
(w = −d·ℓ on unstable neurons, 0 elsewhere), so each pre-activation is an
affine function of the input and of the slacks.  The forward pass carries that
function as column groups:

* the input group — the linearised network applied to an input basis: the
  identity (then the threat's support of each row is exact), the threat's own
  directions for `Directions` (its support depends only on those coordinates),
  or k random Cauchy (ℓ∞ threat) / Gaussian (ℓ2 threat) vectors whose median
  absolute value estimates the dual norm (Wong et al. 2018);
* one slack group per ReLU layer — a column w_j·e_j per unstable neuron j
  (padded to the batch's largest count), or k Cauchy mixtures of them plus
  their sum, whose medians estimate Σ_j |·| (Wong et al. 2018);

plus the centre, the linearised network applied to x with its biases.  A
pre-activation then lies in centre ± support(input group) + Σ_groups [Σ min(·,0),
Σ max(·,0)].  This costs one pass whose width is the input basis plus the
unstable neurons, against the backward pass's one propagation per neuron; the
engine picks the cheaper with `cheaper_than_backward`.
"""
from __future__ import annotations

import math

import torch

from realdata.relaxation.conjugate import column_support
from realdata.relaxation.graph import Block, Chain, Graph, Leaf, Relu
from realdata.relaxation.relu import PARALLEL, ReluRelaxation
from realdata.threats import L2, Directions, Linf

#: median of |N(0, 1)| = Φ⁻¹(3/4); the median of |g·v| for Gaussian g is this times ‖v‖₂
_GAUSS_MEDIAN = 0.6744897501960817


class _Group:
    """Columns [b, n, *shape] of one source of variation and how they widen a bound."""

    def __init__(self, cols, widen):
        self.cols = cols
        self.widen = widen  # cols at a ReLU input [b, n, m] → (lo, hi) additions, each [b, m]


def _input_group(threat, x, proj, generator, head: Chain) -> _Group:
    """The input group at the end of `head` (the affine layers before the first ReLU)."""
    shape = tuple(x.shape[1:])
    n = x[0].numel()
    like = dict(dtype=x.dtype, device=x.device)
    if isinstance(threat, Directions):
        cols = _through(head, threat.directions.to(**like).unsqueeze(0))
        return _Group(cols, lambda p: _symmetric(threat.eps * p.abs().amax(1)))
    if proj is not None and proj < n and isinstance(threat, (Linf, L2)):
        if isinstance(threat, Linf):
            cols, scale = _random("cauchy", (1, proj) + shape, generator, x), threat.eps
        else:
            cols, scale = _random("normal", (1, proj) + shape, generator, x), threat.eps / _GAUSS_MEDIAN
        return _Group(_through(head, cols), lambda p: _symmetric(scale * p.abs().median(1).values))
    return _Group(_affine_columns(head, x), lambda p: _symmetric(column_support(threat, p, shape)))


def _through(head: Chain, cols):
    for leaf in head.nodes:
        cols = leaf.linear(cols)
    return cols


def _affine_columns(head: Chain, x) -> torch.Tensor:
    """The matrix of the affine layers `head` as columns over the input basis, [1, n_in, *out].

    It is built from an identity on its smaller side: pushed forward from the inputs, or
    pulled back from the outputs and transposed (an MLP's first layer is far narrower
    than its input, so this avoids an n_in × n_in × width product)."""
    in_shape = tuple(x.shape[1:])
    out_shape = head.nodes[-1].out_shape if head.nodes else in_shape
    n, m = math.prod(in_shape), math.prod(out_shape)
    eye = torch.eye(min(n, m), dtype=x.dtype, device=x.device).unsqueeze(0)
    if n <= m:
        return _through(head, eye.reshape((1, n) + in_shape))
    rows = eye.reshape((1, m) + out_shape)
    for leaf in reversed(head.nodes):
        rows = leaf.transpose(rows)
    return rows.reshape(1, m, n).transpose(1, 2).reshape((1, n) + out_shape)


def _random(kind: str, shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Cauchy or Gaussian draws on the generator's device, moved to `like`'s (a CPU generator
    keeps runs reproducible whatever the device)."""
    device = generator.device if generator is not None else like.device
    t = torch.empty(shape, dtype=like.dtype, device=device)
    t = t.cauchy_(generator=generator) if kind == "cauchy" else t.normal_(generator=generator)
    return t.to(like.device)


def _symmetric(s):
    return -s, s


def _slack_exact(relax: ReluRelaxation):
    B = relax.d.shape[0]
    shape = tuple(relax.d.shape[1:])
    mask = relax.unstable.reshape(B, -1)
    n = int(mask.sum(1).max())
    if n == 0:
        return None
    rank = mask.long().cumsum(1) - 1
    b_idx, j_idx = mask.nonzero(as_tuple=True)
    w = relax.intercept.reshape(B, -1)[b_idx, j_idx]
    cols = relax.d.new_zeros(B, n, mask.shape[1]).index_put((b_idx, rank[b_idx, j_idx], j_idx), w)
    return _Group(cols.reshape((B, n) + shape), _split_sum)


def _split_sum(p):
    """(Σ min(p, 0), Σ max(p, 0)) over the columns, from Σp and Σ|p|."""
    total, size = p.sum(1), p.abs().sum(1)
    return (total - size) / 2, (total + size) / 2


def _slack_projected(relax: ReluRelaxation, k: int, generator):
    w = relax.intercept.unsqueeze(1)  # zero off the unstable neurons
    mix = _random("cauchy", (w.shape[0], k) + tuple(w.shape[2:]), generator, w)
    cols = torch.cat([w, mix * w], 1)

    def widen(p):
        total, l1 = p[:, 0], p[:, 1:].abs().median(1).values
        return (total - l1) / 2, (total + l1) / 2
    return _Group(cols, widen)


class _Forward:
    def __init__(self, graph: Graph, x, threat, first, proj, generator):
        self.graph = graph
        self.threat = threat
        self.first = first
        self.proj = proj
        self.generator = generator
        self.bounds = [None] * graph.num_relus

    def run(self, chain: Chain, centre, groups: list):
        for node in chain.nodes:
            if isinstance(node, Leaf):
                centre = node.forward(centre)
                for g in groups:
                    g.cols = node.linear(g.cols)
            elif isinstance(node, Relu):
                centre = self._relu(node, centre, groups)
            elif isinstance(node, Block):
                outer = len(groups)
                skip_groups = [_Group(g.cols, g.widen) for g in groups]
                main_groups = [_Group(g.cols, g.widen) for g in groups]
                c_main = self.run(node.main, centre, main_groups)
                c_skip = self.run(node.skip, centre, skip_groups)
                for g, s in zip(main_groups[:outer], skip_groups):
                    g.cols = g.cols + s.cols
                groups[:] = main_groups
                centre = c_main + c_skip
        return centre

    def _relu(self, node: Relu, centre, groups):
        if node.index == 0:
            lo, up = self.first
        else:
            B = centre.shape[0]
            lo = hi = centre.reshape(B, -1)
            for g in groups:
                dl, dh = g.widen(g.cols.flatten(2))
                lo, hi = lo + dl, hi + dh
            lo, up = lo.reshape(centre.shape), hi.reshape(centre.shape)
        self.bounds[node.index] = (lo, up)
        relax = ReluRelaxation(lo, up, PARALLEL)
        d = relax.d
        for g in groups:
            g.cols = d.unsqueeze(1) * g.cols
        n = int(relax.unstable.reshape(d.shape[0], -1).sum(1).max())
        if self.proj is not None and n > self.proj:
            groups.append(_slack_projected(relax, self.proj, self.generator))
        else:
            slack = _slack_exact(relax)
            if slack is not None:
                groups.append(slack)
        return d * centre


def coap_bounds(graph: Graph, x, threat, first, proj=None, generator=None) -> list:
    """COAP pre-activation bounds of every ReLU layer (exact when proj is None).

    Forward mode keeps every column of a layer at once (each layer's bounds need
    them all), so it is not chunked."""
    walker = _Forward(graph, x, threat, first, proj, generator)
    nodes = graph.root.nodes
    # start at the first ReLU when it is on the main path: its affine head is shared by the batch
    start = next((i for i, node in enumerate(nodes) if isinstance(node, Relu)), 0)
    head = Chain(nodes[:start])
    if not all(isinstance(node, Leaf) for node in head.nodes):
        start, head = 0, Chain([])
    walker.run(Chain(nodes[start:]), _through_forward(head, x), [_input_group(threat, x, proj, generator, head)])
    return walker.bounds


def _through_forward(head: Chain, x):
    for leaf in head.nodes:
        x = leaf.forward(x)
    return x


def _costs(chain: Chain, cols: float, unstable: float, state: dict) -> float:
    """Accumulate the forward pass's multiply-adds along `chain`; returns the column count."""
    for node in chain.nodes:
        if isinstance(node, Leaf):
            if state["relus"] > 0:  # before the first ReLU the columns are shared by the batch
                state["forward"] += cols * node.macs()
        elif isinstance(node, Relu):
            state["relus"] += 1
            cols += unstable * math.prod(node.shape)
        elif isinstance(node, Block):
            cols_main = _costs(node.main, cols, unstable, state)
            _costs(node.skip, cols, unstable, state)
            cols = cols_main
    return cols


def forward_cost(graph: Graph, x, first) -> float:
    """Multiply-adds of the forward pass per example.  Its width grows with the unstable
    neurons to come, estimated by the first ReLU layer's unstable fraction."""
    lo, up = first
    unstable = ((lo < 0) & (up > 0)).to(torch.float32).mean().item()
    state = {"forward": 0.0, "relus": 0}
    _costs(graph.root, float(x[0].numel()), unstable, state)
    return state["forward"]
