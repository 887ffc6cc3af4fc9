"""The certified-training methods since the paper (FAST-IBP, MTL-IBP, CC-IBP, SABR, CROWN):
each loss against a value worked out by hand on a two-neuron net, SABR's region, the smoothed
ε ramp, the IBP initialisation, and the command lines."""
import math

import pytest
import sympy as sp
import torch
from torch import nn

from realdata.errors import UserError
from realdata.methods import (CERTIFIED_METHODS, METHODS, TRAIN_METHODS, ibp_init, sabr_region, smoothed_progress,
                              training_loss, warmup_regulariser)
from realdata.threats import L2, Linf

NEW_METHODS = ("crown", "alpha-crown", "fast-ibp", "mtl-ibp", "cc-ibp", "sabr")


def softplus(t):
    return math.log1p(math.exp(t))


def two_neurons(w1=(1.0, -1.0), b1=(-0.5, 0.5)):
    """x ∈ R → logits (f0, f1) with f0 − f1 = 0.3 − ReLU(w1₀x + b1₀) − ReLU(w1₁x + b1₁), f1 = 0.

    With the defaults f0 − f1 = 0.3 − |x − 0.5|.  At x = 0.5, ε = 0.25 (ℓ∞ and ℓ2 agree in one
    dimension): clean margin 0.3, worst case 0.05 at x' = 0.25 or 0.75, and IBP's lower bound
    0.3 − 0.25 − 0.25 = −0.2 (both ReLUs at their upper bounds at once)."""
    net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1, dtype=torch.float64)[:, None])
        net[0].bias.copy_(torch.tensor(b1, dtype=torch.float64))
        net[2].weight.copy_(torch.tensor([[-1.0, -1.0], [0.0, 0.0]], dtype=torch.float64))
        net[2].bias.copy_(torch.tensor([0.3, 0.0], dtype=torch.float64))
    return net


X, Y = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([0])
# PGD-5 (step 2.5ε/5) walks from any start to an end of the segment, where the margin is 0.05
ATTACK = dict(attack="pgd", attack_steps=5)


def loss_of(method, threat, **options):
    loss, error = training_loss(method, two_neurons(), X, Y, threat, generator=torch.Generator().manual_seed(0),
                                **{**ATTACK, **options})
    return loss.item(), error


@pytest.mark.parametrize("threat", [Linf(0.25), L2(0.25)], ids=["linf", "l2"])
def test_losses_equal_their_hand_computed_values(threat):
    ce_adv, ce_ibp = softplus(-0.05), softplus(0.2)  # CE of margin m with two classes: log(1 + e^−m)
    assert loss_of("ibp", threat) == pytest.approx((ce_ibp, 1.0))
    assert loss_of("fast-ibp", threat) == pytest.approx((ce_ibp, 1.0))
    assert loss_of("at", threat, attack="pgd") == pytest.approx((ce_adv, 0.0))
    # MTL-IBP: (1 − α)·CE(x_adv) + α·CE(−m_IBP); its error is the adversarial point's
    assert loss_of("mtl-ibp", threat, ibp_coef=0.25) == pytest.approx((0.75 * ce_adv + 0.25 * ce_ibp, 0.0))
    # CC-IBP: z = 0.25·(−0.2) + 0.75·0.05 = −0.0125 < 0, so the combined margin does not certify
    assert loss_of("cc-ibp", threat, ibp_coef=0.25) == pytest.approx((softplus(0.0125), 1.0))
    # SABR, λ = 0.4: τ = 0.1, centre pulled to 0.65 (or 0.35), region [0.55, 0.75]: one ReLU
    # is inactive there, so IBP is exact: margin ≥ 0.3 − 0.25 = 0.05, certified
    assert loss_of("sabr", threat, sabr_lambda=0.4) == pytest.approx((ce_adv, 0.0))
    # λ = 0.6: τ = 0.15, region [0.45, 0.75]: both ReLUs can be on: 0.3 − 0.25 − 0.05 = 0
    assert loss_of("sabr", threat, sabr_lambda=0.6) == pytest.approx((math.log(2), 1.0))


