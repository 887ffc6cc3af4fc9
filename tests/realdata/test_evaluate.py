"""Evaluation: the record's numbers on hand-built predictions, fairness, alignment, consistency, bad input."""
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import realdata.evaluate as ev
from realdata.errors import UserError
from realdata.evaluate import accuracy_discrepancy, evaluate
from realdata.threats import L2, Directions, Linf, basis_direction, make_threat, random_directions

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from trained_digits import digits_split, trained_digits_net  # noqa: E402

KEYS = {"n", "standard_error", "robust_error", "attack", "certified_error", "bound", "per_class_standard_error",
        "per_class_robust_error", "acc_disc", "robust_acc_disc", "unstable_fraction", "alignment"}


# -- fairness -------------------------------------------------------------------------
def test_accuracy_discrepancy_on_hand_built_errors():
    assert accuracy_discrepancy([0.2, 0.2, 0.2], 0.2) == 0.0
    assert accuracy_discrepancy([1.0, 0.0, 0.0, 0.0], 0.25) == 1.0
    assert accuracy_discrepancy([0.5, 0.1, None], 0.3) == pytest.approx((0.5 - 0.3) / 0.7)
    assert accuracy_discrepancy([1.0, 1.0], 1.0) == 1.0  # every class never right
    assert accuracy_discrepancy([1.0, 0.98], 0.99) == pytest.approx(1.0)  # continuous at R -> 1
    with pytest.raises(UserError, match="at least one class"):
        accuracy_discrepancy([None, None], 0.0)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        accuracy_discrepancy([1.5, 0.0], 0.5)


def _lookup_model(predictions, classes):
    """Input i is the one-hot e_i; the model predicts predictions[i] with margin 1 (robust to ε < 0.5 in ℓ2)."""
    n = len(predictions)
    model = nn.Sequential(nn.Linear(n, classes, bias=False))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[torch.tensor(predictions), torch.arange(n)] = 1.0
    return model, torch.eye(n)


def test_record_on_hand_built_predictions():
    # class 0: 4 points, 1 wrong; class 1: 4 points, all right; class 2: 2 points, never right
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    predictions = [0, 0, 0, 1, 1, 1, 1, 1, 0, 1]
    model, x = _lookup_model(predictions, 3)
    record = evaluate(model, x, y, L2(0.1), attack="apgd-ce", bound=None, progress=False, steps=5, restarts=1)
    assert set(record) == KEYS
    assert record["n"] == 10
    assert record["standard_error"] == pytest.approx(0.3)
    assert record["per_class_standard_error"] == pytest.approx([0.25, 0.0, 1.0])
    assert record["acc_disc"] == pytest.approx(1.0)  # class 2 is never right
    assert record["robust_error"] == pytest.approx(0.3)  # margin 1 cannot be overcome at ε = 0.1
    assert record["robust_acc_disc"] == pytest.approx(1.0)
    assert record["certified_error"] is None and record["unstable_fraction"] is None and record["alignment"] is None


def test_uniform_per_class_errors_give_zero_discrepancy_and_absent_classes_none():
    y = torch.tensor([0, 0, 1, 1])
    model, x = _lookup_model([0, 1, 1, 0], 3)
    record = evaluate(model, x, y, L2(0.0), attack="pgd", bound=None, num_classes=3, progress=False)
    assert record["per_class_standard_error"] == [0.5, 0.5, None]
    assert record["acc_disc"] == 0.0


# -- a trained network -------------------------------------------------------------------
def test_full_record_on_a_trained_network_is_consistent():
    model = trained_digits_net()
    _, (x, y) = digits_split()
    x, y = x[:150], y[:150]
    record = evaluate(model, x, y, Linf(0.02), attack="apgd", bound="crown", num_classes=10, box=(0, 1),
                      batch_size=64, progress=False, steps=10, restarts=1, generator=torch.Generator().manual_seed(0))
    assert set(record) == KEYS and record["bound"] == "crown" and record["attack"] == "apgd"
    with torch.no_grad():
        clean_error = (model(x).argmax(1) != y).double().mean().item()
    assert record["standard_error"] == pytest.approx(clean_error)
    assert record["standard_error"] <= record["robust_error"] <= record["certified_error"] < 1
    assert 0 < record["unstable_fraction"] < 1
    assert 0 <= record["acc_disc"] <= 1 and 0 <= record["robust_acc_disc"] <= 1
    per_class = [e for e in record["per_class_robust_error"] if e is not None]
    counts = torch.bincount(y, minlength=10)
    weighted = sum(e * int(c) for e, c in zip(record["per_class_robust_error"], counts) if e is not None)
    assert weighted / len(y) == pytest.approx(record["robust_error"])
    assert max(per_class) >= record["robust_error"]


