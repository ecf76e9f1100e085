"""KServe 0.21's sklearnserver, xgbserver and lgbserver: run with the Python of the KServe
venv (tests/support/peers.py), which has the KServe SDK from PyPI.

Those three servers are not published on PyPI, only as images, so their model classes are
copied here from kserve/kserve (python/{sklearnserver,xgbserver,lgbserver}/*/model.py,
Apache-2.0, The KServe Authors; the files have not changed since October 2025), with one
change: `Storage.download(model_dir)`, which for a local directory returns it unchanged, is
left out, so the venv needs no kserve-storage and its cloud clients. Everything else, the
file lookup, `get_predict_input`, the predict call and `get_predict_response`, is theirs.

usage: python kserve_server.py HTTP_PORT FORMAT:MODEL_NAME:MODEL_DIR...
(FORMAT is sklearn, xgboost or lightgbm; one server serves every model given)
"""

import logging
import os
import pathlib
import sys

import kserve
from kserve import Model
from kserve.errors import InferenceError, ModelMissingError
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import get_predict_input, get_predict_response


def _one_file(model_dir: str, extensions: str | tuple) -> str:
    model_files = []
    for file in os.listdir(model_dir):
        file_path = os.path.join(model_dir, file)
        if os.path.isfile(file_path) and file.endswith(extensions):
            model_files.append(file_path)
    if len(model_files) == 0:
        raise ModelMissingError(model_dir)
    elif len(model_files) > 1:
        raise RuntimeError(
            "More than one model file is detected, "
            f"Only one is allowed within model_dir: {model_files}"
        )
    return model_files[0]


class SKLearnModel(Model):  # type: ignore[misc]  # sklearnserver/model.py
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.name = name
        self.model_dir = model_dir
        self.ready = False

    def load(self) -> bool:
        import joblib

        self._model = joblib.load(
            pathlib.Path(_one_file(self.model_dir, (".joblib", ".pkl", ".pickle")))
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        try:
            instances = get_predict_input(payload)
            if os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(
                self._model, "predict_proba"
            ):
                result = self._model.predict_proba(instances)
            else:
                result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


class XGBoostModel(Model):  # type: ignore[misc]  # xgbserver/model.py
    def __init__(self, name: str, model_dir: str, nthread: int):
        super().__init__(name)
        self.name = name
        self.model_dir = model_dir
        self.nthread = nthread

    def load(self) -> bool:
        import xgboost as xgb

        with open(_one_file(self.model_dir, (".bst", ".json", ".ubj")), "rb") as f:
            model_bytes = f.read()
        self._booster = xgb.Booster(
            params={"nthread": self.nthread}, model_file=bytearray(model_bytes)
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        import xgboost as xgb

        try:
            instances = get_predict_input(payload)
            dmatrix = xgb.DMatrix(instances, nthread=self.nthread)
            result = self._booster.predict(dmatrix)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


class LightGBMModel(Model):  # type: ignore[misc]  # lgbserver/model.py
    def __init__(self, name: str, model_dir: str, nthread: int):
        super().__init__(name)
        self.name = name
        self.model_dir = model_dir
        self.nthread = nthread

    def load(self) -> bool:
        from lightgbm import Booster

        self._booster = Booster(
            params={"nthread": self.nthread}, model_file=_one_file(self.model_dir, ".bst")
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        try:
            instances = get_predict_input(payload, columns=self._booster.feature_name())
            result = self._booster.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


SERVERS = {"sklearn": SKLearnModel, "xgboost": XGBoostModel, "lightgbm": LightGBMModel}

if __name__ == "__main__":
    port = int(sys.argv[1])
    models = []
    for spec in sys.argv[2:]:
        kind, name, model_dir = spec.split(":", 2)
        model = (
            SERVERS[kind](name, model_dir)
            if kind == "sklearn"
            else SERVERS[kind](name, model_dir, nthread=1)
        )
        model.load()
        models.append(model)
    server = kserve.ModelServer(
        http_port=port, workers=1, enable_grpc=False, enable_latency_logging=False
    )
    # per-request access and trace logs off (a line each per request would cost KServe in
    # the benchmark); only now: ModelServer() configures logging anew, which turns them on
    for logger in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(logger).disabled = True
    server.start(models)
