"""Model builders: shapes per dataset, the papers' layer layouts, normalisation, seeding."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from realdata.data import CIFAR10_MEAN, CIFAR10_STD, load_dataset
from realdata.errors import UserError
from realdata.threats import Linf
from realdata.layers import Normalize, Residual
from realdata.models import ARCHS, build_model, labels_to_sign, one_neuron
from realdata.relaxation.graph import LAYERS

ALLOWED = (nn.Sequential, nn.ReLU, Residual, *LAYERS)  # the layers the bounds engine understands


def images(channels, size, mean=None, std=None):
    return SimpleNamespace(name=f"fake{channels}x{size}", input_shape=(channels, size, size), num_classes=10,
                           mean=mean, std=std)


CIFAR = images(3, 32, CIFAR10_MEAN, CIFAR10_STD)
MNIST = images(1, 28)


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shape", [CIFAR, MNIST, images(1, 8)], ids=["cifar", "mnist", "digits"])
def test_every_arch_runs_forward_on_every_image_shape(arch, shape):
    model = build_model(arch, shape, width=0.25 if arch != "mlp" else 20)
    x = torch.rand(3, *shape.input_shape)
    assert model(x).shape == (3, 10)
    assert all(isinstance(m, ALLOWED) for m in model.modules())  # no layer the bounds miss


def test_mlp_on_vector_data_is_linear_relu_stacks():
    spheres = load_dataset("spheres", d=7, n=5, n_test=5)
    model = build_model("mlp", spheres)
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (model[0].in_features, model[0].out_features, model[2].out_features) == (7, 100, 2)
    assert model(spheres.x_train).shape == (5, 2)
    deep = build_model("mlp", spheres, width=9, depth=3)
    assert [l.out_features for l in linears(deep)] == [9, 9, 9, 2]
    assert [type(m) for m in build_model("mlp", spheres, depth=0)] == [nn.Linear]


def test_mnist_small_and_large_follow_the_paper():
    small = build_model("mnist-small", MNIST)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs(small)] == [
        (1, 16, (4, 4), (2, 2), (1, 1)), (16, 32, (4, 4), (2, 2), (1, 1))]
    assert [(l.in_features, l.out_features) for l in linears(small)] == [(32 * 7 * 7, 100), (100, 10)]
    large = build_model("mnist-large", MNIST)
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs(large)] == [
        (32, 3, 1, 1), (32, 4, 2, 1), (64, 3, 1, 1), (64, 4, 2, 1)]
    assert [(l.in_features, l.out_features) for l in linears(large)] == [(64 * 7 * 7, 512), (512, 512), (512, 10)]
    assert not isinstance(small[0], Normalize)  # MNIST is not normalised (docs/PAPER.md §4)


def test_cifar_cnn_sizes_its_classifier_from_the_input():
    model = build_model("cifar-cnn", CIFAR)
    assert isinstance(model[0], Normalize)
    assert torch.equal(model[0].mean, torch.tensor(CIFAR10_MEAN)) and torch.equal(model[0].std, torch.tensor(CIFAR10_STD))
    assert linears(model)[0].in_features == 32 * 8 * 8
    assert linears(build_model("cifar-cnn", images(3, 16)))[0].in_features == 32 * 4 * 4


def test_resnet_is_the_wong_et_al_layout():
    model = build_model("resnet", CIFAR)
    blocks = [m for m in model if isinstance(m, Residual)]
    layout = [(b.main[0].in_channels, b.main[0].out_channels, b.main[0].kernel_size[0], b.main[0].stride[0],
               b.main[2].kernel_size[0], b.skip.kernel_size[0], b.skip.stride[0]) for b in blocks]
    assert layout == [(16, 16, 3, 1, 3, 1, 1), (16, 16, 3, 1, 3, 1, 1), (16, 32, 4, 2, 3, 2, 2), (32, 64, 4, 2, 3, 2, 2)]
    conv1 = model[1]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size) == (3, 16, (3, 3))
    # each block is followed by its own ReLU, as the bounds engine expects
    assert all(isinstance(model[i + 1], nn.ReLU) for i, m in enumerate(model) if isinstance(m, Residual))
    assert [(l.in_features, l.out_features) for l in linears(model)] == [(4096, 1000), (1000, 10)]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    narrow = build_model("resnet", images(3, 16), width=0.25)
    assert [b.main[0].out_channels for b in narrow if isinstance(b, Residual)] == [4, 4, 8, 16]
    assert [(l.in_features, l.out_features) for l in linears(narrow)] == [(16 * 4 * 4, 250), (250, 10)]


def test_resnet_init_is_he_on_fan_out():
    conv = [c for c in convs(build_model("resnet", CIFAR)) if c.kernel_size == (3, 3) and c.out_channels == 64][0]
    expected = (2 / (3 * 3 * 64)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.05 and torch.all(conv.bias == 0)


def test_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = build_model("cifar-cnn", CIFAR, seed=3), build_model("cifar-cnn", CIFAR, seed=3)
    c = build_model("cifar-cnn", CIFAR, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_real_dataset_objects_are_accepted():
    digits = load_dataset("digits", train_size=16, test_size=4)
    model = build_model("mnist-small", digits)
    assert model(digits.x_train).shape == (16, 10)


def test_bad_architecture_parameters_and_shapes():
    with pytest.raises(UserError, match="choose one of mlp, mnist-small"):
        build_model("vgg", CIFAR)
    with pytest.raises(UserError, match="resnet does not take depth"):
        build_model("resnet", CIFAR, depth=3)
    with pytest.raises(UserError, match="needs image data"):
        build_model("cifar-cnn", load_dataset("linear", d=4, n=2, n_test=2))
    with pytest.raises(UserError, match="does not fit inputs"):
        build_model("mnist-large", images(1, 2))
    with pytest.raises(UserError, match="must be positive"):
        build_model("resnet", CIFAR, width=-1)
    with pytest.raises(UserError, match="width >= 1"):
        build_model("mlp", MNIST, width=0)


def test_one_neuron_logit_gap_is_the_theorem_model():
    theta = torch.tensor([1.5, -0.5, 2.0])
    model = one_neuron(theta, a=2.0, b=-0.7)
    x = torch.randn(20, 3)
    logits = model(x)
    assert torch.allclose(logits[:, 1] - logits[:, 0], 2.0 * torch.relu(x @ theta) - 0.7, atol=1e-6)
    assert [p.requires_grad for p in model.parameters()] == [True, False, False]
    assert labels_to_sign(torch.tensor([0, 1])).tolist() == [-1, 1]


def _cnn7_layout(model):
    return [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs(model)]


def test_cnn7_is_shi_et_al_and_ctbench_cnn_7layer_bn():
    model = build_model("cnn7", CIFAR)
    assert isinstance(model[0], Normalize)
    assert _cnn7_layout(model) == [(3, 64, 3, 1, 1), (64, 64, 3, 1, 1), (64, 128, 3, 2, 1), (128, 128, 3, 1, 1),
                                   (128, 128, 3, 1, 1)]
    kinds = [type(m) for m in model[1:]]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 5 + [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU,
                                                                 nn.Linear]
    assert [(l.in_features, l.out_features) for l in linears(model)] == [(128 * 16 * 16, 512), (512, 10)]
    # convs 407,744 + FC 16,777,728 + 5,130 + BatchNorm 2·(64+64+128·3+512) = 2,048
    assert sum(p.numel() for p in model.parameters()) == 17_192_650
    assert all(float(m.running_mean.abs().sum()) == 0 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_cnn7_on_mnist_format_and_64x64_inputs_and_its_width():
    mnist = build_model("cnn7", MNIST)  # CTBench's MNIST network: one channel, 14×14 after the stride-2 conv
    assert _cnn7_layout(mnist)[0] == (1, 64, 3, 1, 1)
    assert linears(mnist)[0].in_features == 128 * 14 * 14
    tin = build_model("cnn7", images(3, 64))  # cnn_7layer_bn_tinyimagenet: the fifth conv has stride 2 too
    assert [c.stride[0] for c in convs(tin)] == [1, 1, 2, 1, 2]
    assert linears(tin)[0].in_features == 128 * 16 * 16
    narrow = build_model("cnn7", CIFAR, width=0.5)
    assert [c.out_channels for c in convs(narrow)] == [32, 32, 64, 64, 64]
    assert [l.out_features for l in linears(narrow)] == [256, 10]


def test_cnn7_bounds_are_sound_in_eval_and_train_mode():
    from realdata.bounds import margin_lower_bounds

    model = build_model("cnn7", images(3, 8), width=1 / 16).double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(10, (4,), generator=g)
    model.train()
    model(x)  # one training step's statistics, so eval mode is not the identity
    for mode in ("train", "eval"):
        model.train(mode == "train")
        lower = margin_lower_bounds(model, x, y, Linf(0.01), "crown")
        if mode == "eval":
            with torch.no_grad():
                for _ in range(10):
                    logits = model(x + Linf(0.01).sample(x.shape, generator=g, dtype=x.dtype))
                    assert ((logits.gather(1, y[:, None]) - logits) >= lower - 1e-9).all()
        assert torch.isfinite(lower).all()
