"""TAPS (realdata.taps): the estimate lies between IBP's bound and the clean margin and equals the
latent worst case where that is known exactly (an affine classifier: IBP's bound; a convex one: an
LP), the gradient connector's shares by hand, the loss falls, and the command line trains, skips,
resumes and refuses a split the model lacks."""
import json

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from realdata.bounds import Bounds
from realdata.data import load_dataset
from realdata.errors import UserError, run_main
from realdata.methods import CERTIFIED_METHODS, check_model, training_loss
from realdata.models import build_model
from realdata.recipes import make_config
from realdata.taps import connect, link_weights, search_points, split_layer, step_schedule, taps_margins
from realdata.threats import L2, Linf
from realdata.train import fit, main


def _net(*widths, batchnorm=False, seed=0):
    """Linear–ReLU blocks of the given widths, then a Linear to the last width (float64)."""
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if batchnorm else []) + [nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1])).double()


def _estimate(net, x, y, threat, split, steps=20, restarts=1, seed=0):
    bounds = Bounds(net, x, threat, "ibp")
    est = taps_margins(net, bounds, x, y, split, steps=steps, restarts=restarts,
                       generator=torch.Generator().manual_seed(seed))
    return est, bounds.margins(y)


def _clean_margins(net, x, y):
    logits = net(x)
    return logits.gather(1, y[:, None]) - logits


def test_affine_classifier_estimate_is_ibps_exact_bound():
    """split = 0: the classifier is the last Linear, whose worst case over a box is a corner, and
    IBP (the specification folded into that layer) is exact there; the search reaches the corner."""
    net = _net(5, 8, 8, 4)
    x, y = torch.rand(16, 5, dtype=torch.float64), torch.randint(0, 4, (16,))
    for threat in (Linf(0.05), L2(0.1)):
        est, ibp = _estimate(net, x, y, threat, split=0, steps=3)
        assert torch.allclose(est, ibp, atol=1e-12, rtol=0)


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm-train-mode"])
def test_estimate_lies_between_ibp_bound_and_clean_margin(batchnorm):
    net = _net(6, 12, 12, 10, 3, batchnorm=batchnorm, seed=1)
    x, y = torch.rand(24, 6, dtype=torch.float64), torch.randint(0, 3, (24,))
    clean = None if batchnorm else _clean_margins(net, x, y)
    for split in (1, 2):
        est, ibp = _estimate(net, x, y, Linf(0.05), split)
        if batchnorm:  # the train-mode statistics of the clean batch, as the bounds use them
            clean = _clean_margins(net, x, y)
        assert (ibp <= est + 1e-12).all() and (est <= clean + 1e-12).all()
        assert (est < clean - 1e-6).any() and (ibp < est - 1e-6).any()  # strictly inside somewhere


def test_estimate_is_the_latent_worst_case_of_a_convex_classifier():
    """The classifier z ↦ V·ReLU(Wz + b) + c with V_y − V_j ≥ 0 has convex margins, so their minimum
    over the latent box is an LP: min Σ (V_y − V_j)ᵢ tᵢ s.t. t ≥ Wz + b, t ≥ 0, ℓ ≤ z ≤ u (scipy)."""
    net = _net(4, 6, 5, 3, seed=2)
    with torch.no_grad():
        net[4].weight[0] = net[4].weight.max(0).values + 0.2  # class 0 dominates every hidden unit
    x, y = torch.rand(6, 4, dtype=torch.float64), torch.zeros(6, dtype=torch.long)
    threat = Linf(0.2)
    est, ibp = _estimate(net, x, y, threat, split=1, steps=100)
    lower, upper = Bounds(net, x, threat, "ibp").preactivations()[0]
    W, b = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    V, c = net[4].weight.detach().numpy(), net[4].bias.detach().numpy()
    n, h = W.shape[1], W.shape[0]
    for i in range(len(x)):
        box = list(zip(lower[i].clamp(min=0).tolist(), upper[i].clamp(min=0).tolist())) + [(0, None)] * h
        for j in (1, 2):
            d = V[0] - V[j]
            lp = linprog(np.concatenate([np.zeros(n), d]), A_ub=np.hstack([W, -np.eye(h)]), b_ub=-b, bounds=box,
                         method="highs")
            worst = lp.fun + c[0] - c[j]
            assert est[i, j].item() == pytest.approx(worst, abs=1e-3)
            assert est[i, j].item() >= worst - 1e-9 and ibp[i, j].item() <= worst + 1e-9


