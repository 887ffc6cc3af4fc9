"""The bounds engine's view of a model: a tree of the layer classes of `layers.py`.

`parse(model, x)` turns an `nn.Sequential` into nodes that know their input and
output shapes (from one forward pass of a single example, or of the whole clean
batch when a BatchNorm is in training mode and needs its statistics).  `LAYERS`
maps each supported torch module type to the function that builds its node: the
one place a module's type is looked at.
"""
from __future__ import annotations

import torch
from torch import nn

from realdata.errors import UserError
from realdata.layers import Normalize, Residual
from realdata.relaxation.layers import (AvgPoolLayer, Block, Chain, ChannelAffine, ConvLayer, LinearLayer, Relu,
                                        Reshape)


def _bias(module, y):
    if module.bias is None:
        return None
    # a view of the layer's own bias, so gradients of the bounds reach it
    return module.bias.reshape((-1,) + (1,) * (y.dim() - 2)).expand(y.shape[1:])


def _linear(module, path, x, y):
    return LinearLayer(module, path, tuple(x.shape[1:]), tuple(y.shape[1:]), _bias(module, y))


def _conv(module, path, x, y):
    if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
        raise UserError(f"layer {path} ({module}) is not supported by the bounds: use groups=1, "
                        "zero padding and numeric padding.")
    return ConvLayer(module, path, tuple(x.shape[1:]), tuple(y.shape[1:]), _bias(module, y))


def _avgpool(module, path, x, y):
    if module.ceil_mode or not (module.count_include_pad or module.padding in (0, (0, 0))):
        raise UserError(f"layer {path} ({module}) is not supported by the bounds: use ceil_mode=False and "
                        "count_include_pad=True (or no padding), which make it a fixed linear map.")
    return AvgPoolLayer(module, path, tuple(x.shape[1:]), tuple(y.shape[1:]))


def _channel_affine(module, path, x, scale, shift):
    """A per-channel map scale·z + shift, its shift laid out over the whole map."""
    shape = tuple(x.shape[1:])
    full = shift.reshape((-1,) + (1,) * (len(shape) - 1)).expand(shape)
    return ChannelAffine(module, path, shape, shape, full, scale=scale)


def _normalize(module, path, x, y):
    std = module.std.to(x.dtype)
    return _channel_affine(module, path, x, 1 / std, -module.mean.to(x.dtype) / std)


def _batchnorm(module, path, x, y):
    """Eval mode: the running statistics, an exact affine map.  Train mode: the statistics of
    the clean batch `x`, as IBP training with BatchNorm uses them (Shi et al. 2021; gradients
    flow through them as through the model's own forward pass).  The probe that takes them is
    the model's own training-mode forward pass, so it moves the running statistics once, as
    auto_LiRPA's bounded forward does: a method that trains on bounds alone keeps them current."""
    if _batch_statistics(module):
        dims = [0] + list(range(2, x.dim()))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
    else:
        mean, var = module.running_mean.to(x.dtype), module.running_var.to(x.dtype)
    scale = torch.rsqrt(var + module.eps)
    shift = -mean * scale
    if module.affine:
        scale, shift = scale * module.weight, shift * module.weight + module.bias
    return _channel_affine(module, path, x, scale, shift)


def _identity(module, path, x, y):
    return Reshape(module, path, tuple(x.shape[1:]), tuple(y.shape[1:]))


def _flatten(module, path, x, y):
    if module.start_dim != 1 or module.end_dim != -1:
        raise UserError(f"layer {path} ({module}) is not supported by the bounds: flatten from dimension 1 to the end.")
    return _identity(module, path, x, y)


def _dropout(module, path, x, y):
    if module.training and module.p > 0:
        raise UserError(f"layer {path} ({module}) is in training mode; the bounds hold for the model in eval "
                        "mode (call model.eval()), where dropout is the identity.")
    return _identity(module, path, x, y)


