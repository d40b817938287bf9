"""A fresh, seeded copy of a user's torch architecture: same layers, new parameters.

nn.Modules are deep-copied and every submodule with ``reset_parameters`` is reset. TorchScript modules
and torch.export programs (``ep.module()``) have no Python layer classes, so each parameter is
re-drawn by its layer's type name (TorchScript ``original_name``; torch.export ``nn_module_stack``)
with torch's default initialisation for Linear, Conv / ConvTranspose, the norm layers and Embedding.
Parameters of any other layer are re-drawn by a generic rule (kaiming-uniform weights, zero biases,
ones for 1-D weights), with a warning naming them. Nothing of the original parameters is kept.
"""
from __future__ import annotations

import copy
import io
import math
import re
import warnings

import torch
from torch import nn

from miaudit.errors import InputError

_FAN_IN_LAYERS = re.compile(r"^(Linear|LazyLinear|Bilinear|Conv[123]d|ConvTranspose[123]d|LazyConv\w*)$")
_NORM_LAYERS = re.compile(r"^(BatchNorm[123]d|SyncBatchNorm|LayerNorm|GroupNorm|InstanceNorm[123]d|RMSNorm)$")
_MODE_DEPENDENT_OPS = ("dropout", "batch_norm", "native_batch_norm")


def _fan_in(weight: torch.Tensor) -> int:
    return nn.init._calculate_fan_in_and_fan_out(weight)[0] if weight.dim() >= 2 else weight.numel()


def _redraw(layer_type: str, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
            padding_idx: int | None = None) -> bool:
    """Re-draw a layer's parameters in place as torch initialises ``layer_type``; False for unknown types."""
    weight = params.get("weight")
    if _FAN_IN_LAYERS.match(layer_type) and weight is not None:
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        if params.get("bias") is not None:
            bound = 1 / math.sqrt(_fan_in(weight)) if _fan_in(weight) > 0 else 0.0
            nn.init.uniform_(params["bias"], -bound, bound)
    elif _NORM_LAYERS.match(layer_type):
        if weight is not None:
            nn.init.ones_(weight)
        if params.get("bias") is not None:
            nn.init.zeros_(params["bias"])
        for name, buffer in buffers.items():
            (buffer.fill_(1) if name == "running_var" else buffer.zero_())
    elif layer_type == "Embedding" and weight is not None:
        nn.init.normal_(weight)
        if padding_idx is not None:
            weight[padding_idx].zero_()
    else:
        return False
    return True


def _generic(name: str, param: torch.Tensor) -> None:
    if param.dim() >= 2:
        nn.init.kaiming_uniform_(param, a=math.sqrt(5))
    elif name.rsplit(".", 1)[-1] == "weight":
        nn.init.ones_(param)
    else:
        nn.init.zeros_(param)


def _warn_generic(names: list[str]) -> None:
    if names:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        warnings.warn(f"reference models: parameters {shown} belong to no layer with a known initialisation; "
                      "re-drawn by a generic rule (kaiming-uniform weights, zero biases)", RuntimeWarning, stacklevel=4)


def _reset_python_module(module: nn.Module) -> None:
    covered: set[int] = set()
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
            covered.update(id(p) for p in sub.parameters())
    leftovers = [(n, p) for n, p in module.named_parameters() if id(p) not in covered]
    for name, param in leftovers:
        _generic(name, param)
    _warn_generic([n for n, _ in leftovers])


def _reset_by_layer_type(module: nn.Module, layer_types: dict[str, str]) -> None:
    """Re-draw every parameter of ``module`` given {submodule path: layer type name}."""
    unknown: list[str] = []
    for path, sub in module.named_modules():
        params = dict(sub.named_parameters(recurse=False))
        if not params:
            continue
        buffers = dict(sub.named_buffers(recurse=False))
        padding = getattr(sub, "padding_idx", None)
        if not _redraw(layer_types.get(path, ""), params, buffers, padding if isinstance(padding, int) else None):
            for name, param in params.items():
                _generic(f"{path}.{name}" if path else name, param)
                unknown.append(f"{path}.{name}" if path else name)
    _warn_generic(unknown)


def _copy_script_module(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        torch.jit.save(module, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location="cpu")


def exported_layer_types(graph_module: torch.fx.GraphModule) -> dict[str, str]:
    """{submodule path: layer class name} of an ``ExportedProgram.module()``, from the
    ``nn_module_stack`` of the nodes that read each parameter."""
    types: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            continue
        path, type_name = list(stack.values())[-1]
        for arg in node.all_input_nodes:
            if arg.op == "get_attr" and isinstance(arg.target, str) and "." in arg.target:
                owner = arg.target.rsplit(".", 1)[0]
                if owner == path or not path:
                    types.setdefault(owner, str(type_name).rsplit(".", 1)[-1])
    return types


def mode_dependent_ops(graph_module: torch.fx.GraphModule) -> list[str]:
    """Names of dropout / batch-norm ops in an exported graph (they behave differently in training)."""
    found = []
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and any(op in str(node.target) for op in _MODE_DEPENDENT_OPS):
            found.append(str(node.target))
    return sorted(set(found))


class ExportedModule(nn.Module):
    """An ``ExportedProgram.module()`` that can be trained: train() / eval() leave the graph alone
    (it refuses them), which is exact only for graphs without dropout or batch norm."""

    def __init__(self, graph_module: nn.Module) -> None:
        super().__init__()
        self.graph_module = graph_module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self


def trainable_export(program_or_module, name: str = "torch.export archive") -> ExportedModule:
    """A trainable ExportedModule from an ExportedProgram or its ``module()``; InputError when the
    graph holds dropout or batch norm, which an exported graph cannot switch into training mode."""
    graph_module = program_or_module.module() if hasattr(program_or_module, "graph_signature") else program_or_module
    if isinstance(graph_module, ExportedModule):
        return graph_module
    ops = mode_dependent_ops(graph_module)
    if ops:
        raise InputError(f"{name}: an exported graph with {', '.join(ops)} cannot be trained as reference models; "
                         "pass --reference-architecture or a TorchScript file")
    return ExportedModule(graph_module)


def is_exported(module) -> bool:
    """True for an ExportedProgram, its ``module()``, or an ExportedModule."""
    if isinstance(module, ExportedModule) or hasattr(module, "graph_signature"):
        return True
    return isinstance(module, torch.fx.GraphModule) and any(
        node.meta.get("nn_module_stack") for node in module.graph.nodes)


def fresh_copy(template, seed: int, name: str = "template"):
    """A copy of the torch ``template`` (nn.Module, TorchScript module, ExportedProgram or its
    module()) with every parameter re-drawn from ``seed``; the global torch RNG is left untouched."""
    if isinstance(template, torch.jit.ScriptModule):
        copy_ = _copy_script_module(template)
        types = {path: sub.original_name for path, sub in copy_.named_modules()}
        reset = lambda: _reset_by_layer_type(copy_, types)  # noqa: E731
    elif is_exported(template):
        copy_ = trainable_export(template, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecation, on deepcopy
            copy_ = ExportedModule(copy.deepcopy(copy_.graph_module))
        types = {f"graph_module.{p}": t for p, t in exported_layer_types(copy_.graph_module).items()}
        reset = lambda: _reset_by_layer_type(copy_, types)  # noqa: E731
    elif isinstance(template, nn.Module):
        copy_ = copy.deepcopy(template)
        reset = lambda: _reset_python_module(copy_)  # noqa: E731
    else:
        raise InputError(f"{name}: a {type(template).__name__} is not a torch module")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(seed))
        reset()
    return copy_
