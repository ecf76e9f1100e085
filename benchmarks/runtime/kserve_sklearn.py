"""KServe's sklearnserver, reduced to what it does for a joblib model: run in KServe's venv.

usage: python kserve_sklearn.py MODEL_NAME MODEL_FILE HTTP_PORT
"""

import logging
import sys

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.load()

    def load(self) -> bool:
        self._model = joblib.load(self.model_file)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    name, model_file, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # per-request access and trace logs off, as in RUNTIME-PERF.md's KServe measurement
    for logger in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(logger).disabled = True
    server = kserve.ModelServer(
        http_port=port, workers=1, enable_grpc=False, enable_latency_logging=False
    )
    server.start([SKLearnModel(name, model_file)])
