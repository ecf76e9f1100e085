"""Pure checks of the ModelDeployment CRD, its examples and the shared invalid cases.

No cluster: the apiserver's own verdict is in tests/integration/test_crd_validation.py.
Here we check what a reviewer would otherwise check by eye: the schema is structural,
every field is documented for `kubectl explain`, every default satisfies its own schema,
every CEL rule is bounded in cost and names its field, and the examples fit the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "modelroll.io_modeldeployments.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CASES_PATH = REPO / "tests" / "cases" / "invalid_modeldeployments.yaml"
EXPECTED_EXAMPLES = {
    "sklearn-iris.yaml",
    "xgboost.yaml",
    "onnx.yaml",
    "gpu.yaml",
    "hpa.yaml",
    "canary.yaml",
    "bluegreen.yaml",
}

Schema = dict[str, Any]


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = load_crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def root_schema() -> Schema:
    schema: Schema = version()["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Yields (path, node) for every schema node under and including `schema`."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def spec_schema() -> Schema:
    spec: Schema = root_schema()["properties"]["spec"]
    return spec


# --- the CRD itself ------------------------------------------------------------------------


def test_crd_identity() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "modeldeployments.modelroll.io"
    spec = crd["spec"]
    assert spec["group"] == "modelroll.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ModelDeployment",
        "listKind": "ModelDeploymentList",
        "plural": "modeldeployments",
        "singular": "modeldeployment",
        "shortNames": ["md"],
        "categories": ["modelroll"],
    }
    v = version()
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)


def test_subresources() -> None:
    sub = version()["subresources"]
    assert sub["status"] == {}
    assert sub["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = root_schema()["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in version()["additionalPrinterColumns"]}
    for name in ("Ready", "Replicas", "Version", "Strategy", "Stable", "Traffic", "URL", "Age"):
        assert name in columns, name
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"]["type"] == "date"
    # Every column reads a field the schema declares (a typo would print <none> forever).
    root = root_schema()
    for column in columns.values():
        path = column["jsonPath"].split("[")[0].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = root
        for part in path:
            assert part in node.get("properties", {}), column
            node = node["properties"][part]


def test_every_property_has_a_description() -> None:
    # metadata is the one exception: the apiserver forbids anything on it but `type: object`
    # (kubectl explain shows ObjectMeta's own documentation there).
    missing = [
        path or "<root>"
        for path, node in walk(root_schema())
        if not node.get("description") and path != ".metadata"
    ]
    assert missing == []


def test_schema_is_structural() -> None:
    """The rules of a structural schema that the apiserver would otherwise report at install."""
    for path, node in walk(root_schema()):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, (
            f"{path}: every node needs a type; floats are not allowed"
        )
        assert not ("properties" in node and "additionalProperties" in node), path
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), path
        for key in ("oneOf", "allOf", "not"):
            assert key not in node, path
        if "x-kubernetes-list-map-keys" in node:
            assert node["x-kubernetes-list-type"] == "map", path
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in node["items"].get("required", []), f"{path}: key {key}"


def test_metadata_is_not_restricted_beyond_name() -> None:
    # A structural schema may say nothing but `type: object` about metadata (name rules go in
    # CEL at the root); even a description is "implicitly specified" and rejected.
    assert root_schema()["properties"]["metadata"] == {"type": "object"}


def test_status_has_no_preserve_unknown_fields() -> None:
    """kopf keeps its bookkeeping in annotations; the typed status must be fully declared."""
    status = root_schema()["properties"]["status"]
    for path, node in walk(status, ".status"):
        if path == ".status.history[].spec":
            continue  # a copy of an already-validated spec, kept for rollback
        assert not node.get("x-kubernetes-preserve-unknown-fields"), path


def test_no_floats_in_spec() -> None:
    for path, node in walk(spec_schema(), ".spec"):
        assert node.get("type") != "number", path
        assert node.get("format") not in {"float", "double"}, path


def test_required_properties_exist() -> None:
    for path, node in walk(root_schema()):
        for name in node.get("required", []):
            assert name in node.get("properties", {}), f"{path} requires undeclared {name}"


def test_required_fields_from_the_api() -> None:
    spec = spec_schema()
    assert spec["required"] == ["model"]
    assert set(spec["properties"]["model"]["required"]) == {"format", "uri"}
    assert spec["properties"]["gpu"]["required"] == ["count"]
    assert spec["properties"]["autoscaling"]["required"] == ["maxReplicas"]


def test_api_field_names() -> None:
    """The operator is written against these names; renaming one is an API change."""
    spec = spec_schema()["properties"]
    assert set(spec) == {
        "model",
        "runtime",
        "resources",
        "gpu",
        "nodeSelector",
        "tolerations",
        "affinity",
        "replicas",
        "autoscaling",
        "rollout",
        "monitoring",
        "network",
    }
    drift = spec["monitoring"]["properties"]["drift"]["properties"]
    assert set(drift) == {
        "prometheus",
        "windowSeconds",
        "intervalSeconds",
        "significance",
        "minSamples",
    }
    assert set(spec["network"]["properties"]) == {"allowFrom"}
    peer = spec["network"]["properties"]["allowFrom"]["items"]["properties"]
    assert set(peer) == {"namespaceSelector", "podSelector"}
    assert set(peer["podSelector"]["properties"]) == {"matchLabels", "matchExpressions"}
    assert set(spec["model"]["properties"]) == {"format", "uri", "version", "sha256", "credentials"}
    assert set(spec["runtime"]["properties"]) == {
        "image",
        "imagePullPolicy",
        "protocol",
        "env",
        "workers",
        "batching",
        "auth",
        "tls",
        "container",
    }
    container = spec["runtime"]["properties"]["container"]["properties"]
    assert set(container) == {
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "port",
        "protocol",
        "health",
        "env",
        "metrics",
    }
    assert set(container["health"]["properties"]) == {"livenessPath", "readinessPath"}
    assert set(container["metrics"]["properties"]) == {"sidecar"}
    assert set(spec["gpu"]["properties"]) == {"count", "resource", "product"}
    assert set(spec["autoscaling"]["properties"]) == {
        "minReplicas",
        "maxReplicas",
        "targetCPUUtilizationPercentage",
        "targetRequestsPerSecond",
    }
    rollout = spec["rollout"]["properties"]
    assert set(rollout) == {
        "strategy",
        "progressDeadlineSeconds",
        "revisionHistoryLimit",
        "canary",
        "blueGreen",
    }
    assert set(rollout["canary"]["properties"]) == {
        "trafficRouting",
        "steps",
        "analysis",
        "scaleDownDelaySeconds",
    }
    assert set(rollout["canary"]["properties"]["analysis"]["properties"]) == {
        "prometheus",
        "intervalSeconds",
        "maxErrorPercent",
        "maxP99LatencyMs",
        "maxP99LatencyIncreasePercent",
        "minRequestCount",
        "customChecks",
        "predictionShift",
    }
    shift = rollout["canary"]["properties"]["analysis"]["properties"]["predictionShift"]
    assert set(shift["properties"]) == {"enabled", "significance", "minSamples"}
    assert set(rollout["blueGreen"]["properties"]) == {
        "autoPromote",
        "scaleDownDelaySeconds",
        "smokeTest",
    }
    status = root_schema()["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "conditions",
        "url",
        "selector",
        "replicas",
        "readyReplicas",
        "stableRevision",
        "canaryRevision",
        "currentStep",
        "traffic",
        "revisions",
        "history",
        "rollout",
    }


def test_conditions_have_the_metav1_shape() -> None:
    conditions = root_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
    }
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


# --- CEL rules -------------------------------------------------------------------------------


def rules() -> Iterator[tuple[str, Schema, dict[str, str]]]:
    for path, node in walk(root_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, node, rule


def test_cel_rules_name_their_field() -> None:
    found = list(rules())
    assert len(found) >= 15
    for path, _node, rule in found:
        message = rule.get("message", "")
        assert re.match(r"^(metadata|spec)\.[A-Za-z]", message), (path, rule)
        assert "\n" not in message
        assert "\n" not in rule["rule"].strip(), "folded rules must not keep line breaks"
        field = message.split()[0]
        # The message starts with the path of the node the rule sits on, or of a field below.
        if path == "":
            assert field.startswith("metadata."), rule
        else:
            assert field.startswith(("spec" + path.removeprefix(".spec")).replace("[]", "")), (
                path,
                rule,
            )


def _bounded(node: Schema) -> bool:
    if node.get("type") == "string":
        return "maxLength" in node or "enum" in node
    if node.get("type") == "array":
        return "maxItems" in node
    if node.get("type") == "object" and "additionalProperties" in node:
        return "maxProperties" in node
    return True


def test_cel_rules_are_cost_bounded() -> None:
    """A rule on an unbounded string, list or map can exceed the apiserver's cost budget."""
    for path, node, rule in rules():
        assert _bounded(node), (path, rule)
        for name, child in node.get("properties", {}).items():
            if re.search(rf"\bself\.{name}\b", rule["rule"]):
                assert _bounded(child), (f"{path}.{name}", rule)
    # Fields that rules reach inside list items.
    spec = spec_schema()["properties"]
    assert "maxLength" in spec["runtime"]["properties"]["env"]["items"]["properties"]["name"]


