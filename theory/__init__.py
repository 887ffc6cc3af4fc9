"""Exact maths of the one-neuron theorem (docs/PAPER.md §2).

* `theory.derivation` — sympy derivation of the AT and COAP worst-case margins and their θ₁-gradients,
  lambdified into numpy functions (`worst_case_margins`, `loss_gradients`).
* `theory.lemma` — the proof's truncated-normal reduction f(r), its bound u(r), `threshold_ratio`.
* `theory.population` — expected gradients by 1-D quadrature, the robust risk R_ε, `one_step`,
  `risk_gap_grid`.
* `theory.lp` — the exact triangle-relaxation LP (scipy linprog) as ground truth for the dual.
* `theory.checks` — every named check, pass/fail; `python -m theory.check_theorem` runs them.

Depends on nothing else in this repository.
"""
