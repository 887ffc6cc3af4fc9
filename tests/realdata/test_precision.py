"""Bounds never run under TF32: every torch call inside a bound computation sees IEEE float32.

The GPU flags are plain settings on a CPU build too, so the test turns TF32 on the way a
torch default or a user would, and watches each torch function the bound engine calls.
"""
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).parent))  # the suite runs with --import-mode=importlib
from bounds_helpers import cnn
from realdata import bounds
from realdata.precision import full_float32, precision_flags
from realdata.threats import L2


class _Watch(TorchFunctionMode):
    """Records, for every torch function called, whether any backend allowed below-IEEE float32."""

    def __init__(self):
        super().__init__()
        self.calls, self.low = 0, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        low = {name: flag.fp32_precision for name, flag in precision_flags().items() if flag.fp32_precision != "ieee"}
        if low:
            self.low.append((getattr(func, "__name__", str(func)), low))
        return func(*args, **(kwargs or {}))


GPU = ("cuda.matmul", "cudnn.conv")


def _settings(names=None):
    return {name: flag.fp32_precision for name, flag in precision_flags().items() if names is None or name in names}


@pytest.fixture
def tf32_on():
    """TF32 allowed for cuBLAS and cuDNN, as torch's cuDNN default and many scripts have it."""
    flags = precision_flags()
    assert {"cuda.matmul", "cudnn.conv"} <= set(flags), "this torch has no per-operator precision flags"
    saved = {name: flag.fp32_precision for name, flag in flags.items()}
    for name in GPU:
        flags[name].fp32_precision = "tf32"
    yield
    for name, value in saved.items():
        flags[name].fp32_precision = value


def _one_object(model, x, y, threat, method):
    """Evaluation's pattern: one Bounds object, then its margins and unstable count."""
    b = bounds.Bounds(model, x, threat, method)
    b.margins(y)
    b.unstable()


@pytest.mark.parametrize("entry", ["margin_lower_bounds", "preactivation_bounds", "robust_loss", "object"])
@pytest.mark.parametrize("method", ["crown-ibp", "coap"])
def test_no_bound_computation_runs_with_tf32_allowed(tf32_on, entry, method):
    model = cnn(0, dtype=torch.float32)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3])
    threat = L2(0.1)
    args = (model, x, threat, method) if entry == "preactivation_bounds" else (model, x, y, threat, method)
    with _Watch() as watch:
        (_one_object if entry == "object" else getattr(bounds, entry))(*args)
    assert watch.calls > 20  # the watch saw the engine's work, not nothing
    assert watch.low == []
    # and the caller's settings are back afterwards
    assert _settings(GPU) == {name: "tf32" for name in GPU}



def test_evaluation_runs_its_forward_attack_and_bounds_in_ieee(tf32_on):
    from realdata.evaluate import evaluate

    model = cnn(0, dtype=torch.float32)
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    with _Watch() as watch:
        evaluate(model, x, y, L2(0.1), attack="pgd", bound="crown-ibp", also_bounds=("coap",), progress=False, steps=3)
    assert watch.calls > 100 and watch.low == []
    assert _settings(GPU) == {name: "tf32" for name in GPU}

def test_settings_restored_when_the_computation_raises(tf32_on):
    before = _settings()
    with pytest.raises(ZeroDivisionError), full_float32():
        assert set(_settings().values()) == {"ieee"}
        raise ZeroDivisionError
    assert _settings() == before
