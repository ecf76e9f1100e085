"""Run in a framework's venv (tests/support/frameworks.py), never imported by the suite:
train a small MLP on the rows given, save it the way users do, and write the framework's own
predictions on the rows, which the tests compare with what our runtime answers.

    python make_models.py torch|tensorflow OUT_DIR X.npy Y.npy

Writes into OUT_DIR, for torch: mlp.pt (TorchScript), mlp.pt2 (torch.export) and
unsupported.pt (an MLP whose forward takes an SVD, which ONNX has no operator for); for
tensorflow: mlp.keras, mlp_savedmodel/ (SavedModel) and unsupported_savedmodel/ (the same
SVD, as a SavedModel: a .keras file of a custom layer needs its code to load);
and expected-<model>.npy for each model that converts, its outputs on X.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def torch_models(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    import torch

    torch.manual_seed(0)

    class Mlp(torch.nn.Module):  # type: ignore[misc]  # torch is not in the dev venv
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 16), torch.nn.ReLU())
            self.out = torch.nn.Linear(16, 3)

        def forward(self, rows: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(self.hidden(rows)), dim=1)

    class Whitened(torch.nn.Module):  # type: ignore[misc]
        """An MLP on SVD-whitened hidden features (torch.linalg.svd: no ONNX operator)."""

        def __init__(self, mlp: Mlp) -> None:
            super().__init__()
            self.mlp = mlp

        def forward(self, rows: torch.Tensor) -> torch.Tensor:
            hidden = self.mlp.hidden(rows)
            singular = torch.linalg.svdvals(hidden)
            return self.mlp.out(hidden / singular.max())

    mlp = Mlp()
    features = torch.from_numpy(x.astype(np.float32))
    labels = torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.Adam(mlp.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(mlp(features)), labels)
        loss.backward()
        optimizer.step()
    mlp.eval()
    torch.jit.save(torch.jit.script(mlp), str(out / "mlp.pt"))
    batch = {0: torch.export.Dim("batch")}
    exported = torch.export.export(mlp, (features[:8],), dynamic_shapes=(batch,))
    torch.export.save(exported, str(out / "mlp.pt2"))
    torch.jit.save(torch.jit.script(Whitened(mlp).eval()), str(out / "unsupported.pt"))
    with torch.no_grad():
        expected = mlp(features).numpy()
    np.save(out / "expected-mlp.npy", expected)


def tensorflow_models(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    mlp.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    mlp.fit(x.astype(np.float32), y, epochs=60, batch_size=32, verbose=0)
    mlp.save(out / "mlp.keras")
    mlp.export(str(out / "mlp_savedmodel"), verbose=False)

    class Whitened(keras.layers.Layer):  # type: ignore[misc]  # nor is keras
        """Hidden features over their largest singular value (tf.linalg.svd: no ONNX operator)."""

        def call(self, hidden: tf.Tensor) -> tf.Tensor:
            singular = tf.linalg.svd(hidden, compute_uv=False)
            return hidden / tf.reduce_max(singular)

    inputs = keras.Input((x.shape[1],))
    hidden = Whitened()(mlp.layers[0](inputs))
    unsupported = keras.Model(inputs, mlp.layers[1](hidden))
    unsupported.export(str(out / "unsupported_savedmodel"), verbose=False)
    np.save(out / "expected-mlp.npy", np.asarray(mlp(x.astype(np.float32), training=False)))


if __name__ == "__main__":
    framework, directory, x_file, y_file = sys.argv[1:5]
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    make = torch_models if framework == "torch" else tensorflow_models
    make(target, np.load(x_file), np.load(y_file))
