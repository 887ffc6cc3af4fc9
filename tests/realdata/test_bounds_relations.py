"""How the methods relate: shared first layer, CROWN-IBP's β, COAP's two passes and
its random projections, the exact Normalize fold."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import assert_patches_equal_dense, cnn, mlp, resnet
from realdata.bounds import BOUND_METHODS, margin_lower_bounds, preactivation_bounds
from realdata.relaxation.backward import linear_bounds
from realdata.relaxation.graph import parse
from realdata.relaxation.relus import AdaptiveSlope
from realdata.threats import L2, Directions, Linf, Threat, random_directions


def _batch(shape, classes, seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n,) + shape, generator=g, dtype=torch.float64), torch.randint(classes, (n,), generator=g)


THREATS = [Linf(0.05), L2(0.3), Directions(0.3, random_directions(2, (3, 8, 8), seed=1, dtype=torch.float64))]


@pytest.mark.parametrize("threat", THREATS, ids=str)
def test_all_methods_share_the_exact_first_layer(threat):
    model = resnet(0, width=0.125, size=8, normalize=True)
    x, _ = _batch((3, 8, 8), 10)
    first = [preactivation_bounds(model, x, threat, m)[0] for m in BOUND_METHODS]
    first.append(preactivation_bounds(model, x, threat, "coap", proj=5)[0])
    for lo, up in first[1:]:
        assert torch.allclose(lo, first[0][0]) and torch.allclose(up, first[0][1])
    # the exact range of the affine map conv(normalize(x')): z(x) ± σ_S(row), rows by autograd
    prefix = torch.nn.Sequential(model[0], model[1])
    rows = torch.autograd.functional.jacobian(lambda t: prefix(t).sum(0), x)  # [C, H, W, B, 3, 8, 8]
    rows = rows.movedim(3, 0).reshape((x.shape[0], -1) + x.shape[1:])  # [B, neurons, 3, 8, 8]
    spread = threat.support(rows.reshape((-1,) + x.shape[1:])).reshape(x.shape[0], -1)
    centre = prefix(x).reshape(x.shape[0], -1).detach()
    lo, up = first[0]
    assert torch.allclose(lo.reshape(centre.shape), centre - spread, atol=1e-12)
    assert torch.allclose(up.reshape(centre.shape), centre + spread, atol=1e-12)


@pytest.mark.parametrize("threat", [Linf(0.05), L2(0.3)], ids=str)
def test_crown_ibp_interpolates_ibp_and_crown_over_ibp_bounds(threat):
    model = cnn(1, channels=3, size=8)
    x, y = _batch((3, 8, 8), 5)
    ibp = margin_lower_bounds(model, x, y, threat, "ibp")
    assert torch.equal(margin_lower_bounds(model, x, y, threat, "crown-ibp", beta=0.0), ibp)

    # CROWN's output layer over IBP's intermediate bounds, assembled from the engine's parts
    graph = parse(model, x)
    relax = [AdaptiveSlope(lo, up) for lo, up in preactivation_bounds(model, x, threat, "ibp")]
    eye = torch.eye(5, dtype=x.dtype)
    spec = eye[y].unsqueeze(1) - eye.unsqueeze(0)
    crown_over_ibp, _ = linear_bounds(graph.root, spec, x, threat, relax, two_sided=False)
    crown_over_ibp = crown_over_ibp.scatter(1, y.unsqueeze(1), 0.0)
    one = margin_lower_bounds(model, x, y, threat, "crown-ibp", beta=1.0)
    assert torch.allclose(one, crown_over_ibp, atol=1e-12)
    assert not torch.allclose(one, ibp)  # the two ends differ, so the mix is tested
    mix = margin_lower_bounds(model, x, y, threat, "crown-ibp", beta=0.3)
    assert torch.allclose(mix, 0.3 * one + 0.7 * ibp, atol=1e-12)


@pytest.mark.parametrize("build,shape", [(lambda: mlp(2, 8, [12, 12, 12], 4), (8,)),
                                         (lambda: resnet(2, width=0.125, size=8, classes=4), (3, 8, 8))])
def test_coap_forward_and_backward_passes_agree_on_directions(build, shape):
    model = build()
    x, y = _batch(shape, 4)
    threat = Directions(0.5, random_directions(3, shape, seed=4, dtype=torch.float64))
    fwd = preactivation_bounds(model, x, threat, "coap", direction="forward")
    bwd = preactivation_bounds(model, x, threat, "coap", direction="backward")
    for (a, b), (c, d) in zip(fwd, bwd):
        assert torch.allclose(a, c, atol=1e-10) and torch.allclose(b, d, atol=1e-10)
    assert any(((lo < 0) & (up > 0)).any() for lo, up in fwd[1:])


@pytest.mark.parametrize("method", BOUND_METHODS)
@pytest.mark.parametrize("normalize", [False, True])
def test_directions_shortcuts_equal_the_pull_back(normalize, method, monkeypatch):
    """`Directions.row_support` / `pulled_support` (the directions pushed through the first layer)
    give every method's bounds, and their gradients, of pulling every row back to the input."""
    model = mlp(5, 30, [12, 10], 3, normalize=normalize)  # the first layer narrows: the output pass uses it
    x, y = _batch((30,), 3)
    threat = Directions(0.4, random_directions(3, (30,), seed=2, dtype=torch.float64))

    def bounds_and_grads():
        model.zero_grad()
        lower = margin_lower_bounds(model, x, y, threat, method)
        pre = preactivation_bounds(model, x, threat, method)
        lower.sum().backward()
        return [lower.detach(), *(t.detach() for pair in pre for t in pair), *(p.grad.clone() for p in model.parameters())]

    calls = []
    for name in ("row_support", "pulled_support"):
        shortcut = getattr(Directions, name)
        monkeypatch.setattr(Directions, name, lambda self, *a, f=shortcut, n=name: calls.append(n) or f(self, *a))
    fast = bounds_and_grads()
    # the first layer's shortcut always; the output pass's wherever a linear pass runs to the input
    assert {"row_support"} | ({"pulled_support"} if method != "ibp" else set()) <= set(calls)
    monkeypatch.setattr(Directions, "row_support", Threat.row_support)
    monkeypatch.setattr(Directions, "pulled_support", Threat.pulled_support)
    slow = bounds_and_grads()
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    lo, up = preactivation_bounds(model, x, threat, "coap")[1]
    assert ((lo < 0) & (up > 0)).any()  # unstable neurons: the relaxation's terms are compared too


