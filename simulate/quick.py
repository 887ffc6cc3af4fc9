"""Run the quick variant of a synthetic experiment: what figures runs for `--run-missing quick`.

    from simulate.quick import run_quick
    records = run_quick("spheres", out="results")   # or "linear", "one_step"

The quick grids themselves are defined once, in `realdata.synthetic.QUICK`; this module
only maps a record kind to the experiment that runs it.
"""
from __future__ import annotations

from realdata.synthetic import quick_configs
from simulate import linear, one_step, spheres

RUNNERS = {
    one_step.KIND: one_step.run_one_step,
    linear.KIND: linear.run_linear,
    spheres.KIND: spheres.run_spheres,
}


def run_quick(kind: str, out="results", force: bool = False, progress: bool = True) -> list[dict]:
    """Run (or reuse the finished records of) the quick configurations of `kind` → their records."""
    configs = quick_configs(kind)
    return RUNNERS[kind](configs, out=out, force=force, progress=progress)
