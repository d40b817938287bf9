"""ONNX model files (inference with onnxruntime on CPU) behind the Target protocol."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from miaudit.errors import InputError
from miaudit.extras import require
from miaudit.models.contract import check_output_option, match_input_shape, one_line
from miaudit.targets.file_target import FileTarget

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


class OnnxTarget(FileTarget):
    """An ONNX classifier: one float input of records [n, *feature_shape] (or [n, d] flattened),
    one output [n, C] of logits or probabilities."""

    def __init__(self, name: str, session, input_name: str, input_dtype, output_name: str, n_classes: int,
                 **kwargs) -> None:
        super().__init__(name, n_classes, **kwargs)
        self.session, self.input_name, self.input_dtype = session, input_name, input_dtype
        self.output_name = output_name

    record_shape: tuple[int, ...] | None = None  # flat table records reshaped to the model's record shape

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.record_shape is not None:
            x = x.reshape(len(x), *self.record_shape)
        feed = {self.input_name: x.astype(self.input_dtype, copy=False)}
        return self.session.run([self.output_name], feed)[0]


def _output_name(session, name: str) -> str:
    outputs = session.get_outputs()
    if len(outputs) == 1:
        return outputs[0].name
    scores = [o for o in outputs if o.type in _FLOAT_TYPES and o.shape is not None and len(o.shape) == 2]
    if len(scores) != 1:
        listed = ", ".join(f"{o.name!r}" for o in outputs)
        raise InputError(f"{name}: {len(outputs)} outputs ({listed}) and not exactly one float output [n, classes]")
    return scores[0].name


def load_onnx(path: str | Path, feature_shape: Sequence[int], n_classes: int, output: str = "auto",
              probe: np.ndarray | None = None) -> OnnxTarget:
    """The ONNX model at ``path`` checked against records of ``feature_shape`` and ``n_classes``
    classes on probe records; output "auto" | "logits" | "probabilities" (auto: probabilities when
    every probe row is non-negative and sums to 1). One-line InputError naming any mismatch."""
    path, output = Path(path), check_output_option(output)
    name = path.name
    ort = require("onnxruntime", "onnx", field=name)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable files
        raise InputError(f"{name}: not an ONNX model onnxruntime can load ({one_line(err)})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        listed = ", ".join(f"{i.name!r}" for i in inputs)
        raise InputError(f"{name}: takes {len(inputs)} inputs ({listed}), expected one input of records")
    inp = inputs[0]
    if inp.type not in _FLOAT_TYPES:
        raise InputError(f"{name}: input {inp.name!r} is {inp.type}, expected a float tensor of records")
    declared = list(inp.shape or [])
    record_shape = None
    if len(feature_shape) == 1 and len(declared) > 2 and all(isinstance(d, int) and d > 0 for d in declared[1:]) \
            and int(np.prod(declared[1:])) == int(feature_shape[0]):  # e.g. a CSV of an image model's pixels
        record_shape = tuple(int(d) for d in declared[1:])
    flatten, fixed_batch = match_input_shape(declared, record_shape or feature_shape, f"{name}: input {inp.name!r}")
    output_name = _output_name(session, name)
    target = OnnxTarget(name, session, inp.name, _FLOAT_TYPES[inp.type], output_name, n_classes,
                        flatten=flatten, fixed_batch=fixed_batch,
                        reload=(load_onnx, (str(path), tuple(feature_shape), int(n_classes))))
    target.record_shape = record_shape
    try:
        target.check(feature_shape, output, f"{name}: output {output_name!r}", probe)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{name}: inference on probe records fails ({one_line(err)})") from None
    return target