def test_batching_does_not_change_an_exact_evaluation():
    model = trained_digits_net()
    _, (x, y) = digits_split()
    x, y = x[:40], y[:40]
    threat = Directions(0.8, random_directions(2, (1, 8, 8), seed=0))
    whole = evaluate(model, x, y, threat, attack="line-search", bound="crown", batch_size=40, progress=False)
    pieces = evaluate(model, x, y, threat, attack="line-search", bound="crown", batch_size=7, progress=False)
    assert whole == pieces
    assert whole["robust_error"] <= whole["certified_error"]


def test_model_keeps_its_mode_and_parameters():
    model = trained_digits_net()
    _, (x, y) = digits_split()
    model.train()
    try:
        before = [p.clone() for p in model.parameters()]
        evaluate(model, x[:20], y[:20], L2(0.3), attack="pgd", bound=None, progress=False)
        assert model.training
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    finally:
        model.eval()


def test_progress_bar_can_be_silenced(capsys):
    model, x = _lookup_model([0, 1, 1, 0], 2)
    y = torch.tensor([0, 1, 1, 0])
    evaluate(model, x, y, L2(0.1), attack="pgd", bound=None, batch_size=1, progress=False)
    assert capsys.readouterr().err == ""
    evaluate(model, x, y, L2(0.1), attack="pgd", bound=None, batch_size=1, progress=True)
    assert "evaluate pgd" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_numbers():
    model = trained_digits_net()
    _, (x, y) = digits_split()
    threat = Directions(0.8, random_directions(2, (1, 8, 8), seed=0))
    cpu = evaluate(model, x[:50], y[:50], threat, attack="line-search", bound="ibp", progress=False)
    cuda = evaluate(model, x[:50], y[:50], threat, attack="line-search", bound="ibp", device="cuda", progress=False)
    for key in ["standard_error", "robust_error", "certified_error"]:
        assert cuda[key] == pytest.approx(cpu[key]), key
    assert cuda["unstable_fraction"] == pytest.approx(cpu["unstable_fraction"], abs=1e-3)


# -- alignment ----------------------------------------------------------------------------
def _linear_two_class(w):
    """Logits (−wᵀx/2, wᵀx/2): the worst ℓ2 perturbation of a class-1 point is along −w."""
    model = nn.Sequential(nn.Linear(len(w), 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.stack([-w / 2, w / 2]))
    return model


def test_alignment_is_the_cosine_with_the_signal():
    w = torch.tensor([3.0, 0.0, 0.0, 0.0])
    model = _linear_two_class(w)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g)
    y = (x @ w > 0).long()
    toward_boundary = lambda xb, yb: -(2 * yb[:, None] - 1).float() * w / w.norm()  # noqa: E731
    orthogonal = lambda xb, yb: torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(len(yb), 4)  # noqa: E731
    # on the two segments {β e₁}, {β e₂} the exact worst case moves along e₁ only: cosine exactly 1
    segments = Directions(0.5, torch.eye(4)[:2])
    exact = evaluate(model, x, y, segments, attack="line-search", bound=None, signal=toward_boundary, progress=False)
    assert exact["alignment"] == pytest.approx(1.0)
    across = evaluate(model, x, y, segments, attack="line-search", bound=None, signal=orthogonal, progress=False)
    assert across["alignment"] == pytest.approx(0.0)
    # Auto-PGD in the ℓ2 ball ends (nearly) on −y·w from a random start
    attacked = evaluate(model, x, y, L2(0.5), attack="apgd-ce", bound=None, signal=toward_boundary, progress=False,
                        steps=20, restarts=1, generator=torch.Generator().manual_seed(0))
    assert attacked["alignment"] > 0.95
    silent = evaluate(model, x, y, L2(0.5), attack="pgd", bound=None, signal=lambda xb, yb: None, progress=False)
    assert silent["alignment"] is None


# -- soundness guard -------------------------------------------------------------------------
def test_a_certified_point_that_an_attack_breaks_stops_the_evaluation(monkeypatch):
    model = _linear_two_class(torch.tensor([1.0, 0.0]))
    x = torch.tensor([[0.1, 0.0], [-0.1, 0.0]])
    y = torch.tensor([1, 0])
    # a deliberately unsound "bound" that certifies everything
    monkeypatch.setattr(ev, "_certify", lambda model, x, y, threat, bound, bound_options: (torch.ones_like(y, dtype=torch.bool), 0, 1))
    with pytest.raises(RuntimeError, match="unsound"):
        evaluate(model, x, y, L2(1.0), attack="pgd", bound="ibp", progress=False)


