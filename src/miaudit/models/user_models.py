"""A user's model object -> a Target: fitted scikit-learn estimators and pipelines, torch modules
(TorchScript included), plain predict functions, or anything already answering the Target protocol.

Torch modules and predict functions may return logits or probabilities; which one is decided on the
first records they see (or said with ``output``), as for model files (models/contract.py).
"""
from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from miaudit.errors import InputError
from miaudit.models.contract import (
    as_logits,
    check_output_option,
    check_output_shape,
    one_line,
    probe_records,
    resolve_output,
    run_batched,
)
from miaudit.models.denormals import flush_denormals
from miaudit.models.target import Target
from miaudit.models.wrappers import SklearnTarget, TargetOutputs


class FunctionTarget(TargetOutputs):
    """A predict function ``fn(x float32 [n, ...]) -> [n, n_classes]`` logits or probabilities.

    With ``flatten`` the function receives records flattened to [n, d]. ``output``: "auto"
    (probabilities when the rows of the first outputs are probability vectors), "logits" or
    "probabilities"; ``output_kind`` holds the decision once made. Pickles only when fn does.
    """

    batch_size = 4096

    def __init__(self, name: str, fn: Callable[[np.ndarray], object], n_classes: int, output: str = "auto",
                 flatten: bool = False) -> None:
        self.name, self.fn, self.n_classes, self.flatten = name, fn, int(n_classes), bool(flatten)
        self.output = check_output_option(output)
        self.output_kind: str | None = None if output == "auto" else output

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self.fn(x)
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().float().cpu().numpy()
        return np.asarray(out)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """float64 [n, C]: the function's own outputs, shape- and finiteness-checked."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.flatten:
            x = x.reshape(len(x), -1)
        field = f"{self.name}: output"
        try:
            values = run_batched(self._run, x, self.batch_size)
        except InputError:
            raise
        except Exception as err:  # whatever the user's code raises on these records
            raise InputError(f"{self.name}: fails on records of shape {tuple(x.shape[1:])} ({one_line(err)})") from None
        values = check_output_shape(values, len(x), self.n_classes, field)
        if self.output_kind is None:
            self.output_kind = resolve_output(values, self.output, field)
        return values

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, C]: the logits, or log-probabilities (floored at 1e-12) for probability outputs."""
        values = self.raw_outputs(x)
        return as_logits(values, self.output_kind)


class TorchModuleTarget(FunctionTarget):
    """A torch module (nn.Module or TorchScript) in eval mode, run without gradients in batches;
    ``module`` is exposed for white-box attacks. TorchScript modules pickle through torch.jit.save."""

    batch_size = 1024

    def __init__(self, name: str, module, n_classes: int, output: str = "auto", flatten: bool = False) -> None:
        super().__init__(name, None, n_classes, output, flatten)
        self.module = module.eval()

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch


        with flush_denormals(), torch.inference_mode():
            out = self.module(torch.from_numpy(x))
        if not isinstance(out, torch.Tensor):
            raise InputError(f"{self.name}: forward returns {type(out).__name__}, expected a tensor [n, classes]")
        return out.detach().float().numpy()

    def __reduce__(self):
        if not is_script_module(self.module):
            return object.__reduce__(self)
        import torch

        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            torch.jit.save(self.module, buffer)
        args = (self.name, buffer.getvalue(), self.n_classes, self.output, self.output_kind, self.flatten)
        return _script_target, args


def _script_target(name: str, blob: bytes, n_classes: int, output: str, output_kind: str | None,
                   flatten: bool = False) -> TorchModuleTarget:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
    target = TorchModuleTarget(name, module, n_classes, output, flatten)
    target.output_kind = output_kind
    return target


def is_torch_module(obj) -> bool:
    """True for a torch nn.Module (TorchScript modules included); never imports torch itself."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def is_script_module(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.jit.ScriptModule)


def is_sklearn_estimator(obj) -> bool:
    """True for scikit-learn style estimators (get_params and fit), fitted or not."""
    if isinstance(obj, type):
        return False
    return callable(getattr(obj, "get_params", None)) and callable(getattr(obj, "fit", None))


def _check_classes(estimator, name: str, n_classes: int) -> None:
    kind = type(estimator).__name__
    if not callable(getattr(estimator, "predict_proba", None)):
        raise InputError(f"{name}: {kind} has no predict_proba; an audit needs class probabilities")
    try:
        classes = np.asarray(estimator.classes_)
    except AttributeError:
        raise InputError(f"{name}: {kind} is not fitted (no classes_); fit it first") from None
    integral = np.issubdtype(classes.dtype, np.integer) or (
        np.issubdtype(classes.dtype, np.floating) and np.array_equal(classes, np.round(classes)))
    if classes.ndim != 1 or not integral or classes.min() < 0 or classes.max() >= n_classes:
        shown = ", ".join(map(str, classes.ravel()[:5])) + (", ..." if classes.size > 5 else "")
        raise InputError(f"{name}: {kind}'s classes_ ({shown}) are not labels in 0..{n_classes - 1}; "
                         "train it on the labels as miaudit encodes them")


def as_target(obj, n_classes: int, name: str | None = None, output: str = "auto",
              feature_shape: Sequence[int] | None = None, probe: np.ndarray | None = None) -> Target:
    """``obj`` as a Target for n_classes classes.

    A Target -> itself (its n_classes must match); a fitted scikit-learn estimator or Pipeline with
    predict_proba -> SklearnTarget (classes_ placed in n_classes columns; records flattened);
    a torch nn.Module or TorchScript module -> TorchModuleTarget; any other callable
    ``predict(x) -> [n, n_classes]`` -> FunctionTarget. ``output`` ("auto" | "logits" |
    "probabilities") says what a torch module or function returns. With ``probe`` (a few records,
    float32 [m, *feature_shape]) or ``feature_shape`` (seeded noise records of that shape), the
    object is run once, so a mismatch fails here. Anything else: InputError.
    """
    check_output_option(output)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise InputError(f"n_classes: must be an integer of at least 2, got {n_classes!r}")
    label = name or type(obj).__name__
    if is_torch_module(obj):
        target = TorchModuleTarget(label, obj, n_classes, output)
    elif isinstance(obj, Target) and not isinstance(obj, type):
        if int(obj.n_classes) != n_classes:
            raise InputError(f"{label}: gives {obj.n_classes} classes, the data has {n_classes}")
        return obj
    elif is_sklearn_estimator(obj) or callable(getattr(obj, "predict_proba", None)):
        if output == "logits":
            raise InputError(f"{label}: output: a scikit-learn estimator gives probabilities, not logits")
        _check_classes(obj, label, n_classes)
        target = SklearnTarget(label, obj, n_classes)
    elif callable(obj) and not isinstance(obj, type):
        target = FunctionTarget(name or getattr(obj, "__name__", label), obj, n_classes, output)
    else:
        raise InputError(f"target: a {type(obj).__module__}.{type(obj).__qualname__} is not a model; pass a fitted "
                         "scikit-learn estimator, a torch nn.Module, a function x -> [n, classes], or a Target")
    if probe is None and feature_shape is not None:

        probe = probe_records(tuple(int(d) for d in feature_shape))
    if probe is not None:
        try:
            target.logits(probe)
        except InputError:
            raise
        except Exception as err:  # the estimator raises on records of this width
            shape = tuple(np.shape(probe)[1:])
            raise InputError(f"{label}: fails on records of shape {shape} ({one_line(err)})") from None
    return target