#: torch module type → builder(module, path, x, y) of its node
LAYERS = {nn.Linear: _linear, nn.Conv2d: _conv, nn.AvgPool2d: _avgpool, Normalize: _normalize,
          nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm, nn.Flatten: _flatten, nn.Identity: _identity,
          nn.Dropout: _dropout}

SUPPORTED = ("Linear, Conv2d, AvgPool2d, BatchNorm1d/2d, ReLU, Flatten, Identity, Dropout (eval), "
             "Normalize and Residual")


def _module_output(module, x, batch: bool):
    # the probe needs no graph unless BatchNorm statistics are taken from it
    with torch.set_grad_enabled(batch and torch.is_grad_enabled()):
        return module(x)


def _parse_chain(modules, prefix: str, x: torch.Tensor, counter: list, batch: bool) -> tuple[Chain, torch.Tensor]:
    chain = Chain()
    for i, module in enumerate(modules):
        path = f"{prefix}{i}"
        if isinstance(module, nn.ReLU):
            chain.nodes.append(Relu(counter[0], tuple(x.shape[1:])))
            counter[0] += 1
            x = torch.relu(x)
        elif isinstance(module, Residual):
            main, y_main = _parse_chain(_as_list(module.main), f"{path}.main.", x, counter, batch)
            skip, y_skip = _parse_chain(_as_list(module.skip), f"{path}.skip.", x, counter, batch)
            if y_main.shape != y_skip.shape:
                raise UserError(f"residual block {path}: main branch gives shape {tuple(y_main.shape[1:])} but the skip "
                                f"gives {tuple(y_skip.shape[1:])}; the two branches must agree.")
            chain.nodes.append(Block(main, skip, tuple(x.shape[1:]), tuple(y_main.shape[1:])))
            x = y_main + y_skip
        elif type(module) in LAYERS:
            y = _module_output(module, x, batch)
            chain.nodes.append(LAYERS[type(module)](module, path, x, y))
            x = y
        else:
            raise UserError(f"layer {path} ({type(module).__name__}) is not supported by the bounds; "
                            f"models may contain only {SUPPORTED}.")
    return chain, x


def _as_list(module: nn.Module) -> list:
    if isinstance(module, nn.Sequential):
        return list(module)
    return [module]


class Graph:
    """The parsed model: its root chain, shapes and ReLU layers."""

    def __init__(self, root: Chain, in_shape: tuple, out_shape: tuple):
        self.root, self.in_shape, self.out_shape = root, in_shape, out_shape
        self.relu_shapes = [relu.shape for relu in root.relus()]

    @property
    def num_relus(self) -> int:
        return len(self.relu_shapes)

    def prefix(self, index: int) -> Chain:
        """The nodes whose composition maps the input to the input of ReLU `index`."""
        return Chain(self.root.prefix(index))


def _batch_statistics(module: nn.Module) -> bool:
    """Does this BatchNorm normalise with the statistics of the batch (train mode, or no running ones)?"""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and (module.training or module.running_mean is None)


def _needs_batch(model: nn.Module) -> bool:
    return any(_batch_statistics(m) for m in model.modules())


def parse(model: nn.Module, x: torch.Tensor) -> Graph:
    """The engine's tree of `model` for inputs shaped like `x` ([B, *input])."""
    if not isinstance(model, nn.Sequential):
        raise UserError(f"the bounds take an nn.Sequential model, got {type(model).__name__}; "
                        f"build it from {SUPPORTED}.")
    batch = _needs_batch(model)  # BatchNorm in training mode: its statistics come from the clean batch
    try:
        root, y = _parse_chain(list(model), "", x if batch else x[:1].detach(), [0], batch)
    except RuntimeError as err:  # shape errors from torch inside the probe pass
        raise UserError(f"the model cannot take inputs of shape {tuple(x.shape[1:])}: {err}") from None
    except ValueError as err:  # a train-mode BatchNorm given one value per channel
        raise UserError(f"a BatchNorm in training mode needs a batch to take statistics from ({err}); pass more "
                        "than one input or call model.eval().") from None
    return Graph(root, tuple(x.shape[1:]), tuple(y.shape[1:]))
