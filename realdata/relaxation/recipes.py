"""Bound methods as recipes for the one engine: the registry of method names.

A recipe picks (1) where the pre-activation bounds of the ReLU layers come from
— interval propagation, or the same linear propagation run from every neuron of
the layer — (2) the relaxation class of the unstable ReLUs (`relus.py`) and
(3) the output rule: the linear propagation of the margin specification, IBP's
bound, or (CROWN-IBP) a β-mix of the two.  A new rule is one relaxation class
plus one entry here.

A linear recipe may also (4) refine only the unstable neurons: each layer's
interval bounds from the tight bounds of the layers before it go first, the
linear pass runs only from the neurons they leave unstable in some example of
the batch, and the two are intersected (auto_LiRPA's way; never looser, and
much less work where most neurons are stable).  COAP does not, so that it stays
exactly Wong & Kolter's dual.

===========  =========================  ===============  =========================
method       intermediate bounds        relaxation       output
===========  =========================  ===============  =========================
ibp          interval                   —                interval
crown        linear, unstable only      AdaptiveSlope    linear
crown-ibp    interval                   AdaptiveSlope    β·linear + (1−β)·interval
coap         linear                     ParallelSlope    linear
alpha-crown  linear, unstable only      OptimisedSlope   linear, slopes optimised
===========  =========================  ===============  =========================
"""
from __future__ import annotations

from dataclasses import dataclass

from realdata.relaxation.optimised import OptimisedSlope
from realdata.relaxation.relus import AdaptiveSlope, ParallelSlope, ReluRelaxation

INTERMEDIATE = ("interval", "linear")
OUTPUT = ("interval", "linear", "mix")


@dataclass(frozen=True)
class Recipe:
    intermediate: str  # one of INTERMEDIATE
    relaxation: type[ReluRelaxation]  # IBP's output never uses it; CROWN's rule keeps its record uniform
    output: str  # one of OUTPUT
    #: linear intermediate bounds only from the neurons their interval bounds leave unstable (4)
    unstable_only: bool = False

    def __post_init__(self):
        assert self.intermediate in INTERMEDIATE and self.output in OUTPUT, self
        assert not self.unstable_only or self.intermediate == "linear", self


RECIPES = {
    "ibp": Recipe("interval", AdaptiveSlope, "interval"),
    "crown": Recipe("linear", AdaptiveSlope, "linear", unstable_only=True),
    "crown-ibp": Recipe("interval", AdaptiveSlope, "mix"),
    "coap": Recipe("linear", ParallelSlope, "linear"),
    "alpha-crown": Recipe("linear", OptimisedSlope, "linear", unstable_only=True),
}
