"""The small configurations `figures` runs for `--run-missing quick`, one entry per record kind.

    from simulate.quick import run_quick
    records = run_quick("spheres", out="results")   # or "linear", "one_step"

Each kind's `quick_configs()` lives beside its experiment; this module only maps a record
kind to (configurations, runner), so figures needs one call and no knowledge of configs.
"""
from __future__ import annotations

from realdata.errors import UserError
from simulate import linear, one_step, spheres

QUICK = {
    one_step.KIND: (one_step.quick_configs, one_step.run_one_step),
    linear.KIND: (linear.quick_configs, linear.run_linear),
    spheres.KIND: (spheres.quick_configs, spheres.run_spheres),
}


def quick_configs(kind: str) -> list:
    if kind not in QUICK:
        raise UserError(f"no quick configurations for record kind {kind!r}; choose one of {', '.join(QUICK)}.")
    return QUICK[kind][0]()


def run_quick(kind: str, out="results", force: bool = False, progress: bool = True) -> list[dict]:
    """Run (or reuse the finished records of) the quick configurations of `kind` → their records."""
    configs = quick_configs(kind)
    return QUICK[kind][1](configs, out=out, force=force, progress=progress)