@pytest.mark.parametrize("threat", [Linf(0.02), L2(0.3)], ids=str)
def test_normalize_fold_is_exact(threat):
    """A model with Normalize and its hand-folded twin get identical bounds from every method."""
    model = mlp(3, 10, [12, 12], 4, normalize=True)
    norm, first = model[0], model[1]
    folded = torch.nn.Linear(10, 12).double()
    with torch.no_grad():
        folded.weight.copy_(first.weight / norm.std)
        folded.bias.copy_(first.bias - first.weight @ (norm.mean / norm.std))
    twin = torch.nn.Sequential(folded, *list(model)[2:])
    x, y = _batch((10,), 4)
    for method in BOUND_METHODS:
        a = margin_lower_bounds(model, x, y, threat, method)
        b = margin_lower_bounds(twin, x, y, threat, method)
        assert torch.allclose(a, b, atol=1e-12), method


PROJECTION_CASES = [  # (model, input shape, threat, projections k, tolerance per neuron, on the average)
    ("mlp", (60,), Linf(0.1), 40, 0.15, 0.03),
    ("mlp", (60,), L2(1.0), 40, 0.15, 0.03),
    ("cnn", (3, 8, 8), Linf(0.1), 20, 0.2, 0.04),  # ~30 unstable first-layer ReLUs: their slack is projected too
    ("cnn", (3, 8, 8), L2(1.0), 20, 0.2, 0.04),
]