# --- defaults ------------------------------------------------------------------------------


def validate(value: Any, schema: Schema, path: str) -> list[str]:
    """A small validator for the OpenAPI subset the CRD uses (no CEL).

    Enough to show that defaults and examples fit the schema; the apiserver is the judge.
    """
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.append(f"{path}: must be an integer or a string")
        elif (
            isinstance(value, str)
            and "pattern" in schema
            and not re.search(schema["pattern"], value)
        ):
            errors.append(f"{path}: does not match {schema['pattern']}")
        return errors
    kind = schema["type"]
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if not checks[kind](value):
        return [f"{path}: must be {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if kind == "integer":
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
    if kind == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: too long")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
    if kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: too many items")
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, child in value.items():
            if name in properties:
                errors += validate(child, properties[name], f"{path}.{name}")
            elif isinstance(extra, dict):
                errors += validate(child, extra, f"{path}.{name}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and path != ".metadata":
                errors.append(f"{path}.{name}: unknown field")
    return errors


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Structural defaulting as the apiserver does it: set a default, then recurse into it."""
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = yaml.safe_load(yaml.safe_dump(child["default"]))
            if name in value:
                value[name] = apply_defaults(value[name], child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def test_defaults_fit_their_schema() -> None:
    defaults = [(path, node) for path, node in walk(root_schema()) if "default" in node]
    assert len(defaults) >= 15
    for path, node in defaults:
        value = apply_defaults(yaml.safe_load(yaml.safe_dump(node["default"])), node)
        assert validate(value, node, path) == [], path


def test_documented_defaults() -> None:
    spec = spec_schema()["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["runtime"]["properties"]["protocol"]["default"] == "v2"
    assert spec["gpu"]["properties"]["resource"]["default"] == "nvidia.com/gpu"
    rollout = spec["rollout"]
    assert apply_defaults(dict(rollout["default"]), rollout) == {
        "strategy": "Rolling",
        "progressDeadlineSeconds": 600,
        "revisionHistoryLimit": 3,
    }
    batching = spec["runtime"]["properties"]["batching"]
    assert apply_defaults({}, batching) == {"maxBatchSize": 32}
    analysis = rollout["properties"]["canary"]["properties"]["analysis"]
    assert apply_defaults({}, analysis) == {
        "intervalSeconds": 30,
        "maxErrorPercent": 1,
        "minRequestCount": 20,
        "predictionShift": {"enabled": True, "significance": "0.01", "minSamples": 100},
    }
    blue_green = rollout["properties"]["blueGreen"]
    assert apply_defaults({}, blue_green) == {"autoPromote": True, "scaleDownDelaySeconds": 30}


def test_defaulted_minimal_object() -> None:
    """What `kubectl get -o yaml` shows for the smallest object."""
    obj = {"model": {"format": "sklearn", "uri": "file:///models/iris.joblib"}}
    assert apply_defaults(obj, spec_schema()) == {
        "model": {"format": "sklearn", "uri": "file:///models/iris.joblib"},
        "runtime": {"protocol": "v2"},
        "replicas": 1,
        "rollout": {
            "strategy": "Rolling",
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 3,
        },
    }


# --- examples ------------------------------------------------------------------------------


def test_all_examples_present() -> None:
    assert {p.name for p in EXAMPLES} >= EXPECTED_EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_fits_schema(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1
    obj = docs[0]
    assert obj["apiVersion"] == "modelroll.io/v1alpha1"
    assert obj["kind"] == "ModelDeployment"
    name = obj["metadata"]["name"]
    assert len(name) <= 40 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert "namespace" not in obj["metadata"], "examples apply to the current namespace"
    assert validate(obj, root_schema(), "") == []
    # Defaulting keeps it valid.
    assert validate(apply_defaults(obj, root_schema()), root_schema(), "") == []


def test_example_details() -> None:
    def load(name: str) -> dict[str, Any]:
        obj: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
        return obj

    iris = load("sklearn-iris.yaml")
    assert iris["metadata"]["name"] == "iris"
    assert iris["spec"]["model"]["format"] == "sklearn"
    assert iris["spec"]["model"]["version"] == "1"
    assert iris["spec"]["replicas"] == 2
    gpu = load("gpu.yaml")["spec"]["gpu"]
    assert gpu["count"] == 1 and gpu["product"] == "NVIDIA-A100-SXM4-80GB"
    assert "autoscaling" in load("hpa.yaml")["spec"]
    canary = load("canary.yaml")["spec"]["rollout"]
    assert canary["strategy"] == "Canary"
    assert [s["weight"] for s in canary["canary"]["steps"]] == [10, 50]
    assert "analysis" in canary["canary"]
    assert load("bluegreen.yaml")["spec"]["rollout"]["strategy"] == "BlueGreen"


# --- shared invalid cases ------------------------------------------------------------------


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CASES_PATH.read_text())
    return cases


def test_invalid_cases_are_well_formed() -> None:
    cases = load_cases()
    assert len(cases) >= 20
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names))
    for case in cases:
        assert {"name", "expect", "manifest"} <= set(case) <= {"name", "expect", "code", "manifest"}
        assert case.get("code", 422) in {400, 422}, case["name"]
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", case["name"])
        assert case["expect"].strip() == case["expect"] and case["expect"]
        assert re.search(r"\b(metadata|spec)(\.|:)|spec\.", case["expect"]), case["name"]
        manifest = case["manifest"]
        assert manifest["apiVersion"] == "modelroll.io/v1alpha1"
        assert manifest["kind"] == "ModelDeployment"
        assert "namespace" not in manifest["metadata"]


def test_cel_messages_are_covered_by_cases() -> None:
    """Every CEL message is asserted against the apiserver by at least one case."""
    expects = [c["expect"] for c in load_cases()]
    for path, _node, rule in rules():
        message = rule["message"]
        assert any(e in message or message in e for e in expects), (path, message)
