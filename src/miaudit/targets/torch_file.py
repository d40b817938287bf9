"""TorchScript archives (torch.jit.save) and torch.export archives (.pt2) behind the Target protocol.

Neither format needs the model's Python class. Whole modules saved with torch.save are pickles of
that class and are not read here.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from miaudit.errors import InputError
from miaudit.models.contract import check_output_option, match_input_shape, one_line
from miaudit.targets.file_target import FileTarget


class TorchFileTarget(FileTarget):
    """A torch module read from a file; ``module`` (a ScriptModule or the exported program's
    GraphModule) is exposed for white-box attacks. Its forward returns a tensor [n, C]."""

    def __init__(self, name: str, module: Callable[[torch.Tensor], torch.Tensor], n_classes: int, **kwargs) -> None:
        super().__init__(name, n_classes, **kwargs)
        self.module = module

    def _run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.module(torch.from_numpy(x))
        if not isinstance(out, torch.Tensor):
            raise InputError(f"{self.name}: forward returns {type(out).__name__}, expected a tensor [n, classes]")
        return out.detach().float().numpy()


def _checked(target: TorchFileTarget, feature_shape: Sequence[int], output: str, probe: np.ndarray | None,
             ) -> TorchFileTarget:
    try:
        target.check(feature_shape, output, f"{target.name}: output", probe)
    except InputError:
        raise
    except Exception as err:  # a forward pass fails on records of this shape
        shape = "flattened records" if target.flatten else f"records of shape {tuple(feature_shape)}"
        raise InputError(f"{target.name}: a forward pass on {shape} fails ({one_line(err)})") from None
    return target


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def load_torchscript(path: str | Path, feature_shape: Sequence[int], n_classes: int, output: str = "auto",
                     probe: np.ndarray | None = None) -> TorchFileTarget:
    """The TorchScript module at ``path`` (torch.jit.load on CPU), checked by a forward pass on probe
    records of ``feature_shape`` (then on flattened records, for image data) giving [n, n_classes]."""
    path, output = _existing(path), check_output_option(output)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:  # torch raises RuntimeError or ValueError subclasses for unreadable archives
        raise InputError(f"{path.name}: not a TorchScript archive ({one_line(err)}); "
                         "save one with torch.jit.script(model).save(path)") from None
    reload = (load_torchscript, (str(path), tuple(feature_shape), int(n_classes)))
    target = TorchFileTarget(path.name, module, n_classes, reload=reload)
    if len(feature_shape) > 1:
        try:
            return _checked(target, feature_shape, output, probe)
        except InputError:
            target.flatten = True
            try:
                return _checked(target, feature_shape, output, probe)
            except InputError:
                target.flatten = False
    return _checked(target, feature_shape, output, probe)


def _user_input_shape(program, name: str) -> list:
    """[batch, *record dims] of the exported program's one user input (symbolic dims as str)."""
    user_inputs = list(program.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise InputError(f"{name}: takes {len(user_inputs)} inputs, expected one input of records")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    value = node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name}: input {user_inputs[0]!r} is not a tensor")
    return [d if isinstance(d, int) else str(d) for d in value.shape]


def load_exported_program(path: str | Path, feature_shape: Sequence[int], n_classes: int, output: str = "auto",
                          probe: np.ndarray | None = None) -> TorchFileTarget:
    """The torch.export archive at ``path`` (torch.export.load): its input shape checked against
    ``feature_shape`` (a static batch size is honoured by padding), its output on probe records
    against ``n_classes``."""
    path, output = _existing(path), check_output_option(output)
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # torch raises many types for unreadable archives
        raise InputError(f"{path.name}: not a torch.export archive ({one_line(err)}); "
                         "save one with torch.export.save(torch.export.export(model, args), path)") from None
    declared = _user_input_shape(program, path.name)
    flatten, fixed_batch = match_input_shape(declared, feature_shape, f"{path.name}: input")
    reload = (load_exported_program, (str(path), tuple(feature_shape), int(n_classes)))
    target = TorchFileTarget(path.name, program.module(), n_classes, flatten=flatten, fixed_batch=fixed_batch,
                             reload=reload)
    return _checked(target, feature_shape, output, probe)
