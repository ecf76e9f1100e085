"""A TensorFlow SavedModel (a directory with saved_model.pb; its `serving_default`
signature) or a Keras model file (.keras) to ONNX with tf2onnx, and the model's own answers
on the reference rows.

Imported by the packager only for TensorFlow models
(`pip install 'modelroll-runtime[package-tensorflow]'`). The graph takes a float32
[batch, features] matrix, with the batch dimension left free.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .conversion import (
    INPUT,
    SAVED_MODEL_FILE,
    TENSORFLOW,
    ConversionError,
    Converted,
    output_names,
    rename,
    unknown_operators,
    unsupported,
)
from .formats.base import Array

OPSET = 18


def require() -> None:
    """Raises ImportError, naming the module, when the extra is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no CPU feature banners per import
    for module in ("tensorflow", "tf2onnx", "onnx"):  # tf2onnx imports tensorflow: named after
        importlib.import_module(module)


def convert(model_file: Path, rows: Array) -> Converted:
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    signature = [tf.TensorSpec([None, rows.shape[1]], tf.float32, name="x")]
    call = tf.function(_callable(tf, model_file), input_signature=signature)
    expected = _answers(call, np.ascontiguousarray(rows, dtype=np.float32))
    names = output_names(len(expected))
    converter = f"tf2onnx {tf2onnx.__version__} (opset {OPSET})"
    try:
        onx, _ = tf2onnx.convert.from_function(call, input_signature=signature, opset=OPSET)
    except Exception as exc:
        raise ConversionError(
            f"tf2onnx cannot convert the model: {type(exc).__name__}: {exc}"
        ) from None
    # tf2onnx keeps an op it has no handler for as it is (and logs it): the graph would not load
    unknown = unknown_operators(onx)
    if unknown:
        raise unsupported(TENSORFLOW, unknown, converter)
    rename(onx, [INPUT], names)
    return Converted(
        onx, dict(zip(names, expected, strict=True)), f"tensorflow {tf.__version__}", converter
    )


def _callable(tf: Any, model_file: Path) -> Any:
    """The model as a function of one float32 matrix, answering a list of tensors."""
    try:
        if model_file.is_dir() and (model_file / SAVED_MODEL_FILE).is_file():
            loaded = tf.saved_model.load(str(model_file))
            served = loaded.signatures["serving_default"]
            (name,) = served.structured_input_signature[1]  # one input, by its name

            def call(x: Any) -> list[Any]:
                # `loaded` held here: the signature's variables die with it
                outputs = loaded.signatures["serving_default"](**{name: x})
                return [t for _, t in sorted(outputs.items())]

            return call
        import keras

        model = keras.models.load_model(str(model_file), compile=False)
        return lambda x: _as_list(model(x, training=False))
    except Exception as exc:
        raise ConversionError(
            f"cannot load {model_file.name} as a TensorFlow SavedModel (a directory with "
            f"{SAVED_MODEL_FILE} and a serving_default signature of one input) or a Keras model "
            f"(.keras): {type(exc).__name__}: {exc}"
        ) from None


def _as_list(result: Any) -> list[Any]:
    return list(result) if isinstance(result, list | tuple) else [result]


def _answers(call: Any, rows: Array) -> list[Array]:
    try:
        return [np.asarray(t) for t in call(rows)]
    except Exception as exc:
        raise ConversionError(
            f"the model cannot predict the reference rows as a float32 {list(rows.shape)} "
            f"matrix: {type(exc).__name__}: {exc}"
        ) from None
