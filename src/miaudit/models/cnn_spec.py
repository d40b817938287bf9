"""CNN architectures as layer lists: the presets (cnn, small-cnn, mnist-cnn) and a spec a user writes.

Spec syntax (``--target cnn-spec:...``), layers separated by commas, names case-insensitive:
  conv(out, kernel, stride, padding)   padding: same (TensorFlow's: output = ceil(input / stride),
                                       the odd pixel padded after), valid, or a number of pixels
  maxpool(kernel, stride)              floor mode, no padding (stride defaults to kernel)
  dense(width)   relu   flatten
If the spec has no ``relu`` at all, a ReLU follows every conv and every dense layer but the last
(the protocols' convention); with any ``relu`` written, the layers are exactly those written. A
``flatten`` is inserted before the first dense layer when missing. The last layer must be a dense
layer whose width is the number of classes. Parameters are nn.Conv2d / nn.Linear's, in their layout
and default initialisation.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from miaudit.errors import InputError
from miaudit.models.cnn_names import PRESETS, SPEC_PREFIX


@dataclass(frozen=True)
class Conv:
    out: int
    kernel: int
    stride: int = 1
    padding: str | int = "valid"


@dataclass(frozen=True)
class MaxPool:
    kernel: int
    stride: int
    ceil: bool = False


@dataclass(frozen=True)
class Dense:
    width: int


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class Flatten:
    pass


Layer = Conv | MaxPool | Dense | ReLU | Flatten
_CALL = re.compile(r"\s*([A-Za-z]+)\s*(?:\(([^()]*)\))?\s*")


def parse_spec(text: str) -> tuple[Layer, ...]:
    """The layers of a spec string (without the ``cnn-spec:`` prefix); InputError on bad syntax."""
    layers: list[Layer] = []
    body = text.strip().strip("\"'")
    if not body:
        raise InputError("--target cnn-spec: empty layer list; e.g. cnn-spec:conv(16,5,1,same),maxpool(2,2),dense(10)")
    for part in _split_top(body):
        match = _CALL.fullmatch(part)
        if not match:
            raise InputError(f"--target cnn-spec: cannot read layer {part.strip()!r}; write e.g. conv(16,5,1,same)")
        layers.append(_layer(match.group(1).lower(), match.group(2), part.strip()))
    return _complete(layers)


def _split_top(body: str) -> list[str]:
    """body split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0 or depth > 1:
            raise InputError(f"--target cnn-spec: unbalanced parentheses in {body!r}")
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    if depth:
        raise InputError(f"--target cnn-spec: unbalanced parentheses in {body!r}")
    return [*parts, body[start:]]


def _ints(args: list[str], what: str, n_min: int, n_max: int) -> list[int]:
    if not n_min <= len(args) <= n_max:
        raise InputError(f"--target cnn-spec: {what} takes {n_min}-{n_max} arguments, got {len(args)}")
    try:
        values = [int(a) for a in args]
    except ValueError:
        raise InputError(f"--target cnn-spec: {what}: arguments must be integers, got {args}") from None
    if any(v < 1 for v in values):
        raise InputError(f"--target cnn-spec: {what}: sizes must be positive, got {values}")
    return values


def _layer(name: str, raw_args: str | None, text: str) -> Layer:
    args = [a.strip() for a in raw_args.split(",")] if raw_args and raw_args.strip() else []
    if name == "conv":
        if len(args) == 4:
            padding: str | int = args[3].lower()
            if padding not in ("same", "valid"):
                if not padding.isdigit():
                    raise InputError(f"--target cnn-spec: {text}: padding is same, valid or pixels, got {args[3]!r}")
                padding = int(padding)
            return Conv(*_ints(args[:3], text, 3, 3), padding=padding)
        if len(args) not in (2, 3):
            raise InputError(f"--target cnn-spec: {text} takes 2-4 arguments (out, kernel, stride, padding), "
                             f"got {len(args)}")
        return Conv(*_ints(args, text, 2, 3))
    if name in ("maxpool", "pool"):
        values = _ints(args, text, 1, 2)
        return MaxPool(values[0], values[-1])
    if name in ("dense", "linear", "fc"):
        return Dense(*_ints(args, text, 1, 1))
    if name in ("relu", "flatten"):
        if args:
            raise InputError(f"--target cnn-spec: {text}: {name} takes no arguments")
        return ReLU() if name == "relu" else Flatten()
    raise InputError(f"--target cnn-spec: unknown layer {name!r}; use conv, maxpool, dense, relu, flatten")