def test_crown_training_bound_is_the_exact_margin_on_the_two_neuron_net():
    """CROWN relaxes both ReLUs of |x − 0.5| on z ∈ [−0.25, 0.25] by the chord (z + 0.25)/2; the
    margin's coefficients on them are −1, so m ≥ 0.3 − (z₁ + z₂)/2 − 0.25 = 0.05 (z₁ + z₂ = 0):
    exact, where IBP gives −0.2."""
    assert loss_of("crown", Linf(0.25)) == pytest.approx((softplus(-0.05), 0.0))
    # α-CROWN starts from CROWN's slopes and keeps the best iterate: here CROWN is already exact
    assert loss_of("alpha-crown", Linf(0.25), alpha_iterations=5) == pytest.approx((softplus(-0.05), 0.0))


def test_warmup_regulariser_equals_its_hand_computed_value():
    """w1 = (1, −4), b1 = (0, 0.1) on x ∈ [0.25, 0.75]: z₁ ∈ [0.25, 0.75] (active, centre 0.5,
    half-width 0.25), z₂ ∈ [−2.9, −0.9] (inactive, centre −1.9, half-width 1).
    Tightness: t₀/t = 0.25/0.625 = 0.4 → (0.5 − 0.4)/0.5 = 0.2.  Balance: mean ratio
    0.25/0.95 = 5/19 → (0.5 − 5/19)/0.5 = 9/19; variance ratio 1.44/1.44 = 1 → 0."""
    net, threat = two_neurons(w1=(1.0, -4.0), b1=(0.0, 0.1)), Linf(0.25)
    from realdata.bounds import preactivation_bounds

    reg = warmup_regulariser(preactivation_bounds(net, X, threat, "ibp"), radius0=0.25)
    assert reg.item() == pytest.approx(0.2 + 9 / 19)
    # in the loss: λ·(1 − ε_t/ε) times it while ε ramps (here halfway), nothing at the target
    plain, _ = training_loss("ibp", net, X, Y, threat)
    ramping, _ = training_loss("ibp", net, X, Y, threat, reg_lambda=0.5, full_eps=0.5)
    done, _ = training_loss("ibp", net, X, Y, threat, reg_lambda=0.5, full_eps=0.25)
    assert ramping.item() - plain.item() == pytest.approx(0.5 * 0.5 * (0.2 + 9 / 19))
    assert done.item() == plain.item()
    # the L1 penalty: Σ|W| = 1 + 4 + 1 + 1
    l1, _ = training_loss("ibp", net, X, Y, threat, l1=0.1)
    assert l1.item() - plain.item() == pytest.approx(0.7)


def test_regulariser_gradient_flows_during_the_clean_warmup():
    net = two_neurons(w1=(1.0, -4.0), b1=(0.0, 0.1))
    loss, _ = training_loss("fast-ibp", net, X, Y, Linf(0.0), reg_lambda=0.5, full_eps=0.25)
    loss.backward()
    assert net[0].weight.grad.abs().sum() > 0  # the regulariser at ε = 1e-6 reaches the first layer
    clean = nn.functional.cross_entropy(net(X), Y).item()
    assert loss.item() > clean


@pytest.mark.parametrize("threat", [Linf(0.3), L2(0.3)], ids=["linf", "l2"])
def test_sabr_region_lies_in_the_threat_set(threat):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 5, generator=g)
    x_adv = x + threat.sample(x.shape, generator=g)
    for lam in (0.0, 0.3, 0.7, 1.0):
        centre, small = sabr_region(x, x_adv, threat, lam)
        assert small.eps == pytest.approx(lam * 0.3)
        # the farthest point of the small region from x stays within ε
        corner = (centre - x) + small.eps * small.ascent(centre - x + 1e-12)
        assert threat.contains(corner).all()
    centre, _ = sabr_region(x, x_adv, threat, 1.0)
    assert torch.equal(centre, x)  # λ = 1: the whole set, around x (IBP)


def test_sabr_and_expressive_losses_reach_their_limits():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y, threat = torch.rand(20, 6), torch.randint(3, (20,)), Linf(0.1)

    def run(method, **options):
        return training_loss(method, net, x, y, threat, generator=torch.Generator().manual_seed(3), **ATTACK,
                             **options)[0].item()

    ibp, at = run("ibp"), run("at")
    assert run("sabr", sabr_lambda=1.0) == pytest.approx(ibp)
    assert run("mtl-ibp", ibp_coef=1.0) == pytest.approx(ibp)
    assert run("cc-ibp", ibp_coef=1.0) == pytest.approx(ibp)
    assert run("mtl-ibp", ibp_coef=0.0) == pytest.approx(at)
    assert run("cc-ibp", ibp_coef=0.0) == pytest.approx(at)
    assert at <= run("sabr", sabr_lambda=0.5) <= ibp


