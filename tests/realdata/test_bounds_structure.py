"""The engine's seams: nothing under realdata/relaxation/ asks which threat it holds, and a
new relaxation is one class plus one registry entry."""
import ast
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import cnn, margins, mlp, resnet
from realdata import threats
from realdata.bounds import margin_lower_bounds
from realdata.relaxation import recipes
from realdata.relaxation.engine import Engine
from realdata.relaxation.relus import ReluRelaxation, unstable_mask
from realdata.threats import L2, Linf

RELAXATION = Path(threats.__file__).parent / "relaxation"
THREAT_CLASSES = {name for name, obj in vars(threats).items()
                  if isinstance(obj, type) and issubclass(obj, threats.Threat)}


def _names(node) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
           {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def test_nothing_under_relaxation_branches_on_the_threat_type():
    files = sorted(RELAXATION.glob("*.py"))
    assert len(files) > 5
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "realdata.threats":
                imported = {alias.name for alias in node.names}
                assert not imported & THREAT_CLASSES, (path.name, imported)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "type"):
                mentioned = _names(node)
                assert not mentioned & THREAT_CLASSES, (path.name, node.lineno)
                assert not any("threat" in name.lower() for name in mentioned), (path.name, node.lineno)


class _ZeroSlope(ReluRelaxation):
    """α = 0 on every unstable neuron: a valid (loose) lower line, for the seam test."""

    def lower_slope(self):
        return torch.zeros_like(self.lower)


def test_a_new_relaxation_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "zero-slope", recipes.Recipe("linear", _ZeroSlope, "linear"))
    g = torch.Generator().manual_seed(0)
    for model, shape in ((mlp(1, 6, [10, 8], 4), (6,)), (cnn(2, channels=2, size=8, classes=4), (2, 8, 8))):
        x = torch.rand((3,) + shape, generator=g, dtype=torch.float64)
        y = torch.randint(4, (3,), generator=g)
        for threat in (Linf(0.05), L2(0.3)):
            zero = margin_lower_bounds(model, x, y, threat, "zero-slope")
            crown = margin_lower_bounds(model, x, y, threat, "crown")
            assert not torch.allclose(zero, crown)  # the rule is really used
            points = [threat.sample(x.shape, generator=g, dtype=x.dtype) for _ in range(20)]
            with torch.no_grad():
                found = torch.stack([margins(model, x + d, y) for d in points]).amin(0)
            assert (found >= zero - 1e-9).all()


def test_refining_only_the_unstable_neurons_is_never_looser():
    """CROWN's intermediate bounds (interval ∩ linear pass from the interval-unstable neurons)
    against the linear pass from every neuron with the same earlier relaxations: inside it
    wherever the neuron is unstable, and never unstable where it is stable."""
    assert recipes.RECIPES["crown"].unstable_only and not recipes.RECIPES["coap"].unstable_only
    g = torch.Generator().manual_seed(1)
    skipped = 0
    for model, shape in ((mlp(2, 6, [12, 10, 8], 4), (6,)), (resnet(3, size=8, classes=4), (3, 8, 8))):
        x = torch.rand((3,) + shape, generator=g, dtype=torch.float64)
        for threat in (Linf(0.01), L2(0.1)):
            refined = Engine(model, x, threat, "crown")
            every = Engine(model, x, threat, "crown")
            every.recipe = dataclasses.replace(every.recipe, unstable_only=False)
            bounds = refined.preactivation_bounds()
            for k in range(1, len(bounds)):
                lo, up = bounds[k]
                old_lo, old_up = every._layer_bounds(k, every.relaxations(bounds[:k]), bounds[:k])
                unstable = unstable_mask(lo, up)
                assert not (unstable & ~unstable_mask(old_lo, old_up)).any()
                assert (lo >= old_lo - 1e-9)[unstable].all() and (up <= old_up + 1e-9)[unstable].all()
                skipped += len(lo[0].flatten()) - len(refined._refined[k])
    assert skipped > 0  # the lever really skips neurons here
