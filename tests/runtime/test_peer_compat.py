"""The same requests against KServe 0.21 (sklearnserver, xgbserver, lgbserver), MLServer 1.7.1
(mlserver-sklearn, -xgboost, -lightgbm) and us, on the same model files, compared field by
field: V1 and V2, string labels, regression, a text pipeline, MLServer PandasCodec requests,
booster outputs, and the metadata endpoints.

Every difference that stays is in ALLOWED with its reason, and docs/runtime.md lists each
one. A test fails on a difference ALLOWED does not explain, and on an ALLOWED entry that no
longer happens. Numbers agree within 1e-9 relative; labels and strings exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.support.prerequisites import require_peers

from .peer_compare import Allowed, answer, differences, unexplained
from .peer_models import BUILDERS, PeerModel
from .peer_servers import PeerProcess, start_kserve, start_mlserver, start_ours
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

PEER_NAMES = ("kserve", "mlserver")
READY_TIMEOUT = 300  # 13 servers start at once; on two busy cores that takes minutes


@dataclass(frozen=True)
class Call:
    label: str
    method: str
    path: str  # "{name}" is the model's name
    peers: tuple[str, ...] = PEER_NAMES  # MLServer has no V1


def calls(kind: str) -> list[Call]:
    found = [
        Call("GET /v2/models/{name}", "GET", "/v2/models/{name}"),
        Call("GET /v2/models/{name}/ready", "GET", "/v2/models/{name}/ready"),
        Call("GET /v1/models/{name}", "GET", "/v1/models/{name}"),
    ]
    if kind != "mixed":  # one input per column: only named columns reach it
        found.append(Call("v1", "POST", "/v1/models/{name}:predict", ("kserve",)))
        found.append(Call("v2", "POST", "/v2/models/{name}/infer"))
    if kind in ("classifier", "frame", "mixed"):
        found.append(Call("v2-proba", "POST", "/v2/models/{name}/infer"))
    if kind in ("frame", "mixed"):
        found.append(Call("v2-pandas", "POST", "/v2/models/{name}/infer"))
        found.append(Call("v1-columns", "POST", "/v1/models/{name}:predict", ("kserve",)))
        found.append(Call("v1-records", "POST", "/v1/models/{name}:predict", ("kserve",)))
    return found


SERVER_CALLS = [
    Call("GET /", "GET", "/"),
    Call("GET /v2", "GET", "/v2"),
    Call("GET /v1/models", "GET", "/v1/models"),
    Call("GET /v2/models", "GET", "/v2/models"),
    Call("POST /v2/repository/index", "POST", "/v2/repository/index"),
    # three features where iris has four: the client's error
    Call("v1-bad-width", "POST", "/v1/models/{name}:predict", ("kserve",)),
    Call("v2-bad-width", "POST", "/v2/models/{name}/infer"),
]
BAD_CALLS = ("v1-bad-width", "v2-bad-width")


def body_of(call: Call, model: PeerModel) -> Any:
    rows = model.rows
    if call.method == "GET":
        return None
    if call.label == "POST /v2/repository/index":
        return {}
    if call.label in BAD_CALLS:
        rows = np.asarray(rows)[:, :3]
    if call.label == "v1-columns":  # KServe reads each instance as pandas.DataFrame(instance)
        return {"instances": [{c: rows[c].tolist() for c in rows.columns}]}
    if call.label == "v1-records":
        return {"instances": rows.to_dict(orient="records")}
    if call.label == "v2-pandas":  # MLServer's PandasCodec.encode_request
        return pandas_request(rows, call.label == "v2-proba")
    if model.kind == "mixed" and call.label == "v2-proba":
        return pandas_request(rows, True)
    values = rows if model.kind == "text" else np.asarray(rows).tolist()
    if call.label.startswith("v1"):
        return {"instances": values}
    if model.kind == "text":
        tensor = {"name": "input-0", "shape": [len(rows)], "datatype": "BYTES", "data": rows}
    else:
        shape = list(np.shape(values))
        tensor = {"name": "input-0", "shape": shape, "datatype": "FP64",
                  "data": np.ravel(values).tolist()}  # fmt: skip
    body: dict[str, Any] = {"id": "peer-compat", "inputs": [tensor]}
    if call.label == "v2-proba":
        body["outputs"] = [{"name": "predict_proba"}]
    return body


def pandas_request(rows: Any, proba: bool = False) -> dict[str, Any]:
    """What MLServer's PandasCodec.encode_request sends: one input per column, BYTES for
    strings, the request marked content_type "pd"."""
    from pandas.api.types import is_numeric_dtype

    inputs = [{"name": c, "shape": [len(rows), 1],
               "datatype": "FP64" if is_numeric_dtype(rows[c]) else "BYTES",
               "data": rows[c].tolist()} for c in rows.columns]  # fmt: skip
    body: dict[str, Any] = {"id": "peer-compat", "parameters": {"content_type": "pd"},
                            "inputs": inputs}  # fmt: skip
    if proba:
        body["outputs"] = [{"name": "predict_proba"}]
    return body


# fmt: off
_V2_IDENTITY = [
    Allowed("kserve", "v2*", ("*",), "body.model_version",
            "KServe answers null where no version is set; we answer MODELROLL_MODEL_VERSION "
            "(default \"1\")"),
    Allowed("kserve", "v2*", ("*",), "body.parameters",
            "KServe answers \"parameters\": null; we leave the optional field out"),
    Allowed("mlserver", "v2*", ("*",), "body.model_version",
            "MLServer leaves model_version out where no version is set; we answer "
            "MODELROLL_MODEL_VERSION (default \"1\")"),
    Allowed("mlserver", "v2*", ("*",), "body.parameters",
            "MLServer answers \"parameters\": {}; we leave the optional field out"),
]
_KSERVE_V2_OUTPUT = [
    Allowed("kserve", "v2", ("*",), "body.outputs[0].name",
            "KServe names its one output output-0; we use MLServer's names (predict, "
            "predict_proba) so that MLServer clients work"),
    Allowed("kserve", "v2", ("*",), "body.outputs[0].parameters",
            "KServe answers \"parameters\": null; we answer MLServer's {\"content_type\": "
            "\"np\"}"),
    Allowed("kserve", "v2", ("iris", "linear", "frame", "xgb-reg", "lgb-reg"), "body.outputs[0].shape",
            "KServe answers [N] for one value per row; we answer [N, 1] as MLServer's "
            "NumpyCodec does"),
    Allowed("kserve", "v2-pandas", ("*",), "body.outputs[0]",
            "the V2 output differences above (name output-0, [N], parameters null)"),
    Allowed("kserve", "v2", ("?gb-multi",), "body.outputs[0]",
            "KServe's xgbserver and lgbserver answer booster.predict (probabilities) as "
            "output-0; our V2 predict is the label, as MLServer's XGBoost runtime answers, "
            "and the probabilities are predict_proba"),
    Allowed("kserve", "v2", ("?gb-binary",), "body.outputs[0]",
            "KServe's xgbserver and lgbserver answer booster.predict (P(class 1), [N]) as "
            "output-0; our V2 predict is the label and predict_proba the probabilities"),
    Allowed("kserve", "v2-proba", ("*",), "status",
            "KServe serves one output, output-0, and refuses a request for predict_proba "
            "with 400; we answer it as MLServer does"),
    Allowed("kserve", "v2", ("species",), "status",
            "KServe's V2 fails with 500 (\"decoding str is not supported\") on string labels; "
            "we answer them as BYTES, as MLServer does"),
    Allowed("kserve", "v2", ("text",), "status",
            "KServe's V2 fails with 500 (\"decoding str is not supported\") on BYTES inputs; "
            "we read them as strings, as MLServer does"),
]
_MLSERVER_LIGHTGBM = [
    Allowed("mlserver", "v2", ("lgb-multi",), "body.outputs[0]",
            "mlserver-lightgbm answers booster.predict (probabilities) as predict; our "
            "predict is the label for every format, as mlserver-sklearn and -xgboost answer, "
            "and the probabilities are predict_proba"),
    Allowed("mlserver", "v2", ("lgb-binary",), "body.outputs[0]",
            "mlserver-lightgbm answers booster.predict (P(class 1), [N, 1]) as predict; our "
            "predict is the label, and predict_proba has both columns"),
    Allowed("mlserver", "v2-proba", ("lgb-multi",), "body.outputs[0].name",
            "mlserver-lightgbm ignores the requested outputs and answers predict; the "
            "values are the same probabilities"),
    Allowed("mlserver", "v2-proba", ("lgb-binary",), "body.outputs[0]",
            "mlserver-lightgbm ignores the requested outputs and answers predict, "
            "P(class 1) as [N, 1]; our predict_proba has both columns, [N, 2]"),
]
_METADATA = [
    *[Allowed("kserve", "GET /v2/models/{name}", ("*",), f"body.{field}",
              "KServe's model servers declare no metadata (versions null, platform \"\", no "
              "inputs or outputs, no parameters); we declare the model's versions, platform, "
              "typed inputs and outputs, and the compiled-path evidence in parameters")
      for field in ("versions", "platform", "inputs", "outputs", "parameters")],
    *[Allowed("mlserver", "GET /v2/models/{name}", ("*",), f"body.{field}",
              "MLServer declares nothing model-settings.json does not tell it (versions [], "
              "platform \"\", no inputs or outputs, parameters {}); we declare them from the "
              "model")
      for field in ("versions", "platform", "inputs", "outputs", "parameters")],
    Allowed("mlserver", "GET /v2/models/{name}/ready", ("*",), "body",
            "MLServer answers the status alone, with an empty body; we answer KServe's "
            "{\"name\", \"ready\"} with it"),
    Allowed("mlserver", "GET /v1/models/{name}", ("*",), "status",
            "MLServer has no V1 routes (404); we answer KServe's V1 model status"),
    Allowed("kserve", "GET /v2", ("*",), "body",
            "the server's own name, version and extensions (KServe: model_repository_"
            "extension; ours: binary_tensor_data)"),
    Allowed("mlserver", "GET /v2", ("*",), "body",
            "the server's own name, version and extensions (MLServer lists none; ours: "
            "binary_tensor_data)"),
    Allowed("mlserver", "GET /", ("*",), "status",
            "MLServer has no KServe liveness route (404); we answer KServe's {\"status\": "
            "\"alive\"}"),
    Allowed("mlserver", "GET /v?/models", ("*",), "status",
            "MLServer has no model listing (404; it has POST /v2/repository/index); we "
            "answer KServe's {\"models\": [...]}"),
    Allowed("mlserver", "POST /v2/repository/index", ("*",), "body[0].version",
            "MLServer leaves version out where none is set; we answer MODELROLL_MODEL_VERSION"),
    Allowed("kserve", "v1-records", ("*",), "status",
            "KServe reads each instance with pandas.DataFrame(instance), which refuses a "
            "{column: value} record (500, \"If using all scalar values, you must pass an "
            "index\"); we take records as rows, and KServe's {column: [values]} too"),
    Allowed("kserve", "v?-bad-width", ("*",), "status",
            "a request the model cannot take is the client's error: we answer 400 with what "
            "is wrong; KServe answers 500"),
    Allowed("mlserver", "v2-bad-width", ("*",), "status",
            "a request the model cannot take is the client's error: we answer 400 with what "
            "is wrong; MLServer answers 500 Internal Server Error"),
    Allowed("kserve", "POST /v2/repository/index", ("*",), "status",
            "KServe has no repository index route (404); we answer Triton's and MLServer's"),
]
# fmt: on
ALLOWED = [*_V2_IDENTITY, *_KSERVE_V2_OUTPUT, *_MLSERVER_LIGHTGBM, *_METADATA]


@dataclass
class Servers:
    models: dict[str, PeerModel]
    ours: dict[str, RuntimeProcess]
    peers: dict[str, PeerProcess]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    require_peers("the peer-compatibility tests")
    root = tmp_path_factory.mktemp("peers")
    models = {name: build(root / "models" / name) for name, (_, build) in BUILDERS.items()}
    logs = root / "logs"
    logs.mkdir()
    peers = {
        "kserve": start_kserve(list(models.values()), logs),
        "mlserver": start_mlserver(list(models.values()), logs),
    }
    ours = {name: start_ours(model, logs, root / "cache") for name, model in models.items()}
    try:
        for server in [*peers.values(), *ours.values()]:
            server.wait_ready(READY_TIMEOUT)
        for name in models:  # the peers load their models after they say they are ready
            for peer in peers.values():
                peer._wait(
                    lambda p=peer, n=name: p.get(f"/v2/models/{n}/ready").status == 200,
                    READY_TIMEOUT,
                    f"serving {name}",
                )
        yield Servers(models, ours, peers)
    finally:
        for server in [*peers.values(), *ours.values()]:
            server.stop()


def ask(server: RuntimeProcess, call: Call, model: PeerModel) -> dict[str, Any]:
    path = call.path.replace("{name}", model.name)
    body = body_of(call, model)
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    found = answer(server.request(call.method, path, data, headers))
    if call.label in ("GET /v1/models", "GET /v2/models") and found["status"] == 200:
        # a peer here serves every model of the suite, we serve one: compare our entry
        found["body"]["models"] = [m for m in found["body"]["models"] if m == model.name]
    if call.label == "POST /v2/repository/index" and found["status"] == 200:
        found["body"] = [e for e in found["body"] if e["name"] == model.name]
    return found


def assert_explained(ours: dict[str, Any], theirs: dict[str, Any], peer: str, call: str,
                     model: str) -> None:  # fmt: skip
    found = differences(ours, theirs)
    left, unused = unexplained(found, ALLOWED, peer, call, model)
    assert not left, f"{peer} {call} {model}: unexplained differences {left}"
    assert not unused, f"{peer} {call} {model}: allowed differences that no longer occur {unused}"


MODEL_CASES = [
    pytest.param(name, call, peer, id=f"{peer}-{name}-{call.label}")
    for name, (kind, _) in BUILDERS.items()
    for call in calls(kind)
    for peer in call.peers
]


@pytest.mark.parametrize(("name", "call", "peer"), MODEL_CASES)
def test_model_calls_answer_as_the_peers_do(
    servers: Servers, name: str, call: Call, peer: str
) -> None:
    model = servers.models[name]
    ours = ask(servers.ours[name], call, model)
    theirs = ask(servers.peers[peer], call, model)
    assert ours["status"] == 200, ours
    assert_explained(ours, theirs, peer, call.label, name)


SERVER_CASES = [
    pytest.param(call, peer, id=f"{peer}-{call.label}")
    for call in SERVER_CALLS
    for peer in call.peers
]


@pytest.mark.parametrize(("call", "peer"), SERVER_CASES)
def test_server_endpoints_answer_as_the_peers_do(servers: Servers, call: Call, peer: str) -> None:
    model = servers.models["iris"]
    ours = ask(servers.ours["iris"], call, model)
    theirs = ask(servers.peers[peer], call, model)
    assert ours["status"] == (400 if call.label in BAD_CALLS else 200), ours
    assert_explained(ours, theirs, peer, call.label, "iris")


def test_pandas_columns_are_matched_by_name_on_the_compiled_path(servers: Servers) -> None:
    """The frame model is served as a float64 graph, which takes one matrix: columns sent by
    name must be stacked in the model's order, not the request's. The peers hand the
    request's order to scikit-learn, which refuses it (500); we answer what the native
    model answers on the columns by name."""
    model = servers.models["frame"]
    ours = servers.ours["frame"]
    assert ours.get("/v2/models/frame").json()["parameters"]["backend"] == "onnx"
    rows = model.rows
    reordered = rows[list(reversed(rows.columns))]
    native = _native(model).predict(rows).tolist()
    stacked_wrong = _native(model).predict(reordered.to_numpy()).tolist()
    assert stacked_wrong != native  # the rows tell the two orders apart
    call = Call("v2-pandas", "POST", "/v2/models/{name}/infer")
    response = ours.post_json("/v2/models/frame/infer", pandas_request(reordered))
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == native
    for peer in servers.peers.values():
        assert peer.post_json("/v2/models/frame/infer", pandas_request(reordered)).status == 500
        assert ask(peer, call, model)["status"] == 200  # in the model's order they answer
    # an unknown column is a 400 naming the model's columns, never a guess
    renamed = rows.rename(columns={rows.columns[0]: "unknown"})
    response = ours.post_json("/v2/models/frame/infer", pandas_request(renamed))
    assert response.status == 400 and "sepal_length" in response.json()["error"]


def _native(model: PeerModel) -> Any:
    import warnings

    import joblib

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return joblib.load(model.file)