@pytest.mark.parametrize("arch,shape,threat,k,tol_neuron,tol_mean", PROJECTION_CASES, ids=lambda v: str(v))
def test_projected_coap_agrees_with_exact_in_expectation(arch, shape, threat, k, tol_neuron, tol_mean):
    """Wong et al.'s median estimators, on the first layer they touch (the second ReLU layer).

    A median of k |Cauchy| draws estimates an ℓ1 norm with relative spread about
    π/(2√k) (the Gaussian median estimator of an ℓ2 norm spreads less), so the mean
    of 60 independent runs has a spread of π/(2√(60k)): 0.032 for k = 40, 0.045 for
    k = 20.  We allow about 4.5 of those on each neuron's interval width, and the
    O(1/k) bias of a sample median plus noise on the average over neurons.
    """
    model = mlp(5, 60, [30, 20], 3) if arch == "mlp" else cnn(5, channels=3, size=8, classes=3)
    x, _ = _batch(shape, 3, n=2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        exact_lo, exact_up = preactivation_bounds(model, x, threat, "coap")[1]
        runs = [preactivation_bounds(model, x, threat, "coap", proj=k, generator=g)[1] for _ in range(60)]
    width = torch.stack([up - lo for lo, up in runs]).mean(0)
    centre = torch.stack([(up + lo) / 2 for lo, up in runs]).mean(0)
    exact_width = exact_up - exact_lo
    ratio = width / exact_width
    assert (ratio - 1).abs().max() < tol_neuron, ratio
    assert abs(ratio.mean() - 1) < tol_mean
    assert torch.allclose(centre, (exact_up + exact_lo) / 2, atol=0.05 * float(exact_width.mean()))
    # a single run is random, not exact: the test would notice an estimator that ignored proj
    assert not torch.allclose(runs[0][0], exact_lo)


def test_projections_fall_back_to_exact_when_they_would_not_save_work():
    model = mlp(6, 8, [6, 6], 3)
    x, y = _batch((8,), 3)
    exact = margin_lower_bounds(model, x, y, Linf(0.1), "coap")
    assert torch.allclose(margin_lower_bounds(model, x, y, Linf(0.1), "coap", proj=50), exact, atol=1e-12)


def test_chunking_does_not_change_the_bounds():
    model = cnn(7, channels=2, size=8)
    x, y = _batch((2, 8, 8), 5)
    for method in ("crown", "coap"):
        options = {"direction": "backward"} if method == "coap" else {}
        a = margin_lower_bounds(model, x, y, L2(0.4), method, **options)
        b = margin_lower_bounds(model, x, y, L2(0.4), method, chunk_size=7, **options)
        assert torch.allclose(a, b, atol=1e-12)


def test_float32_and_float64_agree():
    model = cnn(8, channels=3, size=8)
    x, y = _batch((3, 8, 8), 5)
    for method in BOUND_METHODS:
        b64 = margin_lower_bounds(model, x, y, Linf(0.03), method)
        b32 = margin_lower_bounds(model.float(), x.float(), y, Linf(0.03), method)
        model.double()
        assert b32.dtype == torch.float32
        assert torch.allclose(b32.double(), b64, atol=1e-4), method


@pytest.mark.parametrize("threat", THREATS, ids=str)
@pytest.mark.parametrize("method", ["crown", "coap"])
@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_patches_equal_the_dense_backward_pass(threat, method, arch, monkeypatch):
    size = 16 if arch == "cnn" else 8  # patches are used while a window is smaller than the image
    model = cnn(9, channels=3, size=size, normalize=True) if arch == "cnn" else resnet(9, 0.125, size, normalize=True)
    x, _ = _batch((3, size, size), 5)
    if isinstance(threat, Directions):
        threat = Directions(threat.eps, random_directions(2, (3, size, size), seed=1, dtype=torch.float64))
    assert_patches_equal_dense(model, x, threat, method, monkeypatch)


class _GenericL2(L2):
    """The ℓ2 ball with none of its closed forms: every fast path falls back to `Threat`'s
    generic one (explicit rows through `support`)."""

    supports_patches = False
    row_support = Threat.row_support
    column_support = Threat.column_support
    box_radius = Threat.box_radius
    forward_basis = Threat.forward_basis


def test_closed_form_conjugates_equal_the_support_function():
    """With the ℓ2 threat's closed forms taken away, the generic paths (Threat.support on
    explicit rows) run; the bounds must not change."""
    from realdata.relaxation.engine import AffineRows

    model = resnet(4, width=0.125, size=8, normalize=True)
    x, y = _batch((3, 8, 8), 10)
    runs = [(m, "auto") for m in ("ibp", "crown", "crown-ibp")] + [("coap", "forward"), ("coap", "backward")]
    plain = [margin_lower_bounds(model, x, y, L2(0.3), m, direction=d) for m, d in runs]
    assert _GenericL2(0.3).row_support(AffineRows(parse(model, x).prefix(0), x)) is None
    for (method, direction), expected in zip(runs, plain):
        generic = margin_lower_bounds(model, x, y, _GenericL2(0.3), method, direction=direction)
        assert torch.allclose(generic, expected, atol=1e-12), (method, direction)


def test_one_bounds_object_computes_the_preactivations_once(monkeypatch):
    from realdata.bounds import Bounds, robust_loss
    from realdata.relaxation.engine import Engine

    model = cnn(3, channels=2, size=8)
    x, y = _batch((2, 8, 8), 5)
    calls = []
    compute = Engine._compute_bounds
    monkeypatch.setattr(Engine, "_compute_bounds", lambda self: calls.append(1) or compute(self))
    bounds = Bounds(model, x, Linf(0.05), "coap")
    margins, pre = bounds.margins(y), bounds.preactivations()
    loss, error = bounds.robust_loss(y)
    count, total = bounds.unstable()
    assert len(calls) == 1
    assert torch.equal(margins, margin_lower_bounds(model, x, y, Linf(0.05), "coap"))
    assert all(torch.equal(a, c) and torch.equal(b, d)
               for (a, b), (c, d) in zip(pre, preactivation_bounds(model, x, Linf(0.05), "coap")))
    assert (loss, error) == robust_loss(model, x, y, Linf(0.05), "coap")
    assert count == sum(int(((lo < 0) & (up > 0)).sum()) for lo, up in pre) and 0 < count < total
