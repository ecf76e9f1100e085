"""A FastAPI model server like the ones the tutorials write: joblib.load and a few routes.

It is the "your own container" of `examples/custom-fastapi.yaml`, and deliberately naive:
no batching, no metrics, and an exception from the model is a plain HTTP 500.

    PORT=8000 MODEL_PATH=/mnt/models uvicorn app:app --host 0.0.0.0 --port $PORT

MODEL_PATH is a model file, or a directory holding one `*.joblib` / `*.pkl` file. Its default,
/mnt/models, is where modelroll's fetch init container leaves the verified model (the file
keeps the name it has in the model URI, as KServe's storage initializer does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")


def model_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(p for p in path.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())
    if len(found) != 1:
        raise RuntimeError(
            f"expected one model file ({', '.join(MODEL_SUFFIXES)}) in {path}, found {found}"
        )
    return found[0]


MODEL_NAME = os.environ.get("MODEL_NAME", "model")
MODEL_VERSION = os.environ.get("MODEL_VERSION", "1")
model: Any = joblib.load(model_file(Path(os.environ.get("MODEL_PATH", "/mnt/models"))))

app = FastAPI(title="custom-fastapi")


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferInput]


class PredictRequest(BaseModel):
    instances: list[list[float]]


@app.get("/v2/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@app.get("/v2/health/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@app.get("/v2/models/{name}")
def metadata(name: str) -> dict[str, Any]:
    return {"name": name, "versions": [MODEL_VERSION], "platform": "sklearn-fastapi"}


@app.post("/v2/models/{name}/infer")
def infer(name: str, request: InferRequest) -> dict[str, Any]:
    if len(request.inputs) != 1:
        raise HTTPException(400, "expected one input")
    tensor = request.inputs[0]
    if tensor.datatype not in ("FP32", "FP64") or len(tensor.shape) != 2:
        raise HTTPException(400, "expected one FP32 or FP64 input of shape [N, F]")
    rows = np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape)
    predictions = model.predict(rows)  # an error here is the server's: HTTP 500
    return {
        "model_name": name,
        "model_version": MODEL_VERSION,
        "id": request.id,
        "outputs": [
            {
                "name": "predict",
                "shape": [len(predictions)],
                "datatype": "INT64" if predictions.dtype.kind in "iu" else "FP64",
                "data": predictions.tolist(),
            }
        ],
    }


@app.post("/v1/models/{name}:predict")
def predict(name: str, request: PredictRequest) -> dict[str, Any]:
    predictions = model.predict(np.asarray(request.instances, dtype=np.float64))
    return {"predictions": predictions.tolist()}
