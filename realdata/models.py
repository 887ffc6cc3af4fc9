"""Model builders.  Every model is a plain nn.Sequential the bounds engine understands.

`build_model(arch, dataset)` builds one of ARCHS for a dataset's input shape and
class count, with `Normalize` first when the dataset carries mean/std, from
layers the bounds engine understands, so every bound method applies.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from .errors import UserError
from .layers import Normalize, Residual

# (out_channels, kernel, stride, padding) per conv, then hidden FC widths (Wong et al. 2018,
# convex_adversarial examples/problems.py). The small CIFAR CNN is the same stack as the
# small MNIST one, as in that code; only the input shape differs.
_CNN_SPECS = {
    "mnist-small": ([(16, 4, 2, 1), (32, 4, 2, 1)], [100]),
    "cifar-cnn": ([(16, 4, 2, 1), (32, 4, 2, 1)], [100]),
    "mnist-large": ([(32, 3, 1, 1), (32, 4, 2, 1), (64, 3, 1, 1), (64, 4, 2, 1)], [512, 512]),
}


def one_neuron(theta: torch.Tensor, a: float, b: float) -> nn.Sequential:
    """The theorem's model f(x) = a·ReLU(θᵀx) + b as a two-logit network.

    Logits are (−f/2, f/2), so logit₁ − logit₀ = f(x): class index 1 is y = +1 and
    class index 0 is y = −1, and every multi-class margin bound of the engine is a
    bound on y·f(x).  Only the first layer's weight (θ) is meant to be trained.
    """
    theta = torch.as_tensor(theta).flatten()
    # Built in θ's dtype from the start: a float32 layer would round a float64 θ, a and b.
    first = nn.Linear(theta.numel(), 1, bias=False, dtype=theta.dtype)
    last = nn.Linear(1, 2, dtype=theta.dtype)
    with torch.no_grad():
        first.weight.copy_(theta.reshape(1, -1))
        last.weight.copy_(torch.tensor([[-a / 2.0], [a / 2.0]], dtype=theta.dtype))
        last.bias.copy_(torch.tensor([-b / 2.0, b / 2.0], dtype=theta.dtype))
    last.requires_grad_(False)
    return nn.Sequential(first, nn.ReLU(), last)


def labels_to_sign(y: torch.Tensor) -> torch.Tensor:
    """Class index {0, 1} → the theorem's label {−1, +1}."""
    return 2 * y - 1


def _scaled(channels: int, width: float) -> int:
    if not float(width) > 0:
        raise UserError(f"width is a factor on the layer sizes and must be positive, got {width}.")
    return max(1, int(round(channels * float(width))))


def _classifier(features: nn.Sequential, in_shape: tuple, hidden: list[int], num_classes: int) -> list[nn.Module]:
    """Flatten + ReLU-separated Linear layers, sized from a dry run of `features` on the input shape."""
    with torch.no_grad():
        features.eval()  # a dry run must not touch BatchNorm's running statistics
        size = features(torch.zeros(1, *in_shape)).numel() if len(features) else int(torch.Size(in_shape).numel())
        features.train()
    # vectors need no Flatten; keeping it out leaves the spheres/linear nets a bare Linear–ReLU–Linear
    layers: list[nn.Module] = [nn.Flatten()] if len(in_shape) > 1 else []
    for units in hidden:
        layers += [nn.Linear(size, units), nn.ReLU()]
        size = units
    layers.append(nn.Linear(size, num_classes))
    return layers


def _mlp(in_shape, num_classes, width: int = 100, depth: int = 1):
    """`depth` hidden layers of `width` ReLUs (default: the spheres/linear nets of docs/PAPER.md §2–3)."""
    if int(width) < 1 or int(depth) < 0:
        raise UserError(f"mlp needs width >= 1 and depth >= 0, got width={width}, depth={depth}.")
    return _classifier(nn.Sequential(), in_shape, [int(width)] * int(depth), num_classes)


def _cnn(spec: str):
    convs, hidden = _CNN_SPECS[spec]

    def build(in_shape, num_classes, width: float = 1.0):
        layers, channels = [], in_shape[0]
        for out, kernel, stride, padding in convs:
            layers += [nn.Conv2d(channels, _scaled(out, width), kernel, stride=stride, padding=padding), nn.ReLU()]
            channels = _scaled(out, width)
        features = nn.Sequential(*layers)
        return layers + _classifier(features, in_shape, [_scaled(h, width) for h in hidden], num_classes)

    build.__doc__ = f"The {spec} network; `width` scales every channel count and hidden width."
    return build