def test_link_shares_equal_the_published_rule_by_hand():
    """c = ½ on [0, 1]: the slack is ½; z = 0.1 gives ℓ (0.5 − 0.1)/0.5 = 0.8; z = 0.75 gives u
    0.25/0.5 = ½; z = 1 gives u 1; z = 0.5 sits on both thresholds: tol/2/s = 1e-5 each; a flat
    box (ℓ = u) splits ½ and ½."""
    lower = torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    upper = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0], dtype=torch.float64)
    points = torch.tensor([0.1, 0.5, 0.75, 1.0, 2.0], dtype=torch.float64)
    to_lower, to_upper = link_weights(lower, upper, points, 0.5)
    assert to_lower.tolist() == pytest.approx([0.8, 1e-5, 0.0, 0.0, 0.5], abs=1e-15)
    assert to_upper.tolist() == pytest.approx([0.0, 1e-5, 0.5, 1.0, 0.5], abs=1e-15)
    # c = 0.2 on [0, 1]: slack 0.2, so z = 0.75 reaches neither bound and z = 0.9 gives u ½
    to_lower, to_upper = link_weights(lower[:4], upper[:4], torch.tensor([0.1, 0.75, 0.9, 0.3]).double(), 0.2)
    assert to_lower.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0]) and to_upper.tolist() == pytest.approx(
        [0.0, 0.0, 0.5, 0.0])


def test_connector_sums_the_shares_of_every_point_and_keeps_their_values():
    lower = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    upper = torch.ones(1, 2, dtype=torch.float64, requires_grad=True)
    points = torch.tensor([[[0.1, 0.75], [1.0, 0.5]]], dtype=torch.float64)  # [B = 1, P = 2, S = 2]
    linked = connect(points, lower, upper, 0.5)
    assert torch.equal(linked, points)
    g = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    (linked * g).sum().backward()
    # coordinate 0: ℓ gets 1·0.8 (z = 0.1), u gets 3·1 (z = 1); coordinate 1: u gets 2·½ + 4·1e-5, ℓ 4·1e-5
    assert lower.grad[0].tolist() == pytest.approx([0.8, 4e-5], abs=1e-15)
    assert upper.grad[0].tolist() == pytest.approx([3.0, 1.0 + 4e-5], abs=1e-15)


def test_gradient_reaches_the_feature_extractor_through_the_connector():
    """The estimate's gradient in a feature-extractor weight is Σ g·(share to ℓ)·∂ℓ/∂θ + g·(share
    to u)·∂u/∂θ, g the classifier's gradient at the found points: the rule, composed by hand."""
    net = _net(5, 7, 6, 3, seed=3)
    x, y, threat = torch.rand(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,)), Linf(0.1)
    est, _ = _estimate(net, x, y, threat, split=1, steps=10, seed=4)
    got, = torch.autograd.grad(est.sum(), net[0].weight)

    bounds = Bounds(net, x, threat, "ibp")
    lower, upper = (b.clamp(min=0) for b in bounds.preactivations()[0])
    classes = torch.arange(3).expand(8, 3)
    others = classes[classes != y[:, None]].view(8, 2)
    points = search_points(net[2:], lower, upper, net[:2](x), y, others, 10, 1, torch.Generator().manual_seed(4))
    z = points.clone().requires_grad_(True)
    logits = net[2:](z.reshape(16, 7)).reshape(8, 2, 3)
    margins = logits.gather(2, y.view(8, 1, 1).expand(8, 2, 1)).squeeze(2) - logits.gather(2, others[..., None]).squeeze(2)
    g, = torch.autograd.grad(margins.sum(), z)
    to_lower, to_upper = link_weights(lower.detach().unsqueeze(1), upper.detach().unsqueeze(1), points, 0.5)
    surrogate = ((g * to_lower).sum(1) * lower).sum() + ((g * to_upper).sum(1) * upper).sum()
    want, = torch.autograd.grad(surrogate, net[0].weight)
    assert got.abs().sum() > 0 and torch.allclose(got, want, atol=1e-12)


def test_step_schedule_is_the_published_one():
    assert step_schedule(5) == (0.4, ()) and step_schedule(20) == (0.2, (14,))
    assert step_schedule(60) == (0.2, (24, 42)) and step_schedule(100) == (0.2, (30, 60, 80))


