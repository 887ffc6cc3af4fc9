"""The poster's text panels: the objective, lower vs upper bound, fairness, the theorem.

Blocks are stacked from the top of an axes by offsets in points, so their spacing follows
the font size rather than the panel's height (which constrained layout decides late).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

HEADER_COLOR = "#0072B2"


@dataclass(frozen=True)
class Block:
    text: str
    size: float = 1.0  # relative to the current font size
    math: bool = False  # centred display formula


OBJECTIVE = (
    Block("Robust training minimises the worst-case loss over a threat set B_ε(x):"),
    Block(r"$\min_{\theta}\ \mathbb{E}_{(x,y)}\left[\ \max_{x' \in B_\epsilon(x)} L(f_\theta(x'), y)\ \right]$",
          size=1.35, math=True),
    Block("Here B_ε(x) is the ℓ2 ball of radius ε around x; the inner maximum is intractable for "
          "ReLU networks, so every method replaces it by a bound."),
)

BOUNDS = (
    Block("Adversarial training (AT): an attack finds some x' ∈ B_ε(x), a LOWER bound:"),
    Block(r"$L(f_\theta(x_{\mathrm{adv}}), y)\ \leq\ \max_{x' \in B_\epsilon(x)} L(f_\theta(x'), y)$",
          size=1.25, math=True),
    Block("Certified training (COAP, CROWN-IBP, IBP): a convex relaxation of every unstable ReLU (ℓ"
          " < 0 < u) gives an UPPER bound:"),
    Block(r"$\max_{x' \in B_\epsilon(x)} L(f_\theta(x'), y)\ \leq\ \tilde{L}_\theta(x, y)$",
          size=1.25, math=True),
    Block("The looser the relaxation (many unstable ReLUs: large ε, perturbations aligned with the "
          "signal), the further the trained model is pushed from the data."),
)

FAIRNESS = (
    Block("Accuracy discrepancy (Sanyal et al. 2022): how much worse the worst class is, relative "
          "to the accuracy; R is the error, R^k the error on class k:"),
    Block(r"$\mathrm{AccDisc} = \dfrac{\max_k R^k - R}{1 - R}$", size=1.5, math=True),
    Block("Robust accuracy discrepancy: the same with robust errors."),
)

THEOREM = (
    Block("Data: y = ±1 equally likely, x₁ = γy, x₂:d ~ N(0, σ²I). Threat: x + βe₁, |β| ≤ ε (along "
          "the signal). Model: f(x) = a·ReLU(θᵀx) + b, a > 0 > b, only θ₁ trained; r = ‖θ₂:d‖/θ₁. "
          "One step of population gradient descent, same step size for both."),
    Block("$\\frac{2}{3}\\gamma < \\epsilon < \\gamma$ and $r > r^*(\\epsilon)$\n"
          r"$\Longrightarrow\ R_\epsilon(\theta^{\mathrm{COAP}}) > R_\epsilon(\theta^{\mathrm{AT}})$",
          size=1.3, math=True),
    Block("Why: outside I* = {y = +1, ℓ < 0 < u} the gradients agree; on I* AT's is zero while "
          "COAP's fixed-slope bound pushes θ₁ down, away from the signal."),
)


def draw_blocks(ax, blocks, fontsize: float, title: str | None = None, width_chars: int = 70):
    """Stack `blocks` from the top-left of `ax` (axes hidden); returns the height used, in points.

    Paragraphs are wrapped to `width_chars` characters (the caller knows the panel's width);
    formulas are never wrapped.
    """
    ax.set_axis_off()
    offset = 0.0
    if title:
        ax.annotate(title, (0, 1), xycoords="axes fraction", xytext=(0, 0), textcoords="offset points",
                    va="top", ha="left", fontsize=fontsize * 1.35, fontweight="bold", color=HEADER_COLOR)
        offset += fontsize * 1.35 * 1.9
    for block in blocks:
        size = fontsize * block.size
        text = block.text if block.math else textwrap.fill(block.text, width_chars)
        lines = text.count("\n") + 1
        # A display-style fraction (\dfrac) is about three text lines tall; inline math and
        # text need a line each.
        height = size * (3.0 if r"\dfrac" in block.text else 1.55 if block.math else 1.45) * lines
        x, ha = (0.5, "center") if block.math else (0.0, "left")
        ax.annotate(text, (x, 1), xycoords="axes fraction", xytext=(0, -offset),
                    textcoords="offset points", va="top", ha=ha, fontsize=size, linespacing=1.35)
        offset += height + fontsize * 0.7
    return offset
