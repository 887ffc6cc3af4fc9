"""One linear-relaxation engine; each bound method is a recipe for it (`recipes.py`).

The engine computes the pre-activation bounds of every ReLU layer the recipe's
way — interval propagation (`intervals.py`), or one linear propagation per neuron
with the recipe's relaxation class — and bounds the output margins with the
recipe's output rule.  The input conjugate is always the threat's support
function, asked through the threat's own fast paths.

The per-neuron linear passes run backward (`backward.py`, in patches behind
convolutions: `patches.py`); a relaxation whose lines are parallel (COAP) may
instead push its dual network forward (`forward.py`), which is the only way for
random projections and the cheaper way when the input is narrow next to the
layers.  Both give the same bounds.
"""
from __future__ import annotations

import torch

from realdata.relaxation import forward, patches
from realdata.relaxation.backward import linear_bounds, row_support
from realdata.relaxation.graph import Graph, parse
from realdata.relaxation.intervals import IntervalPass
from realdata.relaxation.layers import Chain
from realdata.relaxation.optimised import ITERATIONS, STEP_SIZE
from realdata.relaxation.recipes import RECIPES
from realdata.relaxation.relus import Spec, unstable_mask

#: elements of one chunk of per-neuron coefficients (B × neurons × widest shape on the way) on a
#: CPU: 8 MiB in float32, under glibc's largest mmap threshold (32 MiB), so the chunks' tensors are
#: recycled from the heap; 64 MiB ones (the earlier 1 << 24) were mapped afresh and page-faulted
#: on every use (~10^5 faults per CROWN bound of the CIFAR CNN at batch 8, ~15% of its time)
DEFAULT_BUDGET = 1 << 21
#: on a GPU: chunk tensors alive at once in a backward pass (coefficients, their product with a
#: layer, the relaxation's terms, both sides), with margin — an estimate, not yet measured on a GPU
LIVE_CHUNKS = 8


