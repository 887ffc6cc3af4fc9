"""The device path, on the GPU when there is one (benchmarks/device_check.sh runs this file
there) and on the CPU otherwise: bounds equal the CPU's, Directions threats, training with a
resume, and evaluation all follow the data's device."""
import pytest
import torch

from realdata.bounds import BOUND_METHODS, margin_lower_bounds
from realdata.evaluate import evaluate
from realdata.recipes import make_config
from realdata.threats import L2, Directions, Linf, random_directions
from realdata.train import fit, train

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))


@pytest.mark.parametrize("method", BOUND_METHODS)
@pytest.mark.parametrize("threat", [Linf(0.02), L2(0.1)], ids=["linf", "l2"])
def test_bounds_on_the_device_equal_the_cpu_bounds(method, threat):
    model, g = _cnn(), torch.Generator().manual_seed(1)
    x, y = torch.rand(6, 3, 8, 8, generator=g), torch.randint(0, 5, (6,), generator=g)
    on_cpu = margin_lower_bounds(model, x, y, threat, method)
    on_device = margin_lower_bounds(model.to(DEVICE), x.to(DEVICE), y.to(DEVICE), threat, method)
    assert on_device.device.type == DEVICE.type
    assert torch.allclose(on_device.cpu(), on_cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_directions_train_resume_and_evaluate_on_the_device(tmp_path):
    from realdata.data import load_dataset
    from realdata.models import build_model

    config = make_config("digits", "at", eps=0.5, norm="directions", k=3, train_size=60, test_size=20, epochs=2,
                         batch_size=30, width=16, depth=1, attack_steps=3, eval_steps=3)
    whole = train(config, out=tmp_path / "whole", device=str(DEVICE), progress=False)
    assert whole["device_type"] == DEVICE.type
    assert train(config, out=tmp_path / "parts", device=str(DEVICE), progress=False, stop_after=1) is None
    resumed = train(config, out=tmp_path / "parts", device=str(DEVICE), progress=False)
    assert resumed["resumed_from"] == 1 and resumed["metrics"] == whole["metrics"]

    data = load_dataset("digits", train_size=30, test_size=20, seed=0)
    threat = Directions(0.5, random_directions(3, data.input_shape, seed=0))  # built on the CPU
    model = fit(config, data, build_model("mlp", data, seed=0, width=16), threat=threat, device=str(DEVICE),
                progress=False).model
    assert next(model.parameters()).device.type == DEVICE.type
    metrics = evaluate(model, data.x_test, data.y_test, threat, bound="crown-ibp", steps=3, restarts=1,
                       box=data.box, progress=False, attack_seed=0)
    assert metrics["robust_error"] >= metrics["standard_error"] and metrics["certified_error"] >= metrics["robust_error"]
