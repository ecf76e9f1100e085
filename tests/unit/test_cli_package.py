"""`modelroll package` on real scikit-learn, XGBoost and LightGBM models, with CSV and .npy
reference data, and the errors a user must be able to act on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelroll.cli.main import app
from modelroll_runtime import package
from modelroll_runtime.formats import FORMATS
from typer.testing import CliRunner

runner = CliRunner()
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def write_csv(
    path: Path, x: np.ndarray, names: list[str], extra: dict[str, list[Any]] | None = None
) -> Path:
    extra = extra or {}
    lines = [",".join([*names, *extra])]
    for i, row in enumerate(x):
        lines.append(
            ",".join([*(repr(float(v)) for v in row), *(str(c[i]) for c in extra.values())])
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def sklearn_file(tmp_path: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    path = tmp_path / "classifier.joblib"
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path)
    return path


def xgboost_file(tmp_path: Path) -> Path:
    import xgboost

    x, y = iris()
    booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y),
        num_boost_round=5,
    )
    path = tmp_path / "booster.json"
    booster.save_model(str(path))
    return path


def lightgbm_file(tmp_path: Path) -> Path:
    import lightgbm

    x, y = iris()
    booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbose": -1,
         "num_threads": 1, "min_data_in_leaf": 5},
        lightgbm.Dataset(x, label=y),
        num_boost_round=5,
    )  # fmt: skip
    path = tmp_path / "booster.txt"
    booster.save_model(str(path))
    return path


def package_(*args: str) -> Any:
    return runner.invoke(app, ["package", *args])


def check_manifest(directory: Path) -> dict[str, Any]:
    manifest = json.loads((directory / "manifest.json").read_text())
    digest = hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    assert (directory / "model.sha256").read_text() == digest + "\n"
    for name, entry in manifest["files"].items():
        data = (directory / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    listed = {*manifest["files"], "manifest.json", "model.sha256"}
    assert listed == {p.name for p in directory.iterdir()}
    assert package.verify(directory, digest).digest == digest
    return dict(manifest)


def test_a_sklearn_model_with_csv_reference_rows_becomes_a_verified_package(tmp_path: Path) -> None:
    x, y = iris()
    reference = write_csv(tmp_path / "train.csv", x, COLUMNS, {"species": y.tolist()})
    out = tmp_path / "pkg"
    result = package_(str(sklearn_file(tmp_path)), "--reference", str(reference), "--output",
                      str(out), "--target", "species")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = check_manifest(out)
    assert manifest["format"] == "sklearn" and manifest["onnx"] == "model.onnx"
    assert manifest["model"] == "model.joblib"
    assert (
        f"sha256 (spec.model.sha256): {(out / 'model.sha256').read_text().strip()}" in result.output
    )
    compilation = json.loads((out / "compilation.json").read_text())
    assert compilation["verdict"] == "Exact" and compilation["reference_rows"] == 150
    schema = json.loads((out / "schema.json").read_text())
    assert [f["name"] for f in schema["features"]] == COLUMNS
    assert schema["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    profile = json.loads((out / "profile.json").read_text())
    assert profile["rows"] == 150 and [f["name"] for f in profile["features"]] == COLUMNS
    for feature in profile["features"]:
        assert feature["edges"][0] == x[:, feature["index"]].min()
        assert feature["edges"][-1] == x[:, feature["index"]].max()
        assert sum(feature["counts"]) == 150 and len(feature["bins"]) == len(feature["edges"]) + 1
    assert profile["prediction"]["kind"] == "classes"
    bins = profile["prediction"]["bins"]  # by frequency, then "__other__"
    assert sorted(bins[:-1]) == ["0", "1", "2"] and bins[-1] == "__other__"
    counts = profile["prediction"]["counts"]
    assert counts == [*sorted(counts[:-1], reverse=True), 0] and sum(counts) == 150
    np.testing.assert_array_equal(np.load(out / "reference.npy"), x)


def test_parquet_reference_rows_give_the_same_package_as_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = iris()
    table = pa.table({**{c: x[:, i] for i, c in enumerate(COLUMNS)}, "species": y})
    pq.write_table(table, tmp_path / "train.parquet")
    csv = write_csv(tmp_path / "train.csv", x, COLUMNS, {"species": y.tolist()})
    model = str(sklearn_file(tmp_path))
    for reference, out in ((tmp_path / "train.parquet", "pq"), (csv, "csv")):
        result = package_(model, "--reference", str(reference), "--output",
                          str(tmp_path / out), "--target", "species")  # fmt: skip
        assert result.exit_code == 0, result.output
        check_manifest(tmp_path / out)
    for name in ("profile.json", "schema.json", "reference.npy"):
        assert (tmp_path / "pq" / name).read_bytes() == (tmp_path / "csv" / name).read_bytes()


def test_an_xgboost_regressor_with_npy_rows_gets_prediction_quantile_bins(tmp_path: Path) -> None:
    x, _ = iris()
    np.save(tmp_path / "rows.npy", x)
    out = tmp_path / "pkg"
    result = package_(str(xgboost_file(tmp_path)), "--reference", str(tmp_path / "rows.npy"),
                      "--output", str(out), "--bins", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = check_manifest(out)
    assert manifest["format"] == "xgboost" and manifest["model"] == "model.json"
    profile = json.loads((out / "profile.json").read_text())
    assert [f["name"] for f in profile["features"]] == ["f0", "f1", "f2", "f3"]
    assert all(len(f["edges"]) <= 6 for f in profile["features"])
    assert (
        profile["prediction"]["kind"] == "numeric" and sum(profile["prediction"]["counts"]) == 150
    )
    verdict = json.loads((out / "compilation.json").read_text())["verdict"]
    assert f"({verdict})" in result.output
    assert (out / "model.onnx").exists() == (manifest["onnx"] == "model.onnx")


def test_a_lightgbm_model_with_a_categorical_column(tmp_path: Path) -> None:
    x, _ = iris()
    x = x.copy()
    x[:, 3] = np.round(x[:, 3])  # petal width in whole cm: a code, profiled by value
    reference = write_csv(tmp_path / "rows.csv", x, COLUMNS)
    out = tmp_path / "pkg"
    result = package_(str(lightgbm_file(tmp_path)), "--reference", str(reference), "--output",
                      str(out), "--categorical", "petal_width")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert check_manifest(out)["model"] == "model.txt"
    profile = json.loads((out / "profile.json").read_text())
    coded = profile["features"][3]
    assert coded["kind"] == "categorical" and coded["bins"][-1] == "__other__"
    assert sorted(coded["bins"][:-1]) == ["0", "1", "2"]
    assert sum(coded["counts"]) == 150 and coded["counts"][-1] == 0
    schema = json.loads((out / "schema.json").read_text())
    assert [f["categorical"] for f in schema["features"]] == [False, False, False, True]


def test_a_model_whose_name_does_not_tell_its_format_needs_format(tmp_path: Path) -> None:
    x, _ = iris()
    np.save(tmp_path / "rows.npy", x)
    model = sklearn_file(tmp_path).rename(tmp_path / "model.bin")
    result = package_(
        str(model), "--reference", str(tmp_path / "rows.npy"), "--output", str(tmp_path / "o")
    )
    assert result.exit_code == 1
    assert "cannot tell the format of model.bin from its name; pass --format" in result.output
    ok = package_(str(model), "--reference", str(tmp_path / "rows.npy"), "--output",
                  str(tmp_path / "o"), "--format", "sklearn")  # fmt: skip
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("wrong", [f for f in FORMATS if f != "sklearn"])
def test_the_wrong_format_is_a_clear_error(tmp_path: Path, wrong: str) -> None:
    x, _ = iris()
    np.save(tmp_path / "rows.npy", x)
    result = package_(str(sklearn_file(tmp_path)), "--reference", str(tmp_path / "rows.npy"),
                      "--output", str(tmp_path / "o"), "--format", wrong)  # fmt: skip
    assert result.exit_code == 1
    assert f"cannot load classifier.joblib as a {wrong} model" in result.output
    assert "is --format right?" in result.output
    assert not (tmp_path / "o").exists()


def test_reference_data_errors_say_what_to_fix(tmp_path: Path) -> None:
    x, _ = iris()
    model = str(sklearn_file(tmp_path))

    def error(reference: Path, *more: str) -> str:
        result = package_(
            model, "--reference", str(reference), "--output", str(tmp_path / "o"), *more
        )
        assert result.exit_code == 1, result.output
        return str(result.output)

    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    assert "cannot read rows.parquet as Parquet" in error(tmp_path / "rows.parquet")
    (tmp_path / "rows.txt").write_text("1,2,3,4\n")
    assert "unknown type .txt; use one of .csv, .parquet, .pq, .npy" in error(tmp_path / "rows.txt")
    headless = tmp_path / "headless.csv"
    headless.write_text("\n".join(",".join(str(v) for v in row) for row in x) + "\n")
    assert "needs a header row" in error(headless)
    worded = write_csv(
        tmp_path / "worded.csv", x[:, :3], COLUMNS[:3], {"petal_width": ["wide"] * 150}
    )
    assert "reference column(s) petal_width hold strings" in error(worded)
    labelled = write_csv(tmp_path / "labelled.csv", x, COLUMNS, {"species": ["a"] * 150})
    assert "name a label column with --target" in error(labelled)
    three = write_csv(tmp_path / "three.csv", x[:, :3], COLUMNS[:3])
    assert "the model takes 4 features, the reference data has 3 columns" in error(three)
    np.save(tmp_path / "rows.npy", x)
    assert "no column 'species'" in error(tmp_path / "rows.npy", "--target", "species")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep").write_text("")
    assert "is not an empty directory" in error(tmp_path / "rows.npy")
