"""Bound methods as recipes for the one engine: the registry of method names.

A recipe picks (1) where the pre-activation bounds of the ReLU layers come from
— interval propagation, or the same linear propagation run from every neuron of
the layer — (2) the relaxation class of the unstable ReLUs (`relus.py`) and
(3) the output rule: the linear propagation of the margin specification, IBP's
bound, or (CROWN-IBP) a β-mix of the two.  A new rule is one relaxation class
plus one entry here.

===========  ===================  ===============  =========================
method       intermediate bounds  relaxation       output
===========  ===================  ===============  =========================
ibp          interval             —                interval
crown        linear               AdaptiveSlope    linear
crown-ibp    interval             AdaptiveSlope    β·linear + (1−β)·interval
coap         linear               ParallelSlope    linear
alpha-crown  linear               OptimisedSlope   linear, slopes optimised
===========  ===================  ===============  =========================
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

    def __post_init__(self):
        assert self.intermediate in INTERMEDIATE and self.output in OUTPUT, self


RECIPES = {
    "ibp": Recipe("interval", AdaptiveSlope, "interval"),
    "crown": Recipe("linear", AdaptiveSlope, "linear"),
    "crown-ibp": Recipe("interval", AdaptiveSlope, "mix"),
    "coap": Recipe("linear", ParallelSlope, "linear"),
    "alpha-crown": Recipe("linear", OptimisedSlope, "linear"),
}
