"""Synthetic experiments on top of `theory` and `realdata`.

* `simulate.one_step` — the theorem's single gradient step in finite samples vs theory's
  population values (`python -m simulate.one_step`).
* `simulate.linear`   — the signal-directed linear experiment (`python -m simulate.linear`).
* `simulate.spheres`  — concentric spheres (`python -m simulate.spheres`).
* `simulate.quick`    — `run_quick(kind, out)`: the small configurations figures runs for
  `--run-missing quick`.

Shared pieces: `runner` (configs → records, skipping finished ones), `training` (the
learning-rate search over `realdata.train.fit`), `lr_rule` (the papers' selection rule).
"""