def _complete(layers: list[Layer]) -> tuple[Layer, ...]:
    """Implicit ReLUs (spec without any) and the flatten before the first dense layer."""
    if not any(isinstance(layer, Dense) for layer in layers) or not isinstance(layers[-1], Dense):
        raise InputError("--target cnn-spec: the last layer must be dense(number of classes)")
    if not any(isinstance(layer, ReLU) for layer in layers):
        with_relu: list[Layer] = []
        for i, layer in enumerate(layers):
            with_relu.append(layer)
            if isinstance(layer, (Conv, Dense)) and i < len(layers) - 1:
                with_relu.append(ReLU())
        layers = with_relu
    if not any(isinstance(layer, Flatten) for layer in layers):
        first = next(i for i, layer in enumerate(layers) if isinstance(layer, Dense))
        layers = [*layers[:first], Flatten(), *layers[first:]]
    flat = [i for i, layer in enumerate(layers) if isinstance(layer, Flatten)]
    if len(flat) > 1:
        raise InputError("--target cnn-spec: flatten appears more than once")
    if any(isinstance(layer, (Conv, MaxPool)) for layer in layers[flat[0]:]):
        raise InputError("--target cnn-spec: conv / maxpool after flatten")
    if any(isinstance(layer, Dense) for layer in layers[:flat[0]]):
        raise InputError("--target cnn-spec: dense before flatten")
    return tuple(layers)


def preset_layers(name: str, feature_shape: tuple[int, ...], n_classes: int) -> tuple[Layer, ...]:
    """The layers of target ``name`` (a preset or ``cnn-spec:...``) for images [C, H, W]."""
    if name.startswith(SPEC_PREFIX):
        return parse_spec(name[len(SPEC_PREFIX):])
    relu = ReLU()
    if name == "cnn":  # nets.TutorialCNN without dropout
        pool = MaxPool(2, 2, ceil=True)
        return (Conv(32, 3, 1, "same"), relu, Conv(32, 3, 1, "same"), relu, pool,
                Conv(64, 3, 1, "same"), relu, Conv(64, 3, 1, "same"), relu, pool,
                Flatten(), Dense(512), relu, Dense(n_classes))
    if name == "small-cnn":  # nets.SmallCNN without dropout
        kernel = 5 if min(feature_shape[1:]) >= 16 else 3
        pool = MaxPool(2, 2, ceil=True)
        return (Conv(16, kernel, 1, "same"), relu, pool, Conv(32, kernel, 1, "same"), relu, pool,
                Flatten(), Dense(128), relu, Dense(n_classes))
    if name == "mnist-cnn":  # the mnist-cnn benchmark protocol (../shared/design.md)
        return (Conv(16, 8, 2, "same"), relu, MaxPool(2, 1), Conv(32, 4, 2, "valid"), relu, MaxPool(2, 1),
                Flatten(), Dense(32), relu, Dense(n_classes))
    raise InputError(f"--target {name}: not a CNN; CNNs are {', '.join(PRESETS)} or {SPEC_PREFIX}<layers>")


