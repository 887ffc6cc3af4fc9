"""The shared threat models: support functions, projections, membership, sampling."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.overrides import TorchFunctionMode

from realdata.errors import UserError
from realdata.threats import L2, Directions, Linf, basis_direction, make_threat, random_directions

SHAPES = [(6,), (2, 3, 3)]


def _threats(shape, eps=0.7):
    return [Linf(eps), L2(eps), Directions(eps, random_directions(min(3, math.prod(shape)), shape, seed=3))]


@pytest.mark.parametrize("shape", SHAPES)
def test_support_is_the_max_over_the_set(shape):
    """σ_S(ν) must dominate ⟨ν, δ⟩ for samples of S and be attained by the ascent direction."""
    g = torch.Generator().manual_seed(0)
    nu = torch.randn((5,) + shape, generator=g, dtype=torch.float64)
    for threat in _threats(shape):
        sup = threat.support(nu)
        samples = threat.sample((5,) + shape, generator=g, dtype=torch.float64)
        inner = (samples * nu).flatten(1).sum(1)
        assert (inner <= sup + 1e-12).all(), threat
        best = threat.project(threat.eps * threat.ascent(nu) * 10)  # scaled out, projected back
        attained = (best * nu).flatten(1).sum(1)
        torch.testing.assert_close(attained, sup, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0), which=st.integers(0, 2), s=st.integers(0, 1))
def test_projection_lands_in_the_set_and_is_idempotent(seed, scale, which, s):
    shape = SHAPES[s]
    threat = _threats(shape)[which]
    g = torch.Generator().manual_seed(seed)
    delta = scale * torch.randn((4,) + shape, generator=g, dtype=torch.float64)
    p = threat.project(delta)
    assert threat.contains(p).all()
    torch.testing.assert_close(threat.project(p), p)


@pytest.mark.parametrize("shape", SHAPES)
def test_projection_is_the_nearest_point(shape):
    """No sampled point of the set is closer to δ than its projection."""
    g = torch.Generator().manual_seed(1)
    delta = 2 * torch.randn((3,) + shape, generator=g, dtype=torch.float64)
    for threat in _threats(shape):
        p = threat.project(delta)
        d_proj = (delta - p).flatten(1).norm(dim=1)
        for _ in range(20):
            q = threat.sample((3,) + shape, generator=g, dtype=torch.float64)
            assert ((delta - q).flatten(1).norm(dim=1) >= d_proj - 1e-9).all(), threat


def test_membership_boundaries():
    x = torch.zeros(1, 4)
    x[0, 0] = 0.5
    assert Linf(0.5).contains(x).item() and not Linf(0.49).contains(x).item()
    x[0, 1] = 0.5
    assert L2(0.71).contains(x).item() and not L2(0.70).contains(x).item()
    # off the union of segments even though inside its convex hull
    e = Directions(1.0, torch.eye(4)[:2])
    assert not e.contains(x).item()
    assert e.contains(torch.tensor([[0.0, -0.9, 0.0, 0.0]])).item()


def test_random_directions_are_orthonormal_and_seeded():
    D = random_directions(4, (3, 5), seed=7)
    assert D.shape == (4, 3, 5)
    flat = D.reshape(4, -1).double()
    torch.testing.assert_close(flat @ flat.T, torch.eye(4, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(D, random_directions(4, (3, 5), seed=7))
    assert not torch.allclose(D, random_directions(4, (3, 5), seed=8))


def test_basis_direction_is_e1():
    e1 = basis_direction(0, (5,))
    assert e1.shape == (1, 5) and e1[0, 0] == 1 and e1.sum() == 1


def test_with_eps_keeps_the_geometry():
    D = random_directions(2, (4,), seed=0)
    t = Directions(0.1, D).with_eps(2.0)
    assert isinstance(t, Directions) and t.eps == 2.0 and torch.equal(t.directions, D)
    assert L2(1.0).with_eps(3.0) == L2(3.0)
    same = Directions(0.1, D)
    assert same.with_eps(0.1) is same  # training asks every step; nothing to rebuild or re-check


@pytest.mark.parametrize("bad", [
    lambda: L2(-0.1),
    lambda: Linf(float("nan")),
    lambda: Directions(0.5, torch.ones(2, 3)),  # not orthonormal
    lambda: random_directions(5, (4,)),          # k > d
    lambda: make_threat("l3", 0.5),
    lambda: make_threat("directions", 0.5),
])
def test_bad_threats_raise_a_user_error(bad):
    with pytest.raises(UserError):
        bad()


def test_directions_shape_check_names_both_shapes():
    t = Directions(0.5, random_directions(2, (4,), seed=0))
    with pytest.raises(UserError, match=r"\(4,\).*\(5,\)"):
        t.check_input(torch.zeros(3, 5))


# -- any device: the meta device stands in for a GPU (shapes and devices, no values) ----------
class _Copies(TorchFunctionMode):
    """Counts Tensor.to calls that copied (returned another tensor)."""

    def __init__(self):
        super().__init__()
        self.copies = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.Tensor.to and out is not args[0]:
            self.copies += 1
        return out


def _exercise(threat, x):
    for out in (threat.project(x), threat.ascent(x), threat.sample(x.shape, device=x.device)):
        assert out.shape == x.shape and out.device == x.device
    assert threat.radius(x).shape == threat.support(x).shape == threat.contains(x).shape == (x.shape[0],)


def test_directions_live_on_the_data_device():
    cpu = Directions(0.5, random_directions(3, (2, 4, 4), seed=0))
    meta = cpu.to("meta")  # built where the data live (a CUDA GPU in real use); meta until now raised on torch.eye
    assert meta.directions.is_meta and cpu.directions.device.type == "cpu" and cpu.to("cpu") is cpu
    x = torch.empty(5, 2, 4, 4, device="meta")
    with _Copies() as moved:
        _exercise(meta, x)
    assert moved.copies == 0
    with _Copies() as moved:  # the directions left on the CPU are copied on every call
        _exercise(cpu, x)
    assert moved.copies >= 6
    assert Directions(0.5, torch.empty(3, 2, 4, 4, device="meta")).k == 3
    assert L2(0.5).to("meta") == L2(0.5)


@pytest.mark.parametrize("k", [1, 4, 5, 50])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_median_index_finds_torchs_median(k, dtype):
    """The projections' median is located by numpy on the CPU (float32/64) and by torch otherwise;
    either way it is the entry torch.median returns: the lower median of |p| over dim 1."""
    from realdata.threats import median_index

    p = torch.randn(3, k, 7, generator=torch.Generator().manual_seed(k)).to(dtype)
    p[0, :, 0] = 0.5  # ties
    index = median_index(p)
    assert index.shape == (3, 1, 7) and index.dtype == torch.int64
    assert torch.equal(p.abs().gather(1, index), p.abs().median(1, keepdim=True).values)
    view = torch.cat([-p[:, :1], p], 1)[:, 1:]  # a strided view, as the slack group's median gets
    assert not view.is_contiguous()
    assert torch.equal(view.abs().gather(1, median_index(view)), p.abs().median(1, keepdim=True).values)
