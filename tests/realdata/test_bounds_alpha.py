"""alpha-crown: sound, never looser than CROWN (and tighter where slopes matter), the same in
patches as dense, gradients to the weights, options checked, picked up by the registry."""
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import cnn, margins, mlp, pgd_margins
from test_bounds_layers import bn_cnn  # conv–BN–ReLU–AvgPool–conv–BN–ReLU–FC–BN–ReLU–FC, eval mode
from realdata.bounds import BOUND_METHODS, margin_lower_bounds, robust_loss
from realdata.errors import UserError
from realdata.relaxation.engine import Engine
from realdata.threats import L2, Linf

TOL = 1e-9  # float64 rounding only


def _net(kind: str, seed: int):
    if kind == "mlp":
        return mlp(seed, 6, [10, 8], 4), (6,), 4
    if kind == "cnn":
        return cnn(seed, channels=2, size=8, classes=4), (2, 8, 8), 4
    return bn_cnn(seed, channels=2, size=8, classes=4), (2, 8, 8), 4


def _batch(shape, classes, seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n,) + shape, generator=g, dtype=torch.float64), torch.randint(classes, (n,), generator=g), g


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["mlp", "cnn", "bn"]), l2=st.booleans(), seed=st.integers(0, 10_000),
       eps=st.floats(0.02, 0.3))
def test_sampled_and_attacked_points_never_beat_the_bound(kind, l2, seed, eps):
    model, shape, classes = _net(kind, seed)
    x, y, g = _batch(shape, classes, seed)
    threat = L2(4 * eps) if l2 else Linf(eps)
    with torch.no_grad():
        alpha = margin_lower_bounds(model, x, y, threat, "alpha-crown", iterations=6)
        crown = margin_lower_bounds(model, x, y, threat, "crown")
    assert (alpha >= crown - TOL).all()
    points = [threat.sample(x.shape, generator=g, dtype=x.dtype) for _ in range(16)] + [torch.zeros_like(x)]
    with torch.no_grad():
        found = torch.stack([margins(model, x + d, y) for d in points]).amin(0)
    found = torch.minimum(found, pgd_margins(model, x, y, threat, steps=10, generator=g))
    assert (found >= alpha - TOL).all()


@pytest.mark.parametrize("kind", ["mlp", "cnn", "bn"])
def test_tighter_than_crown_and_one_iteration_is_crown(kind):
    model, shape, classes = _net(kind, 3)
    x, y, _ = _batch(shape, classes, 3, n=4)
    threat = Linf(0.15)
    with torch.no_grad():
        crown = margin_lower_bounds(model, x, y, threat, "crown")
        one = margin_lower_bounds(model, x, y, threat, "alpha-crown", iterations=1)
        alpha = margin_lower_bounds(model, x, y, threat, "alpha-crown", iterations=10)
    assert torch.equal(one, crown)
    assert (alpha >= crown - TOL).all()
    assert (alpha - crown).max() > 1e-4  # the optimised slopes really move the bound


def test_intermediate_bounds_never_looser_than_crown():
    model, shape, classes = _net("mlp", 1)
    x, y, _ = _batch(shape, classes, 1)
    threat = Linf(0.2)
    with torch.no_grad():
        crown = Engine(model, x, threat, "crown").preactivation_bounds()
        engine = Engine(model, x, threat, "alpha-crown", iterations=8)
        engine.margin_lower_bounds(y)
        alpha = engine.preactivation_bounds()
    for (lo, up), (clo, cup) in zip(alpha, crown):
        assert (lo >= clo - TOL).all() and (up <= cup + TOL).all() and (lo <= up).all()


def test_patches_equal_the_dense_pass(monkeypatch):
    from realdata.relaxation import patches

    model = cnn(9, channels=3, size=16)
    x, y, _ = _batch((3, 16, 16), 5, 9)
    threat = Linf(0.05)
    with torch.no_grad():
        patched = margin_lower_bounds(model, x, y, threat, "alpha-crown", iterations=5)
        monkeypatch.setattr(patches, "applicable", lambda chain, threat, x: False)
        dense = margin_lower_bounds(model, x, y, threat, "alpha-crown", iterations=5)
    assert torch.allclose(patched, dense, atol=1e-10)


def test_gradients_reach_every_weight():
    model = bn_cnn(5, channels=2, size=8, classes=4)
    x, y, _ = _batch((2, 8, 8), 4, 5)
    loss, error = robust_loss(model, x, y, Linf(0.05), "alpha-crown", iterations=4)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert 0 <= error <= 1


@pytest.mark.parametrize("options", [{"iterations": 0}, {"iterations": 2.5}, {"step_size": 0},
                                     {"step_size": float("nan")}, {"step_size": "big"}])
def test_bad_options_are_one_sentence(options):
    model, shape, classes = _net("mlp", 0)
    x, y, _ = _batch(shape, classes, 0)
    with pytest.raises(UserError):
        margin_lower_bounds(model, x, y, Linf(0.1), "alpha-crown", **options)


def test_registry_and_evaluation_pick_it_up():
    from realdata.evaluate import evaluate

    assert "alpha-crown" in BOUND_METHODS
    model, shape, classes = _net("mlp", 2)
    x, y, _ = _batch(shape, classes, 2, n=6)
    result = evaluate(model.float(), x.float(), y, Linf(0.02), attack="pgd", bound="alpha-crown", progress=False)
    assert result["bound"] == "alpha-crown" and 0 <= result["certified_error"] <= 1


def test_evaluation_takes_the_options_and_checks_them_first(monkeypatch):
    from realdata import bounds
    from realdata.evaluate import evaluate

    model, shape, classes = _net("mlp", 2)
    x, y, _ = _batch(shape, classes, 2, n=4)
    seen = []
    real = bounds.Bounds.__init__

    def spy(self, *args, **options):
        seen.append(options)
        real(self, *args, **options)

    monkeypatch.setattr(bounds.Bounds, "__init__", spy)
    evaluate(model, x, y, Linf(0.02), attack="pgd", bound="alpha-crown", bound_options={"iterations": 3},
             progress=False)
    assert seen and all(o == {"iterations": 3} for o in seen)
    seen.clear()
    with pytest.raises(UserError, match="step_size"):
        evaluate(model, x, y, Linf(0.02), attack="pgd", bound="alpha-crown", bound_options={"step_size": -1},
                 progress=False)
    assert not seen  # refused before any batch was bounded


@pytest.mark.parametrize("flags", [["--alpha-iterations", "0"], ["--alpha-step-size", "inf"],
                                   ["--eval-bound", "alpha"]])
def test_training_flags_are_checked(flags, capsys):
    from realdata.errors import run_main
    from realdata.train import main

    argv = ["--dataset", "digits", "--method", "st", "--norm", "linf", "--eps", "0.1"]
    assert run_main(main, argv + flags) == 2
    assert flags[0].lstrip("-") in capsys.readouterr().err