def _resnet_block(cin: int, cout: int, downsample: bool) -> list[nn.Module]:
    # convex_adversarial's cifar_model_resnet: a downsampling block uses a 4×4 stride-2 first
    # conv and a 2×2 stride-2 skip; otherwise 3×3 and 1×1. The second conv is always 3×3.
    k_first, stride, k_skip = (4, 2, 2) if downsample else (3, 1, 1)
    main = nn.Sequential(
        nn.Conv2d(cin, cout, k_first, stride=stride, padding=1), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, stride=1, padding=1))
    return [Residual(main, nn.Conv2d(cin, cout, k_skip, stride=stride, padding=0)), nn.ReLU()]


def _resnet(in_shape, num_classes, width: float = 1.0):
    """The Wong et al. (2018) residual net (N=1, factor=1); `width` < 1 shrinks it for tests."""
    c16, c32, c64 = (_scaled(c, width) for c in (16, 32, 64))
    layers = [nn.Conv2d(in_shape[0], c16, 3, stride=1, padding=1), nn.ReLU()]
    layers += _resnet_block(c16, c16, False) + _resnet_block(c16, c16, False)
    layers += _resnet_block(c16, c32, True) + _resnet_block(c32, c64, True)
    layers += _classifier(nn.Sequential(*layers), in_shape, [_scaled(1000, width)], num_classes)
    for module in layers:
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                # the reference's He init on fan-out: keeps a BatchNorm-free residual stack trainable
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)
    return layers


def _cnn7(in_shape, num_classes, width: float = 1.0):
    """CNN7 of Shi et al. (2021), the network of CTBench (Mao et al. 2023, `cnn_7layer_bn`):
    3×3 convs of 64-64-128-128-128 channels, each followed by BatchNorm and ReLU, the third
    with stride 2, then FC 512 with BatchNorm and ReLU.  On MNIST-format data (1×28×28) it
    is CTBench's MNIST network; on inputs of side 64 or more the fifth conv has stride 2
    too, CTBench's `cnn_7layer_bn_tinyimagenet` (Tiny ImageNet).  `width` scales every
    channel count and the FC width."""
    channels = [_scaled(c, width) for c in (64, 64, 128, 128, 128)]
    strides = [1, 1, 2, 1, 2 if min(in_shape[1:]) >= 64 else 1]
    layers, cin = [], in_shape[0]
    for cout, stride in zip(channels, strides):
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        cin = cout
    head = _classifier(nn.Sequential(*layers), in_shape, [_scaled(512, width)], num_classes)
    flatten, hidden, relu, last = head
    return layers + [flatten, hidden, nn.BatchNorm1d(hidden.out_features), relu, last]


_BUILDERS = {"mlp": _mlp, "mnist-small": _cnn("mnist-small"), "mnist-large": _cnn("mnist-large"),
             "cifar-cnn": _cnn("cifar-cnn"), "resnet": _resnet, "cnn7": _cnn7}
#: The architecture registry's names (choices and help derive from `_BUILDERS`).
ARCHS = tuple(_BUILDERS)


def build_model(arch: str, dataset, seed: int = 0, **params) -> nn.Sequential:
    """Build `arch` (one of ARCHS) for `dataset` (anything with input_shape, num_classes, mean, std).

    params: `width`, `depth` (mlp: hidden units per layer, number of hidden layers);
    `width` (CNNs and resnet: a factor on every channel count and hidden width).
    The initialisation is drawn from `seed` without touching the global RNG.
    """
    if arch not in _BUILDERS:
        raise UserError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}.")
    builder = _BUILDERS[arch]
    accepted = set(inspect.signature(builder).parameters) - {"in_shape", "num_classes"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise UserError(f"{arch} does not take {', '.join(unknown)}; its parameters are: {', '.join(sorted(accepted))}.")
    in_shape = tuple(int(s) for s in dataset.input_shape)
    if arch != "mlp" and len(in_shape) != 3:
        raise UserError(f"{arch} needs image data (channels, height, width), but {dataset.name} has shape {in_shape}; use --arch mlp.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            layers = builder(in_shape, int(dataset.num_classes), **params)
        except RuntimeError as err:  # a conv stack that shrinks the image to nothing
            raise UserError(f"{arch} does not fit inputs of shape {in_shape} ({err}); pick a smaller architecture such as mlp.") from None
    if getattr(dataset, "mean", None) is not None:
        layers.insert(0, Normalize(dataset.mean, dataset.std))
    return nn.Sequential(*layers)