def test_smoothed_ramp_is_c1_and_hits_its_ends():
    p, k, mid = sp.symbols("p k mid", positive=True)
    a = 1 / (mid ** (k - 1) * (k * (1 - mid) + mid))
    power, line = a * p ** k, a * mid ** k + (1 - a * mid ** k) * (p - mid) / (1 - mid)
    for expr in (power - line, sp.diff(power - line, p)):
        assert sp.simplify(expr.subs(p, mid)) == 0
    assert sp.simplify(line.subs(p, 1)) == 1
    values = [smoothed_progress(t / 100) for t in range(101)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(values, values[1:]))
    # auto_LiRPA's SmoothedScheduler at a quarter and at half of a 100-step ramp
    assert smoothed_progress(0.25) == pytest.approx(0.25 ** 4 / (0.25 ** 3 * (4 * 0.75 + 0.25)))
    assert smoothed_progress(0.5) == pytest.approx(1 / 13 + (12 / 13) * (0.25 / 0.75))


def test_ibp_init_draws_every_weight_but_the_last_from_its_law():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 10))
    last = net[2].weight.clone()
    ibp_init(net, torch.Generator().manual_seed(1))
    assert net[0].weight.std().item() == pytest.approx(math.sqrt(2 * math.pi) / 400, rel=0.02)
    assert torch.equal(net[2].weight, last)


def test_registry_names_every_method_and_its_own_bound():
    assert set(NEW_METHODS) <= set(TRAIN_METHODS)
    assert {m: CERTIFIED_METHODS[m] for m in NEW_METHODS} == {
        "crown": "crown", "alpha-crown": "alpha-crown", "fast-ibp": "ibp", "mtl-ibp": "ibp", "cc-ibp": "ibp", "sabr": "ibp"}
    assert all(METHODS[m].summary for m in TRAIN_METHODS)
    with pytest.raises(UserError, match="unknown training-loss option"):
        training_loss("sabr", two_neurons(), X, Y, Linf(0.1), lam=0.3)


TINY = dict(train_size=120, test_size=40, epochs=3, batch_size=40, width=16, depth=1, eval_steps=5, eps=0.3,
            warmup_epochs=1.0, ramp_epochs=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("method", NEW_METHODS)
def test_new_methods_resume_and_skip(tmp_path, method):
    from realdata.recipes import make_config
    from realdata.train import paths, train

    config = make_config("digits", method, **TINY)
    whole = train(config, out=tmp_path / "whole", progress=False)
    assert train(config, out=tmp_path / "parts", progress=False, stop_after=1) is None
    resumed = train(config, out=tmp_path / "parts", progress=False)
    assert resumed["resumed_from"] == 1 and resumed["metrics"] == whole["metrics"]
    strip = lambda h: [{k: v for k, v in row.items() if k != "time_s"} for row in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])
    record_file, _ = paths(config, tmp_path / "whole")
    stamp = record_file.stat().st_mtime_ns
    assert train(config, out=tmp_path / "whole", progress=False) == whole  # skipped, not rerun
    assert record_file.stat().st_mtime_ns == stamp
    assert whole["metrics"]["bound"] == CERTIFIED_METHODS[method]


