"""Models whose inputs are not a float matrix, served natively as KServe and MLServer serve
them: a text pipeline (TfidfVectorizer) taking V1 string instances and V2 BYTES, and a
ColumnTransformer pipeline fitted on a DataFrame with string and numeric columns, taking
MLServer's PandasCodec requests (one input per column, content_type "pd") and V1 records or
rows. Each answer is compared with the native model's predict; large bodies (decoded in the
runtime's child decoder) answer as small ones do."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from .conftest import StartRuntime
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

TEXTS = ["a good film", "a bad film", "good acting, good story", "bad acting and a dull story",
         "what a great day", "a terrible, dull day", "great fun", "terrible and bad"]  # fmt: skip
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"]
LARGE_BYTES = 64 * 1024  # above it, the runtime decodes a body in its child decoder


@pytest.fixture(scope="module")
def text_model(models_dir: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)
    directory = models_dir / "text"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    return directory, model


def frame() -> Any:
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "city": rng.choice(["paris", "oslo", "lima"], n),
        "age": rng.integers(18, 80, n).astype(float),
        "plan": rng.choice(["free", "pro"], n),
        "spend": rng.uniform(0, 1e4, n).round(2),
    })  # fmt: skip


@pytest.fixture(scope="module")
def frame_model(models_dir: Path) -> tuple[Path, Any]:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = frame()
    y = (x["spend"] > 5000) ^ (x["city"] == "oslo")
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ("numbers", StandardScaler(), ["age", "spend"]),
    ])  # fmt: skip
    model = make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(x, y)
    directory = models_dir / "frame"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    return directory, model


def serve(start: StartRuntime, directory: Path) -> RuntimeProcess:
    return start(MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn")


def bytes_input(texts: list[str]) -> dict[str, Any]:
    return {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}


def test_text_pipeline_becomes_ready_and_serves_natively(
    text_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    runtime = serve(start_runtime, text_model[0])
    metadata = runtime.get("/v2/models/model").json()
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}]
    compilation = metadata["parameters"]["compilation"]
    assert metadata["parameters"]["backend"] == "native"
    assert compilation["verdict"] == "NoConverter" and "strings" in compilation["reason"]


def test_text_pipeline_answers_v1_strings_and_v2_bytes(
    text_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = text_model
    runtime = serve(start_runtime, directory)
    texts = ["good story", "dull and bad", "unseen words entirely"]
    expected = model.predict(texts).tolist()
    response = runtime.post_json("/v1/models/model:predict", {"instances": texts})
    assert response.status == 200, response.body
    assert response.json() == {"predictions": expected}
    response = runtime.post_json("/v2/models/model/infer", {"inputs": [bytes_input(texts)]})
    assert response.status == 200, response.body
    by_name = {o["name"]: o for o in response.json()["outputs"]}
    assert by_name["predict"]["data"] == expected
    request = {"inputs": [bytes_input(texts)], "outputs": [{"name": "predict_proba"}]}
    (proba,) = runtime.post_json("/v2/models/model/infer", request).json()["outputs"]
    np.testing.assert_allclose(
        np.reshape(proba["data"], proba["shape"]), model.predict_proba(texts), rtol=1e-12
    )


def test_text_pipeline_takes_binary_bytes_as_tritonclient_sends_them(
    text_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = text_model
    runtime = serve(start_runtime, directory)
    texts = ["great fun", "terrible day, é"]
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = orjson.dumps({"inputs": [{
        "name": "text", "shape": [2, 1], "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
    }]})  # fmt: skip
    response = runtime.request(
        "POST", "/v2/models/model/infer", header + raw,
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    assert output["data"] == model.predict(texts).tolist()


def test_text_pipeline_refuses_numbers_with_400(
    text_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    runtime = serve(start_runtime, text_model[0])
    response = runtime.post_json("/v1/models/model:predict", {"instances": [1.0, 2.0]})
    assert response.status == 400, response.body
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 400 and "strings" in response.json()["error"]


def pandas_request(rows: Any) -> dict[str, Any]:
    """What MLServer's PandasCodec.encode_request gives: one input per column, BYTES for the
    string columns, the whole request marked content_type "pd"."""
    inputs = []
    for column in rows.columns:
        values = rows[column].tolist()
        datatype = "BYTES" if rows[column].dtype == object else "FP64"
        inputs.append({"name": column, "shape": [len(values), 1], "datatype": datatype,
                       "data": values})  # fmt: skip
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def test_dataframe_pipeline_answers_pandas_codec_requests(
    frame_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = frame_model
    runtime = serve(start_runtime, directory)
    rows = frame().iloc[::7].astype({"city": object, "plan": object})
    response = runtime.post_json("/v2/models/model/infer", pandas_request(rows))
    assert response.status == 200, response.body
    (output,) = response.json()["outputs"]
    assert output["data"] == model.predict(rows).tolist()
    # the columns in another order, as a dict's order may give them: matched by name
    reordered = rows[["spend", "plan", "age", "city"]]
    response = runtime.post_json("/v2/models/model/infer", pandas_request(reordered))
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == model.predict(rows).tolist()
    metadata = runtime.get("/v2/models/model").json()
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("city", "BYTES"), ("age", "FP64"), ("plan", "BYTES"), ("spend", "FP64"),
    ]  # fmt: skip


def test_dataframe_pipeline_answers_v1_records_and_rows(
    frame_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    directory, model = frame_model
    runtime = serve(start_runtime, directory)
    rows = frame().iloc[1::9]
    expected = model.predict(rows).tolist()
    records = rows.to_dict(orient="records")
    response = runtime.post_json("/v1/models/model:predict", {"instances": records})
    assert response.status == 200, response.body
    assert response.json() == {"predictions": expected}
    lists = rows.values.tolist()
    response = runtime.post_json("/v1/models/model:predict", {"instances": lists})
    assert response.status == 200, response.body
    assert response.json() == {"predictions": expected}
    response = runtime.post_json("/v1/models/model:predict", {"instances": [{"city": "oslo"}]})
    assert response.status == 400 and "age" in response.json()["error"]


def test_large_bodies_of_strings_answer_as_small_ones(
    text_model: tuple[Path, Any], frame_model: tuple[Path, Any], start_runtime: StartRuntime
) -> None:
    text_dir, text = text_model
    runtime = serve(start_runtime, text_dir)
    texts = [TEXTS[i % len(TEXTS)] + f" {i}" for i in range(4000)]
    body = {"inputs": [bytes_input(texts)]}
    assert len(orjson.dumps(body)) > LARGE_BYTES
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == text.predict(texts).tolist()
    response = runtime.post_json("/v1/models/model:predict", {"instances": texts})
    assert response.json() == {"predictions": text.predict(texts).tolist()}

    frame_dir, frame_pipeline = frame_model
    runtime = serve(start_runtime, frame_dir)
    import pandas as pd

    rows = pd.concat([frame()] * 60, ignore_index=True).astype({"city": object, "plan": object})
    body = pandas_request(rows)
    assert len(orjson.dumps(body)) > LARGE_BYTES
    response = runtime.post_json("/v2/models/model/infer", body)
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == frame_pipeline.predict(rows).tolist()
    records = {"instances": rows.to_dict(orient="records")}
    assert len(orjson.dumps(records)) > LARGE_BYTES
    response = runtime.post_json("/v1/models/model:predict", records)
    assert response.json() == {"predictions": frame_pipeline.predict(rows).tolist()}