def test_certified_points_are_never_broken_in_a_real_evaluation():
    model = trained_digits_net()
    _, (x, y) = digits_split()
    for bound in ["crown", "coap"]:
        record = evaluate(model, x[:60], y[:60], L2(0.4), attack="apgd", bound=bound, box=(0, 1), progress=False,
                          steps=20, restarts=2)
        assert record["robust_error"] <= record["certified_error"]



def test_extra_bounds_run_as_a_cascade_on_the_points_still_open(monkeypatch):
    from realdata.bounds import Bounds, certified

    model = trained_digits_net()
    _, (x, y) = digits_split()
    x, y, threat = x[:60], y[:60], L2(0.4)
    seen, certify = {}, ev._certify

    def spy(model, xb, yb, threat, bound, bound_options):
        seen[bound] = seen.get(bound, 0) + xb.shape[0]
        return certify(model, xb, yb, threat, bound, bound_options)

    monkeypatch.setattr(ev, "_certify", spy)
    record = evaluate(model, x, y, threat, attack="apgd", bound="ibp", also_bounds=("crown", "coap"), box=(0, 1),
                      progress=False, steps=20)
    full = {b: certified(Bounds(model, x, threat, b).margins(y), y) for b in ("ibp", "crown", "coap")}
    robust = round(60 * (1 - record["robust_error"]))
    open_after_ibp = robust - int(full["ibp"].sum())
    open_after_crown = open_after_ibp - int((full["crown"] & ~full["ibp"]).sum())
    assert 0 < open_after_crown < open_after_ibp <= robust < 60  # crown certifies some, coap sees fewer
    # ibp on every point (it is checked against the attack); each extra bound on the points left open
    assert seen == {"ibp": 60, "crown": open_after_ibp, "coap": open_after_crown}
    # skipping broken and already-certified points changes nothing: the per-point best of the full computations
    best = full["ibp"] | full["crown"] | full["coap"]
    assert record["certified_error_best"] == pytest.approx(1 - best.double().mean().item())
    assert record["certified_added_by_bound"]["crown"] == pytest.approx((full["crown"] & ~full["ibp"]).double().mean().item())

# -- bad input ------------------------------------------------------------------------------
def test_bad_input_gets_a_clear_error():
    model, x = _lookup_model([0, 1, 1], 2)
    y = torch.tensor([0, 1, 1])
    with pytest.raises(UserError, match="non-negative"):
        evaluate(model, x, y, make_threat("linf", -0.5), bound=None, progress=False)
    with pytest.raises(UserError, match="empty"):
        evaluate(model, x[:0], y[:0], L2(0.1), bound=None, progress=False)
    with pytest.raises(UserError, match="one label per input"):
        evaluate(model, x, y[:2], L2(0.1), bound=None, progress=False)
    with pytest.raises(UserError, match="2 outputs"):
        evaluate(model, x, y, L2(0.1), bound=None, num_classes=10, progress=False)
    with pytest.raises(UserError, match="2 outputs"):
        evaluate(model, x, torch.tensor([0, 1, 3]), L2(0.1), bound=None, progress=False)
    with pytest.raises(UserError, match="unknown attack"):
        evaluate(model, x, y, L2(0.1), attack="fgsm", bound=None, progress=False)
    with pytest.raises(UserError, match="unknown bound"):
        evaluate(model, x, y, L2(0.1), bound="lp", progress=False)
    with pytest.raises(UserError, match="batch size"):
        evaluate(model, x, y, L2(0.1), bound=None, batch_size=0, progress=False)
    with pytest.raises(UserError, match="one-dimensional"):
        evaluate(model, x, y, L2(0.1), attack="line-search", bound=None, progress=False)
    assert math.isfinite(evaluate(model, x, y, Directions(0.1, basis_direction(0, (3,))), attack="line-search",
                                  bound=None, progress=False)["robust_error"])


def test_unstable_means_strictly_negative_lower_and_positive_upper_bound():
    """A ReLU whose bounds touch 0 (ℓ = 0 or u = 0) is linear on its range: not unstable."""
    first = nn.Linear(2, 3)
    with torch.no_grad():  # unit 0: z = x₀ − 0.5, unstable; unit 1: z ≡ 0 (ℓ = u = 0); unit 2: z = x₁ ≥ 0
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
        first.bias.copy_(torch.tensor([-0.5, 0.0, 0.0]))
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(3, 2))
    x = torch.tensor([[0.5, 0.1]])
    record = evaluate(model, x, torch.tensor([0]), Linf(0.1), attack="pgd", bound="ibp", progress=False)
    # unit 2: x₁ ∈ [0, 0.2], so ℓ = 0 < u: stable (active) too
    assert record["unstable_fraction"] == pytest.approx(1 / 3)
