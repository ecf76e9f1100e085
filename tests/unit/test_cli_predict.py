"""`modelroll predict`, HTTP half: real requests to a real runtime process.

The port-forward half (kubectl port-forward to a ready pod) needs pods that run, which
kwok's do not; it is exercised end to end only on real clusters (see docs/cli.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelroll.cli.main import app
from modelroll.cli.predict import load_data, send
from modelroll.inference import infer_path
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/unit is no package; the runtime helpers are in one
from tests.runtime.models import train_sklearn  # noqa: E402
from tests.runtime.runtime_process import RuntimeProcess  # noqa: E402

V2 = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                  "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}  # fmt: skip
V1 = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
runner = CliRunner()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("predict")
    model = train_sklearn(work / "model")
    process = RuntimeProcess(
        {
            "MODELROLL_MODEL_NAME": "iris",
            "MODELROLL_MODEL_URI": str(model.directory),
            "MODELROLL_MODEL_FORMAT": "sklearn",
            "MODELROLL_CACHE_DIR": str(work / "cache"),
            "MODELROLL_MODEL_DIR": str(work / "downloads"),
            "MODELROLL_TERMINATION_LOG": str(work / "termination-log"),
        },
        work / "runtime.log",
    ).start()
    try:
        process.wait_ready()
        yield f"http://127.0.0.1:{process.port}"
    finally:
        process.stop()


def test_paths_follow_the_protocol() -> None:
    assert infer_path("iris", "v2") == "/v2/models/iris/infer"
    assert infer_path("iris", "v1") == "/v1/models/iris:predict"


def test_data_is_inline_json_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(V1))
    assert load_data(f"@{path}") == V1 == load_data(json.dumps(V1))


def test_v2_and_v1_requests_get_the_runtimes_answer(runtime: str) -> None:
    v2 = send(runtime, "iris", "v2", V2)
    assert v2.status == 200
    assert v2.document()["outputs"][0]["data"] == [0, 2]
    v1 = send(runtime, "iris", "v1", V1)
    assert (v1.status, v1.document()) == (200, {"predictions": [0, 2]})


def test_an_error_answer_is_returned_not_raised(runtime: str) -> None:
    answer = send(runtime, "iris", "v2", {"inputs": "nonsense"})
    assert 400 <= answer.status < 500 and answer.body


def test_the_command_prints_the_json_answer(runtime: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["predict", "iris", "--url", runtime, "--protocol", "v1", "--data", json.dumps(V1)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"predictions": [0, 2]}
    bad = runner.invoke(app, ["predict", "iris", "--url", runtime, "--protocol", "v2", "-d", "{}"])
    assert bad.exit_code == 1 and "HTTP 4" in bad.output
    unreadable = runner.invoke(app, ["predict", "iris", "--url", runtime, "-d", "@/nonexistent"])
    assert unreadable.exit_code == 1 and "--data" in unreadable.output