def conv_padding(layer: Conv, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of a conv layer on inputs of size (H, W), F.pad's order."""
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if isinstance(layer.padding, int):
        return (layer.padding,) * 4
    pads = []
    for n in (size[1], size[0]):
        total = max((math.ceil(n / layer.stride) - 1) * layer.stride + layer.kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def pool_size(n: int, layer: MaxPool) -> int:
    """Output size of a max-pool layer on n pixels (nn.MaxPool2d's rule, ceil mode included)."""
    out = (n - layer.kernel + (layer.stride - 1 if layer.ceil else 0)) // layer.stride + 1
    if layer.ceil and (out - 1) * layer.stride >= n:  # the last window must start inside the input
        out -= 1
    return out


@dataclass(frozen=True)
class Plan:
    """The layers for one input shape: per layer its input shape and parameter shapes (nn layout)."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]  # input shape of every layer, then the output shape
    param_shapes: tuple[tuple[tuple[int, ...], tuple[int, ...]] | None, ...]

    @property
    def n_classes(self) -> int:
        return self.shapes[-1][0]


def plan_layers(layers: tuple[Layer, ...], feature_shape: tuple[int, ...], n_classes: int) -> Plan:
    """Shapes through the layers for images [C, H, W]; InputError when a layer does not fit."""
    if len(feature_shape) != 3:
        raise InputError(f"--target: a CNN needs images [channels, height, width], got features {feature_shape}")
    shape: tuple[int, ...] = tuple(int(s) for s in feature_shape)
    shapes, params = [shape], []
    for i, layer in enumerate(layers):
        where = f"--target: layer {i + 1} ({_describe(layer)}) on input {'x'.join(map(str, shape))}"
        param = None
        if isinstance(layer, Conv):
            left, right, top, bottom = conv_padding(layer, shape[1:])
            h = (shape[1] + top + bottom - layer.kernel) // layer.stride + 1
            w = (shape[2] + left + right - layer.kernel) // layer.stride + 1
            param = ((layer.out, shape[0], layer.kernel, layer.kernel), (layer.out,))
            shape = (layer.out, h, w)
        elif isinstance(layer, MaxPool):
            shape = (shape[0], pool_size(shape[1], layer), pool_size(shape[2], layer))
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            param = ((layer.width, shape[0]), (layer.width,))
            shape = (layer.width,)
        if min(shape) < 1:
            raise InputError(f"{where}: output would be empty")
        shapes.append(shape)
        params.append(param)
    if shape != (n_classes,):
        raise InputError(f"--target: the last layer gives {shape[0]} outputs, the data has {n_classes} classes")
    return Plan(tuple(layers), shapes[0], tuple(shapes), tuple(params))


def _describe(layer: Layer) -> str:
    if isinstance(layer, Conv):
        return f"conv({layer.out},{layer.kernel},{layer.stride},{layer.padding})"
    if isinstance(layer, MaxPool):
        return f"maxpool({layer.kernel},{layer.stride})"
    if isinstance(layer, Dense):
        return f"dense({layer.width})"
    return type(layer).__name__.lower()


def init_params(plan: Plan, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """One model's parameters drawn as nn.Conv2d / nn.Linear draw them (weight then bias, layer by layer,
    U(+-1/sqrt(fan_in)) each), from ``gen``; None for layers without parameters."""
    out = []
    for param in plan.param_shapes:
        if param is None:
            out.append(None)
            continue
        w_shape, b_shape = param
        bound = 1.0 / math.sqrt(math.prod(w_shape[1:]))
        weight = torch.empty(w_shape).uniform_(-bound, bound, generator=gen)
        bias = torch.empty(b_shape).uniform_(-bound, bound, generator=gen)
        out.append((weight, bias))
    return out


def build_module(plan: Plan) -> nn.Sequential:
    """The plain torch module of the plan (one model), e.g. for one-at-a-time training."""
    modules: list[nn.Module] = []
    for layer, shape in zip(plan.layers, plan.shapes, strict=False):
        if isinstance(layer, Conv):
            pads = conv_padding(layer, shape[1:])
            if any(pads):
                modules.append(nn.ZeroPad2d(pads))
            modules.append(nn.Conv2d(shape[0], layer.out, layer.kernel, layer.stride))
        elif isinstance(layer, MaxPool):
            modules.append(nn.MaxPool2d(layer.kernel, layer.stride, ceil_mode=layer.ceil))
        elif isinstance(layer, Dense):
            modules.append(nn.Linear(shape[0], layer.width))
        else:
            modules.append(nn.ReLU() if isinstance(layer, ReLU) else nn.Flatten())
    return nn.Sequential(*modules)
