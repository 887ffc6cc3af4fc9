"""Training objectives: each method's loss falls over one epoch of its own training; schedules;
the error each objective reports is ordered clean ≤ attacked ≤ not certified."""
import pytest
import torch

from realdata.data import load_dataset
from realdata.errors import UserError
from realdata.methods import TRAIN_METHODS, Schedule, training_loss
from realdata.models import build_model
from realdata.recipes import make_config
from realdata.threats import L2
from realdata.train import fit


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300, test_size=50, seed=0)


def _loss_on_train_set(config, model, data, threat):
    """The method's objective on the whole training set, with a fixed attack stream."""
    gen = torch.Generator().manual_seed(123)
    loss, _ = training_loss(config.method, model, data.x_train, data.y_train, threat, beta=config.beta_end,
                            kappa=config.kappa_end, attack_steps=config.attack_steps, proj=config.proj,
                            taps_split=config.taps_split, box=data.box, generator=gen)
    return loss.item()


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_one_epoch_decreases_the_methods_own_loss(method, digits):
    # full budget from the first step (no warm-up or ramp), so the objective is fixed
    config = make_config("digits", method, eps=0.5, epochs=1, batch_size=30, lr=3e-3, width=32, depth=1,
                         warmup_epochs=0, ramp_epochs=0, proj=None, kappa_start=0.0, beta_start=1.0, beta_end=1.0,
                         taps_split=0)  # one hidden layer: TAPS's classifier is the output layer
    model = build_model(config.arch, digits, seed=0, width=32, depth=1)
    threat = L2(config.eps)
    before = _loss_on_train_set(config, model, digits, threat)
    result = fit(config, digits, model, threat=threat, progress=False)
    after = _loss_on_train_set(config, result.model, digits, threat)
    assert after < before - 0.05, (method, before, after)
    assert result.history[0]["eps"] == pytest.approx(0.5)


def test_reported_errors_are_ordered_clean_attacked_certified(digits):
    torch.manual_seed(0)
    config = make_config("digits", "st", epochs=3, width=32, depth=1, lr=3e-3)
    model = fit(config, digits, build_model("mlp", digits, seed=0, width=32, depth=1), progress=False).model
    x, y, threat = digits.x_train, digits.y_train, L2(0.3)
    gen = torch.Generator().manual_seed(0)
    _, clean = training_loss("st", model, x, y, threat)
    _, attacked = training_loss("at", model, x, y, threat, generator=gen, box=digits.box)
    _, coap = training_loss("coap", model, x, y, threat)
    _, ibp = training_loss("ibp", model, x, y, threat)
    assert clean <= attacked <= coap <= ibp
    assert attacked > clean  # the attack finds something at this budget


def test_at_without_budget_is_standard_training(digits):
    model = build_model("mlp", digits, seed=0, width=16, depth=1)
    x, y = digits.x_train[:40], digits.y_train[:40]
    st = training_loss("st", model, x, y, L2(0.0))
    at = training_loss("at", model, x, y, L2(0.0))
    assert st[0].item() == at[0].item() and st[1] == at[1]


def test_crown_ibp_kappa_mixes_in_the_clean_loss(digits):
    model = build_model("mlp", digits, seed=0, width=16, depth=1)
    x, y, threat = digits.x_train[:40], digits.y_train[:40], L2(0.3)
    clean = training_loss("st", model, x, y, threat)[0].item()
    robust = training_loss("crown-ibp", model, x, y, threat, beta=0.5, kappa=0.0)[0].item()
    mixed = training_loss("crown-ibp", model, x, y, threat, beta=0.5, kappa=0.25)[0].item()
    assert mixed == pytest.approx(0.25 * clean + 0.75 * robust, rel=1e-5)
    assert robust > clean


def test_schedule_warmup_ramp_and_weights():
    s = Schedule(warmup=2, ramp=4, eps_start=0.1, beta_start=1.0, beta_end=0.0, kappa_start=1.0, kappa_end=0.0)
    assert s.at(1.0, 0.5).eps == 0.0 and s.at(1.0, 0.5).beta == 1.0
    assert s.at(2.0, 0.5).eps == pytest.approx(0.1)
    mid = s.at(4.0, 0.5)
    assert mid.eps == pytest.approx(0.3) and mid.beta == pytest.approx(0.5) and mid.kappa == pytest.approx(0.5)
    assert s.at(100.0, 0.5).eps == pytest.approx(0.5) and s.at(100.0, 0.5).beta == 0.0
    assert Schedule().at(0.0, 0.5).eps == 0.5  # no ramp: the full budget at once
    assert Schedule(ramp=2, eps_start=0.01).at(0.0, 0.001).eps == 0.001  # a start above the target is capped


def test_unknown_method_and_attack_are_refused(digits):
    model = build_model("mlp", digits, seed=0, width=8, depth=1)
    x, y = digits.x_train[:4], digits.y_train[:4]
    with pytest.raises(UserError, match="choose one of st, at, coap, crown-ibp, ibp"):
        training_loss("trades", model, x, y, L2(0.1))
    with pytest.raises(UserError, match="apgd, pgd"):
        training_loss("at", model, x, y, L2(0.1), attack="fgsm")


def test_line_search_training_attack_is_the_exact_worst_case_on_directions():
    """AT with `line-search` trains on the exact worst point of each segment: never a larger
    margin than Auto-PGD's point, and refused on a ball in more than one dimension."""
    from realdata.methods import adversarial_inputs
    from realdata.threats import Directions, random_directions

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 8, generator=g), torch.randint(3, (64,), generator=g)
    threat = Directions(1.5, random_directions(2, (8,), seed=2))

    def margin(points):
        with torch.no_grad():
            z = model(points)
        return z.gather(1, y[:, None])[:, 0] - z.scatter(1, y[:, None], -float("inf")).amax(1)

    exact = adversarial_inputs(model, x, y, threat, attack="line-search")
    apgd = adversarial_inputs(model, x, y, threat, attack="apgd", generator=g)
    assert threat.contains(exact - x).all()
    assert (margin(exact) <= margin(apgd) + 1e-5).all()
    assert (margin(exact) < margin(apgd) - 1e-3).any(), "Auto-PGD (10 steps) should miss some exact worst cases"
    with pytest.raises(UserError, match="one-dimensional"):
        adversarial_inputs(model, x, y, L2(0.5), attack="line-search")
