"""COAP's intermediate bounds by forward propagation (Wong & Kolter's dual network).

With the parallel slope rule every ReLU is relu(z) = d·z + s, s ∈ [0, w]
(w = −d·ℓ on unstable neurons, 0 elsewhere), so each pre-activation is an
affine function of the input and of the slacks.  The forward pass carries that
function as column groups:

* the input group — the linearised network applied to an input basis: the
  threat's own (`Threat.forward_basis`: its directions for `Directions`, or k
  random Cauchy (ℓ∞) / Gaussian (ℓ2) vectors whose median absolute value
  estimates the dual norm, Wong et al. 2018), else the identity, whose rows'
  support the threat gives exactly (`Threat.column_support`);
* one slack group per ReLU layer — a column w_j·e_j per unstable neuron j
  (padded to the batch's largest count), or k Cauchy mixtures of them plus
  their sum, whose medians estimate Σ_j |·| (Wong et al. 2018; one random
  matrix for the whole batch, as for the input projections);

plus the centre, the linearised network applied to x with its biases.  A
pre-activation then lies in centre ± support(input group) + Σ_groups [Σ min(·,0),
Σ max(·,0)].  This costs one pass whose width is the input basis plus the
unstable neurons, against the backward pass's one propagation per neuron; the
engine picks the cheaper with `forward_cost`.  Only a relaxation whose lines are
parallel (`forward_capable`) can be pushed forward.
"""
from __future__ import annotations

import math

import torch

from realdata.relaxation.graph import Graph
from realdata.relaxation.layers import Chain
from realdata.relaxation.relus import unstable_mask
from realdata.threats import median_index, random_draws


class _Group:
    """Columns [b, n, *shape] of one source of variation and how they widen a bound."""

    def __init__(self, cols, widen):
        self.cols = cols
        self.widen = widen  # cols at a ReLU input [b, n, m] → (lo, hi) additions, each [b, m]

    def copy(self) -> "_Group":
        return _Group(self.cols, self.widen)


def _input_group(threat, x, proj, generator, head: Chain) -> _Group:
    """The input group at the end of `head` (the affine layers before the first ReLU)."""
    basis = threat.forward_basis(x, proj, generator)
    if basis is not None:
        cols, widen = basis
        return _Group(head.linear(cols), widen)
    shape = tuple(x.shape[1:])
    return _Group(_affine_columns(head, x), lambda p: _symmetric(threat.column_support(p, shape)))


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
        return head.linear(eye.reshape((1, n) + in_shape))
    rows = eye.reshape((1, m) + out_shape)
    for layer in reversed(head.nodes):
        rows = layer.transpose(rows)
    return rows.reshape(1, m, n).transpose(1, 2).reshape((1, n) + out_shape)


def _symmetric(s):
    return -s, s


def _split_sum(p):
    """(Σ min(p, 0), Σ max(p, 0)) over the columns, from Σp and Σ|p|."""
    total, size = p.sum(1), p.abs().sum(1)
    return (total - size) / 2, (total + size) / 2


def _slack_projected(relax, k: int, draws: "_SharedDraws", key) -> _Group:
    w = relax.intercept.unsqueeze(1)  # zero off the unstable neurons
    # column 0 is the slacks' sum, columns 1..k their Cauchy mixtures: one product with w, no
    # concatenated copy of the [B, k + 1, *shape] columns.  One random matrix serves the batch,
    # as it serves every neuron of the layer and as the input projections serve the batch: each
    # example's estimate has the same distribution as with draws of its own, at 1/B of the draws
    # (per-example draws were ~8% of a training step of the CIFAR CNN at batch 50)
    mix = draws.get(key, lambda generator: _cauchy_mix((1, k + 1) + tuple(w.shape[2:]), generator, w))
    cols = mix * w

    def widen(p):
        # the sum and the median of the mixtures' |·| in one gather, whose backward scatters into
        # one zero tensor (a slice for each would allocate and add two of p's size)
        at = torch.cat([torch.zeros_like(p[:, :1], dtype=torch.long), median_index(p[:, 1:]) + 1], 1)
        both = p.gather(1, at)
        total, l1 = both[:, 0], both[:, 1].abs()
        return (total - l1) / 2, (total + l1) / 2
    return _Group(cols, widen)


def _cauchy_mix(shape, generator, like):
    mix = random_draws("cauchy", shape, generator, like)
    mix[:, 0] = 1
    return mix


class _SharedDraws:
    """What one forward pass shares across its batch chunks: the random matrices (one per
    source, drawn on first use) and the input group, so a chunked pass computes what the
    unchunked one does."""

    def __init__(self, generator):
        self.generator = generator
        self._made = {}

    def get(self, key, make):
        if key not in self._made:
            self._made[key] = make(self.generator)
        return self._made[key]


