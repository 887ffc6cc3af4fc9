"""Bad input gets a UserError that names the layer, the shape or the value to fix."""
import pytest
import torch
from torch import nn

from realdata.bounds import margin_lower_bounds, preactivation_bounds, robust_loss
from realdata.errors import UserError
from realdata.threats import Directions, Linf, random_directions


def _mlp():
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    with pytest.raises(UserError, match=r"layer 1 \(Tanh\)"):
        margin_lower_bounds(model, torch.rand(2, 4), torch.tensor([0, 1]), Linf(0.1), "ibp")


def test_unsupported_layer_inside_a_block_is_named_by_path():
    from realdata.layers import Residual

    block = Residual(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4)), nn.Identity())
    model = nn.Sequential(block, nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(UserError, match=r"layer 0\.main\.1 \(Sigmoid\)"):
        preactivation_bounds(model, torch.rand(2, 4), Linf(0.1), "coap")


def test_max_pooling_is_named_by_path():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(UserError, match=r"layer 2 \(MaxPool2d\) is not supported"):
        margin_lower_bounds(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 1]), Linf(0.1), "crown")


def test_dropout_in_training_mode_is_rejected():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 3))
    with pytest.raises(UserError, match=r"layer 2 .*model.eval\(\)"):
        margin_lower_bounds(model, torch.rand(2, 4), torch.tensor([0, 1]), Linf(0.1), "ibp")


def test_input_shape_that_the_model_cannot_take():
    with pytest.raises(UserError, match=r"shape \(7,\)"):
        margin_lower_bounds(_mlp(), torch.rand(2, 7), torch.tensor([0, 1]), Linf(0.1), "coap")


def test_threat_directions_of_the_wrong_shape():
    threat = Directions(0.1, random_directions(2, (6,), seed=0))
    with pytest.raises(UserError, match=r"\(6,\).*\(4,\)"):
        robust_loss(_mlp(), torch.rand(2, 4), torch.tensor([0, 1]), threat, "coap")


def test_negative_eps():
    with pytest.raises(UserError, match="eps must be a non-negative"):
        margin_lower_bounds(_mlp(), torch.rand(2, 4), torch.tensor([0, 1]), Linf(-0.1), "ibp")


@pytest.mark.parametrize("options,match", [({"beta": 1.5}, "beta"), ({"proj": 0}, "proj"),
                                           ({"chunk_size": -1}, "chunk_size"), ({"bogus": 1}, "bogus")])
def test_bad_options(options, match):
    with pytest.raises(UserError, match=match):
        margin_lower_bounds(_mlp(), torch.rand(2, 4), torch.tensor([0, 1]), Linf(0.1), "crown-ibp", **options)


def test_unknown_method_and_bad_labels():
    with pytest.raises(UserError, match="unknown bound method 'lp'"):
        margin_lower_bounds(_mlp(), torch.rand(2, 4), torch.tensor([0, 1]), Linf(0.1), "lp")
    with pytest.raises(UserError, match="labels must lie in 0..2"):
        margin_lower_bounds(_mlp(), torch.rand(2, 4), torch.tensor([0, 3]), Linf(0.1), "ibp")
    with pytest.raises(UserError, match=r"shape \(2,\)"):
        margin_lower_bounds(_mlp(), torch.rand(2, 4), torch.tensor([0]), Linf(0.1), "ibp")


def test_avgpool_that_is_not_a_fixed_linear_map_is_rejected():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2, padding=1, count_include_pad=False),
                          nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    with pytest.raises(UserError, match=r"layer 2 .*count_include_pad=True"):
        margin_lower_bounds(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 1]), Linf(0.1), "crown")


def test_train_mode_batchnorm_on_a_single_input_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(UserError, match=r"more than one input or call model.eval\(\)"):
        margin_lower_bounds(model, torch.rand(1, 4), torch.tensor([0]), Linf(0.1), "ibp")