def chunk_budget(x: torch.Tensor) -> int:
    """Elements per chunk for inputs `x`: on a GPU from its free memory (one chunk per pass
    uses it in a few large kernels instead of ~1,800 small ones for the paper ResNet at batch
    256); elsewhere `DEFAULT_BUDGET`."""
    if x.device.type != "cuda":
        return DEFAULT_BUDGET
    free, _ = torch.cuda.mem_get_info(x.device)
    return max(DEFAULT_BUDGET // 16, free // (x.element_size() * LIVE_CHUNKS))
#: time per multiply-add of COAP's forward pass relative to the backward pass (measured, see _use_forward)
FORWARD_OVERHEAD = 1.5


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class AffineRows:
    """The rows of a ReLU-free chain as a threat's `row_support` sees them: `linear(cols)`,
    and `power(t, p)` when it is exact (at most one layer that is not diagonal)."""

    def __init__(self, chain: Chain, x: torch.Tensor):
        self.chain, self.x = chain, x
        if sum(not layer.diagonal for layer in chain.nodes) <= 1:
            self.power = self._power
        else:
            self.power = None

    def ones(self) -> torch.Tensor:
        return torch.ones((1,) + tuple(self.x.shape[1:]), dtype=self.x.dtype, device=self.x.device)

    def linear(self, cols: torch.Tensor) -> torch.Tensor:
        return self.chain.linear(cols)

    def _power(self, t: torch.Tensor, p: int) -> torch.Tensor:
        for layer in self.chain.nodes:
            t = layer.power(t, p)
        return t


class _KnownBounds:
    """IBP's context for one layer's interval bounds: each ReLU before it takes its known bounds."""

    def __init__(self, bounds: list):
        self.bounds = bounds

    def relu_bounds(self, relu, lo, up):
        return self.bounds[relu.index]


class Engine:
    """Bounds of one model on one batch under one threat with one method."""

    def __init__(self, model, x, threat, method, beta=1.0, proj=None, chunk_size=None,
                 generator=None, direction="auto", iterations=ITERATIONS, step_size=STEP_SIZE):
        self.graph: Graph = parse(model, x)
        self.x = x
        self.threat = threat
        self.recipe = RECIPES[method]
        self.relaxation = self.recipe.relaxation
        self.beta = beta
        self.proj = proj
        self.chunk_size = chunk_size
        self.generator = generator
        self.direction = direction
        self.iterations = iterations  # the optimised slopes' Adam steps and step size
        self.step_size = step_size
        self._bounds = None
        self._intervals = None
        self._first = None
        self._first_out = None  # (nodes, their output at x): the first ReLU's affine prefix, reused by passes
        self._refined = {}  # ReLU layer → the neurons its linear pass runs from (unstable_only recipes)

    # -- pre-activation bounds -------------------------------------------
    def preactivation_bounds(self) -> list:
        if self._bounds is None:
            self._bounds = self._compute_bounds()
        return self._bounds

    def relaxations(self, bounds: list, state=None) -> list:
        """The recipe's relaxation of every ReLU layer with the given bounds (and the
        relaxation's own state, e.g. optimised slopes)."""
        return self.relaxation.build(bounds, state)

    def set_preactivation_bounds(self, bounds: list):
        """Replace the bounds (a relaxation that optimises its slopes tightens them)."""
        self._bounds = bounds

    def _compute_bounds(self) -> list:
        g = self.graph
        if g.num_relus == 0:
            return []
        first = self.first_layer()
        if self.recipe.intermediate == "interval" or self.recipe.output == "mix":
            self._intervals = IntervalPass(g, self.x, self.threat, first)
        if self.recipe.intermediate == "interval":
            return self._intervals.bounds
        if self.relaxation.forward_capable and self._use_forward(first):
            return forward.dual_bounds(g, self.x, self.threat, self.relaxation, first, proj=self.proj,
                                       generator=self.generator)
        return self.linear_preactivations()

    def linear_preactivations(self, state=None) -> list:
        """Every ReLU layer's bounds by backward passes, each layer's with the relaxations of
        the layers before it (given `state`)."""
        bounds = [self.first_layer()]
        for k in range(1, self.graph.num_relus):
            bounds.append(self._layer_bounds(k, self.relaxations(bounds, state), bounds))
        return bounds

    def _use_forward(self, first) -> bool:
        if self.proj is not None or self.direction == "forward":
            return True
        if self.direction == "backward":
            return False
        # the forward pass moves more memory per multiply-add (padded slack columns, transposes
        # for the conjugate); on 1 CPU thread it needed ~1.4x the time of a backward pass of
        # equal count (benchmarks/bounds.py MLP), hence the factor
        return FORWARD_OVERHEAD * forward.forward_cost(self.graph, self.x, first) < self._backward_cost()

    def _backward_cost(self) -> float:
        """Multiply-adds per example of one backward pass per neuron of every layer."""
        total = 0.0
        for k in range(1, self.graph.num_relus):
            chain = self.graph.prefix(k)
            per_neuron = patches.patch_cost(chain) if patches.applicable(chain, self.threat, self.x) else chain.macs()
            total += _numel(self.graph.relu_shapes[k]) * per_neuron
        return total

    def first_layer(self):
        """Exact range of the first ReLU's affine prefix (computed once): its forward pass ± the
        support of each row."""
        if self._first is None:
            self._first = self._first_layer()
        return self._first

    def _first_layer(self):
        chain = self.graph.prefix(0)
        centre = chain.forward(self.x)
        self._first_out = (chain.nodes, centre)
        spread = self.threat.row_support(AffineRows(chain, self.x)) if chain.nodes else None
        if spread is None:
            # the rows of an affine prefix do not depend on the example: one support per neuron serves the batch
            spread = torch.cat([row_support(chain, rows, self.threat) for _, rows in self._identity_chunks(0, batch=1)],
                               1)
            spread = spread.reshape((1,) + self.graph.relu_shapes[0])
        return centre - spread, centre + spread

    def _layer_bounds(self, k: int, relax: list, bounds: list):
        """ReLU layer k's bounds given the relaxations `relax` of the layers before it at their
        bounds `bounds`: the linear pass from every neuron, or (a recipe that refines only the
        unstable ones) the interval bounds intersected with the linear pass from the neurons
        they leave unstable in some example."""
        B, shape = self.x.shape[0], self.graph.relu_shapes[k]
        if not self.recipe.unstable_only:
            lo, up = self._linear_rows(k, relax, None)
            return lo.reshape((B,) + shape), up.reshape((B,) + shape)
        lo, up = self._interval_bounds(k, bounds)
        lo, up = lo.expand((B,) + shape).reshape(B, -1), up.expand((B,) + shape).reshape(B, -1)
        if k not in self._refined:
            # fixed at the first pass, so that an optimised slope keeps its specification block
            # across passes; any choice of rows is sound
            self._refined[k] = unstable_mask(lo, up).any(0).nonzero().squeeze(1)
        rows = self._refined[k]
        if len(rows):
            lin_lo, lin_up = self._linear_rows(k, relax, rows)
            lo = lo.index_copy(1, rows, torch.maximum(lo[:, rows], lin_lo))
            up = up.index_copy(1, rows, torch.minimum(up[:, rows], lin_up))
        return lo.reshape((B,) + shape), up.reshape((B,) + shape)

    def _interval_bounds(self, k: int, bounds: list):
        """IBP through ReLU k's prefix with the (tighter) known bounds of the ReLUs before it."""
        radius = self.threat.box_radius(self.x).expand_as(self.x)
        c, r = self.graph.prefix(k).interval(self.x, radius, _KnownBounds(bounds))
        return c - r, c + r

    def _linear_rows(self, k: int, relax: list, rows):
        """Bounds of the neurons `rows` (flat indices; None: all) of ReLU layer k's input by
        backward passes → two [B, n] tensors."""
        chain = self.graph.prefix(k)
        two_sided = self.relaxation.two_sided
        B = self.x.shape[0]
        lows, ups = [], []
        if patches.applicable(chain, self.threat, self.x):
            if rows is None:
                rows = torch.arange(_numel(self.graph.relu_shapes[k]), device=self.x.device)
            chunk = self.chunk_size or max(1, chunk_budget(self.x) // (B * patches.patch_size(chain, self.x)))
            for start in range(0, len(rows), chunk):
                block = rows[start:start + chunk]
                spec = Spec(k, start, start + len(block), 1.0)
                lo, up = patches.patch_bounds(chain, block, self.x, self.threat, relax, two_sided, spec=spec)
                if not two_sided:  # one-sided rule: the upper bound is minus the lower bound of −z
                    up = -patches.patch_bounds(chain, block, self.x, self.threat, relax, False, sign=-1.0,
                                               spec=Spec(k, spec.start, spec.stop, -1.0))[0]
                lows.append(lo)
                ups.append(up)
            return torch.cat(lows, 1), torch.cat(ups, 1)
        for spec, eye in self._identity_chunks(k, batch=B, rows=rows):
            if two_sided:
                lo, up = linear_bounds(chain, eye, self.x, self.threat, relax, two_sided=True, spec=spec)
            else:
                m = eye.shape[1]
                both, _ = linear_bounds(chain, torch.cat([eye, -eye], 1), self.x, self.threat, relax,
                                        two_sided=False, spec=spec)
                lo, up = both[:, :m], -both[:, m:]
            lows.append(lo)
            ups.append(up)
        return torch.cat(lows, 1), torch.cat(ups, 1)

    def _identity_chunks(self, k: int, batch: int, rows=None):
        """(Spec, identity rows [1, n, *shape]) for chunks of the neurons `rows` (flat indices;
        None: all) of ReLU layer k."""
        shape = self.graph.relu_shapes[k]
        m = _numel(shape)
        if rows is None:
            rows = torch.arange(m, device=self.x.device)
        chunk = self.chunk_size or max(1, chunk_budget(self.x) // (batch * self._widest(k)))
        for start in range(0, len(rows), chunk):
            block = rows[start:start + chunk]
            n = len(block)
            eye = torch.zeros(1, n, m, dtype=self.x.dtype, device=self.x.device)
            eye[0, torch.arange(n, device=eye.device), block] = 1
            yield Spec(k, start, start + n), eye.reshape((1, n) + shape)

    def _widest(self, k: int) -> int:
        shapes = [self.graph.in_shape] + self.graph.relu_shapes[:k + 1]
        return max(_numel(s) for s in shapes)

    # -- output ----------------------------------------------------------
    def margin_lower_bounds(self, y: torch.Tensor) -> torch.Tensor:
        """Lower bounds of f_y − f_j for every class j → [B, C], entry y exactly 0."""
        C = _numel(self.graph.out_shape)
        eye = torch.eye(C, dtype=self.x.dtype, device=self.x.device)
        spec = (eye[y].unsqueeze(1) - eye.unsqueeze(0)).reshape((len(y), C) + self.graph.out_shape)
        out = self.recipe.output
        weight = self.beta if out == "mix" else (1.0 if out == "linear" else 0.0)
        total = 0
        if weight > 0:
            total = weight * self.relaxation.output_lower(self, spec)
        if weight < 1:
            self.preactivation_bounds()  # runs IBP
            total = total + (1 - weight) * self._interval_output(spec)
        mask = torch.ones_like(total).scatter_(1, y.unsqueeze(1), 0)
        return total * mask

    def linear_output(self, bounds: list, spec: torch.Tensor, state=None) -> torch.Tensor:
        """Lower bounds of the output specification [B, m, *out] → [B, m], one backward pass
        with the relaxations at `bounds` (and `state`)."""
        lower, _ = linear_bounds(self.graph.root, spec, self.x, self.threat, self.relaxations(bounds, state),
                                 two_sided=self.relaxation.two_sided, spec=Spec(), known=self._first_out)
        return lower

    def _interval_output(self, spec):
        if self._intervals is None:  # a model without ReLUs: its range is exact
            return linear_bounds(self.graph.root, spec, self.x, self.threat, [], two_sided=False)[0]
        return self._intervals.output_lower(spec)