class _Forward:
    """The forward walk's shared state: the relaxation class, the bounds found so far."""

    def __init__(self, graph: Graph, relaxation, first, proj, draws: _SharedDraws):
        self.relaxation = relaxation
        self.first = first
        self.proj = proj
        self.draws = draws
        self.bounds = [None] * graph.num_relus

    def relu(self, node, centre, groups):
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
        relax = self.relaxation(lo, up)
        centre = relax.forward_step(centre, groups)
        if self.proj is not None and relax.unstable_count() > self.proj:
            groups.append(_slack_projected(relax, self.proj, self.draws, node.index))
        else:
            slack = relax.slack_columns()
            if slack is not None:
                groups.append(_Group(slack, _split_sum))
        return centre


def dual_bounds(graph: Graph, x, threat, relaxation, first, proj=None, generator=None) -> list:
    """Pre-activation bounds of every ReLU layer by the forward pass of a `forward_capable`
    relaxation class (exact when proj is None).

    Forward mode keeps every column of a layer at once (each layer's bounds need them all),
    so its columns are not chunked; on the CPU the batch is, to `CPU_CHUNK_BYTES` of columns
    per chunk, with the random draws and the input group shared by the chunks.  A chunk, like a
    batch, takes a layer's slack exactly when none of its examples has more than `proj`
    unstable neurons there (exact and cheaper); otherwise chunks compute what the whole batch does."""
    nodes = graph.root.nodes
    # start at the first ReLU when it is on the main path: its affine head is shared by the batch
    start = next((i for i, node in enumerate(nodes) if node.relus()), 0)
    head = Chain(nodes[:start])
    if not all(node.is_affine for node in head.nodes):
        start, head = 0, Chain([])
    rest = Chain(nodes[start:])
    draws = _SharedDraws(generator)
    inputs = draws.get("input", lambda gen: _input_group(threat, x, proj, gen, head))
    parts = []
    for rows in _batch_chunks(graph, x, first, proj, inputs.cols.shape[1]):
        walker = _Forward(graph, relaxation, tuple(b[rows] for b in first), proj, draws)
        rest.forward_columns(head.forward(x[rows]), [inputs.copy()], walker)
        parts.append(walker.bounds)
    if len(parts) == 1:
        return parts[0]
    return [tuple(torch.cat([p[i][side] for p in parts]) for side in (0, 1)) for i in range(graph.num_relus)]


#: The forward pass on the CPU runs the batch in chunks whose columns at the widest ReLU layer
#: (all groups together) take at most this many bytes.  glibc gives a freed block larger than
#: its largest mmap threshold (32 MiB) straight back to the OS, so the next batch faults it in
#: again page by page: the CIFAR CNN's [50, 51, 16, 16, 16] columns (42 MB) cost ~10⁶ page faults
#: an epoch of 500 images, a fifth to a third of the time (benchmarks/training.py).  Half of this
#: budget per group keeps each block below that threshold, where freed memory is reused.  On a
#: GPU the caching allocator keeps memory, and the whole batch in one pass is faster.
CPU_CHUNK_BYTES = 32 * 2**20


def _batch_chunks(graph: Graph, x, first, proj, input_cols: int) -> list:
    """Slices of the batch for `dual_bounds` (one slice: the whole batch)."""
    batch = x.shape[0]
    if x.device.type != "cpu" or batch == 1:
        return [slice(0, batch)]
    costs = _Costs(_unstable_fraction(first), proj)
    graph.root.count_forward(float(input_cols), costs)
    per_example = costs.widest * x.element_size()
    count = math.ceil(batch / max(1, int(CPU_CHUNK_BYTES // max(per_example, 1))))
    size = math.ceil(batch / count)
    return [slice(s, s + size) for s in range(0, batch, size)]


def forward_cost(graph: Graph, x, first) -> float:
    """Multiply-adds of the forward pass per example.  Its width grows with the unstable
    neurons to come, estimated by the first ReLU layer's unstable fraction."""
    costs = _Costs(_unstable_fraction(first))
    graph.root.count_forward(float(x[0].numel()), costs)
    return costs.total


def _unstable_fraction(first) -> float:
    lo, up = first
    return unstable_mask(lo, up).to(torch.float32).mean().item()


class _Costs:
    """The forward pass's multiply-adds (`total`) and its widest layer of columns per example
    (`widest`, in elements), counted node by node (`count_forward`); with `proj`, a layer's
    slack group is at most proj + 1 columns."""

    def __init__(self, unstable: float, proj: int | None = None):
        self.unstable = unstable
        self.proj = proj
        self.total = 0.0
        self.widest = 0.0
        self.relus = 0

    def affine(self, layer, cols: float) -> float:
        if self.relus > 0:  # before the first ReLU the columns are shared by the batch
            self.total += cols * layer.macs()
        return cols

    def relu(self, node, cols: float) -> float:
        self.relus += 1
        size = math.prod(node.shape)
        slack = self.unstable * size
        cols += slack if self.proj is None else min(slack, self.proj + 1)
        self.widest = max(self.widest, cols * size)
        return cols
