"""The one-neuron setting shared by theory's commands: its flags, defaults, help and validation.

The paper gives no numeric values of γ, σ, a, b, θ₁, η (docs/PAPER.md §2); the defaults are the worked
example's, so a single point with the defaults reproduces it. Every default is therefore INFERRED.
"""
from __future__ import annotations

from theory.errors import finite, require

DEFAULTS = {"gamma": 1.0, "sigma": 1.0, "a": 1.0, "b": -0.5, "theta1": 1.0, "eta": 1.0}
SETTING_HELP = {
    "gamma": "signal strength, x₁ = γy; γ > 0",
    "sigma": "noise std of x_{2:d}; σ > 0 (not stated in the sources)",
    "a": "output weight; a > 0",
    "b": "output bias; b < 0",
    "theta1": "θ₁ at initialisation; θ₁ > 0",
    "eta": "GD step size; η > 0",
}


def add_setting_arguments(parser, title):
    """One flag per setting value, each saying its default is INFERRED."""
    group = parser.add_argument_group(title)
    for name, text in SETTING_HELP.items():
        group.add_argument(f"--{name}", type=float, default=DEFAULTS[name],
                           help=f"{text} (default: %(default)s, INFERRED)")
    return group


def validate_setting(args):
    """Reject a setting outside the theorem's assumptions: one sentence naming the flag."""
    for name in DEFAULTS:
        finite(name, getattr(args, name))
    require(args.gamma > 0, f"--gamma must be positive (the signal strength), got {args.gamma}.")
    require(args.sigma > 0, f"--sigma must be positive (the noise std), got {args.sigma}.")
    require(args.a > 0, f"--a must be positive, as the theorem assumes, got {args.a}.")
    require(args.b < 0, f"--b must be negative, as the theorem assumes, got {args.b}.")
    require(args.theta1 > 0, f"--theta1 must be positive at initialisation, as the theorem assumes, got {args.theta1}.")
    require(args.eta > 0, f"--eta must be a positive step size, got {args.eta}.")


def setting(args):
    """The setting's values from parsed arguments, keyed as `theory.population` takes them."""
    return {k: getattr(args, k) for k in DEFAULTS}