def test_train_and_sweep_command_lines_take_the_new_flags(tmp_path, capsys):
    from realdata import sweep, train

    common = ["--dataset", "digits", "--out", str(tmp_path), "--quiet", "--train-size", "60", "--test-size", "20",
              "--epochs", "1", "--width", "8", "--depth", "1", "--eval-steps", "2", "--batch-size", "30"]
    assert train.main(common + ["--method", "sabr", "--eps", "0.2", "--sabr-lambda", "0.3", "--l1", "1e-5",
                                "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert '"sabr_lambda": 0.3' in printed and '"eps_shape": "smoothed"' in printed and '"init": "ibp"' in printed
    assert sweep.main(common + ["--methods", "mtl-ibp,cc-ibp", "--eps", "0.2", "--ibp-coef", "0.2",
                                "--attack-eps-factor", "1.5"]) == 0
    table = capsys.readouterr().out
    assert "mtl-ibp" in table and "cc-ibp" in table
    for flag, value in (("--ibp-coef", "1.5"), ("--sabr-lambda", "-0.1"), ("--eps-shape", "cubic"),
                        ("--init", "xavier"), ("--attack-eps-factor", "0")):
        with pytest.raises(UserError):
            train.main(common + ["--method", "mtl-ibp", "--eps", "0.2", flag, value, "--print-config"])


def test_evaluation_records_the_own_bound_and_the_per_point_best():
    from realdata.bounds import Bounds, certified
    from realdata.evaluate import TIGHTEST_BOUNDS, evaluate

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    x, threat = torch.rand(200, 4), Linf(0.3)
    y = net(x).argmax(1)  # every point correct, so the certificates decide
    m = evaluate(net, x, y, threat, attack="pgd", bound="ibp", also_bounds=TIGHTEST_BOUNDS, progress=False, steps=5)
    each = {b: certified(Bounds(net, x, threat, b).margins(y), y) for b in ("ibp", *TIGHTEST_BOUNDS)}
    assert m["certified_error"] == pytest.approx(1 - each["ibp"].double().mean().item())
    union, added = each["ibp"], {}
    for b in TIGHTEST_BOUNDS:  # the cascade: each bound adds the points none before it certified
        added[b] = (each[b] & ~union).double().mean().item()
        union = union | each[b]
    assert m["certified_added_by_bound"] == pytest.approx(added)
    assert m["certified_error_best"] == pytest.approx(1 - union.double().mean().item())
    assert m["certified_error_best"] < m["certified_error"]  # the tighter bounds certify more than IBP here
    plain = evaluate(net, x, y, threat, attack="pgd", bound="ibp", progress=False, steps=5)
    assert "certified_error_best" not in plain
    with pytest.raises(UserError, match="unknown bound method"):
        evaluate(net, x, y, threat, bound="ibp", also_bounds=("beta-crown",), progress=False)


@pytest.mark.slow
def test_fast_ibp_trains_cnn7_with_batchnorm_and_lowers_its_loss():
    """FAST-IBP as published: CNN7 with BatchNorm (train mode: the clean batch's statistics in the
    bounds), IBP initialisation, a clean warm-up with the regularisers, then the smoothed ramp.
    Its objective at the full budget falls by orders of magnitude from the initialisation's
    (with BatchNorm, interval widths at init grow about √fan-in-fold per layer)."""
    import copy

    from realdata.data import Dataset, load_dataset
    from realdata.models import build_model
    from realdata.recipes import make_config
    from realdata.train import fit

    digits = load_dataset("digits", train_size=240, test_size=10, seed=0)
    images = Dataset("digits-images", digits.x_train.reshape(-1, 1, 8, 8), digits.y_train,
                     digits.x_test.reshape(-1, 1, 8, 8), digits.y_test, 10, (1, 8, 8), box=(0.0, 1.0))
    config = make_config("digits", "fast-ibp", arch="cnn7", width=0.25, eps=0.05, norm="linf", epochs=4,
                         batch_size=40, lr=2e-3, warmup_epochs=1.0, ramp_epochs=2.0)
    model = build_model("cnn7", images, seed=0, width=0.25)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model)
    x, y, threat = images.x_train[:40], images.y_train[:40], Linf(0.05)

    def objective(net):  # in train mode, as training sees it, on a copy (BatchNorm updates its statistics)
        with torch.no_grad():
            return training_loss("fast-ibp", copy.deepcopy(net).train(), x, y, threat)[0].item()

    fresh = copy.deepcopy(model)
    ibp_init(fresh, torch.Generator().manual_seed(0))
    running = model[1].running_var.clone()
    result = fit(config, images, model, threat=threat, progress=False)
    assert not torch.equal(model[1].running_var, running)  # the clean batches moved the statistics
    assert objective(result.model) < 1e-2 * objective(fresh)
    assert result.history[0]["eps"] == 0.0 and result.history[-1]["eps"] == pytest.approx(0.05)