def test_loss_is_taps_times_ibp_with_taps_gradient_scaled_and_ibp_while_eps_ramps():
    net = _net(5, 8, 8, 3, seed=5)
    x, y, threat = torch.rand(10, 5, dtype=torch.float64), torch.randint(0, 3, (10,)), Linf(0.1)

    def loss(**options):
        return training_loss("taps", net, x, y, threat, attack_steps=5, generator=torch.Generator().manual_seed(0),
                             **options)

    ibp, ibp_error = training_loss("ibp", net, x, y, threat)
    est, _ = _estimate(net, x, y, threat, split=1, steps=5)
    taps_ce = nn.functional.cross_entropy(-est, y)
    value, error = loss(taps_grad_scale=3.0)
    assert value.item() == pytest.approx(taps_ce.item() * ibp.item(), rel=1e-12)
    assert error.item() == ((est.scatter(1, y[:, None], float("inf")) <= 0).any(1)).double().mean().item()
    # gradient w·L_IBP·∇L_TAPS + L_TAPS·∇L_IBP: linear in w with slope L_IBP·∇L_TAPS
    grads = [torch.autograd.grad(loss(taps_grad_scale=w)[0], net[4].weight)[0] for w in (1.0, 3.0)]
    slope, = torch.autograd.grad(taps_ce, net[4].weight)
    assert torch.allclose((grads[1] - grads[0]) / 2, ibp.item() * slope, atol=1e-10)
    ramping, ramping_error = loss(full_eps=0.2)  # ε below its target: IBP's loss alone
    assert ramping.item() == ibp.item() and ramping_error == ibp_error


def test_split_out_of_range_is_one_sentence():
    net = _net(4, 6, 6, 3)  # two ReLU layers: splits 0 and 1
    assert split_layer(net, 0) == 3 and split_layer(net, 1) == 1
    for bad in (2, -1, 1.5):
        with pytest.raises(UserError, match="does not fit this model: it has 2 top-level ReLU layers"):
            check_model("taps", net, taps_split=bad)
    with pytest.raises(UserError, match="at least one top-level ReLU"):
        split_layer(nn.Sequential(nn.Linear(3, 2)), 0)


def test_sound_bound_certifies_taps_models():
    assert CERTIFIED_METHODS["taps"] == "ibp"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300, test_size=50, seed=0)


def test_training_loss_decreases_on_a_tiny_run(digits):
    config = make_config("digits", "taps", eps=0.1, epochs=3, batch_size=30, lr=1e-2, width=32, depth=2,
                         warmup_epochs=0, ramp_epochs=0, reg_lambda=0.0, init="default", attack_steps=5)
    model = build_model("mlp", digits, seed=0, width=32, depth=2)
    threat = L2(config.eps)

    def objective(m):
        loss, error = training_loss("taps", m, digits.x_train, digits.y_train, threat, attack_steps=5,
                                    generator=torch.Generator().manual_seed(1))
        return loss.item(), error.item()

    before = objective(model)
    after = objective(fit(config, digits, model, threat=threat, progress=False).model)
    assert after[0] < before[0] - 1.0 and after[1] < before[1] - 0.1, (before, after)  # measured: 5.76 → 4.34


def _cli(tmp_path, *extra):
    # a clean epoch, a one-epoch ramp, then TAPS: enough for a healthy (not collapsed) record
    return ["--dataset", "digits", "--method", "taps", "--eps", "0.1", "--out", str(tmp_path), "--quiet",
            "--train-size", "200", "--test-size", "40", "--epochs", "3", "--width", "16", "--depth", "2",
            "--batch-size", "20", "--lr", "0.01", "--init", "default", "--reg-lambda", "0", "--attack-steps", "3",
            "--eval-steps", "3", "--warmup-epochs", "1", "--ramp-epochs", "1", *extra]


def test_cli_trains_skips_and_resumes(tmp_path, capsys):
    assert run_main(main, _cli(tmp_path / "whole", "--json")) == 0
    whole = json.loads(capsys.readouterr().out)
    m = whole["metrics"]
    assert whole["config"]["taps_split"] == 1 and m["bound"] == "ibp" and not whole["diverged"]
    assert m["standard_error"] <= m["robust_error"] <= m["certified_error"]  # a sound bound certifies
    assert run_main(main, _cli(tmp_path / "whole")) == 0
    assert capsys.readouterr().out.startswith("skipped")
    assert run_main(main, _cli(tmp_path / "parts", "--stop-after", "1")) == 0
    capsys.readouterr()
    assert run_main(main, _cli(tmp_path / "parts", "--json")) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["resumed_from"] == 1 and resumed["metrics"] == whole["metrics"]


@pytest.mark.parametrize("split, message", [
    ("2", "--taps-split 2 does not fit this model: it has 2 top-level ReLU layers"),
    ("-1", "taps-split counts ReLU layers and must be a non-negative integer"),
])
def test_cli_bad_split_is_one_sentence_and_exit_2(tmp_path, capsys, split, message):
    assert run_main(main, _cli(tmp_path, "--taps-split", split)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())

